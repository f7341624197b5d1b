//! The stem: hops to one peer at a time over wire connections (`upload::stem`), each a
//! resumable transfer (`upload::transfer`) checked and moved into place on arrival.

use super::*;

impl Uploads {
    /// Keeps the entry's copy of the stem state in step with the state machine.
    pub(super) fn sync_stem_state(&mut self, id: &BlobId) {
        let state = self.stem.state(id);
        let ih = self.queue.by_id(id).map(|e| e.ih);
        if let Some(ih) = ih
            && let Some(e) = self.queue.get_mut(&ih)
            && e.stem != state
            && state.is_some()
        {
            e.stem = state;
        }
    }

    /// Ready peers that take uploads and are not blacklisted (sorted): whom to tell of
    /// fluff copies.
    pub(super) fn upload_peers(&self, ctx: &mut Ctx<'_>) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = ctx
            .conns
            .iter()
            .filter(|(_, c)| c.ready && c.uploads && !ctx.blacklist.contains(c.remote.ip()))
            .map(|(k, _)| *k)
            .collect();
        peers.sort_unstable();
        peers
    }

    /// The peers a stem hop may go to (`upload::stem` says which takes what): those this
    /// node dialled itself, and of those that dialled it, the oldest connection of each
    /// address group (keys grow with each connection), so that a host opening many
    /// connections weighs as one.
    pub(super) fn stem_peers(&self, ctx: &mut Ctx<'_>) -> (Vec<PeerKey>, Vec<PeerKey>) {
        let (mut dialled, mut accepted, mut groups) = (Vec::new(), Vec::new(), HashSet::new());
        for k in self.upload_peers(ctx) {
            let Some(c) = ctx.conns.get(&k) else { continue };
            if c.outgoing {
                dialled.push(k);
            } else if groups.insert(address_group(c.remote.ip())) {
                accepted.push(k);
            }
        }
        (dialled, accepted)
    }

