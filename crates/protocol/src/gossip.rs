//! Propagation of signed records (SPEC §6) as a sans-IO state machine.
//!
//! Push: a newer valid record is stored, then pushed at once to up to `fanout` peers not
//! known to hold it. Pull: peers exchange `have` on connect and ask for what they lack;
//! every `pull_interval` the node asks a random peer (and the DHT) for `version + 1` of
//! everything it tracks. The node drives this with real connections; the simulator
//! drives the very same code with virtual ones, so `Gossip` is generic over how records
//! are judged ([`Acceptor`]).
//!
//! Key-set freshness (SPEC §3): a role's content from peers is taken only once the
//! newest key set the node knows of that role is confirmed, by [`CONFIRM_SOURCES`]
//! distinct peer addresses whose `have` names no newer one, or [`CONFIRM_WAIT_MS`] after
//! the first peer came (both set in [`GossipConfig`]); until then it waits with the
//! records held back for a key set.
//! A rotation drops what it does not vouch for ([`Action::Dropped`]) and asks for the
//! current record again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::name::{NetworkTag, ObjectClass, Role, Slot, SystemName};
use crate::record::{Record, RecordError};
use crate::trust::{Refusal, TrustStore, Verdict};
use crate::wire::Message;

/// A connection handle chosen by the driver.
pub type PeerKey = u64;

/// Decides about records: the trust store in the node, a cheap stand-in in the
/// simulator.
pub trait Acceptor {
    /// Checks and, when valid, accepts `record` (whose encoding is `bytes`).
    fn accept(&mut self, record: &Record, bytes: &[u8], now_secs: u64) -> Result<Verdict, Refusal>;
    /// The highest accepted version of `slot` (0 = none).
    fn highest(&self, slot: Slot) -> u32;
    /// An accepted key-set certificate, for peers catching up on a rotation chain.
    fn key_set_record(&self, role: Role, version: u32) -> Option<Arc<[u8]>>;
    /// Decodes a record that arrived. The node decodes every copy; the simulator, which
    /// runs a million nodes in one process, hands them all one shared copy.
    fn decode(&mut self, bytes: Arc<[u8]>) -> Result<(Arc<Record>, Arc<[u8]>), RecordError> {
        Ok((Arc::new(Record::decode(&bytes)?), bytes))
    }
}

impl Acceptor for TrustStore {
    fn accept(
        &mut self,
        record: &Record,
        _bytes: &[u8],
        now_secs: u64,
    ) -> Result<Verdict, Refusal> {
        TrustStore::accept(self, record, now_secs)
    }

    fn highest(&self, slot: Slot) -> u32 {
        TrustStore::highest(self, slot)
    }

    fn key_set_record(&self, role: Role, version: u32) -> Option<Arc<[u8]>> {
        let chain = self.chain_records(role);
        let i = usize::try_from(version).ok()?.checked_sub(1)?;
        chain.get(i).map(|b| Arc::from(*b))
    }
}

/// How a [`Gossip`] propagates: which network and slots it follows, how far it pushes,
/// how often it pulls, and the key-set freshness rule (module docs).
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// The network whose names are followed.
    pub tag: NetworkTag,
    /// Peers a new record is pushed to.
    pub fanout: usize,
    /// Period of the pull round, in ms.
    pub pull_interval_ms: u64,
    /// False: ignore pushed records and rely on pull alone (tests and measurements).
    pub accept_push: bool,
    /// Slots followed even before anything of them is held (sites, blacklist, key sets…).
    pub tracked: Vec<Slot>,
    /// Records held back for a missing key set, at most.
    pub max_pending: usize,
    /// Distinct peer sources whose `have` must name no newer key set of a role before
    /// its content is taken ([`CONFIRM_SOURCES`]).
    pub confirm_sources: usize,
    /// How long after the first peer content is taken with fewer sources confirming
    /// ([`CONFIRM_WAIT_MS`]; a local swarm's tests and demo wait less).
    pub confirm_wait_ms: u64,
}

