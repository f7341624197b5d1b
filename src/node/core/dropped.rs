//! What a new key set no longer vouches for (SPEC §3): content that only keys since
//! retired signed, and that the rotation does not list as current. The trust store
//! released its pin and gossip asked for the current record; here the node forgets the
//! content everywhere it acted on it, so nothing a retired key alone vouches for is
//! served, offered, obeyed or installed.

use super::*;

impl Core {
    pub(super) fn on_dropped(&mut self, name: SystemName) {
        tracing::warn!(
            "{} v{} is signed by retired keys and the newest key set does not list it: dropped",
            name.class(),
            name.version()
        );
        if let Err(e) = self.store.drop_record(name) {
            tracing::error!("forgetting record {name:?}: {e}");
        }
        self.emit(NodeEvent::RecordDropped {
            name: name.to_hex(),
            class: name.class().to_string(),
            version: name.version(),
        });
        self.refresh_records();
        match name.class() {
            ObjectClass::SiteRelease if name.id() == self.cfg.site => self.drop_release(name),
            ObjectClass::Blacklist => self.withdraw_blacklist(),
            ObjectClass::SoftwareManifest => self.drop_manifest(name),
            ObjectClass::Notice => self.update_status(|s| s.notices.retain(|n| n.id != name.id())),
            ObjectClass::Document => self.evict_document(name.id(), name.version()),
            // Receipts only ever let cached uploads go; the current list comes again.
            _ => {}
        }
    }

    fn drop_release(&mut self, name: SystemName) {
        let version = name.version();
        if let Some(t) = self.sync.take_if(|t| t.version == version) {
            t.cancel.cancel();
        }
        let Some((_, ih)) = self.serving.take_if(|(v, _)| *v == version) else {
            return;
        };
        if let Some(c) = self.restoring_served.take() {
            c.cancel();
        }
        self.shared.served.clear();
        self.update_status(|s| {
            s.served_version = None;
            s.served_time = None;
        });
        let torrents = Arc::clone(&self.shared.torrents);
        let (store, site) = (self.store.clone(), self.cfg.site);
        tokio::spawn(async move {
            let _ = torrents.remove(&ih).await;
            match tokio::task::spawn_blocking(move || store.drop_release(site, version)).await {
                Ok(Err(e)) => tracing::error!("removing release v{version}: {e}"),
                Err(e) => tracing::error!("removing release v{version}: {e}"),
                Ok(Ok(())) => {}
            }
        });
    }
}
