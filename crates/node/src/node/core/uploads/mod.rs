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

mod fluff;
mod intake;
mod packing;
mod receipts;
mod restore;
mod stem;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::ctx::Ctx;
use super::*;
use crate::name::file_id;
use crate::upload::container::{self, ContainerError};
use crate::upload::fluff::{self as fluff_phase, FluffAction, Phase};
use crate::upload::queue::{
    Entry, Fluff, InfoHash, OwnMark, OwnMarks, Queue, Room, Source, UploadState,
};
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
    /// Not opened for want of disk space: tried again at the next tick.
    disk_short: bool,
}

struct IntakeState {
    cfg: Arc<IntakeConfig>,
    /// Info hashes held, in the order they arrived.
    held: Vec<InfoHash>,
    /// Being opened, at most [`intake::MAX_OPENING`] at once.
    opening: HashSet<InfoHash>,
    /// Held whole, to open when a slot frees or the disk has room.
    waiting: VecDeque<InfoHash>,
    /// The last open found too little disk space: the waiting ones wait for the tick.
    disk_short: bool,
    /// How many of `held` the newest published receipt lists.
    published: usize,
}

/// The uploads driver: the queue and the stem, fluff and transfer machines, driven by
/// the core through a [`Ctx`] (wire messages, its own reports, timeouts, a tick).
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
                waiting: VecDeque::new(),
                disk_short: false,
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
    pub(crate) fn tick_interval(&self) -> Duration {
        self.intake
            .as_ref()
            .map_or(Duration::from_secs(60), |i| i.cfg.receipt_interval)
            .max(Duration::from_millis(100))
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
    let t = crate::metainfo_file::make(file, TORRENT_NAME).map_err(|e| e.to_string())?;
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

impl Uploads {
    fn intake_kids(&self, ctx: &mut Ctx<'_>) -> Vec<crate::keys::Kid> {
        ctx.gossip
            .acceptor()
            .sets(crate::name::Role::INTAKE)
            .flat_map(|s| s.keys().iter().map(|k| k.kid()))
            .collect()
    }

    fn save_queue(&mut self, ctx: &mut Ctx<'_>) {
        let path = self.dir.join("queue.json");
        if let Err(e) = self.queue.save(&path) {
            tracing::error!("saving the upload queue {}: {e}", path.display());
        }
        self.refresh_upload_status(ctx);
    }

    fn refresh_upload_status(&self, ctx: &mut Ctx<'_>) {
        let count = |s: UploadState| self.queue.iter().filter(|e| e.state() == s).count();
        let summary = crate::node::UploadsStatus {
            entries: self.queue.iter().count(),
            in_stem: count(UploadState::Waiting) + count(UploadState::Sending),
            cached: count(UploadState::Cached) + count(UploadState::Fluffed),
            fetching: count(UploadState::Fetching),
            receipted: count(UploadState::Receipted),
            used_bytes: self.queue.used() + self.reserved(),
            quota_bytes: self.cfg.quota,
            refused: self.refused,
            last_refusal: self.last_refusal.clone(),
            receipts_version: self.receipts_version,
        };
        ctx.update_status(|s| s.uploads = summary);
    }

    fn emit_upload(&self, ctx: &mut Ctx<'_>, ih: &InfoHash) {
        if let Some(e) = self.queue.get(ih) {
            ctx.emit(NodeEvent::Upload {
                ih: hex::encode(ih),
                state: e.state(),
                size: e.size,
            });
        }
    }

    fn refuse_upload(&mut self, ctx: &mut Ctx<'_>, reason: String) {
        tracing::warn!("upload refused: {reason}");
        self.refused += 1;
        self.last_refusal = Some(reason.clone());
        self.refresh_upload_status(ctx);
        ctx.emit(NodeEvent::UploadRefused { reason });
    }

    /// Room for `need` bytes of an upload from `from` (`None`: this node's own): evicts
    /// kept receipted copies, and fetched copies of sources holding more than their
    /// fair part ([`Queue::room`]), if that makes room.
    fn make_room(
        &mut self,
        ctx: &mut Ctx<'_>,
        need: u64,
        from: Option<Source>,
    ) -> Result<(), String> {
        let reserved = self.reserved();
        match self.queue.room(need, reserved, self.cfg.quota, from) {
            Room::Fits => Ok(()),
            Room::Evict(list) => {
                for ih in list {
                    let receipted = self
                        .queue
                        .get(&ih)
                        .is_some_and(|e| e.receipted_ms.is_some());
                    self.remove_copies(ctx, &ih);
                    if !receipted {
                        // Displaced: others seed it; an announcement may bring it back.
                        tracing::info!(
                            "upload {} given up for another source's upload",
                            hex::encode(ih)
                        );
                        self.queue.remove(&ih);
                        self.fluff.forget(&ih);
                    }
                }
                self.save_queue(ctx);
                Ok(())
            }
            Room::Full { held, quota } => Err(Room::reason(held, quota)),
            Room::Share { held, share } => Err(Room::share_reason(held, share)),
        }
    }

    /// Where a peer's new container comes from, for the quota's fair share.
    fn source_of(&self, ctx: &Ctx<'_>, peer: PeerKey) -> Option<Source> {
        let group = address_group(ctx.conns.get(&peer)?.remote.ip());
        Some(self.source(ctx, group))
    }

    /// Address group `group` as a source: with the stem transfers from it under way.
    fn source(&self, ctx: &Ctx<'_>, group: u64) -> Source {
        let pending = (self.transfers.incoming())
            .filter(|(p, ..)| {
                ctx.conns
                    .get(p)
                    .is_some_and(|c| address_group(c.remote.ip()) == group)
            })
            .map(|(.., size)| size)
            .sum();
        Source { group, pending }
    }

    /// Deletes both copies of `ih` (its entry stays, without files).
    fn remove_copies(&mut self, ctx: &mut Ctx<'_>, ih: &InfoHash) {
        let Some(e) = self.queue.get_mut(ih) else {
            return;
        };
        let (id, fluff) = (e.id, e.fluff.take());
        e.stem_copy = false;
        if let Some(id) = id {
            let _ = std::fs::remove_dir_all(self.stem_dir(&id));
        }
        if fluff.is_some() {
            if let Some(c) = self.fetching.remove(ih) {
                c.cancel();
            }
            let (torrents, dir, ih) = (Arc::clone(&ctx.shared.torrents), self.fluff_dir(ih), *ih);
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
                let _ = std::fs::remove_dir_all(dir);
            });
        }
    }

    pub(crate) fn on_report(&mut self, ctx: &mut Ctx<'_>, r: UploadReport) {
        match r {
            UploadReport::Packed { token, result } => self.on_packed(ctx, token, result),
            UploadReport::Verified {
                peer,
                id,
                from_start,
                result,
            } => self.on_verified(ctx, peer, id, from_start, result),
            UploadReport::Seeding { ih, result } => self.on_seeding(ctx, ih, result),
            UploadReport::Metadata { ih, size, go } => self.on_metadata(ctx, ih, size, go),
            UploadReport::Fetched { ih, result } => self.on_fetched(ctx, ih, result),
            UploadReport::Progress { ih, have } => {
                if self.fetching.contains_key(&ih) {
                    self.progress.insert(ih, have);
                }
            }
            UploadReport::Opened { ih, opened } => self.on_opened(ctx, ih, opened),
            UploadReport::ReceiptsFetched { version, result } => match result {
                Ok(r) => self.apply_receipts(ctx, version, r),
                Err(e) => ctx.evidence(
                    None,
                    Some(SystemName::new(
                        ctx.cfg.bundle.network(),
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
}

/// The one log line for an upload that joins the stem here, made here or received: the
/// log must not tell them apart.
fn log_held(ih: &InfoHash, size: u64) {
    tracing::info!(
        "upload {} ({size} bytes) held for the stem",
        hex::encode(ih)
    );
}

/// The address group fetch slots and the quota's fair share go by: one IPv4 address,
/// one IPv6 /64 (what one host is usually given).
fn address_group(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4)),
            None => (u128::from(v6) >> 64) as u64 | 1 << 62,
        },
    }
}
