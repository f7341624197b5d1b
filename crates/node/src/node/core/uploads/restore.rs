//! Start: the queue loaded and every upload picked up where it was; orphaned copies
//! taken back, stale partial transfers removed.

use super::*;

impl Uploads {
    /// Loads the queue and picks every upload up where it was.
    pub(crate) async fn restore(&mut self, ctx: &mut Ctx<'_>) {
        let dir = self.dir.clone();
        for sub in ["stem", "fluff", "incoming", "packing", "receipts"] {
            if let Err(e) = crate::fsutil::create_dir(&dir.join(sub), 0o700) {
                tracing::error!("{}: {e}", dir.join(sub).display());
            }
        }
        let _ = crate::fsutil::sweep_staging(&dir.join("stem"));
        let _ = crate::fsutil::sweep_staging(&dir.join("fluff"));
        // Half-packed containers and half-received browser files are of no use.
        if let Ok(rd) = std::fs::read_dir(dir.join("packing")) {
            for e in rd.flatten() {
                let _ =
                    std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        let queue_path = dir.join("queue.json");
        self.queue = match Queue::load(&queue_path) {
            Ok(q) => q,
            Err(e) => {
                // Keep the bad file for a look; rebuild from the copies on disk.
                tracing::error!("{e}; rebuilding the upload queue from the files");
                let _ = std::fs::rename(&queue_path, dir.join("queue.json.bad"));
                Queue::default()
            }
        };
        self.own = OwnMarks::load(&dir.join("own.json"));
        let intake_file = self.intake_file();
        if let Some(intake) = &mut self.intake {
            // An upload being opened when the intake stopped is opened again.
            let _ = crate::fsutil::sweep_staging(&intake.cfg.out);
            intake.held = std::fs::read(&intake_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
                .unwrap_or_default()
                .iter()
                .filter_map(|h| hex::decode(h).ok().and_then(|b| b.try_into().ok()))
                .collect();
        }
        self.adopt_orphans();
        self.sweep_partials();
        let now = unix_ms();
        let entries: Vec<Entry> = self.queue.iter().cloned().collect();
        for e in entries {
            if let (Some(id), Some(state)) = (e.id, e.stem)
                && e.receipted_ms.is_none()
            {
                self.stem.restore(id, state, now);
                self.sync_stem_state(&id);
            }
            // A fetch under way goes on (the machine asks for it).
            let phase = match e.fluff {
                Some(Fluff::Seeding) => Phase::Seeding,
                Some(Fluff::Fetching) => Phase::Fetching { from: None },
                None => Phase::Heard,
            };
            let receipted = e.receipted_ms.is_some();
            (self.fluff).restore(e.ih, phase, e.stem_copy, receipted, e.added_ms);
            if e.fluff == Some(Fluff::Seeding) && !receipted {
                self.seed(ctx, e.ih, false);
            }
            if e.receipted_ms.is_none() {
                self.intake_open(&e.ih);
            }
        }
        self.save_queue(ctx);
    }

    /// Copies on disk with no entry (a kill between moving a container into place and
    /// writing the queue) are taken back: a stem copy waits for its next hop again, a
    /// fluff copy is fetched (checked) again. Entries whose files vanished are dropped.
    pub(super) fn adopt_orphans(&mut self) {
        let now = unix_ms();
        let dir = self.dir.clone();
        let hexes = |sub: &str| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        };
        for (name, path) in hexes("stem") {
            let Some(id) = hex::decode(&name)
                .ok()
                .and_then(|b| BlobId::try_from(b).ok())
            else {
                continue;
            };
            if self.queue.by_id(&id).is_some() {
                continue;
            }
            let ih = std::fs::read(path.join("upload.torrent"))
                .ok()
                .and_then(|t| crate::metainfo_file::info_hash_of(&t).ok());
            let size = std::fs::metadata(path.join(TORRENT_NAME)).map(|m| m.len());
            match (ih, size) {
                (Some(ih), Ok(size)) => {
                    tracing::info!("upload {}: taken back into the queue", hex::encode(ih));
                    let waiting = Some(StemState::Waiting { until: now });
                    let e = Entry::on_stem(ih, id, size, waiting, now);
                    self.queue.insert(e);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        for (name, path) in hexes("fluff") {
            let Some(ih) = hex::decode(&name)
                .ok()
                .and_then(|b| InfoHash::try_from(b).ok())
            else {
                continue;
            };
            if self.queue.get(&ih).is_some_and(|e| e.fluff.is_some()) {
                continue;
            }
            match std::fs::read(path.join("upload.torrent")) {
                Ok(t) if crate::metainfo_file::info_hash_of(&t).ok() == Some(ih) => {
                    let size = std::fs::metadata(path.join(TORRENT_NAME)).map_or(0, |m| m.len());
                    let e = self.queue.get(&ih).cloned();
                    let mut e = e.unwrap_or(Entry::new(ih, None, size, now));
                    e.fluff = Some(Fluff::Fetching);
                    self.queue.insert(e);
                }
                _ => {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        let gone: Vec<InfoHash> = self
            .queue
            .iter()
            .filter(|e| {
                let stem_gone = e.stem_copy && !e.id.is_some_and(|id| self.stem_dir(&id).exists());
                let fluff_gone = e.fluff.is_some() && !self.fluff_dir(&e.ih).exists();
                stem_gone || fluff_gone
            })
            .map(|e| e.ih)
            .collect();
        for ih in gone {
            tracing::warn!("upload {}: its files are gone; dropped", hex::encode(ih));
            self.queue.remove(&ih);
        }
        if self.own.retain(&self.queue) {
            let _ = self.own.save(&self.dir.join("own.json"));
        }
    }

    /// Removes partial transfers nobody resumed for a week.
    pub(super) fn sweep_partials(&self) {
        let Ok(rd) = std::fs::read_dir(self.dir.join("incoming")) else {
            return;
        };
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PARTIAL_MAX_AGE);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
