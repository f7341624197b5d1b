//! Source anonymity of uploads. Every honest node originates one upload, all at once;
//! each node runs one `upload::stem::Stem` (the project's own) for every upload passing
//! it (after a random delay, to one of its two successors of the epoch — the first
//! among the peers it dialled, the second among those that dialled it —, relay with
//! probability q, never straight back, the fail-safe); the node that fluffs announces
//! it with `up` to 8 peers, who fetch it and pass it on. A fraction p of the nodes are
//! colluding spies, reachable and dialling [`SPY_DIALS`] nodes each, that follow the
//! protocol and note who handed them what. Two estimators name an originator for each
//! upload:
//!
//! - first spy: the node the first spy got the upload from (stem or fluff);
//! - best (ours): the stem predecessor when a spy was on the stem; otherwise the
//!   fluffing node is known (it seeds first and is the first announcer in the DHT) and
//!   the guess is its honest neighbour most likely to have handed it on directly: the
//!   one with fewest peers (a node picks its next hop uniformly among its peers).
//!
//! Precision and recall as in Dandelion++ (Fanti et al., SIGMETRICS 2018): recall is the
//! share of uploads whose originator is named; precision averages, over nodes, "named
//! correctly" divided by the uploads named on that node. Any scheme has recall ≥ p and
//! precision ≥ p². The paper's design (two outbound stem edges per node, one-to-one
//! routing, every transaction in one epoch, Bitcoin diffusion) is re-run on the same
//! network, nodes and spies for comparison.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use swarmsite_protocol::gossip::PeerKey;
use swarmsite_protocol::upload::stem::{Stem, StemAction, StemConfig, UploadId};

use super::Ctx;
use crate::engine::{Ms, derive_seed};
use crate::net::{Net, NetConfig};
use crate::report::{Plot, Series, Table};
use crate::world::{OUT, dial_reachable, random_overlay};

pub const SPY_SHARES: [f64; 4] = [0.05, 0.1, 0.2, 0.3];
pub const STEM_PROBABILITIES: [f64; 4] = [0.0, 0.5, 0.8, 0.9];

/// Reachable nodes each spy dials (an honest node dials 32): what one host can do
/// within the honest nodes' inbound caps (256 in all), for a larger share of their
/// second successors.
pub const SPY_DIALS: usize = 128;

/// Container size assumed for transfer times (the fetch after `up`).
const CONTAINER: f64 = 4.0 * 1024.0 * 1024.0;

/// Peers `up` goes to (like a record's push): the fluff machine's own default.
fn fluff_fanout() -> usize {
    swarmsite_protocol::upload::fluff::FluffConfig::default().fanout
}

/// A network to run uploads on: nodes, their peers, who spies.
pub struct Graph {
    pub net: Net,
    pub peers: Vec<Vec<u32>>,
    /// The peers each node dialled itself: its first successor's candidates.
    pub dialled: Vec<Vec<u32>>,
    /// The peers that dialled each node: its second successor's candidates.
    pub accepted: Vec<Vec<u32>>,
    pub spy: Vec<bool>,
}

