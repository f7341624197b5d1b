//! What this node keeps: the choice run (`documents::choice`) within the quota, the
//! fetches it starts, evictions (always with a reason), and the fetches' reports.

use super::*;

impl Archive {
    pub(super) fn plan_documents(&mut self, ctx: &mut Ctx<'_>) {
        let cands: Vec<Candidate> = self
            .docs
            .values()
            .map(|e| Candidate {
                id: e.doc.id,
                size: e.doc.meta.size,
                time: e.doc.time,
                seen: self.seen(&e.doc.meta.ih),
                local: e.local,
                unusable: e.unusable.is_some(),
            })
            .collect();
        let plan = choice::plan(&cands, self.quota, MAX_FETCHING);
        if plan == choice::Plan::default() {
            return;
        }
        for (id, why) in plan.evict {
            self.evict(ctx, id, why);
        }
        if let Some(id) = plan.fetch {
            self.start_fetch(ctx, id);
        }
        self.announce_documents(ctx);
        self.refresh_documents(ctx, true);
    }

    pub(super) fn start_fetch(&mut self, ctx: &mut Ctx<'_>, id: u32) {
        let Some(e) = self.docs.get(&id) else {
            return;
        };
        let doc = e.doc.clone();
        let token = ctx.shared.cancel.child_token();
        let job = fetch_document(
            Arc::clone(&ctx.shared.torrents),
            doc.clone(),
            self.content_dir(&doc),
            ctx.bt_peers.subscribe(),
            self.tx.clone(),
        );
        let (tx, cancel) = (self.tx.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                report = job => { let _ = tx.send(report).await; }
                _ = cancel.cancelled() => {}
            }
        });
        tracing::info!(
            "fetching document {} v{} ({}, {} bytes)",
            doc.id,
            doc.version,
            doc.meta.name,
            doc.meta.size
        );
        self.doc_event(ctx, &doc, "fetching", None);
        if let Some(e) = self.docs.get_mut(&id) {
            e.local = Local::Fetching;
            e.have = 0;
            e.fetch = Some(token);
        }
    }

    /// Gives up this node's copy of document `id` (held or being fetched), saying why.
    /// Forgets document `id` at `version` altogether (a rotation dropped its record).
    pub(crate) fn evict_version(&mut self, ctx: &mut Ctx<'_>, id: u32, version: u32) {
        if self.docs.get(&id).is_none_or(|e| e.doc.version != version) {
            return;
        }
        self.evict(ctx, id, Why::Withdrawn);
        self.docs.remove(&id);
        self.rebuild_index();
        self.refresh_documents(ctx, true);
    }

    pub(super) fn evict(&mut self, ctx: &mut Ctx<'_>, id: u32, why: Why) {
        let Some(e) = self.docs.get_mut(&id) else {
            return;
        };
        let was = std::mem::replace(&mut e.local, Local::Absent);
        if let Some(t) = e.fetch.take() {
            t.cancel();
        }
        e.have = 0;
        e.seeding = false;
        e.file = None;
        let doc = e.doc.clone();
        if was == Local::Absent {
            return;
        }
        let dir = self.doc_dir(id);
        let ih = doc.meta.ih;
        let torrents = Arc::clone(&ctx.shared.torrents);
        if was == Local::Own {
            // The publisher's own folder is theirs: stop seeding, keep the files.
            let _ = std::fs::remove_file(dir.join("own"));
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
            });
        } else {
            // The marker goes first: a document is never claimed after its file is gone.
            let _ = std::fs::remove_file(dir.join("held"));
            let content = self.content_dir(&doc);
            let metainfo = self.metainfo_path(&doc);
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = std::fs::remove_dir_all(&content);
                    let _ = std::fs::remove_file(&metainfo);
                })
                .await;
            });
        }
        let reason = why.to_string();
        tracing::info!(
            "evicted document {} v{} ({}, {} bytes): {reason}",
            doc.id,
            doc.version,
            doc.meta.name,
            doc.meta.size
        );
        if self.evicted.len() >= EVICTIONS_KEPT {
            self.evicted.pop_front();
        }
        self.evicted.push_back(Eviction {
            at: unix_ms() / 1000,
            id,
            version: doc.version,
            name: doc.meta.name.clone(),
            size: doc.meta.size,
            reason: reason.clone(),
            why,
        });
        self.doc_event(ctx, &doc, "evicted", Some(reason));
    }

    pub(crate) fn on_report(&mut self, ctx: &mut Ctx<'_>, report: DocReport) {
        match report {
            DocReport::Progress { id, version, have } => {
                if let Some(e) = self.docs.get_mut(&id)
                    && e.doc.version == version
                    && e.local == Local::Fetching
                {
                    e.have = have;
                    self.refresh_documents(ctx, false);
                }
            }
            DocReport::Done {
                id,
                version,
                metainfo,
            } => {
                let Some(e) = self.docs.get(&id) else {
                    return;
                };
                if e.doc.version != version || e.local != Local::Fetching {
                    return;
                }
                let doc = e.doc.clone();
                if let Some(m) = metainfo
                    && let Err(e) = crate::fsutil::write_atomic(
                        &self.metainfo_path(&doc),
                        &m,
                        crate::fsutil::PUBLIC,
                    )
                {
                    tracing::warn!("saving the metainfo of document {id}: {e}");
                }
                let marker = format!("{} {}", doc.version, hex::encode(doc.meta.ih));
                let path = self.doc_dir(id).join("held");
                if let Err(e) =
                    crate::fsutil::write_atomic(&path, marker.as_bytes(), crate::fsutil::PUBLIC)
                {
                    tracing::warn!("{}: {e}", path.display());
                }
                let file = self.content_dir(&doc).join(&doc.meta.name);
                if let Some(e) = self.docs.get_mut(&id) {
                    e.local = Local::Held;
                    e.fetch = None;
                    e.have = doc.meta.size;
                    e.file = Some(file);
                }
                tracing::info!("holding document {id} v{version} ({})", doc.meta.name);
                self.doc_event(ctx, &doc, "held", None);
                self.schedule();
                self.announce_documents(ctx);
                self.refresh_documents(ctx, true);
            }
            DocReport::Unusable { id, version, why } => {
                let Some(e) = self.docs.get_mut(&id) else {
                    return;
                };
                if e.doc.version != version {
                    return;
                }
                e.local = Local::Absent;
                e.fetch = None;
                e.have = 0;
                e.unusable = Some(why.clone());
                let doc = e.doc.clone();
                let content = self.content_dir(&doc);
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(content));
                let name =
                    SystemName::new(ctx.cfg.bundle.network(), kind::AUTHORIZED_FILE, id, version);
                ctx.evidence(None, Some(name), "bad-document", why.clone());
                self.doc_event(ctx, &doc, "unusable", Some(why));
                self.schedule();
                self.announce_documents(ctx);
                self.refresh_documents(ctx, true);
            }
        }
    }
}

