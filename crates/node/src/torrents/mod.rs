//! Content transfer through an embedded librqbit session (SPEC §4, "Content").
//!
//! Releases, documents and uploads are ordinary torrents. Peers come from librqbit's
//! own DHT (random node id, public routers in the real network, off on loopback test
//! networks) and from the wire peers that hold the record, handed over when a torrent is
//! added (librqbit takes peers only then).
//!
//! librqbit reads its blocklist once, when a session starts. So a new blacklist
//! restarts the session: every torrent is added again over its folder (checked, not
//! fetched again) and holders of old handles see [`Torrents::generation`] move on.

mod audit;
pub mod metainfo;
mod pause;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use librqbit::api::TorrentIdOrHash;
use librqbit::dht::Id20;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, DhtSessionConfig, ListenerMode,
    ListenerOptions, ManagedTorrent, Session, SessionOptions,
};
use tokio::sync::{mpsc, watch};

pub use audit::{BadPiece, PieceAudit};
pub use metainfo::{FileEntry, MetainfoStore};

/// Where the node asks its wire peers for a torrent's metainfo (`ss_mget`): the info
/// hash and where to send what came back (`None`: no wire peer had it).
pub type MetainfoRequest = ([u8; 20], tokio::sync::oneshot::Sender<Option<bytes::Bytes>>);

/// A torrent in the session.
pub type TorrentHandle = Arc<ManagedTorrent>;

/// How long wire peers have to answer a metainfo ask before BitTorrent peers are asked
/// by ut_metadata too.
const WIRE_HEAD_START: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TorrentsError {
    #[error("starting the BitTorrent session: {0}")]
    Start(String),
    #[error("torrent {ih}: {why}")]
    Torrent { ih: String, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("downloaded torrent has info hash {got}, the record names {want}")]
    WrongInfoHash { want: String, got: String },
}

fn torrent_err(ih: &[u8; 20], e: impl std::fmt::Display) -> TorrentsError {
    TorrentsError::Torrent {
        ih: hex::encode(ih),
        why: format!("{e:#}"),
    }
}

/// How the session reaches the network.
#[derive(Clone, Debug)]
pub struct TorrentsConfig {
    /// Where the session keeps its own state.
    pub state_dir: PathBuf,
    /// The BitTorrent TCP listen address (an explicit 127.0.0.x on test networks).
    pub listen: SocketAddr,
    /// `None`: no librqbit DHT (loopback test networks); `Some(bootstrap)`: the DHT,
    /// bootstrapped from these `host:port`s (empty = librqbit's public routers).
    pub dht_bootstrap: Option<Vec<String>>,
    /// Bandwidth caps in bytes per second (`None` = unlimited).
    pub download_limit: Option<u32>,
    pub upload_limit: Option<u32>,
    /// Where bad pieces are reported (see [`PieceAudit`]); `None`: nowhere.
    pub audit: Option<PieceAudit>,
}

impl TorrentsConfig {
    /// A session on `ip` alone (port picked by the kernel), with no DHT, no caps and no
    /// piece audit: nothing leaves the machine. For tests, benchmarks and throw-away
    /// sessions.
    pub fn loopback(state_dir: PathBuf, ip: std::net::IpAddr) -> Self {
        TorrentsConfig {
            state_dir,
            listen: SocketAddr::new(ip, 0),
            dht_bootstrap: None,
            download_limit: None,
            upload_limit: None,
            audit: None,
        }
    }
}

/// Progress of one transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub have_bytes: u64,
    pub total_bytes: u64,
    pub peers: u32,
    pub down_bytes_per_sec: u64,
    /// Bytes received from peers (what crossed the network, unlike `have_bytes`).
    pub fetched_bytes: u64,
    /// Bytes sent to peers since the torrent was added to this session.
    pub uploaded_bytes: u64,
    pub finished: bool,
}

/// A torrent's metainfo, fetched from peers and checked against its info hash.
#[derive(Clone, Debug)]
pub struct Metainfo {
    pub files: Vec<FileEntry>,
    /// The `.torrent` file, to add it again without asking peers.
    pub bytes: bytes::Bytes,
}

