//! Anonymous uploads on a running node (SPEC §7, PROTOCOL.md §19): the stem
//! (`upload::stem`) and its transfers (`upload::transfer`) driven over wire
//! connections, the fluff (`upload::fluff`) through librqbit, the queue on disk, receipts, the quota, and on
//! the intake node the opening of every upload and the publication of receipts.
//!
//! ```text
//! <data>/uploads/queue.json          the entries (upload::queue), written atomically
//! <data>/uploads/own.json            which of them the local user made (0600)
//! <data>/uploads/stem/<id>/upload    a stem copy: never seeded, never announced
//! <data>/uploads/fluff/<ih>/upload   a fluff copy: seeded until receipted
//! <data>/uploads/incoming/<id>.part  a stem transfer under way (resumable)
//! <data>/uploads/packing/            containers being packed, files being received
//! <data>/uploads/receipts/           torrent-form receipt lists
//! <data>/uploads/intake.json         (intake) the uploads it holds, in order
//! ```
//!
//! Nothing here tells a peer, the status or the logs which uploads this node made: the
//! originator behaves as a relay, and its own marks are read only by the local control
//! API (`List`).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::*;
use crate::name::file_id;
use crate::upload::container::{self, ContainerError};
use crate::upload::fluff::{self as fluff_phase, FluffAction, Phase};
use crate::upload::queue::{Entry, Fluff, InfoHash, OwnMark, OwnMarks, Queue, Room, UploadState};
use crate::upload::receipt::{self, Receipts};
use crate::upload::stem::{Stem, StemAction, StemState};
use crate::upload::transfer::{Local, TransferAction, Transfers};
use crate::upload::{IntakeConfig, UploadConfig};
use crate::wire::message::{BLOB_CHUNK, Blob, BlobId};

/// An unfinished incoming transfer nobody resumed for this long is removed.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Receipted entries are listed this long after their files are gone.
const RECEIPTED_LISTED_MS: u64 = 7 * 24 * 3600 * 1000;
/// How long to look for the metadata of an announced upload before giving up (another
/// announcement starts again).
const METADATA_PATIENCE: Duration = Duration::from_secs(600);
/// The file name inside every upload torrent: fixed, so that whoever makes the torrent
/// of a container gets the same info hash.
pub const TORRENT_NAME: &str = "upload";

/// What the local user (control API, tray app) asks of the upload queue.
pub enum UploadCommand {
    /// Pack these files and folders into a new upload. `cleanup` is removed afterwards
    /// (files a browser sent, received into the data folder).
    Queue {
        inputs: Vec<PathBuf>,
        cleanup: Option<PathBuf>,
        reply: oneshot::Sender<Result<PackingView, String>>,
    },
    /// The queue, as the local user sees it.
    List { reply: oneshot::Sender<UploadList> },
}

/// The queue for the local control API. `originated`, `token` and `label` are the
/// local user's own marks: they appear nowhere else.
#[derive(Clone, Debug, Serialize)]
pub struct UploadList {
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub max_size: u64,
    /// Containers refused for want of room or over the cap, and the last reason.
    pub refused: u64,
    pub last_refusal: Option<String>,
    pub packing: Vec<PackingView>,
    pub entries: Vec<EntryView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PackingView {
    pub token: String,
    pub label: String,
    pub input_bytes: u64,
    pub packed_bytes: u64,
    /// Why packing failed (the entry then never joins the queue).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    pub ih: String,
    pub size: u64,
    pub state: UploadState,
    pub added_ms: u64,
    /// When a waiting upload takes its next hop.
    pub next_hop_ms: Option<u64>,
    pub receipted_ms: Option<u64>,
    /// Bytes held while it is fetched or received.
    pub have_bytes: Option<u64>,
    pub originated: bool,
    pub token: Option<String>,
    pub label: Option<String>,
}

/// Results of the blocking and network work the driver starts.
pub(super) enum UploadReport {
    Packed {
        token: String,
        result: Result<(BlobId, InfoHash, u64), String>,
    },
    Verified {
        peer: PeerKey,
        id: BlobId,
        from_start: bool,
        result: Result<InfoHash, Rejected>,
    },
    Seeding {
        ih: InfoHash,
        result: Result<(), String>,
    },
    Metadata {
        ih: InfoHash,
        size: u64,
        go: oneshot::Sender<bool>,
    },
    Fetched {
        ih: InfoHash,
        result: Result<(), Rejected>,
    },
    Progress {
        ih: InfoHash,
        have: u64,
    },
    Opened {
        ih: InfoHash,
        opened: Opened,
    },
    ReceiptsFetched {
        version: u32,
        result: Result<Receipts, String>,
    },
}

/// Why a container (or its announcement) was not kept.
pub(super) enum Rejected {
    /// Its bytes or its announcement are wrong: evidence against whoever sent it.
    Bad(String),
    /// Bytes that do not hash to the offered id: the sender's fault when every byte
    /// came from it (not after a resume of another peer's transfer).
    Mismatch,
    /// Not taken, and no one's fault: sealed to an intake key this node does not know
    /// (yet), over this node's cap.
    Refused(String),
    /// Our side failed (disk, session).
    Failed(String),
}

impl From<ContainerError> for Rejected {
    /// What a relay's checks ([`container::check`]) say of a container.
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::UnknownKey(kid) => {
                Rejected::Refused(format!("sealed to intake key {kid}, unknown here"))
            }
            ContainerError::TooLarge { max } => {
                Rejected::Refused(format!("over this node's upload size cap of {max} bytes"))
            }
            ContainerError::Read(e) => Rejected::Failed(e.to_string()),
            other => Rejected::Bad(format!("not a valid upload container: {other}")),
        }
    }
}

struct Packing {
    view: PackingView,
    done: Arc<AtomicU64>,
}

/// What the intake did with an upload.
pub(super) struct Opened {
    outcome: String,
    /// It is held (opened, or kept whole): a receipt may list it.
    held: bool,
    /// The container failed to open: the evidence.
    evidence: Option<String>,
}

struct IntakeState {
    cfg: Arc<IntakeConfig>,
    /// Info hashes held, in the order they arrived.
    held: Vec<InfoHash>,
    opening: HashSet<InfoHash>,
    /// How many of `held` the newest published receipt lists.
    published: usize,
}

pub(super) struct Uploads {
    cfg: UploadConfig,
    dir: PathBuf,
    queue: Queue,
    own: OwnMarks,
    stem: Stem,
    /// Whom to tell, what to fetch, what is receipted or bad.
    fluff: fluff_phase::Fluff,
    transfers: Transfers,
    packing: BTreeMap<String, Packing>,
    /// The fetches under way (the fluff machine admits them).
    fetching: HashMap<InfoHash, CancellationToken>,
    /// Fetch progress of uploads being fetched.
    progress: HashMap<InfoHash, u64>,
    /// The newest receipt's version (the fluff machine holds what it lists).
    receipts_version: u32,
    receipts_fetch: Option<(u32, CancellationToken)>,
    refused: u64,
    last_refusal: Option<String>,
    intake: Option<IntakeState>,
    tx: mpsc::Sender<UploadReport>,
    pub(super) rx: mpsc::Receiver<UploadReport>,
}

impl Uploads {
    pub(super) fn new(cfg: &NodeConfig) -> Self {
        let (tx, rx) = mpsc::channel(256);
        let ucfg = cfg.uploads.clone();
        Uploads {
            dir: cfg.data_dir.join("uploads"),
            queue: Queue::default(),
            own: OwnMarks::default(),
            stem: Stem::new(ucfg.stem.clone(), rand::random()),
            fluff: fluff_phase::Fluff::new(ucfg.fluff.clone(), rand::random()),
            transfers: Transfers::new(ucfg.transfer.clone()),
            intake: ucfg.intake.clone().map(|cfg| IntakeState {
                cfg,
                held: Vec::new(),
                opening: HashSet::new(),
                published: 0,
            }),
            cfg: ucfg,
            packing: BTreeMap::new(),
            fetching: HashMap::new(),
            progress: HashMap::new(),
            receipts_version: 0,
            receipts_fetch: None,
            refused: 0,
            last_refusal: None,
            tx,
            rx,
        }
    }

