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
            ObjectClass::SiteRelease if name.id() == self.cfg.site => {
                self.site.drop_release(&mut ctx!(self), name)
            }
            ObjectClass::Blacklist => self.feed.withdraw(&mut ctx!(self)),
            ObjectClass::SoftwareManifest => self.update.drop_manifest(&mut ctx!(self), name),
            ObjectClass::Notice => self.update_status(|s| s.notices.retain(|n| n.id != name.id())),
            ObjectClass::Document => {
                self.archive
                    .evict_version(&mut ctx!(self), name.id(), name.version())
            }
            // Receipts only ever let cached uploads go; the current list comes again.
            _ => {}
        }
    }
}
