//! Churn and partitions: how the network converges on a new release when 30 % of the
//! nodes leave at once, under steady heavy-tailed churn, with the pull path alone (no
//! push), and after a partition heals.

use rand::Rng;
use rand::seq::SliceRandom;

use super::{Ctx, propagation, warm_network};
use crate::engine::{MINUTE, Ms, SECOND};
use crate::net::REGIONS;
use crate::report::{Plot, Series, Table};
use crate::stats::{self, fmt_ms, fmt_opt};
use crate::world::World;

pub const SHARES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// Nothing but releases is published in these runs: only that slot is pulled.
fn site_only(cfg: &mut crate::world::WorldConfig) {
    cfg.gossip.tracked = vec![(
        swarmsite_protocol::name::kind::SITE_RELEASE,
        crate::records::SITE,
    )];
}

/// A convergence measurement: times from publication to shares of the population.
pub struct Conv {
    pub label: String,
    pub population: usize,
    pub times: Vec<Option<Ms>>,
    pub note: String,
    /// Share of the online population holding the release, per minute.
    pub curve: Vec<(f64, f64)>,
}

fn publisher(w: &mut World, ok: impl Fn(&World, u32) -> bool) -> u32 {
    loop {
        let p = w.rng.gen_range(0..w.len() as u32);
        if w.is_online(p) && w.net.reachable(p) && ok(w, p) {
            break p;
        }
    }
}

/// Share of the online nodes in `pick` holding the watched release.
fn holding(w: &World, pick: impl Fn(u32) -> bool) -> f64 {
    let (mut on, mut has) = (0usize, 0usize);
    for i in 0..w.len() as u32 {
        if w.is_online(i) && pick(i) {
            on += 1;
            has += (w.watch.first_at[i as usize] != Ms::MAX) as usize;
        }
    }
    has as f64 / on.max(1) as f64
}

/// Runs to `until` in one-minute steps, sampling `holding`.
fn run_sampled(
    w: &mut World,
    start: Ms,
    until: Ms,
    pick: &impl Fn(u32) -> bool,
    curve: &mut Vec<(f64, f64)>,
) {
    while w.now() < until {
        let next = (w.now() + MINUTE).min(until);
        w.run_until(next, |_| false);
        curve.push(((w.now() - start) as f64 / MINUTE as f64, holding(w, pick)));
    }
}

/// 30 % of the nodes leave at once; a second later the new release is published.
pub fn mass_departure(n: usize, seed: u64) -> Conv {
    let (mut w, _) = warm_network(n, seed, site_only);
    w.run_until(w.now() + 10 * SECOND, |_| false);
    let mut all: Vec<u32> = (0..n as u32).collect();
    all.shuffle(&mut w.rng);
    for &v in &all[..n * 3 / 10] {
        w.leave(v);
    }
    let left: Vec<u32> = (0..n as u32).filter(|i| !w.is_online(*i)).collect();
    let deg: f64 = (0..n as u32)
        .filter(|i| w.is_online(*i))
        .map(|i| w.degree(i) as f64)
        .sum::<f64>()
        / (n - left.len()) as f64;
    w.run_until(w.now() + SECOND, |_| false);
    let t0 = w.now();
    let v2 = w.new_release(2);
    let p = publisher(&mut w, |_, _| true);
    w.publish(p, v2);
    let population = n - left.len();
    w.run_until(t0 + 30 * MINUTE, |w| w.watch.reached >= population);
    let at: Vec<Ms> = (0..n)
        .filter(|i| w.is_online(*i as u32))
        .map(|i| w.watch.first_at[i])
        .collect();
    Conv {
        label: "30 % leave at once, then a release".into(),
        population,
        times: stats::times_to(&at, population, &SHARES, t0),
        note: format!("peers per remaining node right after: {deg:.1} (was ~64)"),
        curve: Vec::new(),
    }
}

/// The pull path alone: nodes ignore pushes and learn by `version + 1` pulls (a random
/// wire peer, and the DHT) every minute.
pub fn pull_only(n: usize, seed: u64) -> Conv {
    let r = propagation::run(n, seed, 60 * MINUTE, |cfg| {
        site_only(cfg);
        cfg.gossip.accept_push = false;
    });
    Conv {
        label: "pull alone (push ignored)".into(),
        population: n,
        times: r.times,
        note: format!("hops to all: {}", r.max_hop),
        curve: Vec::new(),
    }
}

