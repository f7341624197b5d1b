//! The fluff phase of an upload (SPEC §7, PROTOCOL.md §19), as a sans-IO state machine:
//! `event, time in → actions out`, so the node and the million-node simulator run the
//! same code.
//!
//! A node that switches an upload to fluff, or fetches one by BitTorrent, seeds it and
//! tells up to 8 wire peers (`up {ih}`) that took no part in announcing it to it. A node
//! told fetches it unless it holds it, a receipt lists it, it is known to be no upload,
//! or its fetch slots are full; a stem copy held here is then fetched like any other
//! (its stem duty ends once that copy is in and checked: a bare `up` costs a spy
//! nothing), so nobody can tell stem nodes by who downloads. While an upload
//! is seeded and not receipted, a further telling to up to 8 peers not yet told follows
//! now and then, until every peer has been told: uniform choice among a reachable node's
//! many peers would otherwise leave about one node in twenty of those behind NAT (few
//! peers) untold. Whoever connects hears of the oldest unreceipted uploads again, so an
//! intake that was away hears of everything.
//!
//! Memory is bounded: announcers and told peers per upload, uploads only heard of, and
//! uploads known to be bad. The driver does the I/O: sends `up`, fetches, moves files,
//! records evidence.

use std::collections::{HashMap, HashSet, VecDeque};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::gossip::PeerKey;
use crate::upload::InfoHash;

/// Fan-out, timing and memory bounds of the fluff phase.
#[derive(Clone, Debug)]
pub struct FluffConfig {
    /// Peers told at each telling (SPEC §7: up to 8).
    pub fanout: usize,
    /// Uploads told again to a peer that connects, at most (oldest first).
    pub reannounce: usize,
    /// After a telling, the next one (to up to `fanout` peers not yet told) follows
    /// after a delay uniform in this range (ms), while untold peers remain.
    pub retell_ms: (u64, u64),
    /// Further tellings at all (off only to measure what they bring).
    pub retell: bool,
    /// Uploads fetched at once, at most (each looks for its metadata for up to ten
    /// minutes): an announcement beyond that waits for the next one.
    pub max_fetches: usize,
    /// Of those, at most this many started by announcers of one address group
    /// ([`Fluff::peer_group`]): one address announcing junk cannot take every slot.
    pub max_fetches_per_group: usize,
    /// Announcers remembered per upload.
    pub max_announcers: usize,
    /// Peers remembered as told per upload; beyond that no further telling.
    pub max_told: usize,
    /// Uploads remembered when they are only heard of (not held, not fetched).
    pub max_heard: usize,
    /// Uploads remembered as bad.
    pub max_bad: usize,
}

impl Default for FluffConfig {
    fn default() -> Self {
        FluffConfig {
            fanout: 8,
            reannounce: 16,
            retell_ms: (10_000, 30_000),
            retell: true,
            max_fetches: 32,
            max_fetches_per_group: 8,
            max_announcers: 64,
            max_told: 256,
            max_heard: 4096,
            max_bad: 4096,
        }
    }
}

/// Where an upload stands in fluff on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not held in fluff: only heard of, or its fetch failed.
    Heard,
    /// Being fetched; `from`: the peer whose `up` started it.
    Fetching {
        /// The announcer, named in the evidence if the upload turns out bad.
        from: Option<PeerKey>,
    },
    /// Held whole and seeded.
    Seeding,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FluffAction {
    /// Send `up {ih}` to wire peer `to`.
    Tell {
        /// The upload's info hash.
        ih: InfoHash,
        /// The wire peer to tell.
        to: PeerKey,
    },
    /// Fetch `ih` by BitTorrent: its metadata first (then [`Fluff::metadata`]) unless
    /// `resume` (a fetch under way before a restart).
    Fetch {
        /// The upload's info hash.
        ih: InfoHash,
        /// The peer whose `up` started the fetch, if any.
        from: Option<PeerKey>,
        /// The fetch was under way before a restart.
        resume: bool,
    },
    /// The upload is in fluff (its fluff copy fetched and checked here): the stem duty
    /// of the stem copy held here ends.
    StemOver {
        /// The upload's info hash.
        ih: InfoHash,
    },
    /// The fetch failed: drop the fluff copy (a stem copy stays).
    Drop {
        /// The upload's info hash.
        ih: InfoHash,
    },
    /// What `announcer` announced is no upload: evidence against it.
    Bad {
        /// The info hash announced.
        ih: InfoHash,
        /// The peer whose `up` started the fetch, if known.
        announcer: Option<PeerKey>,
        /// What is wrong with it, for the evidence log.
        why: String,
    },
}

