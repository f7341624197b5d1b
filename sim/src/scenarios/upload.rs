//! Upload spread after fluff (SPEC §7): every node runs the project's own fluff machine
//! (`upload::fluff::Fluff`, the code a node's uploads core runs), and this module is its
//! driver, the way `node::core::uploads` is in a real node: it carries `up` messages
//! over the virtual network and stands in for BitTorrent. How long until 99 % of the
//! nodes hold an upload?
//!
//! The fluffing node seeds the container and tells up to 8 peers; each fetches it,
//! seeds it and tells up to 8 peers that did not announce it to it; while it seeds,
//! further tellings reach the peers not yet told. BitTorrent is modelled: a fetch
//! takes a slot of every wire peer seeding the upload (a seeder gives a downloader
//! about a quarter of its upload: four unchoke slots), up to the node's own download,
//! taken again every minute.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarmsite_protocol::gossip::PeerKey;
use swarmsite_protocol::upload::InfoHash;
use swarmsite_protocol::upload::fluff::{Fluff, FluffAction, FluffConfig, Phase};

use super::Ctx;
use crate::engine::{Ms, Queue, derive_seed};
use crate::net::{Net, NetConfig};
use crate::report::{Plot, Series, Table};
use crate::stats::{self, fmt_opt};
use crate::world::{OUT, random_overlay};

/// Share of a seeder's upload one downloader gets (four unchoke slots).
pub const SLOT_SHARE: f64 = 0.25;
/// How often a fetch's rate is taken again.
const REPLAN: Ms = 60_000;
/// The upload every run spreads.
pub const IH: InfoHash = [0x5f; 20];

pub const SIZES: [(u64, &str); 3] = [
    (1 << 20, "1 MiB"),
    (16 << 20, "16 MiB"),
    (256 << 20, "256 MiB"),
];
pub const SHARES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 1.0];

/// What happens next: an `up` from `arg` arrives, a fetch ends, a node's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    Up,
    Fetched,
    Timer,
}

/// One upload spreading over an overlay whose every node runs a [`Fluff`] machine.
pub struct Spread<'a> {
    net: &'a Net,
    links: &'a [Vec<u32>],
    size: u64,
    nodes: Vec<Fluff>,
    /// (what, node, other node: the announcer or the fetch's source).
    queue: Queue<(Ev, u32, u32)>,
    timer_at: Vec<Ms>,
    /// Bytes of its fetch each node has still to get.
    left: Vec<u64>,
    rng: StdRng,
    /// When each node held the upload whole (`Ms::MAX`: never).
    pub held: Vec<Ms>,
    /// The node's stem duty ended on hearing of it in fluff.
    pub stem_over: Vec<bool>,
    /// `up` messages sent.
    pub ups: u64,
}

impl<'a> Spread<'a> {
    pub fn new(
        net: &'a Net,
        links: &'a [Vec<u32>],
        size: u64,
        cfg: &FluffConfig,
        seed: u64,
    ) -> Self {
        let n = links.len();
        Spread {
            net,
            links,
            size,
            nodes: (0..n)
                .map(|i| Fluff::new(cfg.clone(), derive_seed(seed, 32, i as u64)))
                .collect(),
            queue: Queue::new(0),
            timer_at: vec![Ms::MAX; n],
            left: vec![0; n],
            rng: StdRng::seed_from_u64(derive_seed(seed, 33, 0)),
            held: vec![Ms::MAX; n],
            stem_over: vec![false; n],
            ups: 0,
        }
    }

    fn peers(&self, x: u32) -> Vec<PeerKey> {
        self.links[x as usize]
            .iter()
            .map(|l| (l & !OUT) as PeerKey)
            .collect()
    }

    /// `x` holds a stem copy (its stem has not ended).
    pub fn stem_copy(&mut self, x: u32, t: Ms) {
        self.nodes[x as usize].stem_copy(IH, t);
    }

