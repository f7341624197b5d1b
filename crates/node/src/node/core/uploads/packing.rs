//! The local user's uploads: packing files into a container sealed to the intake key,
//! and the queue as the control API lists it.

use super::*;

impl Uploads {
    pub(crate) fn on_command(&mut self, ctx: &mut Ctx<'_>, cmd: UploadCommand) {
        match cmd {
            UploadCommand::List { reply } => {
                let _ = reply.send(self.upload_list());
            }
            UploadCommand::Queue {
                inputs,
                cleanup,
                reply,
            } => {
                let result = self.start_packing(ctx, inputs, cleanup);
                let _ = reply.send(result);
            }
        }
    }

    pub(super) fn upload_list(&self) -> UploadList {
        let incoming: HashMap<&BlobId, u64> = self
            .transfers
            .incoming()
            .map(|(_, id, have, _)| (id, have))
            .collect();
        let entries = self
            .queue
            .iter()
            .map(|e| {
                let own = self.own.get(&e.ih);
                EntryView {
                    ih: hex::encode(e.ih),
                    size: e.size,
                    state: e.state(),
                    added_ms: e.added_ms,
                    next_hop_ms: match e.stem {
                        Some(StemState::Waiting { until }) if e.receipted_ms.is_none() => {
                            Some(until)
                        }
                        _ => None,
                    },
                    receipted_ms: e.receipted_ms,
                    have_bytes: self
                        .progress
                        .get(&e.ih)
                        .copied()
                        .or_else(|| e.id.as_ref().and_then(|id| incoming.get(id).copied())),
                    originated: own.is_some(),
                    token: own.map(|m| m.token.clone()),
                    label: own.map(|m| m.label.clone()),
                }
            })
            .collect();
        UploadList {
            quota_bytes: self.cfg.quota,
            used_bytes: self.queue.used() + self.reserved(),
            max_size: self.cfg.max_size,
            refused: self.refused,
            last_refusal: self.last_refusal.clone(),
            packing: self
                .packing
                .values()
                .map(|p| PackingView {
                    packed_bytes: p.done.load(Ordering::Relaxed),
                    ..p.view.clone()
                })
                .collect(),
            entries,
        }
    }

    pub(super) fn start_packing(
        &mut self,
        ctx: &mut Ctx<'_>,
        inputs: Vec<PathBuf>,
        cleanup: Option<PathBuf>,
    ) -> Result<PackingView, String> {
        let fail = |e: String| {
            if let Some(c) = &cleanup {
                let _ = std::fs::remove_dir_all(c);
            }
            Err(e)
        };
        if inputs.is_empty() {
            return fail("nothing to upload".into());
        }
        let Some(key) = crate::upload::intake_key(ctx.gossip.acceptor()).cloned() else {
            return fail("this network has no intake key to seal uploads to".into());
        };
        let mut input_bytes = 0;
        let mut names = Vec::new();
        for p in &inputs {
            let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()));
            let meta = match meta {
                Ok(m) => m,
                Err(e) => return fail(e),
            };
            if meta.is_dir() {
                match crate::metainfo_file::list_files(p) {
                    Ok(files) => input_bytes += files.iter().map(|f| f.length).sum::<u64>(),
                    Err(e) => return fail(e.to_string()),
                }
            } else if meta.is_file() {
                input_bytes += meta.len();
            } else {
                return fail(format!("{}: neither a file nor a folder", p.display()));
            }
            names.push(p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ));
        }
        // The smallest container must fit: refuse at once rather than after packing.
        if let Err(reason) =
            self.make_room(ctx, container::container_size(container::MIN_BUCKET), None)
        {
            self.refuse_upload(ctx, reason.clone());
            return fail(reason);
        }
        let token = hex::encode(rand::random::<[u8; 8]>());
        let done = Arc::new(AtomicU64::new(0));
        let view = PackingView {
            token: token.clone(),
            label: names.join(", "),
            input_bytes,
            packed_bytes: 0,
            error: None,
        };
        self.packing.insert(
            token.clone(),
            Packing {
                view: view.clone(),
                done: Arc::clone(&done),
            },
        );
        let tmp = self.dir.join("packing").join(format!("{token}.ssu"));
        let stem_root = self.dir.join("stem");
        let limits = container::Limits {
            max_size: self.cfg.max_size,
            ..container::Limits::default()
        };
        let tx = self.tx.clone();
        let report_token = token.clone();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let file = crate::fsutil::open_new(&tmp, crate::fsutil::PRIVATE)
                    .map_err(|e| format!("{}: {e}", tmp.display()))?;
                let mut out = Hashing {
                    inner: std::io::BufWriter::new(file),
                    sha: Sha256::new(),
                };
                let packed =
                    container::pack_with_progress(&inputs, &key, &mut out, &limits, &mut |n| {
                        done.store(n, Ordering::Relaxed)
                    });
                let packed = match packed {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(e.to_string());
                    }
                };
                let file = out.inner.into_inner().map_err(|e| e.to_string())?;
                file.sync_all().map_err(|e| e.to_string())?;
                let id: BlobId = out.sha.finalize().into();
                let ih = commit_container(&tmp, &stem_root.join(hex::encode(id)));
                let _ = std::fs::remove_file(&tmp);
                Ok((id, ih?, packed.size))
            })();
            if let Some(c) = cleanup {
                let _ = std::fs::remove_dir_all(c);
            }
            let _ = tx.blocking_send(UploadReport::Packed {
                token: report_token,
                result,
            });
        });
        Ok(view)
    }

    pub(super) fn on_packed(
        &mut self,
        ctx: &mut Ctx<'_>,
        token: String,
        result: Result<(BlobId, InfoHash, u64), String>,
    ) {
        let Some(mut packing) = self.packing.remove(&token) else {
            return;
        };
        let (id, ih, size) = match result {
            Ok(r) => r,
            Err(e) => {
                packing.view.error = Some(e);
                self.keep_failed_packing(token, packing);
                return;
            }
        };
        if let Err(reason) = self.make_room(ctx, size, None) {
            let _ = std::fs::remove_dir_all(self.stem_dir(&id));
            packing.view.error = Some(reason.clone());
            self.keep_failed_packing(token, packing);
            self.refuse_upload(ctx, reason);
            return;
        }
        let now = unix_ms();
        self.own.insert(
            &ih,
            OwnMark {
                token,
                label: packing.view.label,
                added_ms: now,
            },
        );
        if let Err(e) = self.own.save(&self.dir.join("own.json")) {
            tracing::error!("saving own.json: {e}");
        }
        self.stem.originate(id, now);
        self.fluff.stem_copy(ih, now);
        let stem = self.stem.state(&id);
        self.queue.insert(Entry::on_stem(ih, id, size, stem, now));
        self.save_queue(ctx);
        // Logged and announced exactly like an upload received on the stem.
        log_held(&ih, size);
        self.emit_upload(ctx, &ih);
        self.intake_open(&ih);
    }

    /// A failed packing stays listed (with its error) so the user following it sees why.
    pub(super) fn keep_failed_packing(&mut self, token: String, packing: Packing) {
        let failed: Vec<String> = self
            .packing
            .iter()
            .filter(|(_, p)| p.view.error.is_some())
            .map(|(t, _)| t.clone())
            .collect();
        if failed.len() >= 32 {
            self.packing.remove(&failed[0]);
        }
        self.packing.insert(token, packing);
    }
}

/// SHA-256 of everything written through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
