//! A node's upload queue: every container it holds or fetches, where each one stands,
//! and the storage quota. Kept in `<data>/uploads/queue.json` (written atomically on
//! every change), so the queue survives restarts and kill -9.
//!
//! Which entries this node made itself is kept apart, in `own.json` (mode 0600): it is
//! for the local user's eyes only, and never leaves the control API.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stem::StemState;
use crate::fsutil;
use crate::wire::message::BlobId;

pub use swarmsite_protocol::upload::InfoHash;

/// A fluff copy: fetched by BitTorrent (or switched to fluff here), seeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fluff {
    /// Being downloaded (its size is reserved in the quota).
    Fetching,
    /// Complete and seeded until a receipt lists it.
    Seeding,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "hex_bytes")]
    pub ih: InfoHash,
    /// SHA-256 of the container: its id on the stem (unknown for fetched copies).
    #[serde(with = "hex_opt", default)]
    pub id: Option<BlobId>,
    pub size: u64,
    /// When this node first held it (ms since the epoch).
    pub added_ms: u64,
    /// This node's part in the stem, if it had one.
    pub stem: Option<StemState>,
    /// A stem copy is on disk (`stem/<id>/upload`): never seeded, never announced.
    pub stem_copy: bool,
    /// A fluff copy (`fluff/<ih>/upload`).
    pub fluff: Option<Fluff>,
    /// When a receipt listed it.
    pub receipted_ms: Option<u64>,
    /// The address group (`Source::group`) of the peer it came from, for the quota's
    /// fair share; `None` for this node's own uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u64>,
}

/// What a user sees of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UploadState {
    /// Waiting for its random delay before the next stem hop.
    Waiting,
    /// Being handed to the next stem hop.
    Sending,
    /// Handed on along the stem.
    Sent,
    /// Switched to fluff here: seeded and announced.
    Fluffed,
    /// Being fetched by BitTorrent after a fluff announcement.
    Fetching,
    /// Held and seeded until the intake receipts it.
    Cached,
    /// Listed in a signed intake receipt: the intake holds it.
    Receipted,
}

impl Entry {
    /// An upload first held (or fetched) at `now`, with no copy yet.
    pub fn new(ih: InfoHash, id: Option<BlobId>, size: u64, now: u64) -> Self {
        Entry {
            ih,
            id,
            size,
            added_ms: now,
            stem: None,
            stem_copy: false,
            fluff: None,
            receipted_ms: None,
            source: None,
        }
    }

    /// A stem copy of container `id`, in stem state `stem`.
    pub fn on_stem(ih: InfoHash, id: BlobId, size: u64, stem: Option<StemState>, now: u64) -> Self {
        Entry {
            stem,
            stem_copy: true,
            ..Entry::new(ih, Some(id), size, now)
        }
    }

    pub fn state(&self) -> UploadState {
        if self.receipted_ms.is_some() {
            return UploadState::Receipted;
        }
        match (self.fluff, self.stem) {
            (Some(Fluff::Fetching), _) => UploadState::Fetching,
            (Some(Fluff::Seeding), Some(StemState::Fluffed)) => UploadState::Fluffed,
            (Some(Fluff::Seeding), _) => UploadState::Cached,
            (None, Some(StemState::Waiting { .. })) => UploadState::Waiting,
            (None, Some(StemState::Sending { .. })) => UploadState::Sending,
            (None, Some(StemState::Fluffed)) => UploadState::Fluffed,
            (None, _) => UploadState::Sent,
        }
    }

    /// Bytes its copies take (or will take, while fetching).
    pub fn disk_bytes(&self) -> u64 {
        self.size * (self.stem_copy as u64 + self.fluff.is_some() as u64)
    }

    /// A peer's upload still waiting for its receipt: counts against its source's share.
    fn held_for(&self, group: u64) -> bool {
        self.source == Some(group) && self.receipted_ms.is_none()
    }