impl Graph {
    /// The overlay every scenario uses (32 outgoing connections to reachable nodes),
    /// with a share `p` of spies. Spies are at their strongest: reachable (so honest
    /// nodes dial them), and each dials [`SPY_DIALS`] reachable nodes, so it is among
    /// the peers that dialled many honest nodes.
    pub fn new(n: usize, p: f64, seed: u64) -> Graph {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, 20, 0));
        let mut net = Net::new(n, NetConfig::default(), &mut rng);
        let mut spy_rng = StdRng::seed_from_u64(derive_seed(seed, 21, (p * 1000.0) as u64));
        let spy: Vec<bool> = (0..n).map(|_| spy_rng.gen_bool(p)).collect();
        for (v, _) in spy.iter().enumerate().filter(|(_, s)| **s) {
            net.set_reachable(v as u32, true);
        }
        let max_peers = swarmsite_protocol::policy::MAX_PEERS;
        let mut links = random_overlay(&net, max_peers, &mut rng);
        let reachable: Vec<u32> = (0..n as u32).filter(|&i| net.reachable(i)).collect();
        for (v, _) in spy.iter().enumerate().filter(|(_, s)| **s) {
            dial_reachable(&mut links, v as u32, SPY_DIALS, &reachable, &mut rng);
        }
        let peers = links
            .iter()
            .map(|l| l.iter().map(|x| x & !OUT).collect())
            .collect();
        let side = |out: bool| -> Vec<Vec<u32>> {
            (links.iter())
                .map(|l| {
                    (l.iter())
                        .filter(|x| (*x & OUT != 0) == out)
                        .map(|x| x & !OUT)
                        .collect()
                })
                .collect()
        };
        let (dialled, accepted) = (side(true), side(false));
        Graph {
            net,
            peers,
            dialled,
            accepted,
            spy,
        }
    }

    /// The peers `x`'s stem hops go to while they take them (`Stem::handle_timeout`):
    /// those it dialled, all when it dialled none.
    pub fn stem_peers(&self, x: u32) -> &[u32] {
        let d = &self.dialled[x as usize];
        if d.is_empty() {
            &self.peers[x as usize]
        } else {
            d
        }
    }

    /// How many peers compete with `w` for the successor slot of `x` that `w` can
    /// fill: `x`'s dialled peers when `x` dialled `w` (its first successor), else the
    /// peers that dialled `x` (its second).
    pub fn slot_size(&self, x: u32, w: u32) -> usize {
        let dialled = &self.dialled[x as usize];
        if dialled.contains(&w) {
            dialled.len()
        } else {
            self.accepted[x as usize].len()
        }
    }

    /// The fraction of the peers `v`'s stem hops may go to that spy.
    pub fn spy_share(&self, v: u32) -> f64 {
        let p = self.stem_peers(v);
        p.iter().filter(|x| self.spy[**x as usize]).count() as f64 / p.len().max(1) as f64
    }
}

/// What the spies saw of one upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The node a spy first got it from, and whether that was on the stem.
    pub first_from: Option<u32>,
    pub on_stem: bool,
    /// The node that fluffed it.
    pub fluffer: u32,
    /// Stem hops taken, and whether the fail-safe (not a relay's coin) fluffed it.
    pub hops: u32,
    pub failsafe: bool,
    /// When it was fluffed, ms after it was made (the originator's wait, each hop's
    /// delay and transfer).
    pub fluffed_at: Ms,
}

/// One upload from `origin`, alone on the network ([`uploads_together`]).
pub fn upload(g: &Graph, origin: u32, cfg: &StemConfig, seed: u64) -> Seen {
    uploads_together(g, &[origin], cfg, seed)[0].1
}

