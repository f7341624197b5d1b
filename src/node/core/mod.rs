//! The core task: owns the gossip state machine, the store and the evidence log, and
//! turns their actions into socket writes, downloads and status. The blacklist in force
//! and the auditing of hints are `impl Core` blocks of their own files.

mod audit;
mod blacklist;
mod dht;
mod documents;
mod dropped;
mod metainfo;
mod notices;
mod pause;
pub(super) mod update;
pub(crate) mod uploads;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::recheck::{self, Finding};
use super::status::{NodeEvent, PeerStatus, RecordStatus, Status, SyncStatus};
use super::sync::{self, SyncReport, Wanted};
use super::wire_io::{self, ConnReport};
use super::{Command, NodeConfig, NodeError, unix_ms};
use crate::blacklist::Enforcement;
use crate::content::Notice;
use crate::evidence::{Evidence, EvidenceBudget, EvidenceLog};
use crate::gossip::{Action, Gossip, GossipConfig, PeerKey};
use crate::hints::{HintAction, Hints, HintsConfig};
use crate::name::{ObjectClass, SystemName, kind};
use crate::policy::Admit;
use crate::record::{Payload, Record};
use crate::rendezvous::Rendezvous;
use crate::serve::{Served, SiteRelease};
use crate::store::NodeStore;
use crate::torrents::Torrents;
use crate::trust::TrustStore;
use crate::wire::{CloseReason, Event, Hint, Message, WireConfig};

/// Refused items (forged records, bad metainfo) one connection may send before it is
/// closed: honest peers send none, but may relay a stale one now and then.
const MAX_REFUSED_PER_CONN: u32 = 8;
/// How long the address of a connection closed for refused items is kept out.
const SLOW_FOR: Duration = Duration::from_secs(600);
/// Evidence lines written per address per window (the rest are counted).
const EVIDENCE_LINES_PER_ADDRESS: u32 = 20;
const EVIDENCE_WINDOW: Duration = Duration::from_secs(600);

/// Seeds a locally published release from its published folder and waits until
/// librqbit has checked it.
async fn seed_local(
    torrents: &Torrents,
    ih: &[u8; 20],
    dir: &std::path::Path,
) -> Result<(), String> {
    let torrent = std::fs::read(dir.join(crate::publisher::TORRENT_FILE))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let payload = dir.join(crate::publisher::PAYLOAD_DIR);
    let handle = torrents
        .add(ih, Some(torrent.into()), &payload, vec![])
        .await
        .map_err(|e| e.to_string())?;
    let wait = Torrents::wait(&handle, Duration::from_millis(200), |_| {});
    match tokio::time::timeout(Duration::from_secs(600), wait).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("checking the published content took too long".into()),
    }
}

async fn recv_or_pending<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the core shares with the node handle.
pub struct Shared {
    pub status: Arc<RwLock<Status>>,
    pub events: broadcast::Sender<NodeEvent>,
    pub served: Arc<Served>,
    pub torrents: Arc<Torrents>,
    pub rendezvous: Option<Arc<Rendezvous>>,
    /// For tasks of the core that report back (DHT lookups finding peers).
    pub commands: mpsc::Sender<Command>,
    pub cancel: CancellationToken,
    /// The trust store and the blacklist in force, for readers outside the core.
    pub trust_view: watch::Sender<Arc<TrustStore>>,
    pub blacklist_view: watch::Sender<Arc<crate::content::Blacklist>>,
    /// Set when an installed software update wants the program restarted.
    pub restart: watch::Sender<bool>,
}

struct Conn {
    tx: mpsc::Sender<Message>,
    remote: SocketAddr,
    /// The address we dialled (outgoing) or the peer's announced wire address.
    wire_addr: Option<SocketAddr>,
    outgoing: bool,
    ready: bool,
    peer_id: [u8; 20],
    bt_addr: Option<SocketAddr>,
    client: Option<String>,
    /// Set when the rendezvous DHT named this address as holding `name`: if it then
    /// turns out not to be a swarmsite node at all, the announcement was a lie.
    found_under: Option<SystemName>,
    dht_id: Option<[u8; 20]>,
    /// The peer takes uploads (`ss_blob`, `ss_up`).
    uploads: bool,
    /// The peer asks for and answers metainfo (`ss_mget`, `ss_meta`).
    metainfo: bool,
    /// Hostile items it sent (see `count_refused_item`).
    refused: u32,
}

impl Conn {
    fn addrs(&self) -> PeerAddrs {
        PeerAddrs {
            remote: self.remote,
            wire: self.wire_addr,
            bt: self.bt_addr,
            node_id: self.dht_id,
        }
    }
}

struct SyncTask {
    version: u32,
    cancel: CancellationToken,
}

