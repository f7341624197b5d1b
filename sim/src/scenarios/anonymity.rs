//! Source anonymity of uploads. Every honest node originates one upload; each hop of its
//! stem is the project's own `upload::stem::Stem` (after a random delay, to one of two
//! successors among the peers the node dialled, relay with probability q, never
//! straight back, the fail-safe); the node that
//! fluffs announces it with `up` to 8 peers, who fetch it and pass it on. A fraction p
//! of the nodes are colluding spies that follow the protocol and note who handed them
//! what. Two estimators name an originator for each upload:
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
//! precision ≥ p². The paper's own setting (an about-4-regular graph, one-to-one
//! routing, Bitcoin diffusion) is re-run here on the same nodes for comparison.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use swarmsite_protocol::gossip::PeerKey;
use swarmsite_protocol::upload::stem::{Stem, StemAction, StemConfig};

use super::Ctx;
use crate::engine::{Ms, derive_seed};
use crate::net::{Net, NetConfig};
use crate::report::{Plot, Series, Table};
use crate::world::{OUT, random_overlay};

pub const SPY_SHARES: [f64; 4] = [0.05, 0.1, 0.2, 0.3];
pub const STEM_PROBABILITIES: [f64; 4] = [0.0, 0.5, 0.8, 0.9];

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
    /// The peers each node dialled itself: where its stem hops go.
    pub dialled: Vec<Vec<u32>>,
    pub spy: Vec<bool>,
}

