//! Pause and resume sharing (the tray's "Pause sharing"). While paused the node gives
//! nothing to others: BitTorrent stops uploading and downloading, and HTTP answers
//! visitors from other machines with 503 (so DNS probers drop it) while the owner still
//! reads the site on loopback. Wire gossip goes on: records are tiny and keep the node
//! current, so resuming serves the newest release at once.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Core;
use crate::node::status::NodeEvent;

impl Core {
    pub(super) fn set_paused(&mut self, paused: bool, reply: oneshot::Sender<()>) {
        self.shared.served.set_paused(paused);
        self.update_status(|s| s.paused = paused);
        let torrents = Arc::clone(&self.shared.torrents);
        let events = self.shared.events.clone();
        tokio::spawn(async move {
            let changed = torrents.set_paused(paused).await;
            tracing::info!(
                "sharing {} ({changed} torrents)",
                if paused { "paused" } else { "resumed" }
            );
            let _ = events.send(NodeEvent::Paused { paused });
            let _ = reply.send(());
        });
    }
}
