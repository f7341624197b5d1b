//! Release propagation: a new signed site release published by one node, pushed to 8
//! peers by every node that accepts it, pulled by the rest; against the ideal
//! ⌈log8 N⌉ hops and against the seed article's scheme (one random peer after a
//! random delay of up to 4 days, repeated).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Ctx, sizes, warm_network};
use crate::engine::{DAY, MINUTE, Ms, derive_seed};
use crate::net::Net;
use crate::report::{Plot, Series, Table};
use crate::stats::{self, fmt_opt};
use crate::world::{OUT, Stats, WorldConfig, random_overlay};

pub const SHARES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// One run of the protocol.
pub struct Run {
    pub n: usize,
    pub times: Vec<Option<Ms>>,
    pub hops: Vec<Option<u8>>,
    pub max_hop: u8,
    /// Share of the nodes that had it from a push (the rest: pull), overall and among
    /// nodes behind NAT.
    pub by_push: f64,
    pub nat_missed_by_push: f64,
    /// Nodes that had it by push alone (before the first pull round could help).
    pub curve: Vec<(f64, f64)>,
    pub stats: Stats,
    pub events: u64,
}

/// Publishes release 2 at a random reachable node of a warm `n`-node network and runs
/// until every node accepted it (at most `limit`). `adjust` changes the setup.
pub fn run(n: usize, seed: u64, limit: Ms, adjust: impl FnOnce(&mut WorldConfig)) -> Run {
    let (mut w, _) = warm_network(n, seed, |cfg| {
        // Nothing changes the overlay in this run: no rendezvous rounds needed.
        cfg.rounds = false;
        adjust(cfg);
    });
    let t0 = w.now();
    let publisher = loop {
        let p = w.rng.gen_range(0..n as u32);
        if w.net.reachable(p) {
            break p;
        }
    };
    let before = w.stats.clone();
    let v2 = w.new_release(2);
    w.publish(publisher, v2);
    w.run_until(t0 + limit, |w| w.watch.reached == w.len());
    let stats = w.stats.since(&before);
    let at = &w.watch.first_at;
    let nat: Vec<usize> = (0..n).filter(|i| !w.net.reachable(*i as u32)).collect();
    let nat_missed = nat.iter().filter(|i| !w.watch.pushed[**i]).count();
    Run {
        n,
        times: stats::times_to(at, n, &SHARES, t0),
        hops: SHARES
            .iter()
            .map(|s| stats::hops_to(&w.watch.hop, at, n, *s))
            .collect(),
        max_hop: stats::hops_to(&w.watch.hop, at, n, 1.0).unwrap_or(0),
        by_push: w.watch.by_push as f64 / n as f64,
        nat_missed_by_push: nat_missed as f64 / nat.len().max(1) as f64,
        curve: stats::curve(at, n, t0, 200),
        stats,
        events: w.events(),
    }
}

/// The seed article's scheme, on the same kind of overlay: a node that has the news
/// tells one random peer after a delay drawn uniformly from 0 to 4 days, then again
/// after another such delay, and so on. Returns when each node heard it.
pub fn seed_scheme(n: usize, seed: u64) -> Vec<Ms> {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 9, 0));
    let net = Net::new(n, Default::default(), &mut rng);
    let links = random_overlay(&net, swarmsite_protocol::policy::MAX_PEERS, &mut rng);
    let mut at = vec![Ms::MAX; n];
    let mut heap = BinaryHeap::new();
    let origin = rng.gen_range(0..n as u32);
    at[origin as usize] = 0;
    heap.push(Reverse((rng.gen_range(0..=4 * DAY), origin)));
    let mut informed = 1;
    while let Some(Reverse((t, v))) = heap.pop() {
        if informed == n || t > 1000 * DAY {
            break;
        }
        let peers = &links[v as usize];
        if !peers.is_empty() {
            let u = peers[rng.gen_range(0..peers.len())] & !OUT;
            if at[u as usize] == Ms::MAX {
                at[u as usize] = t;
                informed += 1;
                heap.push(Reverse((t + rng.gen_range(0..=4 * DAY), u)));
            }
        }
        heap.push(Reverse((t + rng.gen_range(0..=4 * DAY), v)));
    }
    at
}