impl GossipConfig {
    /// Follows the key sets of every role, the blacklist, receipts, the software manifest,
    /// notice channel 2 and the given sites.
    pub fn new(tag: NetworkTag, sites: &[u32]) -> Self {
        let mut tracked: Vec<Slot> = Role::ALL.iter().map(|r| (r.number(), 1)).collect();
        tracked.extend([(0x8080, 1), (0x8080, 2), (0x8080, 3), (0x1111, 2)]);
        tracked.extend(sites.iter().map(|id| (0x1000, *id)));
        GossipConfig {
            tag,
            fanout: 8,
            pull_interval_ms: 60_000,
            accept_push: true,
            tracked,
            max_pending: 64,
            confirm_sources: CONFIRM_SOURCES,
            confirm_wait_ms: CONFIRM_WAIT_MS,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `msg` to `peer` over the wire.
    Send {
        /// The connection to send on.
        peer: PeerKey,
        /// The wire message to send.
        msg: Message,
    },
    /// A record was accepted: persist it and act on it (download, apply…).
    Accepted {
        /// The record, decoded.
        record: Record,
        /// Its encoding as it arrived: what is stored and passed on.
        bytes: Arc<[u8]>,
        /// The peer it came from; `None` when the local user submitted it.
        from: Option<PeerKey>,
    },
    /// A refusal worth recording (SPEC §8).
    Evidence {
        /// The peer that sent it; `None` for a record the local user submitted.
        peer: Option<PeerKey>,
        /// The refused record's name; `None` when it did not even decode.
        object: Option<SystemName>,
        /// Why it was refused.
        refusal: Refusal,
    },
    /// Find peers holding `name` in the rendezvous DHT and connect to them.
    Lookup {
        /// The name wanted, usually the next version of a followed slot.
        name: SystemName,
    },
    /// Announce our wire port under `name` in the rendezvous DHT.
    Announce {
        /// A name this node now holds.
        name: SystemName,
    },
    /// A new key set does not vouch for `name`, accepted earlier: forget it and its
    /// content (no longer served, offered, applied or installed).
    Dropped {
        /// The name no longer vouched for.
        name: SystemName,
    },
}

struct Held {
    record: Arc<Record>,
    bytes: Arc<[u8]>,
}

/// The propagation machine of one node (module docs): the newest record of every slot it
/// follows or holds, what its peers hold, and what waits for a key set.
pub struct Gossip<A: Acceptor> {
    acceptor: A,
    cfg: GossipConfig,
    /// Newest record per slot, sorted by slot (a node follows about ten).
    held: Vec<Held>,
    /// Connected peers, sorted.
    peers: Vec<PeerKey>,
    /// What peers are known to hold: per slot, (peer, highest version) sorted by peer.
    /// Per slot rather than per peer: a node has tens of peers and follows tens of
    /// slots, and the simulator holds a million nodes. Only slots this node follows,
    /// holds or asks for are kept (see `handle_message`), so it stays that small.
    known: HashMap<Slot, Vec<(PeerKey, u32)>>,
    /// Records waiting for a key set we have not seen yet, with when they arrived.
    pending: VecDeque<(Option<PeerKey>, Arc<[u8]>, u64)>,
    /// Versions asked for and when, so one `have` storm does not ask everyone (at most
    /// [`MAX_ASKED`]).
    asked: HashMap<Slot, (u32, u64)>,
    /// While `asked` is full: when its oldest entry runs out.
    asked_full_until: u64,
    /// Records pushed back to peers that said they are behind, and when (at most
    /// [`MAX_ASKED`]): a peer repeating an old `have` is not pushed the same again.
    pushed: HashMap<(PeerKey, Slot), u64>,
    next_pull: u64,
    rng: StdRng,
    actions: VecDeque<Action>,
    freshness: Freshness,
}

/// Distinct peer addresses whose `have` must name no newer key
/// set of a role before its content is taken.
pub const CONFIRM_SOURCES: usize = 3;
/// How long after the first peer the node takes content with fewer sources confirming.
pub const CONFIRM_WAIT_MS: u64 = 20_000;

/// What the peers said of each role's newest key set.
#[derive(Default)]
struct Freshness {
    /// When the first peer came (the wait runs from there, not from start-up).
    first_peer: Option<u64>,
    /// Connected peers (until every role is confirmed): their source, and the newest
    /// key set version per role (index: role number - 1) their last `have` named (0:
    /// none named, that is version 1).
    peers: HashMap<PeerKey, (IpAddr, [u32; 6])>,
    /// Roles confirmed since start (for good: a newer set learned later is taken as
    /// it comes, and what it does not vouch for is dropped).
    confirmed: BTreeSet<Role>,
}

/// How long an outstanding `get` suppresses asking again (and a push back, pushing
/// again).
const ASK_AGAIN_MS: u64 = 5_000;
/// Records one peer may have waiting for a key set at once.
const MAX_PENDING_PER_PEER: usize = 8;
/// Outstanding asks and recent push-backs remembered at most.
const MAX_ASKED: usize = 1024;
/// How long a record waits for the key set that might make it valid.
const PENDING_MS: u64 = 30_000;

impl<A: Acceptor> Gossip<A> {
    /// `held` are records accepted earlier (restored from disk, already trusted).
    pub fn new(
        acceptor: A,
        cfg: GossipConfig,
        held: Vec<(Record, Arc<[u8]>)>,
        seed: u64,
        now: u64,
    ) -> Self {
        let mut g = Gossip {
            acceptor,
            next_pull: now + cfg.pull_interval_ms,
            cfg,
            held: Vec::new(),
            peers: Vec::new(),
            known: HashMap::new(),
            pending: VecDeque::new(),
            asked: HashMap::new(),
            asked_full_until: 0,
            pushed: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            actions: VecDeque::new(),
            freshness: Freshness::default(),
        };
        for (record, bytes) in held {
            g.actions.push_back(Action::Announce { name: record.name });
            g.hold(Held {
                record: Arc::new(record),
                bytes,
            });
        }
        g
    }

    /// The acceptor judging records (in the node, its trust store).
    pub fn acceptor(&self) -> &A {
        &self.acceptor
    }

    /// The next action for the driver, if any: drain after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle machine holds no queue (a burst, like a hundred peers saying
            // `have` at once, would pin its memory): the simulator holds a million.
            self.actions = VecDeque::new();
        }
        action
    }

