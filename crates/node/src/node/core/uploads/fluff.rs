//! The fluff: a stem copy becomes a seeded torrent, announced with `ss_up`; announced
//! uploads are fetched (metadata checked, quota asked) and cached until receipted.

use super::*;

impl Uploads {
    /// This node switches `id` to fluff: its stem copy becomes a seeded torrent.
    pub(super) fn fluff(&mut self, ctx: &mut Ctx<'_>, id: BlobId) {
        let Some(mut e) = self.queue.by_id(&id).cloned() else {
            return;
        };
        e.stem = self.stem.state(&id);
        if e.fluff.is_none() && e.stem_copy {
            let (from, to) = (self.stem_dir(&id), self.fluff_dir(&e.ih));
            match std::fs::rename(&from, &to) {
                Ok(()) => {
                    e.stem_copy = false;
                    e.fluff = Some(Fluff::Seeding);
                    self.fluff.fluffed(e.ih, unix_ms());
                }
                Err(err) => {
                    tracing::error!("fluffing upload {}: {err}", hex::encode(e.ih));
                    return;
                }
            }
        }
        let ih = e.ih;
        self.queue.insert(e);
        self.save_queue(ctx);
        tracing::info!("upload {} switched to fluff", hex::encode(ih));
        self.emit_upload(ctx, &ih);
        self.seed(ctx, ih, true);
    }

    /// Seeds the fluff copy of `ih`; `announce`: then tells peers.
    pub(super) fn seed(&mut self, ctx: &mut Ctx<'_>, ih: InfoHash, announce: bool) {
        let dir = self.fluff_dir(&ih);
        let torrents = Arc::clone(&ctx.shared.torrents);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = async {
                let t = std::fs::read(dir.join("upload.torrent"))
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                let h = torrents
                    .add(&ih, Some(t.into()), &dir, vec![])
                    .await
                    .map_err(|e| e.to_string())?;
                let wait = Torrents::wait(&h, Duration::from_millis(200), |_| {});
                tokio::time::timeout(Duration::from_secs(600), wait)
                    .await
                    .map_err(|_| "checking the container took too long".to_string())?
                    .map_err(|e| e.to_string())
            }
            .await;
            if announce || result.is_err() {
                let _ = tx.send(UploadReport::Seeding { ih, result }).await;
            }
        });
    }

    pub(super) fn on_seeding(
        &mut self,
        ctx: &mut Ctx<'_>,
        ih: InfoHash,
        result: Result<(), String>,
    ) {
        match result {
            Ok(()) => {
                let peers = self.upload_peers(ctx);
                self.fluff.seeded(ih, unix_ms(), &peers);
            }
            Err(e) => tracing::error!("seeding upload {}: {e}", hex::encode(ih)),
        }
    }

    /// A `ss_up` from `key`, within its rate limit: the fluff machine decides.
    pub(crate) fn on_up(&mut self, ctx: &mut Ctx<'_>, key: PeerKey, ih: InfoHash) {
        if !ctx.conns.get(&key).is_some_and(|c| c.ready && c.uploads)
            || !self.transfers.allow_up(key, unix_ms())
        {
            return;
        }
        self.fluff.up(ih, key, unix_ms());
    }

    /// Fetches `ih` into its fluff folder: metadata first (checked, and the quota asked
    /// via [`UploadReport::Metadata`]) unless `resume`, then the content, then the
    /// header.
    pub(super) fn fetch_upload(&mut self, ctx: &mut Ctx<'_>, ih: InfoHash, resume: bool) {
        if self.fetching.contains_key(&ih) {
            return;
        }
        let cancel = ctx.shared.cancel.child_token();
        self.fetching.insert(ih, cancel.clone());
        let dir = self.fluff_dir(&ih);
        let torrents = Arc::clone(&ctx.shared.torrents);
        let mut peers = ctx.bt_peers.subscribe();
        let tx = self.tx.clone();
        let (known, max) = (self.intake_kids(ctx), self.cfg.max_size);
        tokio::spawn(async move {
            let job = async {
                let torrent = if resume {
                    let t = std::fs::read(dir.join("upload.torrent"))
                        .map_err(|e| Rejected::Failed(format!("{}: {e}", dir.display())))?;
                    bytes::Bytes::from(t)
                } else {
                    let (t, size) = upload_metadata(&torrents, &ih, &mut peers, max).await?;
                    let (go, answer) = oneshot::channel();
                    let _ = tx.send(UploadReport::Metadata { ih, size, go }).await;
                    if answer.await != Ok(true) {
                        return Ok(());
                    }
                    std::fs::create_dir_all(&dir)
                        .and_then(|_| {
                            crate::fsutil::write_atomic(
                                &dir.join("upload.torrent"),
                                &t,
                                crate::fsutil::PRIVATE,
                            )
                        })
                        .map_err(|e| Rejected::Failed(format!("{}: {e}", dir.display())))?;
                    t
                };
                let report = tx.clone();
                sync::fetch_torrent(&torrents, &ih, Some(torrent), &dir, None, peers, |p, _| {
                    let _ = report.try_send(UploadReport::Progress {
                        ih,
                        have: p.have_bytes,
                    });
                })
                .await;
                let file = dir.join(TORRENT_NAME);
                let size = std::fs::metadata(&file).map_or(0, |m| m.len());
                check_file(&file, size, &known, container::DEFAULT_MAX_SIZE)?;
                let _ = tx.send(UploadReport::Fetched { ih, result: Ok(()) }).await;
                Ok(())
            };
            let result = tokio::select! {
                r = job => r,
                _ = cancel.cancelled() => return,
            };
            if let Err(e) = result {
                let _ = tx.send(UploadReport::Fetched { ih, result: Err(e) }).await;
            }
        });
    }

    pub(super) fn on_metadata(
        &mut self,
        ctx: &mut Ctx<'_>,
        ih: InfoHash,
        size: u64,
        go: oneshot::Sender<bool>,
    ) {
        if !self.fluff.metadata(&ih) {
            self.fetching.remove(&ih);
            let _ = go.send(false);
            return;
        }
        let group =
            (self.fluff.fetch_group(&ih)).or_else(|| self.queue.get(&ih).and_then(|e| e.source));
        let from = group.map(|g| self.source(ctx, g));
        if let Err(reason) = self.make_room(ctx, size, from) {
            self.fetching.remove(&ih);
            self.fluff.refused(&ih);
            self.refuse_upload(ctx, reason);
            let _ = go.send(false);
            return;
        }
        let now = unix_ms();
        let mut e = (self.queue.get(&ih).cloned()).unwrap_or(Entry::new(ih, None, size, now));
        e.fluff = Some(Fluff::Fetching);
        e.source = e.source.or(group);
        self.queue.insert(e);
        self.save_queue(ctx);
        self.emit_upload(ctx, &ih);
        let _ = go.send(true);
    }

    pub(super) fn on_fetched(
        &mut self,
        ctx: &mut Ctx<'_>,
        ih: InfoHash,
        result: Result<(), Rejected>,
    ) {
        self.fetching.remove(&ih);
        self.progress.remove(&ih);
        match result {
            Ok(()) => {
                let Some(e) = self.queue.get_mut(&ih) else {
                    // Its entry went meanwhile: nothing to seed; the fetch slot is free.
                    self.fluff.refused(&ih);
                    return;
                };
                e.fluff = Some(Fluff::Seeding);
                let stem_copy = std::mem::take(&mut e.stem_copy).then_some(e.id).flatten();
                if let Some(id) = stem_copy {
                    // The fetched copy replaces the stem copy.
                    let _ = std::fs::remove_dir_all(self.stem_dir(&id));
                }
                self.save_queue(ctx);
                tracing::info!("upload {} fetched and cached", hex::encode(ih));
                self.emit_upload(ctx, &ih);
                let peers = self.upload_peers(ctx);
                self.fluff.fetched(ih, unix_ms(), &peers);
                self.intake_open(&ih);
            }
            Err(Rejected::Bad(why)) => self.fluff.bad(&ih, why),
            Err(Rejected::Refused(why) | Rejected::Failed(why)) => {
                tracing::warn!("fetching upload {}: {why}", hex::encode(ih));
                self.fluff.failed(&ih);
            }
            Err(Rejected::Mismatch) => self.fluff.failed(&ih),
        }
    }

    /// Drops a fluff copy that could not be had; a stem copy of the same upload stays.
    pub(super) fn drop_fluff(&mut self, ctx: &mut Ctx<'_>, ih: &InfoHash) {
        self.remove_fluff_only(ctx, ih);
        let keep = self.queue.get(ih).is_some_and(|e| e.stem_copy);
        if !keep {
            self.queue.remove(ih);
        }
        self.save_queue(ctx);
    }

    pub(super) fn remove_fluff_only(&mut self, ctx: &mut Ctx<'_>, ih: &InfoHash) {
        if let Some(e) = self.queue.get_mut(ih)
            && e.fluff.take().is_some()
        {
            let (torrents, dir, ih) = (Arc::clone(&ctx.shared.torrents), self.fluff_dir(ih), *ih);
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
                let _ = std::fs::remove_dir_all(dir);
            });
        }
    }
}