#[derive(Clone, Debug)]
struct Item {
    phase: Phase,
    /// A stem copy is held here.
    stem_copy: bool,
    /// A receipt listed it (sticky: newer receipts may leave old uploads out).
    receipted: bool,
    /// Peers that announced it here: never told of it.
    announcers: Vec<PeerKey>,
    /// Peers told of it: not told again.
    told: Vec<PeerKey>,
    /// When it was first seen here: the order of telling again on connect.
    since: u64,
    /// When the next telling is due.
    retell: Option<u64>,
    /// While fetched: the address group of the announcer whose `up` started it.
    fetch_group: Option<u64>,
}

impl Item {
    fn new(since: u64) -> Self {
        Item {
            phase: Phase::Heard,
            stem_copy: false,
            receipted: false,
            announcers: Vec::new(),
            told: Vec::new(),
            since,
            retell: None,
            fetch_group: None,
        }
    }

    /// Kept whatever the bound: the driver holds something of it.
    fn held(&self) -> bool {
        self.stem_copy || self.receipted || self.phase != Phase::Heard
    }
}

/// The fluff phase on one node (module docs): every upload it holds, fetches or has heard
/// of, who announced each and whom it told.
pub struct Fluff {
    cfg: FluffConfig,
    rng: StdRng,
    items: HashMap<InfoHash, Item>,
    /// What the newest receipt lists.
    receipts: HashSet<InfoHash>,
    /// Announced uploads that turned out to be no upload.
    bad: HashSet<InfoHash>,
    /// Each connected peer's address group (the driver's; the peer itself otherwise).
    groups: HashMap<PeerKey, u64>,
    fetches: usize,
    /// Fetches under way per announcer address group (no scan per `up`).
    fetches_by_group: HashMap<u64, usize>,
    actions: VecDeque<FluffAction>,
}

