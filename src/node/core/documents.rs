//! The archive of published documents on this node: learning every document record,
//! fetching and seeding the documents `documents::choice` picks within the quota,
//! evicting (always with a reason), telling wire peers what it keeps (`ss_docs`), and
//! the snapshot the `/documents/` pages and the control API read.
//!
//! ```text
//! <net>/documents/quota               the volunteer's quota in bytes
//! <net>/documents/<id>/v<N>/<name>    a document's file (librqbit's output folder)
//! <net>/documents/<id>/v<N>.torrent   its metainfo, to seed it again after a restart
//! <net>/documents/<id>/held           "<N> <ih>": v<N> is complete and verified
//! <net>/documents/<id>/own            "<N> <ih> <published folder>": published here
//! ```
//!
//! The marker is written after the file verified and removed before the file is, so
//! whatever moment the process dies at, a marker names a complete document.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use rand::Rng;

use super::*;
use crate::documents::Document;
use crate::documents::choice::{self, Candidate, Local, Why};
use crate::documents::search::SearchIndex;
use crate::documents::view::{DocumentStatus, DocumentsView, Eviction, Holder};
use crate::node::status::DocumentsSummary;
use crate::wire::DocClaims;
use crate::wire::message::MAX_DOC_CLAIMS;

/// The quota when the volunteer set none.
pub const DEFAULT_QUOTA: u64 = 10 * 1024 * 1024 * 1024;
/// Fetches running at once: one change at a time keeps the swarm's choices apart.
const MAX_FETCHING: usize = 1;
/// A change is acted on after a random delay in this range (ms), so that nodes hearing
/// of it together decide one after another, each seeing the others' choices.
const PLAN_DELAY_MS: (u64, u64) = (300, 2500);
/// Choices are also looked at again this often (ms), with the same jitter.
const REPLAN_MS: u64 = 15_000;
/// Evictions remembered for the status.
const EVICTIONS_KEPT: usize = 32;
/// Peers named in the magnet links of the API.
const MAGNET_PEERS: usize = 8;

/// What a document fetch reports.
pub(super) enum DocReport {
    Progress {
        id: u32,
        version: u32,
        have: u64,
    },
    Done {
        id: u32,
        version: u32,
        metainfo: Option<bytes::Bytes>,
    },
    Unusable {
        id: u32,
        version: u32,
        why: String,
    },
}

struct Entry {
    doc: Document,
    local: Local,
    unusable: Option<String>,
    have: u64,
    /// Uploaded in earlier sessions, and the current session's count.
    uploaded: (u64, u64),
    seeding: bool,
    fetch: Option<CancellationToken>,
    /// The complete file, when held or own.
    file: Option<PathBuf>,
}

/// The node's archive state, owned by the core.
pub(super) struct Archive {
    root: PathBuf,
    quota: u64,
    docs: BTreeMap<u32, Entry>,
    claims: HashMap<PeerKey, DocClaims>,
    evicted: VecDeque<Eviction>,
    index: Arc<SearchIndex>,
    pub(super) tx: mpsc::Sender<DocReport>,
    pub(super) rx: mpsc::Receiver<DocReport>,
    /// When to run the choice next (unix ms).
    plan_at: Option<u64>,
    next_replan: u64,
    announced: Option<DocClaims>,
    view_at: u64,
    /// Peers' claims changed since the last rebuild of the view.
    view_stale: bool,
}