/// Steady churn (sessions and offline times heavy-tailed, median 1 h each): a release
/// published 10 minutes into it, followed for 30 minutes; the online nodes' share holding it, and how long nodes
/// coming back take to catch up.
pub fn steady_churn(n: usize, seed: u64) -> Conv {
    let (mut w, _) = warm_network(n, seed, site_only);
    w.start_churn();
    w.run_until(w.now() + 10 * MINUTE, |_| false);
    let t0 = w.now();
    let v2 = w.new_release(2);
    let p = publisher(&mut w, |_, _| true);
    w.publish(p, v2);
    let mut curve = vec![(0.0, holding(&w, |_| true))];
    run_sampled(&mut w, t0, t0 + 30 * MINUTE, &|_| true, &mut curve);
    // Nodes that came back after the publication: from their return to holding it.
    let mut catch_up: Vec<Ms> = (0..n)
        .filter(|i| w.watch.joined_at[*i] != Ms::MAX && w.watch.joined_at[*i] > t0)
        .filter(|i| {
            w.watch.first_at[*i] != Ms::MAX && w.watch.first_at[*i] >= w.watch.joined_at[*i]
        })
        .map(|i| w.watch.first_at[i] - w.watch.joined_at[i])
        .collect();
    catch_up.sort_unstable();
    let q = |s: f64| {
        catch_up
            .get(((catch_up.len() as f64 * s) as usize).min(catch_up.len().saturating_sub(1)))
            .copied()
    };
    // Counted: the nodes online from the publication to the end (no leaving in
    // between); those that came back later are the catch-up figure.
    let stayed: Vec<usize> = (0..n)
        .filter(|i| w.is_online(*i as u32) && !online_at_start_left(&w, *i, t0))
        .collect();
    let at: Vec<Ms> = stayed.iter().map(|i| w.watch.first_at[*i]).collect();
    Conv {
        label: "steady churn (sessions median 1 h, heavy-tailed)".into(),
        population: stayed.len(),
        times: stats::times_to(&at, stayed.len(), &SHARES, t0),
        note: format!(
            "online at the end: {}; {} nodes came back after the publication and caught up \
             in {} (median), {} (99 %)",
            w.online_count(),
            catch_up.len(),
            fmt_opt(q(0.5)),
            fmt_opt(q(0.99)),
        ),
        curve,
    }
}

/// True when node `i` came back (so left) after `t0`.
fn online_at_start_left(w: &World, i: usize, t0: Ms) -> bool {
    w.watch.joined_at[i] != Ms::MAX && w.watch.joined_at[i] > t0
}

/// The east (East and South Asia, Oceania) is cut off from the rest for ten minutes;
/// the release is published in the west five minutes in. After the cut heals, does it
/// reach the east? With `churn`, nodes also come and go.
pub fn partition(n: usize, seed: u64, churn: bool) -> Conv {
    let (mut w, _) = warm_network(n, seed, site_only);
    let east: Vec<bool> = (0..n as u32)
        .map(|i| REGIONS[w.net.region(i)].name.contains("Asia") || w.net.region(i) == 8)
        .collect();
    if churn {
        w.start_churn();
    }
    let cut = w.now();
    w.partition(east.clone());
    w.run_until(cut + 5 * MINUTE, |_| false);
    let v2 = w.new_release(2);
    let p = publisher(&mut w, |_, p| !east[p as usize]);
    w.publish(p, v2);
    w.run_until(cut + 10 * MINUTE, |_| false);
    w.heal();
    let healed = w.now();
    let is_east = |i: u32| east[i as usize];
    let mut curve = vec![(0.0, holding(&w, is_east))];
    run_sampled(&mut w, healed, healed + 20 * MINUTE, &is_east, &mut curve);
    let at: Vec<Ms> = (0..n)
        .filter(|i| east[*i] && w.is_online(*i as u32))
        .map(|i| w.watch.first_at[i])
        .collect();
    let population = at.len();
    Conv {
        label: format!(
            "partition east/west healed after 10 min{}",
            if churn { ", with churn" } else { "" }
        ),
        population,
        times: stats::times_to(&at, population, &SHARES, healed),
        note: format!(
            "east side online: {population}; holding it 20 min after the heal: {:.1} %",
            100.0 * curve.last().map_or(0.0, |c| c.1)
        ),
        curve,
    }
}