impl Fluff {
    /// Nothing known yet; `seed` drives the random choices (whom to tell, when to tell again).
    pub fn new(cfg: FluffConfig, seed: u64) -> Self {
        Fluff {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            items: HashMap::new(),
            receipts: HashSet::new(),
            bad: HashSet::new(),
            groups: HashMap::new(),
            fetches: 0,
            fetches_by_group: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    fn item(&mut self, ih: InfoHash, now: u64) -> &mut Item {
        self.items.entry(ih).or_insert_with(|| Item::new(now))
    }

    fn set_phase(&mut self, ih: &InfoHash, phase: Phase) {
        let Some(item) = self.items.get_mut(ih) else {
            return;
        };
        let was = matches!(item.phase, Phase::Fetching { .. });
        let is = matches!(phase, Phase::Fetching { .. });
        self.fetches = self.fetches + is as usize - was as usize;
        if !is
            && let Some(g) = item.fetch_group.take()
            && let Some(n) = self.fetches_by_group.get_mut(&g)
        {
            *n -= 1;
            if *n == 0 {
                self.fetches_by_group.remove(&g);
            }
        }
        item.phase = phase;
        if phase != Phase::Seeding {
            item.retell = None;
        }
    }

    /// A stem copy of `ih` is held here (made here, received on the stem, or found at
    /// start).
    pub fn stem_copy(&mut self, ih: InfoHash, now: u64) {
        self.item(ih, now).stem_copy = true;
    }

    /// After a restart: what the driver saved of `ih`. A fetch that was under way goes
    /// on (beyond the fetch slots: it was admitted before).
    pub fn restore(
        &mut self,
        ih: InfoHash,
        phase: Phase,
        stem_copy: bool,
        receipted: bool,
        since: u64,
    ) {
        let item = self.item(ih, since);
        (item.stem_copy, item.receipted, item.since) = (stem_copy, receipted, since);
        self.set_phase(&ih, phase);
        if let Phase::Fetching { from } = phase
            && !receipted
        {
            self.actions.push_back(FluffAction::Fetch {
                ih,
                from,
                resume: true,
            });
        }
    }

    /// This node switched its stem copy of `ih` to fluff: the copy is now the one
    /// seeded. Peers are told once it is seeded ([`Fluff::seeded`]).
    pub fn fluffed(&mut self, ih: InfoHash, now: u64) {
        self.item(ih, now).stem_copy = false;
        self.set_phase(&ih, Phase::Seeding);
    }

    /// The fluff copy of `ih` is seeded (switched to fluff here): tell up to `fanout`
    /// of `peers` (the ready wire peers that take uploads).
    pub fn seeded(&mut self, ih: InfoHash, now: u64, peers: &[PeerKey]) {
        self.fluffed(ih, now);
        self.tell(ih, now, peers);
    }

    /// A `up {ih}` from `from` (within its rate limit): remember the announcer, and
    /// fetch the upload unless it is held, receipted, bad, or the fetch slots are full.
    pub fn up(&mut self, ih: InfoHash, from: PeerKey, now: u64) {
        let max = self.cfg.max_announcers;
        let item = self.item(ih, now);
        if !item.announcers.contains(&from) && item.announcers.len() < max {
            item.announcers.push(from);
        }
        if self.items.len() > self.cfg.max_heard {
            // Bounded: forget uploads only heard of.
            self.items.retain(|k, i| i.held() || *k == ih);
        }
        if self.receipts.contains(&ih) || self.bad.contains(&ih) {
            return;
        }
        let item = self.items.get_mut(&ih).expect("just added");
        if item.receipted || item.phase != Phase::Heard {
            return;
        }
        // A stem copy held here is fetched like any other upload, so this node looks
        // like any other; its stem goes on until that copy is in (`fetched`): an
        // announcement alone, which any spy on the stem can send, ends nothing.
        let group = self.group_of(from);
        let by_group = self.fetches_by_group.get(&group).copied().unwrap_or(0);
        if self.fetches >= self.cfg.max_fetches || by_group >= self.cfg.max_fetches_per_group {
            return;
        }
        self.set_phase(&ih, Phase::Fetching { from: Some(from) });
        if let Some(item) = self.items.get_mut(&ih) {
            item.fetch_group = Some(group);
            *self.fetches_by_group.entry(group).or_default() += 1;
        }
        self.actions.push_back(FluffAction::Fetch {
            ih,
            from: Some(from),
            resume: false,
        });
    }

    /// The metadata of `ih` arrived: true when the fetch is still wanted (not
    /// receipted nor switched to fluff here meanwhile). The driver then checks its
    /// quota, and calls [`Fluff::refused`] when there is no room.
    pub fn metadata(&self, ih: &InfoHash) -> bool {
        !self.is_receipted(ih)
            && self
                .items
                .get(ih)
                .is_some_and(|i| matches!(i.phase, Phase::Fetching { .. }))
    }

    /// The driver would not take `ih` (no room): the fetch ends, nothing was kept.
    pub fn refused(&mut self, ih: &InfoHash) {
        if self
            .items
            .get(ih)
            .is_some_and(|i| matches!(i.phase, Phase::Fetching { .. }))
        {
            self.set_phase(ih, Phase::Heard);
        }
    }

    /// `ih` was fetched whole and checked: it is seeded (it replaces a stem copy), and
    /// up to `fanout` of `peers` are told.
    pub fn fetched(&mut self, ih: InfoHash, now: u64, peers: &[PeerKey]) {
        let Some(item) = self.items.get(&ih).filter(|i| !i.receipted) else {
            return;
        };
        if item.stem_copy {
            // Verified in fluff: the stem is over here.
            self.actions.push_back(FluffAction::StemOver { ih });
        }
        self.seeded(ih, now, peers);
    }

    /// Fetching `ih` failed through no one's fault (refused, our disk, no peer had
    /// it): the fluff copy goes; another `up` starts again.
    pub fn failed(&mut self, ih: &InfoHash) {
        if self.items.contains_key(ih) {
            self.set_phase(ih, Phase::Heard);
            self.actions.push_back(FluffAction::Drop { ih: *ih });
        }
    }

    /// What was announced as `ih` is no upload: it is never fetched again, and its
    /// announcer is named.
    pub fn bad(&mut self, ih: &InfoHash, why: String) {
        let announcer = match self.items.get(ih).map(|i| i.phase) {
            Some(Phase::Fetching { from }) => from,
            _ => None,
        };
        if self.bad.len() >= self.cfg.max_bad {
            self.bad.clear();
        }
        self.bad.insert(*ih);
        self.failed(ih);
        self.actions.push_back(FluffAction::Bad {
            ih: *ih,
            announcer,
            why,
        });
    }

    /// A newer intake receipt lists `ihs`: they are never fetched nor told again; a
    /// fetch under way ends (the driver cancels it).
    pub fn receipts(&mut self, ihs: impl IntoIterator<Item = InfoHash>) {
        self.receipts = ihs.into_iter().collect();
        let listed: Vec<InfoHash> = self
            .items
            .keys()
            .filter(|ih| self.receipts.contains(*ih))
            .copied()
            .collect();
        for ih in listed {
            let item = self.items.get_mut(&ih).expect("listed");
            item.receipted = true;
            item.retell = None;
            item.told = Vec::new();
            if matches!(item.phase, Phase::Fetching { .. }) {
                self.set_phase(&ih, Phase::Heard);
            }
        }
    }

    /// The driver no longer holds anything of `ih` (its entry is gone).
    pub fn forget(&mut self, ih: &InfoHash) {
        if self.items.contains_key(ih) {
            self.set_phase(ih, Phase::Heard);
        }
        self.items.remove(ih);
    }

    /// A peer that takes uploads connected: it is told of the oldest uploads seeded
    /// here and not receipted, so an intake that was away hears of everything.
    pub fn peer_up(&mut self, peer: PeerKey) {
        let mut seeding: Vec<(u64, InfoHash)> = self
            .items
            .iter()
            .filter(|(_, i)| i.phase == Phase::Seeding && !i.receipted)
            .map(|(ih, i)| (i.since, *ih))
            .collect();
        seeding.sort_unstable();
        let max_told = self.cfg.max_told;
        for (_, ih) in seeding.into_iter().take(self.cfg.reannounce) {
            let item = self.items.get_mut(&ih).expect("listed");
            if !item.told.contains(&peer) && item.told.len() < max_told {
                item.told.push(peer);
            }
            self.actions.push_back(FluffAction::Tell { ih, to: peer });
        }
    }

    /// `peer` connects from address group `group` (the driver's choice: one IPv4
    /// address, one IPv6 /64): fetch slots are shared per group.
    pub fn peer_group(&mut self, peer: PeerKey, group: u64) {
        self.groups.insert(peer, group);
    }

    fn group_of(&self, peer: PeerKey) -> u64 {
        self.groups.get(&peer).copied().unwrap_or(peer | 1 << 63)
    }

    /// The connection to `peer` is gone.
    pub fn peer_down(&mut self, peer: PeerKey) {
        self.groups.remove(&peer);
        for item in self.items.values_mut() {
            item.announcers.retain(|p| *p != peer);
            item.told.retain(|p| *p != peer);
        }
    }

    /// Tells up to `fanout` of `peers` that neither announced `ih` nor were told of it,
    /// and schedules the next telling while some remain.
    fn tell(&mut self, ih: InfoHash, now: u64, peers: &[PeerKey]) {
        let (fanout, max_told, (lo, hi)) = (self.cfg.fanout, self.cfg.max_told, self.cfg.retell_ms);
        let Some(item) = self.items.get_mut(&ih) else {
            return;
        };
        let mut fresh: Vec<PeerKey> = peers
            .iter()
            .copied()
            .filter(|p| !item.announcers.contains(p) && !item.told.contains(p))
            .collect();
        let room = max_told.saturating_sub(item.told.len()).min(fanout);
        let (chosen, _) = fresh.partial_shuffle(&mut self.rng, room);
        for &to in chosen.iter() {
            item.told.push(to);
            self.actions.push_back(FluffAction::Tell { ih, to });
        }
        if self.cfg.retell && fresh.len() > room && item.told.len() < max_told {
            let wait = if hi <= lo {
                lo
            } else {
                self.rng.gen_range(lo..=hi)
            };
            item.retell = Some(now.saturating_add(wait));
        } else {
            // Everyone has been told: the list is of no more use.
            item.retell = None;
            item.told = Vec::new();
        }
    }

    /// Runs the tellings that are due, to `peers` (the ready wire peers that take
    /// uploads).
    pub fn handle_timeout(&mut self, now: u64, peers: &[PeerKey]) {
        let due: Vec<InfoHash> = self
            .items
            .iter()
            .filter(|(_, i)| i.retell.is_some_and(|t| t <= now))
            .map(|(ih, _)| *ih)
            .collect();
        for ih in due {
            let item = self.items.get_mut(&ih).expect("due");
            item.retell = None;
            if item.phase == Phase::Seeding && !item.receipted {
                self.tell(ih, now, peers);
            }
        }
    }

    /// When [`Fluff::handle_timeout`] is next needed.
    pub fn next_timeout(&self) -> Option<u64> {
        self.items.values().filter_map(|i| i.retell).min()
    }

    /// The next action for the driver, if any: drain after every input.
    pub fn poll_action(&mut self) -> Option<FluffAction> {
        self.actions.pop_front()
    }

    /// Where `ih` stands here; `None` when it is not known here at all.
    pub fn phase(&self, ih: &InfoHash) -> Option<Phase> {
        self.items.get(ih).map(|i| i.phase)
    }

    /// A receipt listed `ih` (the newest, or an earlier one for an upload held here).
    pub fn is_receipted(&self, ih: &InfoHash) -> bool {
        self.receipts.contains(ih) || self.items.get(ih).is_some_and(|i| i.receipted)
    }

    /// The address group of the announcer whose `up` started the fetch of `ih`, while
    /// it is fetched.
    pub fn fetch_group(&self, ih: &InfoHash) -> Option<u64> {
        self.items.get(ih).and_then(|i| i.fetch_group)
    }

    /// Uploads being fetched.
    pub fn fetches(&self) -> usize {
        self.fetches
    }

    /// Peers that announced `ih` here.
    pub fn announcers(&self, ih: &InfoHash) -> &[PeerKey] {
        self.items.get(ih).map_or(&[], |i| &i.announcers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> FluffConfig {
        FluffConfig {
            max_fetches: 2,
            max_heard: 4,
            max_bad: 2,
            ..FluffConfig::default()
        }
    }

    fn drain(f: &mut Fluff) -> Vec<FluffAction> {
        std::iter::from_fn(|| f.poll_action()).collect()
    }

    fn told(actions: &[FluffAction]) -> Vec<PeerKey> {
        let mut v: Vec<PeerKey> = actions
            .iter()
            .filter_map(|a| match a {
                FluffAction::Tell { to, .. } => Some(*to),
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v
    }

    const IH: InfoHash = [1; 20];

    #[test]
    fn a_fluffed_upload_is_told_to_eight_peers_then_to_the_rest_a_few_at_a_time() {
        let mut f = Fluff::new(cfg(), 1);
        let peers: Vec<PeerKey> = (1..=20).collect();
        f.stem_copy(IH, 0);
        f.fluffed(IH, 0);
        assert!(
            drain(&mut f).is_empty(),
            "nobody is told before it is seeded"
        );
        f.seeded(IH, 0, &peers);
        let first = told(&drain(&mut f));
        assert_eq!(first.len(), 8);
        let next = f.next_timeout().expect("untold peers remain");
        assert!((10_000..=30_000).contains(&next));
        f.handle_timeout(next - 1, &peers);
        assert!(drain(&mut f).is_empty());
        f.handle_timeout(next, &peers);
        let second = told(&drain(&mut f));
        assert_eq!(second.len(), 8);
        assert!(second.iter().all(|p| !first.contains(p)), "never twice");
        let last = f.next_timeout().unwrap();
        f.handle_timeout(last, &peers);
        let third = told(&drain(&mut f));
        assert_eq!(third.len(), 4, "the four left");
        assert_eq!(f.next_timeout(), None, "everyone has been told");
    }

    #[test]
    fn an_up_is_fetched_once_and_passed_on_to_peers_that_did_not_announce_it() {
        let mut f = Fluff::new(cfg(), 2);
        f.up(IH, 3, 10);
        assert_eq!(
            drain(&mut f),
            vec![FluffAction::Fetch {
                ih: IH,
                from: Some(3),
                resume: false
            }]
        );
        f.up(IH, 4, 11);
        assert!(drain(&mut f).is_empty(), "fetching already");
        assert_eq!(f.announcers(&IH), &[3, 4]);
        assert!(f.metadata(&IH));
        f.fetched(IH, 20, &[3, 4, 5, 6]);
        assert_eq!(told(&drain(&mut f)), vec![5, 6], "not the announcers");
        assert_eq!(f.phase(&IH), Some(Phase::Seeding));
        assert_eq!(f.fetches(), 0);
        f.up(IH, 7, 30);
        assert!(drain(&mut f).is_empty(), "held");
        // A newcomer hears of it; an untold peer still gets a later telling.
        f.peer_up(8);
        assert_eq!(told(&drain(&mut f)), vec![8]);
    }

    #[test]
    fn receipted_bad_or_full_slots_mean_no_fetch() {
        let mut f = Fluff::new(cfg(), 3);
        f.receipts([[9; 20]]);
        f.up([9; 20], 1, 0);
        assert!(drain(&mut f).is_empty(), "receipted");
        f.up([1; 20], 1, 0);
        f.up([2; 20], 1, 0);
        assert_eq!(drain(&mut f).len(), 2);
        f.up([3; 20], 1, 0);
        assert!(drain(&mut f).is_empty(), "both fetch slots busy");
        // The first turns out to be no upload: its announcer is named, it is dropped,
        // and never fetched again.
        f.bad(&[1; 20], "not a container".into());
        assert_eq!(
            drain(&mut f),
            vec![
                FluffAction::Drop { ih: [1; 20] },
                FluffAction::Bad {
                    ih: [1; 20],
                    announcer: Some(1),
                    why: "not a container".into()
                }
            ]
        );
        f.up([1; 20], 2, 1);
        assert!(drain(&mut f).is_empty(), "known bad");
        f.up([3; 20], 2, 1);
        assert_eq!(drain(&mut f).len(), 1, "a slot is free again");
        // The second is receipted while it is fetched: the fetch ends.
        f.receipts([[2; 20]]);
        assert!(!f.metadata(&[2; 20]));
        assert_eq!(f.fetches(), 1);
        // A failed fetch frees its slot; the next `up` starts again.
        f.failed(&[3; 20]);
        assert_eq!(drain(&mut f), vec![FluffAction::Drop { ih: [3; 20] }]);
        f.up([3; 20], 4, 2);
        assert_eq!(drain(&mut f).len(), 1);
        // No room here: nothing to drop, the slot is free.
        f.refused(&[3; 20]);
        assert!(drain(&mut f).is_empty());
        assert_eq!(f.fetches(), 0);
    }

    #[test]
    fn a_stem_copy_holder_that_hears_of_it_fetches_it_all_the_same() {
        let mut f = Fluff::new(cfg(), 4);
        f.stem_copy(IH, 0);
        f.up(IH, 5, 1);
        assert_eq!(
            drain(&mut f),
            vec![FluffAction::Fetch {
                ih: IH,
                from: Some(5),
                resume: false
            }],
            "the stem goes on until the fluff copy is in"
        );
        // Its own stem fluffs it meanwhile: the fetch is no longer wanted.
        f.fluffed(IH, 2);
        assert!(!f.metadata(&IH));
        assert_eq!(f.fetches(), 0);
    }

    #[test]
    fn only_a_fetched_fluff_copy_ends_the_stem_never_a_bare_announcement() {
        let mut f = Fluff::new(cfg(), 4);
        f.stem_copy(IH, 0);
        // A spy on the stem announces it and never seeds it: the fetch fails, the
        // stem copy stays, and nothing ends its stem (its fail-safe stays armed).
        f.up(IH, 5, 1);
        drain(&mut f);
        f.failed(&IH);
        assert_eq!(drain(&mut f), vec![FluffAction::Drop { ih: IH }]);
        // ... or it serves something else under that info hash: the same.
        f.up(IH, 6, 2);
        drain(&mut f);
        f.bad(&IH, "no upload".into());
        assert!(
            !drain(&mut f).contains(&FluffAction::StemOver { ih: IH }),
            "a forged fluff ends nothing"
        );
        // A real fluff copy, fetched and checked, does.
        let mut g = Fluff::new(cfg(), 5);
        g.stem_copy(IH, 0);
        g.up(IH, 5, 1);
        drain(&mut g);
        g.fetched(IH, 3, &[7]);
        let a = drain(&mut g);
        assert_eq!(a[0], FluffAction::StemOver { ih: IH });
        assert!(a.contains(&FluffAction::Tell { ih: IH, to: 7 }));
    }

    #[test]
    fn one_address_announcing_junk_takes_a_share_of_the_fetch_slots_not_all() {
        let mut f = Fluff::new(
            FluffConfig {
                max_fetches: 8,
                max_fetches_per_group: 2,
                ..FluffConfig::default()
            },
            6,
        );
        // Five connections from one address announce ten uploads (never seeded).
        for p in 1..=5 {
            f.peer_group(p, 77);
        }
        for i in 0..10u8 {
            f.up([i; 20], 1 + PeerKey::from(i % 5), 0);
        }
        assert_eq!(f.fetches(), 2, "the address's share");
        // An honest announcer elsewhere still gets its upload fetched.
        f.peer_group(9, 78);
        drain(&mut f);
        f.up([100; 20], 9, 1);
        assert_eq!(
            drain(&mut f),
            vec![FluffAction::Fetch {
                ih: [100; 20],
                from: Some(9),
                resume: false
            }]
        );
        // A slot the address held frees when its fetch fails: one more from it.
        f.failed(&[0; 20]);
        drain(&mut f);
        f.up([20; 20], 2, 2);
        assert_eq!(f.fetches(), 3);
        f.up([21; 20], 3, 2);
        assert_eq!(f.fetches(), 3);
    }

    #[test]
    fn memory_is_bounded_and_held_uploads_are_kept() {
        let mut f = Fluff::new(cfg(), 5);
        f.stem_copy([0; 20], 0);
        for i in 1..50u8 {
            f.up([i; 20], i as PeerKey, 0);
            f.refused(&[i; 20]);
            drain(&mut f);
        }
        assert!(f.items.len() <= 5, "{}", f.items.len());
        assert!(
            f.items.contains_key(&[0; 20]),
            "a stem copy is never forgotten"
        );
        let mut g = Fluff::new(cfg(), 6);
        for p in 0..500 {
            g.up(IH, p, 0);
        }
        assert_eq!(g.announcers(&IH).len(), 64);
        g.peer_down(0);
        assert_eq!(g.announcers(&IH).len(), 63);
        for i in 0..5u8 {
            g.bad(&[i; 20], String::new());
        }
        assert!(g.bad.len() <= 2);
    }

    #[test]
    fn a_restart_resumes_a_fetch_and_newcomers_hear_of_the_oldest_unreceipted() {
        let mut f = Fluff::new(
            FluffConfig {
                reannounce: 2,
                ..cfg()
            },
            7,
        );
        f.restore([1; 20], Phase::Fetching { from: None }, false, false, 5);
        f.restore([2; 20], Phase::Seeding, false, false, 3);
        f.restore([3; 20], Phase::Seeding, false, true, 1);
        f.restore([4; 20], Phase::Seeding, false, false, 2);
        f.restore([5; 20], Phase::Seeding, false, false, 4);
        assert_eq!(
            drain(&mut f),
            vec![FluffAction::Fetch {
                ih: [1; 20],
                from: None,
                resume: true
            }]
        );
        f.peer_up(9);
        assert_eq!(
            drain(&mut f),
            vec![
                FluffAction::Tell { ih: [4; 20], to: 9 },
                FluffAction::Tell { ih: [2; 20], to: 9 }
            ]
        );
        assert!(f.is_receipted(&[3; 20]));
        f.forget(&[1; 20]);
        assert_eq!(f.fetches(), 0);
    }

    #[test]
    fn tellings_stop_at_a_receipt_and_skip_peers_told_on_connect() {
        let mut f = Fluff::new(cfg(), 8);
        f.peer_up(1);
        assert!(drain(&mut f).is_empty(), "nothing seeded yet");
        let mut peers: Vec<PeerKey> = (1..=20).collect();
        f.seeded(IH, 0, &peers);
        let mut all = told(&drain(&mut f));
        // Peer 21 connects: it hears of the upload at once, and no telling repeats it.
        f.peer_up(21);
        assert_eq!(told(&drain(&mut f)), vec![21]);
        peers.push(21);
        while let Some(t) = f.next_timeout() {
            f.handle_timeout(t, &peers);
            all.extend(told(&drain(&mut f)));
        }
        all.sort_unstable();
        assert_eq!(all, (1..=20).collect::<Vec<_>>(), "each once, 21 not again");
        let mut g = Fluff::new(cfg(), 9);
        g.seeded(IH, 0, &peers);
        drain(&mut g);
        assert!(g.next_timeout().is_some());
        g.receipts([IH]);
        assert_eq!(
            g.next_timeout(),
            None,
            "the intake has it: no more tellings"
        );
        g.handle_timeout(u64::MAX, &peers);
        assert!(drain(&mut g).is_empty());
        g.peer_up(31);
        assert!(
            drain(&mut g).is_empty(),
            "a receipted upload is not told again"
        );
    }

    #[test]
    fn the_same_seed_tells_the_same_peers() {
        let run = |seed| {
            let mut f = Fluff::new(cfg(), seed);
            f.seeded(IH, 0, &(0..40).collect::<Vec<_>>());
            drain(&mut f)
        };
        assert_eq!(run(3), run(3));
    }
}
