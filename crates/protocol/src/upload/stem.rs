//! The stem phase of an upload (SPEC §7), as a sans-IO state machine: `event, time in →
//! actions out`, so the node and the million-node simulator run the same code.
//!
//! A container first travels hop by hop: the node holding it waits a random delay, then
//! hands it to one random wire peer. The receiver keeps it and, with probability
//! `relay_probability`, does the same after its own delay; otherwise it fluffs (makes it
//! a torrent and announces it). The originator behaves exactly like a relay that chose
//! to relay, so a peer receiving a container cannot tell whether its sender made it.
//! Nothing here announces anything: that is fluff, decided by this machine and done by
//! the driver. A node that handed an upload on keeps a fail-safe timer (Dandelion++):
//! if the upload is not seen in fluff by then, it fluffs it itself, so a peer that
//! swallows containers cannot make one disappear.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::gossip::PeerKey;

/// An upload's id before fluff: SHA-256 of the container (looks random).
pub type UploadId = [u8; 32];

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Delays, relay chance and fail-safe of the stem phase (SPEC §7).
#[derive(Clone, Debug)]
pub struct StemConfig {
    /// Each hop waits uniformly within this range, in ms (the design's default: 0 to 4
    /// days; tests use milliseconds).
    pub delay_ms: (u64, u64),
    /// Chance that a receiving node passes the container on rather than fluffing it.
    pub relay_probability: f64,
    /// How long to wait before trying again when no peer took it.
    pub retry_ms: u64,
    /// Dandelion++'s fail-safe: a node that handed an upload on and has not heard it
    /// fluffed within this range (uniform, ms) fluffs it itself, so a peer that takes
    /// containers and drops them cannot make one disappear. Long enough that an honest
    /// stem has almost always fluffed by then (see PROTOCOL.md §19).
    pub failsafe_ms: (u64, u64),
}

impl Default for StemConfig {
    fn default() -> Self {
        StemConfig {
            delay_ms: (0, 4 * 24 * 3600 * 1000),
            relay_probability: 0.8,
            retry_ms: 30_000,
            failsafe_ms: (60 * DAY_MS, 90 * DAY_MS),
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
    /// The peer it came from, never chosen as the next hop when another exists.
    from: Option<PeerKey>,
    /// Peers that failed to take it, avoided on the next try.
    failed: Vec<PeerKey>,
    /// Made here: never fluffed when it loops back, and its fail-safe runs after every
    /// relay's, so the originator is not the one that announces it.
    own: bool,
}

/// The stem phase on one node (module docs): each upload it holds before fluff, and where
/// it stands.
pub struct Stem {
    cfg: StemConfig,
    rng: StdRng,
    items: BTreeMap<UploadId, Item>,
    actions: VecDeque<StemAction>,
}

impl Stem {
    /// Nothing held yet; `seed` drives delays, relay choices and next hops, so runs repeat.
    pub fn new(cfg: StemConfig, seed: u64) -> Self {
        Stem {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            items: BTreeMap::new(),
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

    /// The local user made `id`: it waits, then takes its first hop.
    pub fn originate(&mut self, id: UploadId, now: u64) {
        let until = now + self.delay();
        self.items.entry(id).or_insert(Item {
            state: StemState::Waiting { until },
            from: None,
            failed: Vec::new(),
            own: true,
        });
    }

    /// A whole container arrived from `from` over the stem. Returns false when it was
    /// known already (the driver keeps one copy). One this node handed on that comes
    /// back (the walk made a loop) is a new arrival: the walk goes on from here, rather
    /// than end at a node that will not carry it further; the originator passes its own
    /// on again (it never fluffs it: nobody can tell, and it is not the first to
    /// announce its own upload).
    pub fn received(&mut self, id: UploadId, from: PeerKey, now: u64) -> bool {
        let own = match self.items.get(&id) {
            Some(i) if !matches!(i.state, StemState::Passed { .. }) => return false,
            Some(i) => i.own,
            None => false,
        };
        let relay = own
            || self
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
                own,
            },
        );
        true
    }

    /// After a restart: the state the driver saved, and whether it was made here. A
    /// send that was under way waits out a short retry, then goes to a peer again.
    pub fn restore(&mut self, id: UploadId, state: StemState, own: bool, now: u64) {
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
                own,
            },
        );
    }

    /// The next hop took it whole: the fail-safe timer starts (for the originator, in
    /// a range after the relays', which started later).
    pub fn sent(&mut self, id: &UploadId, now: u64) {
        let Some(own) = self.items.get(id).map(|i| i.own) else {
            return;
        };
        let (lo, hi) = self.cfg.failsafe_ms;
        let range = if own { (hi, hi + (hi - lo)) } else { (lo, hi) };
        let failsafe = now.saturating_add(self.uniform(range));
        if let Some(item) = self.items.get_mut(id)
            && matches!(item.state, StemState::Sending { .. })
        {
            item.state = StemState::Passed { failsafe };
        }
    }

    /// The upload was seen in fluff (announced by a peer, or fetched): this node's stem
    /// duty is over, and the fail-safe is off.
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

