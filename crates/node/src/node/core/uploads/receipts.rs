//! Receipts: the intake's signed list of uploads it holds; what it lists stops
//! travelling, and kept copies go after `keep_receipted`.

use super::*;

impl Uploads {
    /// A newer intake receipt was accepted: free what it lists.
    pub(crate) fn on_receipts(&mut self, ctx: &mut Ctx<'_>, record: &Record) {
        let version = record.name.version();
        if version <= self.receipts_version {
            return;
        }
        match &record.payload {
            Payload::Body(body) => match Receipts::decode(body) {
                Ok(r) => self.apply_receipts(ctx, version, r),
                Err(e) => ctx.evidence(
                    None,
                    Some(record.name),
                    "bad-receipts",
                    format!("signed intake receipts that cannot be read: {e}"),
                ),
            },
            Payload::Torrent { ih, size } => {
                if *size > receipt::MAX_RECEIPTS_BYTES {
                    ctx.evidence(
                        None,
                        Some(record.name),
                        "bad-receipts",
                        format!("signed intake receipts of {size} bytes are over the limit"),
                    );
                    return;
                }
                if let Some((_, old)) = self.receipts_fetch.take() {
                    old.cancel();
                }
                let cancel = ctx.shared.cancel.child_token();
                self.receipts_fetch = Some((version, cancel.clone()));
                let dir = self.dir.join("receipts").join(hex::encode(ih));
                let fetch = ctx.fetch_single_file(*ih, *size, dir);
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = tokio::select! {
                        r = fetch => r,
                        _ = cancel.cancelled() => return,
                    };
                    let result =
                        result.and_then(|b| Receipts::decode(&b).map_err(|e| e.to_string()));
                    let _ = tx
                        .send(UploadReport::ReceiptsFetched { version, result })
                        .await;
                });
            }
        }
    }

    pub(super) fn apply_receipts(&mut self, ctx: &mut Ctx<'_>, version: u32, receipts: Receipts) {
        if version <= self.receipts_version {
            return;
        }
        self.receipts_version = version;
        self.receipts_fetch = None;
        self.fluff.receipts(receipts.ihs);
        let now = unix_ms();
        let listed: Vec<InfoHash> = self
            .queue
            .iter()
            .filter(|e| e.receipted_ms.is_none() && self.fluff.is_receipted(&e.ih))
            .map(|e| e.ih)
            .collect();
        for ih in &listed {
            let Some(e) = self.queue.get_mut(ih) else {
                continue;
            };
            e.receipted_ms = Some(now);
            if let Some(id) = e.id {
                self.stem.forget(&id);
                self.transfers.cancel_all(&id, "receipted");
            }
            if let Some(c) = self.fetching.remove(ih) {
                c.cancel();
                if let Some(e) = self.queue.get_mut(ih) {
                    e.fluff = e.fluff.filter(|f| *f == Fluff::Seeding);
                }
                let _ = std::fs::remove_dir_all(self.fluff_dir(ih));
            }
            // Seeding stops: the intake has it. The files go now, or after
            // `keep_receipted` (first to go when room is needed).
            let torrents = Arc::clone(&ctx.shared.torrents);
            let ih2 = *ih;
            tokio::spawn(async move {
                let _ = torrents.remove(&ih2).await;
            });
            if self.cfg.keep_receipted.is_zero() {
                self.remove_copies(ctx, ih);
            }
            tracing::info!("upload {} receipted by the intake", hex::encode(ih));
        }
        self.prune_receipted(ctx);
        self.save_queue(ctx);
        for ih in &listed {
            self.emit_upload(ctx, ih);
        }
    }

    /// Removes kept copies whose time is up, and forgets receipted entries long gone.
    pub(super) fn prune_receipted(&mut self, ctx: &mut Ctx<'_>) {
        let now = unix_ms();
        let keep = self.cfg.keep_receipted.as_millis() as u64;
        let expired: Vec<InfoHash> = self
            .queue
            .iter()
            .filter(|e| e.receipted_ms.is_some_and(|t| now >= t + keep) && e.disk_bytes() > 0)
            .map(|e| e.ih)
            .collect();
        for ih in expired {
            self.remove_copies(ctx, &ih);
        }
        let old: Vec<InfoHash> = self
            .queue
            .iter()
            .filter(|e| {
                e.receipted_ms
                    .is_some_and(|t| now >= t + keep.max(RECEIPTED_LISTED_MS))
                    && e.disk_bytes() == 0
            })
            .map(|e| e.ih)
            .collect();
        for ih in old {
            self.queue.remove(&ih);
            self.fluff.forget(&ih);
        }
        if self.own.retain(&self.queue) {
            let _ = self.own.save(&self.dir.join("own.json"));
        }
    }

    /// Every minute: kept receipted copies whose time is up go; the intake publishes.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        if !self.cfg.keep_receipted.is_zero() {
            self.prune_receipted(ctx);
            self.save_queue(ctx);
        }
        self.publish_receipts(ctx);
        self.intake_open_waiting(true);
    }
}