    fn stem_dir(&self, id: &BlobId) -> PathBuf {
        self.dir.join("stem").join(hex::encode(id))
    }

    fn fluff_dir(&self, ih: &InfoHash) -> PathBuf {
        self.dir.join("fluff").join(hex::encode(ih))
    }

    fn partial(&self, id: &BlobId) -> PathBuf {
        self.dir
            .join("incoming")
            .join(format!("{}.part", hex::encode(id)))
    }

    /// Where the container of `e` is on disk, if anywhere.
    fn copy_of(&self, e: &Entry) -> Option<PathBuf> {
        match (e.fluff, e.id) {
            (Some(Fluff::Seeding), _) => Some(self.fluff_dir(&e.ih).join(TORRENT_NAME)),
            (_, Some(id)) if e.stem_copy => Some(self.stem_dir(&id).join(TORRENT_NAME)),
            _ => None,
        }
    }

    /// Bytes promised to incoming stem transfers under way.
    fn reserved(&self) -> u64 {
        self.transfers.incoming().map(|(_, _, _, size)| size).sum()
    }

    fn intake_file(&self) -> PathBuf {
        self.dir.join("intake.json")
    }

    /// How often [`Core::uploads_tick`] runs: the intake's receipt interval, else a
    /// minute.
    pub(super) fn tick_interval(&self) -> Duration {
        self.intake
            .as_ref()
            .map_or(Duration::from_secs(60), |i| i.cfg.receipt_interval)
            .max(Duration::from_millis(100))
    }
}

/// SHA-256 of everything written through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(sha.finalize().into());
        }
        sha.update(&buf[..n]);
    }
}

/// Moves container `file` into `target` (a new folder) with its torrent, in one rename;
/// returns the info hash.
fn commit_container(file: &Path, target: &Path) -> Result<InfoHash, String> {
    let t = crate::torrent::make(file, TORRENT_NAME).map_err(|e| e.to_string())?;
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let staging = crate::fsutil::Staging::new(target, 0o700)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    std::fs::rename(file, staging.path().join(TORRENT_NAME))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    staging
        .write("upload.torrent", &t.bytes, crate::fsutil::PRIVATE)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    staging
        .commit()
        .map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(t.info_hash)
}

/// Reads the header of the container at `path` and makes a relay's checks on it.
fn check_file(
    path: &Path,
    size: u64,
    known: &[crate::keys::Kid],
    max: u64,
) -> Result<(), ContainerError> {
    let mut f = std::fs::File::open(path).map_err(ContainerError::Read)?;
    let header = container::read_header(&mut f)?;
    container::check(&header, size, known, max)
}

impl Core {
    fn intake_kids(&self) -> Vec<crate::keys::Kid> {
        self.gossip
            .acceptor()
            .sets(crate::name::Role::INTAKE)
            .flat_map(|s| s.keys().iter().map(|k| k.kid()))
            .collect()
    }

    fn save_queue(&mut self) {
        let path = self.uploads.dir.join("queue.json");
        if let Err(e) = self.uploads.queue.save(&path) {
            tracing::error!("saving the upload queue {}: {e}", path.display());
        }
        self.refresh_upload_status();
    }

    fn refresh_upload_status(&self) {
        let u = &self.uploads;
        let count = |s: UploadState| u.queue.iter().filter(|e| e.state() == s).count();
        let summary = crate::node::UploadsStatus {
            entries: u.queue.iter().count(),
            in_stem: count(UploadState::Waiting) + count(UploadState::Sending),
            cached: count(UploadState::Cached) + count(UploadState::Fluffed),
            fetching: count(UploadState::Fetching),
            receipted: count(UploadState::Receipted),
            used_bytes: u.queue.used() + u.reserved(),
            quota_bytes: u.cfg.quota,
            refused: u.refused,
            last_refusal: u.last_refusal.clone(),
            receipts_version: u.receipts_version,
        };
        self.update_status(|s| s.uploads = summary);
    }

    fn emit_upload(&self, ih: &InfoHash) {
        if let Some(e) = self.uploads.queue.get(ih) {
            self.emit(NodeEvent::Upload {
                ih: hex::encode(ih),
                state: e.state(),
                size: e.size,
            });
        }
    }

    fn refuse_upload(&mut self, reason: String) {
        tracing::warn!("upload refused: {reason}");
        self.uploads.refused += 1;
        self.uploads.last_refusal = Some(reason.clone());
        self.refresh_upload_status();
        self.emit(NodeEvent::UploadRefused { reason });
    }

    /// Room for `need` bytes: evicts kept receipted copies if that makes room.
    fn make_room(&mut self, need: u64) -> Result<(), String> {
        let reserved = self.uploads.reserved();
        match self
            .uploads
            .queue
            .room(need, reserved, self.uploads.cfg.quota)
        {
            Room::Fits => Ok(()),
            Room::Evict(list) => {
                for ih in list {
                    self.remove_copies(&ih);
                }
                self.save_queue();
                Ok(())
            }
            Room::Full { held, quota } => Err(Room::reason(held, quota)),
        }
    }