    pub(crate) fn next_timeout(&self) -> Option<u64> {
        [
            self.stem.next_timeout(),
            self.fluff.next_timeout(),
            self.transfers.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn on_timeout(&mut self, ctx: &mut Ctx<'_>, now: u64) {
        let (dialled, accepted) = self.stem_peers(ctx);
        self.stem.handle_timeout(now, &dialled, &accepted);
        let peers = self.upload_peers(ctx);
        self.fluff.handle_timeout(now, &peers);
        self.transfers.handle_timeout(now);
    }

    pub(crate) fn peer_up(&mut self, ctx: &mut Ctx<'_>, key: PeerKey) {
        let Some(conn) = ctx.conns.get(&key).filter(|c| c.uploads) else {
            return;
        };
        let ip = conn.remote.ip();
        self.transfers.peer_up(key, ip);
        self.fluff.peer_group(key, address_group(ip));
        self.fluff.peer_up(key);
    }

    pub(crate) fn peer_down(&mut self, key: PeerKey) {
        self.transfers.peer_down(key);
        self.fluff.peer_down(key);
    }

    pub(super) fn send_up(&self, ctx: &mut Ctx<'_>, key: PeerKey, ih: InfoHash) {
        if let Some(c) = ctx.conns.get(&key)
            && c.ready
            && c.uploads
        {
            let _ = c.tx.try_send(Message::Up { ih });
        }
    }

    /// Runs the actions of the stem, fluff and transfer machines.
    pub(crate) fn drain_actions(&mut self, ctx: &mut Ctx<'_>) {
        loop {
            if let Some(a) = self.stem.poll_action() {
                self.on_stem_action(ctx, a);
            } else if let Some(a) = self.fluff.poll_action() {
                self.on_fluff_action(ctx, a);
            } else if let Some(a) = self.transfers.poll_action() {
                self.on_transfer_action(ctx, a);
            } else {
                return;
            }
        }
    }

    pub(super) fn on_stem_action(&mut self, ctx: &mut Ctx<'_>, a: StemAction) {
        match a {
            StemAction::Send { id, to } => {
                let size = self.queue.by_id(&id).map(|e| e.size);
                match size {
                    Some(size) => self.transfers.send(to, id, size, unix_ms()),
                    None => self.stem.forget(&id),
                }
                self.sync_stem_state(&id);
                self.save_queue(ctx);
            }
            StemAction::Fluff { id } => self.fluff(ctx, id),
        }
    }

    pub(super) fn on_fluff_action(&mut self, ctx: &mut Ctx<'_>, a: FluffAction) {
        match a {
            FluffAction::Tell { ih, to } => self.send_up(ctx, to, ih),
            FluffAction::Fetch {
                ih,
                from: _,
                resume,
            } => self.fetch_upload(ctx, ih, resume),
            FluffAction::StemOver { ih } => {
                // Its fluff copy is in and checked: the stem copy's hops stop.
                if let Some(id) = self.queue.get(&ih).and_then(|e| e.id) {
                    self.stem.fluff_seen(&id);
                    self.transfers.cancel_all(&id, "fluffed");
                    self.sync_stem_state(&id);
                    self.save_queue(ctx);
                }
            }
            FluffAction::Drop { ih } => self.drop_fluff(ctx, &ih),
            FluffAction::Bad { ih, announcer, why } => {
                let why = format!("announced upload {}: {why}", hex::encode(ih));
                match announcer {
                    Some(peer) => self.upload_breach(ctx, peer, "bad-upload", why),
                    None => tracing::warn!("{why}"),
                }
            }
        }
    }

    pub(super) fn on_transfer_action(&mut self, ctx: &mut Ctx<'_>, a: TransferAction) {
        let now = unix_ms();
        match a {
            TransferAction::Send { peer, msg } => {
                ctx.conns.send(peer, Message::Blob(msg));
            }
            TransferAction::SendData { peer, id, at, len } => {
                let file = self.stem_dir(&id).join(TORRENT_NAME);
                let data = (|| {
                    let mut f = std::fs::File::open(&file)?;
                    f.seek(SeekFrom::Start(at))?;
                    let mut data = vec![0u8; len.min(BLOB_CHUNK as u64) as usize];
                    f.read_exact(&mut data)?;
                    std::io::Result::Ok(data)
                })();
                let sent = match (data, ctx.conns.get(&peer)) {
                    (Ok(data), Some(c)) => {
                        c.tx.try_send(Message::Blob(Blob::Data { id, at, data }))
                            .map_err(|_| "the connection is not keeping up")
                    }
                    (Err(e), _) => {
                        // The path stays here: the peer hears only that it failed.
                        tracing::error!("{}: {e}", file.display());
                        Err("cannot read it")
                    }
                    (_, None) => Err("the connection closed"),
                };
                if let Err(why) = sent {
                    self.transfers.cancel(peer, id, why);
                }
            }
            TransferAction::Store { peer, id, at, data } => {
                let path = self.partial(&id);
                let written = (|| {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .write(true)
                        .truncate(false)
                        .open(&path)?;
                    f.seek(SeekFrom::Start(at))?;
                    f.write_all(&data)
                })();
                match written {
                    Ok(()) => self.transfers.stored(peer, id, now),
                    Err(e) => {
                        tracing::error!("{}: {e}", path.display());
                        self.transfers.abort(peer, id, "cannot store it");
                    }
                }
            }
            TransferAction::Verify {
                peer,
                id,
                from_start,
            } => self.verify_incoming(ctx, peer, id, from_start),
            TransferAction::Delivered { peer: _, id } => {
                self.stem.sent(&id, now);
                self.sync_stem_state(&id);
                self.save_queue(ctx);
                if let Some(e) = self.queue.by_id(&id) {
                    let ih = e.ih;
                    self.emit_upload(ctx, &ih);
                }
            }
            TransferAction::SendFailed { peer, id, why } => {
                tracing::info!("stem hop to {} failed: {why}", ctx.conns.name(peer));
                self.stem.failed(&id, now);
                self.sync_stem_state(&id);
                self.save_queue(ctx);
            }
            TransferAction::Abandoned { .. } => {}
            TransferAction::Violation { peer, why } => {
                self.upload_breach(ctx, peer, "blob-breach", why);
            }
        }
    }

    /// Records a peer's breach of the upload protocol and closes its connection.
    pub(super) fn upload_breach(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerKey,
        code: &str,
        why: String,
    ) {
        let remote = ctx.conns.addrs(peer).map(|a| a.remote);
        ctx.evidence(remote, None, code, why);
        ctx.conns.close(peer);
    }

    /// A `ss_blob` message from `key`.
    pub(crate) fn on_blob(&mut self, ctx: &mut Ctx<'_>, key: PeerKey, msg: Blob) {
        if !ctx.conns.get(&key).is_some_and(|c| c.ready && c.uploads) {
            return;
        }
        // Only an offer asks what this node holds.
        let local = match &msg {
            Blob::Offer { id, size } => self.local_for_offer(ctx, key, id, *size),
            _ => Local::Whole,
        };
        self.transfers
            .handle(key, msg, move |_, _| local, unix_ms());
    }

    /// What this node says to an offer of container `id` of `size` bytes.
    pub(super) fn local_for_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: PeerKey,
        id: &BlobId,
        size: u64,
    ) -> Local {
        if !container::valid_size(size) || size > container::DEFAULT_MAX_SIZE {
            let remote = ctx.conns.addrs(key).map(|a| a.remote);
            ctx.evidence(
                remote,
                None,
                "bad-upload",
                format!("offered an upload of {size} bytes, which is no container size"),
            );
            return Local::Refuse("not an upload container".into());
        }
        if size > self.cfg.max_size {
            return Local::Refuse(format!(
                "over this node's upload size cap of {} bytes",
                self.cfg.max_size
            ));
        }
        if let Some(e) = self.queue.by_id(id) {
            // Held already. If this node handed it on, the walk looped back here: it
            // goes on from here, as if it had just arrived.
            let ih = e.ih;
            if e.stem_copy && e.receipted_ms.is_none() && self.stem.received(*id, key, unix_ms()) {
                self.sync_stem_state(id);
                self.save_queue(ctx);
                self.emit_upload(ctx, &ih);
            }
            return Local::Whole;
        }
        let partial = std::fs::metadata(self.partial(id))
            .map_or(0, |m| m.len())
            .min(size);
        let from = self.source_of(ctx, key);
        match self.make_room(ctx, size - partial, from) {
            Ok(()) => {
                if partial > 0 {
                    tracing::info!("resuming an upload transfer at byte {partial} of {size}");
                }
                Local::Partial(partial)
            }
            Err(reason) => {
                self.refuse_upload(ctx, reason.clone());
                Local::Refuse(reason)
            }
        }
    }

    /// A whole container arrived: hash it, check it, move it into place (off the core
    /// task); then [`Core::on_verified`].
    pub(super) fn verify_incoming(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerKey,
        id: BlobId,
        from_start: bool,
    ) {
        let partial = self.partial(&id);
        let target = self.stem_dir(&id);
        let known = self.intake_kids(ctx);
        let max = self.cfg.max_size;
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let size = std::fs::metadata(&partial)
                    .map_err(|e| Rejected::Failed(format!("{}: {e}", partial.display())))?
                    .len();
                let sha = sha256_file(&partial)
                    .map_err(|e| Rejected::Failed(format!("{}: {e}", partial.display())))?;
                if sha != id {
                    let _ = std::fs::remove_file(&partial);
                    return Err(Rejected::Mismatch);
                }
                if let Err(e) = check_file(&partial, size, &known, max) {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
                std::fs::File::open(&partial)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Rejected::Failed(e.to_string()))?;
                commit_container(&partial, &target).map_err(Rejected::Failed)
            })();
            let _ = tx.blocking_send(UploadReport::Verified {
                peer,
                id,
                from_start,
                result,
            });
        });
    }

    pub(super) fn on_verified(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerKey,
        id: BlobId,
        from_start: bool,
        result: Result<InfoHash, Rejected>,
    ) {
        let now = unix_ms();
        let ih = match result {
            Ok(ih) => ih,
            Err(Rejected::Bad(why)) => {
                self.transfers
                    .verified(peer, id, Err("not a valid upload container".into()));
                self.upload_breach(
                    ctx,
                    peer,
                    "bad-upload",
                    format!("sent an upload that is {why}"),
                );
                return;
            }
            Err(Rejected::Mismatch) => {
                self.transfers
                    .verified(peer, id, Err("does not hash to its id".into()));
                // Bytes that came from another peer before a resume are not this one's.
                if from_start {
                    let why = "sent an upload that does not hash to the id it offered";
                    self.upload_breach(ctx, peer, "bad-upload", why.into());
                }
                return;
            }
            Err(Rejected::Refused(why)) => {
                self.transfers.verified(peer, id, Err(why));
                return;
            }
            Err(Rejected::Failed(why)) => {
                tracing::error!("keeping an upload that arrived: {why}");
                self.transfers
                    .verified(peer, id, Err("cannot store it".into()));
                return;
            }
        };
        if self.fluff.is_receipted(&ih) {
            // The intake has it already: nothing to carry.
            let _ = std::fs::remove_dir_all(self.stem_dir(&id));
            self.transfers.verified(peer, id, Ok(()));
            return;
        }
        let size = std::fs::metadata(self.stem_dir(&id).join(TORRENT_NAME)).map_or(0, |m| m.len());
        self.stem.received(id, peer, now);
        self.fluff.stem_copy(ih, now);
        let existing = self.queue.get(&ih).cloned();
        let mut e = existing.unwrap_or(Entry::new(ih, Some(id), size, now));
        (e.id, e.stem_copy, e.stem) = (Some(id), true, self.stem.state(&id));
        if e.source.is_none() {
            e.source = self.source_of(ctx, peer).map(|s| s.group);
        }
        self.queue.insert(e);
        // On disk and in the queue: now the sender may let go.
        self.save_queue(ctx);
        self.transfers.verified(peer, id, Ok(()));
        log_held(&ih, size);
        self.emit_upload(ctx, &ih);
        self.intake_open(&ih);
    }
}
