//! Which documents a node keeps, within its quota (sans-IO).
//!
//! Every node knows every document record; each keeps copies of as many documents as
//! its volunteer's quota allows, choosing so that the swarm as a whole keeps everything
//! alive even when no single node can hold it all:
//!
//! - **rarest first**: a document seen at fewer other nodes (holding or fetching it) comes
//!   first, and **newest first** among equals (then the higher id);
//! - a document that fits in the free room is fetched;
//! - when none fits, held documents that are *more* common elsewhere than the wanted one
//!   is (strictly: seen at more other nodes) are evicted to make room, most common first.
//!   For a holder of X, "seen" counts X's other copies; so X is given up for Y only when,
//!   counting this node's copy, X has at least two more copies than Y. After the swap X
//!   still has at least as many as Y: no swap undoes another, and each one evens out
//!   the counts, so a swarm deciding one node at a time settles;
//! - above the quota (the volunteer lowered it), the most common documents go first;
//! - one change at a time: at most `max_fetching` fetches run, and a plan either starts
//!   one fetch (with the evictions it needs) or nothing.
//!
//! Evictions are returned with their reason; the driver shows them (never silent).

use serde::Serialize;

/// Where this node stands with a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Local {
    /// Not here.
    Absent,
    /// Being fetched (its size counts against the quota already).
    Fetching,
    /// Complete, verified and seeded.
    Held,
    /// This node published it: seeded from the publisher's folder, outside the quota
    /// and never evicted.
    Own,
}

/// One document, as the choice sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Which document: its record's id.
    pub id: u32,
    /// The file's size, in bytes: what keeping it costs of the quota.
    pub size: u64,
    /// Publish time.
    pub time: u64,
    /// Other nodes seen holding or fetching it.
    pub seen: u32,
    /// Where this node stands with it.
    pub local: Local,
    /// Its torrent did not match its record: never fetched again.
    pub unusable: bool,
}

/// Why a document was evicted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "kebab-case")]
pub enum Why {
    /// The quota is smaller than what is held.
    OverQuota {
        /// The quota, in bytes.
        quota: u64,
    },
    /// Room for a rarer document.
    Rarer {
        /// The rarer document fetched instead.
        for_id: u32,
        /// Other copies of the evicted one, and of the one fetched instead.
        seen: u32,
        /// Other nodes seen holding or fetching the one fetched instead.
        for_seen: u32,
    },
    /// A newer version of the same document replaced it.
    Replaced {
        /// The version that replaced it.
        version: u32,
    },
    /// The newest key set of the documents role does not vouch for it (signed by keys
    /// since retired, and not listed as current).
    Withdrawn,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::OverQuota { quota } => write!(f, "over the quota of {quota} bytes"),
            Why::Rarer {
                for_id,
                seen,
                for_seen,
            } => write!(
                f,
                "room for document {for_id}, rarer (seen at {for_seen} other nodes, this one at {seen})"
            ),
            Why::Replaced { version } => write!(f, "replaced by version {version}"),
            Why::Withdrawn => write!(f, "no longer vouched for by the newest key set"),
        }
    }
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Documents to give up first, each with why (the driver shows them).
    pub evict: Vec<(u32, Why)>,
    /// The document to fetch once they are gone, if any.
    pub fetch: Option<u32>,
}

/// Bytes counted against the quota: held and fetching documents.
pub fn used(docs: &[Candidate]) -> u64 {
    docs.iter()
        .filter(|d| matches!(d.local, Local::Held | Local::Fetching))
        .map(|d| d.size)
        .sum()
}