    /// Deletes both copies of `ih` (its entry stays, without files).
    fn remove_copies(&mut self, ih: &InfoHash) {
        let Some(e) = self.uploads.queue.get_mut(ih) else {
            return;
        };
        let (id, fluff) = (e.id, e.fluff.take());
        e.stem_copy = false;
        if let Some(id) = id {
            let _ = std::fs::remove_dir_all(self.uploads.stem_dir(&id));
        }
        if fluff.is_some() {
            if let Some(c) = self.uploads.fetching.remove(ih) {
                c.cancel();
            }
            let (torrents, dir, ih) = (
                Arc::clone(&self.shared.torrents),
                self.uploads.fluff_dir(ih),
                *ih,
            );
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
                let _ = std::fs::remove_dir_all(dir);
            });
        }
    }

    // --- Start ---

    /// Loads the queue and picks every upload up where it was.
    pub(super) async fn restore_uploads(&mut self) {
        let dir = self.uploads.dir.clone();
        for sub in ["stem", "fluff", "incoming", "packing", "receipts"] {
            if let Err(e) = crate::fsutil::create_dir(&dir.join(sub), 0o700) {
                tracing::error!("{}: {e}", dir.join(sub).display());
            }
        }
        let _ = crate::fsutil::sweep_staging(&dir.join("stem"));
        let _ = crate::fsutil::sweep_staging(&dir.join("fluff"));
        // Half-packed containers and half-received browser files are of no use.
        if let Ok(rd) = std::fs::read_dir(dir.join("packing")) {
            for e in rd.flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        let queue_path = dir.join("queue.json");
        self.uploads.queue = match Queue::load(&queue_path) {
            Ok(q) => q,
            Err(e) => {
                // Keep the bad file for a look; rebuild from the copies on disk.
                tracing::error!("{e}; rebuilding the upload queue from the files");
                let _ = std::fs::rename(&queue_path, dir.join("queue.json.bad"));
                Queue::default()
            }
        };
        self.uploads.own = OwnMarks::load(&dir.join("own.json"));
        let intake_file = self.uploads.intake_file();
        if let Some(intake) = &mut self.uploads.intake {
            // An upload being opened when the intake stopped is opened again.
            let _ = crate::fsutil::sweep_staging(&intake.cfg.out);
            intake.held = std::fs::read(&intake_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
                .collect();
        }
        self.adopt_orphans();
        self.sweep_partials();
        let now = unix_ms();
        let entries: Vec<Entry> = self.uploads.queue.iter().cloned().collect();
        for e in entries {
            if let (Some(id), Some(state)) = (e.id, e.stem)
                && e.receipted_ms.is_none()
            {
                let own = self.uploads.own.get(&e.ih).is_some();
                self.uploads.stem.restore(id, state, own, now);
                self.sync_stem_state(&id);
            }
            // A fetch under way goes on (the machine asks for it).
            let phase = match e.fluff {
                Some(Fluff::Seeding) => Phase::Seeding,
                Some(Fluff::Fetching) => Phase::Fetching { from: None },
                None => Phase::Heard,
            };
            let receipted = e.receipted_ms.is_some();
            (self.uploads.fluff).restore(e.ih, phase, e.stem_copy, receipted, e.added_ms);
            if e.fluff == Some(Fluff::Seeding) && !receipted {
                self.seed(e.ih, false);
            }
            if e.receipted_ms.is_none() {
                self.intake_open(&e.ih);
            }
        }
        self.save_queue();
    }

    /// Copies on disk with no entry (a kill between moving a container into place and
    /// writing the queue) are taken back: a stem copy waits for its next hop again, a
    /// fluff copy is fetched (checked) again. Entries whose files vanished are dropped.
    fn adopt_orphans(&mut self) {
        let now = unix_ms();
        let dir = self.uploads.dir.clone();
        let hexes = |sub: &str| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        };
        for (name, path) in hexes("stem") {
            let Some(id) = hex::decode(&name)
                .ok()
                .and_then(|b| BlobId::try_from(b).ok())
            else {
                continue;
            };
            if self.uploads.queue.by_id(&id).is_some() {
                continue;
            }
            let ih = std::fs::read(path.join("upload.torrent"))
                .ok()
                .and_then(|t| crate::torrent::info_hash_of(&t).ok());
            let size = std::fs::metadata(path.join(TORRENT_NAME)).map(|m| m.len());
            match (ih, size) {
                (Some(ih), Ok(size)) => {
                    tracing::info!("upload {}: taken back into the queue", hex::encode(ih));
                    let waiting = Some(StemState::Waiting { until: now });
                    let e = Entry::on_stem(ih, id, size, waiting, now);
                    self.uploads.queue.insert(e);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        for (name, path) in hexes("fluff") {
            let Some(ih) = hex::decode(&name)
                .ok()
                .and_then(|b| InfoHash::try_from(b).ok())
            else {
                continue;
            };
            if self
                .uploads
                .queue
                .get(&ih)
                .is_some_and(|e| e.fluff.is_some())
            {
                continue;
            }
            match std::fs::read(path.join("upload.torrent")) {
                Ok(t) if crate::torrent::info_hash_of(&t).ok() == Some(ih) => {
                    let size = std::fs::metadata(path.join(TORRENT_NAME)).map_or(0, |m| m.len());
                    let e = self.uploads.queue.get(&ih).cloned();
                    let mut e = e.unwrap_or(Entry::new(ih, None, size, now));
                    e.fluff = Some(Fluff::Fetching);
                    self.uploads.queue.insert(e);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        let gone: Vec<InfoHash> = self
            .uploads
            .queue
            .iter()
            .filter(|e| {
                let stem_gone =
                    e.stem_copy && !e.id.is_some_and(|id| self.uploads.stem_dir(&id).exists());
                let fluff_gone = e.fluff.is_some() && !self.uploads.fluff_dir(&e.ih).exists();
                stem_gone || fluff_gone
            })
            .map(|e| e.ih)
            .collect();
        for ih in gone {
            tracing::warn!("upload {}: its files are gone; dropped", hex::encode(ih));
            self.uploads.queue.remove(&ih);
        }
        if self.uploads.own.retain(&self.uploads.queue) {
            let _ = self.uploads.own.save(&self.uploads.dir.join("own.json"));
        }
    }

    /// Removes partial transfers nobody resumed for a week.
    fn sweep_partials(&self) {
        let Ok(rd) = std::fs::read_dir(self.uploads.dir.join("incoming")) else {
            return;
        };
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PARTIAL_MAX_AGE);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    // --- The local user ---

    pub(super) fn on_upload_command(&mut self, cmd: UploadCommand) {
        match cmd {
            UploadCommand::List { reply } => {
                let _ = reply.send(self.upload_list());
            }
            UploadCommand::Queue {
                inputs,
                cleanup,
                reply,
            } => {
                let result = self.start_packing(inputs, cleanup);
                let _ = reply.send(result);
            }
        }
    }

    fn upload_list(&self) -> UploadList {
        let u = &self.uploads;
        let incoming: HashMap<&BlobId, u64> = u
            .transfers
            .incoming()
            .map(|(_, id, have, _)| (id, have))
            .collect();
        let entries = u
            .queue
            .iter()
            .map(|e| {
                let own = u.own.get(&e.ih);
                EntryView {
                    ih: hex::encode(e.ih),
                    size: e.size,
                    state: e.state(),
                    added_ms: e.added_ms,
                    next_hop_ms: match e.stem {
                        Some(StemState::Waiting { until }) if e.receipted_ms.is_none() => {
                            Some(until)
                        }
                        _ => None,
                    },
                    receipted_ms: e.receipted_ms,
                    have_bytes: u
                        .progress
                        .get(&e.ih)
                        .copied()
                        .or_else(|| e.id.as_ref().and_then(|id| incoming.get(id).copied())),
                    originated: own.is_some(),
                    token: own.map(|m| m.token.clone()),
                    label: own.map(|m| m.label.clone()),
                }
            })
            .collect();
        UploadList {
            quota_bytes: u.cfg.quota,
            used_bytes: u.queue.used() + u.reserved(),
            max_size: u.cfg.max_size,
            refused: u.refused,
            last_refusal: u.last_refusal.clone(),
            packing: u
                .packing
                .values()
                .map(|p| PackingView {
                    packed_bytes: p.done.load(Ordering::Relaxed),
                    ..p.view.clone()
                })
                .collect(),
            entries,
        }
    }

    fn start_packing(
        &mut self,
        inputs: Vec<PathBuf>,
        cleanup: Option<PathBuf>,
    ) -> Result<PackingView, String> {
        let fail = |e: String| {
            if let Some(c) = &cleanup {
                let _ = std::fs::remove_dir_all(c);
            }
            Err(e)
        };
        if inputs.is_empty() {
            return fail("nothing to upload".into());
        }
        let Some(key) = crate::upload::intake_key(self.gossip.acceptor()).cloned() else {
            return fail("this network has no intake key to seal uploads to".into());
        };
        let mut input_bytes = 0;
        let mut names = Vec::new();
        for p in &inputs {
            let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()));
            let meta = match meta {
                Ok(m) => m,
                Err(e) => return fail(e),
            };
            if meta.is_dir() {
                match crate::torrent::list_files(p) {
                    Ok(files) => input_bytes += files.iter().map(|f| f.length).sum::<u64>(),
                    Err(e) => return fail(e.to_string()),
                }
            } else if meta.is_file() {
                input_bytes += meta.len();
            } else {
                return fail(format!("{}: neither a file nor a folder", p.display()));
            }
            names.push(p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ));
        }
        // The smallest container must fit: refuse at once rather than after packing.
        if let Err(reason) = self.make_room(container::container_size(container::MIN_BUCKET)) {
            self.refuse_upload(reason.clone());
            return fail(reason);
        }
        let token = hex::encode(rand::random::<[u8; 8]>());
        let done = Arc::new(AtomicU64::new(0));
        let view = PackingView {
            token: token.clone(),
            label: names.join(", "),
            input_bytes,
            packed_bytes: 0,
            error: None,
        };
        self.uploads.packing.insert(
            token.clone(),
            Packing {
                view: view.clone(),
                done: Arc::clone(&done),
            },
        );
        let tmp = self
            .uploads
            .dir
            .join("packing")
            .join(format!("{token}.ssu"));
        let stem_root = self.uploads.dir.join("stem");
        let limits = container::Limits {
            max_size: self.uploads.cfg.max_size,
            ..container::Limits::default()
        };
        let tx = self.uploads.tx.clone();
        let report_token = token.clone();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let file = crate::fsutil::open_new(&tmp, crate::fsutil::PRIVATE)
                    .map_err(|e| format!("{}: {e}", tmp.display()))?;
                let mut out = Hashing {
                    inner: std::io::BufWriter::new(file),
                    sha: Sha256::new(),
                };
                let packed =
                    container::pack_with_progress(&inputs, &key, &mut out, &limits, &mut |n| {
                        done.store(n, Ordering::Relaxed)
                    });
                let packed = match packed {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.to_string());
                    }
                };
                let file = out.inner.into_inner().map_err(|e| e.to_string())?;
                file.sync_all().map_err(|e| e.to_string())?;
                let id: BlobId = out.sha.finalize().into();
                let ih = commit_container(&tmp, &stem_root.join(hex::encode(id)));
                let _ = std::fs::remove_file(&tmp);
                Ok((id, ih?, packed.size))
            })();
            if let Some(c) = cleanup {
                let _ = std::fs::remove_dir_all(c);
            }
            let _ = tx.blocking_send(UploadReport::Packed {
                token: report_token,
                result,
            });
        });
        Ok(view)
    }

    fn on_packed(&mut self, token: String, result: Result<(BlobId, InfoHash, u64), String>) {
        let Some(mut packing) = self.uploads.packing.remove(&token) else {
            return;
        };
        let (id, ih, size) = match result {
            Ok(r) => r,
            Err(e) => {
                packing.view.error = Some(e);
                self.keep_failed_packing(token, packing);
                return;
            }
        };
        if let Err(reason) = self.make_room(size) {
            let _ = std::fs::remove_dir_all(self.uploads.stem_dir(&id));
            packing.view.error = Some(reason.clone());
            self.keep_failed_packing(token, packing);
            self.refuse_upload(reason);
            return;
        }
        let now = unix_ms();
        self.uploads.own.insert(
            &ih,
            OwnMark {
                token,
                label: packing.view.label,
                added_ms: now,
            },
        );
        if let Err(e) = self.uploads.own.save(&self.uploads.dir.join("own.json")) {
            tracing::error!("saving own.json: {e}");
        }
        self.uploads.stem.originate(id, now);
        self.uploads.fluff.stem_copy(ih, now);
        let stem = self.uploads.stem.state(&id);
        self.uploads
            .queue
            .insert(Entry::on_stem(ih, id, size, stem, now));
        self.save_queue();
        // Logged and announced exactly like an upload received on the stem.
        log_held(&ih, size);
        self.emit_upload(&ih);
        self.intake_open(&ih);
    }

    /// A failed packing stays listed (with its error) so the user following it sees why.
    fn keep_failed_packing(&mut self, token: String, packing: Packing) {
        let failed: Vec<String> = self
            .uploads
            .packing
            .iter()
            .filter(|(_, p)| p.view.error.is_some())
            .map(|(t, _)| t.clone())
            .collect();
        if failed.len() >= 32 {
            self.uploads.packing.remove(&failed[0]);
        }
        self.uploads.packing.insert(token, packing);
    }

    // --- The stem ---

    /// Keeps the entry's copy of the stem state in step with the state machine.
    fn sync_stem_state(&mut self, id: &BlobId) {
        let state = self.uploads.stem.state(id);
        let ih = self.uploads.queue.by_id(id).map(|e| e.ih);
        if let Some(ih) = ih
            && let Some(e) = self.uploads.queue.get_mut(&ih)
            && e.stem != state
            && state.is_some()
        {
            e.stem = state;
        }
    }

    /// Ready peers that take uploads, for the next stem hop.
    fn upload_peers(&self) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ready && c.uploads && !self.blacklist.contains(c.remote.ip()))
            .map(|(k, _)| *k)
            .collect();
        peers.sort_unstable();
        peers
    }

    pub(super) fn uploads_next_timeout(&self) -> Option<u64> {
        [
            self.uploads.stem.next_timeout(),
            self.uploads.fluff.next_timeout(),
            self.uploads.transfers.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn uploads_timeout(&mut self, now: u64) {
        let peers = self.upload_peers();
        self.uploads.stem.handle_timeout(now, &peers);
        self.uploads.fluff.handle_timeout(now, &peers);
        self.uploads.transfers.handle_timeout(now);
    }

    pub(super) fn uploads_peer_up(&mut self, key: PeerKey) {
        let Some(conn) = self.conns.get(&key).filter(|c| c.uploads) else {
            return;
        };
        let ip = conn.remote.ip();
        self.uploads.transfers.peer_up(key, ip);
        self.uploads.fluff.peer_up(key);
    }

    pub(super) fn uploads_peer_down(&mut self, key: PeerKey) {
        self.uploads.transfers.peer_down(key);
        self.uploads.fluff.peer_down(key);
    }

    fn send_up(&self, key: PeerKey, ih: InfoHash) {
        if let Some(c) = self.conns.get(&key)
            && c.ready
            && c.uploads
        {
            let _ = c.tx.try_send(Message::Up { ih });
        }
    }

    /// Runs the actions of the stem, fluff and transfer machines.
    pub(super) fn drain_upload_actions(&mut self) {
        loop {
            if let Some(a) = self.uploads.stem.poll_action() {
                self.on_stem_action(a);
            } else if let Some(a) = self.uploads.fluff.poll_action() {
                self.on_fluff_action(a);
            } else if let Some(a) = self.uploads.transfers.poll_action() {
                self.on_transfer_action(a);
            } else {
                return;
            }
        }
    }

    fn on_stem_action(&mut self, a: StemAction) {
        match a {
            StemAction::Send { id, to } => {
                let size = self.uploads.queue.by_id(&id).map(|e| e.size);
                match size {
                    Some(size) => self.uploads.transfers.send(to, id, size, unix_ms()),
                    None => self.uploads.stem.forget(&id),
                }
                self.sync_stem_state(&id);
                self.save_queue();
            }
            StemAction::Fluff { id } => self.fluff(id),
        }
    }

    fn on_fluff_action(&mut self, a: FluffAction) {
        match a {
            FluffAction::Tell { ih, to } => self.send_up(to, ih),
            FluffAction::Fetch {
                ih,
                from: _,
                resume,
            } => self.fetch_upload(ih, resume),
            FluffAction::StemOver { ih } => {
                // The stem copy is fetched like any other upload; its hops stop.
                if let Some(id) = self.uploads.queue.get(&ih).and_then(|e| e.id) {
                    self.uploads.stem.fluff_seen(&id);
                    self.uploads.transfers.cancel_all(&id, "fluffed");
                    self.sync_stem_state(&id);
                    self.save_queue();
                }
            }
            FluffAction::Drop { ih } => self.drop_fluff(&ih),
            FluffAction::Bad { ih, announcer, why } => {
                let why = format!("announced upload {}: {why}", hex::encode(ih));
                match announcer {
                    Some(peer) => self.upload_breach(peer, "bad-upload", why),
                    None => tracing::warn!("{why}"),
                }
            }
        }
    }

    fn on_transfer_action(&mut self, a: TransferAction) {
        let now = unix_ms();
        match a {
            TransferAction::Send { peer, msg } => {
                if let Some(c) = self.conns.get(&peer) {
                    let _ = c.tx.try_send(Message::Blob(msg));
                }
            }
            TransferAction::SendData { peer, id, at, len } => {
                let file = self.uploads.stem_dir(&id).join(TORRENT_NAME);
                let data = (|| {
                    let mut f = std::fs::File::open(&file)?;
                    f.seek(SeekFrom::Start(at))?;
                    let mut data = vec![0u8; len.min(BLOB_CHUNK as u64) as usize];
                    f.read_exact(&mut data)?;
                    std::io::Result::Ok(data)
                })();
                let sent = match (data, self.conns.get(&peer)) {
                    (Ok(data), Some(c)) => {
                        c.tx.try_send(Message::Blob(Blob::Data { id, at, data }))
                            .map_err(|_| "the connection is not keeping up")
                    }
                    (Err(e), _) => {
                        // The path stays here: the peer hears only that it failed.
                        tracing::error!("{}: {e}", file.display());
                        Err("cannot read it")
                    }
                    (_, None) => Err("the connection closed"),
                };
                if let Err(why) = sent {
                    self.uploads.transfers.cancel(peer, id, why);
                }
            }
            TransferAction::Store { peer, id, at, data } => {
                let path = self.uploads.partial(&id);
                let written = (|| {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(false)
                        .open(&path)?;
                    f.seek(SeekFrom::Start(at))?;
                    f.write_all(&data)
                })();
                match written {
                    Ok(()) => self.uploads.transfers.stored(peer, id, now),
                    Err(e) => {
                        tracing::error!("{}: {e}", path.display());
                        self.uploads.transfers.abort(peer, id, "cannot store it");
                    }
                }
            }
            TransferAction::Verify {
                peer,
                id,
                from_start,
            } => self.verify_incoming(peer, id, from_start),
            TransferAction::Delivered { peer: _, id } => {
                self.uploads.stem.sent(&id, now);
                self.sync_stem_state(&id);
                self.save_queue();
                if let Some(e) = self.uploads.queue.by_id(&id) {
                    let ih = e.ih;
                    self.emit_upload(&ih);
                }
            }
            TransferAction::SendFailed { peer, id, why } => {
                tracing::info!("stem hop to {} failed: {why}", self.peer_name(peer));
                self.uploads.stem.failed(&id, now);
                self.sync_stem_state(&id);
                self.save_queue();
            }
            TransferAction::Abandoned { .. } => {}
            TransferAction::Violation { peer, why } => {
                self.upload_breach(peer, "blob-breach", why);
            }
        }
    }

    fn peer_name(&self, key: PeerKey) -> String {
        self.peer_addrs(key)
            .map_or_else(|| "a closed peer".into(), |a| a.remote.to_string())
    }

    /// Records a peer's breach of the upload protocol and closes its connection.
    fn upload_breach(&mut self, peer: PeerKey, code: &str, why: String) {
        let remote = self.peer_addrs(peer).map(|a| a.remote);
        self.record_evidence(remote, None, code, why);
        self.close_conn(peer);
    }

    /// A `ss_blob` message from `key`.
    pub(super) fn on_blob(&mut self, key: PeerKey, msg: Blob) {
        if !self.conns.get(&key).is_some_and(|c| c.ready && c.uploads) {
            return;
        }
        // Only an offer asks what this node holds.
        let local = match &msg {
            Blob::Offer { id, size } => self.local_for_offer(key, id, *size),
            _ => Local::Whole,
        };
        self.uploads
            .transfers
            .handle(key, msg, move |_, _| local, unix_ms());
    }

    /// What this node says to an offer of container `id` of `size` bytes.
    fn local_for_offer(&mut self, key: PeerKey, id: &BlobId, size: u64) -> Local {
        if !container::valid_size(size) || size > container::DEFAULT_MAX_SIZE {
            let remote = self.peer_addrs(key).map(|a| a.remote);
            self.record_evidence(
                remote,
                None,
                "bad-upload",
                format!("offered an upload of {size} bytes, which is no container size"),
            );
            return Local::Refuse("not an upload container".into());
        }
        if size > self.uploads.cfg.max_size {
            return Local::Refuse(format!(
                "over this node's upload size cap of {} bytes",
                self.uploads.cfg.max_size
            ));
        }
        if let Some(e) = self.uploads.queue.by_id(id) {
            // Held already. If this node handed it on, the walk looped back here: it
            // goes on from here, as if it had just arrived.
            let ih = e.ih;
            if e.stem_copy
                && e.receipted_ms.is_none()
                && self.uploads.stem.received(*id, key, unix_ms())
            {
                self.sync_stem_state(id);
                self.save_queue();
                self.emit_upload(&ih);
            }
            return Local::Whole;
        }
        let partial = std::fs::metadata(self.uploads.partial(id))
            .map_or(0, |m| m.len())
            .min(size);
        match self.make_room(size - partial) {
            Ok(()) => {
                if partial > 0 {
                    tracing::info!("resuming an upload transfer at byte {partial} of {size}");
                }
                Local::Partial(partial)
            }
            Err(reason) => {
                self.refuse_upload(reason.clone());
                Local::Refuse(reason)
            }
        }
    }

    /// A whole container arrived: hash it, check it, move it into place (off the core
    /// task); then [`Core::on_verified`].
    fn verify_incoming(&mut self, peer: PeerKey, id: BlobId, from_start: bool) {
        let partial = self.uploads.partial(&id);
        let target = self.uploads.stem_dir(&id);
        let known = self.intake_kids();
        let max = self.uploads.cfg.max_size;
        let tx = self.uploads.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let size = std::fs::metadata(&partial)
                    .map_err(|e| Rejected::Failed(format!("{}: {e}", partial.display())))?
                    .len();
                let sha = sha256_file(&partial)
                    .map_err(|e| Rejected::Failed(format!("{}: {e}", partial.display())))?;
                if sha != id {
                    let _ = std::fs::remove_file(&partial);
                    return Err(Rejected::Mismatch);
                }
                if let Err(e) = check_file(&partial, size, &known, max) {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
                std::fs::File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Rejected::Failed(e.to_string()))?;
                commit_container(&partial, &target).map_err(Rejected::Failed)
            })();
            let _ = tx.blocking_send(UploadReport::Verified {
                peer,
                id,
                from_start,
                result,
            });
        });
    }

    fn on_verified(
        &mut self,
        peer: PeerKey,
        id: BlobId,
        from_start: bool,
        result: Result<InfoHash, Rejected>,
    ) {
        let now = unix_ms();
        let ih = match result {
            Ok(ih) => ih,
            Err(Rejected::Bad(why)) => {
                self.uploads.transfers.verified(
                    peer,
                    id,
                    Err("not a valid upload container".into()),
                );
                self.upload_breach(peer, "bad-upload", format!("sent an upload that is {why}"));
                return;
            }
            Err(Rejected::Mismatch) => {
                self.uploads
                    .transfers
                    .verified(peer, id, Err("does not hash to its id".into()));
                // Bytes that came from another peer before a resume are not this one's.
                if from_start {
                    let why = "sent an upload that does not hash to the id it offered";
                    self.upload_breach(peer, "bad-upload", why.into());
                }
                return;
            }
            Err(Rejected::Refused(why)) => {
                self.uploads.transfers.verified(peer, id, Err(why));
                return;
            }
            Err(Rejected::Failed(why)) => {
                tracing::error!("keeping an upload that arrived: {why}");
                self.uploads
                    .transfers
                    .verified(peer, id, Err("cannot store it".into()));
                return;
            }
        };
        if self.uploads.fluff.is_receipted(&ih) {
            // The intake has it already: nothing to carry.
            let _ = std::fs::remove_dir_all(self.uploads.stem_dir(&id));
            self.uploads.transfers.verified(peer, id, Ok(()));
            return;
        }
        let size =
            std::fs::metadata(self.uploads.stem_dir(&id).join(TORRENT_NAME)).map_or(0, |m| m.len());
        self.uploads.stem.received(id, peer, now);
        self.uploads.fluff.stem_copy(ih, now);
        let existing = self.uploads.queue.get(&ih).cloned();
        let mut e = existing.unwrap_or(Entry::new(ih, Some(id), size, now));
        (e.id, e.stem_copy, e.stem) = (Some(id), true, self.uploads.stem.state(&id));
        self.uploads.queue.insert(e);
        // On disk and in the queue: now the sender may let go.
        self.save_queue();
        self.uploads.transfers.verified(peer, id, Ok(()));
        log_held(&ih, size);
        self.emit_upload(&ih);
        self.intake_open(&ih);
    }

    // --- Fluff ---

    /// This node switches `id` to fluff: its stem copy becomes a seeded torrent.
    fn fluff(&mut self, id: BlobId) {
        let Some(mut e) = self.uploads.queue.by_id(&id).cloned() else {
            return;
        };
        e.stem = self.uploads.stem.state(&id);
        if e.fluff.is_none() && e.stem_copy {
            let (from, to) = (self.uploads.stem_dir(&id), self.uploads.fluff_dir(&e.ih));
            match std::fs::rename(&from, &to) {
                Ok(()) => {
                    e.stem_copy = false;
                    e.fluff = Some(Fluff::Seeding);
                    self.uploads.fluff.fluffed(e.ih, unix_ms());
                }
                Err(err) => {
                    tracing::error!("fluffing upload {}: {err}", hex::encode(e.ih));
                    return;
                }
            }
        }
        let ih = e.ih;
        self.uploads.queue.insert(e);
        self.save_queue();
        tracing::info!("upload {} switched to fluff", hex::encode(ih));
        self.emit_upload(&ih);
        self.seed(ih, true);
    }

    /// Seeds the fluff copy of `ih`; `announce`: then tells peers.
    fn seed(&mut self, ih: InfoHash, announce: bool) {
        let dir = self.uploads.fluff_dir(&ih);
        let torrents = Arc::clone(&self.shared.torrents);
        let tx = self.uploads.tx.clone();
        tokio::spawn(async move {
            let result = async {
                let t = std::fs::read(dir.join("upload.torrent"))
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                let h = torrents
                    .add(&ih, Some(t.into()), &dir, vec![])
                    .await
                    .map_err(|e| e.to_string())?;
                let wait = Torrents::wait(&h, Duration::from_millis(200), |_| {});
                tokio::time::timeout(Duration::from_secs(600), wait)
                    .await
                    .map_err(|_| "checking the container took too long".to_string())?
                    .map_err(|e| e.to_string())
            }
            .await;
            if announce || result.is_err() {
                let _ = tx.send(UploadReport::Seeding { ih, result }).await;
            }
        });
    }

    fn on_seeding(&mut self, ih: InfoHash, result: Result<(), String>) {
        match result {
            Ok(()) => {
                let peers = self.upload_peers();
                self.uploads.fluff.seeded(ih, unix_ms(), &peers);
            }
            Err(e) => tracing::error!("seeding upload {}: {e}", hex::encode(ih)),
        }
    }

    /// A `ss_up` from `key`, within its rate limit: the fluff machine decides.
    pub(super) fn on_up(&mut self, key: PeerKey, ih: InfoHash) {
        if !self.conns.get(&key).is_some_and(|c| c.ready && c.uploads)
            || !self.uploads.transfers.allow_up(key, unix_ms())
        {
            return;
        }
        self.uploads.fluff.up(ih, key, unix_ms());
    }

    /// Fetches `ih` into its fluff folder: metadata first (checked, and the quota asked
    /// via [`UploadReport::Metadata`]) unless `resume`, then the content, then the
    /// header.
    fn fetch_upload(&mut self, ih: InfoHash, resume: bool) {
        if self.uploads.fetching.contains_key(&ih) {
            return;
        }
        let cancel = self.shared.cancel.child_token();
        self.uploads.fetching.insert(ih, cancel.clone());
        let dir = self.uploads.fluff_dir(&ih);
        let torrents = Arc::clone(&self.shared.torrents);
        let mut peers = self.bt_peers.subscribe();
        let tx = self.uploads.tx.clone();
        let (known, max) = (self.intake_kids(), self.uploads.cfg.max_size);
        tokio::spawn(async move {
            let job = async {
                let torrent = if resume {
                    let t = std::fs::read(dir.join("upload.torrent"))
                        .map_err(|e| Rejected::Failed(format!("{}: {e}", dir.display())))?;
                    bytes::Bytes::from(t)
                } else {
                    let (t, size) = upload_metadata(&torrents, &ih, &mut peers, max).await?;
                    let (go, answer) = oneshot::channel();
                    let _ = tx.send(UploadReport::Metadata { ih, size, go }).await;
                    if answer.await != Ok(true) {
                        return Ok(());
                    }
                    std::fs::create_dir_all(&dir)
                        .and_then(|_| {
                            crate::fsutil::write_atomic(
                                &dir.join("upload.torrent"),
                                &t,
                                crate::fsutil::PRIVATE,
                            )
                        })
                        .map_err(|e| Rejected::Failed(format!("{}: {e}", dir.display())))?;
                    t
                };
                let report = tx.clone();
                sync::fetch_torrent(&torrents, &ih, Some(torrent), &dir, None, peers, |p, _| {
                    let _ = report.try_send(UploadReport::Progress {
                        ih,
                        have: p.have_bytes,
                    });
                })
                .await;
                let file = dir.join(TORRENT_NAME);
                let size = std::fs::metadata(&file).map_or(0, |m| m.len());
                check_file(&file, size, &known, container::DEFAULT_MAX_SIZE)?;
                let _ = tx.send(UploadReport::Fetched { ih, result: Ok(()) }).await;
                Ok(())
            };
            let result = tokio::select! {
                r = job => r,
                _ = cancel.cancelled() => return,
            };
            if let Err(e) = result {
                let _ = tx.send(UploadReport::Fetched { ih, result: Err(e) }).await;
            }
        });
    }

    fn on_metadata(&mut self, ih: InfoHash, size: u64, go: oneshot::Sender<bool>) {
        if !self.uploads.fluff.metadata(&ih) {
            self.uploads.fetching.remove(&ih);
            let _ = go.send(false);
            return;
        }
        if let Err(reason) = self.make_room(size) {
            self.uploads.fetching.remove(&ih);
            self.uploads.fluff.refused(&ih);
            self.refuse_upload(reason);
            let _ = go.send(false);
            return;
        }
        let now = unix_ms();
        let mut e =
            (self.uploads.queue.get(&ih).cloned()).unwrap_or(Entry::new(ih, None, size, now));
        e.fluff = Some(Fluff::Fetching);
        self.uploads.queue.insert(e);
        self.save_queue();
        self.emit_upload(&ih);
        let _ = go.send(true);
    }

    fn on_fetched(&mut self, ih: InfoHash, result: Result<(), Rejected>) {
        self.uploads.fetching.remove(&ih);
        self.uploads.progress.remove(&ih);
        match result {
            Ok(()) => {
                let Some(e) = self.uploads.queue.get_mut(&ih) else {
                    // Its entry went meanwhile: nothing to seed; the fetch slot is free.
                    self.uploads.fluff.refused(&ih);
                    return;
                };
                e.fluff = Some(Fluff::Seeding);
                let stem_copy = std::mem::take(&mut e.stem_copy).then_some(e.id).flatten();
                if let Some(id) = stem_copy {
                    // The fetched copy replaces the stem copy.
                    let _ = std::fs::remove_dir_all(self.uploads.stem_dir(&id));
                }
                self.save_queue();
                tracing::info!("upload {} fetched and cached", hex::encode(ih));
                self.emit_upload(&ih);
                let peers = self.upload_peers();
                self.uploads.fluff.fetched(ih, unix_ms(), &peers);
                self.intake_open(&ih);
            }
            Err(Rejected::Bad(why)) => self.uploads.fluff.bad(&ih, why),
            Err(Rejected::Refused(why) | Rejected::Failed(why)) => {
                tracing::warn!("fetching upload {}: {why}", hex::encode(ih));
                self.uploads.fluff.failed(&ih);
            }
            Err(Rejected::Mismatch) => self.uploads.fluff.failed(&ih),
        }
    }

    /// Drops a fluff copy that could not be had; a stem copy of the same upload stays.
    fn drop_fluff(&mut self, ih: &InfoHash) {
        self.remove_fluff_only(ih);
        let keep = self.uploads.queue.get(ih).is_some_and(|e| e.stem_copy);
        if !keep {
            self.uploads.queue.remove(ih);
        }
        self.save_queue();
    }

    fn remove_fluff_only(&mut self, ih: &InfoHash) {
        if let Some(e) = self.uploads.queue.get_mut(ih)
            && e.fluff.take().is_some()
        {
            let (torrents, dir, ih) = (
                Arc::clone(&self.shared.torrents),
                self.uploads.fluff_dir(ih),
                *ih,
            );
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
                let _ = std::fs::remove_dir_all(dir);
            });
        }
    }

    pub(super) fn on_upload_report(&mut self, r: UploadReport) {
        match r {
            UploadReport::Packed { token, result } => self.on_packed(token, result),
            UploadReport::Verified {
                peer,
                id,
                from_start,
                result,
            } => self.on_verified(peer, id, from_start, result),
            UploadReport::Seeding { ih, result } => self.on_seeding(ih, result),
            UploadReport::Metadata { ih, size, go } => self.on_metadata(ih, size, go),
            UploadReport::Fetched { ih, result } => self.on_fetched(ih, result),
            UploadReport::Progress { ih, have } => {
                if self.uploads.fetching.contains_key(&ih) {
                    self.uploads.progress.insert(ih, have);
                }
            }
            UploadReport::Opened { ih, opened } => self.on_opened(ih, opened),
            UploadReport::ReceiptsFetched { version, result } => match result {
                Ok(r) => self.apply_receipts(version, r),
                Err(e) => self.record_evidence(
                    None,
                    Some(SystemName::new(
                        self.cfg.bundle.network(),
                        kind::AUTHORIZED_FILE,
                        file_id::INTAKE_RECEIPTS,
                        version,
                    )),
                    "bad-receipts",
                    format!("signed intake receipts that cannot be read: {e}"),
                ),
            },
        }
    }

    // --- Receipts ---

    /// A newer intake receipt was accepted: free what it lists.
    pub(super) fn on_receipts(&mut self, record: &Record) {
        let version = record.name.version();
        if version <= self.uploads.receipts_version {
            return;
        }
        match &record.payload {
            Payload::Body(body) => match Receipts::decode(body) {
                Ok(r) => self.apply_receipts(version, r),
                Err(e) => self.record_evidence(
                    None,
                    Some(record.name),
                    "bad-receipts",
                    format!("signed intake receipts that cannot be read: {e}"),
                ),
            },
            Payload::Torrent { ih, size } => {
                if *size > receipt::MAX_RECEIPTS_BYTES {
                    self.record_evidence(
                        None,
                        Some(record.name),
                        "bad-receipts",
                        format!("signed intake receipts of {size} bytes are over the limit"),
                    );
                    return;
                }
                if let Some((_, old)) = self.uploads.receipts_fetch.take() {
                    old.cancel();
                }
                let cancel = self.shared.cancel.child_token();
                self.uploads.receipts_fetch = Some((version, cancel.clone()));
                let dir = self.uploads.dir.join("receipts").join(hex::encode(ih));
                let fetch = self.fetch_single_file(*ih, *size, dir);
                let tx = self.uploads.tx.clone();
                tokio::spawn(async move {
                    let result = tokio::select! {
                        r = fetch => r,
                        _ = cancel.cancelled() => return,
                    };
                    let result =
                        result.and_then(|b| Receipts::decode(&b).map_err(|e| e.to_string()));
                    let _ = tx
                        .send(UploadReport::ReceiptsFetched { version, result })
                        .await;
                });
            }
        }
    }

    fn apply_receipts(&mut self, version: u32, receipts: Receipts) {
        if version <= self.uploads.receipts_version {
            return;
        }
        self.uploads.receipts_version = version;
        self.uploads.receipts_fetch = None;
        self.uploads.fluff.receipts(receipts.ihs);
        let now = unix_ms();
        let listed: Vec<InfoHash> = self
            .uploads
            .queue
            .iter()
            .filter(|e| e.receipted_ms.is_none() && self.uploads.fluff.is_receipted(&e.ih))
            .map(|e| e.ih)
            .collect();
        for ih in &listed {
            let Some(e) = self.uploads.queue.get_mut(ih) else {
                continue;
            };
            e.receipted_ms = Some(now);
            if let Some(id) = e.id {
                self.uploads.stem.forget(&id);
                self.uploads.transfers.cancel_all(&id, "receipted");
            }
            if let Some(c) = self.uploads.fetching.remove(ih) {
                c.cancel();
                if let Some(e) = self.uploads.queue.get_mut(ih) {
                    e.fluff = e.fluff.filter(|f| *f == Fluff::Seeding);
                }
                let _ = std::fs::remove_dir_all(self.uploads.fluff_dir(ih));
            }
            // Seeding stops: the intake has it. The files go now, or after
            // `keep_receipted` (first to go when room is needed).
            let torrents = Arc::clone(&self.shared.torrents);
            let ih2 = *ih;
            tokio::spawn(async move {
                let _ = torrents.remove(&ih2).await;
            });
            if self.uploads.cfg.keep_receipted.is_zero() {
                self.remove_copies(ih);
            }
            tracing::info!("upload {} receipted by the intake", hex::encode(ih));
        }
        self.prune_receipted();
        self.save_queue();
        for ih in &listed {
            self.emit_upload(ih);
        }
    }

    /// Removes kept copies whose time is up, and forgets receipted entries long gone.
    fn prune_receipted(&mut self) {
        let now = unix_ms();
        let keep = self.uploads.cfg.keep_receipted.as_millis() as u64;
        let expired: Vec<InfoHash> = self
            .uploads
            .queue
            .iter()
            .filter(|e| e.receipted_ms.is_some_and(|t| now >= t + keep) && e.disk_bytes() > 0)
            .map(|e| e.ih)
            .collect();
        for ih in expired {
            self.remove_copies(&ih);
        }
        let old: Vec<InfoHash> = self
            .uploads
            .queue
            .iter()
            .filter(|e| {
                e.receipted_ms
                    .is_some_and(|t| now >= t + keep.max(RECEIPTED_LISTED_MS))
                    && e.disk_bytes() == 0
            })
            .map(|e| e.ih)
            .collect();
        for ih in old {
            self.uploads.queue.remove(&ih);
            self.uploads.fluff.forget(&ih);
        }
        if self.uploads.own.retain(&self.uploads.queue) {
            let _ = self.uploads.own.save(&self.uploads.dir.join("own.json"));
        }
    }

    /// Every minute: kept receipted copies whose time is up go; the intake publishes.
    pub(super) fn uploads_tick(&mut self) {
        if !self.uploads.cfg.keep_receipted.is_zero() {
            self.prune_receipted();
            self.save_queue();
        }
        self.publish_receipts();
    }

    // --- The intake ---

    /// (Intake) opens the upload `ih` once it is held whole.
    fn intake_open(&mut self, ih: &InfoHash) {
        let Some(intake) = &self.uploads.intake else {
            return;
        };
        if intake.held.contains(ih) || intake.opening.contains(ih) {
            return;
        }
        let Some(e) = self
            .uploads
            .queue
            .get(ih)
            .filter(|e| self.uploads.copy_of(e).is_some())
        else {
            return;
        };
        // Both places, in case the copy moves (stem to fluff) before it is opened.
        let mut files = vec![self.uploads.fluff_dir(ih).join(TORRENT_NAME)];
        files.extend(e.id.map(|id| self.uploads.stem_dir(&id).join(TORRENT_NAME)));
        let cfg = Arc::clone(&intake.cfg);
        if let Some(intake) = &mut self.uploads.intake {
            intake.opening.insert(*ih);
        }
        let (ih, tx) = (*ih, self.uploads.tx.clone());
        let limits = container::Limits {
            max_size: container::DEFAULT_MAX_SIZE,
            ..container::Limits::default()
        };
        tokio::task::spawn_blocking(move || {
            let opened = open_upload(&cfg, &ih, &files, &limits);
            let _ = tx.blocking_send(UploadReport::Opened { ih, opened });
        });
    }

    fn on_opened(&mut self, ih: InfoHash, opened: Opened) {
        let path = self.uploads.intake_file();
        let Some(intake) = &mut self.uploads.intake else {
            return;
        };
        intake.opening.remove(&ih);
        let Opened {
            outcome,
            held,
            evidence,
        } = opened;
        if !held {
            // Not readable now (it moved, the disk failed): tried again when it is
            // held again, or at the next start.
            tracing::warn!("intake: upload {}: {outcome}", hex::encode(ih));
            return;
        }
        if !intake.held.contains(&ih) {
            intake.held.push(ih);
        }
        let list: Vec<String> = intake.held.iter().map(hex::encode).collect();
        if let Err(e) =
            crate::fsutil::write_atomic(&path, &serde_json::to_vec(&list).expect("json"), 0o600)
        {
            tracing::error!("{}: {e}", path.display());
        }
        tracing::info!("intake: upload {}: {outcome}", hex::encode(ih));
        if let Some(detail) = evidence {
            self.record_evidence(
                None,
                None,
                "bad-upload",
                format!("upload {}: {detail}", hex::encode(ih)),
            );
        }
        self.emit(NodeEvent::UploadOpened {
            ih: hex::encode(ih),
            outcome,
        });
    }

    /// (Intake) signs and sends a receipt listing every upload held, when that grew.
    fn publish_receipts(&mut self) {
        let Some(intake) = &self.uploads.intake else {
            return;
        };
        if intake.held.len() <= intake.published {
            return;
        }
        let skip = intake.held.len().saturating_sub(receipt::MAX_RECEIPTS);
        let receipts = Receipts {
            ihs: intake.held[skip..].to_vec(),
        };
        let (count, signer) = (intake.held.len(), Arc::clone(&intake.cfg));
        let slot = (kind::AUTHORIZED_FILE, file_id::INTAKE_RECEIPTS);
        let version = self.gossip.acceptor().highest(slot) + 1;
        let name = SystemName::new(self.cfg.bundle.network(), slot.0, slot.1, version);
        let body = receipts.encode();
        let now = unix_ms();
        let sign = |payload| {
            Record::new(name, now / 1000, payload)
                .map(|mut r| {
                    r.sign(&signer.signer);
                    r
                })
                .and_then(|r| r.encode())
        };
        if receipts.fits_inline() {
            match sign(Payload::Body(body)) {
                Ok(bytes) => match self.gossip.submit(bytes.into(), now) {
                    Ok(v) => {
                        tracing::info!("intake: receipts v{version} ({count} uploads): {v}");
                        if let Some(i) = &mut self.uploads.intake {
                            i.published = count;
                        }
                    }
                    Err(e) => tracing::error!("intake: receipts v{version} refused: {e}"),
                },
                Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
            }
            return;
        }
        let dir = self
            .uploads
            .dir
            .join("receipts")
            .join(format!("own-v{version}"));
        match sync::prepare_single_file(&dir, "receipts.bencode", &body) {
            Ok((ih, size)) => match sign(Payload::Torrent { ih, size }) {
                Ok(bytes) => {
                    if let Some(i) = &mut self.uploads.intake {
                        i.published = count;
                    }
                    self.submit_own(bytes, dir, format!("intake: receipts v{version}"));
                }
                Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
            },
            Err(e) => tracing::error!("intake: receipts v{version}: {e}"),
        }
    }
}