    /// `x` switches its stem copy to fluff at `t` and seeds it.
    pub fn fluff(&mut self, x: u32, t: Ms) {
        self.held[x as usize] = t;
        self.nodes[x as usize].fluffed(IH, t);
        let peers = self.peers(x);
        self.nodes[x as usize].seeded(IH, t, &peers);
        self.drain(x, t);
    }

    pub fn phase(&self, x: u32) -> Option<Phase> {
        self.nodes[x as usize].phase(&IH)
    }

    /// The peers that announced the upload to `x`.
    pub fn announcers(&self, x: u32) -> Vec<u32> {
        let mut v: Vec<u32> = self.nodes[x as usize]
            .announcers(&IH)
            .iter()
            .map(|p| *p as u32)
            .collect();
        v.sort_unstable();
        v
    }

    /// Schedules the next step of `x`'s fetch from `t`. librqbit fetches from every
    /// wire peer's BitTorrent port: each peer seeding the upload gives a slot (at least
    /// the announcer's), up to `x`'s download; the rate is taken again every minute, as
    /// more peers come to seed it.
    fn plan_fetch(&mut self, x: u32, from: u32, t: Ms) {
        let swarm: f64 = self.links[x as usize]
            .iter()
            .map(|l| l & !OUT)
            .filter(|p| self.held[*p as usize] <= t)
            .map(|p| self.net.upload_bps(p) * SLOT_SHARE)
            .sum();
        let rate = swarm
            .max(self.net.upload_bps(from) * SLOT_SHARE)
            .min(self.net.download_bps(x));
        let left = self.left[x as usize];
        let need = (left as f64 * 1000.0 / rate).ceil() as Ms;
        let step = if need <= REPLAN {
            self.left[x as usize] = 0;
            need
        } else {
            self.left[x as usize] = left - (rate * REPLAN as f64 / 1000.0) as u64;
            REPLAN
        };
        self.queue.at(t + step, (Ev::Fetched, x, from));
    }

    /// Runs `x`'s actions: `up` goes over the network, a fetch takes the time the
    /// announcer's upload slot and `x`'s download allow.
    fn drain(&mut self, x: u32, t: Ms) {
        while let Some(a) = self.nodes[x as usize].poll_action() {
            match a {
                FluffAction::Tell { to, .. } => {
                    let y = to as u32;
                    self.ups += 1;
                    let at = t + self.net.delay(x, y, &mut self.rng);
                    self.queue.at(at, (Ev::Up, y, x));
                }
                FluffAction::Fetch { from, .. } => {
                    let from = from.map_or(x, |p| p as u32);
                    self.left[x as usize] = self.size;
                    // Metadata, handshakes: two round trips first.
                    self.plan_fetch(x, from, t + self.net.rtt(from, x) * 2);
                }
                FluffAction::StemOver { .. } => self.stem_over[x as usize] = true,
                // Every simulated container is a good one and fits.
                FluffAction::Drop { .. } | FluffAction::Bad { .. } => {}
            }
        }
        if let Some(next) = self.nodes[x as usize].next_timeout()
            && next < self.timer_at[x as usize]
        {
            self.timer_at[x as usize] = next;
            self.queue.at(next, (Ev::Timer, x, 0));
        }
    }

    /// Runs until nothing is left to do or `until` (ms).
    pub fn run(&mut self, until: Ms) {
        while let Some((ev, x, arg)) = self.queue.pop_until(until) {
            let t = self.queue.now();
            let node = &mut self.nodes[x as usize];
            match ev {
                Ev::Up => node.up(IH, arg as PeerKey, t),
                Ev::Fetched => {
                    if self.left[x as usize] > 0 {
                        self.plan_fetch(x, arg, t);
                        continue;
                    }
                    if !node.metadata(&IH) {
                        continue;
                    }
                    self.held[x as usize] = t;
                    let peers = self.peers(x);
                    self.nodes[x as usize].fetched(IH, t, &peers);
                }
                Ev::Timer => {
                    if self.timer_at[x as usize] != t {
                        continue; // superseded
                    }
                    self.timer_at[x as usize] = Ms::MAX;
                    let peers = self.peers(x);
                    self.nodes[x as usize].handle_timeout(t, &peers);
                }
            }
            self.drain(x, t);
        }
    }
}

