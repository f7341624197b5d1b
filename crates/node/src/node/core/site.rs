//! The site itself: the release served (restored at start, switched when a newer one
//! is complete), the one sync under way (`node::sync`), and a release a key rotation
//! dropped.

use super::ctx::Ctx;
use super::*;

struct SyncTask {
    version: u32,
    ih: [u8; 20],
    cancel: CancellationToken,
    /// The task running `node::sync` (it ends soon after `cancel`).
    job: tokio::task::JoinHandle<()>,
}

/// The site driver: which release is served and which is being fetched, driven by the
/// core through a [`Ctx`] (site release records accepted or dropped, sync reports).
pub(super) struct SiteSync {
    sync: Option<SyncTask>,
    /// The served release: version, info hash.
    serving: Option<(u32, [u8; 20])>,
    /// Re-adding the served release at start (stopped when another one is switched in),
    /// and its task (awaited before the torrent is removed, so it cannot add it again).
    restoring_served: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    sync_tx: mpsc::Sender<SyncReport>,
    pub(super) rx: mpsc::Receiver<SyncReport>,
}

impl SiteSync {
    pub(super) fn new() -> Self {
        let (sync_tx, rx) = mpsc::channel(64);
        SiteSync {
            sync: None,
            serving: None,
            restoring_served: None,
            sync_tx,
            rx,
        }
    }

    /// Stops the sync under way (the node is stopping).
    pub(super) fn stop(&mut self) {
        if let Some(t) = self.sync.take() {
            t.cancel.cancel();
        }
    }
}

