//! A running node: the tokio driver around the sans-IO cores.
//!
//! ```text
//!  wire sockets ──► conn tasks (wire::Connection) ──┐
//!  control API / demo ── Command ──────────────────┤
//!                                                  ▼
//!                         core task: Gossip<TrustStore>, store, evidence
//!                                  │ Accepted site release
//!                                  ▼
//!                         sync task: librqbit fetch → promote → Served::switch
//!                                                           │
//!                                  HTTP servers ◄───────────┘
//! ```
//!
//! One task owns all protocol state (the core); sockets, downloads and servers talk to
//! it by message, so there are no locks around protocol logic.

mod core;
mod health;
mod recheck;
mod status;
mod sync;
mod wire_io;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::bundle::Bundle;
pub(crate) use crate::clock::unix_ms;
use crate::serve::Served;
use crate::torrents::{Torrents, TorrentsConfig};

pub use core::uploads::{EntryView, PackingView, UploadCommand, UploadList};
pub use status::{
    BlacklistEntryStatus, BlacklistStatus, DocumentsSummary, HttpPortStatus, NodeEvent,
    NoticeStatus, PeerStatus, Status, SyncStatus, UploadsStatus,
};
pub use status::{Health, TrayState};

/// Everything a node needs to know to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub bundle: Bundle,
    /// The site (bundle site id) this node serves over HTTP.
    pub site: u32,
    /// Wire protocol listen address.
    pub wire_listen: SocketAddr,
    /// BitTorrent (content) listen address.
    pub bt_listen: SocketAddr,
    /// HTTP addresses, tried in order; each one that binds serves the site.
    pub http: Vec<SocketAddr>,
    /// Connection caps and header deadline of each HTTP listener.
    pub http_limits: crate::http_server::HttpLimits,
    /// Wire peers to keep connections to (bootstrap hints, `--peer`).
    pub peers: Vec<SocketAddr>,
    /// BitTorrent peers handed to librqbit for every torrent, beside the wire peers'
    /// (`--bt-peer`: a plain client that holds the content).
    pub bt_peers: Vec<SocketAddr>,
    /// librqbit's DHT: `None` off, `Some(bootstrap)` on (empty = public routers).
    pub content_dht: Option<Vec<String>>,
    /// False: ignore pushed records; learn by pull only.
    pub accept_push: bool,
    pub pull_interval: Duration,
    /// How long after its first peer the node takes content whose key set fewer than
    /// three peer addresses confirmed current (`crate::gossip`, SPEC §3).
    pub key_confirm_wait: Duration,
    /// Outgoing wire connections kept at most.
    pub max_peers: usize,
    /// Incoming wire connections kept at most, in all and from one IP address: beyond
    /// them a new one is closed at once (a crowd of idle connections must not take the
    /// sockets honest peers need).
    pub max_inbound: usize,
    pub max_inbound_per_ip: usize,
    /// Bytes of published documents to keep copies of (0: records only); `None`: the
    /// value the volunteer set last (kept in the data folder), else 10 GiB.
    pub documents_quota: Option<u64>,
    /// Rendezvous DHT UDP listen address (`None`: no rendezvous DHT).
    pub rendezvous: Option<SocketAddr>,
    /// Where the rendezvous DHT bootstraps from (`host:port`; the public routers on the
    /// real network, nothing on loopback test networks).
    pub rendezvous_bootstrap: Vec<String>,
    /// BitTorrent bandwidth caps, bytes per second.
    pub download_limit: Option<u32>,
    pub upload_limit: Option<u32>,
    /// Turn evidence into signed blacklist versions (needs a blacklist-role key).
    pub auto_blacklist: Option<Arc<AutoBlacklist>>,
    /// Where librqbit's bad-piece reports come from (the program installs its layer);
    /// `None`: bad pieces are still refused, but not recorded as evidence.
    pub piece_audit: Option<crate::torrents::PieceAudit>,
    /// UPnP port mapping and mDNS announcement (off for loopback nodes).
    pub reach: crate::reach::ReachConfig,
    /// Software updates: the running version, how this copy was installed, auto-install.
    pub update: crate::update::UpdateConfig,
    /// Anonymous uploads: stem delays, limits, quota, and (intake node) the keys.
    pub uploads: crate::upload::UploadConfig,
}