pub struct Core {
    cfg: NodeConfig,
    shared: Shared,
    store: NodeStore,
    gossip: Gossip<TrustStore>,
    /// The evidence log's writer thread (never blocks the core).
    evidence: std::sync::mpsc::SyncSender<Evidence>,
    evidence_budget: EvidenceBudget,
    /// Addresses kept out after too many refused items, until when (ms).
    slowed: HashMap<IpAddr, u64>,
    /// Rendezvous DHT entries found false (address, and the name unless nothing
    /// answered there at all), until when (ms): `dht.rs`.
    dht_dropped: HashMap<(SocketAddr, Option<SystemName>), u64>,
    wire: WireConfig,
    local_ip: IpAddr,
    conns: HashMap<PeerKey, Conn>,
    next_key: PeerKey,
    reports_tx: mpsc::Sender<ConnReport>,
    reports_rx: mpsc::Receiver<ConnReport>,
    sync_tx: mpsc::Sender<SyncReport>,
    sync_rx: mpsc::Receiver<SyncReport>,
    bt_peers: watch::Sender<Vec<SocketAddr>>,
    sync: Option<SyncTask>,
    /// The served release: version, info hash.
    serving: Option<(u32, [u8; 20])>,
    /// Re-adding the served release at start (stopped when another one is switched in).
    restoring_served: Option<CancellationToken>,
    /// Content folders of records this node published itself.
    local_payloads: HashMap<[u8; 20], PathBuf>,
    /// The blacklist in force (SPEC §8): listed addresses get no connection, no dial,
    /// and are never handed to librqbit. With auto-blacklisting, also the evidence and
    /// accusations that make the next version (sans-IO: `crate::blacklist`).
    blacklist: Enforcement,
    /// Addresses of recently closed connections, so evidence about what they sent can
    /// still name them (bounded).
    closed: std::collections::VecDeque<(PeerKey, PeerAddrs)>,
    /// Evidence hints: passing them on, and (auditors) hearing them.
    hints: Hints,
    /// A torrent-form blacklist being fetched: its version.
    blacklist_fetch: Option<(u32, CancellationToken)>,
    /// The torrent of the blacklist in force, when it came as one.
    blacklist_ih: Option<[u8; 20]>,
    /// Published documents: what this node keeps of the archive.
    archive: documents::Archive,
    /// Software updates (`core/update.rs`).
    update: update::Updater,
    /// Anonymous uploads: stem, transfers, fluff, queue, receipts, intake.
    uploads: uploads::Uploads,
    /// Metainfo asked of wire peers, and answered to them.
    wire_metainfo: metainfo::WireMetainfo,
}

/// Where a peer is: the address of the connection, and the ports it announced.
#[derive(Clone, Copy, Debug)]
struct PeerAddrs {
    remote: SocketAddr,
    wire: Option<SocketAddr>,
    bt: Option<SocketAddr>,
    /// Its rendezvous DHT node id, when it told us.
    node_id: Option<[u8; 20]>,
}

impl Core {
    pub fn new(
        cfg: NodeConfig,
        shared: Shared,
        store: NodeStore,
        trust: TrustStore,
        wire_addr: SocketAddr,
        bt_addr: Option<SocketAddr>,
    ) -> Result<Self, NodeError> {
        let tag = cfg.bundle.network();
        let loaded = store.records()?;
        for path in &loaded.unreadable {
            tracing::warn!("ignoring unreadable record file {}", path.display());
        }
        let mut gcfg = GossipConfig::new(tag, &[cfg.site]);
        gcfg.accept_push = cfg.accept_push;
        gcfg.pull_interval_ms = cfg.pull_interval.as_millis() as u64;
        gcfg.confirm_wait_ms = cfg.key_confirm_wait.as_millis() as u64;
        let seed = rand::random();
        let mut trust = trust;
        for (record, _) in &loaded.records {
            trust.note_held(record);
        }
        let gossip = Gossip::new(trust, gcfg, loaded.records, seed, unix_ms());
        let rendezvous = *SystemName::rendezvous(tag).as_bytes();
        let mut peer_id = [0u8; 20];
        peer_id[..8].copy_from_slice(b"-SW0100-");
        peer_id[8..].copy_from_slice(&rand::random::<[u8; 12]>());
        let mut wire = WireConfig::new(rendezvous, peer_id, Some(wire_addr.port()));
        wire.bt_port = bt_addr.map(|a| a.port());
        wire.dht = shared.rendezvous.as_ref().map(|r| (r.port(), r.id()));
        let (reports_tx, reports_rx) = mpsc::channel(1024);
        let (sync_tx, sync_rx) = mpsc::channel(64);
        let evidence = EvidenceLog::new(
            cfg.data_dir.join("evidence.jsonl"),
            crate::evidence::DEFAULT_MAX_BYTES,
        )
        .spawn_writer();
        let auto_threshold = cfg.auto_blacklist.as_ref().map(|a| a.threshold);
        let (blacklist, hints) =
            crate::policy::evidence_machines(auto_threshold, HintsConfig::default());
        let archive = documents::Archive::new(store.root(), cfg.documents_quota);
        let update = update::Updater::new(cfg.update.clone(), &store);
        let uploads = uploads::Uploads::new(&cfg);
        let (wire_metainfo, metainfo_requests) = metainfo::WireMetainfo::new();
        let bt_peers = watch::channel(cfg.bt_peers.clone()).0;
        let local_payloads = store.published();
        shared.torrents.set_wire_metainfo(metainfo_requests);
        Ok(Core {
            local_ip: cfg.wire_listen.ip(),
            cfg,
            shared,
            store,
            gossip,
            evidence,
            evidence_budget: EvidenceBudget::new(
                EVIDENCE_LINES_PER_ADDRESS,
                EVIDENCE_WINDOW.as_millis() as u64,
            ),
            slowed: HashMap::new(),
            dht_dropped: HashMap::new(),
            wire,
            conns: HashMap::new(),
            next_key: 1,
            reports_tx,
            reports_rx,
            sync_tx,
            sync_rx,
            bt_peers,
            sync: None,
            serving: None,
            restoring_served: None,
            local_payloads,
            blacklist,
            closed: std::collections::VecDeque::new(),
            hints,
            blacklist_fetch: None,
            blacklist_ih: None,
            archive,
            update,
            uploads,
            wire_metainfo,
        })
    }