    /// Starts the hops that are due, each to one random peer of `peers` (the ready wire
    /// peers able to take a container), and fluffs uploads whose fail-safe ran out.
    pub fn handle_timeout(&mut self, now: u64, peers: &[PeerKey]) {
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
        for id in due {
            let item = self.items.get(&id).expect("due");
            // Prefer a peer that is neither the sender nor one that failed; fall back
            // to any peer rather than hold the upload forever.
            let fresh: Vec<PeerKey> = peers
                .iter()
                .copied()
                .filter(|p| Some(*p) != item.from && !item.failed.contains(p))
                .collect();
            let pool = if fresh.is_empty() {
                peers.to_vec()
            } else {
                fresh
            };
            let retry = self.cfg.retry_ms;
            let item = self.items.get_mut(&id).expect("due");
            if pool.is_empty() {
                item.state = StemState::Waiting { until: now + retry };
                continue;
            }
            if item.failed.len() >= peers.len() {
                item.failed.clear();
            }
            let to = pool[self.rng.gen_range(0..pool.len())];
            item.state = StemState::Sending { to };
            self.actions.push_back(StemAction::Send { id, to });
        }
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
            delay_ms: (100, 200),
            relay_probability: p,
            retry_ms: 50,
            failsafe_ms: (10_000, 20_000),
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
        s.handle_timeout(until - 1, &[5, 6, 7]);
        assert!(drain(&mut s).is_empty(), "nothing before the delay");
        s.handle_timeout(until, &[5, 6, 7]);
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
        // The originator's fail-safe comes after every relay's (10 to 20 s here).
        assert!((until + 20_000..=until + 30_000).contains(&failsafe));
        s.fluff_seen(&[1; 32]);
        assert_eq!(s.state(&[1; 32]), Some(StemState::Over));
        assert_eq!(s.next_timeout(), None);
    }

    #[test]
    fn a_container_that_comes_back_goes_on_from_here() {
        let mut s = Stem::new(cfg(1.0), 8);
        s.originate([7; 32], 0);
        s.handle_timeout(200, &[4, 5]);
        drain(&mut s);
        s.sent(&[7; 32], 250);
        let Some(StemState::Passed { failsafe }) = s.state(&[7; 32]) else {
            panic!()
        };
        assert!(
            failsafe >= 250 + 20_000,
            "the originator's fail-safe comes last"
        );
        // The walk made a loop and came back: it is taken on again, not dropped, and
        // the originator never fluffs its own.
        assert!(s.received([7; 32], 5, 300));
        assert!(matches!(s.state(&[7; 32]), Some(StemState::Waiting { .. })));
        assert!(!s.received([7; 32], 4, 301), "held and waiting: known");
        s.fluff_seen(&[7; 32]);
        assert!(!s.received([7; 32], 4, 302), "its stem is over");
        let mut never = Stem::new(cfg(0.0), 9);
        for i in 0..20u8 {
            never.restore([i; 32], StemState::Passed { failsafe: 1 << 40 }, true, 0);
            assert!(never.received([i; 32], 3, 10));
            assert!(matches!(
                never.state(&[i; 32]),
                Some(StemState::Waiting { .. })
            ));
        }
        assert!(drain(&mut never).is_empty());
    }

    #[test]
    fn a_container_not_seen_in_fluff_is_fluffed_by_the_fail_safe() {
        // The next hop took it and dropped it: nobody fluffs it, so this node does.
        let mut s = Stem::new(cfg(1.0), 2);
        s.originate([6; 32], 0);
        s.handle_timeout(200, &[4]);
        assert_eq!(drain(&mut s).len(), 1);
        s.sent(&[6; 32], 300);
        let failsafe = s.next_timeout().unwrap();
        s.handle_timeout(failsafe - 1, &[4]);
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(failsafe, &[4]);
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
        s.handle_timeout(1000, &[3, 4]);
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
        s.handle_timeout(500, &[]);
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.next_timeout(), Some(550));
        s.handle_timeout(550, &[8, 9]);
        let StemAction::Send { to: first, .. } = drain(&mut s)[0] else {
            panic!()
        };
        s.failed(&[2; 32], 600);
        s.handle_timeout(650, &[8, 9]);
        let StemAction::Send { to: second, .. } = drain(&mut s)[0] else {
            panic!()
        };
        assert_ne!(first, second);
        // Every peer failed once: it tries them again rather than hold it forever.
        s.failed(&[2; 32], 700);
        s.handle_timeout(750, &[8, 9]);
        assert_eq!(drain(&mut s).len(), 1);
    }

    #[test]
    fn never_relaying_fluffs_at_once_and_a_restart_resumes_a_send() {
        let mut s = Stem::new(cfg(0.0), 4);
        assert!(s.received([3; 32], 1, 0));
        assert_eq!(drain(&mut s), vec![StemAction::Fluff { id: [3; 32] }]);
        let mut t = Stem::new(cfg(0.8), 5);
        t.restore([4; 32], StemState::Sending { to: 2 }, false, 1000);
        assert_eq!(t.next_timeout(), Some(1050));
        t.handle_timeout(1050, &[2]);
        assert_eq!(drain(&mut t).len(), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let run = |seed| {
            let mut s = Stem::new(cfg(0.5), seed);
            for i in 0..50u8 {
                s.received([i; 32], 1, 0);
            }
            s.handle_timeout(1000, &[1, 2, 3, 4]);
            drain(&mut s)
        };
        assert_eq!(run(9), run(9));
    }
}
