//! A simulated network: every node runs the project's own sans-IO state machines —
//! `gossip::Gossip` (propagation), `hints::Hints` (evidence hints) and
//! `blacklist::Enforcement` (the blacklist in force, auto-blacklisting) — and this
//! module is their driver, the way `node::core` is in a real node: it turns their
//! actions into timed messages over the virtual network, DHT lookups, dials, re-checks
//! and signed blacklist versions, and feeds them events and the virtual clock.
//!
//! Where the node's driver decides something itself (dial only while fewer than
//! `max_peers` outgoing connections are up, relay a hint to every peer but the sender
//! and the accused, refuse a listed address), this driver decides it the same way; the
//! comments name the place in `node::core` each rule mirrors.

use std::net::IpAddr;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;
use swarmsite_protocol::blacklist::Enforcement;
use swarmsite_protocol::gossip::{Acceptor, Action, Gossip, GossipConfig, PeerKey};
use swarmsite_protocol::hints::{HintAction, Hints, HintsConfig};
use swarmsite_protocol::name::{ObjectClass, SystemName, file_id, kind};
use swarmsite_protocol::policy;
use swarmsite_protocol::record::Record;
use swarmsite_protocol::trust::Refusal;
use swarmsite_protocol::wire::{Hint, Message, WireConfig};

use crate::dht::DhtConfig;
use crate::engine::{Ms, Queue, T0, derive_seed};
use crate::net::{Net, NetConfig};
use crate::records::{RecId, Records, SITE, SharedRecords, SimAcceptor};

/// How a run is set up. [`WorldConfig::node_defaults`] takes every protocol setting
/// from the node's own defaults.
#[derive(Clone, Debug)]
pub struct WorldConfig {
    pub nodes: usize,
    pub seed: u64,
    pub net: NetConfig,
    pub dht: DhtConfig,
    pub gossip: GossipConfig,
    pub hints: HintsConfig,
    /// Outgoing wire connections a node keeps (`NodeConfig::max_peers`).
    pub max_peers: usize,
    /// Incoming wire connections a node takes, in all and from one address.
    pub max_inbound: usize,
    pub max_inbound_per_ip: usize,
    /// Auto-blacklisting: evidence entries before listing, batch period.
    pub auto_threshold: u32,
    pub auto_interval: Ms,
    /// Connect timeout of a dial that gets no answer, and the idle timeout after which a
    /// connection that hears nothing closes (`wire_io::dial`, `WireConfig`).
    pub dial_timeout: Ms,
    pub idle_timeout: Ms,
    /// How long an auditor's re-check waits for an accused peer that does not answer
    /// (`node::core::audit`).
    pub recheck_limit: Ms,
    /// Run the rendezvous round of every node (DHT refresh, finding and dialling peers
    /// while outgoing slots are free); off for runs where the overlay does not change.
    pub rounds: bool,
}

impl WorldConfig {
    /// A run of `nodes` nodes with the node's defaults for every protocol setting.
    pub fn node_defaults(nodes: usize, seed: u64, records: &Records) -> Self {
        let site = policy::default_site(records.bundle());
        let mut gossip = GossipConfig::new(records.tag(), &[site]);
        gossip.accept_push = policy::ACCEPT_PUSH;
        gossip.pull_interval_ms = policy::PULL_INTERVAL_MS;
        let wire = WireConfig::new([0; 20], [0; 20], None);
        WorldConfig {
            nodes,
            seed,
            net: NetConfig::default(),
            dht: DhtConfig::default(),
            gossip,
            hints: HintsConfig::default(),
            max_peers: policy::MAX_PEERS,
            max_inbound: policy::MAX_INBOUND,
            max_inbound_per_ip: policy::MAX_INBOUND_PER_IP,
            auto_threshold: policy::AUTO_BLACKLIST_THRESHOLD,
            auto_interval: policy::AUTO_BLACKLIST_INTERVAL_MS,
            dial_timeout: policy::DIAL_TIMEOUT_MS,
            idle_timeout: wire.idle_timeout_ms,
            recheck_limit: policy::RECHECK_LIMIT_MS,
            rounds: true,
        }
    }

    /// Follow only the site's releases and the blacklist. Pull rounds ask for every
    /// tracked slot separately, and slots nothing is published under change nothing but
    /// the message count; runs that measure propagation drop them to save time (the
    /// load scenario keeps them all).
    pub fn track_site_and_blacklist(&mut self) {
        self.gossip.tracked = vec![
            (kind::SITE_RELEASE, SITE),
            (kind::AUTHORIZED_FILE, file_id::BLACKLIST),
        ];
    }
}

/// A virtual node: the state machines a real node's core owns.
pub struct Node {
    pub gossip: Gossip<SimAcceptor>,
    pub hints: Hints,
    pub blacklist: Enforcement,
}

/// A wire message in flight, with records, names and hints by index (a million nodes
/// share them).
#[derive(Clone, Copy, Debug)]
enum Msg {
    Get(u32),
    Rec(u32, Option<RecId>),
    Have(u32),
    Push(RecId),
    Hint(u32),
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Deliver {
        to: u32,
        from: u32,
        msg: Msg,
    },
    /// The node's gossip timer.
    Timer {
        node: u32,
    },
    /// The node's rendezvous round.
    Round {
        node: u32,
    },
    /// A DHT lookup for a name ended.
    Found {
        node: u32,
        name: u32,
    },
    /// A dial from `from` to `to` ended (`ok`: connected).
    Dialled {
        from: u32,
        to: u32,
        ok: bool,
    },
    /// A connection went silent (partition): both ends close it.
    Silent {
        a: u32,
        b: u32,
    },
    Rechecked {
        node: u32,
        hint: u32,
        confirmed: bool,
    },
    AutoTick {
        node: u32,
    },
    Forge {
        node: u32,
    },
    Leave {
        node: u32,
    },
    Join {
        node: u32,
    },
}