/// The one log line for an upload that joins the stem here, made here or received: the
/// log must not tell them apart.
fn log_held(ih: &InfoHash, size: u64) {
    tracing::info!(
        "upload {} ({size} bytes) held for the stem",
        hex::encode(ih)
    );
}

/// Fetches the metadata of announced upload `ih` and checks it is one: a single file
/// named [`TORRENT_NAME`] of a container's size, within `max`. Returns the torrent and
/// the size.
async fn upload_metadata(
    torrents: &Torrents,
    ih: &InfoHash,
    peers: &mut watch::Receiver<Vec<SocketAddr>>,
    max: u64,
) -> Result<(bytes::Bytes, u64), Rejected> {
    let start = tokio::time::Instant::now();
    loop {
        let known = peers.borrow_and_update().clone();
        let wait = tokio::time::timeout(Duration::from_secs(5), torrents.fetch_metainfo(ih, known));
        if let Ok(Ok(crate::torrents::Metainfo {
            files,
            bytes: torrent,
        })) = wait.await
        {
            let size = match files.as_slice() {
                [f] if f.path == Path::new(TORRENT_NAME) => f.len,
                _ => {
                    return Err(Rejected::Bad(
                        "announced a torrent that is no upload".into(),
                    ));
                }
            };
            if !container::valid_size(size) || size > container::DEFAULT_MAX_SIZE {
                return Err(Rejected::Bad(format!(
                    "announced an upload of {size} bytes, which is no container size"
                )));
            }
            if size > max {
                return Err(Rejected::Failed(format!(
                    "over this node's upload size cap of {max} bytes"
                )));
            }
            return Ok((torrent, size));
        }
        if start.elapsed() > METADATA_PATIENCE {
            return Err(Rejected::Failed("no peer gave its metadata".into()));
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), peers.changed()).await;
    }
}

