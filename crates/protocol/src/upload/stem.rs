//! The stem phase of an upload (SPEC §7), as a sans-IO state machine: `event, time in →
//! actions out`, so the node and the million-node simulator run the same code.
//!
//! A container first travels hop by hop: the node holding it waits a random delay, then
//! hands it to one peer. The receiver keeps it and, with probability
//! `relay_probability`, does the same after its own delay; otherwise it fluffs (makes it
//! a torrent and announces it). Nothing here announces anything: that is fluff, decided
//! by this machine and done by the driver.
//!
//! Routing is Dandelion++'s: per epoch (`epoch_ms`) a node picks two *successors*, and
//! maps each predecessor to one of them for the whole epoch (one-to-one routing: a spy
//! that hands it many containers learns one route, not the node's peers). The first
//! successor is a peer the node dialled itself, and takes its own uploads: a peer that
//! opens many connections to it is no likelier their first hop. The second is a peer
//! that dialled it (one per address group, the driver's choice), and takes only
//! predecessors' uploads: nodes behind NAT, which nobody dials, then carry others'
//! uploads too, so a container arriving from one is not surely its own. The originator
//! is a relay in every respect a peer can observe: the same delays, a route shared with
//! predecessors, the same fail-safe, the same coin when one of its containers comes
//! back.
//!
//! A node that handed an upload on keeps a fail-safe timer (Dandelion++): if the upload
//! is not seen in fluff by then, it fluffs it itself, so a peer that swallows containers
//! cannot make one disappear. "Seen in fluff" is the driver's call
//! ([`Stem::fluff_seen`]): a copy fetched and verified, never a bare announcement.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gossip::PeerKey;

/// An upload's id before fluff: SHA-256 of the container (looks random).
pub type UploadId = [u8; 32];

const HOUR_MS: u64 = 3600 * 1000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Delays, relay chance and fail-safe of the stem phase (SPEC §7).
#[derive(Clone, Debug)]
pub struct StemConfig {
    /// The originator waits uniformly within this range (ms) before an upload's first
    /// hop, then its hop delay: it hides when the source acted, and no peer sees it
    /// (SPEC §7: at most the design's 4 days; default up to 1 day).
    pub originator_wait_ms: (u64, u64),
    /// Each hop waits uniformly within this range, in ms (default 0 to 2 hours; tests
    /// use milliseconds). With the wait and the fail-safe it bounds delivery: see
    /// PROTOCOL.md §19.
    pub delay_ms: (u64, u64),
    /// Chance that a receiving node passes the container on rather than fluffing it.
    pub relay_probability: f64,
    /// How long to wait before trying again when no peer took it.
    pub retry_ms: u64,
    /// Dandelion++'s fail-safe: a node that handed an upload on and has not heard it
    /// fluffed within this range (uniform, ms) fluffs it itself, so a peer that takes
    /// containers and drops them cannot make one disappear. Long enough that an honest
    /// stem has almost always fluffed by then (see PROTOCOL.md §19). The same range for
    /// the originator as for relays.
    pub failsafe_ms: (u64, u64),
    /// How long a node keeps its two successors and its routes (Dandelion++: 10
    /// minutes).
    pub epoch_ms: u64,
}

impl Default for StemConfig {
    fn default() -> Self {
        StemConfig {
            originator_wait_ms: (0, DAY_MS),
            delay_ms: (0, 2 * HOUR_MS),
            relay_probability: 0.8,
            retry_ms: 30_000,
            failsafe_ms: (36 * HOUR_MS, 48 * HOUR_MS),
            epoch_ms: 10 * 60 * 1000,
        }
    }
}

/// Where an upload stands on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum StemState {
    /// Waiting for its delay to run out before the next hop.
    Waiting {
        /// When the next hop is due, in ms (after its delay, or a retry wait).
        until: u64,
    },
    /// Being handed to `to`.
    Sending {
        /// The next hop.
        to: PeerKey,
    },
    /// Handed on: the next hop holds it. Fluffed here at `failsafe` unless the driver
    /// reports the fluff first ([`Stem::fluff_seen`]).
    Passed {
        /// When the fail-safe runs out, in ms.
        failsafe: u64,
    },
    /// Its fluff was seen (or it was fluffed elsewhere): the stem is over here.
    Over,
    /// This node switched it to fluff.
    Fluffed,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StemAction {
    /// Hand the container to wire peer `to`.
    Send {
        /// Which upload: its container's SHA-256.
        id: UploadId,
        /// The next hop.
        to: PeerKey,
    },
    /// Make it a torrent, seed it and announce it.
    Fluff {
        /// Which upload: its container's SHA-256.
        id: UploadId,
    },
}

