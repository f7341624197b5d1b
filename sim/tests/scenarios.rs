//! Small runs of the blacklist, churn, upload and load scenarios: what they must show.

use swarmsite_sim::engine::MINUTE;
use swarmsite_sim::scenarios::blacklist::{self, Forger};
use swarmsite_sim::scenarios::{churn, load, upload};
use swarmsite_sim::stats;

#[test]
fn a_forger_that_answers_probes_is_refused_by_everyone_within_minutes() {
    let r = blacklist::run(1500, 4, Forger::Naive, 10 * MINUTE);
    let listed = r.listed.expect("the auditor lists it");
    // Hints reach the auditor in a few hops; it lists at its next batch (≤ 60 s).
    assert!(listed <= 61_000, "{}", stats::fmt_ms(listed));
    let all = r.times[3].expect("every honest node refuses it");
    assert!(all <= listed + 2 * MINUTE, "{}", stats::fmt_ms(all));
    assert!(r.rechecks >= 1 && r.hints > 0);
    // Forgeries reach honest nodes until their blacklist arrives (the run ends when
    // every honest node refuses the forger).
    assert!(r.forged_before_99 > 0 && r.forged >= r.forged_before_99);
    let again = blacklist::run(1500, 4, Forger::Naive, 10 * MINUTE);
    assert_eq!(
        (again.listed, again.times, again.forged),
        (r.listed, r.times, r.forged)
    );
}

#[test]
fn a_forger_no_recheck_can_confirm_is_never_listed_by_hints_alone() {
    for f in [Forger::Evasive, Forger::BehindNat] {
        let r = blacklist::run(800, 6, f, 5 * MINUTE);
        assert_eq!(r.listed, None, "{f:?}");
        assert!(r.forged > 0);
    }
}

#[test]
fn after_a_mass_departure_the_rest_converges_and_a_healed_partition_catches_up() {
    let c = churn::mass_departure(2000, 8);
    assert_eq!(c.population, 1400);
    let all = c.times[3].expect("every remaining node gets the release");
    assert!(all <= 2 * MINUTE, "{}", stats::fmt_ms(all));
    let p = churn::partition(1500, 8, false);
    assert!(
        p.times[3].is_some(),
        "the east side catches up after the heal"
    );
}

#[test]
fn one_telling_leaves_a_few_nodes_out_and_the_further_tellings_reach_all() {
    let first = upload::spread(3000, 1 << 20, 2, false);
    let missed = first.held.iter().filter(|t| **t == u64::MAX).count();
    assert!(missed > 0 && missed < 3000 / 20, "{missed}");
    let all = upload::spread(3000, 1 << 20, 2, true);
    assert!(all.held.iter().all(|t| *t < u64::MAX), "everyone holds it");
    // Each node tells each peer at most once: under two `up` per link.
    assert!(all.ups < 3000 * 32 * 2, "{}", all.ups);
    assert_eq!(all.held, upload::spread(3000, 1 << 20, 2, true).held);
}

#[test]
fn steady_load_follows_the_pull_round() {
    let s = load::steady(600, 3, 3 * MINUTE);
    // One `get` and one answer per followed slot per minute, one lookup per slot per
    // minute, one rendezvous announcement per minute.
    let per_hour = 60.0 * s.tracked as f64;
    assert!(
        (s.wire_mean - 2.0 * per_hour).abs() < 0.05 * per_hour,
        "{}",
        s.wire_mean
    );
    assert!(
        (s.lookups - per_hour).abs() < 0.05 * per_hour,
        "{}",
        s.lookups
    );
    assert!((s.announces - 60.0).abs() < 6.0, "{}", s.announces);
    // The nodes closest to the rendezvous name hear from every node every minute.
    assert!(s.dht_hot >= 0.9 * 600.0 * 60.0 * 2.0, "{}", s.dht_hot);
}
