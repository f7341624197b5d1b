//! Metainfo over the wire (PROTOCOL.md §22): drives `crate::metainfo::Metainfo` for the
//! fetches `Torrents::fetch_metainfo` asks for, and answers peers' `ss_mget` from the
//! torrents this node has in its session (seeding or fetching).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot};

use super::{Core, unix_ms};
use crate::gossip::PeerKey;
use crate::metainfo::{Metainfo, MetainfoAction, MetainfoConfig};
use crate::torrents::MetainfoRequest;
use crate::wire::{Message, MetaPart};

/// The core's side of metainfo fetches from wire peers.
pub(super) struct WireMetainfo {
    machine: Metainfo<PeerKey>,
    /// Who waits for each metainfo under way.
    waiters: HashMap<[u8; 20], Vec<oneshot::Sender<Option<bytes::Bytes>>>>,
    pub(super) rx: mpsc::Receiver<MetainfoRequest>,
}

impl WireMetainfo {
    /// A new driver, and the sender `Torrents` asks through.
    pub(super) fn new() -> (Self, mpsc::Sender<MetainfoRequest>) {
        let (tx, rx) = mpsc::channel(64);
        let verify =
            |ih: &[u8; 20], bytes: &[u8]| crate::torrents::metainfo::check(ih, bytes).is_ok();
        let driver = WireMetainfo {
            machine: Metainfo::new(MetainfoConfig::default(), verify),
            waiters: HashMap::new(),
            rx,
        };
        (driver, tx)
    }

    pub(super) fn next_timeout(&self) -> Option<u64> {
        self.machine.next_timeout()
    }
}

impl Core {
    /// A fetch asks for the metainfo of `ih`: every ready peer that answers metainfo is
    /// a candidate, in random order.
    pub(super) fn on_metainfo_request(&mut self, (ih, reply): MetainfoRequest) {
        self.wire_metainfo
            .waiters
            .entry(ih)
            .or_default()
            .push(reply);
        let mut peers: Vec<PeerKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.ready && c.metainfo && !self.blacklist.contains(c.remote.ip()))
            .map(|(k, _)| *k)
            .collect();
        peers.shuffle(&mut rand::thread_rng());
        self.wire_metainfo.machine.want(ih, &peers, unix_ms());
    }

    /// A peer asks for part of a metainfo: answered from the session, within its budget.
    pub(super) fn on_meta_get(&mut self, key: PeerKey, ih: [u8; 20], part: u32) {
        if !self.wire_metainfo.machine.may_answer(key, unix_ms()) {
            return;
        }
        let reply = match self.shared.torrents.metainfo(&ih) {
            Some(bytes) => MetaPart::of(ih, part, &bytes),
            None => MetaPart {
                ih,
                part,
                data: None,
            },
        };
        if let Some(conn) = self.conns.get(&key) {
            let _ = conn.tx.try_send(Message::Meta(reply));
        }
    }

    pub(super) fn on_meta_part(&mut self, key: PeerKey, part: MetaPart) {
        self.wire_metainfo.machine.on_part(key, part, unix_ms());
    }

    pub(super) fn metainfo_peer_gone(&mut self, key: PeerKey) {
        self.wire_metainfo.machine.peer_gone(key, unix_ms());
    }

    pub(super) fn metainfo_timeout(&mut self, now: u64) {
        self.wire_metainfo.machine.handle_timeout(now);
    }

    pub(super) fn drain_metainfo_actions(&mut self) {
        while let Some(action) = self.wire_metainfo.machine.poll_action() {
            match action {
                MetainfoAction::Send { peer, msg } => {
                    if let Some(conn) = self.conns.get(&peer) {
                        let _ = conn.tx.try_send(msg);
                    }
                }
                MetainfoAction::Found { ih, bytes } => {
                    let bytes = bytes::Bytes::from(bytes);
                    for w in self.wire_metainfo.waiters.remove(&ih).unwrap_or_default() {
                        let _ = w.send(Some(bytes.clone()));
                    }
                }
                MetainfoAction::NotFound { ih } => {
                    for w in self.wire_metainfo.waiters.remove(&ih).unwrap_or_default() {
                        let _ = w.send(None);
                    }
                }
                MetainfoAction::Bad { peer, ih, why } => {
                    let remote = self.conns.addrs(peer).map(|a| a.remote);
                    self.record_evidence(
                        remote,
                        None,
                        "bad-metainfo",
                        format!("for info hash {}: {why}", hex::encode(ih)),
                    );
                    self.count_refused_item(peer);
                }
            }
        }
    }
}
