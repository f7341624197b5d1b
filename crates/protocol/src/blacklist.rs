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

/// New accusations from one hinter (by address) waiting for their re-check, at most: a
/// flood of made-up accusations waits behind its own, not in front of others'.
pub const MAX_WAITING_PER_HINTER: u32 = 8;

/// Hinters remembered per accusation (only a figure for the log: they never count).
const MAX_HINTERS: usize = 64;

/// How long a torrent-form version being seeded and sent holds back the next one.
pub const PUBLISHING_MS: u64 = 120_000;

/// Record refusals that only a forger or tamperer causes: the record's bytes fail the
/// trust check whoever looks at them, so they are the sender's own doing.
fn record_forgery(reason: &str) -> bool {
    matches!(
        reason,
        "malformed"
            | "no-governing-role"
            | "duplicate-signer"
            | "bad-signature"
            | "not-enough-signatures"
            | "bad-key-set"
            | "key-set-not-inline"
    )
}

/// Evidence codes that count toward listing an address: records, pieces and metainfo
/// the peer itself sent over its own connection that failed verification. Nothing a
/// third party can cause counts: not what the DHT said about an address (anyone writes
/// DHT entries), not how a connection ended (bytes injected on the path, a scanner on
/// the port), not a clock disagreement (`from-the-future`).
pub fn counts(reason: &str) -> bool {
    record_forgery(reason) || matches!(reason, "bad-piece" | "bad-metainfo")
}

/// Evidence codes worth a hint: what counts and what an auditor can obtain again from
/// the accused itself, over a connection it opens (a forged record answered to `get`,
/// a bad piece from its BitTorrent port).
pub fn hintable(reason: &str) -> bool {
    record_forgery(reason) || reason == "bad-piece"
}

/// Where the re-check of an accusation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditState {
    /// Heard, waiting for a re-check to start ([`Enforcement::due_rechecks`]).
    Waiting,
    /// Handed to the driver to re-check, until [`Enforcement::rechecked`] reports it.
    Running,
    /// The last re-check obtained a forgery from the accused itself.
    Confirmed,
    /// The last re-check did not confirm it: it rests [`REFUTED_REST_MS`] before a new hint
    /// may re-check it.
    Refuted {
        /// When it was refuted, in ms.
        at: u64,
    },
}

/// An accusation an auditor heard, and who made it.
#[derive(Debug)]
struct Audit {
    hint: Hint,
    /// Who made it: the trigger of a re-check and a figure for the log, never a count.
    hinters: BTreeSet<IpAddr>,
    /// Whose budget of waiting accusations ([`MAX_WAITING_PER_HINTER`]) it uses.
    by: IpAddr,
    state: AuditState,
    /// Re-checks that confirmed it (each is one entry of the auditor's own evidence).
    confirmed: u32,
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
    /// Accusations waiting, per the hinter whose budget they use.
    waiting_by: BTreeMap<IpAddr, u32>,
    /// Re-checks running.
    running: usize,
    /// A torrent-form version on its way: version, when started (ms).
    publishing: Option<(u32, u64)>,
}

impl Auditor {
    fn count(&self, ip: IpAddr) -> u32 {
        self.suspects.get(&ip).map_or(0, |s| s.0)
    }

    fn wait(&mut self, by: IpAddr) {
        *self.waiting_by.entry(by).or_insert(0) += 1;
    }