/// Message counters, over the whole run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub get: u64,
    pub rec: u64,
    pub have: u64,
    pub push: u64,
    pub hint: u64,
    /// Record bytes carried by `push` and `rec`.
    pub record_bytes: u64,
    pub lookups: u64,
    pub announces: u64,
    pub dht_queries: u64,
    pub dials: u64,
    pub failed_dials: u64,
    pub evidence: u64,
    pub rechecks: u64,
    pub blacklists_published: u64,
}

impl Stats {
    /// What happened since `before` was taken.
    pub fn since(&self, before: &Stats) -> Stats {
        Stats {
            get: self.get - before.get,
            rec: self.rec - before.rec,
            have: self.have - before.have,
            push: self.push - before.push,
            hint: self.hint - before.hint,
            record_bytes: self.record_bytes - before.record_bytes,
            lookups: self.lookups - before.lookups,
            announces: self.announces - before.announces,
            dht_queries: self.dht_queries - before.dht_queries,
            dials: self.dials - before.dials,
            failed_dials: self.failed_dials - before.failed_dials,
            evidence: self.evidence - before.evidence,
            rechecks: self.rechecks - before.rechecks,
            blacklists_published: self.blacklists_published - before.blacklists_published,
        }
    }

    pub fn wire_messages(&self) -> u64 {
        self.get + self.rec + self.have + self.push + self.hint
    }
}

/// What scenarios measure, per node.
pub struct Watch {
    /// The record whose spread is measured.
    pub target: Option<SystemName>,
    /// When each node accepted it (`Ms::MAX`: not yet), and after how many hops.
    pub first_at: Vec<Ms>,
    pub hop: Vec<u8>,
    pub reached: usize,
    /// Of those, how many took it from a `push` (the rest from a `rec`: pull, or
    /// asking after a peer's `have`).
    pub by_push: usize,
    pub pushed: Vec<bool>,
    /// A forger: when each node started refusing it (blacklist in force).
    pub forger: Option<u32>,
    pub refuse_at: Vec<Ms>,
    /// How many entries of `refuse_at` are set, kept as they are set: a stop condition
    /// checked after every event must not count them again (that made the blacklist
    /// scenario quadratic in N).
    pub refusing: usize,
    /// Forged records delivered to honest nodes, with when.
    pub forged_delivered: Vec<Ms>,
    /// Evidence recorded: by which node, against which peer, why.
    pub evidence: Vec<(u32, Option<u32>, String)>,
    /// Messages each node sent, when counting per node.
    pub sent: Vec<u32>,
    /// When each node last came back online (`Ms::MAX`: never left).
    pub joined_at: Vec<Ms>,
}

/// Interns values so that events carry 4-byte indexes.
struct Interner<T> {
    items: Vec<T>,
    index: FxHashMap<T, u32>,
}

impl<T: Clone + Eq + std::hash::Hash> Interner<T> {
    fn new() -> Self {
        Interner {
            items: Vec::new(),
            index: FxHashMap::default(),
        }
    }

    fn id(&mut self, v: &T) -> u32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(v.clone());
        self.index.insert(v.clone(), i);
        i
    }

    fn get(&self, i: u32) -> &T {
        &self.items[i as usize]
    }
}

/// Asks the CPU to bring `p`'s cache line in (a hint: nothing is read).
#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program, whatever the
    // address; `sse` is part of every x86_64 target.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Outgoing-connection flag in a link entry (this side dialled).
pub const OUT: u32 = 1 << 31;

/// The overlay the rendezvous DHT gives when it works as meant: every node dials
/// `max_peers` nodes drawn uniformly from those that accept connections. Entries are
/// peers, `| OUT` on the dialling side.
pub fn random_overlay(net: &Net, max_peers: usize, rng: &mut StdRng) -> Vec<Vec<u32>> {
    let n = net.len() as u32;
    let reachable: Vec<u32> = (0..n).filter(|&i| net.reachable(i)).collect();
    let want = max_peers;
    let mut links: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
    let mut order: Vec<u32> = (0..n).collect();
    order.shuffle(rng);
    for &a in &order {
        dial_reachable(&mut links, a, want, &reachable, rng);
    }
    links
}

/// `a` dials random nodes of `reachable` until it has `want` outgoing links (one link
/// per pair at most, 20 tries per link wanted).
pub fn dial_reachable(
    links: &mut [Vec<u32>],
    a: u32,
    want: usize,
    reachable: &[u32],
    rng: &mut StdRng,
) {
    let want = want.min(reachable.len().saturating_sub(1));
    let mut out = links[a as usize].iter().filter(|l| *l & OUT != 0).count();
    let mut tries = 0;
    while out < want && tries < 20 * want {
        tries += 1;
        let b = reachable[rng.gen_range(0..reachable.len())];
        if b != a && !links[a as usize].iter().any(|l| l & !OUT == b) {
            links[a as usize].push(b | OUT);
            links[b as usize].push(a);
            out += 1;
        }
    }
}

pub struct World {
    pub cfg: WorldConfig,
    q: Queue<Ev>,
    pub rng: StdRng,
    pub net: Net,
    pub records: SharedRecords,
    nodes: Vec<Node>,
    /// Ready connections of each node: the peer, `| OUT` when this side dialled.
    links: Vec<Vec<u32>>,
    /// Dials under way, per node (they count as outgoing, as in `node::core`).
    dialling: Vec<u8>,
    online: Vec<bool>,
    timer_at: Vec<Ms>,
    names: Interner<SystemName>,
    lists: Interner<Vec<SystemName>>,
    hints: Vec<Hint>,
    /// Holders announced in the DHT per name (the ideal store, see `dht`).
    holders: FxHashMap<SystemName, Vec<u32>>,
    forgers: Vec<u32>,
    /// Each forger's current forgery.
    forged: FxHashMap<u32, RecId>,
    /// Forgers that answer an auditor's probe with their forgery (naive) or not.
    pub forgers_answer_probes: bool,
    /// Node groups that cannot reach each other (partition), when set.
    side: Option<Vec<bool>>,
    /// Nodes whose background churn is on.
    churn: bool,
    pub watch: Watch,
    pub stats: Stats,
    /// Count messages sent per node (`watch.sent`).
    pub count_per_node: bool,
    /// The message being handled is a `push`.
    handling_push: bool,
    /// DHT lookups and announcements per name (their last round lands on the same few
    /// nodes, the closest to the name).
    pub dht_names: FxHashMap<SystemName, (u64, u64)>,
}