/// Fetches the metadata of announced upload `ih` and checks it is one: a single file
/// named [`TORRENT_NAME`] of a container's size, within `max`. Returns the torrent and
/// the size.
async fn upload_metadata(
    torrents: &Torrents,
    ih: &InfoHash,
    peers: &mut watch::Receiver<Vec<SocketAddr>>,
    max: u64,
) -> Result<(bytes::Bytes, u64), Rejected> {
    let start = tokio::time::Instant::now();
    loop {
        let known = peers.borrow_and_update().clone();
        let wait = tokio::time::timeout(Duration::from_secs(5), torrents.fetch_metainfo(ih, known));
        if let Ok(Ok(crate::torrents::Metainfo {
            files,
            bytes: torrent,
        })) = wait.await
        {
            let size = match files.as_slice() {
                [f] if f.path == Path::new(TORRENT_NAME) => f.len,
                _ => {
                    return Err(Rejected::Bad(
                        "announced a torrent that is no upload".into(),
                    ));
                }
            };
            if !container::valid_size(size) || size > container::DEFAULT_MAX_SIZE {
                return Err(Rejected::Bad(format!(
                    "announced an upload of {size} bytes, which is no container size"
                )));
            }
            if size > max {
                return Err(Rejected::Failed(format!(
                    "over this node's upload size cap of {max} bytes"
                )));
            }
            return Ok((torrent, size));
        }
        if start.elapsed() > METADATA_PATIENCE {
            return Err(Rejected::Failed("no peer gave its metadata".into()));
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), peers.changed()).await;
    }
}