    /// When [`Gossip::handle_timeout`] is next needed, in ms: the next pull round, or sooner
    /// when a held-back record's wait or the key-set confirmation wait runs out.
    pub fn next_timeout(&self) -> u64 {
        let pending = self
            .pending
            .front()
            .map_or(u64::MAX, |(_, _, at)| at + PENDING_MS);
        let confirm = match self.freshness.first_peer {
            Some(at) if self.freshness.confirmed.len() < Role::ALL.len() => {
                at + self.cfg.confirm_wait_ms
            }
            _ => u64::MAX,
        };
        self.next_pull.min(pending).min(confirm)
    }

    /// True once the newest key set of `role` this node knows is confirmed current
    /// (module docs); records of the role from peers wait until then.
    pub fn key_set_confirmed(&self, role: Role) -> bool {
        self.freshness.confirmed.contains(&role)
    }

    /// Confirms the roles whose peers agree, or whose wait is over; true when one was
    /// newly confirmed.
    fn confirm(&mut self, now: u64) -> bool {
        let Some(first) = self.freshness.first_peer else {
            return false;
        };
        let waited = now >= first + self.cfg.confirm_wait_ms;
        let mut newly = false;
        for role in Role::ALL {
            if self.freshness.confirmed.contains(&role) {
                continue;
            }
            let ours = self.acceptor.highest((role.number(), 1)).max(1);
            let at = usize::from(role.number() - 1);
            let mut sources: Vec<IpAddr> = self
                .freshness
                .peers
                .values()
                .filter(|(_, said)| said[at].max(1) <= ours)
                .map(|(source, _)| *source)
                .collect();
            sources.sort_unstable();
            sources.dedup();
            if waited || sources.len() >= self.cfg.confirm_sources {
                self.freshness.confirmed.insert(role);
                newly = true;
            }
        }
        if self.freshness.confirmed.len() == Role::ALL.len() {
            // Confirmed for good: the simulator holds a million of these.
            self.freshness.peers = HashMap::new();
        }
        newly
    }