    /// A copy that may go to make room for another source's upload: fetched here in
    /// fluff and seeded, so others hold it too. A stem copy, or a copy switched to fluff
    /// here (this node may be its only seeder), never goes before its receipt.
    fn displaceable(&self) -> bool {
        self.receipted_ms.is_none()
            && self.source.is_some()
            && self.fluff == Some(Fluff::Seeding)
            && !self.stem_copy
            && self.stem != Some(StemState::Fluffed)
    }
}

/// Where a peer's new container comes from, for the quota's fair share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The sender's address group (one IPv4 address, one IPv6 /64).
    pub group: u64,
    /// Bytes of transfers from that group already under way (not yet in the queue).
    pub pending: u64,
}

/// One source's fair share of the quota: no address group holds more than a quarter of
/// it unreceipted (a group under its share may still take one container that takes it
/// over), so junk from a few addresses cannot fill a node.
pub const SHARE_DIVISOR: u64 = 4;

/// Whether a new container of some size fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Room {
    Fits,
    /// It fits once these receipted copies (oldest receipt first) are removed.
    Evict(Vec<InfoHash>),
    /// It does not fit: everything held is still waiting for a receipt.
    Full {
        held: u64,
        quota: u64,
    },
    /// Its source already holds its share of the quota.
    Share {
        held: u64,
        share: u64,
    },
}

impl Room {
    /// The reason given when a container is refused.
    pub fn reason(held: u64, quota: u64) -> String {
        format!(
            "storage quota full: {held} of {quota} bytes hold uploads the intake has not receipted yet"
        )
    }