#[derive(Clone, Debug)]
struct Item {
    state: StemState,
    /// The peer it came from (`None`: made here, or from before a restart): which route
    /// it takes, and never the next hop while another peer exists.
    from: Option<PeerKey>,
    /// Peers that failed to take it, avoided on the next try.
    failed: Vec<PeerKey>,
}

/// This epoch's successors and the route of each predecessor (module docs).
#[derive(Debug, Default)]
struct Routes {
    /// When the epoch ends, in ms.
    until: u64,
    /// The successor of this node's own uploads (and of about half its predecessors'):
    /// a peer it dialled, or one that dialled it when it dialled none.
    first: Option<PeerKey>,
    /// The other successor, for predecessors' uploads only: a peer that dialled this
    /// node (so that nodes nobody can dial, behind NAT, carry others' uploads too and
    /// a container from one is not surely its own), or another dialled peer when none
    /// did.
    second: Option<PeerKey>,
    /// Predecessor → its successor.
    by_from: BTreeMap<PeerKey, PeerKey>,
}

impl Routes {
    fn successors(&self) -> impl Iterator<Item = PeerKey> {
        self.first.into_iter().chain(self.second)
    }
}

/// The stem phase on one node (module docs): each upload it holds before fluff, and where
/// it stands.
pub struct Stem {
    cfg: StemConfig,
    rng: StdRng,
    items: BTreeMap<UploadId, Item>,
    routes: Routes,
    actions: VecDeque<StemAction>,
}

impl Stem {
    /// Nothing held yet; `seed` drives delays, relay choices and next hops, so runs repeat.
    pub fn new(cfg: StemConfig, seed: u64) -> Self {
        Stem {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            items: BTreeMap::new(),
            routes: Routes::default(),
            actions: VecDeque::new(),
        }
    }

    fn uniform(&mut self, (lo, hi): (u64, u64)) -> u64 {
        if hi <= lo {
            lo
        } else {
            self.rng.gen_range(lo..=hi)
        }
    }

    fn delay(&mut self) -> u64 {
        self.uniform(self.cfg.delay_ms)
    }

    /// The local user made `id`: it waits (`originator_wait_ms`, then a hop delay),
    /// then takes its first hop.
    pub fn originate(&mut self, id: UploadId, now: u64) {
        let wait = self.uniform(self.cfg.originator_wait_ms);
        let until = now + wait + self.delay();
        self.items.entry(id).or_insert(Item {
            state: StemState::Waiting { until },
            from: None,
            failed: Vec::new(),
        });
    }

    /// A whole container arrived from `from` over the stem. Returns false when it was
    /// known already (the driver keeps one copy). One this node handed on that comes
    /// back (the walk made a loop) is a new arrival, its own uploads included: the same
    /// coin decides whether the walk goes on from here, so a peer that sends a
    /// container back learns nothing about who made it.
    pub fn received(&mut self, id: UploadId, from: PeerKey, now: u64) -> bool {
        if self
            .items
            .get(&id)
            .is_some_and(|i| !matches!(i.state, StemState::Passed { .. }))
        {
            return false;
        }
        let relay = self
            .rng
            .gen_bool(self.cfg.relay_probability.clamp(0.0, 1.0));
        let state = if relay {
            StemState::Waiting {
                until: now + self.delay(),
            }
        } else {
            self.actions.push_back(StemAction::Fluff { id });
            StemState::Fluffed
        };
        self.items.insert(
            id,
            Item {
                state,
                from: Some(from),
                failed: Vec::new(),
            },
        );
        true
    }

    /// After a restart: the state the driver saved. A send that was under way waits
    /// out a short retry, then goes to a peer again.
    pub fn restore(&mut self, id: UploadId, state: StemState, now: u64) {
        let state = match state {
            StemState::Sending { .. } => StemState::Waiting {
                until: now + self.cfg.retry_ms.min(self.cfg.delay_ms.1),
            },
            s => s,
        };
        self.items.insert(
            id,
            Item {
                state,
                from: None,
                failed: Vec::new(),
            },
        );
    }