impl Graph {
    /// The overlay every scenario uses (32 outgoing connections to reachable nodes),
    /// with a share `p` of spies.
    pub fn new(n: usize, p: f64, seed: u64) -> Graph {
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, 20, 0));
        let net = Net::new(n, NetConfig::default(), &mut rng);
        let links = random_overlay(&net, swarmsite_protocol::policy::MAX_PEERS, &mut rng);
        let peers = links
            .iter()
            .map(|l| l.iter().map(|x| x & !OUT).collect())
            .collect();
        let dialled = links
            .iter()
            .map(|l| {
                l.iter()
                    .filter(|x| *x & OUT != 0)
                    .map(|x| x & !OUT)
                    .collect()
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, 21, (p * 1000.0) as u64));
        let spy = (0..n).map(|_| rng.gen_bool(p)).collect();
        Graph {
            net,
            peers,
            dialled,
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

/// Runs the stem of an upload from `origin` with the project's `Stem` at every hop,
/// then its fluff until a spy hears of it.
pub fn upload(g: &Graph, origin: u32, cfg: &StemConfig, seed: u64) -> Seen {
    let id = {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&seed.to_be_bytes());
        id[8..12].copy_from_slice(&origin.to_be_bytes());
        id
    };
    let mut stems: FxHashMap<u32, Stem> = FxHashMap::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut timers: BinaryHeap<Reverse<(Ms, u32)>> = BinaryHeap::new();
    let mut seen = Seen {
        first_from: None,
        on_stem: false,
        fluffer: origin,
        hops: 0,
        failsafe: false,
        fluffed_at: 0,
    };
    stems
        .entry(origin)
        .or_insert_with(|| Stem::new(cfg.clone(), derive_seed(seed, 22, origin as u64)))
        .originate(id, 0);
    if let Some(t) = stems[&origin].next_timeout() {
        timers.push(Reverse((t, origin)));
    }
    let fluffer = 'stem: loop {
        let Some(Reverse((t, x))) = timers.pop() else {
            // Nothing pending: cannot happen (the fail-safe always fires).
            break 'stem origin;
        };
        let peers: Vec<PeerKey> = g.dialled[x as usize]
            .iter()
            .map(|p| *p as PeerKey)
            .collect();
        let accepted: Vec<PeerKey> = g.peers[x as usize]
            .iter()
            .filter(|p| !g.dialled[x as usize].contains(p))
            .map(|p| *p as PeerKey)
            .collect();
        let sx = stems.get_mut(&x).expect("a timer belongs to a stem");
        if sx.next_timeout() != Some(t) {
            continue; // superseded
        }
        sx.handle_timeout(t, &peers, &accepted);
        let mut sends = Vec::new();
        while let Some(a) = sx.poll_action() {
            match a {
                StemAction::Send { to, .. } => sends.push(to as u32),
                StemAction::Fluff { .. } => {
                    seen.failsafe = true;
                    seen.fluffed_at = t;
                    break 'stem x;
                }
            }
        }
        for y in sends {
            seen.hops += 1;
            let up = g.net.upload_bps(x).min(g.net.download_bps(y));
            let at = t + g.net.rtt(x, y) + (CONTAINER * 1000.0 / up) as Ms;
            if g.spy[y as usize] && seen.first_from.is_none() {
                seen.first_from = Some(x);
                seen.on_stem = true;
            }
            let sy = stems
                .entry(y)
                .or_insert_with(|| Stem::new(cfg.clone(), derive_seed(seed, 22, y as u64)));
            // A node that has it already keeps its one copy; the hop still counts as
            // delivered (the driver acknowledges it), so the sender lets go.
            sy.received(id, x as PeerKey, at);
            let mut fluff = false;
            while let Some(a) = sy.poll_action() {
                if matches!(a, StemAction::Fluff { .. }) {
                    fluff = true;
                }
            }
            if let Some(ty) = sy.next_timeout() {
                timers.push(Reverse((ty, y)));
            }
            stems.get_mut(&x).expect("sender").sent(&id, at);
            if fluff {
                seen.fluffed_at = at;
                break 'stem y;
            }
        }
        if let Some(tx) = stems[&x].next_timeout() {
            timers.push(Reverse((tx, x)));
        }
    };
    seen.fluffer = fluffer;
    if seen.first_from.is_none() {
        seen.first_from = first_spy_in_fluff(g, fluffer, &mut rng);
    }
    seen
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
/// fluffing node that could have handed it on (whose stem peers include it) with the
/// fewest stem peers (most likely to have picked it).
fn best_guess(g: &Graph, w: u32) -> Option<u32> {
    g.peers[w as usize]
        .iter()
        .copied()
        .filter(|x| !g.spy[*x as usize] && g.stem_peers(*x).contains(&w))
        .min_by_key(|x| (g.stem_peers(*x).len(), *x))
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
    for v in 0..n as u32 {
        if g.spy[v as usize] {
            continue;
        }
        let s = upload(g, v, &cfg, derive_seed(seed, 23, v as u64));
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
    Cell {
        p,
        q,
        first_spy: precision_recall(n, &first),
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

/// The Dandelion++ paper's setting on the same nodes and spies: each node has 2
/// outbound edges to random nodes (an about-4-regular graph); per epoch each node is a
/// relay with probability `q` or a diffuser; a relay routes one-to-one (each inbound
/// edge to a fixed outbound edge, its own transactions to a fixed one); a diffuser
/// fluffs with Bitcoin diffusion to all its neighbours. First-spy estimator.
pub fn dandelion_pp(g: &Graph, q: f64, seed: u64) -> (f64, f64) {
    let n = g.peers.len();
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 24, (q * 1000.0) as u64));
    let out: Vec<[u32; 2]> = (0..n as u32)
        .map(|v| {
            let a = loop {
                let a = rng.gen_range(0..n as u32);
                if a != v {
                    break a;
                }
            };
            let b = loop {
                let b = rng.gen_range(0..n as u32);
                if b != v && b != a {
                    break b;
                }
            };
            [a, b]
        })
        .collect();
    let mut nbrs: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (v, o) in out.iter().enumerate() {
        for &u in o {
            nbrs[v].push(u);
            nbrs[u as usize].push(v as u32);
        }
    }
    let relay: Vec<bool> = (0..n).map(|_| rng.gen_bool(q)).collect();
    let own: Vec<u8> = (0..n).map(|_| rng.gen_range(0..2)).collect();
    // One-to-one routing: inbound edge (from → v) leaves on a fixed outbound edge.
    let route = |from: u32, v: u32| -> u32 {
        let h = derive_seed(seed, from as u64, v as u64);
        out[v as usize][(h & 1) as usize]
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
            seen_from = diffusion_first_spy(&nbrs, &g.spy, at, &mut rng);
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
        "{} nodes, every honest one originating one upload. Our stem, the project's own \
         `Stem`: each hop to one of two successors drawn among the 32 peers a node dialled \
         (reachable nodes; ~64 peers in all, 40 % of nodes behind NAT), one route per \
         predecessor, the default delays (the originator's wait of 0–24 h, 0–2 h per hop, a \
         4 MiB container's transfer). Dandelion++ setting: 2 random outbound edges per node, \
         one-to-one routing, diffusion, the same spies.",
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