/// Settings of `--auto-blacklist`.
#[derive(Debug)]
pub struct AutoBlacklist {
    /// A key of the blacklist role's current set.
    pub key: crate::keys::PrivateKey,
    /// Evidence entries from one address before it is listed: one stray failure is
    /// not enough.
    pub threshold: u32,
    /// How often new entries are batched into a new blacklist version.
    pub interval: Duration,
}

impl AutoBlacklist {
    /// `swarmsite node`'s defaults (the simulator runs with them too).
    pub const DEFAULT_THRESHOLD: u32 = crate::policy::AUTO_BLACKLIST_THRESHOLD;
    pub const DEFAULT_INTERVAL: Duration =
        Duration::from_millis(crate::policy::AUTO_BLACKLIST_INTERVAL_MS);
}

impl NodeConfig {
    /// A node that stays on one loopback address (`127.0.0.x`): wire, BitTorrent and HTTP
    /// on `ip` with ports picked by the kernel, no DHT of either kind, so nothing leaves
    /// the machine. For tests, the demo and benchmarks.
    pub fn loopback(data_dir: PathBuf, bundle: Bundle, ip: std::net::IpAddr) -> Self {
        let any = SocketAddr::new(ip, 0);
        let mut cfg = NodeConfig::new(data_dir, bundle);
        cfg.wire_listen = any;
        cfg.bt_listen = any;
        cfg.http = vec![any];
        cfg.content_dht = None;
        cfg.rendezvous = None;
        cfg.reach = crate::reach::ReachConfig::off();
        cfg
    }

    /// Defaults for a node of `bundle` keeping its state in `data_dir`.
    pub fn new(data_dir: PathBuf, bundle: Bundle) -> Self {
        let site = crate::policy::default_site(&bundle);
        NodeConfig {
            data_dir,
            bundle,
            site,
            wire_listen: SocketAddr::from(([0, 0, 0, 0], crate::policy::WIRE_PORT)),
            bt_listen: SocketAddr::from(([0, 0, 0, 0], crate::policy::BT_PORT)),
            http: vec![
                "0.0.0.0:80".parse().expect("addr"),
                "0.0.0.0:18880".parse().expect("addr"),
            ],
            http_limits: Default::default(),
            peers: Vec::new(),
            bt_peers: Vec::new(),
            content_dht: Some(Vec::new()),
            accept_push: crate::policy::ACCEPT_PUSH,
            pull_interval: Duration::from_millis(crate::policy::PULL_INTERVAL_MS),
            key_confirm_wait: Duration::from_millis(crate::gossip::CONFIRM_WAIT_MS),
            max_peers: crate::policy::MAX_PEERS,
            max_inbound: crate::policy::MAX_INBOUND,
            max_inbound_per_ip: crate::policy::MAX_INBOUND_PER_IP,
            documents_quota: None,
            rendezvous: Some(SocketAddr::from(([0, 0, 0, 0], crate::policy::WIRE_PORT))),
            rendezvous_bootstrap: crate::rendezvous::PUBLIC_ROUTERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            download_limit: None,
            upload_limit: None,
            auto_blacklist: None,
            piece_audit: None,
            reach: crate::reach::ReachConfig::on(),
            update: crate::update::UpdateConfig::default(),
            uploads: crate::upload::UploadConfig::default(),
        }
    }
}