    fn unwait(&mut self, by: IpAddr) {
        if let Some(n) = self.waiting_by.get_mut(&by) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.waiting_by.remove(&by);
            }
        }
    }

    /// Full: forgets accusations nothing more will come of (refuted ones whose rest is
    /// over, confirmed ones whose address is listed or past the threshold).
    fn prune(&mut self, list: &Blacklist, now: u64) {
        let (threshold, suspects) = (self.threshold, &self.suspects);
        self.audits.retain(|(ip, _), x| match x.state {
            AuditState::Waiting | AuditState::Running => true,
            AuditState::Refuted { at } => now.saturating_sub(at) <= REFUTED_REST_MS,
            AuditState::Confirmed => {
                !list.contains(*ip) && suspects.get(ip).map_or(0, |s| s.0) < threshold
            }
        });
    }
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
                    waiting_by: BTreeMap::new(),
                    running: 0,
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

    /// The blacklist in force (empty when none is).
    pub fn list(&self) -> &Blacklist {
        &self.list
    }

    /// True when this node runs auto-blacklisting (it was made with a threshold).
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

    /// This node recorded evidence of `reason` against `ip`: auditors count it when it
    /// is evidence that counts ([`counts`]); the rest is only the operator's to read.
    pub fn evidence(&mut self, ip: IpAddr, reason: &str) {
        if !counts(reason) {
            return;
        }
        if let Some(a) = self.auditor.as_mut() {
            let s = a.suspects.entry(ip).or_insert((0, String::new()));
            s.0 += 1;
            s.1 = reason.to_string();
        }
    }

    /// Evidence entries counted against `ip` (auditors; 0 otherwise).
    pub fn suspicion(&self, ip: IpAddr) -> u32 {
        self.auditor.as_ref().map_or(0, |a| a.count(ip))
    }

    /// (Auditors) the wire peer at `hinter` accuses `hint.ip`. A hint never counts: at
    /// most it starts a re-check, whose own finding is what may count. True when a
    /// re-check may be due: the driver then calls [`Enforcement::due_rechecks`].
    pub fn hint(&mut self, hint: Hint, hinter: IpAddr, own: IpAddr, now: u64) -> bool {
        if hint.ip == own || self.list.contains(hint.ip) || !hintable(&hint.reason) {
            return false;
        }
        let Some(a) = self.auditor.as_mut() else {
            return false;
        };
        let key = (hint.ip, hint.reason.clone());
        if !a.audits.contains_key(&key) {
            if a.waiting_by.get(&hinter).copied().unwrap_or(0) >= MAX_WAITING_PER_HINTER {
                return false;
            }
            if a.audits.len() >= MAX_AUDITS {
                a.prune(&self.list, now);
                if a.audits.len() >= MAX_AUDITS {
                    return false;
                }
            }
            a.audits.insert(
                key.clone(),
                Audit {
                    hint: hint.clone(),
                    hinters: BTreeSet::new(),
                    by: hinter,
                    state: AuditState::Waiting,
                    confirmed: 0,
                },
            );
            a.wait(hinter);
        }
        let Some(audit) = a.audits.get_mut(&key) else {
            return false;
        };
        if audit.hinters.len() < MAX_HINTERS {
            audit.hinters.insert(hinter);
        }
        match audit.state {
            AuditState::Refuted { at } if now.saturating_sub(at) > REFUTED_REST_MS => {
                // Newer ports may reach it now.
                audit.hint = hint;
                audit.state = AuditState::Waiting;
                audit.by = hinter;
                a.wait(hinter);
                true
            }
            AuditState::Waiting => true,
            _ => false,
        }
    }

    /// (Auditors) re-checks to start now, at most [`MAX_RECHECKS`] running at once; each
    /// is marked running until [`Enforcement::rechecked`] reports it. Due: accusations
    /// waiting (those more nodes made first), then confirmed ones whose address is not
    /// yet at the threshold: each confirming re-check is one entry of the auditor's own
    /// evidence, so it looks again (at most `threshold` times) rather than counting
    /// the hinters.
    pub fn due_rechecks(&mut self) -> Vec<Hint> {
        let Some(a) = self.auditor.as_mut() else {
            return Vec::new();
        };
        if a.running >= MAX_RECHECKS {
            return Vec::new();
        }
        let mut due: Vec<(bool, usize, (IpAddr, String))> = Vec::new();
        for (key, x) in &a.audits {
            let again = x.state == AuditState::Confirmed
                && x.confirmed < a.threshold
                && a.count(key.0) < a.threshold
                && !self.list.contains(key.0);
            if x.state == AuditState::Waiting || again {
                due.push((again, usize::MAX - x.hinters.len(), key.clone()));
            }
        }
        // Waiting before looking again; more accusers first; then address order (the
        // same events give the same re-checks: the simulator relies on it).
        due.sort();
        due.truncate(MAX_RECHECKS - a.running);
        let mut hints = Vec::with_capacity(due.len());
        for (_, _, key) in due {
            let Some(x) = a.audits.get_mut(&key) else {
                continue;
            };
            let (by, waited) = (x.by, x.state == AuditState::Waiting);
            x.state = AuditState::Running;
            hints.push(x.hint.clone());
            a.running += 1;
            if waited {
                a.unwait(by);
            }
        }
        hints
    }

    /// (Auditors) the driver's own re-check of `hint` is done. Returns how many nodes
    /// made the accusation when the re-check confirmed it, `None` when it did not (or
    /// the accusation is no longer followed). Nothing is counted here: the driver
    /// records the confirmation as evidence of its own ([`Enforcement::evidence`]),
    /// which counts once, whoever and however many made the accusation.
    pub fn rechecked(&mut self, hint: &Hint, confirmed: bool, now: u64) -> Option<u32> {
        let a = self.auditor.as_mut()?;
        let audit = a.audits.get_mut(&(hint.ip, hint.reason.clone()))?;
        if audit.state == AuditState::Running {
            a.running = a.running.saturating_sub(1);
        }
        if !confirmed {
            audit.state = AuditState::Refuted { at: now };
            return None;
        }
        audit.state = AuditState::Confirmed;
        audit.confirmed += 1;
        Some(audit.hinters.len() as u32)
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

    use crate::hints::tests::hint;

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
    fn only_what_a_peer_sent_itself_counts() {
        let mut e = Enforcement::new(Some(1));
        for reason in [
            "dht-empty-announce",
            "dht-false-announce",
            "wire-garbage",
            "wire-malformed",
            "wire-oversized",
            "wire-rate-limited",
            "wire-timeout",
            "from-the-future",
            "blob-breach",
        ] {
            e.evidence(ip("10.0.0.9"), reason);
            assert!(!hintable(reason), "{reason}");
        }
        assert_eq!(e.suspicion(ip("10.0.0.9")), 0);
        assert!(e.next_list(ip(OWN), 0).is_none());
        for reason in ["bad-signature", "malformed", "bad-piece", "bad-metainfo"] {
            e.evidence(ip("10.0.0.8"), reason);
        }
        assert_eq!(e.suspicion(ip("10.0.0.8")), 4);
        assert!(!hintable("bad-metainfo") && hintable("bad-piece"));
    }

    /// The driver's side of a re-check: its finding, recorded as its own evidence.
    fn recheck(e: &mut Enforcement, h: &Hint, confirmed: bool, now: u64) -> Option<u32> {
        let hinters = e.rechecked(h, confirmed, now);
        if hinters.is_some() {
            e.evidence(h.ip, &h.reason);
        }
        hinters
    }

    #[test]
    fn hints_only_trigger_rechecks_and_each_confirmation_counts_once() {
        let mut e = Enforcement::new(Some(3));
        let h = hint("10.0.0.9", "bad-signature");
        assert!(e.hint(h.clone(), ip("10.0.0.2"), ip(OWN), 0));
        assert!(!e.hint(hint("10.0.0.9", "slow"), ip("10.0.0.2"), ip(OWN), 0));
        assert!(!e.hint(
            hint("10.0.0.9", "dht-empty-announce"),
            ip("10.0.0.2"),
            ip(OWN),
            0
        ));
        assert!(!e.hint(hint(OWN, "bad-signature"), ip("10.0.0.2"), ip(OWN), 0));
        assert!(e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 0));
        assert!(e.hint(h.clone(), ip("10.0.0.4"), ip(OWN), 0));
        assert_eq!(e.suspicion(ip("10.0.0.9")), 0, "hints never count");
        assert_eq!(e.due_rechecks(), vec![h.clone()]);
        assert!(e.due_rechecks().is_empty(), "running already");
        assert_eq!(recheck(&mut e, &h, true, 10), Some(3));
        assert_eq!(
            e.suspicion(ip("10.0.0.9")),
            1,
            "three accusers, one confirmation: one entry"
        );
        assert_eq!(
            e.audit_state(ip("10.0.0.9"), "bad-signature"),
            Some(AuditState::Confirmed)
        );
        // More accusers add nothing; the auditor looks again itself, up to the threshold.
        assert!(!e.hint(h.clone(), ip("10.0.0.5"), ip(OWN), 20));
        assert_eq!(e.suspicion(ip("10.0.0.9")), 1);
        for n in 2..=3 {
            assert_eq!(e.due_rechecks(), vec![h.clone()]);
            recheck(&mut e, &h, true, 30);
            assert_eq!(e.suspicion(ip("10.0.0.9")), n);
        }
        assert!(
            e.due_rechecks().is_empty(),
            "at the threshold: no more looks"
        );
        assert!(e.next_list(ip(OWN), 40).is_some());
    }

    #[test]
    fn a_refuted_accusation_rests_and_rechecks_are_bounded() {
        let mut e = Enforcement::new(Some(3));
        let h = hint("10.0.0.9", "bad-piece");
        e.hint(h.clone(), ip("10.0.0.2"), ip(OWN), 0);
        e.due_rechecks();
        assert_eq!(recheck(&mut e, &h, false, 100), None);
        assert_eq!(e.suspicion(ip("10.0.0.9")), 0);
        assert!(!e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 100 + REFUTED_REST_MS));
        assert!(e.hint(h.clone(), ip("10.0.0.3"), ip(OWN), 101 + REFUTED_REST_MS));
        for i in 0..10 {
            e.hint(
                hint(&format!("10.0.1.{i}"), "malformed"),
                ip(&format!("10.0.2.{i}")),
                ip(OWN),
                0,
            );
        }
        assert_eq!(e.due_rechecks().len(), MAX_RECHECKS);
        assert!(e.due_rechecks().is_empty());
    }

    #[test]
    fn a_flood_of_accusations_from_one_hinter_waits_behind_its_own() {
        let mut e = Enforcement::new(Some(3));
        let flooder = ip("10.0.0.66");
        let taken = (0..100)
            .filter(|i| {
                e.hint(
                    hint(&format!("10.1.{}.{}", i / 200, i % 200), "malformed"),
                    flooder,
                    ip(OWN),
                    0,
                )
            })
            .count();
        assert_eq!(taken, MAX_WAITING_PER_HINTER as usize);
        // Another node's accusation is taken, and one made by several goes first.
        let genuine = hint("10.200.0.1", "bad-signature");
        assert!(e.hint(genuine.clone(), ip("10.0.0.2"), ip(OWN), 0));
        assert!(e.hint(genuine.clone(), ip("10.0.0.3"), ip(OWN), 0));
        assert_eq!(e.due_rechecks()[0], genuine);
    }
}