    /// The next hop took it whole: the fail-safe timer starts.
    pub fn sent(&mut self, id: &UploadId, now: u64) {
        if !self
            .items
            .get(id)
            .is_some_and(|i| matches!(i.state, StemState::Sending { .. }))
        {
            return;
        }
        let failsafe = now.saturating_add(self.uniform(self.cfg.failsafe_ms));
        if let Some(item) = self.items.get_mut(id) {
            item.state = StemState::Passed { failsafe };
        }
    }

    /// The upload was seen in fluff (a fluff copy fetched and verified here: an
    /// announcement alone costs a spy nothing): this node's stem duty is over, and the
    /// fail-safe is off.
    pub fn fluff_seen(&mut self, id: &UploadId) {
        if let Some(item) = self.items.get_mut(id) {
            item.state = StemState::Over;
        }
    }

    /// The hop failed (the peer left, refused, or stalled): another peer, later.
    pub fn failed(&mut self, id: &UploadId, now: u64) {
        let retry = self.cfg.retry_ms;
        if let Some(item) = self.items.get_mut(id)
            && let StemState::Sending { to } = item.state
        {
            item.failed.push(to);
            item.state = StemState::Waiting { until: now + retry };
        }
    }

    /// Forgets `id` (received by the intake, or dropped by the user before it left).
    pub fn forget(&mut self, id: &UploadId) {
        self.items.remove(id);
    }

    /// Starts the hops that are due, each along its route ([`Routes`]) over `dialled`
    /// (the ready wire peers able to take a container that this node dialled itself)
    /// and `accepted` (those that dialled it; the driver passes one per address group,
    /// so many connections from one host weigh as one), and fluffs uploads whose
    /// fail-safe ran out.
    pub fn handle_timeout(&mut self, now: u64, dialled: &[PeerKey], accepted: &[PeerKey]) {
        for (id, item) in self.items.iter_mut() {
            if matches!(item.state, StemState::Passed { failsafe } if failsafe <= now) {
                item.state = StemState::Fluffed;
                self.actions.push_back(StemAction::Fluff { id: *id });
            }
        }
        let due: Vec<UploadId> = self
            .items
            .iter()
            .filter(|(_, i)| matches!(i.state, StemState::Waiting { until } if until <= now))
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        self.refresh_routes(now, dialled, accepted);
        let retry = self.cfg.retry_ms;
        for id in due {
            let item = self.items.get(&id).expect("due");
            let (from, failed) = (item.from, item.failed.clone());
            let Some(to) = self.next_hop(from, &failed, dialled, accepted) else {
                let item = self.items.get_mut(&id).expect("due");
                item.state = StemState::Waiting { until: now + retry };
                continue;
            };
            let item = self.items.get_mut(&id).expect("due");
            if item.failed.len() >= dialled.len() + accepted.len() {
                // Every peer failed once: try them again rather than hold it forever.
                item.failed.clear();
            }
            item.state = StemState::Sending { to };
            self.actions.push_back(StemAction::Send { id, to });
        }
    }

    /// Starts a new epoch when this one ran out, and replaces a successor that left.
    fn refresh_routes(&mut self, now: u64, dialled: &[PeerKey], accepted: &[PeerKey]) {
        let r = &mut self.routes;
        if now >= r.until {
            r.until = now.saturating_add(self.cfg.epoch_ms.max(1));
            (r.first, r.second) = (None, None);
            r.by_from.clear();
        }
        let live = |p: &PeerKey| dialled.contains(p) || accepted.contains(p);
        for slot in [&mut r.first, &mut r.second] {
            if let Some(gone) = slot.filter(|s| !live(s)) {
                *slot = None;
                r.by_from.retain(|_, s| *s != gone);
            }
        }
        let rng = &mut self.rng;
        let mut pick = |pool: &[PeerKey], not: Option<PeerKey>| {
            let fresh: Vec<PeerKey> = pool.iter().copied().filter(|p| Some(*p) != not).collect();
            fresh.get(rng.gen_range(0..fresh.len().max(1))).copied()
        };
        if r.first.is_none() {
            r.first = pick(dialled, r.second).or_else(|| pick(accepted, r.second));
        }
        if r.second.is_none() {
            r.second = pick(accepted, r.first).or_else(|| pick(dialled, r.first));
        }
    }

