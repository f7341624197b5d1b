//! Keeping the served site current: download a new release beside the served one,
//! reusing unchanged files, then hand it to the core to switch.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::status::SyncStatus;
use crate::serve::SiteRelease;
use crate::store::NodeStore;
use crate::torrents::{Progress, Torrents};

/// A release to fetch.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub version: u32,
    pub ih: [u8; 20],
    pub time: u64,
    pub record: Vec<u8>,
    /// Where the content already is, when this node published it.
    pub local: Option<PathBuf>,
}

/// What a sync task reports.
pub enum SyncReport {
    Progress(SyncStatus),
    /// Complete and indexed: ready to switch to.
    Complete {
        wanted: Wanted,
        release: Box<SiteRelease>,
    },
    Failed {
        version: u32,
        error: String,
    },
}

/// How long without any progress before the torrent is added again with the current
/// peers: librqbit takes peers only when a torrent is added, and gives up on a peer that
/// did not have the torrent yet when first asked.
const STALL: Duration = Duration::from_secs(5);
/// How long to wait for a torrent's metadata before asking the current peers again.
const METADATA_WAIT: Duration = Duration::from_secs(5);

/// One release download, with everything it needs.
pub struct SyncJob {
    pub site: u32,
    pub wanted: Wanted,
    pub store: NodeStore,
    pub torrents: Arc<Torrents>,
    /// The served release's folder, to carry unchanged files over from.
    pub current_dir: Option<PathBuf>,
    /// BitTorrent addresses of the connected wire peers, kept current by the core.
    pub peers: watch::Receiver<Vec<SocketAddr>>,
    pub report: mpsc::Sender<SyncReport>,
    pub cancel: CancellationToken,
}

impl SyncJob {
    /// Fetches the release into its folder until complete or cancelled.
    pub async fn run(self) {
        let SyncJob {
            site,
            wanted,
            store,
            torrents,
            current_dir,
            peers,
            report,
            cancel,
        } = self;
        let version = wanted.version;
        let result = tokio::select! {
            r = fetch_inner(site, &wanted, &store, &torrents, current_dir.as_deref(), peers, &report) => r,
            _ = cancel.cancelled() => return,
        };
        let msg = match result {
            Ok(release) => SyncReport::Complete {
                wanted,
                release: Box::new(release),
            },
            Err(error) => SyncReport::Failed { version, error },
        };
        let _ = report.send(msg).await;
    }
}

async fn fetch_inner(
    site: u32,
    wanted: &Wanted,
    store: &NodeStore,
    torrents: &Torrents,
    current_dir: Option<&Path>,
    peers: watch::Receiver<Vec<SocketAddr>>,
    report: &mpsc::Sender<SyncReport>,
) -> Result<SiteRelease, String> {
    let dir = store.release_dir(site, wanted.version);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let status = |p: Progress, error: Option<String>| SyncStatus {
        version: wanted.version,
        have_bytes: p.have_bytes,
        total_bytes: p.total_bytes,
        peers: p.peers,
        bytes_per_sec: p.down_bytes_per_sec,
        fetched_bytes: p.fetched_bytes,
        error,
    };
    let mut torrent_bytes = None;
    if let Some(local) = &wanted.local {
        // Our own publication: the content is here already; librqbit's check confirms it.
        let payload = local.join(crate::publisher::PAYLOAD_DIR);
        crate::fsutil::copy_missing(&payload, &dir)
            .map_err(|e| format!("copying {}: {e}", payload.display()))?;
        let t = local.join(crate::publisher::TORRENT_FILE);
        torrent_bytes = Some(bytes::Bytes::from(
            std::fs::read(&t).map_err(|e| format!("{}: {e}", t.display()))?,
        ));
    }
    let progress = |p: Progress, error: Option<String>| {
        let _ = report.try_send(SyncReport::Progress(status(p, error)));
    };
    fetch_torrent(
        torrents,
        &wanted.ih,
        torrent_bytes,
        &dir,
        current_dir,
        peers,
        progress,
    )
    .await;
    let record = wanted.record.clone();
    let (v, t) = (wanted.version, wanted.time);
    tokio::task::spawn_blocking(move || SiteRelease::index(&dir, v, t, &record))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("indexing release {v}: {e}"))
}

