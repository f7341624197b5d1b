//! Small networks against closed forms, and runs that depend on nothing but the seed.

use swarmsite_sim::engine::{HOUR, MINUTE, Ms};
use swarmsite_sim::scenarios::propagation::{run, seed_scheme};
use swarmsite_sim::stats;

/// Push gossip with fanout f reaches everyone in about log_f N + ln N rounds (hops);
/// the protocol's push to 8, with pull behind it, stays within that.
#[test]
fn push_and_pull_reach_everyone_within_log_f_n_plus_ln_n_hops() {
    for n in [300, 3000] {
        let r = run(n, 7, 10 * MINUTE, |_| {});
        let bound = ((n as f64).log(8.0) + (n as f64).ln()).ceil() as u8;
        let ideal = (n as f64).log(8.0).ceil() as u8;
        assert!(r.times[3].is_some(), "N = {n}: not everyone was reached");
        assert!(r.max_hop <= bound, "N = {n}: {} hops > {bound}", r.max_hop);
        let median = r.hops[0].unwrap();
        assert!(
            (ideal..=ideal + 3).contains(&median),
            "N = {n}: half reached after {median} hops, log8 N = {ideal}"
        );
        // Push alone carries it across the network in well under a pull round.
        assert!(r.times[1].unwrap() < 5_000, "{:?}", r.times);
    }
}

/// Without pull, forwarding once to 8 peers misses some nodes (FACTS.md: fanout below
/// ln N); pull closes the gap within a round or two.
#[test]
fn push_alone_leaves_a_gap_that_pull_closes() {
    let n = 3000;
    let push_only = run(n, 3, 10 * MINUTE, |cfg| {
        cfg.gossip.pull_interval_ms = 100 * HOUR
    });
    assert!(push_only.times[3].is_none(), "push alone reached everyone");
    assert!(
        push_only.times[1].is_some(),
        "push reaches most: {:?}",
        push_only.times
    );
    let with_pull = run(n, 3, 10 * MINUTE, |_| {});
    let all = with_pull.times[3].unwrap();
    assert!(all <= 2 * MINUTE + 10_000, "{}", stats::fmt_ms(all));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(500, 11, 10 * MINUTE, |_| {});
    let b = run(500, 11, 10 * MINUTE, |_| {});
    let c = run(500, 12, 10 * MINUTE, |_| {});
    assert_eq!(a.times, b.times);
    assert_eq!(a.hops, b.hops);
    assert_eq!(a.curve, b.curve);
    assert_eq!(a.stats.wire_messages(), b.stats.wire_messages());
    assert_eq!(a.events, b.events);
    assert_ne!(
        (a.curve, a.stats.wire_messages()),
        (c.curve, c.stats.wire_messages())
    );
    assert_eq!(seed_scheme(500, 5), seed_scheme(500, 5));
}

/// The seed article's scheme is a branching process: each informed node tells a new
/// peer after U(0, 4 days), again and again. Its growth rate r solves
/// φ(r) = 1/2 with φ(r) = E[e^(-rS)] = (1 - e^(-4r)) / 4r (each telling is one more
/// child), and it grows logistically: half the network hears after about ln(N) / r.
#[test]
fn the_seed_scheme_grows_at_its_malthusian_rate() {
    let phi = |r: f64| (1.0 - (-4.0 * r).exp()) / (4.0 * r);
    let (mut lo, mut hi) = (0.01, 2.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if phi(mid) > 0.5 { lo = mid } else { hi = mid }
    }
    let r = lo; // per day, about 0.40
    let n = 2000;
    let at = seed_scheme(n, 1);
    let half = stats::time_to(&at, n, 0.5, 0).unwrap() as f64 / (24.0 * HOUR as f64);
    let expect = (n as f64).ln() / r;
    assert!(
        (half - expect).abs() < 0.2 * expect,
        "{half} days vs {expect}"
    );
    let all: Ms = stats::time_to(&at, n, 1.0, 0).unwrap();
    assert!(all > 30 * 24 * HOUR);
}