/// (Intake) opens the container (the first of `files` there) into `<out>/<ih>/`, never
/// over an existing folder. One sealed to an intake key not given is kept whole as
/// `<ih>.sealed`; one that fails to open is kept as `refused/<ih>`, with the reason as
/// evidence.
fn open_upload(
    cfg: &IntakeConfig,
    ih: &InfoHash,
    files: &[PathBuf],
    limits: &container::Limits,
) -> Opened {
    let name = hex::encode(ih);
    let dest = cfg.out.join(&name);
    let done = |outcome: String, held, evidence| Opened {
        outcome,
        held,
        evidence,
    };
    if dest.exists() {
        return done("opened before".into(), true, None);
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.out) {
        return done(format!("{}: {e}", cfg.out.display()), false, None);
    }
    // Once open, the copy may move or go (a receipt) without harm.
    let Some(file) = files.iter().find_map(|p| std::fs::File::open(p).ok()) else {
        return done("its copy is gone".into(), false, None);
    };
    let keys: Vec<&crate::keys::PrivateKey> = cfg.keys.iter().collect();
    let opened = container::open(std::io::BufReader::new(&file), &keys, &dest, limits);
    let keep = |to: PathBuf| {
        let _ = std::fs::create_dir_all(to.parent().unwrap_or(&cfg.out));
        if !to.exists() {
            let copied = (&file)
                .seek(SeekFrom::Start(0))
                .and_then(|_| crate::fsutil::open_new(&to, crate::fsutil::PRIVATE))
                .and_then(|mut out| std::io::copy(&mut &file, &mut out));
            if let Err(e) = copied {
                tracing::error!("intake: keeping {}: {e}", to.display());
            }
        }
    };
    match opened {
        Ok(o) => done(
            format!(
                "opened into {} ({} files, {} bytes)",
                dest.display(),
                o.files,
                o.bytes
            ),
            true,
            None,
        ),
        Err(ContainerError::UnknownKey(kid)) => {
            keep(cfg.out.join(format!("{name}.sealed")));
            done(
                format!(
                    "sealed to intake key {kid}, not given to this intake: kept as {name}.sealed"
                ),
                true,
                None,
            )
        }
        Err(ContainerError::Read(e)) => done(format!("cannot read it: {e}"), false, None),
        Err(e) => {
            keep(cfg.out.join("refused").join(&name));
            done(format!("refused: {e}"), true, Some(e.to_string()))
        }
    }
}