/// The next step for `docs` under `quota`, with at most `max_fetching` fetches running.
pub fn plan(docs: &[Candidate], quota: u64, max_fetching: usize) -> Plan {
    let mut used = used(docs);
    let mut out = Plan::default();
    // Most common first, then oldest, then lowest id: the order things are given up in.
    let give_up_order = |a: &&Candidate, b: &&Candidate| {
        b.seen
            .cmp(&a.seen)
            .then(a.time.cmp(&b.time))
            .then(a.id.cmp(&b.id))
    };
    if used > quota {
        let mut kept: Vec<&Candidate> = docs
            .iter()
            .filter(|d| matches!(d.local, Local::Held | Local::Fetching))
            .collect();
        kept.sort_by(give_up_order);
        for d in kept {
            if used <= quota {
                break;
            }
            used -= d.size;
            out.evict.push((d.id, Why::OverQuota { quota }));
        }
        return out;
    }
    let fetching = docs.iter().filter(|d| d.local == Local::Fetching).count();
    if fetching >= max_fetching {
        return out;
    }
    let mut wanted: Vec<&Candidate> = docs
        .iter()
        .filter(|d| d.local == Local::Absent && !d.unusable && d.size <= quota)
        .collect();
    // Rarest first, newest first among equals, then the higher id.
    wanted.sort_by(|a, b| {
        a.seen
            .cmp(&b.seen)
            .then(b.time.cmp(&a.time))
            .then(b.id.cmp(&a.id))
    });
    let mut held: Vec<&Candidate> = docs.iter().filter(|d| d.local == Local::Held).collect();
    held.sort_by(give_up_order);
    for y in wanted {
        let free = quota - used;
        if y.size <= free {
            out.fetch = Some(y.id);
            return out;
        }
        let mut freed = 0;
        let mut victims = Vec::new();
        for x in held.iter().filter(|x| x.seen > y.seen) {
            if free + freed >= y.size {
                break;
            }
            freed += x.size;
            victims.push(x);
        }
        if free + freed >= y.size {
            out.evict = victims
                .into_iter()
                .map(|x| {
                    (
                        x.id,
                        Why::Rarer {
                            for_id: y.id,
                            seen: x.seen,
                            for_seen: y.seen,
                        },
                    )
                })
                .collect();
            out.fetch = Some(y.id);
            return out;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: u32, size: u64, time: u64, seen: u32, local: Local) -> Candidate {
        Candidate {
            id,
            size,
            time,
            seen,
            local,
            unusable: false,
        }
    }

    #[test]
    fn rarest_first_then_newest() {
        let docs = [
            doc(1, 10, 100, 2, Local::Absent),
            doc(2, 10, 200, 1, Local::Absent),
            doc(3, 10, 300, 1, Local::Absent),
        ];
        assert_eq!(plan(&docs, 100, 2).fetch, Some(3));
        let docs = [
            doc(1, 10, 100, 0, Local::Absent),
            doc(3, 10, 300, 1, Local::Absent),
        ];
        assert_eq!(plan(&docs, 100, 2).fetch, Some(1));
        // Too big for the quota: skipped, the next one fits.
        let docs = [
            doc(1, 200, 100, 0, Local::Absent),
            doc(2, 10, 100, 5, Local::Absent),
        ];
        assert_eq!(plan(&docs, 100, 2).fetch, Some(2));
        // Quota 0: records only.
        assert_eq!(plan(&docs, 0, 2), Plan::default());
        // Enough fetches running.
        let docs = [
            doc(1, 10, 100, 0, Local::Fetching),
            doc(2, 10, 100, 0, Local::Absent),
        ];
        assert_eq!(plan(&docs, 100, 1), Plan::default());
        // Unusable ones are never fetched again.
        let mut bad = doc(1, 10, 100, 0, Local::Absent);
        bad.unusable = true;
        assert_eq!(plan(&[bad], 100, 1), Plan::default());
    }

    #[test]
    fn swaps_only_for_a_rarer_document() {
        // Holding 1 (3 other copies); 2 has 1 copy elsewhere: worth the swap.
        let docs = [
            doc(1, 20, 100, 3, Local::Held),
            doc(2, 20, 200, 1, Local::Absent),
        ];
        assert_eq!(
            plan(&docs, 25, 2),
            Plan {
                evict: vec![(
                    1,
                    Why::Rarer {
                        for_id: 2,
                        seen: 3,
                        for_seen: 1
                    }
                )],
                fetch: Some(2),
            }
        );
        // Equal counts with this node's copy (1 + 1 vs 2): nothing to gain.
        let docs = [
            doc(1, 20, 100, 1, Local::Held),
            doc(2, 20, 200, 2, Local::Absent),
        ];
        assert_eq!(plan(&docs, 25, 2), Plan::default());
        // The publisher's own copy is never given up.
        let docs = [
            doc(1, 20, 100, 9, Local::Own),
            doc(2, 20, 200, 0, Local::Absent),
        ];
        assert_eq!(plan(&docs, 25, 2).fetch, Some(2));
        // Two common ones make room for a big rare one; the rarest of the held stays.
        let docs = [
            doc(1, 10, 100, 5, Local::Held),
            doc(2, 10, 100, 4, Local::Held),
            doc(3, 10, 100, 0, Local::Held),
            doc(4, 20, 300, 1, Local::Absent),
        ];
        let p = plan(&docs, 30, 2);
        assert_eq!(p.fetch, Some(4));
        assert_eq!(
            p.evict.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_lowered_quota_evicts_the_most_common_first() {
        let docs = [
            doc(1, 10, 100, 1, Local::Held),
            doc(2, 10, 50, 4, Local::Held),
            doc(3, 10, 100, 4, Local::Fetching),
            doc(4, 10, 100, 0, Local::Own),
        ];
        let p = plan(&docs, 15, 2);
        assert_eq!(p.fetch, None);
        assert_eq!(
            p.evict,
            vec![
                (2, Why::OverQuota { quota: 15 }),
                (3, Why::OverQuota { quota: 15 })
            ]
        );
        assert_eq!(used(&docs), 30);
    }

    /// Six nodes, three documents, room for one each, deciding one at a time and seeing
    /// each other: every document ends with two copies, and nothing moves after that.
    #[test]
    fn a_swarm_deciding_in_turn_settles_evenly() {
        let n = 6;
        let docs = [(1u32, 300u64), (2, 200), (3, 100)];
        let mut have: Vec<Option<u32>> = vec![None; n];
        for _round in 0..10 {
            for node in 0..n {
                let cands: Vec<Candidate> = docs
                    .iter()
                    .map(|&(id, time)| {
                        let seen =
                            (0..n).filter(|&o| o != node && have[o] == Some(id)).count() as u32 + 1; // the publisher
                        let local = if have[node] == Some(id) {
                            Local::Held
                        } else {
                            Local::Absent
                        };
                        doc(id, 20, time, seen, local)
                    })
                    .collect();
                let p = plan(&cands, 25, 1);
                for (id, _) in &p.evict {
                    assert_eq!(have[node], Some(*id));
                    have[node] = None;
                }
                if let Some(id) = p.fetch {
                    have[node] = Some(id);
                }
            }
        }
        for (id, _) in docs {
            assert_eq!(
                have.iter().filter(|h| **h == Some(id)).count(),
                2,
                "{have:?}"
            );
        }
    }
}