    pub async fn run(mut self, listener: TcpListener, mut commands: mpsc::Receiver<Command>) {
        self.restore().await;
        self.restore_notices();
        self.restore_documents().await;
        self.restore_uploads().await;
        if let Some((record, _)) = self
            .gossip
            .held((kind::AUTHORIZED_FILE, crate::name::file_id::BLACKLIST))
        {
            let record = record.clone();
            self.apply_blacklist(&record);
        }
        self.restore_update();
        self.refresh_records();
        let mut dial_tick = tokio::time::interval(Duration::from_secs(5));
        let auto_every = self
            .cfg
            .auto_blacklist
            .as_ref()
            .map_or(Duration::from_secs(3600), |a| a.interval);
        let mut auto_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + auto_every, auto_every);
        let mut dht_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_millis(crate::policy::RENDEZVOUS_FIRST_MS),
            Duration::from_millis(crate::policy::rendezvous_period_ms(
                self.cfg.pull_interval.as_millis() as u64,
            )),
        );
        let mut docs_tick = tokio::time::interval(Duration::from_millis(250));
        let mut uploads_tick = tokio::time::interval(self.uploads.tick_interval());
        let cancel = self.shared.cancel.clone();
        let mut bad_pieces = self.shared.torrents.take_bad_pieces();
        loop {
            self.drain_actions();
            self.drain_upload_actions();
            self.drain_metainfo_actions();
            let next = [
                self.uploads_next_timeout(),
                self.wire_metainfo.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .fold(self.gossip.next_timeout(), u64::min);
            let wait = Duration::from_millis(next.saturating_sub(unix_ms()).max(10));
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, remote)) = accepted {
                        match self.admit(remote.ip()) {
                            Admit::Yes => self.spawn_conn(stream, remote),
                            Admit::Listed => {
                                drop(stream);
                                self.count_refused(remote);
                            }
                            Admit::NoRoom => {
                                tracing::debug!("{remote}: too many incoming connections; closed");
                                drop(stream);
                            }
                        }
                    }
                }
                Some(report) = self.reports_rx.recv() => self.on_report(report),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Some(report) = self.sync_rx.recv() => self.on_sync(report).await,
                Some(bad) = recv_or_pending(&mut bad_pieces) => self.on_bad_piece(bad),
                Some(report) = self.archive.rx.recv() => self.on_doc_report(report),
                _ = docs_tick.tick() => self.documents_tick(),
                Some(report) = self.uploads.rx.recv() => self.on_upload_report(report),
                Some(request) = self.wire_metainfo.rx.recv() => self.on_metainfo_request(request),
                _ = tokio::time::sleep(wait) => {
                    self.gossip.handle_timeout(unix_ms());
                    self.auto_install_when_confirmed();
                    self.uploads_timeout(unix_ms());
                    self.metainfo_timeout(unix_ms());
                }
                _ = uploads_tick.tick() => self.uploads_tick(),
                _ = dial_tick.tick() => self.maintain_connections(),
                _ = dht_tick.tick() => self.rendezvous_round(),
                _ = auto_tick.tick() => {
                    self.start_rechecks();
                    self.auto_blacklist();
                }
                _ = cancel.cancelled() => break,
            }
        }
        if let Some(t) = self.sync.take() {
            t.cancel.cancel();
        }
        if let Err(e) = crate::stored::save_trust(self.gossip.acceptor(), &self.store.trust_path())
        {
            tracing::warn!("saving the trust store: {e}");
        }
    }

    /// Serves and seeds the release on disk, and resumes a newer one if known.
    async fn restore(&mut self) {
        match self.store.current(self.cfg.site) {
            Ok(Some(rel)) => {
                let record = Record::decode(&rel.record);
                if let Ok(record) = record
                    && let Payload::Torrent { ih, .. } = record.payload
                {
                    let (dir, v, t, bytes) = (
                        rel.dir.clone(),
                        rel.version,
                        record.time,
                        rel.record.clone(),
                    );
                    match tokio::task::spawn_blocking(move || {
                        SiteRelease::index(&dir, v, t, &bytes)
                    })
                    .await
                    {
                        Ok(Ok(release)) => {
                            self.shared.served.switch(release);
                            self.serving = Some((rel.version, ih));
                            self.update_status(|s| {
                                s.served_version = Some(rel.version);
                                s.served_time = Some(record.time);
                            });
                            // With the kept metainfo this is a piece check and seeding
                            // at once; without (a data folder from before it was kept),
                            // the metainfo comes from peers as for any fetch.
                            let torrents = Arc::clone(&self.shared.torrents);
                            let (dir, peers) = (rel.dir.clone(), self.bt_peers.subscribe());
                            let cancel = CancellationToken::new();
                            self.restoring_served = Some(cancel.clone());
                            tokio::spawn(async move {
                                let seed = sync::fetch_torrent(
                                    &torrents,
                                    &ih,
                                    None,
                                    &dir,
                                    None,
                                    peers,
                                    |_, _| {},
                                );
                                tokio::select! {
                                    _ = seed => {}
                                    _ = cancel.cancelled() => {}
                                }
                            });
                        }
                        Ok(Err(e)) => tracing::warn!("cannot index the served release: {e}"),
                        Err(e) => tracing::warn!("indexing task failed: {e}"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the served release: {e}"),
        }
        let slot = (kind::SITE_RELEASE, self.cfg.site);
        if let Some((record, bytes)) = self.gossip.held(slot).map(|(r, b)| (r.clone(), b.to_vec()))
        {
            self.want_release(&record, &bytes);
        }
    }

    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared.status.write().expect("status lock"));
    }

    fn emit(&self, ev: NodeEvent) {
        let _ = self.shared.events.send(ev);
    }

    fn refresh_records(&self) {
        let records: Vec<RecordStatus> = self
            .gossip
            .held_names()
            .into_iter()
            .map(|n| RecordStatus {
                name: n.to_hex(),
                class: n.class().to_string(),
                version: n.version(),
            })
            .collect();
        self.update_status(|s| s.records = records);
    }

    fn refresh_peers(&self) {
        let peers: Vec<PeerStatus> = self
            .conns
            .values()
            .filter(|c| c.ready)
            .map(|c| PeerStatus {
                addr: c.remote.to_string(),
                client: c.client.clone(),
                outgoing: c.outgoing,
            })
            .collect();
        let bt: Vec<SocketAddr> = self
            .conns
            .values()
            .filter(|c| c.ready)
            .filter_map(|c| c.bt_addr)
            .chain(self.cfg.bt_peers.iter().copied())
            .filter(|a| !self.blacklist.contains(a.ip()))
            .collect();
        self.bt_peers.send_replace(bt);
        self.update_status(|s| s.peers = peers);
    }

    /// Registers a connection (incoming, or outgoing to `dialled`) and returns its key
    /// and the receiver of the messages the core will send it.
    fn register_conn(
        &mut self,
        remote: SocketAddr,
        dialled: Option<SocketAddr>,
    ) -> (PeerKey, mpsc::Receiver<Message>) {
        let key = self.next_key;
        self.next_key += 1;
        let (tx, rx) = mpsc::channel(256);
        let conn = Conn {
            tx,
            remote,
            wire_addr: dialled,
            outgoing: dialled.is_some(),
            ready: false,
            peer_id: [0; 20],
            bt_addr: None,
            client: None,
            found_under: None,
            dht_id: None,
            uploads: false,
            metainfo: false,
            refused: 0,
        };
        self.conns.insert(key, conn);
        (key, rx)
    }

    /// Whether an incoming connection from `ip` is taken (`policy::admit_inbound`, with
    /// `NodeConfig::max_inbound` and `max_inbound_per_ip`).
    fn admit(&self, ip: IpAddr) -> Admit {
        let (mut all, mut from_ip) = (0, 0);
        for c in self.conns.values().filter(|c| !c.outgoing) {
            all += 1;
            from_ip += usize::from(c.remote.ip() == ip);
        }
        let caps = (self.cfg.max_inbound, self.cfg.max_inbound_per_ip);
        crate::policy::admit_inbound(
            ip,
            &self.blacklist,
            (all, from_ip),
            caps,
            self.is_slowed(ip),
        )
    }

    fn spawn_conn(&mut self, stream: tokio::net::TcpStream, remote: SocketAddr) {
        let (key, rx) = self.register_conn(remote, None);
        let cfg = self.wire.clone();
        let reports = self.reports_tx.clone();
        let cancel = self.shared.cancel.clone();
        tokio::spawn(wire_io::run(stream, key, false, cfg, reports, rx, cancel));
    }

    fn maintain_connections(&mut self) {
        let outgoing = self.conns.values().filter(|c| c.outgoing).count();
        if outgoing >= self.cfg.max_peers {
            return;
        }
        let own = [self.cfg.wire_listen, self.wire_local()];
        let targets: Vec<SocketAddr> = self
            .cfg
            .peers
            .iter()
            .copied()
            .filter(|a| !own.contains(a) && !self.blacklist.contains(a.ip()))
            .filter(|a| !self.conns.values().any(|c| c.wire_addr == Some(*a)))
            .take(self.cfg.max_peers - outgoing)
            .collect();
        for addr in targets {
            self.dial(addr);
        }
    }

    fn wire_local(&self) -> SocketAddr {
        SocketAddr::new(self.local_ip, self.wire.listen_port.unwrap_or(0))
    }

    fn dial(&mut self, addr: SocketAddr) -> PeerKey {
        // Registered now so the next tick does not dial twice.
        let (key, rx) = self.register_conn(addr, Some(addr));
        let cfg = self.wire.clone();
        let reports = self.reports_tx.clone();
        let cancel = self.shared.cancel.clone();
        let local = self.local_ip;
        tokio::spawn(async move {
            match wire_io::dial(addr, local).await {
                Ok(stream) => wire_io::run(stream, key, true, cfg, reports, rx, cancel).await,
                Err(e) => {
                    tracing::debug!("dialling {addr}: {e}");
                    let _ = reports
                        .send(ConnReport {
                            in_flight: None,
                            key,
                            event: Event::Closed(CloseReason::Timeout),
                        })
                        .await;
                }
            }
        });
        key
    }

    fn on_report(&mut self, ConnReport { key, event, .. }: ConnReport) {
        match event {
            Event::Ready {
                peer_id,
                listen_port,
                bt_port,
                dht,
                client,
                uploads,
                metainfo,
            } => {
                if let (Some(r), Some((port, id)), Some(conn)) =
                    (&self.shared.rendezvous, dht, self.conns.get(&key))
                {
                    let (r, addr) = (Arc::clone(r), SocketAddr::new(conn.remote.ip(), port));
                    tokio::spawn(async move { r.add_contact(id, addr).await });
                }
                let duplicate = self
                    .conns
                    .iter()
                    .any(|(k, c)| *k != key && c.ready && c.peer_id == peer_id);
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                if duplicate || peer_id == self.wire.peer_id {
                    // Already connected to that node (or to ourselves): keep one link.
                    let _ = conn.tx.try_send(Message::Have { names: vec![] });
                    self.conns.remove(&key);
                    return;
                }
                conn.ready = true;
                conn.uploads = uploads;
                conn.metainfo = metainfo;
                conn.peer_id = peer_id;
                conn.dht_id = dht.map(|(_, id)| id);
                conn.client = client;
                conn.bt_addr = bt_port.map(|p| SocketAddr::new(conn.remote.ip(), p));
                if conn.wire_addr.is_none() {
                    conn.wire_addr = listen_port.map(|p| SocketAddr::new(conn.remote.ip(), p));
                }
                let addr = conn.remote.to_string();
                let source = conn.remote.ip();
                self.gossip.peer_up(key, source, unix_ms());
                self.send_documents_to(key);
                self.uploads_peer_up(key);
                self.refresh_peers();
                self.emit(NodeEvent::PeerUp { addr });
            }
            Event::Message(Message::Blob(blob)) => self.on_blob(key, blob),
            Event::Message(Message::Up { ih }) => self.on_up(key, ih),
            Event::Message(Message::Hint(hint)) => {
                if let Some(source) = self.conns.get(&key).map(|c| c.remote.ip())
                    && crate::policy::take_hint(&hint, self.local_ip, &self.blacklist)
                {
                    self.hints.receive(key, source, hint, unix_ms());
                }
            }
            Event::Message(Message::Docs(claims)) => self.on_peer_documents(key, claims),
            Event::Message(Message::MetaGet { ih, part }) => self.on_meta_get(key, ih, part),
            Event::Message(Message::Meta(part)) => self.on_meta_part(key, part),
            Event::Message(msg) => {
                if let Message::Have { names } = &msg {
                    self.check_announcement(key, names);
                }
                self.gossip.handle_message(key, msg, unix_ms())
            }
            Event::Closed(reason) => {
                if let Some(conn) = self.conns.remove(&key) {
                    if let (false, Some(name)) = (conn.ready, conn.found_under)
                        && matches!(reason, CloseReason::NotSwarmsite | CloseReason::Garbage)
                    {
                        // It answered, but not as a swarmsite node: the DHT entry was a lie
                        // (by whoever wrote it). (An address that does not answer may just
                        // have gone offline.)
                        let addr = conn.wire_addr.unwrap_or(conn.remote);
                        self.drop_dht_entry(addr, name, true, &reason.to_string());
                    } else if reason.is_evidence() {
                        self.record_evidence(
                            Some(conn.remote),
                            None,
                            reason.code(),
                            reason.to_string(),
                        );
                    }
                    self.conn_gone(key, conn);
                }
            }
        }
    }

    /// Everything a connection leaves behind once it is out of `conns`.
    fn conn_gone(&mut self, key: PeerKey, conn: Conn) {
        self.remember_closed(key, conn.addrs());
        self.peer_documents_gone(key);
        self.metainfo_peer_gone(key);
        if conn.ready {
            self.gossip.peer_down(key, unix_ms());
            self.uploads_peer_down(key);
            self.refresh_peers();
            self.emit(NodeEvent::PeerDown {
                addr: conn.remote.to_string(),
            });
        }
    }

    /// Closes a connection from this side (dropping its sender ends its task).
    fn close_conn(&mut self, key: PeerKey) {
        if let Some(conn) = self.conns.remove(&key) {
            let closing = conn.tx.clone();
            self.conn_gone(key, conn);
            drop(closing);
        }
    }

    /// A connection sent something refused as hostile: after
    /// [`MAX_REFUSED_PER_CONN`] it is closed and its address kept out for
    /// [`SLOW_FOR`] (incoming connections refused, not dialled).
    fn count_refused_item(&mut self, key: PeerKey) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.refused += 1;
        if conn.refused < MAX_REFUSED_PER_CONN {
            return;
        }
        let ip = conn.remote.ip();
        tracing::warn!(
            "{}: {} refused items; closed, kept out for a while",
            conn.remote,
            conn.refused
        );
        self.close_conn(key);
        let now = unix_ms();
        if self.slowed.len() >= 4096 {
            self.slowed.retain(|_, until| *until > now);
            if self.slowed.len() >= 4096 {
                self.slowed.clear();
            }
        }
        self.slowed.insert(ip, now + SLOW_FOR.as_millis() as u64);
    }

    fn is_slowed(&self, ip: IpAddr) -> bool {
        self.slowed.get(&ip).is_some_and(|until| *until > unix_ms())
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                record,
                payload,
                reply,
            } => {
                let decoded = Record::decode(&record);
                let ih = decoded.as_ref().ok().and_then(crate::documents::content_ih);
                match (payload, decoded, ih) {
                    (Some(dir), Ok(r), Some(ih)) => {
                        // Check first, then make sure the content is seeded before anyone
                        // hears of the record, so the first peers to ask find it.
                        if let Err(e) = self.gossip.acceptor().check(&r, unix_ms() / 1000) {
                            let _ = reply.send(Err(e.to_string()));
                            return;
                        }
                        self.local_payloads.insert(ih, dir.clone());
                        if let Err(e) = self.store.save_published(&self.local_payloads) {
                            tracing::warn!("remembering the published folder: {e}");
                        }
                        let torrents = Arc::clone(&self.shared.torrents);
                        let commands = self.shared.commands.clone();
                        tokio::spawn(async move {
                            if let Err(e) = seed_local(&torrents, &ih, &dir).await {
                                let _ = reply.send(Err(e));
                                return;
                            }
                            let _ = commands.send(Command::Seeded { record, reply }).await;
                        });
                    }
                    _ => self.submit(record, reply),
                }
            }
            Command::Seeded { record, reply } => self.submit(record, reply),
            Command::SetDocumentsQuota { bytes, reply } => {
                let _ = reply.send(self.set_documents_quota(bytes));
            }
            Command::InstallUpdate { reply } => self.install_update(Some(reply)),
            Command::Update(report) => self.on_update(report),
            Command::SetPaused { paused, reply } => self.set_paused(paused, reply),
            Command::Upload(cmd) => self.on_upload_command(cmd),
            Command::Rechecked { hint, finding } => self.on_rechecked(hint, finding),
            Command::BlacklistFetched { name, ih, list } => {
                self.on_blacklist_fetched(name, ih, list)
            }
            Command::BlocklistApplied { version } => {
                let mut applied = None;
                self.update_status(|s| {
                    if let Some(b) = s.blacklist.as_mut().filter(|b| b.version == version) {
                        b.in_bittorrent = true;
                        applied = Some((b.entries.len(), b.closed.len()));
                    }
                });
                // Watchers (the dashboard) learn it is now in force in BitTorrent too.
                if let Some((entries, closed)) = applied {
                    self.emit(NodeEvent::Blacklist {
                        version,
                        entries,
                        closed,
                    });
                }
            }
            Command::Found { addr, name } => {
                let known = self
                    .conns
                    .values()
                    .any(|c| c.wire_addr == Some(addr) || c.remote == addr);
                let outgoing = self.conns.values().filter(|c| c.outgoing).count();
                if !known
                    && !self.blacklist.contains(addr.ip())
                    && !self.dht_entry_dropped(addr, name)
                    && !self.is_slowed(addr.ip())
                    && outgoing < self.cfg.max_peers
                {
                    let key = self.dial(addr);
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.found_under = Some(name);
                    }
                }
            }
            Command::Connect(addr) => {
                if self.blacklist.contains(addr.ip()) {
                    return;
                }
                if !self.cfg.peers.contains(&addr) {
                    // Bounded: the oldest hints go first.
                    if self.cfg.peers.len() >= 256 {
                        self.cfg.peers.remove(0);
                    }
                    self.cfg.peers.push(addr);
                }
                self.maintain_connections();
            }
        }
    }

    fn submit(
        &mut self,
        record: Vec<u8>,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    ) {
        let result = self
            .gossip
            .submit(record.into(), unix_ms())
            .map(|v| v.to_string())
            .map_err(|e| e.to_string());
        let _ = reply.send(result);
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.gossip.poll_action() {
            match action {
                Action::Send { peer, msg } => {
                    if let Some(conn) = self.conns.get(&peer)
                        && conn.tx.try_send(msg).is_err()
                    {
                        tracing::debug!("peer {} is not keeping up; message dropped", conn.remote);
                    }
                }
                Action::Accepted {
                    record,
                    bytes,
                    from,
                } => self.on_accepted(record, &bytes, from),
                Action::Evidence {
                    peer,
                    object,
                    refusal,
                } => {
                    let addrs = peer.and_then(|k| self.peer_addrs(k));
                    self.record_evidence(
                        addrs.map(|a| a.remote),
                        object,
                        refusal.code(),
                        refusal.to_string(),
                    );
                    if let Some(a) = addrs {
                        self.accuse(a, refusal.code(), object);
                    }
                    if let Some(k) = peer {
                        self.count_refused_item(k);
                    }
                }
                Action::Lookup { name } => self.dht_find(name, false),
                Action::Announce { name } => self.dht_find(name, true),
                Action::Dropped { name } => self.on_dropped(name),
            }
        }
        while let Some(action) = self.hints.poll_action() {
            match action {
                HintAction::Relay { hint, except } => {
                    for (k, c) in &self.conns {
                        if c.ready && crate::policy::relay_hint_to(&hint, except, *k, c.remote.ip())
                        {
                            let _ = c.tx.try_send(Message::Hint(hint.clone()));
                        }
                    }
                }
                HintAction::Audit { hint, from } => self.audit(hint, from),
            }
        }
    }

    /// Looks `name` up in the rendezvous DHT (announcing our wire port under it when
    /// `announce`), and dials whoever holds it.
    fn dht_find(&self, name: SystemName, announce: bool) {
        let Some(r) = self.shared.rendezvous.clone() else {
            return;
        };
        let port = announce.then_some(self.wire.listen_port).flatten();
        let commands = self.shared.commands.clone();
        let own = self.wire_local();
        tokio::spawn(async move {
            for peer in r
                .find(*name.as_bytes(), port, Duration::from_secs(10))
                .await
            {
                if peer != own {
                    let _ = commands.send(Command::Found { addr: peer, name }).await;
                }
            }
        });
    }

    /// Every pull interval: fold contacts from wire peers into the DHT's routing table
    /// if it is small, then announce ourselves under the node rendezvous name and dial
    /// the other nodes found there.
    fn rendezvous_round(&self) {
        let Some(r) = self.shared.rendezvous.clone() else {
            return;
        };
        let name = SystemName::rendezvous(self.cfg.bundle.network());
        let (port, own, commands) = (
            self.wire.listen_port,
            self.wire_local(),
            self.shared.commands.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = r.refresh().await {
                tracing::warn!("{e}");
            }
            for peer in r
                .find(*name.as_bytes(), port, Duration::from_secs(10))
                .await
            {
                if peer != own {
                    let _ = commands.send(Command::Found { addr: peer, name }).await;
                }
            }
        });
    }

    /// A peer the rendezvous DHT named as holding a record says, in its first `have`,
    /// what it holds: if that is not the record (or a newer one of it), the DHT entry
    /// was empty and is dropped (it proves nothing against the peer: `dht.rs`).
    fn check_announcement(&mut self, key: PeerKey, names: &[SystemName]) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let Some(announced) = conn.found_under.take() else {
            return;
        };
        if announced.class() == ObjectClass::NodeRendezvous {
            return; // every node is under it
        }
        let holds = names
            .iter()
            .any(|n| n.slot() == announced.slot() && n.version() >= announced.version());
        if !holds {
            // The entry was empty; the node it names is still a peer like any other.
            let addr = conn.wire_addr.unwrap_or(conn.remote);
            self.drop_dht_entry(addr, announced, false, "its have does not list it");
        }
    }

    /// librqbit refused a piece whose hash did not match: whoever sent it had it wrong
    /// or forged it, since the torrent comes from a verified record.
    fn on_bad_piece(&mut self, bad: crate::torrents::BadPiece) {
        let object = self.gossip.held_names().into_iter().find(|n| {
            self.gossip
                .held((n.kind(), n.id()))
                .is_some_and(|(r, _)| crate::documents::content_ih(r) == Some(bad.ih))
        });
        let wire = self
            .conns
            .values()
            .find(|c| c.bt_addr == Some(bad.peer))
            .and_then(|c| c.wire_addr);
        self.accuse(
            PeerAddrs {
                remote: bad.peer,
                wire,
                bt: Some(bad.peer),
                node_id: None,
            },
            "bad-piece",
            object,
        );
        self.record_evidence(
            Some(bad.peer),
            object,
            "bad-piece",
            format!(
                "sent a piece of torrent {} that failed its hash check",
                hex::encode(bad.ih)
            ),
        );
    }

    fn remember_closed(&mut self, key: PeerKey, addrs: PeerAddrs) {
        if self.closed.len() >= 1024 {
            self.closed.pop_front();
        }
        self.closed.push_back((key, addrs));
    }

    fn peer_addrs(&self, key: PeerKey) -> Option<PeerAddrs> {
        self.conns.get(&key).map(Conn::addrs).or_else(|| {
            self.closed
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, a)| *a)
        })
    }

    fn count_refused(&self, addr: SocketAddr) {
        self.update_status(|s| {
            if let Some(b) = s.blacklist.as_mut() {
                b.note_closed(addr);
            }
        });
    }

    fn on_accepted(&mut self, record: Record, bytes: &[u8], from: Option<PeerKey>) {
        if let Err(e) = self.store.save_record(&record, bytes) {
            tracing::error!("saving record {:?}: {e}", record.name);
        }
        if let Err(e) = crate::stored::save_trust(self.gossip.acceptor(), &self.store.trust_path())
        {
            tracing::error!("saving the trust store: {e}");
        }
        self.shared
            .trust_view
            .send_replace(Arc::new(self.gossip.acceptor().clone()));
        let name = record.name;
        tracing::info!(
            "accepted {} v{} from {}",
            name.class(),
            name.version(),
            from.and_then(|k| self.conns.get(&k))
                .map_or("this node".to_string(), |c| c.remote.to_string())
        );
        self.emit(NodeEvent::RecordAccepted {
            name: name.to_hex(),
            class: name.class().to_string(),
            version: name.version(),
        });
        self.refresh_records();
        match name.class() {
            ObjectClass::SiteRelease if name.id() == self.cfg.site => {
                self.want_release(&record, bytes)
            }
            ObjectClass::Blacklist => self.apply_blacklist(&record),
            ObjectClass::SoftwareManifest => self.on_manifest(&record),
            ObjectClass::Notice => self.on_notice(&record, true),
            ObjectClass::Document => self.on_document(&record),
            ObjectClass::IntakeReceipts => self.on_receipts(&record),
            _ => {}
        }
    }

    /// Sends a record this node signed, whose torrent's content is published in `dir`
    /// (seeded before the record goes out), and logs how it went as `what`.
    fn submit_own(&mut self, record: Vec<u8>, dir: PathBuf, what: String) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.on_command(Command::Submit {
            record,
            payload: Some(dir),
            reply,
        });
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(v)) => tracing::info!("{what}: {v}"),
                Ok(Err(e)) => tracing::error!("{what} refused: {e}"),
                Err(_) => {}
            }
        });
    }

    /// Fetches the single-file torrent `ih` of a signed record into `dir` (or reads it
    /// where this node published it) and returns its `size` bytes; it stays seeded.
    fn fetch_single_file(
        &self,
        ih: [u8; 20],
        size: u64,
        dir: PathBuf,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static {
        // Our own publication is seeded from where it was published.
        let (dir, torrent) = match self.local_payloads.get(&ih) {
            Some(d) => (
                d.join(crate::publisher::PAYLOAD_DIR),
                std::fs::read(d.join(crate::publisher::TORRENT_FILE))
                    .ok()
                    .map(bytes::Bytes::from),
            ),
            None => (dir, None),
        };
        let torrents = Arc::clone(&self.shared.torrents);
        let peers = self.bt_peers.subscribe();
        async move {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            sync::fetch_torrent(&torrents, &ih, torrent, &dir, None, peers, |_, _| {}).await;
            sync::read_single_file(&dir, size)
        }
    }

    fn want_release(&mut self, record: &Record, bytes: &[u8]) {
        let version = record.name.version();
        let Payload::Torrent { ih, .. } = record.payload else {
            tracing::warn!("site release v{version} carries no torrent; ignored");
            return;
        };
        if self.serving.is_some_and(|(v, _)| v >= version)
            || self.sync.as_ref().is_some_and(|t| t.version >= version)
        {
            return;
        }
        if let Some(old) = self.sync.take() {
            old.cancel.cancel();
        }
        let cancel = self.shared.cancel.child_token();
        self.sync = Some(SyncTask {
            version,
            cancel: cancel.clone(),
        });
        let wanted = Wanted {
            version,
            ih,
            time: record.time,
            record: bytes.to_vec(),
            local: self.local_payloads.get(&ih).cloned(),
        };
        let current_dir = self
            .serving
            .map(|(v, _)| self.store.release_dir(self.cfg.site, v));
        let job = sync::SyncJob {
            site: self.cfg.site,
            wanted,
            store: self.store.clone(),
            torrents: Arc::clone(&self.shared.torrents),
            current_dir,
            peers: self.bt_peers.subscribe(),
            report: self.sync_tx.clone(),
            cancel,
        };
        tokio::spawn(job.run());
    }

    async fn on_sync(&mut self, report: SyncReport) {
        match report {
            SyncReport::Progress(p) => {
                if self.sync.as_ref().is_some_and(|t| t.version == p.version) {
                    self.update_status(|s| s.sync = Some(p.clone()));
                    self.emit(NodeEvent::SyncProgress(p));
                }
            }
            SyncReport::Failed { version, error } => {
                tracing::warn!("release v{version}: {error}");
                self.update_status(|s| {
                    s.sync = Some(SyncStatus {
                        version,
                        have_bytes: 0,
                        total_bytes: 0,
                        peers: 0,
                        bytes_per_sec: 0,
                        fetched_bytes: 0,
                        error: Some(error),
                    })
                });
                self.sync = None;
            }
            SyncReport::Complete { wanted, release } => {
                if self
                    .sync
                    .as_ref()
                    .is_none_or(|t| t.version != wanted.version)
                {
                    return;
                }
                self.sync = None;
                // Switch first (one pointer store), then persist, then clean up.
                self.shared.served.switch(*release);
                let old = self.serving.replace((wanted.version, wanted.ih));
                if let Some(c) = self.restoring_served.take() {
                    c.cancel();
                }
                if let Some((_, old_ih)) = old
                    && old_ih != wanted.ih
                {
                    let _ = self.shared.torrents.remove(&old_ih).await;
                }
                let store = self.store.clone();
                let (site, v, rec) = (self.cfg.site, wanted.version, wanted.record.clone());
                match tokio::task::spawn_blocking(move || store.promote(site, v, &rec)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!("recording release v{v} as current: {e}"),
                    Err(e) => tracing::error!("promote task: {e}"),
                }
                tracing::info!("serving release v{}", wanted.version);
                self.update_status(|s| {
                    s.served_version = Some(wanted.version);
                    s.served_time = Some(wanted.time);
                    s.last_sync = s.sync.take();
                });
                self.emit(NodeEvent::Switched {
                    version: wanted.version,
                });
            }
        }
    }

    fn record_evidence(
        &mut self,
        peer: Option<SocketAddr>,
        object: Option<SystemName>,
        reason: &str,
        detail: String,
    ) {
        if let Some(addr) = peer {
            self.blacklist.evidence(addr.ip(), reason);
        }
        // One address gets a few lines a window written (and logged, and shown); the
        // rest are counted in the next one.
        let Some(left_out) = self.evidence_budget.admit(peer.map(|p| p.ip()), unix_ms()) else {
            return;
        };
        let detail = if left_out > 0 {
            format!("{detail} ({left_out} more from this address left out before this)")
        } else {
            detail
        };
        tracing::warn!(
            "evidence: {} from {}: {detail}",
            reason,
            peer.map_or("this node".into(), |p| p.to_string())
        );
        // The DHT node id of whoever sent it, where a connection told us.
        let node_id = peer.and_then(|p| {
            self.conns
                .values()
                .map(Conn::addrs)
                .chain(self.closed.iter().rev().map(|(_, a)| *a))
                .find(|a| a.remote == p || a.wire == Some(p) || a.bt == Some(p))
                .and_then(|a| a.node_id)
        });
        let entry = Evidence {
            time: unix_ms() / 1000,
            peer: peer.map(|p| p.to_string()),
            node_id: node_id.map(hex::encode),
            object: object.map(|o| o.to_hex()),
            reason: reason.into(),
            detail: detail.clone(),
        };
        if let Err(e) = self.evidence.try_send(entry.clone()) {
            tracing::error!("evidence not written (the writer is behind or gone): {e}");
        }
        self.update_status(|s| s.evidence += 1);
        self.emit(NodeEvent::Evidence {
            peer: entry.peer,
            reason: reason.into(),
            detail,
        });
    }
}