/// What it takes to add a torrent again after a restart.
#[derive(Clone)]
struct Added {
    torrent: Option<bytes::Bytes>,
    folder: PathBuf,
    only_files: Option<Vec<usize>>,
}

pub struct Torrents {
    cfg: TorrentsConfig,
    session: ArcSwap<Session>,
    /// Every torrent added and not forgotten.
    added: Mutex<HashMap<[u8; 20], Added>>,
    /// Serialises restarts; holds the blacklist version and list in force.
    restart: tokio::sync::Mutex<(u32, Vec<IpNet>)>,
    generation: watch::Sender<u64>,
    root_span: tracing::Span,
    bad_pieces: Mutex<Option<mpsc::Receiver<BadPiece>>>,
    /// Sharing paused (see `pause.rs`): torrents are added paused.
    paused: std::sync::atomic::AtomicBool,
    /// The metainfo of every torrent added, kept across restarts.
    metainfo: MetainfoStore,
    /// Wire peers, asked for metainfo beside librqbit's own ut_metadata (set once by
    /// the node; `None` for bare sessions).
    wire_metainfo: std::sync::OnceLock<mpsc::Sender<MetainfoRequest>>,
}

impl Torrents {
    pub async fn start(cfg: TorrentsConfig) -> Result<Self, TorrentsError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| TorrentsError::Io {
            path: cfg.state_dir.clone(),
            source,
        })?;
        let (session_id, bad_pieces) = match &cfg.audit {
            Some(a) => {
                let (id, rx) = a.register();
                (id, Some(rx))
            }
            None => (0, None),
        };
        let root_span =
            tracing::error_span!(parent: None, "swarmsite_torrents", session = session_id);
        let mut cfg = cfg;
        if cfg.listen.port() == 0 {
            // librqbit announces (in its DHT) the port it is given, not the one the
            // kernel picks for port 0: pick it here.
            let probe =
                std::net::TcpListener::bind(cfg.listen).map_err(|source| TorrentsError::Io {
                    path: cfg.state_dir.clone(),
                    source,
                })?;
            cfg.listen = probe.local_addr().map_err(|source| TorrentsError::Io {
                path: cfg.state_dir.clone(),
                source,
            })?;
        }
        let metainfo = MetainfoStore::open(cfg.state_dir.join("metainfo")).map_err(|source| {
            TorrentsError::Io {
                path: cfg.state_dir.join("metainfo"),
                source,
            }
        })?;
        let session = open_session(&cfg, None, root_span.clone()).await?;
        // A restart must listen where peers were told we are, not on a new port 0 picks.
        if let Some(bound) = session.listen_addr() {
            cfg.listen = bound;
        }
        Ok(Torrents {
            cfg,
            session: ArcSwap::new(session),
            added: Mutex::new(HashMap::new()),
            restart: tokio::sync::Mutex::new((0, Vec::new())),
            generation: watch::channel(0).0,
            root_span,
            bad_pieces: Mutex::new(bad_pieces),
            paused: Default::default(),
            metainfo,
            wire_metainfo: Default::default(),
        })
    }

    /// Lets [`Torrents::fetch_metainfo`] ask wire peers too (the node's core answers
    /// these requests). Set once; later calls change nothing.
    pub fn set_wire_metainfo(&self, requests: mpsc::Sender<MetainfoRequest>) {
        let _ = self.wire_metainfo.set(requests);
    }

    /// The kept metainfo of `ih`, if this node ever added it and has not removed it.
    pub fn kept_metainfo(&self, ih: &[u8; 20]) -> Option<bytes::Bytes> {
        self.metainfo.get(ih)
    }

    /// Keeps `bytes` as the metainfo of `ih` (checked against it first).
    fn keep_metainfo(&self, ih: &[u8; 20], bytes: &[u8]) {
        if let Err(e) = self.metainfo.put(ih, bytes) {
            tracing::warn!("keeping the metainfo of {}: {e}", hex::encode(ih));
        }
    }

    fn session(&self) -> Arc<Session> {
        self.session.load_full()
    }

    /// Bad-piece reports for this session's torrents (once; `None` without an audit).
    pub fn take_bad_pieces(&self) -> Option<mpsc::Receiver<BadPiece>> {
        self.bad_pieces.lock().expect("torrents lock").take()
    }

    /// Moves on at each session restart: handles taken before it are dead.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Puts `nets` (blacklist `version`) in librqbit's blocklist: no connection to or
    /// from them, whoever names them (DHT, PEX, incoming). Restarts the session when the
    /// list changed and returns how many torrents were added again; an older version
    /// than the one in force changes nothing.
    pub async fn set_blocklist(
        &self,
        version: u32,
        nets: &[IpNet],
    ) -> Result<usize, TorrentsError> {
        let mut current = self.restart.lock().await;
        let mut wanted: Vec<IpNet> = nets.to_vec();
        wanted.sort();
        wanted.dedup();
        if version < current.0 || current.1 == wanted {
            current.0 = current.0.max(version);
            return Ok(0);
        }
        let list = (!wanted.is_empty())
            .then(|| write_blocklist(&self.cfg.state_dir, &wanted))
            .transpose()?;
        let old = self.session();
        // Metadata fetched by magnet is kept so the torrent can be added from bytes.
        let readd: Vec<([u8; 20], Added)> = {
            let mut added = self.added.lock().expect("torrents lock");
            for (ih, a) in added.iter_mut() {
                if a.torrent.is_none() {
                    a.torrent = old
                        .get(TorrentIdOrHash::Hash(Id20::new(*ih)))
                        .and_then(|h| h.with_metadata(|m| m.torrent_bytes.clone()).ok())
                        .or_else(|| self.metainfo.get(ih));
                }
            }
            added.iter().map(|(k, v)| (*k, v.clone())).collect()
        };
        old.stop().await;
        let session = open_session(&self.cfg, list.as_deref(), self.root_span.clone()).await?;
        self.session.store(Arc::clone(&session));
        *current = (version, wanted);
        let mut count = 0;
        for (ih, a) in readd {
            // A magnet still waiting for its metadata is left to whoever added it:
            // without peers it cannot resolve.
            if a.torrent.is_none() {
                continue;
            }
            match add_to(
                &session,
                &ih,
                a.torrent,
                &a.folder,
                vec![],
                a.only_files,
                self.is_paused(),
            )
            .await
            {
                Ok(_) => count += 1,
                Err(e) => tracing::warn!("adding again after the restart: {e}"),
            }
        }
        self.generation.send_modify(|g| *g += 1);
        Ok(count)
    }

    /// The address peers reach this session's BitTorrent listener on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session().listen_addr()
    }

    /// Fetches the metadata of `ih` from `peers` and lists its files.
    pub async fn list_files(
        &self,
        ih: &[u8; 20],
        peers: Vec<SocketAddr>,
    ) -> Result<Vec<FileEntry>, TorrentsError> {
        self.fetch_metainfo(ih, peers).await.map(|m| m.files)
    }

    /// The metainfo of `ih`: the kept copy, else whichever answers first of the wire
    /// peers (`ss_mget`, when the node set them up) and librqbit's ut_metadata from
    /// `peers`. Checked against `ih` in every case; kept only once the torrent is added
    /// (so what a peer announced and this node then refused leaves nothing behind).
    pub async fn fetch_metainfo(
        &self,
        ih: &[u8; 20],
        peers: Vec<SocketAddr>,
    ) -> Result<Metainfo, TorrentsError> {
        if let Some(bytes) = self.metainfo.get(ih) {
            let files = metainfo::check(ih, &bytes).map_err(|e| torrent_err(ih, e))?;
            return Ok(Metainfo { files, bytes });
        }
        // `None`: no wire source, or no wire peer had it.
        let from_wire = async {
            let requests = self.wire_metainfo.get()?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            requests.send((*ih, tx)).await.ok()?;
            let bytes = rx.await.ok()??;
            let files = metainfo::check(ih, &bytes).ok()?;
            Some(Metainfo { files, bytes })
        };
        tokio::pin!(from_wire);
        // Wire peers answer in a round trip and cost nobody a BitTorrent connection:
        // they get a head start, then both race.
        let mut wire_done = false;
        tokio::select! {
            m = &mut from_wire => match m {
                Some(m) => {
                    tracing::debug!("metainfo of {} from a wire peer", hex::encode(ih));
                    return Ok(m);
                }
                None => wire_done = true,
            },
            _ = tokio::time::sleep(WIRE_HEAD_START) => {}
        }
        let by_bittorrent = self.fetch_metainfo_by_bittorrent(ih, peers);
        tokio::pin!(by_bittorrent);
        let mut bt_failed = None;
        // The first to find it wins; it fails only once both failed.
        let found = loop {
            tokio::select! {
                m = &mut from_wire, if !wire_done => match m {
                    Some(m) => break m,
                    None => match bt_failed.take() {
                        Some(e) => return Err(e),
                        None => wire_done = true,
                    },
                },
                r = &mut by_bittorrent, if bt_failed.is_none() => match r {
                    Ok(m) => break m,
                    Err(e) if wire_done => return Err(e),
                    Err(e) => bt_failed = Some(e),
                },
            }
        };
        Ok(found)
    }

    /// librqbit's own metadata fetch (ut_metadata) from `peers`.
    async fn fetch_metainfo_by_bittorrent(
        &self,
        ih: &[u8; 20],
        peers: Vec<SocketAddr>,
    ) -> Result<Metainfo, TorrentsError> {
        let opts = AddTorrentOptions {
            list_only: true,
            initial_peers: Some(peers),
            ..Default::default()
        };
        let resp = self
            .session()
            .add_torrent(AddTorrent::from_url(magnet(ih)), Some(opts))
            .await
            .map_err(|e| torrent_err(ih, e))?;
        match resp {
            AddTorrentResponse::ListOnly(l) => {
                // The same check and file list as any metainfo (librqbit checked the
                // info hash too).
                let files = metainfo::check(ih, &l.torrent_bytes).map_err(|e| match e {
                    metainfo::MetainfoError::WrongInfoHash { want, got } => {
                        TorrentsError::WrongInfoHash { want, got }
                    }
                    other => torrent_err(ih, other),
                })?;
                Ok(Metainfo {
                    files,
                    bytes: l.torrent_bytes,
                })
            }
            _ => Err(torrent_err(ih, "expected a file list")),
        }
    }

    /// Downloads (or resumes, or seeds when complete) `ih` into `folder`, whose existing
    /// files are checked piece by piece and kept where they match.
    pub async fn add(
        &self,
        ih: &[u8; 20],
        torrent: Option<bytes::Bytes>,
        folder: &Path,
        peers: Vec<SocketAddr>,
    ) -> Result<TorrentHandle, TorrentsError> {
        self.add_files(ih, torrent, folder, peers, None).await
    }

    /// Like [`Torrents::add`], for the files of `only_files` alone (indexes in the
    /// torrent's order; `None`: every file). Only the pieces they touch are fetched,
    /// checked and seeded. Without `torrent`, the kept metainfo is used when there is
    /// one; whatever metainfo the torrent ends up with is kept for the next start.
    pub async fn add_files(
        &self,
        ih: &[u8; 20],
        torrent: Option<bytes::Bytes>,
        folder: &Path,
        peers: Vec<SocketAddr>,
        only_files: Option<Vec<usize>>,
    ) -> Result<TorrentHandle, TorrentsError> {
        let torrent = match torrent {
            Some(bytes) => {
                self.keep_metainfo(ih, &bytes);
                Some(bytes)
            }
            None => self.metainfo.get(ih),
        };
        let known = torrent.is_some();
        self.added.lock().expect("torrents lock").insert(
            *ih,
            Added {
                torrent: torrent.clone(),
                folder: folder.to_path_buf(),
                only_files: only_files.clone(),
            },
        );
        let handle = add_to(
            &self.session(),
            ih,
            torrent,
            folder,
            peers,
            only_files,
            self.is_paused(),
        )
        .await?;
        if !known && let Ok(bytes) = handle.with_metadata(|m| m.torrent_bytes.clone()) {
            self.keep_metainfo(ih, &bytes);
        }
        Ok(handle)
    }

    /// Stops transferring `ih` for good: forgets it and its kept metainfo (its files
    /// stay; the caller removes them).
    pub async fn remove(&self, ih: &[u8; 20]) -> Result<(), TorrentsError> {
        self.metainfo.remove(ih);
        self.forget(ih).await
    }

    /// Stops transferring `ih` (its files and kept metainfo stay: it may be added
    /// again).
    pub async fn forget(&self, ih: &[u8; 20]) -> Result<(), TorrentsError> {
        // Not during a restart: it would add the torrent again to the new session
        // (it took the list before) after this removed it from the old one.
        let _restart = self.restart.lock().await;
        self.added.lock().expect("torrents lock").remove(ih);
        let session = self.session();
        if session.get(TorrentIdOrHash::Hash(Id20::new(*ih))).is_none() {
            return Ok(());
        }
        session
            .delete(TorrentIdOrHash::Hash(Id20::new(*ih)), false)
            .await
            .map_err(|e| torrent_err(ih, e))
    }

    pub fn progress(handle: &TorrentHandle) -> Progress {
        let s = handle.stats();
        let (peers, speed, fetched) = s.live.as_ref().map_or((0, 0, 0), |l| {
            (
                l.snapshot.peer_stats.live,
                l.download_speed.as_bytes(),
                l.snapshot.fetched_bytes,
            )
        });
        Progress {
            have_bytes: s.progress_bytes,
            total_bytes: s.total_bytes,
            peers,
            down_bytes_per_sec: speed,
            fetched_bytes: fetched,
            uploaded_bytes: s.uploaded_bytes,
            finished: s.finished,
        }
    }

    /// Progress of `ih`, when the session has it.
    pub fn stats(&self, ih: &[u8; 20]) -> Option<Progress> {
        self.session()
            .get(TorrentIdOrHash::Hash(Id20::new(*ih)))
            .map(|h| Self::progress(&h))
    }

    /// The metainfo (`.torrent` bytes) of `ih` when it is in the session (seeding or
    /// fetching): what this node answers wire peers' `ss_mget` with.
    pub fn metainfo(&self, ih: &[u8; 20]) -> Option<bytes::Bytes> {
        self.session()
            .get(TorrentIdOrHash::Hash(Id20::new(*ih)))
            .and_then(|h| h.with_metadata(|m| m.torrent_bytes.clone()).ok())
    }

    /// Waits for `handle` to complete, reporting progress to `report` about every
    /// `every`.
    pub async fn wait(
        handle: &TorrentHandle,
        every: Duration,
        mut report: impl FnMut(Progress),
    ) -> Result<(), TorrentsError> {
        let ih = handle.info_hash().0;
        let done = handle.wait_until_completed();
        tokio::pin!(done);
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                r = &mut done => {
                    r.map_err(|e| torrent_err(&ih, e))?;
                    report(Self::progress(handle));
                    return Ok(());
                }
                _ = tick.tick() => report(Self::progress(handle)),
            }
        }
    }

    pub async fn stop(&self) {
        let _guard = self.restart.lock().await;
        self.session().stop().await;
    }
}

