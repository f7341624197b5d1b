//! Blacklist enforcement (SPEC §8) as a sans-IO state machine: the list in force, and,
//! on an auto-blacklist node (an auditor), the evidence counted per address, the
//! accusations heard from other nodes and where their re-checks stand, and which
//! addresses the next signed version lists.
//!
//! The node drives it with sockets, librqbit and a signing key (`node/core/blacklist.rs`,
//! `node/core/audit.rs`); the simulator drives the same code with virtual ones. What
//! needs IO stays with the driver: re-checking an accused peer, signing and sending the
//! new version, closing connections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::content::{Blacklist, BlacklistEntry};
use crate::wire::Hint;

/// Re-checks an auditor runs at once, at most.
pub const MAX_RECHECKS: usize = 4;

/// How long a refuted accusation rests before a new hint may re-check it.
pub const REFUTED_REST_MS: u64 = 600_000;

/// Accusations remembered, at most.
pub const MAX_AUDITS: usize = 4096;

/// How long a torrent-form version being seeded and sent holds back the next one.
pub const PUBLISHING_MS: u64 = 120_000;

/// Evidence codes worth a hint: what an auditor can check again by itself.
pub fn hintable(reason: &str) -> bool {
    matches!(
        reason,
        "bad-piece"
            | "dht-empty-announce"
            | "dht-false-announce"
            | "malformed"
            | "no-governing-role"
            | "duplicate-signer"
            | "bad-signature"
            | "not-enough-signatures"
            | "bad-key-set"
            | "key-set-not-inline"
    )
}

/// Where the re-check of an accusation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditState {
    Waiting,
    Running,
    Confirmed,
    Refuted { at: u64 },
}

/// An accusation an auditor heard, and who made it.
#[derive(Debug)]
struct Audit {
    hint: Hint,
    hinters: BTreeSet<IpAddr>,
    state: AuditState,
}

/// What only an auto-blacklist node keeps.
#[derive(Debug)]
struct Auditor {
    /// Evidence entries from one address before it is listed.
    threshold: u32,
    /// Evidence count and last reason per address. (Ordered maps: the same events
    /// give the same re-checks and lists, which the simulator's runs rely on.)
    suspects: BTreeMap<IpAddr, (u32, String)>,
    /// Accusations heard, per accused address and reason.
    audits: BTreeMap<(IpAddr, String), Audit>,
    /// A torrent-form version on its way: version, when started (ms).
    publishing: Option<(u32, u64)>,
}

/// The blacklist in force, and (auditors) what the next version will list.
#[derive(Debug, Default)]
pub struct Enforcement {
    list: Blacklist,
    /// Version of `list` (0: none yet).
    version: u32,
    /// Boxed: most nodes are not auditors, and the simulator holds a million of these.
    auditor: Option<Box<Auditor>>,
}

impl Enforcement {
    /// `auto_threshold`: run as an auditor, listing an address once it has this many
    /// evidence entries (`None`: only apply what the network publishes).
    pub fn new(auto_threshold: Option<u32>) -> Self {
        Enforcement {
            list: Blacklist::default(),
            version: 0,
            auditor: auto_threshold.map(|threshold| {
                Box::new(Auditor {
                    threshold,
                    suspects: BTreeMap::new(),
                    audits: BTreeMap::new(),
                    publishing: None,
                })
            }),
        }
    }