    /// Judges again, with room to wait, what is held back (a key set arrived, or a
    /// role was confirmed).
    fn rejudge_pending(&mut self, now: u64) {
        if self.pending.is_empty() {
            return;
        }
        let pending: Vec<_> = self.pending.drain(..).collect();
        for (peer, b, at) in pending {
            // A chain gap may still have later links to come; anything else is final,
            // and so is everything from a peer that left (it cannot send a key set).
            let here = peer.is_some_and(|p| self.peers.binary_search(&p).is_ok());
            let _ = self.receive(peer, b, now.max(at), here);
        }
    }

    /// Judges held-back records matching `pick` without holding them again.
    fn judge_pending(&mut self, pick: impl Fn(Option<PeerKey>, u64) -> bool, now: u64) {
        let (judge, keep): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(p, _, at)| pick(*p, *at));
        self.pending = keep.into();
        for (peer, bytes, _) in judge {
            let _ = self.receive(peer, bytes, now, false);
        }
    }

    /// The newest held name per slot.
    pub fn held_names(&self) -> Vec<SystemName> {
        self.held.iter().map(|h| h.record.name).collect()
    }

    /// The newest held record of `slot`.
    pub fn held(&self, slot: Slot) -> Option<(&Record, &Arc<[u8]>)> {
        self.get_held(slot).map(|h| (&*h.record, &h.bytes))
    }

    /// A connection is up, from address `source`: key-set freshness counts addresses,
    /// not connections (many connections from one address may be one party).
    pub fn peer_up(&mut self, peer: PeerKey, source: IpAddr, now: u64) {
        self.forget_peer(peer);
        self.freshness.first_peer.get_or_insert(now);
        if self.freshness.confirmed.len() < Role::ALL.len() {
            self.freshness.peers.insert(peer, (source, [0; 6]));
        }
        let at = self.peers.binary_search(&peer).unwrap_err();
        self.peers.insert(at, peer);
        let names = self.held_names();
        self.actions.push_back(Action::Send {
            peer,
            msg: Message::Have { names },
        });
    }

    /// The peer is gone: what it sent that waits for a key set can no longer be
    /// explained by it, so it is judged now.
    pub fn peer_down(&mut self, peer: PeerKey, now: u64) {
        self.forget_peer(peer);
        self.judge_pending(|p, _| p == Some(peer), now);
    }

    /// A record from the local user (the publisher's `--push`, a file dropped in).
    pub fn submit(&mut self, bytes: Arc<[u8]>, now: u64) -> Result<Verdict, Refusal> {
        self.receive(None, bytes, now, false)
    }

    /// A wire message from `peer`: `have`, `get`, `rec` and `push` are propagation's; other
    /// modules' messages are ignored.
    pub fn handle_message(&mut self, peer: PeerKey, msg: Message, now: u64) {
        match msg {
            // Evidence hints, document claims, uploads and metainfo are other modules',
            // not propagation's.
            Message::Hint(_)
            | Message::Docs(_)
            | Message::Blob(_)
            | Message::Up { .. }
            | Message::MetaGet { .. }
            | Message::Meta(_) => {}
            Message::Have { names } => {
                // One name per slot (its highest version), of this network and of a
                // kind some role governs: a `have` costs at most one answer per slot
                // and cannot grow state for names that cannot exist.
                let mut names: Vec<SystemName> = names
                    .into_iter()
                    .filter(|n| n.tag() == self.cfg.tag && n.class().governing_role().is_some())
                    .collect();
                names.sort_unstable_by_key(|n| (n.slot(), std::cmp::Reverse(n.version())));
                names.dedup_by_key(|n| n.slot());
                if let Some((_, said)) = self.freshness.peers.get_mut(&peer) {
                    *said = [0; 6];
                    for n in &names {
                        // Roles beyond the six have no content to confirm.
                        if let ObjectClass::KeySet(role) = n.class()
                            && let Some(v) = said.get_mut(usize::from(role.number()) - 1)
                        {
                            *v = n.version();
                        }
                    }
                }
                for name in names {
                    let slot = name.slot();
                    let ours = self.version(slot);
                    if name.version() > ours {
                        self.ask(peer, name, now);
                    } else if name.version() < ours && self.cfg.accept_push {
                        // The peer is behind: hand it ours (push-pull), once in a while
                        // however often it says so.
                        self.push_back(peer, slot, now);
                    }
                    // Remembered for the slots this node follows, holds or asks for;
                    // others (any number of document ids) are not worth the memory.
                    if self.cfg.tracked.contains(&slot)
                        || self.get_held(slot).is_some()
                        || self.asked.contains_key(&slot)
                    {
                        self.learn(peer, name);
                    }
                }
                if self.confirm(now) {
                    self.rejudge_pending(now);
                }
            }
            Message::Get { name } => {
                let record = self.lookup(name);
                self.actions.push_back(Action::Send {
                    peer,
                    msg: Message::Rec { name, record },
                });
            }
            Message::Rec {
                record: Some(bytes),
                ..
            } => {
                let _ = self.receive(Some(peer), bytes.into(), now, true);
            }
            Message::Rec { name, record: None } => {
                // The peer has no newer key set: what it sent us signed by unknown keys
                // is judged now, for good.
                if matches!(name.class(), ObjectClass::KeySet(_)) {
                    self.judge_pending(|p, _| p == Some(peer), now);
                }
            }
            Message::Push { record } => {
                if self.cfg.accept_push {
                    let _ = self.receive(Some(peer), record.into(), now, true);
                }
            }
        }
    }

    /// The pull round: ask one random peer, and the DHT, for `version + 1` of every slot.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.confirm(now) {
            self.rejudge_pending(now);
        }
        self.judge_pending(|_, at| now >= at + PENDING_MS, now);
        if now < self.next_pull {
            return;
        }
        self.next_pull = now + self.cfg.pull_interval_ms;
        // What peers hold of slots this node neither follows, holds nor asks for any
        // more (a document it was asked about and never took) is of no use.
        let (tracked, held, asked) = (&self.cfg.tracked, &self.held, &self.asked);
        self.known.retain(|slot, holders| {
            !holders.is_empty()
                && (tracked.contains(slot)
                    || held.iter().any(|h| h.record.name.slot() == *slot)
                    || asked.contains_key(slot))
        });
        if !self.pushed.is_empty() {
            // Push-backs only matter for a few seconds; an idle node holds none.
            self.pushed.retain(|_, at| now < *at + ASK_AGAIN_MS);
            if self.pushed.is_empty() {
                self.pushed = HashMap::new();
            }
        }
        let mut slots: BTreeSet<Slot> = self.cfg.tracked.iter().copied().collect();
        slots.extend(self.held.iter().map(|h| h.record.name.slot()));
        let peers = std::mem::take(&mut self.peers);
        for slot in slots {
            let Some(next) = self.version(slot).checked_add(1) else {
                continue;
            };
            let name = SystemName::new(self.cfg.tag, slot.0, slot.1, next);
            self.actions.push_back(Action::Lookup { name });
            if let Some(&peer) = peers.choose(&mut self.rng) {
                self.actions.push_back(Action::Send {
                    peer,
                    msg: Message::Get { name },
                });
            }
        }
        self.peers = peers;
    }

    fn get_held(&self, slot: Slot) -> Option<&Held> {
        self.held.iter().find(|h| h.record.name.slot() == slot)
    }

    /// Holds `h` as the newest of its slot.
    fn hold(&mut self, h: Held) {
        let slot = h.record.name.slot();
        match self
            .held
            .binary_search_by_key(&slot, |x| x.record.name.slot())
        {
            Ok(i) => self.held[i] = h,
            Err(i) => self.held.insert(i, h),
        }
    }

    fn version(&self, slot: Slot) -> u32 {
        self.acceptor
            .highest(slot)
            .max(self.get_held(slot).map_or(0, |h| h.record.name.version()))
    }

    fn learn(&mut self, peer: PeerKey, name: SystemName) {
        if self.peers.binary_search(&peer).is_err() {
            return;
        }
        let holders = self.known.entry(name.slot()).or_default();
        match holders.binary_search_by_key(&peer, |(p, _)| *p) {
            Ok(j) => holders[j].1 = holders[j].1.max(name.version()),
            Err(j) => holders.insert(j, (peer, name.version())),
        }
    }

    /// The highest version of `slot` that `peer` is known to hold (0: none known).
    fn known_version(&self, peer: PeerKey, slot: Slot) -> u32 {
        self.known
            .get(&slot)
            .and_then(|holders| {
                let j = holders.binary_search_by_key(&peer, |(p, _)| *p).ok()?;
                Some(holders[j].1)
            })
            .unwrap_or(0)
    }

    fn forget_peer(&mut self, peer: PeerKey) {
        self.freshness.peers.remove(&peer);
        if let Ok(i) = self.peers.binary_search(&peer) {
            self.peers.remove(i);
        }
        if !self.pushed.is_empty() {
            self.pushed.retain(|(p, _), _| *p != peer);
        }
        for holders in self.known.values_mut() {
            if let Ok(j) = holders.binary_search_by_key(&peer, |(p, _)| *p) {
                holders.remove(j);
            }
        }
    }

    fn ask(&mut self, peer: PeerKey, name: SystemName, now: u64) {
        let slot = name.slot();
        if let Some(&(v, at)) = self.asked.get(&slot)
            && v >= name.version()
            && now < at + ASK_AGAIN_MS
        {
            return;
        }
        if self.asked.len() >= MAX_ASKED && !self.asked.contains_key(&slot) {
            // A flood of names: the rest wait for the next `have` or pull. The full map
            // is swept only once its oldest ask ran out (not once per name).
            if now < self.asked_full_until {
                return;
            }
            self.asked.retain(|_, (_, at)| now < *at + ASK_AGAIN_MS);
            if self.asked.len() >= MAX_ASKED {
                let oldest = self.asked.values().map(|(_, at)| *at).min().unwrap_or(now);
                self.asked_full_until = oldest + ASK_AGAIN_MS;
                return;
            }
        }
        self.asked.insert(slot, (name.version(), now));
        self.actions.push_back(Action::Send {
            peer,
            msg: Message::Get { name },
        });
    }

    fn lookup(&self, name: SystemName) -> Option<Vec<u8>> {
        if let Some(h) = self.get_held(name.slot())
            && h.record.name == name
        {
            return Some(h.bytes.to_vec());
        }
        if let ObjectClass::KeySet(role) = name.class() {
            return self
                .acceptor
                .key_set_record(role, name.version())
                .map(|b| b.to_vec());
        }
        None
    }

    /// [`Gossip::push_to`] a peer that said it is behind, unless it was pushed this
    /// slot in the last [`ASK_AGAIN_MS`].
    fn push_back(&mut self, peer: PeerKey, slot: Slot, now: u64) {
        if let Some(at) = self.pushed.get(&(peer, slot))
            && now < at + ASK_AGAIN_MS
        {
            return;
        }
        if self.pushed.len() >= MAX_ASKED {
            self.pushed.retain(|_, at| now < *at + ASK_AGAIN_MS);
            if self.pushed.len() >= MAX_ASKED {
                return;
            }
        }
        self.pushed.insert((peer, slot), now);
        self.push_to(peer, slot);
    }

    fn push_to(&mut self, peer: PeerKey, slot: Slot) {
        if let Some(h) = self.get_held(slot) {
            let msg = Message::Push {
                record: h.bytes.to_vec(),
            };
            self.actions.push_back(Action::Send { peer, msg });
        }
    }

    /// Judges a record; `may_hold` lets one that might become valid with a key set we
    /// lack wait for it instead of counting as evidence at once.
    fn receive(
        &mut self,
        from: Option<PeerKey>,
        bytes: Arc<[u8]>,
        now: u64,
        may_hold: bool,
    ) -> Result<Verdict, Refusal> {
        let (record, bytes) = match self.acceptor.decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                let refusal = Refusal::Malformed(e);
                self.actions.push_back(Action::Evidence {
                    peer: from,
                    object: None,
                    refusal: refusal.clone(),
                });
                return Err(refusal);
            }
        };
        if let Some(peer) = from {
            self.learn(peer, record.name);
        }
        let role = match record.name.class() {
            ObjectClass::KeySet(_) => None, // a chain checks itself
            class => class.governing_role(),
        };
        if let (Some(_), Some(role)) = (from, role)
            && !self.key_set_confirmed(role)
        {
            // Not yet: a newer key set may retire whoever signed it. It waits, also when
            // judged "for good" (its peer left, or has no newer key set): the wait is
            // bounded. Beyond the peer's room it is let go unjudged (the pull brings it
            // again).
            self.hold_back(from, bytes, now, may_hold);
            return Err(Refusal::KeySetUnconfirmed { role });
        }
        match self.acceptor.accept(&record, &bytes, now / 1000) {
            Ok(verdict) => {
                self.on_dropped(&verdict.dropped, now);
                self.on_accepted(from, record, bytes, now);
                Ok(verdict)
            }
            Err(refusal) => {
                self.on_refused(from, &record, bytes, &refusal, now, may_hold);
                Err(refusal)
            }
        }
    }

    fn on_accepted(
        &mut self,
        from: Option<PeerKey>,
        record: Arc<Record>,
        bytes: Arc<[u8]>,
        now: u64,
    ) {
        let name = record.name;
        let slot = name.slot();
        self.asked.remove(&slot);
        self.hold(Held {
            record: record.clone(),
            bytes: bytes.clone(),
        });
        self.actions.push_back(Action::Accepted {
            record: (*record).clone(),
            bytes: bytes.clone(),
            from,
        });
        self.actions.push_back(Action::Announce { name });
        // Push at once to up to `fanout` peers not known to hold it.
        let mut targets: Vec<PeerKey> = self
            .peers
            .iter()
            .copied()
            .filter(|k| Some(*k) != from && self.known_version(*k, slot) < name.version())
            .collect();
        targets.shuffle(&mut self.rng);
        targets.truncate(self.cfg.fanout);
        for peer in targets {
            self.learn(peer, name);
            self.actions.push_back(Action::Send {
                peer,
                msg: Message::Push {
                    record: bytes.to_vec(),
                },
            });
        }
        // A new key set may make held-back records valid.
        if matches!(name.class(), ObjectClass::KeySet(_)) {
            self.rejudge_pending(now);
        }
    }

    /// A new key set does not vouch for `dropped`: forget them, and ask for what is
    /// current (the peers that said they hold a newer version first, the DHT too).
    fn on_dropped(&mut self, dropped: &[SystemName], now: u64) {
        for &name in dropped {
            let slot = name.slot();
            if let Ok(i) = self
                .held
                .binary_search_by_key(&slot, |h| h.record.name.slot())
                && self.held[i].record.name == name
            {
                self.held.remove(i);
            }
            self.actions.push_back(Action::Dropped { name });
            self.asked.remove(&slot);
            let Some(next) = self.version(slot).checked_add(1) else {
                continue;
            };
            let want = name.with_version(next);
            self.actions.push_back(Action::Lookup { name: want });
            // Whoever said it holds a version at least that high; else a random peer.
            let holder = self.known.get(&slot).and_then(|holders| {
                holders
                    .iter()
                    .filter(|(_, v)| *v >= next)
                    .map(|(p, _)| *p)
                    .collect::<Vec<_>>()
                    .choose(&mut self.rng)
                    .copied()
            });
            if let Some(peer) = holder.or_else(|| self.peers.choose(&mut self.rng).copied()) {
                self.ask(peer, want, now);
            }
        }
    }

    fn on_refused(
        &mut self,
        from: Option<PeerKey>,
        record: &Record,
        bytes: Arc<[u8]>,
        refusal: &Refusal,
        now: u64,
        may_hold: bool,
    ) {
        let name = record.name;
        match refusal {
            Refusal::NotNewer { have, got } => {
                // Behind? Hand the sender our newer one.
                if let Some(peer) = from
                    && got < have
                    && self.cfg.accept_push
                {
                    self.push_to(peer, name.slot());
                }
            }
            Refusal::ChainGap { next, .. } if may_hold => {
                self.hold_back(from, bytes, now, true);
                if let Some(peer) = from {
                    self.ask(peer, name.with_version(*next), now);
                }
            }
            Refusal::NotEnoughSignatures { extra, .. }
                if may_hold && extra.contains("unknown keys") =>
            {
                // Possibly signed by a key set we have not received yet: ask for it and
                // judge again when it arrives, or when the peer says it has none.
                self.hold_back(from, bytes, now, true);
                if let (Some(peer), Some(role)) = (from, name.class().governing_role()) {
                    let v = self.acceptor.highest((role.number(), 1)) + 1;
                    self.ask(peer, SystemName::key_set(name.tag(), role, v), now);
                }
            }
            // What honest peers also send (a node that missed a rotation still holds what
            // retired keys signed); nothing to hold against them.
            Refusal::WrongNetwork { .. }
            | Refusal::ChainGap { .. }
            | Refusal::RetiredKeys { .. }
            | Refusal::KeySetUnconfirmed { .. } => {}
            _ => self.actions.push_back(Action::Evidence {
                peer: from,
                object: Some(name),
                refusal: refusal.clone(),
            }),
        }
    }

    /// Keeps a record that cannot be judged yet, within the queue's bounds (at most
    /// [`MAX_PENDING_PER_PEER`] of one peer's, `max_pending` in all). `make_room`: a full
    /// queue makes room; otherwise (a record judged for good that must still wait) it is
    /// kept only if there is room, and let go unjudged if not.
    fn hold_back(&mut self, from: Option<PeerKey>, bytes: Arc<[u8]>, now: u64, make_room: bool) {
        let mine = self.pending.iter().filter(|(p, _, _)| *p == from).count();
        let peer_full = from.is_some() && mine >= MAX_PENDING_PER_PEER;
        if !make_room {
            if !peer_full && self.pending.len() < self.cfg.max_pending {
                self.pending.push_back((from, bytes, now));
            }
            return;
        }
        if peer_full {
            // One peer sending records no key set we know explains, again and again: its
            // own oldest is judged now (evidence against it, if it still fails).
            if let Some(i) = self.pending.iter().position(|(p, _, _)| *p == from)
                && let Some((peer, old, _)) = self.pending.remove(i)
            {
                let _ = self.receive(peer, old, now, false);
            }
        } else if self.pending.len() >= self.cfg.max_pending {
            // Room is bounded, and the oldest may be an honest record still waiting for
            // its key set: it is let go unjudged (the pull brings it again once the key
            // set is here), never counted as a forgery against whoever sent it.
            self.pending.pop_front();
        }
        self.pending.push_back((from, bytes, now));
    }
}

#[cfg(test)]
#[path = "gossip_tests.rs"]
mod tests;
