//! Asking wire peers for a torrent's metainfo, and answering them (PROTOCOL.md §22),
//! as a sans-IO state machine.
//!
//! A node that learned an info hash from a signed record needs the torrent's metainfo
//! before librqbit can fetch or seed anything. librqbit can only get it by ut_metadata
//! from a peer that has the torrent live; wire peers keep the metainfo of all they hold,
//! so they are asked too (`ss_mget`, parts of [`METAINFO_CHUNK`] bytes, `ss_meta` in
//! reply). One peer at a time per info hash, one part at a time, each ask timed out; a
//! peer that has none, goes, is slow or sends bytes that do not hash to the info hash
//! is passed over for the next. The caller checks the assembled bytes with the `verify`
//! it gives (the SHA-1 of the `info` dictionary against the info hash).
//!
//! Answering costs the answerer up to 32 KiB per 20-byte ask, so each peer gets a budget
//! of parts per minute ([`MetainfoConfig::serve_parts_per_min`]).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::wire::Message;
use crate::wire::message::{MAX_METAINFO_LEN, MetaPart};

/// Limits and timeouts.
#[derive(Clone, Debug)]
pub struct MetainfoConfig {
    /// How long a peer has to answer one ask.
    pub ask_timeout_ms: u64,
    /// Metainfo fetches under way at once; more are refused at once (`NotFound`).
    pub max_fetches: usize,
    /// Peers asked for one info hash, at most, before giving up.
    pub max_peers_per_fetch: usize,
    /// Parts answered per peer per minute (32 KiB each).
    pub serve_parts_per_min: u32,
}

impl Default for MetainfoConfig {
    fn default() -> Self {
        MetainfoConfig {
            ask_timeout_ms: 3_000,
            max_fetches: 64,
            max_peers_per_fetch: 8,
            serve_parts_per_min: 256,
        }
    }
}

/// What the driver does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetainfoAction<P> {
    /// Send `msg` to `peer`.
    Send {
        /// The peer asked.
        peer: P,
        /// The ask, an `ss_mget`.
        msg: Message,
    },
    /// The metainfo of `ih`, checked with `verify`.
    Found {
        /// The info hash the fetch was for.
        ih: [u8; 20],
        /// The assembled metainfo.
        bytes: Vec<u8>,
    },
    /// No peer asked had it (or none could be asked).
    NotFound {
        /// The info hash given up on.
        ih: [u8; 20],
    },
    /// `peer` sent metainfo that is not that of `ih`, or parts that do not fit: it
    /// sent it itself, so it is evidence against it.
    Bad {
        /// The peer that sent it.
        peer: P,
        /// The info hash it was asked for.
        ih: [u8; 20],
        /// What was wrong, for the evidence log.
        why: String,
    },
}

struct Ask<P> {
    peer: P,
    part: u32,
    deadline: u64,
}

struct Fetch<P> {
    /// Peers still to ask, in order.
    candidates: VecDeque<P>,
    asked: usize,
    current: Option<Ask<P>>,
    total: u32,
    buf: Vec<u8>,
}

/// The metainfo fetches of one node, and the answering budget of each peer.
pub struct Metainfo<P> {
    cfg: MetainfoConfig,
    verify: fn(&[u8; 20], &[u8]) -> bool,
    fetches: HashMap<[u8; 20], Fetch<P>>,
    /// Per peer: the minute its budget counts from, and parts answered in it.
    served: HashMap<P, (u64, u32)>,
    actions: VecDeque<MetainfoAction<P>>,
}