/// The seed article's own estimate for all of `n`: 4 days × H(n).
pub fn seed_estimate_days(n: usize) -> f64 {
    4.0 * (1..=n).map(|k| 1.0 / k as f64).sum::<f64>()
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let mut md = String::new();
    let mut table = Table::new(
        "Release propagation, push to 8 + pull",
        &ctx.command("propagation"),
        &[
            "N",
            "50 %",
            "90 %",
            "99 %",
            "100 %",
            "hops 50/90/99/100 %",
            "had it by push (missed: all / behind NAT)",
            "ideal ⌈log8 N⌉",
            "messages per node",
            "events",
        ],
    );
    let mut seed_table = Table::new(
        "The seed article's scheme (one random peer after 0–4 days, repeated)",
        &ctx.command("propagation"),
        &[
            "N",
            "50 %",
            "80 %",
            "90 %",
            "99 %",
            "100 %",
            "seed's estimate for 100 %",
        ],
    );
    let mut series = Vec::new();
    let mut seed_series = Vec::new();
    for n in sizes(ctx.nodes) {
        let r = run(n, ctx.seed, 30 * MINUTE, |_| {});
        let hops: Vec<String> = r
            .hops
            .iter()
            .map(|h| h.map_or("–".into(), |h| h.to_string()))
            .collect();
        let ideal = (n as f64).log(8.0).ceil() as u32;
        table.row(vec![
            n.to_string(),
            fmt_opt(r.times[0]),
            fmt_opt(r.times[1]),
            fmt_opt(r.times[2]),
            fmt_opt(r.times[3]),
            hops.join(" / "),
            format!(
                "{:.2} % ({:.2} % / {:.2} %)",
                100.0 * r.by_push,
                100.0 * (1.0 - r.by_push),
                100.0 * r.nat_missed_by_push
            ),
            ideal.to_string(),
            format!("{:.1}", r.stats.wire_messages() as f64 / n as f64),
            r.events.to_string(),
        ]);
        series.push(Series {
            label: format!("N = {n}"),
            points: r.curve.iter().map(|(t, s)| (t / 1000.0, *s)).collect(),
        });
        let at = seed_scheme(n, ctx.seed);
        let t = stats::times_to(&at, n, &[0.5, 0.8, 0.9, 0.99, 1.0], 0);
        let mut row = vec![n.to_string()];
        row.extend(t.iter().map(|t| fmt_opt(*t)));
        row.push(format!("{:.1} days", seed_estimate_days(n)));
        seed_table.row(row);
        seed_series.push(Series {
            label: format!("N = {n}"),
            points: stats::curve(&at, n, 0, 200)
                .iter()
                .map(|(t, s)| (t / DAY as f64, *s))
                .collect(),
        });
    }
    table.note(
        "Times from the publisher's push to the share of all nodes that accepted the record; \
         hops counted from the publisher (0). Every node keeps 32 outgoing connections to \
         random reachable nodes (40 % are behind NAT and dial out only) and pulls every 60 s.",
    );
    md += &table.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "propagation.png",
            &Plot {
                title: "Share of nodes holding the new release",
                x_label: "seconds after publication (log scale)",
                y_label: "share of nodes",
                log_x: true,
                log_y: false,
            },
            &series,
        )?;
    }
    md += "\n";
    md += &seed_table.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "propagation-seed.png",
            &Plot {
                title: "The seed article's scheme: share of nodes that heard",
                x_label: "days after publication",
                y_label: "share of nodes",
                log_x: false,
                log_y: false,
            },
            &seed_series,
        )?;
    }
    Ok(md)
}