    /// True when `ip` is listed in the version in force.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.list.contains(ip)
    }

    /// The version in force (0: none).
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn list(&self) -> &Blacklist {
        &self.list
    }

    pub fn is_auditor(&self) -> bool {
        self.auditor.is_some()
    }

    /// Puts `list` in force as `version`. False (and nothing changes) when a version as
    /// new is already in force. Addresses it lists stop being suspects.
    pub fn put_in_force(&mut self, version: u32, list: Blacklist) -> bool {
        if version <= self.version {
            return false;
        }
        if let Some(a) = self.auditor.as_mut() {
            a.suspects.retain(|ip, _| !list.contains(*ip));
            if a.publishing.is_some_and(|(v, _)| v <= version) {
                a.publishing = None;
            }
        }
        self.list = list;
        self.version = version;
        true
    }

    /// The list in force is no longer vouched for (a rotation of the blacklist role
    /// dropped it): nothing is in force until the current list arrives.
    pub fn withdraw(&mut self) {
        self.list = Blacklist::default();
        self.version = 0;
    }

    /// This node recorded evidence of `reason` against `ip` (auditors count it).
    pub fn evidence(&mut self, ip: IpAddr, reason: &str) {
        if let Some(a) = self.auditor.as_mut() {
            let s = a.suspects.entry(ip).or_insert((0, String::new()));
            s.0 += 1;
            s.1 = reason.to_string();
        }
    }

    /// Evidence entries counted against `ip` (auditors; 0 otherwise).
    pub fn suspicion(&self, ip: IpAddr) -> u32 {
        self.auditor
            .as_ref()
            .and_then(|a| a.suspects.get(&ip))
            .map_or(0, |s| s.0)
    }

    /// (Auditors) the wire peer at `hinter` accuses `hint.ip`. True when a re-check may
    /// be due: the driver then calls [`Enforcement::due_rechecks`].
    pub fn hint(&mut self, hint: Hint, hinter: IpAddr, own: IpAddr, now: u64) -> bool {
        if hint.ip == own || self.list.contains(hint.ip) || !hintable(&hint.reason) {
            return false;
        }
        let Some(a) = self.auditor.as_mut() else {
            return false;
        };
        let key = (hint.ip, hint.reason.clone());
        if a.audits.len() >= MAX_AUDITS && !a.audits.contains_key(&key) {
            return false;
        }
        let audit = a.audits.entry(key).or_insert_with(|| Audit {
            hint: hint.clone(),
            hinters: BTreeSet::new(),
            state: AuditState::Waiting,
        });
        let new_hinter = audit.hinters.insert(hinter);
        match audit.state {
            AuditState::Confirmed if new_hinter => {
                a.suspects.entry(hint.ip).or_insert((0, hint.reason)).0 += 1;
                false
            }
            AuditState::Refuted { at } if now.saturating_sub(at) > REFUTED_REST_MS => {
                // Newer ports may reach it now.
                audit.hint = hint;
                audit.state = AuditState::Waiting;
                true
            }
            AuditState::Waiting => true,
            _ => false,
        }
    }

    /// (Auditors) waiting re-checks to start now, at most [`MAX_RECHECKS`] running at
    /// once; each is marked running until [`Enforcement::rechecked`] reports it.
    pub fn due_rechecks(&mut self) -> Vec<Hint> {
        let Some(a) = self.auditor.as_mut() else {
            return Vec::new();
        };
        let running = a
            .audits
            .values()
            .filter(|x| x.state == AuditState::Running)
            .count();
        let mut due = Vec::new();
        for audit in a.audits.values_mut() {
            if running + due.len() >= MAX_RECHECKS {
                break;
            }
            if audit.state == AuditState::Waiting {
                audit.state = AuditState::Running;
                due.push(audit.hint.clone());
            }
        }
        due
    }

    /// (Auditors) the driver's own re-check of `hint` is done. When it confirmed the
    /// accusation, every node that made it counts toward the threshold (unless the
    /// address is listed already); returns how many made it, `None` when it was not
    /// confirmed or no longer followed. The driver records the confirmation as
    /// evidence of its own ([`Enforcement::evidence`]).
    pub fn rechecked(&mut self, hint: &Hint, confirmed: bool, now: u64) -> Option<u32> {
        let listed = self.list.contains(hint.ip);
        let a = self.auditor.as_mut()?;
        let audit = a.audits.get_mut(&(hint.ip, hint.reason.clone()))?;
        if !confirmed {
            audit.state = AuditState::Refuted { at: now };
            return None;
        }
        audit.state = AuditState::Confirmed;
        let hinters = audit.hinters.len() as u32;
        if !listed {
            a.suspects
                .entry(hint.ip)
                .or_insert((0, hint.reason.clone()))
                .0 += hinters;
        }
        Some(hinters)
    }

    /// The state of the accusation (`ip`, `reason`), if heard.
    pub fn audit_state(&self, ip: IpAddr, reason: &str) -> Option<AuditState> {
        self.auditor
            .as_ref()?
            .audits
            .get(&(ip, reason.to_string()))
            .map(|a| a.state)
    }

    /// (Auditors) the list the next version should carry: the one in force plus every
    /// address (other than `own`) with at least the threshold of evidence entries.
    /// `None` when nothing new reached the threshold, or while a torrent-form version
    /// is still on its way.
    pub fn next_list(&self, own: IpAddr, now: u64) -> Option<Blacklist> {
        let a = self.auditor.as_ref()?;
        if a.publishing
            .is_some_and(|(_, at)| now.saturating_sub(at) < PUBLISHING_MS)
        {
            return None;
        }
        let mut list = self.list.clone();
        let before = list.entries.len();
        let new = a.suspects.iter().filter(|(ip, (count, _))| {
            *count >= a.threshold && !self.list.contains(**ip) && **ip != own
        });
        for (ip, (count, reason)) in new {
            list.entries.push(BlacklistEntry {
                addr: ipnet::IpNet::from(*ip),
                reason: format!("auto: {count} x {reason}"),
                since: now / 1000,
            });
        }
        (list.entries.len() > before).then_some(list)
    }

    /// (Auditors) version `version` travels as a torrent and is being seeded and sent
    /// since `now`: the next one waits for it (at most [`PUBLISHING_MS`]).
    pub fn publishing(&mut self, version: u32, now: u64) {
        if let Some(a) = self.auditor.as_mut() {
            a.publishing = Some((version, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(ip: &str, reason: &str) -> Hint {
        Hint {
            ip: ip.parse().unwrap(),
            wire_port: Some(7000),
            bt_port: None,
            reason: reason.into(),
            object: None,
            hops: crate::hints::HOPS,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const OWN: &str = "10.0.0.1";

    #[test]
    fn a_plain_node_applies_newer_lists_only_and_counts_nothing() {
        let mut e = Enforcement::new(None);
        let list = Blacklist::from_text("10.0.0.9 forger\n", 5).unwrap();
        assert!(e.put_in_force(2, list.clone()));
        assert!(e.contains(ip("10.0.0.9")) && !e.contains(ip("10.0.0.8")));
        assert!(!e.put_in_force(2, Blacklist::default()), "not newer");
        assert!(e.contains(ip("10.0.0.9")));
        e.evidence(ip("10.0.0.8"), "bad-signature");
        assert_eq!(e.suspicion(ip("10.0.0.8")), 0);
        assert!(!e.hint(
            hint("10.0.0.8", "bad-signature"),
            ip("10.0.0.2"),
            ip(OWN),
            0
        ));
        assert!(e.next_list(ip(OWN), 0).is_none());
    }

    #[test]
    fn evidence_past_the_threshold_makes_the_next_list() {
        let mut e = Enforcement::new(Some(3));
        for _ in 0..2 {
            e.evidence(ip("10.0.0.9"), "bad-signature");
        }
        e.evidence(ip(OWN), "bad-signature");
        assert!(e.next_list(ip(OWN), 1_000).is_none(), "two are not enough");
        e.evidence(ip("10.0.0.9"), "bad-signature");
        for _ in 0..3 {
            e.evidence(ip(OWN), "bad-signature");
        }
        let list = e.next_list(ip(OWN), 1_000_000).unwrap();
        assert_eq!(list.entries.len(), 1, "never its own address");
        assert_eq!(list.entries[0].reason, "auto: 3 x bad-signature");
        assert_eq!(list.entries[0].since, 1000);
        assert!(e.put_in_force(1, list));
        assert_eq!(
            e.suspicion(ip("10.0.0.9")),
            0,
            "listed: no longer a suspect"
        );
        assert!(e.next_list(ip(OWN), 2_000_000).is_none());
        // A torrent-form version on its way holds the next one back for a while.
        for _ in 0..3 {
            e.evidence(ip("10.0.0.7"), "malformed");
        }
        e.publishing(2, 2_000_000);
        assert!(
            e.next_list(ip(OWN), 2_000_000 + PUBLISHING_MS - 1)
                .is_none()
        );
        assert!(e.next_list(ip(OWN), 2_000_000 + PUBLISHING_MS).is_some());
        e.publishing(2, 3_000_000);
        assert!(e.put_in_force(2, Blacklist::default()));
        assert!(e.next_list(ip(OWN), 3_000_000).is_some(), "it landed");
    }

    #[test]
    fn hints_count_only_after_a_confirming_recheck() {
        let mut e = Enforcement::new(Some(3));
        let h = hint("10.0.0.9", "bad-signature");
        assert!(e.hint(h.clone(), ip("10.0.0.2"), ip(OWN), 0));
        assert!(!e.hint(hint("10.0.0.9", "slow"), ip("10.0.0.2"), ip(OWN), 0));
        assert!(!e.hint(hint(OWN, "bad-signature"), ip("10.0.0.2"), ip(OWN), 0));
        assert!(e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 0));
        assert_eq!(e.suspicion(ip("10.0.0.9")), 0, "hints never count alone");
        assert_eq!(e.due_rechecks(), vec![h.clone()]);
        assert!(e.due_rechecks().is_empty(), "running already");
        assert_eq!(e.rechecked(&h, true, 10), Some(2));
        assert_eq!(e.suspicion(ip("10.0.0.9")), 2);
        // A new accuser of a confirmed accusation counts at once; a known one does not.
        assert!(!e.hint(h.clone(), ip("10.0.0.4"), ip(OWN), 20));
        assert!(!e.hint(h.clone(), ip("10.0.0.4"), ip(OWN), 20));
        assert_eq!(e.suspicion(ip("10.0.0.9")), 3);
        assert_eq!(
            e.audit_state(ip("10.0.0.9"), "bad-signature"),
            Some(AuditState::Confirmed)
        );
    }

    #[test]
    fn a_refuted_accusation_rests_and_rechecks_are_bounded() {
        let mut e = Enforcement::new(Some(3));
        let h = hint("10.0.0.9", "bad-piece");
        e.hint(h.clone(), ip("10.0.0.2"), ip(OWN), 0);
        e.due_rechecks();
        assert_eq!(e.rechecked(&h, false, 100), None);
        assert!(!e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 100 + REFUTED_REST_MS));
        assert!(e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 101 + REFUTED_REST_MS));
        for i in 0..10 {
            e.hint(
                hint(&format!("10.0.1.{i}"), "malformed"),
                ip("10.0.0.2"),
                ip(OWN),
                0,
            );
        }
        assert_eq!(e.due_rechecks().len(), MAX_RECHECKS);
        assert!(e.due_rechecks().is_empty());
    }
}