/// Fetches `doc` into `dir` and checks that the torrent is the one file the record
/// describes (its name and size); the info hash was checked by the fetch itself.
async fn fetch_document(
    torrents: Arc<Torrents>,
    doc: Document,
    dir: PathBuf,
    peers: watch::Receiver<Vec<SocketAddr>>,
    tx: mpsc::Sender<DocReport>,
) -> DocReport {
    let (id, version) = (doc.id, doc.version);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!("{}: {e}", dir.display());
    }
    let progress = |p: crate::torrents::Progress, _: Option<String>| {
        let _ = tx.try_send(DocReport::Progress {
            id,
            version,
            have: p.have_bytes,
        });
    };
    sync::fetch_torrent(&torrents, &doc.meta.ih, None, &dir, None, peers, progress).await;
    let file = dir.join(&doc.meta.name);
    let entries = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    let ok = std::fs::symlink_metadata(&file)
        .is_ok_and(|m| m.is_file() && m.len() == doc.meta.size)
        && entries == 1;
    if !ok {
        let _ = torrents.remove(&doc.meta.ih).await;
        return DocReport::Unusable {
            id,
            version,
            why: format!(
                "its torrent is not the one file {:?} of {} bytes the record describes",
                doc.meta.name, doc.meta.size
            ),
        };
    }
    DocReport::Done {
        id,
        version,
        metainfo: torrents.metainfo(&doc.meta.ih),
    }
}