/// Fetches torrent `ih` into `dir` until complete, whatever happens on the way: no
/// peer yet, a stalled transfer, a session restart. Files of `current_dir` with the
/// same path and length are carried over first. Cancel by dropping the future.
pub async fn fetch_torrent(
    torrents: &Torrents,
    ih: &[u8; 20],
    torrent_bytes: Option<bytes::Bytes>,
    dir: &Path,
    current_dir: Option<&Path>,
    peers: watch::Receiver<Vec<SocketAddr>>,
    progress: impl Fn(Progress, Option<String>),
) {
    let spec = FetchSpec {
        ih,
        torrent: torrent_bytes,
        dir,
        current_dir,
        only_files: None,
    };
    fetch(torrents, spec, peers, progress).await
}

/// What [`fetch`] gets: a torrent (with its metainfo when known), where it goes, and
/// which of its files.
pub struct FetchSpec<'a> {
    pub ih: &'a [u8; 20],
    pub torrent: Option<bytes::Bytes>,
    pub dir: &'a Path,
    /// A folder to carry files of the same path and length over from.
    pub current_dir: Option<&'a Path>,
    /// Only these files (indexes in the torrent's order); `None`: all.
    pub only_files: Option<Vec<usize>>,
}

/// [`fetch_torrent`] for a [`FetchSpec`]: the same persistence, for some files only.
pub async fn fetch(
    torrents: &Torrents,
    spec: FetchSpec<'_>,
    mut peers: watch::Receiver<Vec<SocketAddr>>,
    progress: impl Fn(Progress, Option<String>),
) {
    let FetchSpec {
        ih,
        torrent: mut torrent_bytes,
        dir,
        current_dir,
        only_files,
    } = spec;
    let mut generation = torrents.generation();
    let mut backoff = Backoff::default();
    let mut best_have = 0;
    loop {
        let known: Vec<SocketAddr> = peers.borrow_and_update().clone();
        if torrent_bytes.is_none() {
            // Learn the file list first so unchanged files can be carried over (the
            // kept metainfo when there is one, else from wire or BitTorrent peers).
            let found =
                tokio::time::timeout(METADATA_WAIT, torrents.fetch_metainfo(ih, known.clone()))
                    .await;
            let why = match found {
                Ok(Ok(meta)) => {
                    if let Some(cur) = current_dir {
                        for f in &meta.files {
                            reuse(cur, dir, &f.path, f.len);
                        }
                    }
                    torrent_bytes = Some(meta.bytes);
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no peer has it yet".to_string()),
            };
            if let Some(why) = why {
                backoff
                    .wait(&mut peers, &progress, Progress::default(), why)
                    .await;
                continue;
            }
        }
        generation.borrow_and_update();
        let added = torrents.add_files(ih, torrent_bytes.clone(), dir, known, only_files.clone());
        let handle = match added.await {
            Ok(h) => h,
            Err(e) => {
                // No peer could give the metadata, or the session was restarting:
                // try again with the peers known then.
                let _ = torrents.forget(ih).await;
                let why = e.to_string();
                backoff
                    .wait(&mut peers, &progress, Progress::default(), why)
                    .await;
                continue;
            }
        };
        let last_have = AtomicU64::new(u64::MAX);
        let last_change = AtomicU64::new(super::unix_ms());
        let wait = Torrents::wait(&handle, Duration::from_millis(250), |p| {
            if last_have.swap(p.have_bytes, Ordering::Relaxed) != p.have_bytes {
                last_change.store(super::unix_ms(), Ordering::Relaxed);
            }
            progress(p, None);
        });
        let stall = async {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let quiet = super::unix_ms().saturating_sub(last_change.load(Ordering::Relaxed));
                if quiet > STALL.as_millis() as u64 {
                    return;
                }
            }
        };
        let done = tokio::select! {
            r = wait => r.map(|_| Some(true)).map_err(|e| e.to_string()),
            _ = stall => Ok(Some(false)),
            // The session restarted (a new blacklist): this handle is dead, and the
            // torrent is in the new session already.
            _ = generation.changed() => Ok(None),
        };
        let stalled_at = Torrents::progress(&handle);
        if stalled_at.have_bytes > best_have {
            // It moved: the next stall starts the back-off afresh.
            best_have = stalled_at.have_bytes;
            backoff.reset();
        }
        match done {
            Ok(Some(true)) => break,
            Ok(Some(false)) => {
                // Stalled (every peer gone, or none has it yet): add it again with the
                // peers known then, sooner when they change.
                let _ = torrents.forget(ih).await;
                let why = format!("no peer is sending it ({} peers)", stalled_at.peers);
                backoff.wait(&mut peers, &progress, stalled_at, why).await;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = torrents.forget(ih).await;
                backoff.wait(&mut peers, &progress, stalled_at, e).await;
            }
        }
    }
}