impl<P: Copy + Eq + Hash> Metainfo<P> {
    /// No fetch under way yet; `verify` tells whether assembled bytes are the metainfo of an
    /// info hash.
    pub fn new(cfg: MetainfoConfig, verify: fn(&[u8; 20], &[u8]) -> bool) -> Self {
        Metainfo {
            cfg,
            verify,
            fetches: HashMap::new(),
            served: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// Fetches the metainfo of `ih`, asking `peers` in this order (the driver shuffles
    /// them). A fetch already under way takes the new peers on after its own.
    pub fn want(&mut self, ih: [u8; 20], peers: &[P], now: u64) {
        if let Some(f) = self.fetches.get_mut(&ih) {
            for p in peers {
                if !f.candidates.contains(p) && f.current.as_ref().is_none_or(|a| a.peer != *p) {
                    f.candidates.push_back(*p);
                }
            }
            return;
        }
        if self.fetches.len() >= self.cfg.max_fetches {
            self.actions.push_back(MetainfoAction::NotFound { ih });
            return;
        }
        let fetch = Fetch {
            candidates: peers.iter().copied().collect(),
            asked: 0,
            current: None,
            total: 0,
            buf: Vec::new(),
        };
        self.fetches.insert(ih, fetch);
        self.next_peer(ih, now);
    }

    /// Is a fetch of `ih` under way?
    pub fn is_fetching(&self, ih: &[u8; 20]) -> bool {
        self.fetches.contains_key(ih)
    }

    /// Asks the next peer from the start, or gives up.
    fn next_peer(&mut self, ih: [u8; 20], now: u64) {
        let Some(f) = self.fetches.get_mut(&ih) else {
            return;
        };
        f.current = None;
        f.total = 0;
        f.buf = Vec::new();
        let next = if f.asked < self.cfg.max_peers_per_fetch {
            f.candidates.pop_front()
        } else {
            None
        };
        match next {
            Some(peer) => {
                f.asked += 1;
                f.current = Some(Ask {
                    peer,
                    part: 0,
                    deadline: now + self.cfg.ask_timeout_ms,
                });
                self.actions.push_back(MetainfoAction::Send {
                    peer,
                    msg: Message::MetaGet { ih, part: 0 },
                });
            }
            None => {
                self.fetches.remove(&ih);
                self.actions.push_back(MetainfoAction::NotFound { ih });
            }
        }
    }

    /// A peer's `ss_meta`. Parts nobody asked that peer for are ignored.
    pub fn on_part(&mut self, peer: P, msg: MetaPart, now: u64) {
        let ih = msg.ih;
        let Some(f) = self.fetches.get_mut(&ih) else {
            return;
        };
        let Some(ask) = f
            .current
            .as_mut()
            .filter(|a| a.peer == peer && a.part == msg.part)
        else {
            return;
        };
        let Some((total, bytes)) = msg.data else {
            // It does not have it: the next peer.
            self.next_peer(ih, now);
            return;
        };
        if ask.part == 0 {
            f.total = total;
            f.buf.reserve_exact(total as usize);
        } else if total != f.total {
            let why = format!("metainfo length changed from {} to {total}", f.total);
            self.bad(peer, ih, why, now);
            return;
        }
        f.buf.extend_from_slice(&bytes);
        let next = ask.part + 1;
        if next < MetaPart::parts(f.total) {
            ask.part = next;
            ask.deadline = now + self.cfg.ask_timeout_ms;
            self.actions.push_back(MetainfoAction::Send {
                peer,
                msg: Message::MetaGet { ih, part: next },
            });
            return;
        }
        debug_assert!(f.buf.len() <= MAX_METAINFO_LEN);
        if (self.verify)(&ih, &f.buf) {
            let bytes = std::mem::take(&mut f.buf);
            self.fetches.remove(&ih);
            self.actions.push_back(MetainfoAction::Found { ih, bytes });
        } else {
            let why = format!(
                "{} bytes of metainfo that are not that of the info hash",
                f.total
            );
            self.bad(peer, ih, why, now);
        }
    }

    fn bad(&mut self, peer: P, ih: [u8; 20], why: String, now: u64) {
        self.actions
            .push_back(MetainfoAction::Bad { peer, ih, why });
        self.next_peer(ih, now);
    }

    /// `peer` is gone: its asks go to the next peer, its budget is forgotten.
    pub fn peer_gone(&mut self, peer: P, now: u64) {
        self.served.remove(&peer);
        let waiting: Vec<[u8; 20]> = self
            .fetches
            .iter_mut()
            .filter_map(|(ih, f)| {
                f.candidates.retain(|p| *p != peer);
                f.current
                    .as_ref()
                    .is_some_and(|a| a.peer == peer)
                    .then_some(*ih)
            })
            .collect();
        for ih in waiting {
            self.next_peer(ih, now);
        }
    }

    /// May this node answer one more part to `peer` now? Counts it when so.
    pub fn may_answer(&mut self, peer: P, now: u64) -> bool {
        let (start, count) = self.served.entry(peer).or_insert((now, 0));
        if now.saturating_sub(*start) >= 60_000 {
            (*start, *count) = (now, 0);
        }
        if *count >= self.cfg.serve_parts_per_min {
            return false;
        }
        *count += 1;
        true
    }

    /// When [`Metainfo::handle_timeout`] next needs calling.
    pub fn next_timeout(&self) -> Option<u64> {
        self.fetches
            .values()
            .filter_map(|f| f.current.as_ref().map(|a| a.deadline))
            .min()
    }

    /// Asks that were not answered in time go to the next peer.
    pub fn handle_timeout(&mut self, now: u64) {
        let late: Vec<[u8; 20]> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.current.as_ref().is_some_and(|a| a.deadline <= now))
            .map(|(ih, _)| *ih)
            .collect();
        for ih in late {
            self.next_peer(ih, now);
        }
    }

    /// The next action for the driver, if any: drain after every input.
    pub fn poll_action(&mut self) -> Option<MetainfoAction<P>> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::METAINFO_CHUNK;

    fn verify(ih: &[u8; 20], bytes: &[u8]) -> bool {
        ih[0] as usize == bytes.len() % 256
    }

    fn drain(m: &mut Metainfo<u32>) -> Vec<MetainfoAction<u32>> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    /// What `peer` answers to every ask in `actions` when it holds `meta` for `ih`.
    fn answers(actions: &[MetainfoAction<u32>], meta: &[u8]) -> Vec<(u32, MetaPart)> {
        actions
            .iter()
            .filter_map(|a| match a {
                MetainfoAction::Send {
                    peer,
                    msg: Message::MetaGet { ih, part },
                } => Some((*peer, MetaPart::of(*ih, *part, meta))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parts_are_fetched_in_order_from_one_peer() {
        let meta = vec![7u8; 2 * METAINFO_CHUNK + 100];
        let ih = [(meta.len() % 256) as u8; 20];
        let mut m = Metainfo::new(MetainfoConfig::default(), verify);
        m.want(ih, &[1, 2], 0);
        let mut asked = Vec::new();
        let mut actions = drain(&mut m);
        loop {
            let replies = answers(&actions, &meta);
            if replies.is_empty() {
                break;
            }
            for (peer, part) in replies {
                asked.push((peer, part.part));
                m.on_part(peer, part, 10);
            }
            actions = drain(&mut m);
        }
        assert_eq!(asked, [(1, 0), (1, 1), (1, 2)]);
        assert_eq!(actions, [MetainfoAction::Found { ih, bytes: meta }]);
        assert!(!m.is_fetching(&ih));
    }

    #[test]
    fn none_late_gone_and_forged_answers_pass_to_the_next_peer() {
        let meta = vec![1u8; 300];
        let ih = [(meta.len() % 256) as u8; 20];
        let mut m = Metainfo::new(MetainfoConfig::default(), verify);
        m.want(ih, &[1, 2, 3, 4], 0);
        // 1 has none.
        drain(&mut m);
        m.on_part(1, MetaPart::of(ih, 0, &[]), 5);
        assert_eq!(
            drain(&mut m),
            [MetainfoAction::Send {
                peer: 2,
                msg: Message::MetaGet { ih, part: 0 }
            }]
        );
        // 2 is silent past the timeout.
        assert_eq!(m.next_timeout(), Some(5 + 3_000));
        m.handle_timeout(3_004);
        assert!(drain(&mut m).is_empty());
        m.handle_timeout(3_005);
        assert!(matches!(
            drain(&mut m)[..],
            [MetainfoAction::Send { peer: 3, .. }]
        ));
        // An answer from 2 now, or from a peer never asked, changes nothing.
        m.on_part(2, MetaPart::of(ih, 0, &meta), 3_006);
        m.on_part(9, MetaPart::of(ih, 0, &meta), 3_006);
        assert!(drain(&mut m).is_empty());
        // 3 sends bytes that are not the metainfo: evidence, then 4.
        m.on_part(3, MetaPart::of(ih, 0, &[0; 299]), 3_010);
        let a = drain(&mut m);
        assert!(matches!(a[0], MetainfoAction::Bad { peer: 3, .. }), "{a:?}");
        assert!(matches!(a[1], MetainfoAction::Send { peer: 4, .. }));
        // 4 goes away: nobody is left.
        m.peer_gone(4, 3_020);
        assert_eq!(drain(&mut m), [MetainfoAction::NotFound { ih }]);
        assert_eq!(m.next_timeout(), None);
    }

    #[test]
    fn bounded_fetches_peers_and_answers() {
        let cfg = MetainfoConfig {
            max_fetches: 2,
            max_peers_per_fetch: 2,
            serve_parts_per_min: 3,
            ..Default::default()
        };
        let mut m = Metainfo::new(cfg, verify);
        m.want([1; 20], &[1, 2, 3], 0);
        m.want([2; 20], &[1], 0);
        m.want([3; 20], &[1], 0);
        let a = drain(&mut m);
        assert_eq!(a.last(), Some(&MetainfoAction::NotFound { ih: [3; 20] }));
        // Two peers asked at most per fetch.
        m.on_part(1, MetaPart::of([1; 20], 0, &[]), 1);
        m.on_part(2, MetaPart::of([1; 20], 0, &[]), 2);
        assert!(drain(&mut m).contains(&MetainfoAction::NotFound { ih: [1; 20] }));
        // A peer asks more parts than its budget: refused until the minute is over.
        assert!((0..3).all(|_| m.may_answer(7, 100)));
        assert!(!m.may_answer(7, 59_000));
        assert!(m.may_answer(8, 59_000));
        assert!(m.may_answer(7, 60_100));
        // A part whose total changed midway is evidence.
        let big = vec![0u8; METAINFO_CHUNK + 1];
        let ih = [(big.len() % 256) as u8; 20];
        let mut m = Metainfo::new(MetainfoConfig::default(), verify);
        m.want(ih, &[5, 6], 0);
        drain(&mut m);
        m.on_part(5, MetaPart::of(ih, 0, &big), 1);
        drain(&mut m);
        let mut other = MetaPart::of(ih, 1, &[0u8; METAINFO_CHUNK + 2]);
        other.data = other.data.map(|(t, _)| (t, vec![0; 2]));
        m.on_part(5, other, 2);
        assert!(matches!(
            drain(&mut m)[0],
            MetainfoAction::Bad { peer: 5, .. }
        ));
    }
}