/// Each of `origins` makes one upload at time 0, and all of them travel at once
/// through one `Stem` per node, as on real nodes: the routes of an epoch carry every
/// upload that passes a node in it (with hop delays of hours and 10-minute epochs,
/// few do). A node that handed an upload on stops its fail-safe once the upload is
/// fluffed (it fetches the fluff copy). Then each upload's fluff runs until a spy
/// hears of it. Returns (originator, what the spies saw) per upload, by originator.
pub fn uploads_together(
    g: &Graph,
    origins: &[u32],
    cfg: &StemConfig,
    seed: u64,
) -> Vec<(u32, Seen)> {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 25, 0));
    let mut stems: FxHashMap<u32, Stem> = FxHashMap::default();
    let mut uploads: FxHashMap<UploadId, (u32, Seen, Vec<u32>)> = FxHashMap::default();
    let mut timers: BinaryHeap<Reverse<(Ms, u32)>> = BinaryHeap::new();
    for &v in origins {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&seed.to_be_bytes());
        id[8..12].copy_from_slice(&v.to_be_bytes());
        let sv = stems
            .entry(v)
            .or_insert_with(|| Stem::new(cfg.clone(), derive_seed(seed, 22, v as u64)));
        sv.originate(id, 0);
        if let Some(t) = sv.next_timeout() {
            timers.push(Reverse((t, v)));
        }
        let seen = Seen {
            first_from: None,
            on_stem: false,
            fluffer: v,
            hops: 0,
            failsafe: false,
            fluffed_at: 0,
        };
        uploads.insert(id, (v, seen, vec![v]));
    }
    let mut fluffed: Vec<(UploadId, u32, Ms, bool)> = Vec::new();
    let keys = |l: &[u32]| -> Vec<PeerKey> { l.iter().map(|p| *p as PeerKey).collect() };
    while let Some(Reverse((t, x))) = timers.pop() {
        let Some(sx) = stems.get_mut(&x).filter(|sx| sx.next_timeout() == Some(t)) else {
            continue; // superseded
        };
        let (dialled, accepted) = (keys(&g.dialled[x as usize]), keys(&g.accepted[x as usize]));
        sx.handle_timeout(t, &dialled, &accepted);
        let mut sends = Vec::new();
        while let Some(a) = sx.poll_action() {
            match a {
                StemAction::Send { id, to } => sends.push((id, to as u32)),
                StemAction::Fluff { id } => fluffed.push((id, x, t, true)),
            }
        }
        for (id, y) in sends {
            let up = g.net.upload_bps(x).min(g.net.download_bps(y));
            let at = t + g.net.rtt(x, y) + (CONTAINER * 1000.0 / up) as Ms;
            if let Some((_, seen, path)) = uploads.get_mut(&id) {
                seen.hops += 1;
                if g.spy[y as usize] && seen.first_from.is_none() {
                    seen.first_from = Some(x);
                    seen.on_stem = true;
                }
                path.push(y);
            }
            let sy = stems
                .entry(y)
                .or_insert_with(|| Stem::new(cfg.clone(), derive_seed(seed, 22, y as u64)));
            sy.received(id, x as PeerKey, at);
            while let Some(a) = sy.poll_action() {
                if let StemAction::Fluff { id } = a {
                    fluffed.push((id, y, at, false));
                }
            }
            if let Some(ty) = sy.next_timeout() {
                timers.push(Reverse((ty, y)));
            }
            if let Some(sx) = stems.get_mut(&x) {
                sx.sent(&id, at);
            }
        }
        // An upload in fluff: every node of its stem sees it there (it fetches the
        // fluff copy), so no fail-safe fires for it.
        for (id, w, at, failsafe) in fluffed.drain(..) {
            let Some((_, seen, path)) = uploads.get_mut(&id) else {
                continue;
            };
            if seen.fluffed_at == 0 {
                (seen.fluffer, seen.fluffed_at, seen.failsafe) = (w, at.max(1), failsafe);
                for &v in path.iter() {
                    if let Some(sv) = stems.get_mut(&v) {
                        sv.fluff_seen(&id);
                    }
                }
            }
        }
        if let Some(tx) = stems.get(&x).and_then(Stem::next_timeout) {
            timers.push(Reverse((tx, x)));
        }
    }
    let mut out: Vec<(u32, Seen)> = uploads.into_values().map(|(v, s, _)| (v, s)).collect();
    out.sort_unstable_by_key(|(v, _)| *v);
    for (_, s) in out.iter_mut() {
        if s.first_from.is_none() {
            s.first_from = first_spy_in_fluff(g, s.fluffer, &mut rng);
        }
    }
    out
}

/// Fluff: `w` sends `up` to 8 random peers; each fetches the container from whoever
/// told it, then does the same. Returns who told the first spy.
fn first_spy_in_fluff(g: &Graph, w: u32, rng: &mut StdRng) -> Option<u32> {
    let mut heap: BinaryHeap<Reverse<(Ms, u32, u32)>> = BinaryHeap::new();
    let mut has: FxHashMap<u32, ()> = FxHashMap::default();
    has.insert(w, ());
    let tell = |x: u32, t: Ms, heap: &mut BinaryHeap<Reverse<(Ms, u32, u32)>>, rng: &mut StdRng| {
        let peers = &g.peers[x as usize];
        for &y in peers.choose_multiple(rng, fluff_fanout()) {
            heap.push(Reverse((t + g.net.base_delay(x, y), y, x)));
        }
    };
    tell(w, 0, &mut heap, rng);
    let mut steps = 0;
    while let Some(Reverse((t, y, from))) = heap.pop() {
        if g.spy[y as usize] {
            return Some(from);
        }
        steps += 1;
        if has.insert(y, ()).is_some() || steps > 100_000 {
            continue;
        }
        let fetch = (CONTAINER * 1000.0 / g.net.upload_bps(from).min(g.net.download_bps(y))) as Ms;
        tell(y, t + fetch, &mut heap, rng);
    }
    None
}

