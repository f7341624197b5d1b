//! Evidence hints (SPEC §8, PROTOCOL.md §17): a node that catches a peer forging tells
//! its wire peers, who pass it on a few hops, so the evidence reaches a node that holds
//! the blacklist key. A hint is signed by nobody and proves nothing: the auditor (an
//! auto-blacklist node) re-checks the accused itself before it counts.
//!
//! Sans-IO like the rest of the protocol: `hint in, time in → actions out`, so the node
//! and the simulator run the same code.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::gossip::PeerKey;
use crate::wire::Hint;

/// Hops a hint travels from the node that saw the misbehaviour.
pub const HOPS: u8 = 4;

/// Limits on relaying hints, and whether this node re-checks them (PROTOCOL.md §17).
#[derive(Clone, Debug)]
pub struct HintsConfig {
    /// This node re-checks hints (it runs auto-blacklisting).
    pub auditor: bool,
    /// Distinct hints relayed for peers per minute, at most, in all (what hints can
    /// cost a node and its peers). This node's own hints have a budget of the same size
    /// apart, so a flood of made-up hints never silences what it saw itself.
    pub per_minute: u32,
    /// Of `per_minute`, at most this many a minute for one relaying peer (by address),
    /// so one flooder cannot use up what other peers' hints need.
    pub per_source: u32,
    /// How long a (address, reason) pair is not hinted again.
    pub remember_ms: u64,
    /// Pairs remembered, at most (the oldest go first).
    pub capacity: usize,
}

impl Default for HintsConfig {
    fn default() -> Self {
        HintsConfig {
            auditor: false,
            per_minute: 30,
            per_source: 5,
            remember_ms: 3_600_000,
            capacity: 4096,
        }
    }
}

/// What the driver must do with a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HintAction {
    /// Send `hint` to every wire peer except `except`.
    Relay {
        /// The hint to send, with the hops it has left.
        hint: Hint,
        /// The peer it came from; `None` for this node's own.
        except: Option<PeerKey>,
    },
    /// (Auditors) `from` accuses `hint.ip`: re-check before believing it.
    Audit {
        /// The accusation as it arrived.
        hint: Hint,
        /// The peer that sent it.
        from: PeerKey,
    },
}

/// Which hints a node passes on (module docs): the (address, reason) pairs hinted
/// recently, and this minute's relay budgets.
pub struct Hints {
    cfg: HintsConfig,
    seen: HashMap<(IpAddr, String), u64>,
    order: VecDeque<((IpAddr, String), u64)>,
    /// This node's own hints: the minute's start (ms) and how many were sent in it.
    own: (u64, u32),
    /// Relayed hints: the minute's start and how many were relayed in it, in all.
    relayed: (u64, u32),
    /// Relayed hints this minute per relaying address (at most `per_minute` entries:
    /// one is made only for a hint relayed).
    sources: HashMap<IpAddr, u32>,
    actions: VecDeque<HintAction>,
}