/// What the outside asks of the core.
pub enum Command {
    /// A record from the local publisher, with the folder holding its content.
    Submit {
        record: Vec<u8>,
        payload: Option<PathBuf>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Dial a wire peer.
    Connect(SocketAddr),
    /// Pause or resume sharing (`core/pause.rs`); the reply comes once it took effect.
    SetPaused {
        paused: bool,
        reply: oneshot::Sender<()>,
    },
    /// (Internal) the rendezvous DHT named `addr` as holding `name`.
    Found {
        addr: SocketAddr,
        name: crate::name::SystemName,
    },
    /// (Internal) an auditor's re-check of a hint is done.
    Rechecked {
        hint: crate::wire::Hint,
        finding: recheck::Finding,
    },
    /// (Internal) a torrent-form blacklist arrived (or could not be read).
    BlacklistFetched {
        name: crate::name::SystemName,
        ih: [u8; 20],
        list: Result<crate::content::Blacklist, String>,
    },
    /// (Internal) librqbit now runs with blacklist `version`.
    BlocklistApplied { version: u32 },
    /// (Internal) the content of a local submission is being seeded: send the record.
    Seeded {
        record: Vec<u8>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Sets the documents quota (bytes; 0: records only) and says what it evicted.
    SetDocumentsQuota {
        bytes: u64,
        reply: oneshot::Sender<crate::documents::view::DocumentsView>,
    },
    /// Install the downloaded and checked software update.
    InstallUpdate {
        reply: oneshot::Sender<Result<crate::update::UpdateStatus, String>>,
    },
    /// (Internal) a software update's fetch or install reports.
    Update(core::update::UpdateReport),
    /// The local user's upload queue.
    Upload(UploadCommand),
}

/// A cheap handle on a running node, for the control API, the demo and the tray app.
#[derive(Clone)]
pub struct NodeHandle {
    status: Arc<RwLock<Status>>,
    events: broadcast::Sender<NodeEvent>,
    commands: mpsc::Sender<Command>,
    served: Arc<Served>,
    data_dir: PathBuf,
    trust: watch::Receiver<Arc<crate::trust::TrustStore>>,
    blacklist: watch::Receiver<Arc<crate::content::Blacklist>>,
    rendezvous: Option<Arc<crate::rendezvous::Rendezvous>>,
    /// Becomes true when an installed update wants the program restarted.
    restart: tokio::sync::watch::Receiver<bool>,
}

impl NodeHandle {
    pub fn status(&self) -> Status {
        let mut s = self.status.read().expect("status lock").clone();
        s.bytes_served = self.served.bytes_served();
        s.requests = self.served.requests();
        s.health = Health::of(&s);
        s
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Hands a locally published record (and its content folder) to the node.
    pub async fn submit(
        &self,
        record: Vec<u8>,
        payload: Option<PathBuf>,
    ) -> Result<String, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Submit {
                record,
                payload,
                reply,
            })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())?
    }

    /// Pauses (or resumes) sharing and returns once it took effect.
    pub async fn set_paused(&self, paused: bool) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::SetPaused { paused, reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())
    }

    pub async fn connect(&self, addr: SocketAddr) {
        let _ = self.commands.send(Command::Connect(addr)).await;
    }

    /// The archive of published documents as this node keeps it.
    pub fn documents(&self) -> Arc<crate::documents::view::DocumentsView> {
        self.served.documents()
    }

    /// Sets the documents quota; returns the archive after the evictions it caused.
    pub async fn set_documents_quota(
        &self,
        bytes: u64,
    ) -> Result<crate::documents::view::DocumentsView, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::SetDocumentsQuota { bytes, reply })
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())
    }

    /// Packs `inputs` (files and folders) into a new anonymous upload and queues it;
    /// `cleanup` (a folder of received files) is removed once packed. Returns at once:
    /// follow the packing by its token in [`NodeHandle::uploads`].
    pub async fn upload(
        &self,
        inputs: Vec<PathBuf>,
        cleanup: Option<PathBuf>,
    ) -> Result<PackingView, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Upload(UploadCommand::Queue {
                inputs,
                cleanup,
                reply,
            }))
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())?
    }

    /// The upload queue, with the local user's own marks.
    pub async fn uploads(&self) -> Result<UploadList, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Upload(UploadCommand::List { reply }))
            .await
            .map_err(|_| "the node is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the node is shutting down".to_string())
    }

    /// The node's trust store as of its last accepted record.
    pub fn trust(&self) -> Arc<crate::trust::TrustStore> {
        self.trust.borrow().clone()
    }

    /// The blacklist in force (empty before the first one).
    pub fn blacklist(&self) -> Arc<crate::content::Blacklist> {
        self.blacklist.borrow().clone()
    }

    /// Who the rendezvous DHT says holds `name`, looking for at most `wait` (nobody
    /// when the node runs without the DHT). Blacklisted addresses are left out.
    pub async fn find(&self, name: crate::name::SystemName, wait: Duration) -> Vec<SocketAddr> {
        let Some(r) = &self.rendezvous else {
            return Vec::new();
        };
        let mut found = r.find(*name.as_bytes(), None, wait).await;
        let listed = self.blacklist();
        found.retain(|a| !listed.contains(a.ip()));
        found
    }

    /// Adds an event to the node's stream (for services run beside the node, such as
    /// the DNS front).
    pub fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }
}

