//! The prober's bookkeeping (SPEC §10), sans-IO: which candidate to probe when, how
//! many at once, and what each probe's outcome does to the healthy set. The driver
//! (`dns::service`) fetches and verifies; this decides.
//!
//! - A new candidate is probed at once (within the concurrency cap).
//! - A healthy one is probed again within `interval` (never later: the jitter only
//!   makes it earlier, so probes of many nodes do not fall into step).
//! - A failure counts; after `drop_after` in a row a healthy node leaves the answers.
//!   Failed candidates are retried after `interval × 2^(failures-1)`, at most
//!   `retry_max`, so dead DHT entries cost little and a restarted node comes back.
//! - A node serving a validly signed but older release is alive and not healthy; one
//!   serving something that fails verification is retried only after `retry_max`.
//! - Healthy = serving the newest authentic release seen (from the trust store or from
//!   the probes themselves).
//!
//! Memory is bounded by `max_candidates` (new ones are refused past it; `sweep`
//! forgets candidates nobody named for a while).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the prober schedules probes (from the zone file's `[probe]` table).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSettings {
    /// A healthy node is probed again within this many milliseconds.
    pub interval_ms: u64,
    /// Fraction of the interval (0 ≤ jitter < 1) by which a probe may come earlier.
    pub jitter: f64,
    /// Failed probes in a row before a healthy node leaves the answers.
    pub drop_after: u32,
    /// Longest wait before probing a failed or refused candidate again.
    pub retry_max_ms: u64,
    /// Probes in flight at most.
    pub concurrency: usize,
    /// Candidates remembered at most.
    pub max_candidates: usize,
}

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node serves this version of the release, authentic (verified).
    Serves {
        /// The release's version number.
        version: u32,
    },
    /// It serves a record that fails verification (forged, another site or network).
    Refused {
        /// What failed, for logs.
        why: String,
    },
    /// No answer, no release, or not a record.
    Unreachable {
        /// What went wrong, for logs.
        why: String,
    },
}

/// A change of the healthy set, for logs and the event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A node joined the healthy set.
    Up {
        /// The node's address.
        ip: IpAddr,
        /// The release version it serves.
        version: u32,
    },
    /// A node left the healthy set.
    Down {
        /// The node's address.
        ip: IpAddr,
        /// Why: a failed probe, an older release, a blacklisting, …
        why: String,
    },
}

#[derive(Debug)]
struct Candidate {
    /// When it is due (meaningless while in flight).
    due: u64,
    in_flight: bool,
    failures: u32,
    /// The authentic version it served at its last answer.
    serves: Option<u32>,
    /// When someone last named it as a candidate.
    seen: u64,
}

/// Counters for the status page and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProberStats {
    /// Candidates remembered.
    pub candidates: usize,
    /// Probes under way.
    pub in_flight: usize,
    /// Nodes in the healthy set.
    pub healthy: usize,
    /// The newest authentic release version known (0: none yet).
    pub newest: u32,
    /// Probes finished since the start.
    pub probes: u64,
    /// Candidates not taken because `max_candidates` was reached.
    pub refused_full: u64,
}

/// The prober's state: the candidates, when each is due, and the healthy set (see the
/// module doc).
pub struct Prober {
    s: ProbeSettings,
    rng: StdRng,
    cands: HashMap<IpAddr, Candidate>,
    /// (due, address) of every candidate not in flight.
    queue: BTreeSet<(u64, IpAddr)>,
    healthy: HashSet<IpAddr>,
    in_flight: usize,
    newest: u32,
    probes: u64,
    refused_full: u64,
    changes: VecDeque<Change>,
}

impl Prober {
    /// A prober with no candidates yet; `seed` seeds the random jitter.
    pub fn new(settings: ProbeSettings, seed: u64) -> Self {
        Prober {
            s: settings,
            rng: StdRng::seed_from_u64(seed),
            cands: HashMap::new(),
            queue: BTreeSet::new(),
            healthy: HashSet::new(),
            in_flight: 0,
            newest: 0,
            probes: 0,
            refused_full: 0,
            changes: VecDeque::new(),
        }
    }