fn magnet(ih: &[u8; 20]) -> String {
    format!("magnet:?xt=urn:btih:{}", hex::encode(ih))
}

async fn add_to(
    session: &Arc<Session>,
    ih: &[u8; 20],
    torrent: Option<bytes::Bytes>,
    folder: &Path,
    peers: Vec<SocketAddr>,
    only_files: Option<Vec<usize>>,
    paused: bool,
) -> Result<TorrentHandle, TorrentsError> {
    if let Some(h) = session.get(TorrentIdOrHash::Hash(Id20::new(*ih))) {
        return Ok(h);
    }
    let opts = AddTorrentOptions {
        overwrite: true,
        output_folder: Some(folder.to_string_lossy().into_owned()),
        initial_peers: if peers.is_empty() { None } else { Some(peers) },
        only_files,
        paused,
        ..Default::default()
    };
    let add = match torrent {
        Some(bytes) => AddTorrent::from_bytes(bytes),
        None => AddTorrent::from_url(magnet(ih)),
    };
    let resp = session
        .add_torrent(add, Some(opts))
        .await
        .map_err(|e| torrent_err(ih, e))?;
    let handle = resp
        .into_handle()
        .ok_or_else(|| torrent_err(ih, "no handle"))?;
    if handle.info_hash().0 != *ih {
        return Err(TorrentsError::WrongInfoHash {
            want: hex::encode(ih),
            got: hex::encode(handle.info_hash().0),
        });
    }
    Ok(handle)
}