/// The best estimator's guess when no spy was on the stem: the honest peer of the
/// fluffing node most likely to have handed it on, the one with the fewest candidates
/// for the successor slot the fluffing node can fill there (its dialled peers if it
/// dialled the fluffing node — the first successor, which its own uploads take —, else
/// the peers that dialled it).
fn best_guess(g: &Graph, w: u32) -> Option<u32> {
    g.peers[w as usize]
        .iter()
        .copied()
        .filter(|x| !g.spy[*x as usize])
        .min_by_key(|x| (g.slot_size(*x, w), *x))
}

/// Precision and recall of an estimate per originator (the Dandelion++ definitions).
pub fn precision_recall(n: usize, guesses: &[(u32, Option<u32>)]) -> (f64, f64) {
    let mut named = vec![0u32; n];
    for (_, g) in guesses {
        if let Some(g) = g {
            named[*g as usize] += 1;
        }
    }
    let honest = guesses.len().max(1) as f64;
    let hits: Vec<u32> = guesses
        .iter()
        .filter(|(v, g)| *g == Some(*v))
        .map(|(v, _)| *v)
        .collect();
    let recall = hits.len() as f64 / honest;
    let precision = hits
        .iter()
        .map(|v| 1.0 / named[*v as usize] as f64)
        .sum::<f64>()
        / honest;
    (precision, recall)
}

/// One (p, q) cell.
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub p: f64,
    pub q: f64,
    pub first_spy: (f64, f64),
    /// First spy when one epoch spans the whole run (routes shared by every upload).
    pub one_epoch: (f64, f64),
    pub best: (f64, f64),
    pub dandelion: (f64, f64),
    /// Mean stem hops, and uploads the fail-safe fluffed.
    pub hops: f64,
    pub failsafe: usize,
    /// Made → fluffed, hours: median and 99th percentile.
    pub fluff_hours: (f64, f64),
}

/// Every honest node of `g` uploads once with stem probability `q`.
pub fn cell(g: &Graph, p: f64, q: f64, seed: u64) -> Cell {
    let cfg = StemConfig {
        relay_probability: q,
        ..StemConfig::default()
    };
    let n = g.peers.len();
    let mut first = Vec::new();
    let mut best = Vec::new();
    let (mut hops, mut failsafe) = (0u64, 0);
    let mut fluffed_at = Vec::new();
    let origins: Vec<u32> = (0..n as u32).filter(|v| !g.spy[*v as usize]).collect();
    for (v, s) in uploads_together(g, &origins, &cfg, derive_seed(seed, 23, 0)) {
        hops += s.hops as u64;
        failsafe += s.failsafe as usize;
        fluffed_at.push(s.fluffed_at);
        first.push((v, s.first_from));
        let guess = if s.on_stem {
            s.first_from
        } else {
            best_guess(g, s.fluffer)
        };
        best.push((v, guess));
    }
    let honest = first.len().max(1);
    // The same with one epoch for the whole run: every upload shares each node's routes.
    let one_epoch = StemConfig {
        epoch_ms: u64::MAX / 4,
        ..cfg.clone()
    };
    let shared: Vec<(u32, Option<u32>)> =
        uploads_together(g, &origins, &one_epoch, derive_seed(seed, 23, 0))
            .into_iter()
            .map(|(v, s)| (v, s.first_from))
            .collect();
    Cell {
        p,
        q,
        first_spy: precision_recall(n, &first),
        one_epoch: precision_recall(n, &shared),
        best: precision_recall(n, &best),
        dandelion: dandelion_pp(g, q, seed),
        hops: hops as f64 / honest as f64,
        failsafe,
        fluff_hours: {
            fluffed_at.sort_unstable();
            let at = |q: f64| {
                let i = ((fluffed_at.len() as f64 * q) as usize).min(fluffed_at.len().max(1) - 1);
                fluffed_at.get(i).map_or(0.0, |t| *t as f64 / 3_600_000.0)
            };
            (at(0.5), at(0.99))
        },
    }
}

