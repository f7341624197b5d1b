//! Pausing sharing (the tray's "Pause sharing"): every torrent of the session stops
//! uploading and downloading, and torrents added meanwhile (a new release, a restart for
//! a new blacklist) start paused, until sharing resumes.

use std::sync::atomic::Ordering;

use super::{TorrentHandle, Torrents};

impl Torrents {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Pauses or resumes every torrent; returns how many changed state.
    pub async fn set_paused(&self, paused: bool) -> usize {
        // Under the restart lock, so a session restart cannot slip in between and add
        // torrents with the old state.
        let _guard = self.restart.lock().await;
        self.paused.store(paused, Ordering::SeqCst);
        let session = self.session();
        let handles: Vec<TorrentHandle> =
            session.with_torrents(|ts| ts.map(|(_, h)| h.clone()).collect());
        let mut changed = 0;
        for h in handles {
            if h.is_paused() == paused {
                continue;
            }
            let r = if paused {
                session.pause(&h).await
            } else {
                session.unpause(&h).await
            };
            match r {
                Ok(()) => changed += 1,
                // A torrent still checking its files is not live yet and cannot be
                // paused; it finishes its check, then follows the flag at its next add.
                Err(e) => tracing::debug!("pause {paused} {}: {e:#}", h.info_hash().as_string()),
            }
        }
        changed
    }
}