    /// Where an upload from `from` goes: its route's successor (the first for this
    /// node's own), else the other successor for a predecessor's, else another peer,
    /// dialled ones first, none the sender nor failed if it can be; `None` without
    /// peers. An upload of this node's own never goes to a peer that dialled it while a
    /// dialled peer will take it: a Sybil opening connections is no likelier its first
    /// hop.
    fn next_hop(
        &mut self,
        from: Option<PeerKey>,
        failed: &[PeerKey],
        dialled: &[PeerKey],
        accepted: &[PeerKey],
    ) -> Option<PeerKey> {
        let usable = |p: &PeerKey| Some(*p) != from && !failed.contains(p);
        let routed = match from {
            None => self.routes.first,
            Some(f) => match self.routes.by_from.get(&f) {
                Some(s) => Some(*s),
                None => {
                    // One-to-one as far as it goes: a new predecessor takes the
                    // successor fewer predecessors (this node's own uploads counting as
                    // one, on the first) are mapped to, a coin between equals.
                    let load = |s: PeerKey| {
                        let own = (Some(s) == self.routes.first) as usize;
                        own + self.routes.by_from.values().filter(|v| **v == s).count()
                    };
                    let mut both: Vec<(usize, PeerKey)> =
                        self.routes.successors().map(|s| (load(s), s)).collect();
                    if both.len() == 2 && both[0].0 == both[1].0 && self.rng.gen_bool(0.5) {
                        both.swap(0, 1);
                    }
                    let s = both.iter().min_by_key(|(l, _)| *l).map(|(_, s)| *s);
                    if let Some(s) = s {
                        self.routes.by_from.insert(f, s);
                    }
                    s
                }
            },
        };
        if let Some(s) = routed.filter(usable) {
            return Some(s);
        }
        if from.is_some()
            && let Some(s) = self.routes.successors().find(usable)
        {
            return Some(s);
        }
        // The successors are the sender or failed: another peer rather than wait.
        for pool in [dialled, accepted] {
            let fresh: Vec<PeerKey> = pool.iter().copied().filter(usable).collect();
            if !fresh.is_empty() {
                return Some(fresh[self.rng.gen_range(0..fresh.len())]);
            }
        }
        let any: Vec<PeerKey> = [dialled, accepted].concat();
        (!any.is_empty()).then(|| any[self.rng.gen_range(0..any.len())])
    }

    /// When [`Stem::handle_timeout`] is next needed.
    pub fn next_timeout(&self) -> Option<u64> {
        self.items
            .values()
            .filter_map(|i| match i.state {
                StemState::Waiting { until } => Some(until),
                StemState::Passed { failsafe } => Some(failsafe),
                _ => None,
            })
            .min()
    }

    /// The next action for the driver, if any: drain after every input.
    pub fn poll_action(&mut self) -> Option<StemAction> {
        self.actions.pop_front()
    }

    /// Where upload `id` stands here; `None` when it is not (or no longer) known.
    pub fn state(&self, id: &UploadId) -> Option<StemState> {
        self.items.get(id).map(|i| i.state)
    }