/// The cases of [`report`], numbered from 1 as `--case` names them.
pub const CASES: usize = 5;

/// Runs the given cases (1–5; all when empty): at 10^6 the five take the better part of
/// an hour together, so `--case` lets them run one at a time.
pub fn report(ctx: &Ctx, cases: &[usize]) -> anyhow::Result<String> {
    let n = ctx.nodes;
    if let Some(bad) = cases.iter().find(|c| !(1..=CASES).contains(*c)) {
        anyhow::bail!("churn has cases 1 to {CASES}, not {bad}");
    }
    let all: Vec<usize> = (1..=CASES).collect();
    let cases = if cases.is_empty() { &all[..] } else { cases };
    let mut runs = Vec::new();
    for (done, &case) in cases.iter().enumerate() {
        let r = match case {
            1 => mass_departure(n, ctx.seed),
            2 => steady_churn(n, ctx.seed),
            3 => pull_only(n, ctx.seed),
            4 => partition(n, ctx.seed, false),
            _ => partition(n, ctx.seed, true),
        };
        // At 10^6 the cases take minutes each: say each as it ends.
        eprintln!(
            "churn: case {case} ({} of {}) done: {} ({} nodes counted): 50/90/99/100 % at {} / {} / {} / {}",
            done + 1,
            cases.len(),
            r.label,
            r.population,
            fmt_opt(r.times[0]),
            fmt_opt(r.times[1]),
            fmt_opt(r.times[2]),
            fmt_opt(r.times[3]),
        );
        runs.push(r);
    }
    let subset = cases.len() < CASES;
    let mut command = ctx.command("churn");
    if subset {
        for c in cases {
            command += &format!(" --case {c}");
        }
    }
    let mut t = Table::new(
        "Churn and partitions: converging on a new release",
        &command,
        &[
            "N",
            "case",
            "nodes counted",
            "50 %",
            "90 %",
            "99 %",
            "100 %",
            "notes",
        ],
    );
    for r in &runs {
        t.row(vec![
            n.to_string(),
            r.label.clone(),
            r.population.to_string(),
            fmt_opt(r.times[0]),
            fmt_opt(r.times[1]),
            fmt_opt(r.times[2]),
            fmt_opt(r.times[3]),
            r.note.clone(),
        ]);
    }
    t.note(format!(
        "Times from publication (for partitions: from the heal) to the share of the \
         nodes counted: those online at the end (for partitions: the east side). Nodes \
         keep {} outgoing connections and refill free slots from the rendezvous DHT \
         every minute; a connection across a cut closes after {} of silence.",
        swarmsite_protocol::policy::MAX_PEERS,
        fmt_ms(swarmsite_protocol::wire::WireConfig::new([0; 20], [0; 20], None).idle_timeout_ms)
    ));
    let mut md = t.markdown();
    if ctx.plots && runs.iter().any(|r| !r.curve.is_empty()) {
        let series: Vec<Series> = runs
            .iter()
            .filter(|r| !r.curve.is_empty())
            .map(|r| Series {
                label: r.label.clone(),
                points: r.curve.clone(),
            })
            .collect();
        // A run of some cases draws only theirs, beside the full run's plot.
        let file = if subset {
            let names: Vec<String> = cases.iter().map(|c| c.to_string()).collect();
            format!("churn-case-{}.png", names.join("-"))
        } else {
            "churn.png".into()
        };
        md += &ctx.figure(
            &file,
            &Plot {
                title: "Online nodes holding the new release (east side for partitions)",
                x_label: "minutes after publication (after the heal, for partitions)",
                y_label: "share of nodes",
                log_x: false,
                log_y: false,
            },
            &series,
        )?;
    }
    Ok(md)
}