    /// Someone (the DHT, a wire peer, the seed list) named `ip`. A new one is due now;
    /// returns whether it was new.
    pub fn discovered(&mut self, ip: IpAddr, now: u64) -> bool {
        if let Some(c) = self.cands.get_mut(&ip) {
            c.seen = now;
            return false;
        }
        if self.cands.len() >= self.s.max_candidates {
            self.refused_full += 1;
            return false;
        }
        self.cands.insert(
            ip,
            Candidate {
                due: now,
                in_flight: false,
                failures: 0,
                serves: None,
                seen: now,
            },
        );
        self.queue.insert((now, ip));
        true
    }

    /// Forgets `ip` (it was blacklisted); a probe in flight still reports back.
    pub fn remove(&mut self, ip: IpAddr, why: &str) {
        if let Some(c) = self.cands.remove(&ip)
            && !c.in_flight
        {
            self.queue.remove(&(c.due, ip));
        }
        if self.healthy.remove(&ip) {
            self.changes.push_back(Change::Down {
                ip,
                why: why.to_string(),
            });
        }
    }

    /// The candidates to probe now, within the concurrency cap; each must be answered
    /// with [`Prober::finished`].
    pub fn due(&mut self, now: u64) -> Vec<IpAddr> {
        let mut out = Vec::new();
        while self.in_flight < self.s.concurrency {
            let Some(&(due, ip)) = self.queue.first() else {
                break;
            };
            if due > now {
                break;
            }
            self.queue.pop_first();
            if let Some(c) = self.cands.get_mut(&ip) {
                c.in_flight = true;
            }
            self.in_flight += 1;
            out.push(ip);
        }
        out
    }

    /// When the next probe is due, if one can start then.
    pub fn next_due(&self) -> Option<u64> {
        if self.in_flight >= self.s.concurrency {
            return None;
        }
        self.queue.first().map(|(d, _)| *d)
    }

