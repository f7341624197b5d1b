//! What a feature driver may use of the node: the [`Ctx`] the core lends it for one
//! call. Each feature (`uploads/`, …) owns its own state and reaches the rest of the
//! node only through this: connections, torrents, status and events, the evidence log,
//! the accepted records.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::conns::Conns;
use super::{Command, NodeConfig, Shared, unix_ms};
use crate::blacklist::Enforcement;
use crate::evidence::{Evidence, EvidenceBudget};
use crate::gossip::Gossip;
use crate::name::SystemName;
use crate::node::status::{NodeEvent, PeerStatus, Status};
use crate::node::sync;
use crate::store::NodeStore;
use crate::torrents::Torrents;
use crate::trust::TrustStore;

/// Evidence lines written per address per window (the rest are counted).
const EVIDENCE_LINES_PER_ADDRESS: u32 = 20;
const EVIDENCE_WINDOW: Duration = Duration::from_secs(600);

/// Lends the core's shared parts to a feature driver: `ctx!(self)` inside `impl Core`,
/// borrowing only those fields, so the feature's own field stays free.
macro_rules! ctx {
    ($core:expr) => {
        $crate::node::core::ctx::Ctx {
            cfg: &$core.cfg,
            shared: &$core.shared,
            store: &$core.store,
            conns: &mut $core.conns,
            gossip: &mut $core.gossip,
            blacklist: &mut $core.blacklist,
            evidence: &mut $core.evidence,
            bt_peers: &$core.bt_peers,
            local_payloads: &mut $core.local_payloads,
        }
    };
}

/// The node as one feature driver sees it during one call.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a NodeConfig,
    pub shared: &'a Shared,
    pub store: &'a NodeStore,
    pub conns: &'a mut Conns,
    /// Records: what is held, what the trust store accepts; submitting our own.
    pub gossip: &'a mut Gossip<TrustStore>,
    /// The blacklist in force (and, with auto-blacklisting, the evidence it counts).
    pub blacklist: &'a mut Enforcement,
    pub evidence: &'a mut EvidenceSink,
    /// BitTorrent peers to hand librqbit (ready wire peers and configured ones).
    pub bt_peers: &'a watch::Sender<Vec<SocketAddr>>,
    /// Content folders of records this node published itself.
    pub local_payloads: &'a mut HashMap<[u8; 20], PathBuf>,
}

impl Ctx<'_> {
    pub fn update_status(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.shared.status.write().expect("status lock"));
    }

    pub fn emit(&self, ev: NodeEvent) {
        let _ = self.shared.events.send(ev);
    }

    /// The peers shown in the status, and those handed to librqbit: ready wire peers'
    /// BitTorrent ports and the configured ones, none listed.
    pub fn refresh_peers(&self) {
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

    /// Records that `peer` (None: a signed record, no one connection) did something
    /// hostile: counted for the blacklist, written to the evidence log within the
    /// address's budget, shown and announced.
    pub fn evidence(
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
        let Some(left_out) = self.evidence.budget.admit(peer.map(|p| p.ip()), unix_ms()) else {
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
        let node_id = peer.and_then(|p| self.conns.node_id_of(p));
        let entry = Evidence {
            time: unix_ms() / 1000,
            peer: peer.map(|p| p.to_string()),
            node_id: node_id.map(hex::encode),
            object: object.map(|o| o.to_hex()),
            reason: reason.into(),
            detail: detail.clone(),
        };
        if let Err(e) = self.evidence.writer.try_send(entry.clone()) {
            tracing::error!("evidence not written (the writer is behind or gone): {e}");
        }
        self.update_status(|s| s.evidence += 1);
        self.emit(NodeEvent::Evidence {
            peer: entry.peer,
            reason: reason.into(),
            detail,
        });
    }

    /// Sends a record this node signed, whose torrent's content is published in `dir`
    /// (seeded before the record goes out), and logs how it went as `what`.
    pub fn submit_own(&mut self, record: Vec<u8>, dir: PathBuf, what: String) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(record, Some(dir), reply);
        tokio::spawn(async move {
            match answer.await {
                Ok(Ok(v)) => tracing::info!("{what}: {v}"),
                Ok(Err(e)) => tracing::error!("{what} refused: {e}"),
                Err(_) => {}
            }
        });
    }

    /// Takes a record this node signed: checked first; when its content is `payload`,
    /// that is seeded before anyone hears of the record, so the first peers to ask find
    /// it (the record goes on as [`Command::Seeded`]).
    pub fn submit(
        &mut self,
        record: Vec<u8>,
        payload: Option<PathBuf>,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    ) {
        let decoded = crate::record::Record::decode(&record);
        let ih = decoded.as_ref().ok().and_then(crate::documents::content_ih);
        match (payload, decoded, ih) {
            (Some(dir), Ok(r), Some(ih)) => {
                if let Err(e) = self.gossip.acceptor().check(&r, unix_ms() / 1000) {
                    let _ = reply.send(Err(e.to_string()));
                    return;
                }
                self.local_payloads.insert(ih, dir.clone());
                if let Err(e) = self.store.save_published(self.local_payloads) {
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
            _ => self.submit_now(record, reply),
        }
    }

    /// Hands a record to gossip as it is.
    pub fn submit_now(
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

    /// Fetches the single-file torrent `ih` of a signed record into `dir` (or reads it
    /// where this node published it) and returns its `size` bytes; it stays seeded.
    pub fn fetch_single_file(
        &self,
        ih: [u8; 20],
        size: u64,
        dir: PathBuf,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send + use<> {
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
}

/// The evidence log's writer thread (never blocks the core) and the per-address budget
/// of lines.
pub(crate) struct EvidenceSink {
    writer: std::sync::mpsc::SyncSender<Evidence>,
    budget: EvidenceBudget,
}

impl EvidenceSink {
    pub fn new(writer: std::sync::mpsc::SyncSender<Evidence>) -> Self {
        EvidenceSink {
            writer,
            budget: EvidenceBudget::new(
                EVIDENCE_LINES_PER_ADDRESS,
                EVIDENCE_WINDOW.as_millis() as u64,
            ),
        }
    }
}

/// Seeds a locally published release from its published folder and waits until
/// librqbit has checked it.
pub(super) async fn seed_local(
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