/// Waits between tries of a fetch: 2 s, doubling to 60 s; at once when the peers
/// change. A fetch never gives up while it is wanted; its status says why it waits.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(60);

    fn reset(&mut self) {
        self.failures = 0;
    }

    async fn wait(
        &mut self,
        peers: &mut watch::Receiver<Vec<SocketAddr>>,
        progress: &impl Fn(Progress, Option<String>),
        at: Progress,
        why: String,
    ) {
        let delay = Self::FIRST
            .saturating_mul(1 << self.failures.min(5))
            .min(Self::MAX);
        self.failures += 1;
        progress(
            at,
            Some(format!("{why}; trying again within {} s", delay.as_secs())),
        );
        match tokio::time::timeout(delay, peers.changed()).await {
            // New peers: try them now, and soon again if they have nothing either.
            Ok(Ok(())) => self.failures = self.failures.min(1),
            // Nobody tells of peers any more (the node is stopping): just wait.
            Ok(Err(_)) => tokio::time::sleep(delay).await,
            Err(_) => {}
        }
    }
}

/// Reads the one file a single-file torrent put in `dir`, which must be `size` bytes.
pub fn read_single_file(dir: &Path, size: u64) -> Result<Vec<u8>, String> {
    let mut files = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()));
    let (Some(file), None) = (files.next(), files.next()) else {
        return Err("the torrent must hold exactly one file".into());
    };
    let bytes =
        std::fs::read(file.path()).map_err(|e| format!("{}: {e}", file.path().display()))?;
    if bytes.len() as u64 != size {
        return Err(format!("{} bytes, the record says {size}", bytes.len()));
    }
    Ok(bytes)
}

/// Lays out `body` as a publication of one file, the way `Command::Submit` seeds it:
/// `dir/payload/<file_name>` and `dir/payload.torrent`; returns the info hash and size.
pub fn prepare_single_file(
    dir: &Path,
    file_name: &str,
    body: &[u8],
) -> Result<([u8; 20], u64), String> {
    let payload = dir.join(crate::publisher::PAYLOAD_DIR);
    std::fs::create_dir_all(&payload).map_err(|e| format!("{}: {e}", payload.display()))?;
    let file = payload.join(file_name);
    crate::fsutil::write_atomic(&file, body, 0o644)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let t = crate::metainfo_file::make(&file, file_name).map_err(|e| e.to_string())?;
    let tf = dir.join(crate::publisher::TORRENT_FILE);
    crate::fsutil::write_atomic(&tf, &t.bytes, 0o644)
        .map_err(|e| format!("{}: {e}", tf.display()))?;
    Ok((t.info_hash, t.total_size))
}

/// Copies `rel` from the served release when the new one has a file of the same path
/// and length that is not there yet; librqbit then checks it piece by piece and fetches
/// only what differs. (A copy, not a link: librqbit writes in place.)
fn reuse(current: &Path, dir: &Path, rel: &Path, len: u64) {
    let src = current.join(rel);
    let dst = dir.join(rel);
    if dst.exists() || !std::fs::metadata(&src).is_ok_and(|m| m.is_file() && m.len() == len) {
        return;
    }
    if let Some(parent) = dst.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::copy(&src, &dst);
}
