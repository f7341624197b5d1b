//! The core task: one select loop over the node's inputs (wire connections, control
//! commands, timers, the reports of tasks it started), and the parts every feature
//! shares: the connections (`conns.rs`), gossip and the store of records, the evidence
//! log, the blacklist in force.
//!
//! Each feature is a driver that owns its state and sees the rest of the node only
//! through the [`ctx::Ctx`] the core lends it for one call: the site release
//! (`site.rs`), documents (`documents/`), software updates (`update/`), anonymous
//! uploads (`uploads/`) and the signed blacklists (`blacklist.rs`). The core's own work
//! is in files of `impl Core`: connections (`peering.rs`), the rendezvous DHT
//! (`dht.rs`), the auditing of hints (`audit.rs`), wire metainfo (`metainfo.rs`),
//! notices, pausing, and records a key rotation dropped (`dropped.rs`).

#[macro_use]
mod ctx;
mod audit;
mod blacklist;
mod conns;
mod dht;
mod documents;
mod dropped;
mod metainfo;
mod notices;
mod pause;
mod peering;
mod site;
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

use self::conns::{Conn, Conns, PeerAddrs};
use self::ctx::EvidenceSink;
use super::recheck::{self, Finding};
use super::status::{NodeEvent, RecordStatus, Status, SyncStatus};
use super::sync::{self, SyncReport, Wanted};
use super::wire_io::{self, ConnReport};
use super::{Command, NodeConfig, NodeError, unix_ms};
use crate::blacklist::Enforcement;
use crate::content::Notice;
use crate::evidence::EvidenceLog;
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

pub struct Core {
    // --- Lent to the feature drivers (`ctx!`) ---
    cfg: NodeConfig,
    shared: Shared,
    store: NodeStore,
    gossip: Gossip<TrustStore>,
    conns: Conns,
    /// The blacklist in force (SPEC §8): listed addresses get no connection, no dial,
    /// and are never handed to librqbit. With auto-blacklisting, also the evidence and
    /// accusations that make the next version (sans-IO: `crate::blacklist`).
    blacklist: Enforcement,
    evidence: EvidenceSink,
    bt_peers: watch::Sender<Vec<SocketAddr>>,
    /// Content folders of records this node published itself.
    local_payloads: HashMap<[u8; 20], PathBuf>,

    // --- The feature drivers ---
    /// The release served and the one being fetched.
    site: site::SiteSync,
    /// Published documents: what this node keeps of the archive.
    archive: documents::Archive,
    /// Software updates.
    update: update::Updater,
    /// Anonymous uploads: stem, transfers, fluff, queue, receipts, intake.
    uploads: uploads::Uploads,
    /// The signed blacklists as they arrive, and the auto-blacklist's next one.
    feed: blacklist::BlacklistFeed,