/// Writes `nets` as a P2P range list (`name:first-last`, the only form librqbit reads;
/// it knows no CIDR) and returns its `file://` URL.
fn write_blocklist(state_dir: &Path, nets: &[IpNet]) -> Result<String, TorrentsError> {
    let path = state_dir.join("blocklist.p2p");
    crate::fsutil::write_atomic(&path, p2p_ranges(nets).as_bytes(), 0o644).map_err(|source| {
        TorrentsError::Io {
            path: path.clone(),
            source,
        }
    })?;
    Ok(format!("file://{}", path.display()))
}

fn p2p_ranges(nets: &[IpNet]) -> String {
    let mut out = String::from("# swarmsite blacklist\n");
    for n in nets {
        out.push_str(&format!("swarmsite:{}-{}\n", n.network(), n.broadcast()));
    }
    out
}

async fn open_session(
    cfg: &TorrentsConfig,
    blocklist_url: Option<&str>,
    root_span: tracing::Span,
) -> Result<Arc<Session>, TorrentsError> {
    let dht = cfg.dht_bootstrap.clone().map(|b| DhtSessionConfig {
        bootstrap_addrs: if b.is_empty() { None } else { Some(b) },
        port: None,
        // One routing table per node, never librqbit's shared default file.
        persistence: None,
    });
    let opts = SessionOptions {
        dht,
        disable_trackers: true,
        disable_local_service_discovery: true,
        fastresume: false,
        persistence: None,
        listen: Some(ListenerOptions {
            mode: ListenerMode::TcpOnly,
            listen_addr: cfg.listen,
            // A loopback listener announces nothing unless told its port.
            announce_port: Some(cfg.listen.port()),
            ipv4_only: cfg.listen.is_ipv4(),
            ..Default::default()
        }),
        client_name_and_version: Some(concat!("swarmsite/", env!("CARGO_PKG_VERSION")).into()),
        ipv4_only: cfg.listen.is_ipv4(),
        ratelimits: librqbit::limits::LimitsConfig {
            download_bps: cfg.download_limit.and_then(std::num::NonZeroU32::new),
            upload_bps: cfg.upload_limit.and_then(std::num::NonZeroU32::new),
        },
        blocklist_url: blocklist_url.map(str::to_string),
        root_span: Some(root_span),
        ..Default::default()
    };
    Session::new_with_opts(cfg.state_dir.join("default"), opts)
        .await
        .map_err(|e| TorrentsError::Start(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_becomes_a_p2p_range() {
        let nets: Vec<IpNet> = ["127.0.0.8/29", "10.1.2.3/32", "2001:db8::/126"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            p2p_ranges(&nets),
            "# swarmsite blacklist\nswarmsite:127.0.0.8-127.0.0.15\n\
             swarmsite:10.1.2.3-10.1.2.3\nswarmsite:2001:db8::-2001:db8::3\n"
        );
    }
}