/// Dandelion++ as its paper designs it, on the same network, nodes and spies: all
/// transactions in one epoch; each node keeps 2 outbound stem edges among the peers it
/// dialled; per epoch each node is a relay with probability `q` or a diffuser; a relay
/// routes one-to-one (its inbound edges take its two outbound edges in turn, its own
/// transactions the first one's); a diffuser spreads with Bitcoin diffusion to all its
/// peers. First-spy estimator.
pub fn dandelion_pp(g: &Graph, q: f64, seed: u64) -> (f64, f64) {
    let n = g.peers.len();
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 24, (q * 1000.0) as u64));
    // Two outbound stem edges per node, among the peers it dialled (the same network
    // as ours: only reachable nodes can be dialled).
    let out: Vec<[u32; 2]> = (0..n as u32)
        .map(|v| {
            let pool = g.stem_peers(v);
            match pool
                .choose_multiple(&mut rng, 2)
                .copied()
                .collect::<Vec<u32>>()[..]
            {
                [a, b] => [a, b],
                [a] => [a, a],
                _ => [v, v],
            }
        })
        .collect();
    let relay: Vec<bool> = (0..n).map(|_| rng.gen_bool(q)).collect();
    let own: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
    // One-to-one routing: each node's inbound edges, in a random order, take its two
    // outbound edges in turn, own transactions taking the first turn's edge, so two
    // inbound edges share an outbound one only when there are more than two.
    let mut inbound: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (v, o) in out.iter().enumerate() {
        for &u in o {
            inbound[u as usize].push(v as u32);
        }
    }
    for list in inbound.iter_mut() {
        list.shuffle(&mut rng);
    }
    let route = |from: u32, v: u32| -> u32 {
        let i = inbound[v as usize]
            .iter()
            .position(|u| *u == from)
            .unwrap_or(0);
        out[v as usize][(i + own[v as usize] as usize) % 2]
    };
    let mut guesses = Vec::new();
    for v in 0..n as u32 {
        if g.spy[v as usize] {
            continue;
        }
        let (mut prev, mut at) = (v, out[v as usize][own[v as usize] as usize]);
        let mut seen_from = None;
        let mut steps = 0;
        loop {
            if g.spy[at as usize] {
                seen_from = Some(prev);
                break;
            }
            steps += 1;
            if !relay[at as usize] || steps > 64 {
                break;
            }
            let next = route(prev, at);
            (prev, at) = (at, next);
        }
        if seen_from.is_none() {
            seen_from = diffusion_first_spy(&g.peers, &g.spy, at, &mut rng);
        }
        guesses.push((v, seen_from));
    }
    precision_recall(n, &guesses)
}