    // --- The core's own ---
    wire: WireConfig,
    local_ip: IpAddr,
    reports_tx: mpsc::Sender<ConnReport>,
    reports_rx: mpsc::Receiver<ConnReport>,
    /// Addresses kept out after too many refused items, until when (ms).
    slowed: HashMap<IpAddr, u64>,
    /// Rendezvous DHT entries found false (address, and the name unless nothing
    /// answered there at all), until when (ms): `dht.rs`.
    dht_dropped: HashMap<(SocketAddr, Option<SystemName>), u64>,
    /// Evidence hints: passing them on, and (auditors) hearing them.
    hints: Hints,
    /// Metainfo asked of wire peers, and answered to them.
    wire_metainfo: metainfo::WireMetainfo,
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
            evidence: EvidenceSink::new(evidence),
            slowed: HashMap::new(),
            dht_dropped: HashMap::new(),
            wire,
            conns: Conns::new(),
            reports_tx,
            reports_rx,
            bt_peers,
            site: site::SiteSync::new(),
            local_payloads,
            blacklist,
            hints,
            feed: blacklist::BlacklistFeed::default(),
            archive,
            update,
            uploads,
            wire_metainfo,
        })
    }

    pub async fn run(mut self, listener: TcpListener, mut commands: mpsc::Receiver<Command>) {
        self.site.restore(&mut ctx!(self)).await;
        self.restore_notices();
        self.archive.restore(&mut ctx!(self)).await;
        self.uploads.restore(&mut ctx!(self)).await;
        if let Some((record, _)) = self
            .gossip
            .held((kind::AUTHORIZED_FILE, crate::name::file_id::BLACKLIST))
        {
            let record = record.clone();
            self.apply_blacklist(&record);
        }
        self.update.restore(&mut ctx!(self));
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
            self.drain_all_actions();
            let next = [
                self.uploads.next_timeout(),
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
                Some(report) = self.reports_rx.recv() => self.on_wire_event(report),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Some(report) = self.site.rx.recv() => self.site.on_report(&mut ctx!(self), report).await,
                Some(bad) = recv_or_pending(&mut bad_pieces) => self.on_bad_piece(bad),
                Some(report) = self.archive.rx.recv() => self.archive.on_report(&mut ctx!(self), report),
                _ = docs_tick.tick() => self.archive.tick(&mut ctx!(self)),
                Some(report) = self.uploads.rx.recv() => self.uploads.on_report(&mut ctx!(self), report),
                Some(request) = self.wire_metainfo.rx.recv() => self.on_metainfo_request(request),
                _ = tokio::time::sleep(wait) => {
                    self.gossip.handle_timeout(unix_ms());
                    self.update.auto_install_when_confirmed(&mut ctx!(self));
                    self.uploads.on_timeout(&mut ctx!(self), unix_ms());
                    self.metainfo_timeout(unix_ms());
                }
                _ = uploads_tick.tick() => self.uploads.tick(&mut ctx!(self)),
                _ = dial_tick.tick() => self.maintain_connections(),
                _ = dht_tick.tick() => self.rendezvous_round(),
                _ = auto_tick.tick() => {
                    self.start_rechecks();
                    self.feed.auto_blacklist(&mut ctx!(self), self.local_ip);
                }
                _ = cancel.cancelled() => break,
            }
        }
        self.site.stop();
        if let Err(e) = crate::stored::save_trust(self.gossip.acceptor(), &self.store.trust_path())
        {
            tracing::warn!("saving the trust store: {e}");
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

    /// Runs what the machines asked for, and tells every feature of the connections a
    /// feature closed, until neither has more.
    fn drain_all_actions(&mut self) {
        loop {
            self.drain_actions();
            self.uploads.drain_actions(&mut ctx!(self));
            self.drain_metainfo_actions();
            let gone = self.conns.take_gone();
            if gone.is_empty() {
                return;
            }
            for (key, conn) in gone {
                self.conn_gone(key, conn);
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                record,
                payload,
                reply,
            } => ctx!(self).submit(record, payload, reply),
            Command::Seeded { record, reply } => ctx!(self).submit_now(record, reply),
            Command::SetDocumentsQuota { bytes, reply } => {
                let _ = reply.send(self.archive.set_quota(&mut ctx!(self), bytes));
            }
            Command::InstallUpdate { reply } => self.update.install(&mut ctx!(self), Some(reply)),
            Command::Update(report) => self.update.on_report(&mut ctx!(self), report),
            Command::SetPaused { paused, reply } => self.set_paused(paused, reply),
            Command::Upload(cmd) => self.uploads.on_command(&mut ctx!(self), cmd),
            Command::Rechecked { hint, finding } => self.on_rechecked(hint, finding),
            Command::BlacklistFetched { name, ih, list } => {
                self.feed.on_fetched(&mut ctx!(self), name, ih, list);
                self.forget_listed_peers();
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
                let check = crate::policy::DialCheck {
                    connected: self
                        .conns
                        .values()
                        .any(|c| c.wire_addr == Some(addr) || c.remote == addr),
                    listed: self.blacklist.contains(addr.ip()),
                    dropped: self.dht_entry_dropped(addr, name),
                    slowed: self.is_slowed(addr.ip()),
                    outgoing: self.conns.values().filter(|c| c.outgoing).count(),
                    max_peers: self.cfg.max_peers,
                };
                if crate::policy::may_dial(&check) {
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

    fn drain_actions(&mut self) {
        while let Some(action) = self.gossip.poll_action() {
            match action {
                Action::Send { peer, msg } => {
                    self.conns.send(peer, msg);
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
                    let addrs = peer.and_then(|k| self.conns.addrs(k));
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
                    for (k, c) in self.conns.iter() {
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
                self.site.want_release(&mut ctx!(self), &record, bytes)
            }
            ObjectClass::Blacklist => self.apply_blacklist(&record),
            ObjectClass::SoftwareManifest => self.update.on_manifest(&mut ctx!(self), &record),
            ObjectClass::Notice => self.on_notice(&record, true),
            ObjectClass::Document => self.archive.on_document(&mut ctx!(self), &record),
            ObjectClass::IntakeReceipts => self.uploads.on_receipts(&mut ctx!(self), &record),
            _ => {}
        }
    }

    /// Puts the blacklist of `record` in force (the blacklist driver), and forgets the
    /// configured peers it lists.
    fn apply_blacklist(&mut self, record: &Record) {
        self.feed.apply(&mut ctx!(self), record);
        self.forget_listed_peers();
    }

    /// Listed addresses are never dialled; they leave the list of peers to dial too.
    fn forget_listed_peers(&mut self) {
        let list = self.blacklist.list();
        self.cfg.peers.retain(|a| !list.contains(a.ip()));
    }

    fn record_evidence(
        &mut self,
        peer: Option<SocketAddr>,
        object: Option<SystemName>,
        reason: &str,
        detail: String,
    ) {
        ctx!(self).evidence(peer, object, reason, detail);
    }
}