    /// Every upload and its state, for the driver to save.
    pub fn items(&self) -> impl Iterator<Item = (&UploadId, StemState)> {
        self.items.iter().map(|(id, i)| (id, i.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(p: f64) -> StemConfig {
        StemConfig {
            originator_wait_ms: (0, 0),
            delay_ms: (100, 200),
            relay_probability: p,
            retry_ms: 50,
            failsafe_ms: (10_000, 20_000),
            epoch_ms: 60_000,
        }
    }

    fn drain(s: &mut Stem) -> Vec<StemAction> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    #[test]
    fn the_originator_waits_then_hands_it_to_one_peer() {
        let mut s = Stem::new(cfg(0.8), 1);
        s.originate([1; 32], 1000);
        let until = s.next_timeout().unwrap();
        assert!((1100..=1200).contains(&until));
        s.handle_timeout(until - 1, &[5, 6, 7], &[]);
        assert!(drain(&mut s).is_empty(), "nothing before the delay");
        s.handle_timeout(until, &[5, 6, 7], &[]);
        let a = drain(&mut s);
        assert_eq!(a.len(), 1);
        let StemAction::Send { to, .. } = a[0] else {
            panic!("{a:?}")
        };
        assert!([5, 6, 7].contains(&to));
        s.sent(&[1; 32], until);
        let Some(StemState::Passed { failsafe }) = s.state(&[1; 32]) else {
            panic!()
        };
        // The same fail-safe range as every relay's (10 to 20 s here).
        assert!((until + 10_000..=until + 20_000).contains(&failsafe));
        s.fluff_seen(&[1; 32]);
        assert_eq!(s.state(&[1; 32]), Some(StemState::Over));
        assert_eq!(s.next_timeout(), None);
    }

    #[test]
    fn the_originator_waits_before_its_first_hop_and_only_then() {
        let mut s = Stem::new(
            StemConfig {
                originator_wait_ms: (5_000, 6_000),
                ..cfg(1.0)
            },
            13,
        );
        s.originate([8; 32], 0);
        let first = s.next_timeout().unwrap();
        assert!((5_100..=6_200).contains(&first), "{first}");
        s.handle_timeout(first, &[4, 5], &[]);
        drain(&mut s);
        s.sent(&[8; 32], first);
        // Back again: a relay's delay, no wait.
        assert!(s.received([8; 32], 4, first + 10));
        let Some(StemState::Waiting { until }) = s.state(&[8; 32]) else {
            panic!()
        };
        assert!((first + 110..=first + 210).contains(&until), "{until}");
    }

    #[test]
    fn a_container_that_comes_back_goes_on_from_here() {
        let mut s = Stem::new(cfg(1.0), 8);
        s.originate([7; 32], 0);
        s.handle_timeout(200, &[4, 5], &[]);
        drain(&mut s);
        s.sent(&[7; 32], 250);
        // The walk made a loop and came back: it is taken on again, not dropped.
        assert!(s.received([7; 32], 5, 300));
        assert!(matches!(s.state(&[7; 32]), Some(StemState::Waiting { .. })));
        assert!(!s.received([7; 32], 4, 301), "held and waiting: known");
        s.fluff_seen(&[7; 32]);
        assert!(!s.received([7; 32], 4, 302), "its stem is over");
    }

    /// What a spy can see of a node, for its own uploads and for ones it relays: the
    /// coin when a container comes back, the delay before the hop, and the fail-safe.
    fn observed(own: bool, seed: u64) -> (usize, Vec<u64>, Vec<u64>) {
        let mut s = Stem::new(cfg(0.8), seed);
        let (mut fluffed, mut delays, mut failsafes) = (0, Vec::new(), Vec::new());
        for i in 0..2000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let t0 = u64::from(i) * 1_000_000;
            if own {
                s.originate(id, t0);
            } else {
                // Relays that fluff at once leave no delay to observe: count them apart.
                if !s.received(id, 3, t0) {
                    continue;
                }
                if drain(&mut s).contains(&StemAction::Fluff { id }) {
                    continue;
                }
            }
            let Some(StemState::Waiting { until }) = s.state(&id) else {
                panic!()
            };
            delays.push(until - t0);
            s.handle_timeout(until, &[4, 5], &[]);
            drain(&mut s);
            s.sent(&id, until);
            let Some(StemState::Passed { failsafe }) = s.state(&id) else {
                panic!()
            };
            failsafes.push(failsafe - until);
            // It comes back.
            assert!(s.received(id, 4, until + 1));
            if drain(&mut s).contains(&StemAction::Fluff { id }) {
                fluffed += 1;
            }
        }
        (fluffed, delays, failsafes)
    }

    #[test]
    fn the_originator_behaves_as_a_relay_in_all_a_peer_sees() {
        let (own_fluffed, own_delays, own_failsafes) = observed(true, 11);
        let (relay_fluffed, relay_delays, relay_failsafes) = observed(false, 12);
        // The same coin on a container that comes back (0.2 fluffs it).
        let own = own_fluffed as f64 / own_delays.len() as f64;
        let relay = relay_fluffed as f64 / relay_delays.len() as f64;
        assert!(
            (own - relay).abs() < 0.05 && (0.15..0.25).contains(&own),
            "{own} {relay}"
        );
        // The same delays and fail-safes: same bounds, means within 3 %.
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64;
        for (a, b, lo, hi) in [
            (&own_delays, &relay_delays, 100, 200),
            (&own_failsafes, &relay_failsafes, 10_000, 20_000),
        ] {
            assert!(a.iter().chain(b.iter()).all(|d| (lo..=hi).contains(d)));
            assert!(
                (mean(a) / mean(b) - 1.0).abs() < 0.03,
                "{} {}",
                mean(a),
                mean(b)
            );
        }
    }

    #[test]
    fn routes_are_one_to_one_per_epoch_over_two_successors() {
        let mut s = Stem::new(cfg(1.0), 21);
        let peers: Vec<PeerKey> = (10..30).collect();
        let mut route = BTreeMap::new();
        let mut n = 0u32;
        let mut next = |s: &mut Stem, from: Option<PeerKey>, now: u64| {
            n += 1;
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&n.to_be_bytes());
            match from {
                None => s.originate(id, now),
                Some(f) => assert!(s.received(id, f, now)),
            }
            s.handle_timeout(now + 200, &peers, &[]);
            let a = drain(s);
            let [StemAction::Send { to, .. }] = a[..] else {
                panic!("{a:?}")
            };
            to
        };
        // Within an epoch: one successor per predecessor (own uploads are one more
        // predecessor), two successors in all.
        for round in 0..20 {
            for from in [None, Some(1), Some(2), Some(3), Some(4), Some(5)] {
                let to = next(&mut s, from, round * 1000);
                assert_eq!(*route.entry(from).or_insert(to), to, "{from:?}");
            }
        }
        let successors: std::collections::BTreeSet<PeerKey> = route.values().copied().collect();
        assert!(successors.len() <= 2, "{successors:?}");
        // The next epoch draws again.
        let mut later = std::collections::BTreeSet::new();
        for e in 1..10u64 {
            for from in 1..6 {
                later.insert(next(&mut s, Some(from), e * 60_000 + 10));
            }
        }
        assert!(later.len() > 2, "new successors each epoch: {later:?}");
        // A successor that leaves is replaced at once.
        let to = next(&mut s, Some(1), 700_000);
        let fewer: Vec<PeerKey> = peers.iter().copied().filter(|p| *p != to).collect();
        s.originate([99; 32], 700_100);
        s.handle_timeout(700_400, &fewer, &[]);
        let [StemAction::Send { to: other, .. }] = drain(&mut s)[..] else {
            panic!()
        };
        assert_ne!(other, to);
    }

    #[test]
    fn peers_that_dialled_in_never_take_own_uploads_and_one_carries_relayed_ones() {
        // A Sybil holding 200 connections to this node (all accepted) against 8 it
        // dialled: it is the first hop of none of this node's own uploads.
        let mut s = Stem::new(cfg(1.0), 31);
        let dialled: Vec<PeerKey> = (1..=8).collect();
        let sybil: Vec<PeerKey> = (1000..1200).collect();
        for i in 0..500u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let now = u64::from(i) * 100_000;
            s.originate(id, now);
            s.handle_timeout(now + 200, &dialled, &sybil);
            let [StemAction::Send { to, .. }] = drain(&mut s)[..] else {
                panic!()
            };
            assert!(dialled.contains(&to), "{to}");
        }
        // Predecessors' uploads go to the two successors: one dialled, one that
        // dialled in, so a node nobody dials (behind NAT) carries others' uploads too.
        let mut r = Stem::new(cfg(1.0), 34);
        let (mut to_dialled, mut to_accepted) = (0, 0);
        for epoch in 0..50u64 {
            let mut seen = std::collections::BTreeSet::new();
            for from in 1..=6u32 {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(epoch * 10 + u64::from(from)).to_be_bytes());
                let now = epoch * 600_000 + u64::from(from) * 1000;
                assert!(r.received(id, 2000 + PeerKey::from(from), now));
                r.handle_timeout(now + 200, &dialled, &sybil);
                for a in drain(&mut r) {
                    let StemAction::Send { to, .. } = a else {
                        panic!("{a:?}")
                    };
                    seen.insert(to);
                    if dialled.contains(&to) {
                        to_dialled += 1;
                    } else {
                        to_accepted += 1;
                    }
                }
            }
            let accepted = seen.iter().filter(|p| sybil.contains(p)).count();
            assert!(accepted <= 1 && seen.len() <= 2, "epoch {epoch}: {seen:?}");
        }
        assert!(
            (100..=200).contains(&to_accepted) && to_dialled + to_accepted == 300,
            "{to_dialled} to dialled, {to_accepted} to accepted"
        );
        // Every dialled peer turns it down: then a peer that dialled in takes it
        // rather than the upload wait forever.
        let mut t = Stem::new(cfg(1.0), 32);
        t.originate([5; 32], 0);
        let mut to = Vec::new();
        for k in 0..3 {
            t.handle_timeout(200 + k * 100, &[1, 2], &[9]);
            let [StemAction::Send { to: p, .. }] = drain(&mut t)[..] else {
                panic!()
            };
            to.push(p);
            t.failed(&[5; 32], 250 + k * 100);
        }
        assert_eq!(to[2], 9, "{to:?}");
        assert!(to[..2].contains(&1) && to[..2].contains(&2), "{to:?}");
        // A node that dialled nobody routes over the peers that dialled it.
        let mut u = Stem::new(cfg(1.0), 33);
        u.originate([6; 32], 0);
        u.handle_timeout(200, &[], &[7]);
        assert_eq!(drain(&mut u), vec![StemAction::Send { id: [6; 32], to: 7 }]);
    }

    #[test]
    fn a_container_not_seen_in_fluff_is_fluffed_by_the_fail_safe() {
        // The next hop took it and dropped it: nobody fluffs it, so this node does.
        let mut s = Stem::new(cfg(1.0), 2);
        s.originate([6; 32], 0);
        s.handle_timeout(200, &[4], &[]);
        assert_eq!(drain(&mut s).len(), 1);
        s.sent(&[6; 32], 300);
        let failsafe = s.next_timeout().unwrap();
        s.handle_timeout(failsafe - 1, &[4], &[]);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(failsafe, &[4], &[]);
        assert_eq!(drain(&mut s), vec![StemAction::Fluff { id: [6; 32] }]);
        assert_eq!(s.state(&[6; 32]), Some(StemState::Fluffed));
        assert_eq!(s.next_timeout(), None);
    }

    #[test]
    fn relays_pass_on_about_as_often_as_configured_and_never_back() {
        let mut s = Stem::new(cfg(0.8), 7);
        let n = 10_000u32;
        for i in 0..n {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            assert!(s.received(id, 3, 0));
        }
        let fluffed = drain(&mut s).len() as f64 / n as f64;
        assert!((0.18..0.22).contains(&fluffed), "{fluffed}");
        s.handle_timeout(1000, &[3, 4], &[]);
        let sends = drain(&mut s);
        assert!(sends.len() > 7000);
        assert!(
            sends
                .iter()
                .all(|a| matches!(a, StemAction::Send { to: 4, .. })),
            "never back to the sender while another peer exists"
        );
        assert!(!s.received([0; 32], 4, 0), "a copy already held");
    }

    #[test]
    fn a_failed_hop_goes_to_another_peer_and_no_peer_means_waiting() {
        let mut s = Stem::new(cfg(1.0), 3);
        s.originate([2; 32], 0);
        s.handle_timeout(500, &[], &[]);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.next_timeout(), Some(550));
        s.handle_timeout(550, &[8, 9], &[]);
        let StemAction::Send { to: first, .. } = drain(&mut s)[0] else {
            panic!()
        };
        s.failed(&[2; 32], 600);
        s.handle_timeout(650, &[8, 9], &[]);
        let StemAction::Send { to: second, .. } = drain(&mut s)[0] else {
            panic!()
        };
        assert_ne!(first, second);
        // Every peer failed once: it tries them again rather than hold it forever.
        s.failed(&[2; 32], 700);
        s.handle_timeout(750, &[8, 9], &[]);
        assert_eq!(drain(&mut s).len(), 1);
    }

    #[test]
    fn never_relaying_fluffs_at_once_and_a_restart_resumes_a_send() {
        let mut s = Stem::new(cfg(0.0), 4);
        assert!(s.received([3; 32], 1, 0));
        assert_eq!(drain(&mut s), vec![StemAction::Fluff { id: [3; 32] }]);
        let mut t = Stem::new(cfg(0.8), 5);
        t.restore([4; 32], StemState::Sending { to: 2 }, 1000);
        assert_eq!(t.next_timeout(), Some(1050));
        t.handle_timeout(1050, &[2], &[]);
        assert_eq!(drain(&mut t).len(), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let run = |seed| {
            let mut s = Stem::new(cfg(0.5), seed);
            for i in 0..50u8 {
                s.received([i; 32], 1, 0);
            }
            s.handle_timeout(1000, &[1, 2, 3, 4], &[]);
            drain(&mut s)
        };
        assert_eq!(run(9), run(9));
    }
}