/// Bitcoin diffusion from `w`: each node passes it to each neighbour after an
/// independent exponential delay. Returns who told the first spy.
fn diffusion_first_spy(nbrs: &[Vec<u32>], spy: &[bool], w: u32, rng: &mut StdRng) -> Option<u32> {
    let mut heap: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
    let mut done: FxHashMap<u32, ()> = FxHashMap::default();
    let push =
        |x: u32, t: u64, heap: &mut BinaryHeap<Reverse<(u64, u32, u32)>>, rng: &mut StdRng| {
            for &y in &nbrs[x as usize] {
                let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                heap.push(Reverse((t + (-u.ln() * 1e6) as u64, y, x)));
            }
        };
    done.insert(w, ());
    push(w, 0, &mut heap, rng);
    while let Some(Reverse((t, y, from))) = heap.pop() {
        if spy[y as usize] {
            return Some(from);
        }
        if done.insert(y, ()).is_none() && done.len() < 100_000 {
            push(y, t, &mut heap, rng);
        }
    }
    None
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let mut t = Table::new(
        "Source anonymity: naming the originator of an upload",
        &ctx.command("anonymity"),
        &[
            "spies p",
            "stem q",
            "first spy: precision / recall",
            "same, one epoch for all",
            "best: precision / recall",
            "Dandelion++ setting, first spy",
            "bounds p² / p",
            "stem hops",
            "made → fluffed, h: median / 99 %",
        ],
    );
    let mut cells = Vec::new();
    for p in SPY_SHARES {
        let g = Graph::new(ctx.nodes, p, ctx.seed);
        for q in STEM_PROBABILITIES {
            let c = cell(&g, p, q, ctx.seed);
            let pr = |(a, b): (f64, f64)| format!("{a:.3} / {b:.3}");
            t.row(vec![
                format!("{p}"),
                format!("{q}"),
                pr(c.first_spy),
                pr(c.one_epoch),
                pr(c.best),
                pr(c.dandelion),
                format!("{:.4} / {p}", p * p),
                format!("{:.1}", c.hops),
                format!("{:.1} / {:.1}", c.fluff_hours.0, c.fluff_hours.1),
            ]);
            cells.push(c);
        }
    }
    t.note(format!(
        "{} nodes, every honest one originating one upload, all made at once and carried \
         together through one `Stem` per node (the project's own): per 10-minute epoch two \
         successors, the first among the 32 peers a node dialled (reachable nodes; 40 % of \
         nodes are behind NAT) for its own uploads, the second among the peers that \
         dialled it; predecessors mapped one-to-one; the default delays (the originator's \
         wait of 0–24 h, 0–2 h per hop, a 4 MiB container's transfer). \"One epoch for \
         all\": the same with routes kept for the whole run. Spies are reachable and each \
         dials {SPY_DIALS} nodes. Dandelion++ setting: on the same nodes, peers and spies, \
         2 outbound stem edges per node among those it dialled, one-to-one routing, \
         every transaction in one epoch, diffusion to all peers.",
        ctx.nodes
    ));
    let mut md = t.markdown();
    if ctx.plots {
        for (what, file, pick, bound) in [
            (
                "precision",
                "anonymity-precision.png",
                (|c: &Cell| c.first_spy.0) as fn(&Cell) -> f64,
                (|p: f64| p * p) as fn(f64) -> f64,
            ),
            (
                "recall",
                "anonymity-recall.png",
                |c: &Cell| c.first_spy.1,
                |p: f64| p,
            ),
        ] {
            let mut series: Vec<Series> = STEM_PROBABILITIES
                .iter()
                .map(|q| Series {
                    label: format!("first spy, q = {q}"),
                    points: cells
                        .iter()
                        .filter(|c| c.q == *q)
                        .map(|c| (c.p, pick(c)))
                        .collect(),
                })
                .collect();
            series.push(Series {
                label: "Dandelion++ setting, q = 0.8".into(),
                points: cells
                    .iter()
                    .filter(|c| c.q == 0.8)
                    .map(|c| {
                        (
                            c.p,
                            if what == "precision" {
                                c.dandelion.0
                            } else {
                                c.dandelion.1
                            },
                        )
                    })
                    .collect(),
            });
            series.push(Series {
                label: format!(
                    "lower bound ({})",
                    if what == "precision" { "p²" } else { "p" }
                ),
                points: SPY_SHARES.iter().map(|p| (*p, bound(*p))).collect(),
            });
            let title = format!("First-spy {what} of naming an upload's originator");
            md += &ctx.figure(
                file,
                &Plot {
                    title: &title,
                    x_label: "share of spies p",
                    y_label: what,
                    log_x: false,
                    log_y: false,
                },
                &series,
            )?;
        }
    }
    Ok(md)
}
