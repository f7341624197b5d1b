//! Content transfer through an embedded librqbit session (SPEC §4, "Content").
//!
//! Releases, documents and uploads are ordinary torrents. Peers come from librqbit's
//! own DHT (random node id, public routers in the real network, off on loopback test
//! networks) and from the wire peers that hold the record, handed over when a torrent is
//! added (librqbit takes peers only then).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use librqbit::api::TorrentIdOrHash;
use librqbit::dht::Id20;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, DhtSessionConfig, ListenerMode,
    ListenerOptions, ManagedTorrent, Session, SessionOptions,
};

/// A torrent in the session.
pub type TorrentHandle = Arc<ManagedTorrent>;

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
    pub finished: bool,
}

/// A file of a torrent: path relative to the output folder, and length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub len: u64,
}

pub struct Torrents {
    session: Arc<Session>,
}

impl Torrents {
    pub async fn start(cfg: TorrentsConfig) -> Result<Self, TorrentsError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| TorrentsError::Io {
            path: cfg.state_dir.clone(),
            source,
        })?;
        let dht = cfg.dht_bootstrap.map(|b| DhtSessionConfig {
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
            ..Default::default()
        };
        let session = Session::new_with_opts(cfg.state_dir.join("default"), opts)
            .await
            .map_err(|e| TorrentsError::Start(format!("{e:#}")))?;
        Ok(Torrents { session })
    }

    /// The address peers reach this session's BitTorrent listener on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    fn magnet(ih: &[u8; 20]) -> String {
        format!("magnet:?xt=urn:btih:{}", hex::encode(ih))
    }

    /// Fetches the metadata of `ih` from `peers` and lists its files.
    pub async fn list_files(
        &self,
        ih: &[u8; 20],
        peers: Vec<SocketAddr>,
    ) -> Result<Vec<FileEntry>, TorrentsError> {
        let opts = AddTorrentOptions {
            list_only: true,
            initial_peers: Some(peers),
            ..Default::default()
        };
        let resp = self
            .session
            .add_torrent(AddTorrent::from_url(Self::magnet(ih)), Some(opts))
            .await
            .map_err(|e| torrent_err(ih, e))?;
        match resp {
            AddTorrentResponse::ListOnly(l) => {
                if l.info_hash.0 != *ih {
                    return Err(TorrentsError::WrongInfoHash {
                        want: hex::encode(ih),
                        got: hex::encode(l.info_hash.0),
                    });
                }
                Ok(l.info
                    .iter_file_details()
                    .map(|d| FileEntry {
                        path: d.filename.to_pathbuf(),
                        len: d.len,
                    })
                    .collect())
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
        if let Some(h) = self.session.get(TorrentIdOrHash::Hash(Id20::new(*ih))) {
            return Ok(h);
        }
        let opts = AddTorrentOptions {
            overwrite: true,
            output_folder: Some(folder.to_string_lossy().into_owned()),
            initial_peers: if peers.is_empty() { None } else { Some(peers) },
            ..Default::default()
        };
        let add = match torrent {
            Some(bytes) => AddTorrent::from_bytes(bytes),
            None => AddTorrent::from_url(Self::magnet(ih)),
        };
        let resp = self
            .session
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

    /// Stops transferring `ih` (its files stay).
    pub async fn forget(&self, ih: &[u8; 20]) -> Result<(), TorrentsError> {
        if self
            .session
            .get(TorrentIdOrHash::Hash(Id20::new(*ih)))
            .is_none()
        {
            return Ok(());
        }
        self.session
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
            finished: s.finished,
        }
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
        self.session.stop().await;
    }
}