impl SiteSync {
    /// Serves and seeds the release on disk, and resumes a newer one if known.
    pub(super) async fn restore(&mut self, ctx: &mut Ctx<'_>) {
        let slot = (kind::SITE_RELEASE, ctx.cfg.site);
        let resuming = ctx.gossip.held(slot).map(|(r, _)| r.name.version());
        let (store, site) = (ctx.store.clone(), ctx.cfg.site);
        match tokio::task::spawn_blocking(move || store.sweep_releases(site, resuming)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("removing releases left from before: {e}"),
            Err(e) => tracing::warn!("removing releases left from before: {e}"),
        }
        match ctx.store.current(ctx.cfg.site) {
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
                            ctx.shared.served.switch(release);
                            self.serving = Some((rel.version, ih));
                            ctx.update_status(|s| {
                                s.served_version = Some(rel.version);
                                s.served_time = Some(record.time);
                            });
                            // With the kept metainfo this is a piece check and seeding
                            // at once; without (a data folder from before it was kept),
                            // the metainfo comes from peers as for any fetch.
                            let torrents = Arc::clone(&ctx.shared.torrents);
                            let (dir, peers) = (rel.dir.clone(), ctx.bt_peers.subscribe());
                            let cancel = CancellationToken::new();
                            let stop = cancel.clone();
                            let task = tokio::spawn(async move {
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
                            self.restoring_served = Some((stop, task));
                        }
                        Ok(Err(e)) => tracing::warn!("cannot index the served release: {e}"),
                        Err(e) => tracing::warn!("indexing task failed: {e}"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("reading the served release: {e}"),
        }
        if let Some((record, bytes)) = ctx.gossip.held(slot).map(|(r, b)| (r.clone(), b.to_vec())) {
            self.want_release(ctx, &record, &bytes);
        }
    }

    pub(super) fn want_release(&mut self, ctx: &mut Ctx<'_>, record: &Record, bytes: &[u8]) {
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
            self.abandon(ctx, old, Some(ih));
        }
        let cancel = ctx.shared.cancel.child_token();
        let wanted = Wanted {
            version,
            ih,
            time: record.time,
            record: bytes.to_vec(),
            local: ctx.local_payloads.get(&ih).cloned(),
        };
        let current_dir = self
            .serving
            .map(|(v, _)| ctx.store.release_dir(ctx.cfg.site, v));
        let job = sync::SyncJob {
            site: ctx.cfg.site,
            wanted,
            store: ctx.store.clone(),
            torrents: Arc::clone(&ctx.shared.torrents),
            current_dir,
            peers: ctx.bt_peers.subscribe(),
            report: self.sync_tx.clone(),
            cancel: cancel.clone(),
        };
        self.sync = Some(SyncTask {
            version,
            ih,
            cancel,
            job: tokio::spawn(job.run()),
        });
    }

    pub(super) async fn on_report(&mut self, ctx: &mut Ctx<'_>, report: SyncReport) {
        match report {
            SyncReport::Progress(p) => {
                if self.sync.as_ref().is_some_and(|t| t.version == p.version) {
                    ctx.update_status(|s| s.sync = Some(p.clone()));
                    ctx.emit(NodeEvent::SyncProgress(p));
                }
            }
            SyncReport::Failed { version, error } => {
                tracing::warn!("release v{version}: {error}");
                ctx.update_status(|s| {
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
                ctx.shared.served.switch(*release);
                let old = self.serving.replace((wanted.version, wanted.ih));
                if let Some((c, task)) = self.restoring_served.take() {
                    c.cancel();
                    let _ = task.await;
                }
                if let Some((_, old_ih)) = old
                    && old_ih != wanted.ih
                {
                    let _ = ctx.shared.torrents.remove(&old_ih).await;
                }
                let store = ctx.store.clone();
                let (site, v, rec) = (ctx.cfg.site, wanted.version, wanted.record.clone());
                match tokio::task::spawn_blocking(move || store.promote(site, v, &rec)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!("recording release v{v} as current: {e}"),
                    Err(e) => tracing::error!("promote task: {e}"),
                }
                tracing::info!("serving release v{}", wanted.version);
                ctx.update_status(|s| {
                    s.served_version = Some(wanted.version);
                    s.served_time = Some(wanted.time);
                    s.last_sync = s.sync.take();
                });
                ctx.emit(NodeEvent::Switched {
                    version: wanted.version,
                });
            }
        }
    }

    pub(super) fn drop_release(&mut self, ctx: &mut Ctx<'_>, name: SystemName) {
        let version = name.version();
        if let Some(t) = self.sync.take_if(|t| t.version == version) {
            self.abandon(ctx, t, None);
        }
        let Some((_, ih)) = self.serving.take_if(|(v, _)| *v == version) else {
            return;
        };
        let restoring = self.restoring_served.take().map(|(c, task)| {
            c.cancel();
            task
        });
        ctx.shared.served.clear();
        ctx.update_status(|s| {
            s.served_version = None;
            s.served_time = None;
        });
        remove_release(ctx, version, ih, restoring);
    }

    /// Stops a sync that is no longer wanted: its torrent leaves librqbit (which would
    /// otherwise go on filling its folder) and its folder goes. A torrent the node
    /// still uses — served, published here, or the one wanted next (`next`) — stays,
    /// and so does its folder.
    fn abandon(&self, ctx: &mut Ctx<'_>, task: SyncTask, next: Option<[u8; 20]>) {
        task.cancel.cancel();
        let in_use = Some(task.ih) == next
            || self.serving.is_some_and(|(_, ih)| ih == task.ih)
            || ctx.local_payloads.contains_key(&task.ih);
        if in_use {
            return;
        }
        remove_release(ctx, task.version, task.ih, Some(task.job));
    }
}

/// Removes release `version` (torrent `ih`) from librqbit and from disk, off the core
/// task, once `task` — the one that might add the torrent again — has ended.
fn remove_release(
    ctx: &Ctx<'_>,
    version: u32,
    ih: [u8; 20],
    task: Option<tokio::task::JoinHandle<()>>,
) {
    let torrents = Arc::clone(&ctx.shared.torrents);
    let (store, site) = (ctx.store.clone(), ctx.cfg.site);
    tokio::spawn(async move {
        if let Some(task) = task {
            let _ = task.await;
        }
        let _ = torrents.remove(&ih).await;
        match tokio::task::spawn_blocking(move || store.drop_release(site, version)).await {
            Ok(Err(e)) => tracing::error!("removing release v{version}: {e}"),
            Err(e) => tracing::error!("removing release v{version}: {e}"),
            Ok(Ok(())) => {}
        }
    });
}