impl World {
    /// A network of `cfg.nodes` online nodes, none holding anything, no connections.
    pub fn new(cfg: WorldConfig, records: SharedRecords) -> Self {
        let n = cfg.nodes;
        let mut rng = StdRng::seed_from_u64(derive_seed(cfg.seed, 0, 0));
        let net = Net::new(n, cfg.net.clone(), &mut rng);
        let every = cfg.gossip.pull_interval_ms.max(1);
        let nodes = (0..n)
            .map(|i| Node {
                // Nodes started at different moments: their pull rounds do not fall
                // into step.
                gossip: Gossip::new(
                    SimAcceptor::new(records.clone()),
                    cfg.gossip.clone(),
                    vec![],
                    derive_seed(cfg.seed, 1, i as u64),
                    T0 - rng.gen_range(0..every),
                ),
                hints: Hints::new(cfg.hints.clone()),
                blacklist: Enforcement::new(None),
            })
            .collect();
        World {
            q: Queue::new(T0),
            rng,
            net,
            records,
            nodes,
            links: vec![Vec::new(); n],
            dialling: vec![0; n],
            online: vec![true; n],
            timer_at: vec![Ms::MAX; n],
            names: Interner::new(),
            lists: Interner::new(),
            hints: Vec::new(),
            holders: FxHashMap::default(),
            forgers: Vec::new(),
            forged: FxHashMap::default(),
            forgers_answer_probes: true,
            side: None,
            churn: false,
            watch: Watch {
                target: None,
                first_at: vec![Ms::MAX; n],
                hop: vec![0; n],
                reached: 0,
                by_push: 0,
                pushed: vec![false; n],
                forger: None,
                refuse_at: vec![Ms::MAX; n],
                refusing: 0,
                forged_delivered: Vec::new(),
                evidence: Vec::new(),
                sent: Vec::new(),
                joined_at: vec![Ms::MAX; n],
            },
            stats: Stats::default(),
            count_per_node: false,
            handling_push: false,
            dht_names: FxHashMap::default(),
            cfg,
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn now(&self) -> Ms {
        self.q.now()
    }

    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    pub fn is_online(&self, i: u32) -> bool {
        self.online[i as usize]
    }

    pub fn online_count(&self) -> usize {
        self.online.iter().filter(|o| **o).count()
    }

    pub fn degree(&self, i: u32) -> usize {
        self.links[i as usize].len()
    }

    /// The node's connected peers.
    pub fn peers(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        self.links[i as usize].iter().map(|l| l & !OUT)
    }

    pub fn events(&self) -> u64 {
        self.q.popped
    }

    pub fn peak_events(&self) -> usize {
        self.q.peak
    }

    /// Runs `node`'s rendezvous rounds even when the configuration runs none (an actor
    /// that must find new peers while the rest of the overlay stays put).
    pub fn start_rounds(&mut self, node: u32) {
        self.q.after(0, Ev::Round { node });
    }

    /// Makes `node` an auto-blacklist node (it holds the blacklist key).
    pub fn make_auditor(&mut self, node: u32) {
        let (blacklist, hints) =
            policy::evidence_machines(Some(self.cfg.auto_threshold), self.cfg.hints.clone());
        self.nodes[node as usize].blacklist = blacklist;
        self.nodes[node as usize].hints = hints;
        let every = self.cfg.auto_interval;
        self.q.after(every, Ev::AutoTick { node });
    }

    /// Makes `node` a forger, scripted like the hostile wire node of the project's
    /// tests (`tests/common::scripted_node`): it runs no honest machine; to every peer
    /// it says `have` of the next site release and pushes a forgery of it, when a
    /// connection comes up and, from `first` on, every minute with a fresh forgery;
    /// asked for that release, it answers with its forgery.
    pub fn make_forger(&mut self, node: u32, first: Ms) {
        self.forgers.push(node);
        self.q.at(first, Ev::Forge { node });
    }

    fn is_forger(&self, node: u32) -> bool {
        !self.forgers.is_empty() && self.forgers.contains(&node)
    }

    /// The forger's current forgery (a new one when `fresh`).
    fn forgery(&mut self, node: u32, fresh: bool) -> RecId {
        if !fresh && let Some(&id) = self.forged.get(&node) {
            return id;
        }
        let now = self.now();
        let slot = (kind::SITE_RELEASE, SITE);
        let next = self.nodes[node as usize].gossip.acceptor().highest(slot) + 1;
        let tag = self.records.borrow().tag();
        let name = SystemName::new(tag, slot.0, slot.1, next);
        let id = self
            .records
            .borrow_mut()
            .forgery(name, now / 1000, &mut self.rng);
        self.forged.insert(node, id);
        id
    }

    /// The forger greets `peer`: `have` of the forged name, then the forgery.
    fn forger_hello(&mut self, node: u32, peer: u32, fresh: bool) {
        let id = self.forgery(node, fresh);
        let name = self.records.borrow().name(id);
        let size = self.records.borrow().bytes(id).len();
        let list = self.lists.id(&vec![name]);
        self.stats.have += 1;
        self.stats.push += 1;
        self.transmit(node, peer, Msg::Have(list), 0);
        self.transmit(node, peer, Msg::Push(id), size);
    }

    /// Signs site release `version` now (a 50 MiB torrent) and measures its spread.
    pub fn new_release(&mut self, version: u32) -> RecId {
        let now = self.now() / 1000;
        let id = self.records.borrow_mut().release(version, now, 50 << 20);
        let name = self.records.borrow().name(id);
        self.watch_record(name);
        id
    }

    /// Measure the spread of `name` from now on.
    pub fn watch_record(&mut self, name: SystemName) {
        self.watch.target = Some(name);
        self.watch.first_at.iter_mut().for_each(|t| *t = Ms::MAX);
        self.watch.reached = 0;
        self.watch.by_push = 0;
        self.watch.pushed.iter_mut().for_each(|p| *p = false);
    }

    /// Measure when nodes start refusing `forger`.
    pub fn watch_forger(&mut self, forger: u32) {
        self.watch.forger = Some(forger);
    }

    /// Counts messages per sending node from now on.
    pub fn count_sent(&mut self) {
        self.count_per_node = true;
        self.watch.sent = vec![0; self.len()];
    }

    // ---- building the network ----------------------------------------------------

    /// Every node takes `record` as accepted earlier (restored from disk): it holds it
    /// before any connection exists.
    pub fn preload(&mut self, record: RecId) {
        let bytes = self.records.borrow().bytes(record).clone();
        let now = self.now();
        for i in 0..self.len() {
            let g = &mut self.nodes[i].gossip;
            let _ = g.submit(bytes.clone(), now);
            while g.poll_action().is_some() {}
        }
    }

    /// Connects every node to `max_peers` random reachable nodes, as the rendezvous
    /// DHT would have, and lets each pair exchange `have` at once (a warm network).
    /// Every node must hold the same records (`preload`), so every `have` says the same
    /// names and changes nothing but what the receiver knows of the sender.
    pub fn build_overlay(&mut self) {
        let n = self.len() as u32;
        self.links = random_overlay(&self.net, self.cfg.max_peers, &mut self.rng);
        // Node by node, rather than link by link (which touches two random nodes per
        // link, a cache miss each at 10^6): all its connections come up
        // (`Gossip::peer_up`), then its peers' `have`s reach it. The end state is the
        // same, since each machine keeps its peers and what they hold sorted.
        let now = self.now();
        let names = self.nodes.first().map(|x| x.gossip.held_names());
        for a in 0..n {
            let degree = self.links[a as usize].len();
            for l in 0..degree {
                let b = self.links[a as usize][l] & !OUT;
                self.nodes[a as usize]
                    .gossip
                    .peer_up(b as PeerKey, Net::ip(b), now);
                match self.nodes[a as usize].gossip.poll_action() {
                    Some(Action::Send {
                        peer,
                        msg: msg @ Message::Have { .. },
                    }) if peer == b as PeerKey => {
                        assert!(
                            matches!(&msg, Message::Have { names: h } if Some(h) == names.as_ref()),
                            "a warm network's nodes hold the same records"
                        );
                        self.count(a, &msg);
                    }
                    other => unreachable!("peer_up says have and nothing else: {other:?}"),
                }
            }
            for l in 0..degree {
                let b = self.links[a as usize][l] & !OUT;
                let have = Message::Have {
                    names: names.clone().unwrap_or_default(),
                };
                let g = &mut self.nodes[a as usize].gossip;
                g.handle_message(b as PeerKey, have, now);
                assert!(
                    g.poll_action().is_none(),
                    "a have of what the node holds asks for nothing"
                );
            }
        }
        for a in 0..n {
            self.drain(a);
            if self.cfg.rounds {
                // Real nodes start at different moments: each first round falls somewhere
                // in the first pull interval (a node waits `RENDEZVOUS_FIRST_MS` after
                // its own start).
                let first = self
                    .rng
                    .gen_range(0..self.cfg.gossip.pull_interval_ms.max(1));
                self.q.after(first, Ev::Round { node: a });
            }
        }
    }

    fn outgoing(&self, a: u32) -> usize {
        self.links[a as usize]
            .iter()
            .filter(|l| *l & OUT != 0)
            .count()
            + self.dialling[a as usize] as usize
    }

    fn linked(&self, a: u32, b: u32) -> bool {
        self.links[a as usize].iter().any(|l| l & !OUT == b)
    }

    fn add_link(&mut self, a: u32, b: u32) {
        self.links[a as usize].push(b | OUT);
        self.links[b as usize].push(a);
    }

    fn remove_link(&mut self, a: u32, b: u32) -> bool {
        let la = &mut self.links[a as usize];
        let Some(i) = la.iter().position(|l| l & !OUT == b) else {
            return false;
        };
        la.swap_remove(i);
        let lb = &mut self.links[b as usize];
        if let Some(j) = lb.iter().position(|l| l & !OUT == a) {
            lb.swap_remove(j);
        }
        true
    }

    // ---- running ----------------------------------------------------------------

    /// Runs every event due by `until` (or until `stop` says so, checked after each).
    pub fn run_until(&mut self, until: Ms, mut stop: impl FnMut(&World) -> bool) {
        while let Some(ev) = self.q.pop_until(until) {
            self.prefetch_next();
            self.handle(ev);
            if stop(self) {
                return;
            }
        }
        self.q.advance(until);
    }

    /// At a million nodes an event's node is rarely in the cache, and each one waits on
    /// a chain of misses (its link list, then the list's entries, then its machines).
    /// While this event is handled, the memory of the next two is fetched: for the one
    /// after next the link list's header and the node, for the next its entries.
    fn prefetch_next(&self) {
        let node = |ev: &Ev| match *ev {
            Ev::Deliver { to, .. } => to,
            Ev::Dialled { from, .. } => from,
            Ev::Timer { node }
            | Ev::Round { node }
            | Ev::Found { node, .. }
            | Ev::Rechecked { node, .. }
            | Ev::AutoTick { node }
            | Ev::Forge { node }
            | Ev::Leave { node }
            | Ev::Join { node } => node,
            Ev::Silent { a, .. } => a,
        } as usize;
        if let Some(ev) = self.q.peek_now(1) {
            let n = node(ev);
            prefetch(&self.links[n]);
            prefetch(&self.nodes[n]);
        }
        if let Some(ev) = self.q.peek_now(0) {
            prefetch(self.links[node(ev)].as_ptr());
        }
    }

    /// A locally published record enters at `node` (the publisher's `--push`).
    pub fn publish(&mut self, node: u32, record: RecId) {
        let bytes = self.records.borrow().bytes(record).clone();
        let now = self.now();
        let _ = self.nodes[node as usize].gossip.submit(bytes, now);
        self.drain(node);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver { to, from, msg } => self.deliver(to, from, msg),
            Ev::Timer { node } => {
                if self.timer_at[node as usize] == self.now() && self.online[node as usize] {
                    self.timer_at[node as usize] = Ms::MAX;
                    let now = self.now();
                    self.nodes[node as usize].gossip.handle_timeout(now);
                    self.drain(node);
                }
            }
            Ev::Round { node } => self.round(node),
            Ev::Found { node, name } => self.found(node, name),
            Ev::Dialled { from, to, ok } => self.dialled(from, to, ok),
            Ev::Silent { a, b } => self.disconnect(a, b),
            Ev::Rechecked {
                node,
                hint,
                confirmed,
            } => self.rechecked(node, hint, confirmed),
            Ev::AutoTick { node } => self.auto_tick(node),
            Ev::Forge { node } => self.forge(node),
            Ev::Leave { node } => self.leave(node),
            Ev::Join { node } => self.join(node),
        }
    }

    /// Feeds the node's state machines' actions to the network until none is left
    /// (`node::core::Core::drain_actions`).
    fn drain(&mut self, node: u32) {
        loop {
            let mut any = false;
            while let Some(action) = self.nodes[node as usize].gossip.poll_action() {
                any = true;
                self.act(node, action);
            }
            while let Some(action) = self.nodes[node as usize].hints.poll_action() {
                any = true;
                match action {
                    HintAction::Relay { hint, except } => {
                        let id = self.hint_id(&hint);
                        for l in 0..self.links[node as usize].len() {
                            let p = self.links[node as usize][l] & !OUT;
                            if policy::relay_hint_to(&hint, except, p as PeerKey, Net::ip(p)) {
                                self.transmit(node, p, Msg::Hint(id), 0);
                                self.stats.hint += 1;
                            }
                        }
                    }
                    HintAction::Audit { hint, from } => {
                        let (own, now) = (Net::ip(node), self.now());
                        let n = &mut self.nodes[node as usize];
                        if n.blacklist.hint(hint, Net::ip(from as u32), own, now) {
                            self.start_rechecks(node);
                        }
                    }
                }
            }
            if !any {
                break;
            }
        }
        let next = self.nodes[node as usize].gossip.next_timeout();
        if next < self.timer_at[node as usize] {
            self.timer_at[node as usize] = next;
            self.q.at(next, Ev::Timer { node });
        }
    }

    fn act(&mut self, node: u32, action: Action) {
        match action {
            Action::Send { peer, msg } => self.send(node, peer as u32, msg),
            Action::Accepted { record, from, .. } => self.accepted(node, &record, from),
            Action::Evidence {
                peer,
                object,
                refusal,
            } => self.evidence(node, peer.map(|p| p as u32), object, &refusal),
            Action::Lookup { name } => self.lookup(node, name, false),
            Action::Announce { name } => self.lookup(node, name, true),
            // The simulator's forgers sign with keys no set ever held: nothing is
            // vouched for and then dropped.
            Action::Dropped { .. } => {}
        }
    }

    fn count(&mut self, node: u32, msg: &Message) {
        match msg {
            Message::Get { .. } => self.stats.get += 1,
            Message::Rec { record, .. } => {
                self.stats.rec += 1;
                self.stats.record_bytes += record.as_ref().map_or(0, |r| r.len() as u64);
            }
            Message::Have { .. } => self.stats.have += 1,
            Message::Push { record } => {
                self.stats.push += 1;
                self.stats.record_bytes += record.len() as u64;
            }
            Message::Hint(_) => self.stats.hint += 1,
            // What the simulated machines never send (document claims…).
            _ => {}
        }
        if self.count_per_node {
            self.watch.sent[node as usize] += 1;
        }
    }

    /// A message to a connected peer (dropped, as by the node, when the connection is
    /// gone).
    fn send(&mut self, node: u32, peer: u32, msg: Message) {
        if !self.linked(node, peer) {
            return;
        }
        self.count(node, &msg);
        let (m, size) = match msg {
            Message::Get { name } => (Msg::Get(self.names.id(&name)), 0),
            Message::Rec { name, record } => {
                let size = record.as_ref().map_or(0, Vec::len);
                let rec = record.map(|r| self.rec_id(&r));
                (Msg::Rec(self.names.id(&name), rec), size)
            }
            Message::Have { names } => (Msg::Have(self.lists.id(&names)), 0),
            Message::Push { record } => (Msg::Push(self.rec_id(&record)), record.len()),
            Message::Hint(h) => (Msg::Hint(self.hint_id(&h)), 0),
            // Gossip and hints send nothing else; other messages belong to drivers
            // the simulator does not run (document claims…).
            _ => return,
        };
        self.transmit(node, peer, m, size);
    }

    /// Puts a message on the wire: path delay, queueing jitter, and the time the
    /// sender's upload takes to carry `size` bytes.
    fn transmit(&mut self, from: u32, to: u32, msg: Msg, size: usize) {
        let serialise = (size as f64 * 1000.0 / self.net.upload_bps(from)) as Ms;
        let delay = self.net.delay(from, to, &mut self.rng) + serialise;
        self.q.after(delay, Ev::Deliver { to, from, msg });
    }

    fn rec_id(&mut self, bytes: &[u8]) -> RecId {
        self.records
            .borrow_mut()
            .intern(bytes)
            .expect("records sent by simulated nodes decode")
    }

    fn hint_id(&mut self, hint: &Hint) -> u32 {
        if let Some(i) = self.hints.iter().position(|h| h == hint) {
            return i as u32;
        }
        self.hints.push(hint.clone());
        (self.hints.len() - 1) as u32
    }

    fn deliver(&mut self, to: u32, from: u32, msg: Msg) {
        if !self.online[to as usize] || !self.linked(to, from) || !self.can_reach(from, to) {
            return; // the connection closed meanwhile, or the path is cut
        }
        let now = self.now();
        if self.is_forger(to) {
            // Asked for what it claims to have, it answers with its forgery.
            if let Msg::Get(n) = msg
                && let Some(&id) = self.forged.get(&to)
                && self.records.borrow().name(id) == *self.names.get(n)
            {
                let size = self.records.borrow().bytes(id).len();
                self.stats.rec += 1;
                self.transmit(to, from, Msg::Rec(n, Some(id)), size);
            }
            return;
        }
        let message = match msg {
            Msg::Get(n) => Message::Get {
                name: *self.names.get(n),
            },
            Msg::Rec(n, rec) => Message::Rec {
                name: *self.names.get(n),
                record: rec.map(|r| self.records.borrow().bytes(r).to_vec()),
            },
            Msg::Have(l) => Message::Have {
                names: self.lists.get(l).clone(),
            },
            Msg::Push(r) => Message::Push {
                record: self.records.borrow().bytes(r).to_vec(),
            },
            Msg::Hint(h) => Message::Hint(self.hints[h as usize].clone()),
        };
        if let Msg::Push(r) | Msg::Rec(_, Some(r)) = msg
            && !self.forgers.is_empty()
            && self.records.borrow_mut().is_forgery(r, now / 1000)
        {
            self.watch.forged_delivered.push(now);
        }
        let n = &mut self.nodes[to as usize];
        match message {
            // `node::core::Core::on_report`: hints about itself or a listed address
            // are not taken.
            Message::Hint(hint) => {
                if policy::take_hint(&hint, Net::ip(to), &n.blacklist) {
                    n.hints.receive(from as PeerKey, Net::ip(from), hint, now);
                }
            }
            other => {
                self.handling_push = matches!(other, Message::Push { .. });
                n.gossip.handle_message(from as PeerKey, other, now);
            }
        }
        self.drain(to);
        self.handling_push = false;
    }

    fn accepted(&mut self, node: u32, record: &Record, from: Option<PeerKey>) {
        if self.watch.target == Some(record.name) && self.watch.first_at[node as usize] == Ms::MAX {
            let hop = from.map_or(0, |p| self.watch.hop[p as usize].saturating_add(1));
            self.watch.first_at[node as usize] = self.now();
            self.watch.hop[node as usize] = hop;
            self.watch.reached += 1;
            if self.handling_push && from.is_some() {
                self.watch.by_push += 1;
                self.watch.pushed[node as usize] = true;
            }
        }
        if record.name.class() == ObjectClass::Blacklist {
            self.apply_blacklist(node, record);
        }
    }

    /// `node::core::blacklist`: a newer signed list is put in force; connections to
    /// listed addresses close.
    fn apply_blacklist(&mut self, node: u32, record: &Record) {
        let version = record.name.version();
        let in_force = self.nodes[node as usize].blacklist.version();
        // Simulated lists are short enough to travel inline: never `Fetch`.
        let policy::BlacklistIn::InForce(list) = policy::blacklist_in(record, in_force) else {
            return;
        };
        if !self.nodes[node as usize]
            .blacklist
            .put_in_force(version, list)
        {
            return;
        }
        let peers = self.peers(node).map(|p| (p, Net::ip(p)));
        let listed = policy::cut_off(&self.nodes[node as usize].blacklist, peers);
        for p in listed {
            self.disconnect(node, p);
        }
        if let Some(f) = self.watch.forger
            && self.nodes[node as usize].blacklist.contains(Net::ip(f))
            && self.watch.refuse_at[node as usize] == Ms::MAX
        {
            self.watch.refuse_at[node as usize] = self.now();
            self.watch.refusing += 1;
        }
    }

    /// `node::core::Core::record_evidence` and `accuse`: the evidence counts (on an
    /// auditor) and, when an auditor could check it again, becomes a hint.
    fn evidence(
        &mut self,
        node: u32,
        peer: Option<u32>,
        object: Option<SystemName>,
        refusal: &Refusal,
    ) {
        self.stats.evidence += 1;
        self.watch
            .evidence
            .push((node, peer, refusal.code().to_string()));
        let Some(p) = peer else {
            return;
        };
        let now = self.now();
        let n = &mut self.nodes[node as usize];
        n.blacklist.evidence(Net::ip(p), refusal.code());
        let ports = (Some(policy::WIRE_PORT), Some(policy::BT_PORT));
        if let Some(hint) =
            policy::refusal_hint(Net::ip(p), ports.0, ports.1, refusal.code(), object)
        {
            n.hints.local(hint, now);
        }
    }

    /// A lookup (and announcement) in the rendezvous DHT; its answer arrives later.
    fn lookup(&mut self, node: u32, name: SystemName, announce: bool) {
        let cost = self
            .cfg
            .dht
            .lookup(&self.net, node, self.len(), announce, &mut self.rng);
        self.stats.dht_queries += cost.queries as u64;
        let per_name = self.dht_names.entry(name).or_default();
        if announce {
            per_name.1 += 1;
            self.stats.announces += 1;
            self.holders.entry(name).or_default().push(node);
        } else {
            per_name.0 += 1;
            self.stats.lookups += 1;
        }
        let name = self.names.id(&name);
        self.q.after(cost.latency, Ev::Found { node, name });
    }

    /// The DHT named holders of `name`: the node dials those it is not connected to
    /// while it has outgoing slots free (`Command::Found`).
    fn found(&mut self, node: u32, name: u32) {
        if !self.online[node as usize] || self.outgoing(node) >= self.cfg.max_peers {
            return;
        }
        let name = *self.names.get(name);
        let Some(holders) = self.holders.get(&name) else {
            return;
        };
        let mut picked = Vec::new();
        for _ in 0..self.cfg.dht.peers_per_reply.min(holders.len()) {
            let h = holders[self.rng.gen_range(0..holders.len())];
            if self.online[h as usize] && h != node {
                picked.push(h);
            }
        }
        for h in picked {
            self.try_dial(node, h);
        }
    }

    /// `node::core::Core::rendezvous_round`: announce under the node rendezvous name,
    /// find other nodes there and dial them while outgoing slots are free.
    fn round(&mut self, node: u32) {
        if !self.online[node as usize] {
            return;
        }
        let every = policy::rendezvous_period_ms(self.cfg.gossip.pull_interval_ms);
        self.q.after(every, Ev::Round { node });
        let cost = self
            .cfg
            .dht
            .lookup(&self.net, node, self.len(), true, &mut self.rng);
        self.stats.dht_queries += cost.queries as u64;
        self.stats.announces += 1;
        let tag = self.cfg.gossip.tag;
        self.dht_names
            .entry(SystemName::rendezvous(tag))
            .or_default()
            .1 += 1;
        if self.outgoing(node) >= self.cfg.max_peers {
            return;
        }
        // Every online node announced under the rendezvous name: a sample of them.
        let n = self.len() as u32;
        for _ in 0..self.cfg.dht.peers_per_reply {
            let h = self.rng.gen_range(0..n);
            if self.online[h as usize] && h != node {
                self.try_dial(node, h);
            }
        }
    }

    /// Dials `to` as `node::core` would (`policy::may_dial`): not connected already, not
    /// listed, and a slot free. (Simulated nodes count only open connections as
    /// outgoing, not dials under way, and no address here is dropped or slowed.)
    fn try_dial(&mut self, node: u32, to: u32) {
        let check = policy::DialCheck {
            connected: self.linked(node, to),
            listed: self.nodes[node as usize].blacklist.contains(Net::ip(to)),
            outgoing: self.outgoing(node),
            max_peers: self.cfg.max_peers,
            ..policy::DialCheck::default()
        };
        if !policy::may_dial(&check) {
            return;
        }
        self.stats.dials += 1;
        self.dialling[node as usize] += 1;
        let blocked = self
            .side
            .as_ref()
            .is_some_and(|s| s[node as usize] != s[to as usize]);
        let answers = self.online[to as usize] && self.net.reachable(to) && !blocked;
        let delay = if answers {
            // TCP, then the wire handshake both ways.
            self.net.rtt(node, to) * 3 / 2 + self.net.rtt(node, to)
        } else {
            self.cfg.dial_timeout
        };
        self.q.after(
            delay,
            Ev::Dialled {
                from: node,
                to,
                ok: answers,
            },
        );
    }

    /// Whether `to` takes an incoming connection from `from` (`policy::admit_inbound`).
    fn admits(&self, to: u32, from: u32) -> bool {
        let inbound = self.links[to as usize]
            .iter()
            .filter(|l| *l & OUT == 0)
            .count();
        let caps = (self.cfg.max_inbound, self.cfg.max_inbound_per_ip);
        let blacklist = &self.nodes[to as usize].blacklist;
        policy::admit_inbound(Net::ip(from), blacklist, (inbound, 0), caps, false)
            == policy::Admit::Yes
    }

    fn dialled(&mut self, from: u32, to: u32, ok: bool) {
        let d = &mut self.dialling[from as usize];
        *d = d.saturating_sub(1);
        let accepted = ok
            && self.online[from as usize]
            && self.online[to as usize]
            && !self.linked(from, to)
            // `Core::run`: a listed address is refused at accept, and so is one past the
            // inbound caps (nodes have one address each here, and no address is slowed).
            && self.admits(to, from)
            && !self.nodes[from as usize].blacklist.contains(Net::ip(to));
        if !accepted {
            self.stats.failed_dials += 1;
            return;
        }
        self.add_link(from, to);
        for (a, b) in [(from, to), (to, from)] {
            if self.is_forger(a) {
                self.forger_hello(a, b, false);
            } else {
                let now = self.now();
                self.nodes[a as usize]
                    .gossip
                    .peer_up(b as PeerKey, Net::ip(b), now);
            }
        }
        self.drain(from);
        self.drain(to);
    }

    /// `from` dials `to` (as when the DHT or the configuration names it).
    pub fn dial(&mut self, from: u32, to: u32) {
        self.try_dial(from, to);
    }

    /// Both ends see the connection close.
    fn disconnect(&mut self, a: u32, b: u32) {
        if !self.remove_link(a, b) {
            return;
        }
        let now = self.now();
        self.nodes[a as usize].gossip.peer_down(b as PeerKey, now);
        self.nodes[b as usize].gossip.peer_down(a as PeerKey, now);
        self.drain(a);
        self.drain(b);
    }

    // ---- auditors ---------------------------------------------------------------

    /// `node::core::audit::start_rechecks`: the accused is probed on its wire port and
    /// asked for the object; a forger that answers with its forgery is confirmed, one
    /// that cannot be reached (offline, behind NAT) or answers nothing is not.
    fn start_rechecks(&mut self, node: u32) {
        let due = self.nodes[node as usize].blacklist.due_rechecks();
        for hint in due {
            self.stats.rechecks += 1;
            let accused = Net::node_of(hint.ip);
            let id = self.hint_id(&hint);
            let (confirmed, delay) = match accused {
                Some(a)
                    if self.online[a as usize]
                        && self.net.reachable(a)
                        && self.can_reach(node, a) =>
                {
                    let forger = self.forgers.contains(&a) && self.forgers_answer_probes;
                    (forger, self.net.rtt(node, a) * 3)
                }
                _ => (false, self.cfg.recheck_limit),
            };
            self.q.after(
                delay,
                Ev::Rechecked {
                    node,
                    hint: id,
                    confirmed,
                },
            );
        }
    }

    fn rechecked(&mut self, node: u32, hint: u32, confirmed: bool) {
        let hint = self.hints[hint as usize].clone();
        let now = self.now();
        let n = &mut self.nodes[node as usize];
        if n.blacklist.rechecked(&hint, confirmed, now).is_some() && confirmed {
            // The confirmation is one entry of the auditor's own evidence, however many
            // nodes hinted; below the threshold, `due_rechecks` has it look again.
            n.blacklist.evidence(hint.ip, &hint.reason);
            self.stats.evidence += 1;
            let accused = Net::node_of(hint.ip);
            self.watch
                .evidence
                .push((node, accused, hint.reason.clone()));
        }
        self.start_rechecks(node);
    }

    /// `node::core::blacklist::auto_blacklist`: every interval, addresses past the
    /// threshold go into a new signed version, sent like any record.
    fn auto_tick(&mut self, node: u32) {
        let every = self.cfg.auto_interval;
        self.q.after(every, Ev::AutoTick { node });
        if !self.online[node as usize] {
            return;
        }
        self.start_rechecks(node);
        let now = self.now();
        let n = &self.nodes[node as usize];
        let Some(list) = n.blacklist.next_list(Net::ip(node), now) else {
            return;
        };
        let slot = (kind::AUTHORIZED_FILE, file_id::BLACKLIST);
        let version = n.gossip.acceptor().highest(slot) + 1;
        let id = self
            .records
            .borrow_mut()
            .blacklist(version, &list, now / 1000);
        self.stats.blacklists_published += 1;
        self.publish(node, id);
    }

    // ---- adversaries ------------------------------------------------------------

    /// Every minute a forger greets every peer again with a fresh forgery. It also
    /// dials new peers while it has free slots, like any node (its rounds).
    fn forge(&mut self, node: u32) {
        self.q.after(crate::engine::MINUTE, Ev::Forge { node });
        if !self.online[node as usize] {
            return;
        }
        let _ = self.forgery(node, true);
        for l in 0..self.links[node as usize].len() {
            let p = self.links[node as usize][l] & !OUT;
            self.forger_hello(node, p, false);
        }
    }

    // ---- churn and partitions ---------------------------------------------------

    /// `node` goes offline: every connection of it closes.
    pub fn leave(&mut self, node: u32) {
        if !self.online[node as usize] {
            return;
        }
        self.online[node as usize] = false;
        let peers: Vec<u32> = self.peers(node).collect();
        // Each peer's link list and machines are a cache miss away: ask for all of
        // them at once rather than one after the other.
        for &p in &peers {
            prefetch(&self.links[p as usize]);
            prefetch(&self.nodes[p as usize]);
        }
        for p in peers {
            self.disconnect(node, p);
        }
        if self.churn {
            let off = self.net.weibull(self.cfg.net.offline_median, &mut self.rng);
            self.q.after(off, Ev::Join { node });
        }
    }

    /// `node` comes back with what it held, and finds peers in its first round.
    pub fn join(&mut self, node: u32) {
        if self.online[node as usize] {
            return;
        }
        self.online[node as usize] = true;
        self.watch.joined_at[node as usize] = self.now();
        self.timer_at[node as usize] = Ms::MAX;
        self.drain(node);
        self.round(node);
        if self.churn {
            let on = self.net.weibull(self.cfg.net.session_median, &mut self.rng);
            self.q.after(on, Ev::Leave { node });
        }
    }

    /// Background churn from now on: each online node leaves after a session drawn
    /// from the heavy-tailed session law, and comes back after a time offline.
    pub fn start_churn(&mut self) {
        self.churn = true;
        for node in 0..self.len() as u32 {
            if self.online[node as usize] {
                // A node seen at a random moment is part-way through its session.
                let on = self.net.weibull(self.cfg.net.session_median, &mut self.rng);
                let left = (on as f64 * self.rng.r#gen::<f64>()) as Ms;
                self.q.after(left, Ev::Leave { node });
            }
        }
    }

    /// Cuts the network in two: nothing passes between `side[i] == true` and the rest.
    /// Connections across go silent and close after the idle timeout.
    pub fn partition(&mut self, side: Vec<bool>) {
        let idle = self.cfg.idle_timeout;
        for a in 0..self.len() as u32 {
            for b in self.peers(a).collect::<Vec<_>>() {
                if a < b && side[a as usize] != side[b as usize] {
                    self.q.after(idle, Ev::Silent { a, b });
                }
            }
        }
        self.side = Some(side);
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        self.side = None;
    }

    /// True when a message from `a` can reach `b` now.
    pub fn can_reach(&self, a: u32, b: u32) -> bool {
        self.side
            .as_ref()
            .is_none_or(|s| s[a as usize] == s[b as usize])
    }

    /// The shared copy of a record's bytes.
    pub fn record_bytes(&self, id: RecId) -> Arc<[u8]> {
        self.records.borrow().bytes(id).clone()
    }

    /// The address a simulated node has.
    pub fn ip(node: u32) -> IpAddr {
        Net::ip(node)
    }
}