/// A running node. Dropping it does not stop it: call [`Node::shutdown`].
pub struct Node {
    handle: NodeHandle,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    torrents: Arc<Torrents>,
    rendezvous: Option<Arc<crate::rendezvous::Rendezvous>>,
    reach: crate::reach::Reach,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("none of the HTTP addresses could be bound: {0}")]
    NoHttp(String),
    #[error("{0}")]
    Store(#[from] std::io::Error),
    #[error("{0}")]
    Trust(#[from] crate::stored::StoredError),
    #[error("{0}")]
    Torrents(#[from] crate::torrents::TorrentsError),
    #[error("{0}")]
    Rendezvous(#[from] crate::rendezvous::RendezvousError),
}

impl Node {
    /// Binds every socket, restores the served release, and starts all tasks.
    pub async fn start(cfg: NodeConfig) -> Result<Node, NodeError> {
        let cancel = CancellationToken::new();
        let tag = cfg.bundle.network();
        let store = crate::store::NodeStore::open(&cfg.data_dir, tag)?;
        let trust = crate::stored::load_trust(&store.trust_path(), &cfg.bundle)?;

        let wire = tokio::net::TcpListener::bind(cfg.wire_listen)
            .await
            .map_err(|source| NodeError::Bind {
                what: "wire port",
                addr: cfg.wire_listen,
                source,
            })?;
        let wire_addr = wire.local_addr()?;
        let torrents = Arc::new(
            Torrents::start(TorrentsConfig {
                state_dir: cfg
                    .data_dir
                    .join("networks")
                    .join(tag.as_str())
                    .join("bittorrent"),
                listen: cfg.bt_listen,
                dht_bootstrap: cfg.content_dht.clone(),
                download_limit: cfg.download_limit,
                upload_limit: cfg.upload_limit,
                audit: cfg.piece_audit.clone(),
            })
            .await?,
        );
        let bt_addr = torrents.listen_addr();
        let rendezvous = match cfg.rendezvous {
            Some(addr) => Some(Arc::new(
                crate::rendezvous::Rendezvous::start(tag, addr, cfg.rendezvous_bootstrap.clone())
                    .await?,
            )),
            None => None,
        };

        let served = Served::new();
        let mut http_status = Vec::new();
        let mut http_bound = Vec::new();
        let mut tasks = Vec::new();
        for addr in &cfg.http {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let bound = listener.local_addr()?;
                    http_bound.push(bound);
                    http_status.push(HttpPortStatus {
                        addr: bound.to_string(),
                        bound: true,
                        error: None,
                    });
                    let app = crate::serve::router(Arc::clone(&served));
                    let (c, limits) = (cancel.clone(), cfg.http_limits);
                    tasks.push(tokio::spawn(crate::http_server::serve(
                        listener, app, limits, c,
                    )));
                }
                Err(e) => {
                    tracing::warn!("cannot serve HTTP on {addr}: {e}");
                    http_status.push(HttpPortStatus {
                        addr: addr.to_string(),
                        bound: false,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        if !http_status.iter().any(|h| h.bound) {
            let errors: Vec<String> = http_status
                .iter()
                .map(|h| format!("{}: {}", h.addr, h.error.clone().unwrap_or_default()))
                .collect();
            cancel.cancel();
            torrents.stop().await;
            if let Some(r) = rendezvous {
                r.stop().await;
            }
            return Err(NodeError::NoHttp(errors.join("; ")));
        }

        let site_name = cfg
            .bundle
            .site(cfg.site)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let listeners = crate::reach::Listeners {
            http: http_bound,
            bittorrent: bt_addr,
            wire: Some(wire_addr),
            dht: rendezvous
                .as_ref()
                .zip(cfg.rendezvous)
                .map(|(r, a)| SocketAddr::new(a.ip(), r.port())),
        };
        let reach_cfg = cfg.reach.clone();
        let status = Arc::new(RwLock::new(Status {
            network: tag.to_string(),
            site_id: cfg.site,
            site_name: site_name.clone(),
            wire_addr: wire_addr.to_string(),
            bt_addr: bt_addr.map(|a| a.to_string()),
            dht: rendezvous.as_ref().map(|r| (r.port(), hex::encode(r.id()))),
            http: http_status,
            ..Status::default()
        }));
        let (events, _) = broadcast::channel(256);
        let (commands, commands_rx) = mpsc::channel(64);
        let trust_view = watch::channel(Arc::new(trust.clone())).0;
        let blacklist_view = watch::channel(Arc::default()).0;
        let (restart, restart_rx) = tokio::sync::watch::channel(false);
        let handle = NodeHandle {
            status: Arc::clone(&status),
            events: events.clone(),
            commands,
            served: Arc::clone(&served),
            data_dir: cfg.data_dir.clone(),
            trust: trust_view.subscribe(),
            blacklist: blacklist_view.subscribe(),
            rendezvous: rendezvous.clone(),
            restart: restart_rx,
        };

        let on_reach = {
            let (status, events) = (Arc::clone(&status), events.clone());
            move |r: &crate::reach::ReachStatus| {
                status.write().expect("status lock").reach = r.clone();
                let _ = events.send(NodeEvent::Reach(Box::new(r.clone())));
            }
        };
        let core = core::Core::new(
            cfg,
            core::Shared {
                status,
                events,
                served,
                torrents: Arc::clone(&torrents),
                rendezvous: rendezvous.clone(),
                commands: handle.commands.clone(),
                cancel: cancel.clone(),
                trust_view,
                blacklist_view,
                restart,
            },
            store,
            trust,
            wire_addr,
            bt_addr,
        )?;
        tasks.push(tokio::spawn(core.run(wire, commands_rx)));
        let reach = crate::reach::Reach::start(&reach_cfg, listeners, &site_name, on_reach);
        Ok(Node {
            handle,
            cancel,
            tasks,
            torrents,
            rendezvous,
            reach,
        })
    }

    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Withdraws the port mappings and the mDNS announcement, stops every task, closes
    /// every socket and stops the BitTorrent session.
    pub async fn shutdown(self) {
        self.reach.stop().await;
        self.cancel.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.torrents.stop().await;
        if let Some(r) = self.rendezvous {
            r.stop().await;
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: how every long-running program of the
/// project (`node`, `dns`, `intake`, `demo`, the tray app) learns it should stop
/// cleanly (UPnP leases removed, mDNS goodbye, trust store saved, folders cleaned).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("no SIGTERM handler: {e}");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Raises this process's soft limit on open files to its hard limit: a node holds a
/// socket per wire, BitTorrent and HTTP peer and a file per torrent, and the common
/// default soft limit of 1,024 runs out under a crowd of peers ("Too many open
/// files"), which then starves every other socket. Called once by each program's
/// `main`; returns the limit now in force.
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit: {e}");
            None
        }
    }
}
