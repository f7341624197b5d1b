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

mod claims;
mod keeping;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use rand::Rng;

use super::ctx::Ctx;
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

/// The documents driver: the node's archive state, driven by the core through a
/// [`Ctx`] (records accepted, peers' claims, its fetches' reports, a tick).
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

impl Archive {
    /// Takes up the documents of the records held: seeds what is complete on disk.
    pub(crate) async fn restore(&mut self, ctx: &mut Ctx<'_>) {
        let records: Vec<Record> = ctx
            .gossip
            .held_names()
            .into_iter()
            .filter(|n| n.class() == ObjectClass::Document)
            .filter_map(|n| ctx.gossip.held(n.slot()).map(|(r, _)| r.clone()))
            .collect();
        for record in records {
            let Ok(doc) = Document::from_record(&record) else {
                continue;
            };
            let dir = self.doc_dir(doc.id);
            let mut entry = self.new_entry(doc.clone());
            if let Some((v, ih, published)) = read_marker(&dir.join("own"))
                && v == doc.version
                && ih == doc.meta.ih
            {
                let published = PathBuf::from(published);
                if let Err(e) = ctx::seed_local(&ctx.shared.torrents, &ih, &published).await {
                    tracing::warn!(
                        "seeding document {} from {}: {e}",
                        doc.id,
                        published.display()
                    );
                } else {
                    ctx.local_payloads.insert(ih, published.clone());
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
                let content = self.content_dir(&doc);
                let metainfo = std::fs::read(self.metainfo_path(&doc))
                    .ok()
                    .map(bytes::Bytes::from);
                match ctx
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
            self.docs.insert(doc.id, entry);
        }
        self.rebuild_index();
        self.schedule();
        self.refresh_documents(ctx, true);
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

    fn doc_event(&self, ctx: &mut Ctx<'_>, doc: &Document, change: &str, reason: Option<String>) {
        ctx.emit(NodeEvent::Document {
            id: doc.id,
            version: doc.version,
            name: doc.meta.name.clone(),
            title: doc.meta.title.clone(),
            change: change.into(),
            reason,
        });
    }

    /// A newer document record was accepted.
    pub(crate) fn on_document(&mut self, ctx: &mut Ctx<'_>, record: &Record) {
        let doc = match Document::from_record(record) {
            Ok(d) => d,
            Err(e) => {
                // Signed, but not a usable document: the publisher's slip, shown as such.
                ctx.evidence(None, Some(record.name), "bad-document", e.to_string());
                return;
            }
        };
        if let Some(old) = self.docs.get(&doc.id)
            && old.doc.version < doc.version
            && old.local != Local::Absent
        {
            let why = Why::Replaced {
                version: doc.version,
            };
            self.evict(ctx, doc.id, why);
        }
        let mut entry = self.new_entry(doc.clone());
        if let Some(published) = ctx.local_payloads.get(&doc.meta.ih).cloned() {
            // Published here: seeded from the publisher's folder already.
            let marker = format!(
                "{} {} {}",
                doc.version,
                hex::encode(doc.meta.ih),
                published.display()
            );
            let path = self.doc_dir(doc.id).join("own");
            let _ = std::fs::create_dir_all(self.doc_dir(doc.id));
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
        self.doc_event(ctx, &doc, "learned", None);
        self.docs.insert(doc.id, entry);
        self.rebuild_index();
        self.schedule();
        self.announce_documents(ctx);
        self.refresh_documents(ctx, true);
    }

    /// Other wire peers seen holding or fetching `ih`.
    fn seen(&self, ih: &[u8; 20]) -> u32 {
        self.claims
            .values()
            .filter(|c| c.held.contains(ih) || c.fetching.contains(ih))
            .count() as u32
    }

    fn holders(&self, ctx: &mut Ctx<'_>, ih: &[u8; 20]) -> Vec<Holder> {
        self.claims
            .iter()
            .filter(|(_, c)| c.held.contains(ih))
            .filter_map(|(k, c)| {
                let conn = ctx.conns.get(k)?;
                Some(Holder {
                    ip: conn.remote.ip(),
                    http: c.http,
                    bt: conn.bt_addr.map(|a| a.port()),
                })
            })
            .collect()
    }

    /// Runs the choice when it is due; refreshes upload counts.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = unix_ms();
        if now >= self.next_replan {
            self.next_replan = now + REPLAN_MS + rand::thread_rng().gen_range(0..PLAN_DELAY_MS.1);
            self.schedule();
        }
        if self.plan_at.is_some_and(|at| now >= at) {
            self.plan_at = None;
            self.plan_documents(ctx);
        }
        let torrents = Arc::clone(&ctx.shared.torrents);
        let mut changed = false;
        for e in self.docs.values_mut() {
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
        if std::mem::take(&mut self.view_stale) {
            self.refresh_documents(ctx, true);
        } else if changed {
            self.refresh_documents(ctx, false);
        }
    }

    /// Sets the quota (persisted) and acts on it at once: a lower one evicts now.
    pub(crate) fn set_quota(&mut self, ctx: &mut Ctx<'_>, bytes: u64) -> DocumentsView {
        self.quota = bytes;
        self.save_quota();
        tracing::info!("documents quota set to {bytes} bytes");
        self.plan_documents(ctx);
        self.refresh_documents(ctx, true);
        (*ctx.shared.served.documents()).clone()
    }

    /// Rebuilds the snapshot served to `/documents/` and the control API (`force`:
    /// now; else at most once a second, for progress).
    fn refresh_documents(&mut self, ctx: &mut Ctx<'_>, force: bool) {
        let now = unix_ms();
        if !force && now < self.view_at + 1000 {
            return;
        }
        self.view_at = now;
        let old = ctx.shared.served.documents();
        let mut documents: Vec<DocumentStatus> = Vec::with_capacity(self.docs.len());
        for e in self.docs.values() {
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
            s.holders = self.holders(ctx, &ih);
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
            quota: self.quota,
            used: self
                .docs
                .values()
                .filter(|e| matches!(e.local, Local::Held | Local::Fetching))
                .map(|e| e.doc.meta.size)
                .sum(),
            evicted: self.evicted.iter().cloned().collect(),
            index: Arc::clone(&self.index),
            bt_addr: ctx.shared.torrents.listen_addr(),
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
        ctx.update_status(|s| s.documents = summary);
        ctx.shared.served.set_documents(view);
    }
}