    /// A probe handed out by [`Prober::due`] is done.
    pub fn finished(&mut self, ip: IpAddr, outcome: Outcome, now: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.probes += 1;
        if let Outcome::Serves { version } = outcome {
            // Recorded first, so that a node bringing news is not demoted by it.
            if let Some(c) = self.cands.get_mut(&ip) {
                c.serves = Some(version);
            }
            self.set_newest(version);
        }
        let (interval, retry_max, drop_after) =
            (self.s.interval_ms, self.s.retry_max_ms, self.s.drop_after);
        let Some(c) = self.cands.get_mut(&ip) else {
            return; // removed while in flight
        };
        c.in_flight = false;
        let was_healthy = self.healthy.contains(&ip);
        let (wait, healthy, why) = match outcome {
            Outcome::Serves { version } => {
                c.failures = 0;
                c.serves = Some(version);
                let newest = version == self.newest;
                let why = format!("serves v{version}, v{} is out", self.newest);
                (interval, newest, (!newest).then_some(why))
            }
            Outcome::Refused { why } => {
                c.failures = 0;
                c.serves = None;
                (retry_max, false, Some(why))
            }
            Outcome::Unreachable { why } => {
                c.failures = c.failures.saturating_add(1);
                let backoff = interval.saturating_mul(1 << (c.failures - 1).min(20));
                let keep = was_healthy && c.failures < drop_after;
                (backoff.min(retry_max), keep, Some(why))
            }
        };
        let version = c.serves.unwrap_or(0);
        let wait = wait - (wait as f64 * self.s.jitter * self.rng.r#gen::<f64>()) as u64;
        c.due = now + wait;
        self.queue.insert((c.due, ip));
        match (was_healthy, healthy) {
            (false, true) => {
                self.healthy.insert(ip);
                self.changes.push_back(Change::Up { ip, version });
            }
            (true, false) => {
                self.healthy.remove(&ip);
                self.changes.push_back(Change::Down {
                    ip,
                    why: why.unwrap_or_default(),
                });
            }
            _ => {}
        }
    }

    /// The newest authentic release is `version` (from the trust store, or a probe):
    /// nodes serving an older one leave the answers.
    pub fn set_newest(&mut self, version: u32) {
        if version <= self.newest {
            return;
        }
        self.newest = version;
        let stale: Vec<IpAddr> = self
            .healthy
            .iter()
            .filter(|ip| {
                self.cands
                    .get(ip)
                    .is_none_or(|c| c.serves.is_none_or(|v| v < version))
            })
            .copied()
            .collect();
        for ip in stale {
            self.healthy.remove(&ip);
            let old = self.cands.get(&ip).and_then(|c| c.serves).unwrap_or(0);
            self.changes.push_back(Change::Down {
                ip,
                why: format!("serves v{old}, v{version} is out"),
            });
        }
    }

    /// Forgets candidates that are not healthy, not being probed, and that nobody
    /// named since `before` (milliseconds).
    pub fn sweep(&mut self, before: u64) {
        let old: Vec<(IpAddr, u64)> = self
            .cands
            .iter()
            .filter(|(ip, c)| c.seen < before && !c.in_flight && !self.healthy.contains(ip))
            .map(|(ip, c)| (*ip, c.due))
            .collect();
        for (ip, due) in old {
            self.cands.remove(&ip);
            self.queue.remove(&(due, ip));
        }
    }

    /// The healthy nodes: answering, and serving the newest authentic release.
    pub fn healthy(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.healthy.iter().copied()
    }

    /// The newest authentic release version known (0 before any).
    pub fn newest(&self) -> u32 {
        self.newest
    }

    /// The next change of the healthy set, oldest first.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// The counters, for the status page and the benchmark.
    pub fn stats(&self) -> ProberStats {
        ProberStats {
            candidates: self.cands.len(),
            in_flight: self.in_flight,
            healthy: self.healthy.len(),
            newest: self.newest,
            probes: self.probes,
            refused_full: self.refused_full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            interval_ms: 10_000,
            jitter: 0.2,
            drop_after: 1,
            retry_max_ms: 100_000,
            concurrency: 4,
            max_candidates: 1000,
        }
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    fn serves(v: u32) -> Outcome {
        Outcome::Serves { version: v }
    }

    fn dead() -> Outcome {
        Outcome::Unreachable {
            why: "connection refused".into(),
        }
    }

    /// A prober whose one candidate (ip 1) is healthy with v1 at time 0.
    fn one_healthy(s: ProbeSettings, seed: u64) -> Prober {
        let mut p = Prober::new(s, seed);
        p.discovered(ip(1), 0);
        p.due(0);
        p.finished(ip(1), serves(1), 0);
        p
    }

    fn changes(p: &mut Prober) -> Vec<Change> {
        std::iter::from_fn(|| p.poll_change()).collect()
    }

    #[test]
    fn new_candidates_are_probed_at_once_within_the_cap() {
        let mut p = Prober::new(settings(), 1);
        for i in 0..10 {
            assert!(p.discovered(ip(i), 0));
        }
        assert!(!p.discovered(ip(3), 5), "known already");
        let first = p.due(0);
        assert_eq!(first.len(), 4);
        assert!(p.due(0).is_empty(), "the cap holds");
        assert_eq!(p.next_due(), None);
        p.finished(first[0], serves(1), 100);
        assert_eq!(p.due(100).len(), 1);
        assert_eq!(p.stats().in_flight, 4);
    }

    #[test]
    fn a_healthy_node_is_probed_again_within_the_interval() {
        let mut p = Prober::new(settings(), 2);
        p.discovered(ip(1), 0);
        let mut at = 0;
        for _ in 0..50 {
            assert_eq!(p.due(at), vec![ip(1)]);
            p.finished(ip(1), serves(1), at);
            let next = p.next_due().unwrap();
            assert!(next - at <= 10_000 && next - at >= 8_000, "{}", next - at);
            assert!(p.due(next - 1).is_empty());
            at = next;
        }
        assert_eq!(
            changes(&mut p),
            vec![Change::Up {
                ip: ip(1),
                version: 1
            }]
        );
    }

    #[test]
    fn a_dead_node_leaves_at_once_backs_off_and_comes_back() {
        let mut s = settings();
        s.jitter = 0.0;
        let mut p = one_healthy(s, 3);
        changes(&mut p);
        let mut at = 10_000;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(p.due(at), vec![ip(1)]);
            p.finished(ip(1), dead(), at);
            let next = p.next_due().unwrap();
            waits.push(next - at);
            at = next;
        }
        assert_eq!(waits, [10_000, 20_000, 40_000, 80_000, 100_000, 100_000]);
        assert_eq!(p.healthy().count(), 0);
        assert_eq!(
            changes(&mut p),
            vec![Change::Down {
                ip: ip(1),
                why: "connection refused".into()
            }]
        );
        p.due(at);
        p.finished(ip(1), serves(1), at);
        assert_eq!(p.healthy().collect::<Vec<_>>(), vec![ip(1)]);
        assert_eq!(p.next_due(), Some(at + 10_000), "the interval again");
    }

    #[test]
    fn drop_after_tolerates_single_failures() {
        let mut s = settings();
        s.drop_after = 2;
        let mut p = one_healthy(s, 4);
        p.due(u64::MAX);
        p.finished(ip(1), dead(), 10_000);
        assert_eq!(p.healthy().count(), 1, "one failure is forgiven");
        p.due(u64::MAX);
        p.finished(ip(1), dead(), 20_000);
        assert_eq!(p.healthy().count(), 0);
    }

    #[test]
    fn only_the_newest_authentic_release_is_healthy() {
        let mut p = Prober::new(settings(), 5);
        for i in 1..=3 {
            p.discovered(ip(i), 0);
        }
        p.due(0);
        p.finished(ip(1), serves(1), 0);
        p.finished(ip(2), serves(1), 0);
        // A forgery claims v9: refused, and it moves nothing.
        p.finished(
            ip(3),
            Outcome::Refused {
                why: "bad signature".into(),
            },
            0,
        );
        assert_eq!(p.newest(), 1);
        assert_eq!(p.healthy().count(), 2);
        changes(&mut p);
        let early = p.due(79_999);
        assert_eq!(early.len(), 2);
        assert!(!early.contains(&ip(3)), "a forger waits retry_max");
        // Node 2 moves to v2: node 1 is now stale, though alive.
        p.finished(ip(2), serves(2), 10_000);
        assert_eq!(p.healthy().collect::<Vec<_>>(), vec![ip(2)]);
        assert_eq!(
            changes(&mut p),
            vec![Change::Down {
                ip: ip(1),
                why: "serves v1, v2 is out".into()
            }]
        );
        p.finished(ip(1), serves(1), 10_000);
        assert_eq!(p.healthy().count(), 1);
        // The trust store knows v3 before anyone serves it: nobody is healthy.
        p.set_newest(3);
        assert_eq!(p.healthy().count(), 0);
    }

    #[test]
    fn memory_is_bounded_and_old_candidates_are_forgotten() {
        let mut s = settings();
        s.max_candidates = 100;
        let mut p = Prober::new(s, 6);
        for i in 0..150 {
            p.discovered(ip(i), 0);
        }
        assert_eq!(p.stats().candidates, 100);
        assert_eq!(p.stats().refused_full, 50);
        let probing = p.due(0);
        p.finished(probing[0], serves(1), 0);
        p.discovered(ip(99), 500);
        p.sweep(100);
        // The healthy one, the ones in flight and the one named since stay.
        assert_eq!(p.stats().candidates, 1 + 3 + 1);
        p.remove(probing[0], "blacklisted");
        assert_eq!(p.healthy().count(), 0);
        assert!(
            matches!(changes(&mut p).last(), Some(Change::Down { why, .. }) if why == "blacklisted")
        );
        // A probe of a removed candidate still frees its slot.
        p.finished(probing[1], dead(), 1);
        p.remove(probing[2], "blacklisted");
        p.finished(probing[2], serves(1), 1);
        assert_eq!(p.stats().in_flight, 1);
    }

    #[test]
    fn a_hundred_thousand_candidates_flow_through_the_cap() {
        let mut s = settings();
        s.concurrency = 64;
        s.max_candidates = 200_000;
        let mut p = Prober::new(s, 7);
        for i in 0..100_000 {
            p.discovered(ip(i), 0);
        }
        let mut done = 0;
        let mut now = 0;
        while done < 100_000 {
            let batch = p.due(now);
            assert!(batch.len() <= 64);
            for a in batch {
                p.finished(a, if done % 2 == 0 { serves(1) } else { dead() }, now);
                done += 1;
            }
            now += 1;
        }
        let st = p.stats();
        assert_eq!(
            (st.candidates, st.healthy, st.probes),
            (100_000, 50_000, 100_000)
        );
    }
}