    /// The reason given when a source is over its share.
    pub fn share_reason(held: u64, share: u64) -> String {
        format!(
            "storage quota share full: uploads from this address take {held} bytes, its share is {share}"
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct QueueFile {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, Default)]
pub struct Queue {
    entries: BTreeMap<InfoHash, Entry>,
}

impl Queue {
    pub fn load(path: &Path) -> Result<Self, QueueError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Queue::default()),
            Err(source) => {
                return Err(QueueError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let file: QueueFile =
            serde_json::from_slice(&text).map_err(|source| QueueError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Queue {
            entries: file.entries.into_iter().map(|e| (e.ih, e)).collect(),
        })
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let file = QueueFile {
            entries: self.entries.values().cloned().collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("json");
        fsutil::write_atomic(path, &json, fsutil::PRIVATE)
    }

    pub fn get(&self, ih: &InfoHash) -> Option<&Entry> {
        self.entries.get(ih)
    }

    pub fn get_mut(&mut self, ih: &InfoHash) -> Option<&mut Entry> {
        self.entries.get_mut(ih)
    }

    pub fn by_id(&self, id: &BlobId) -> Option<&Entry> {
        self.entries.values().find(|e| e.id.as_ref() == Some(id))
    }

    pub fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry.ih, entry);
    }

    pub fn remove(&mut self, ih: &InfoHash) -> Option<Entry> {
        self.entries.remove(ih)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Bytes on disk (or reserved) for every entry.
    pub fn used(&self) -> u64 {
        self.entries.values().map(Entry::disk_bytes).sum()
    }

    /// Bytes held unreceipted for uploads that came from `group`.
    pub fn held_from(&self, group: u64) -> u64 {
        (self.entries.values())
            .filter(|e| e.held_for(group))
            .map(Entry::disk_bytes)
            .sum()
    }

    /// Whether `need` more bytes fit in `quota`, given `reserved` bytes promised to
    /// transfers under way, for an upload from `from` (`None`: this node's own).
    ///
    /// A source over its share ([`SHARE_DIVISOR`]) is refused. Receipted copies kept on
    /// disk go first, oldest receipt first. Then, for a peer's upload, fetched copies of
    /// the sources holding most may go, newest first, while such a source holds more
    /// than `from` will once it has this one (max-min fairness: junk from one address
    /// gives way to uploads from others). Nothing else not yet receipted is removed to
    /// make room.
    pub fn room(&self, need: u64, reserved: u64, quota: u64, from: Option<Source>) -> Room {
        let share = quota / SHARE_DIVISOR;
        let mine = from.map(|s| self.held_from(s.group) + s.pending);
        if let Some(held) = mine.filter(|&held| held >= share) {
            return Room::Share { held, share };
        }
        let used = self.used() + reserved;
        if used + need <= quota {
            return Room::Fits;
        }
        let mut kept: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| e.receipted_ms.is_some() && e.disk_bytes() > 0)
            .collect();
        kept.sort_by_key(|e| e.receipted_ms);
        let mut freed = 0;
        let mut evict = Vec::new();
        for e in kept {
            if used - freed + need <= quota {
                break;
            }
            freed += e.disk_bytes();
            evict.push(e.ih);
        }
        if let (Some(from), Some(mine)) = (from, mine) {
            freed += self.displace(
                from.group,
                mine + need,
                used - freed + need - quota,
                &mut evict,
            );
        }
        if used - freed + need <= quota {
            Room::Evict(evict)
        } else {
            Room::Full {
                held: used - freed,
                quota,
            }
        }
    }

    /// Picks displaceable copies (newest first) of the sources other than `group` that
    /// hold more than `after` bytes, largest source first, until `short` bytes are
    /// freed or none is left; returns the bytes they free. All or nothing: when they
    /// cannot free `short`, nothing is picked.
    fn displace(&self, group: u64, after: u64, short: u64, evict: &mut Vec<InfoHash>) -> u64 {
        let mut held: BTreeMap<u64, u64> = BTreeMap::new();
        let mut movable: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
        for e in self.entries.values() {
            let Some(g) = e.source.filter(|&g| g != group && e.held_for(g)) else {
                continue;
            };
            *held.entry(g).or_default() += e.disk_bytes();
            if e.displaceable() {
                movable.entry(g).or_default().push(e);
            }
        }
        for list in movable.values_mut() {
            // Oldest first, so `pop` takes the newest.
            list.sort_by_key(|e| (e.added_ms, e.ih));
        }
        let (mut freed, mut picked) = (0, Vec::new());
        while freed < short {
            let biggest = (held.iter())
                .filter(|&(g, &h)| h > after && movable.get(g).is_some_and(|l| !l.is_empty()))
                .max_by_key(|&(g, &h)| (h, std::cmp::Reverse(*g)))
                .map(|(g, _)| *g);
            let Some(g) = biggest else {
                return 0;
            };
            let e = movable.get_mut(&g).and_then(Vec::pop).expect("non-empty");
            *held.get_mut(&g).expect("counted") -= e.disk_bytes();
            freed += e.disk_bytes();
            picked.push(e.ih);
        }
        evict.extend(picked);
        freed
    }
}

/// The local user's own uploads: what they were (file names) and the token a
/// `swarmsite upload` follows. In its own file, never in the queue or the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnMark {
    pub token: String,
    pub label: String,
    pub added_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct OwnMarks {
    marks: BTreeMap<String, OwnMark>,
}

impl OwnMarks {
    /// Reads `own.json`; a missing or unreadable file is an empty list (it only
    /// labels entries, nothing depends on it).
    pub fn load(path: &Path) -> Self {
        let marks = std::fs::read(path)
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default();
        OwnMarks { marks }
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.marks).expect("json");
        fsutil::write_atomic(path, &json, fsutil::PRIVATE)
    }

    pub fn get(&self, ih: &InfoHash) -> Option<&OwnMark> {
        self.marks.get(&hex::encode(ih))
    }

    pub fn insert(&mut self, ih: &InfoHash, mark: OwnMark) {
        self.marks.insert(hex::encode(ih), mark);
    }