impl Hints {
    /// Nothing remembered yet, and the full budgets.
    pub fn new(cfg: HintsConfig) -> Self {
        Hints {
            cfg,
            seen: HashMap::new(),
            order: VecDeque::new(),
            own: (0, 0),
            relayed: (0, 0),
            sources: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// This node itself recorded evidence against `hint.ip`.
    pub fn local(&mut self, mut hint: Hint, now: u64) {
        hint.hops = HOPS;
        if self.is_fresh(&hint, now) && self.allow_own(now) {
            self.remember(&hint, now);
            self.actions
                .push_back(HintAction::Relay { hint, except: None });
        }
    }

    /// A wire peer sent `hint`; `source` is its address (what the relay limit per peer
    /// counts, so several connections from one address share it).
    pub fn receive(&mut self, from: PeerKey, source: IpAddr, hint: Hint, now: u64) {
        if self.cfg.auditor {
            self.actions.push_back(HintAction::Audit {
                hint: hint.clone(),
                from,
            });
        }
        // A hint dropped by the rate limit is not remembered: a later copy, from another
        // peer, may travel.
        if !self.is_fresh(&hint, now) || hint.hops <= 1 || !self.allow_relay(source, now) {
            return;
        }
        self.remember(&hint, now);
        let hint = Hint {
            hops: hint.hops.min(HOPS) - 1,
            ..hint
        };
        self.actions.push_back(HintAction::Relay {
            hint,
            except: Some(from),
        });
    }

    /// The next action for the driver, if any: drain after every input.
    pub fn poll_action(&mut self) -> Option<HintAction> {
        let action = self.actions.pop_front();
        if action.is_none() && self.actions.capacity() > 0 {
            // An idle machine holds no queue: the simulator holds a million.
            self.actions = VecDeque::new();
        }
        action
    }

    /// True when the pair was not hinted within `remember_ms`.
    fn is_fresh(&self, hint: &Hint, now: u64) -> bool {
        self.seen
            .get(&(hint.ip, hint.reason.clone()))
            .is_none_or(|&at| now.saturating_sub(at) >= self.cfg.remember_ms)
    }

    fn remember(&mut self, hint: &Hint, now: u64) {
        let key = (hint.ip, hint.reason.clone());
        // At least one pair is remembered, whatever the configuration says.
        while self.order.len() >= self.cfg.capacity.max(1) {
            if let Some((old, at)) = self.order.pop_front()
                && self.seen.get(&old) == Some(&at)
            {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
    }

    fn allow_own(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.own.0) >= 60_000 {
            self.own = (now, 0);
        }
        if self.own.1 >= self.cfg.per_minute {
            return false;
        }
        self.own.1 += 1;
        true
    }

    fn allow_relay(&mut self, source: IpAddr, now: u64) -> bool {
        if now.saturating_sub(self.relayed.0) >= 60_000 {
            self.relayed = (now, 0);
            // A fresh map: an idle machine holds nothing (the simulator holds a million).
            self.sources = HashMap::new();
        }
        let from_source = self.sources.get(&source).copied().unwrap_or(0);
        if self.relayed.1 >= self.cfg.per_minute || from_source >= self.cfg.per_source {
            return false;
        }
        self.relayed.1 += 1;
        self.sources.insert(source, from_source + 1);
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hint accusing `ip` of `reason`, as the blacklist's tests use too.
    pub(crate) fn hint(ip: &str, reason: &str) -> Hint {
        Hint {
            ip: ip.parse().unwrap(),
            wire_port: Some(7000),
            bt_port: None,
            reason: reason.into(),
            object: None,
            hops: HOPS,
        }
    }

    /// The address of wire peer `key`.
    fn src(key: PeerKey) -> IpAddr {
        IpAddr::from([10, 9, 0, key as u8])
    }

    fn drain(h: &mut Hints) -> Vec<HintAction> {
        std::iter::from_fn(|| h.poll_action()).collect()
    }

    #[test]
    fn a_hint_travels_a_few_hops_once() {
        let mut h = Hints::new(HintsConfig::default());
        h.receive(1, src(1), hint("10.0.0.9", "bad-piece"), 0);
        assert_eq!(
            drain(&mut h),
            vec![HintAction::Relay {
                hint: Hint {
                    hops: HOPS - 1,
                    ..hint("10.0.0.9", "bad-piece")
                },
                except: Some(1)
            }]
        );
        // The same accusation again, from anyone: not relayed twice.
        h.receive(2, src(2), hint("10.0.0.9", "bad-piece"), 1000);
        h.local(hint("10.0.0.9", "bad-piece"), 2000);
        assert!(drain(&mut h).is_empty());
        // A hint on its last hop stops here.
        h.receive(
            2,
            src(2),
            Hint {
                hops: 1,
                ..hint("10.0.0.10", "bad-piece")
            },
            0,
        );
        assert!(drain(&mut h).is_empty());
        // After the memory runs out it may travel again.
        h.receive(2, src(2), hint("10.0.0.9", "bad-piece"), 3_600_001);
        assert_eq!(drain(&mut h).len(), 1);
    }

    #[test]
    fn a_memory_of_no_pairs_still_remembers_one() {
        let mut h = Hints::new(HintsConfig {
            capacity: 0,
            ..HintsConfig::default()
        });
        h.receive(1, src(1), hint("10.0.0.9", "bad-piece"), 0);
        h.receive(1, src(1), hint("10.0.0.8", "bad-piece"), 0);
        assert_eq!(drain(&mut h).len(), 2);
    }

    #[test]
    fn an_auditor_hears_every_accuser_and_relays_like_anyone() {
        let mut h = Hints::new(HintsConfig {
            auditor: true,
            ..Default::default()
        });
        h.receive(1, src(1), hint("10.0.0.9", "bad-signature"), 0);
        h.receive(2, src(2), hint("10.0.0.9", "bad-signature"), 0);
        let a = drain(&mut h);
        assert_eq!(a.len(), 3, "{a:?}");
        assert!(matches!(a[0], HintAction::Audit { from: 1, .. }));
        assert!(matches!(a[1], HintAction::Relay { .. }));
        assert!(matches!(a[2], HintAction::Audit { from: 2, .. }));
    }

    #[test]
    fn relaying_is_rate_limited_and_memory_bounded() {
        let mut h = Hints::new(HintsConfig {
            per_minute: 5,
            capacity: 3,
            ..Default::default()
        });
        for i in 0..10 {
            h.local(hint(&format!("10.0.1.{i}"), "bad-piece"), 0);
        }
        assert_eq!(drain(&mut h).len(), 5);
        assert!(h.seen.len() <= 3);
        // Those the limit dropped may still travel later.
        h.local(hint("10.0.1.9", "bad-piece"), 60_000);
        assert_eq!(drain(&mut h).len(), 1);
        h.local(hint("10.0.2.1", "bad-piece"), 60_000);
        assert_eq!(drain(&mut h).len(), 1, "the same new minute");
    }

    #[test]
    fn a_flood_from_one_peer_does_not_stop_another_peers_hint() {
        let mut h = Hints::new(HintsConfig::default());
        // A flooder makes up a thousand accusations in a second.
        for i in 0..1000u32 {
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            h.receive(1, src(1), hint(&ip, "bad-signature"), u64::from(i));
        }
        let flood = drain(&mut h).len() as u32;
        assert_eq!(flood, HintsConfig::default().per_source);
        // A second connection from the flooder's address shares its budget.
        h.receive(3, src(1), hint("10.99.0.1", "bad-signature"), 1000);
        assert!(drain(&mut h).is_empty());
        // A genuine hint from another peer still travels, and this node's own too.
        h.receive(2, src(2), hint("10.200.0.1", "bad-piece"), 1000);
        h.local(hint("10.200.0.2", "bad-piece"), 1000);
        assert_eq!(drain(&mut h).len(), 2);
        // The flooder's dropped hints were not remembered: another peer may relay them.
        h.receive(2, src(2), hint("10.0.3.231", "bad-signature"), 1000);
        assert_eq!(drain(&mut h).len(), 1);
    }

    #[test]
    fn relaying_stays_bounded_in_all_however_many_peers_send() {
        let mut h = Hints::new(HintsConfig::default());
        for i in 0..200u32 {
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            h.receive(i as PeerKey, src(i as PeerKey), hint(&ip, "malformed"), 0);
        }
        assert_eq!(
            drain(&mut h).len() as u32,
            HintsConfig::default().per_minute
        );
        assert!(h.sources.len() <= HintsConfig::default().per_minute as usize);
        // The next minute starts afresh.
        h.receive(7, src(7), hint("10.100.0.1", "malformed"), 60_000);
        assert_eq!(drain(&mut h).len(), 1);
        assert_eq!(h.sources.len(), 1);
    }
}