/// The fluff settings a node runs with; `retell: false` keeps only the first telling
/// (the rule before the further tellings).
pub fn fluff_config(retell: bool) -> FluffConfig {
    FluffConfig {
        retell,
        ..FluffConfig::default()
    }
}

/// What one run gives.
pub struct Outcome {
    /// When each node held the upload (`Ms::MAX`: never).
    pub held: Vec<Ms>,
    pub ups: u64,
}

/// When each node of an `n`-node overlay holds an upload of `size` bytes fluffed by a
/// random node at time 0.
pub fn spread(n: usize, size: u64, seed: u64, retell: bool) -> Outcome {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 30, 0));
    let net = Net::new(n, NetConfig::default(), &mut rng);
    let links = random_overlay(&net, swarmsite_protocol::policy::MAX_PEERS, &mut rng);
    let w = StdRng::seed_from_u64(derive_seed(seed, 31, size)).gen_range(0..n as u32);
    let mut s = Spread::new(
        &net,
        &links,
        size,
        &fluff_config(retell),
        derive_seed(seed, 31, size),
    );
    s.stem_copy(w, 0);
    s.fluff(w, 0);
    s.run(Ms::MAX);
    Outcome {
        held: s.held,
        ups: s.ups,
    }
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let mut t = Table::new(
        "Upload spread after fluff",
        &ctx.command("upload"),
        &[
            "N",
            "container",
            "tellings",
            "50 %",
            "90 %",
            "99 %",
            "99.9 %",
            "100 %",
            "never reached",
            "`up` per node",
        ],
    );
    let mut series = Vec::new();
    let runs = SIZES
        .iter()
        .map(|(size, label)| (*size, *label, true))
        .chain(std::iter::once((16 << 20, "16 MiB", false)));
    for (size, label, retell) in runs {
        let out = spread(ctx.nodes, size, ctx.seed, retell);
        let held = &out.held;
        let times = stats::times_to(held, ctx.nodes, &SHARES, 0);
        let missed = held.iter().filter(|t| **t == Ms::MAX).count();
        t.row(vec![
            ctx.nodes.to_string(),
            label.into(),
            if retell { "all" } else { "first only" }.into(),
            fmt_opt(times[0]),
            fmt_opt(times[1]),
            fmt_opt(times[2]),
            fmt_opt(times[3]),
            fmt_opt(times[4]),
            format!(
                "{missed} ({:.2} %)",
                100.0 * missed as f64 / ctx.nodes as f64
            ),
            format!("{:.1}", out.ups as f64 / ctx.nodes as f64),
        ]);
        series.push(Series {
            label: if retell {
                label.into()
            } else {
                format!("{label}, first telling only")
            },
            points: stats::curve(held, ctx.nodes, 0, 200)
                .into_iter()
                .map(|(t, s)| (t / 1000.0, s))
                .collect(),
        });
    }
    t.note(
        "From the fluffing node's first `up` to the share of all nodes holding the \
         container, every node running the node's own fluff machine with its defaults: \
         8 peers told at each telling, a further telling 10 to 30 s later while untold \
         peers remain (\"first only\": without them, the rule before). A fetch takes \
         a quarter of the upload of every peer seeding it (at least of the one that \
         told), up to the node's own download, taken again every minute; connection classes from 1 to 500 Mbit/s up. Behind NAT \
         (40 % of the nodes) a node has about 32 peers, a reachable one about 85: a \
         single telling of 8 reaches a NAT node about 3 times on average and misses \
         about one in twenty of them.",
    );
    let mut md = t.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "upload.png",
            &Plot {
                title: "Share of nodes holding an upload after fluff",
                x_label: "seconds after fluff (log scale)",
                y_label: "share of nodes",
                log_x: true,
                log_y: false,
            },
            &series,
        )?;
    }
    Ok(md)
}