impl Archive {
    /// The archive of the network stored under `net_root`; `quota` overrides (and
    /// replaces) the volunteer's stored setting.
    pub(super) fn new(net_root: &Path, quota: Option<u64>) -> Self {
        let root = net_root.join("documents");
        if let Err(e) = crate::fsutil::create_dir(&root, 0o755) {
            tracing::warn!("{}: {e}", root.display());
        }
        let stored = std::fs::read_to_string(root.join("quota"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        let quota = quota.or(stored).unwrap_or(DEFAULT_QUOTA);
        let (tx, rx) = mpsc::channel(256);
        let mut a = Archive {
            root,
            quota,
            docs: BTreeMap::new(),
            claims: HashMap::new(),
            evicted: VecDeque::new(),
            index: Arc::default(),
            tx,
            rx,
            plan_at: None,
            next_replan: unix_ms() + REPLAN_MS,
            announced: None,
            view_at: 0,
            view_stale: false,
        };
        a.save_quota();
        a
    }

    fn save_quota(&mut self) {
        let path = self.root.join("quota");
        if let Err(e) = crate::fsutil::write_atomic(
            &path,
            self.quota.to_string().as_bytes(),
            crate::fsutil::PUBLIC,
        ) {
            tracing::warn!("{}: {e}", path.display());
        }
    }

    fn doc_dir(&self, id: u32) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn content_dir(&self, doc: &Document) -> PathBuf {
        self.doc_dir(doc.id).join(format!("v{}", doc.version))
    }

    fn metainfo_path(&self, doc: &Document) -> PathBuf {
        self.doc_dir(doc.id)
            .join(format!("v{}.torrent", doc.version))
    }

    /// Acts on the choice soon, after a random delay (earlier if already due sooner).
    fn schedule(&mut self) {
        let at = unix_ms() + rand::thread_rng().gen_range(PLAN_DELAY_MS.0..PLAN_DELAY_MS.1);
        if self.plan_at.is_none_or(|p| p > at) {
            self.plan_at = Some(at);
        }
    }

    fn rebuild_index(&mut self) {
        let mut ix = SearchIndex::default();
        for e in self.docs.values() {
            let m = &e.doc.meta;
            ix.add(e.doc.id, e.doc.time, &m.title, &m.name, &m.description);
        }
        self.index = Arc::new(ix);
    }
}

/// Reads a marker: `<version> <ih hex> [rest]`.
fn read_marker(path: &Path) -> Option<(u32, [u8; 20], String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.trim_end_matches('\n').splitn(3, ' ');
    let version = parts.next()?.parse().ok()?;
    let ih = hex::decode(parts.next()?).ok()?.try_into().ok()?;
    Some((version, ih, parts.next().unwrap_or("").to_string()))
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

impl Core {
    /// Takes up the documents of the records held: seeds what is complete on disk.
    pub(super) async fn restore_documents(&mut self) {
        let records: Vec<Record> = self
            .gossip
            .held_names()
            .into_iter()
            .filter(|n| n.class() == ObjectClass::Document)
            .filter_map(|n| self.gossip.held(n.slot()).map(|(r, _)| r.clone()))
            .collect();
        for record in records {
            let Ok(doc) = Document::from_record(&record) else {
                continue;
            };
            let dir = self.archive.doc_dir(doc.id);
            let mut entry = self.new_entry(doc.clone());
            if let Some((v, ih, published)) = read_marker(&dir.join("own"))
                && v == doc.version
                && ih == doc.meta.ih
            {
                let published = PathBuf::from(published);
                if let Err(e) = seed_local(&self.shared.torrents, &ih, &published).await {
                    tracing::warn!(
                        "seeding document {} from {}: {e}",
                        doc.id,
                        published.display()
                    );
                } else {
                    self.local_payloads.insert(ih, published.clone());
                    entry.local = Local::Own;
                    entry.file = Some(
                        published
                            .join(crate::publisher::PAYLOAD_DIR)
                            .join(&doc.meta.name),
                    );
                }
            } else if let Some((v, ih, _)) = read_marker(&dir.join("held"))
                && v == doc.version
                && ih == doc.meta.ih
            {
                let content = self.archive.content_dir(&doc);
                let metainfo = std::fs::read(self.archive.metainfo_path(&doc))
                    .ok()
                    .map(bytes::Bytes::from);
                match self
                    .shared
                    .torrents
                    .add(&ih, metainfo, &content, vec![])
                    .await
                {
                    Ok(_) => {
                        entry.local = Local::Held;
                        entry.file = Some(content.join(&doc.meta.name));
                    }
                    Err(e) => tracing::warn!("seeding document {}: {e}", doc.id),
                }
            }
            self.archive.docs.insert(doc.id, entry);
        }
        self.archive.rebuild_index();
        self.archive.schedule();
        self.refresh_documents(true);
    }

    fn new_entry(&self, doc: Document) -> Entry {
        Entry {
            doc,
            local: Local::Absent,
            unusable: None,
            have: 0,
            uploaded: (0, 0),
            seeding: false,
            fetch: None,
            file: None,
        }
    }

    fn doc_event(&self, doc: &Document, change: &str, reason: Option<String>) {
        self.emit(NodeEvent::Document {
            id: doc.id,
            version: doc.version,
            name: doc.meta.name.clone(),
            title: doc.meta.title.clone(),
            change: change.into(),
            reason,
        });
    }

    /// A newer document record was accepted.
    pub(super) fn on_document(&mut self, record: &Record) {
        let doc = match Document::from_record(record) {
            Ok(d) => d,
            Err(e) => {
                // Signed, but not a usable document: the publisher's slip, shown as such.
                self.record_evidence(None, Some(record.name), "bad-document", e.to_string());
                return;
            }
        };
        if let Some(old) = self.archive.docs.get(&doc.id)
            && old.doc.version < doc.version
            && old.local != Local::Absent
        {
            let why = Why::Replaced {
                version: doc.version,
            };
            self.evict(doc.id, why);
        }
        let mut entry = self.new_entry(doc.clone());
        if let Some(published) = self.local_payloads.get(&doc.meta.ih).cloned() {
            // Published here: seeded from the publisher's folder already.
            let marker = format!(
                "{} {} {}",
                doc.version,
                hex::encode(doc.meta.ih),
                published.display()
            );
            let path = self.archive.doc_dir(doc.id).join("own");
            let _ = std::fs::create_dir_all(self.archive.doc_dir(doc.id));
            if let Err(e) =
                crate::fsutil::write_atomic(&path, marker.as_bytes(), crate::fsutil::PUBLIC)
            {
                tracing::warn!("{}: {e}", path.display());
            }
            entry.local = Local::Own;
            entry.file = Some(
                published
                    .join(crate::publisher::PAYLOAD_DIR)
                    .join(&doc.meta.name),
            );
        }
        self.doc_event(&doc, "learned", None);
        self.archive.docs.insert(doc.id, entry);
        self.archive.rebuild_index();
        self.archive.schedule();
        self.announce_documents();
        self.refresh_documents(true);
    }

    /// Other wire peers seen holding or fetching `ih`.
    fn seen(&self, ih: &[u8; 20]) -> u32 {
        self.archive
            .claims
            .values()
            .filter(|c| c.held.contains(ih) || c.fetching.contains(ih))
            .count() as u32
    }

    fn holders(&self, ih: &[u8; 20]) -> Vec<Holder> {
        self.archive
            .claims
            .iter()
            .filter(|(_, c)| c.held.contains(ih))
            .filter_map(|(k, c)| {
                let conn = self.conns.get(k)?;
                Some(Holder {
                    ip: conn.remote.ip(),
                    http: c.http,
                    bt: conn.bt_addr.map(|a| a.port()),
                })
            })
            .collect()
    }

    /// Runs the choice when it is due; refreshes upload counts.
    pub(super) fn documents_tick(&mut self) {
        let now = unix_ms();
        if now >= self.archive.next_replan {
            self.archive.next_replan =
                now + REPLAN_MS + rand::thread_rng().gen_range(0..PLAN_DELAY_MS.1);
            self.archive.schedule();
        }
        if self.archive.plan_at.is_some_and(|at| now >= at) {
            self.archive.plan_at = None;
            self.plan_documents();
        }
        let torrents = Arc::clone(&self.shared.torrents);
        let mut changed = false;
        for e in self.archive.docs.values_mut() {
            if !matches!(e.local, Local::Held | Local::Own) {
                continue;
            }
            let stats = torrents.stats(&e.doc.meta.ih);
            let seeding = stats.is_some_and(|p| p.finished);
            let session = stats.map_or(0, |p| p.uploaded_bytes);
            if session < e.uploaded.1 {
                // A new BitTorrent session (a blacklist restart) counts from zero.
                e.uploaded.0 += e.uploaded.1;
            }
            changed |= seeding != e.seeding || session != e.uploaded.1;
            e.uploaded.1 = session;
            e.seeding = seeding;
        }
        if std::mem::take(&mut self.archive.view_stale) {
            self.refresh_documents(true);
        } else if changed {
            self.refresh_documents(false);
        }
    }

    fn plan_documents(&mut self) {
        let cands: Vec<Candidate> = self
            .archive
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
        let plan = choice::plan(&cands, self.archive.quota, MAX_FETCHING);
        if plan == choice::Plan::default() {
            return;
        }
        for (id, why) in plan.evict {
            self.evict(id, why);
        }
        if let Some(id) = plan.fetch {
            self.start_fetch(id);
        }
        self.announce_documents();
        self.refresh_documents(true);
    }

    fn start_fetch(&mut self, id: u32) {
        let Some(e) = self.archive.docs.get(&id) else {
            return;
        };
        let doc = e.doc.clone();
        let token = self.shared.cancel.child_token();
        let job = fetch_document(
            Arc::clone(&self.shared.torrents),
            doc.clone(),
            self.archive.content_dir(&doc),
            self.bt_peers.subscribe(),
            self.archive.tx.clone(),
        );
        let (tx, cancel) = (self.archive.tx.clone(), token.clone());
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
        self.doc_event(&doc, "fetching", None);
        if let Some(e) = self.archive.docs.get_mut(&id) {
            e.local = Local::Fetching;
            e.have = 0;
            e.fetch = Some(token);
        }
    }

    /// Gives up this node's copy of document `id` (held or being fetched), saying why.
    /// Forgets document `id` at `version` altogether (a rotation dropped its record).
    pub(super) fn evict_document(&mut self, id: u32, version: u32) {
        if self
            .archive
            .docs
            .get(&id)
            .is_none_or(|e| e.doc.version != version)
        {
            return;
        }
        self.evict(id, Why::Withdrawn);
        self.archive.docs.remove(&id);
        self.archive.rebuild_index();
        self.refresh_documents(true);
    }

    fn evict(&mut self, id: u32, why: Why) {
        let Some(e) = self.archive.docs.get_mut(&id) else {
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
        let dir = self.archive.doc_dir(id);
        let ih = doc.meta.ih;
        let torrents = Arc::clone(&self.shared.torrents);
        if was == Local::Own {
            // The publisher's own folder is theirs: stop seeding, keep the files.
            let _ = std::fs::remove_file(dir.join("own"));
            tokio::spawn(async move {
                let _ = torrents.remove(&ih).await;
            });
        } else {
            // The marker goes first: a document is never claimed after its file is gone.
            let _ = std::fs::remove_file(dir.join("held"));
            let content = self.archive.content_dir(&doc);
            let metainfo = self.archive.metainfo_path(&doc);
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
        if self.archive.evicted.len() >= EVICTIONS_KEPT {
            self.archive.evicted.pop_front();
        }
        self.archive.evicted.push_back(Eviction {
            at: unix_ms() / 1000,
            id,
            version: doc.version,
            name: doc.meta.name.clone(),
            size: doc.meta.size,
            reason: reason.clone(),
            why,
        });
        self.doc_event(&doc, "evicted", Some(reason));
    }

    pub(super) fn on_doc_report(&mut self, report: DocReport) {
        match report {
            DocReport::Progress { id, version, have } => {
                if let Some(e) = self.archive.docs.get_mut(&id)
                    && e.doc.version == version
                    && e.local == Local::Fetching
                {
                    e.have = have;
                    self.refresh_documents(false);
                }
            }
            DocReport::Done {
                id,
                version,
                metainfo,
            } => {
                let Some(e) = self.archive.docs.get(&id) else {
                    return;
                };
                if e.doc.version != version || e.local != Local::Fetching {
                    return;
                }
                let doc = e.doc.clone();
                if let Some(m) = metainfo
                    && let Err(e) = crate::fsutil::write_atomic(
                        &self.archive.metainfo_path(&doc),
                        &m,
                        crate::fsutil::PUBLIC,
                    )
                {
                    tracing::warn!("saving the metainfo of document {id}: {e}");
                }
                let marker = format!("{} {}", doc.version, hex::encode(doc.meta.ih));
                let path = self.archive.doc_dir(id).join("held");
                if let Err(e) =
                    crate::fsutil::write_atomic(&path, marker.as_bytes(), crate::fsutil::PUBLIC)
                {
                    tracing::warn!("{}: {e}", path.display());
                }
                let file = self.archive.content_dir(&doc).join(&doc.meta.name);
                if let Some(e) = self.archive.docs.get_mut(&id) {
                    e.local = Local::Held;
                    e.fetch = None;
                    e.have = doc.meta.size;
                    e.file = Some(file);
                }
                tracing::info!("holding document {id} v{version} ({})", doc.meta.name);
                self.doc_event(&doc, "held", None);
                self.archive.schedule();
                self.announce_documents();
                self.refresh_documents(true);
            }
            DocReport::Unusable { id, version, why } => {
                let Some(e) = self.archive.docs.get_mut(&id) else {
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
                let content = self.archive.content_dir(&doc);
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(content));
                let name = SystemName::new(
                    self.cfg.bundle.network(),
                    kind::AUTHORIZED_FILE,
                    id,
                    version,
                );
                self.record_evidence(None, Some(name), "bad-document", why.clone());
                self.doc_event(&doc, "unusable", Some(why));
                self.archive.schedule();
                self.announce_documents();
                self.refresh_documents(true);
            }
        }
    }

    /// Sets the quota (persisted) and acts on it at once: a lower one evicts now.
    pub(super) fn set_documents_quota(&mut self, bytes: u64) -> DocumentsView {
        self.archive.quota = bytes;
        self.archive.save_quota();
        tracing::info!("documents quota set to {bytes} bytes");
        self.plan_documents();
        self.refresh_documents(true);
        (*self.shared.served.documents()).clone()
    }

    /// What this node keeps, for wire peers.
    fn doc_claims(&self) -> DocClaims {
        let mut held = Vec::new();
        let mut fetching = Vec::new();
        for e in self.archive.docs.values() {
            match e.local {
                Local::Held | Local::Own => held.push(e.doc.meta.ih),
                Local::Fetching => fetching.push(e.doc.meta.ih),
                Local::Absent => {}
            }
        }
        fetching.truncate(MAX_DOC_CLAIMS);
        held.truncate(MAX_DOC_CLAIMS - fetching.len());
        let http = self
            .shared
            .status
            .read()
            .expect("status lock")
            .http
            .iter()
            .find(|h| h.bound)
            .and_then(|h| h.addr.parse::<SocketAddr>().ok())
            .map(|a| a.port());
        DocClaims {
            held,
            fetching,
            http,
        }
    }

    /// Tells every wire peer what this node keeps, when that changed.
    fn announce_documents(&mut self) {
        let claims = self.doc_claims();
        if self.archive.announced.as_ref() == Some(&claims) {
            return;
        }
        for c in self.conns.values().filter(|c| c.ready) {
            let _ = c.tx.try_send(Message::Docs(claims.clone()));
        }
        self.archive.announced = Some(claims);
    }

    /// A new wire peer: tell it what this node keeps.
    pub(super) fn send_documents_to(&self, key: PeerKey) {
        if let Some(c) = self.conns.get(&key) {
            let _ = c.tx.try_send(Message::Docs(self.doc_claims()));
        }
    }

    pub(super) fn on_peer_documents(&mut self, key: PeerKey, claims: DocClaims) {
        if !self.conns.get(&key).is_some_and(|c| c.ready) {
            return;
        }
        self.archive.claims.insert(key, claims);
        self.archive.schedule();
        // Rebuilt by the next tick (a quarter second), however many claims arrive
        // meanwhile: a peer repeating `ss_docs` costs a map insert, not a rebuild.
        self.archive.view_stale = true;
    }

    pub(super) fn peer_documents_gone(&mut self, key: PeerKey) {
        if self.archive.claims.remove(&key).is_some() {
            self.archive.schedule();
            self.archive.view_stale = true;
        }
    }

    /// Rebuilds the snapshot served to `/documents/` and the control API (`force`:
    /// now; else at most once a second, for progress).
    fn refresh_documents(&mut self, force: bool) {
        let now = unix_ms();
        if !force && now < self.archive.view_at + 1000 {
            return;
        }
        self.archive.view_at = now;
        let old = self.shared.served.documents();
        let mut documents: Vec<DocumentStatus> = Vec::with_capacity(self.archive.docs.len());
        for e in self.archive.docs.values() {
            let mut s = DocumentStatus::new(e.doc.clone());
            let ih = e.doc.meta.ih;
            s.state = e.local;
            s.held = matches!(e.local, Local::Held | Local::Own);
            s.seeding = s.held && e.seeding;
            s.unusable = e.unusable.clone();
            s.have_bytes = if s.held { e.doc.meta.size } else { e.have };
            s.uploaded = e.uploaded.0 + e.uploaded.1;
            s.ratio = s.uploaded as f64 / e.doc.meta.size.max(1) as f64;
            s.seen = self.seen(&ih);
            s.holders = self.holders(&ih);
            let peers: Vec<SocketAddr> = s
                .holders
                .iter()
                .filter_map(Holder::bt_addr)
                .take(MAGNET_PEERS)
                .collect();
            s.magnet = e.doc.magnet(&peers);
            if let Some(path) = &e.file {
                match old
                    .by_id(e.doc.id)
                    .filter(|o| o.version == e.doc.version && o.held)
                {
                    Some(o) if o.file.is_some() => s.file = o.file.clone(),
                    _ => s.set_file(path.clone()),
                }
            }
            documents.push(s);
        }
        documents.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
        let view = DocumentsView {
            quota: self.archive.quota,
            used: self
                .archive
                .docs
                .values()
                .filter(|e| matches!(e.local, Local::Held | Local::Fetching))
                .map(|e| e.doc.meta.size)
                .sum(),
            evicted: self.archive.evicted.iter().cloned().collect(),
            index: Arc::clone(&self.archive.index),
            bt_addr: self.shared.torrents.listen_addr(),
            documents,
        };
        let summary = DocumentsSummary {
            known: view.documents.len(),
            held: view.documents.iter().filter(|d| d.held).count(),
            fetching: view
                .documents
                .iter()
                .filter(|d| d.state == Local::Fetching)
                .count(),
            quota: view.quota,
            used: view.used,
            evicted: view.evicted.len(),
        };
        self.update_status(|s| s.documents = summary);
        self.shared.served.set_documents(view);
    }
}