    /// Keeps only the marks of entries still in the queue.
    pub fn retain(&mut self, queue: &Queue) -> bool {
        let before = self.marks.len();
        self.marks.retain(|ih, _| {
            hex::decode(ih)
                .ok()
                .and_then(|b| InfoHash::try_from(b).ok())
                .is_some_and(|ih| queue.get(&ih).is_some())
        });
        self.marks.len() != before
    }
}

/// Fixed-size byte arrays as hex strings in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| D::Error::custom(format!("not {N} hex bytes: {text}")))
    }
}

mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        b: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => super::hex_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            hex::decode(&t)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| serde::de::Error::custom(format!("not {N} hex bytes: {t}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, size: u64) -> Entry {
        let waiting = Some(StemState::Waiting { until: 5 });
        Entry::on_stem([n; 20], [n; 32], size, waiting, n as u64)
    }

    #[test]
    fn the_queue_survives_a_round_trip_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.json");
        assert!(Queue::load(&path).unwrap().iter().next().is_none());
        let mut q = Queue::default();
        q.insert(entry(1, 100));
        let mut fetched = entry(2, 200);
        (fetched.id, fetched.stem, fetched.stem_copy) = (None, None, false);
        fetched.fluff = Some(Fluff::Fetching);
        q.insert(fetched);
        q.save(&path).unwrap();
        let back = Queue::load(&path).unwrap();
        assert_eq!(
            back.iter().cloned().collect::<Vec<_>>(),
            q.iter().cloned().collect::<Vec<_>>()
        );
        assert_eq!(back.get(&[2; 20]).unwrap().state(), UploadState::Fetching);
        assert_eq!(back.by_id(&[1; 32]).unwrap().state(), UploadState::Waiting);
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(Queue::load(&path), Err(QueueError::Parse { .. })));
    }

    #[test]
    fn the_quota_evicts_the_oldest_receipted_and_never_the_rest() {
        let mut q = Queue::default();
        for n in 1..=4 {
            q.insert(entry(n, 100));
        }
        // 400 used of 450: 100 more do not fit, and nothing may go.
        assert_eq!(q.room(40, 0, 450, None), Room::Fits);
        assert_eq!(q.room(100, 0, 450, None), full(400, 450));
        assert_eq!(q.room(40, 20, 450, None), full(420, 450));
        // Two receipted copies kept on disk: the older receipt goes first.
        q.get_mut(&[3; 20]).unwrap().receipted_ms = Some(10);
        q.get_mut(&[2; 20]).unwrap().receipted_ms = Some(20);
        assert_eq!(q.room(100, 0, 450, None), Room::Evict(vec![[3; 20]]));
        assert_eq!(
            q.room(250, 0, 450, None),
            Room::Evict(vec![[3; 20], [2; 20]])
        );
        assert_eq!(q.room(251, 0, 450, None), full(200, 450));
        // A receipted entry whose files are gone frees nothing more.
        q.get_mut(&[3; 20]).unwrap().stem_copy = false;
        assert_eq!(q.room(250, 0, 450, None), Room::Evict(vec![[2; 20]]));
        assert_eq!(q.room(251, 0, 450, None), full(200, 450));
        assert!(Room::reason(300, 450).contains("not receipted"));
    }

    /// A copy fetched in fluff from address group `group`, seeded.
    fn fetched(n: u8, size: u64, group: u64) -> Entry {
        Entry {
            fluff: Some(Fluff::Seeding),
            source: Some(group),
            ..Entry::new([n; 20], None, size, n as u64)
        }
    }

    fn full(held: u64, quota: u64) -> Room {
        Room::Full { held, quota }
    }

    fn from(group: u64) -> Option<Source> {
        Some(Source { group, pending: 0 })
    }

    #[test]
    fn junk_from_one_address_gives_way_to_uploads_from_others() {
        let mut q = Queue::default();
        // Address 7 announced six uploads that filled the quota of 600; address 9 has one.
        for n in 1..=5 {
            q.insert(fetched(n, 100, 7));
        }
        q.insert(fetched(6, 100, 9));
        // 7 is over its share (600 / 4): refused whatever the room.
        assert_eq!(
            q.room(100, 0, 600, from(7)),
            Room::Share {
                held: 500,
                share: 150
            }
        );
        assert!(Room::share_reason(500, 150).contains("share"));
        // 9's next one displaces 7's newest, never 9's own.
        assert_eq!(q.room(100, 0, 600, from(9)), Room::Evict(vec![[5; 20]]));
        // A third address needing two displaces 7's two newest.
        assert_eq!(
            q.room(200, 0, 600, from(3)),
            Room::Evict(vec![[5; 20], [4; 20]])
        );
        // This node's own uploads displace nobody's.
        assert_eq!(q.room(100, 0, 600, None), full(600, 600));
        // Bytes under way from 9 count against its share.
        let pending = Some(Source {
            group: 9,
            pending: 50,
        });
        assert_eq!(
            q.room(100, 0, 600, pending),
            Room::Share {
                held: 150,
                share: 150
            }
        );
    }

    #[test]
    fn a_fair_share_keeps_what_only_this_node_carries() {
        let mut q = Queue::default();
        // Address 7 holds most, but as stem copies and a copy switched to fluff here:
        // this node may be all those uploads have.
        for n in 1..=3 {
            let mut e = entry(n, 100);
            e.source = Some(7);
            q.insert(e);
        }
        let mut fluffed = fetched(4, 100, 7);
        fluffed.stem = Some(StemState::Fluffed);
        q.insert(fluffed);
        q.insert(fetched(5, 100, 9));
        assert_eq!(q.room(100, 0, 500, from(9)), full(500, 500));
        // Receipted copies are no one's share, and go first.
        q.get_mut(&[1; 20]).unwrap().receipted_ms = Some(1);
        assert_eq!(q.held_from(7), 300);
        assert_eq!(q.room(100, 0, 500, from(9)), Room::Evict(vec![[1; 20]]));
        // Sources holding no more than the newcomer would are left alone.
        let mut q = Queue::default();
        q.insert(fetched(1, 100, 7));
        q.insert(fetched(2, 100, 9));
        assert_eq!(q.room(100, 0, 200, from(3)), full(200, 200));
        // Of two sources holding more, the one with the lowest group gives way first.
        assert_eq!(q.room(50, 0, 200, from(3)), Room::Evict(vec![[1; 20]]));
    }

    #[test]
    fn states_read_as_the_user_expects() {
        let mut e = entry(1, 1);
        assert_eq!(e.state(), UploadState::Waiting);
        e.stem = Some(StemState::Sending { to: 3 });
        assert_eq!(e.state(), UploadState::Sending);
        e.stem = Some(StemState::Passed { failsafe: 9 });
        assert_eq!(e.state(), UploadState::Sent);
        e.fluff = Some(Fluff::Fetching);
        assert_eq!(e.state(), UploadState::Fetching);
        assert_eq!(e.disk_bytes(), 2);
        e.fluff = Some(Fluff::Seeding);
        e.stem_copy = false;
        assert_eq!(e.state(), UploadState::Cached);
        e.stem = Some(StemState::Fluffed);
        assert_eq!(e.state(), UploadState::Fluffed);
        e.receipted_ms = Some(1);
        assert_eq!(e.state(), UploadState::Receipted);
    }

    #[test]
    fn own_marks_stay_apart_and_follow_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("own.json");
        let mut own = OwnMarks::load(&path);
        let mark = OwnMark {
            token: "t1".into(),
            label: "leak.pdf".into(),
            added_ms: 1,
        };
        own.insert(&[1; 20], mark.clone());
        own.insert(&[2; 20], mark.clone());
        own.save(&path).unwrap();
        let mut back = OwnMarks::load(&path);
        assert_eq!(back.get(&[1; 20]), Some(&mark));
        let mut q = Queue::default();
        q.insert(entry(1, 1));
        assert!(back.retain(&q));
        assert!(back.get(&[2; 20]).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
