//! HTTP serving of the verified site (SPEC §9): the router of the public ports.
//!
//! A [`SiteRelease`] is an immutable index of one verified release folder: every file's
//! length, type and content hash (its ETag), built once when the release is switched in.
//! Requests are answered from the index, never by joining the URL onto a folder, so a
//! path outside the release cannot even be named. The served release sits behind an
//! [`ArcSwapOption`]: switching is one pointer store, and a request in flight keeps the
//! release it started with, so a browser never sees half an update. The router composes
//! the site with the archive's `/documents/` pages; both answer files through
//! [`crate::http_file`].

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::documents::pages::SiteFiles;
use crate::http_file::{
    FileEntry, Modified, PATH_SET, clean_path, etag_matches, html_escape, html_page, plain,
    serve_file,
};
use crate::http_server::HttpConn;

/// The path of the signed record of the served release.
pub const RELEASE_PATH: &str = ".well-known/swarmsite/release";

/// One verified release, ready to serve.
#[derive(Debug)]
pub struct SiteRelease {
    version: u32,
    modified: Modified,
    record: Bytes,
    record_etag: String,
    files: HashMap<String, FileEntry>,
    dirs: BTreeSet<String>,
}

impl SiteRelease {
    /// Indexes the folder `root` (hashing every file) for release `version` published at
    /// unix time `time`, whose signed record is `record`.
    pub fn index(root: &Path, version: u32, time: u64, record: &[u8]) -> std::io::Result<Self> {
        let mut files = HashMap::new();
        let mut dirs = BTreeSet::new();
        dirs.insert(String::new());
        index_dir(root, root, &mut files, &mut dirs)?;
        Ok(SiteRelease {
            version,
            modified: Modified::at(time),
            record_etag: format!("\"{}\"", &hex::encode(Sha256::digest(record))[..32]),
            record: Bytes::copy_from_slice(record),
            files,
            dirs,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }
}

impl SiteFiles for SiteRelease {
    /// The names in folder `dir` ("" for the top) of the release: files, and folders
    /// with a trailing `/`.
    fn children(&self, dir: &str) -> BTreeSet<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut names = BTreeSet::new();
        for key in self.files.keys().chain(self.dirs.iter()) {
            if let Some(rest) = key.strip_prefix(&prefix)
                && !rest.is_empty()
            {
                let first = rest.split('/').next().unwrap_or(rest);
                let is_dir = self.dirs.contains(&format!("{prefix}{first}"));
                names.insert(if is_dir {
                    format!("{first}/")
                } else {
                    first.to_string()
                });
            }
        }
        names
    }

    /// True when `path` (no leading `/`) names a file or folder of the release.
    fn has(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.dirs.contains(path.trim_end_matches('/'))
    }
}

fn index_dir(
    root: &Path,
    dir: &Path,
    files: &mut HashMap<String, FileEntry>,
    dirs: &mut BTreeSet<String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let Some(rel) = path
            .strip_prefix(root)
            .ok()
            .and_then(|r| r.to_str())
            .map(|r| r.replace('\\', "/"))
        else {
            continue;
        };
        if meta.is_dir() {
            dirs.insert(rel);
            index_dir(root, &path, files, dirs)?;
        } else if meta.is_file() {
            let digest = crate::fsutil::sha256_file(&path)?;
            let mime = mime_guess::from_path(&path).first_or_octet_stream();
            let tag = hex::encode(&digest[..16]);
            files.insert(rel, FileEntry::new(path, meta.len(), &tag, &mime));
        }
    }
    Ok(())
}

/// What the HTTP server serves: the current release, or nothing yet.
#[derive(Default)]
pub struct Served {
    release: ArcSwapOption<SiteRelease>,
    /// The archive of published documents (`/documents/`), kept by the node.
    documents: arc_swap::ArcSwap<crate::documents::view::DocumentsView>,
    bytes_served: AtomicU64,
    requests: AtomicU64,
    /// Sharing paused: only this computer is served (see [`Served::set_paused`]).
    paused: std::sync::atomic::AtomicBool,
}

impl Served {
    pub fn new() -> Arc<Self> {
        Arc::new(Served::default())
    }

    /// Switches to `release` atomically.
    pub fn switch(&self, release: SiteRelease) {
        self.release.store(Some(Arc::new(release)));
    }

    pub fn current(&self) -> Option<Arc<SiteRelease>> {
        self.release.load_full()
    }

    /// Serves no release (503) until the next [`Served::switch`].
    pub fn clear(&self) {
        self.release.store(None);
    }

    /// Replaces the archive snapshot the `/documents/` pages answer from.
    pub fn set_documents(&self, view: crate::documents::view::DocumentsView) {
        self.documents.store(Arc::new(view));
    }

    pub fn documents(&self) -> Arc<crate::documents::view::DocumentsView> {
        self.documents.load_full()
    }

    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// While paused, visitors from other machines get 503 (DNS probers then drop this
    /// node); the owner still reads the site on loopback.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

/// The router for one served site. Served with
/// `into_make_service_with_connect_info::<HttpConn>()`, pages that name other nodes
/// order them by nearness to the client.
pub fn router(served: Arc<Served>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(served)
}

async fn handle(
    State(served): State<Arc<Served>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    served.requests.fetch_add(1, Ordering::Relaxed);
    let conn = extensions
        .get::<axum::extract::ConnectInfo<HttpConn>>()
        .map(|c| c.0);
    if served.is_paused() && !conn.is_some_and(|c| c.remote.ip().is_loopback()) {
        // Without connect info (a bare router) nobody counts as local.
        let mut r = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "this volunteer has paused sharing; try again later\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("600"));
        return r;
    }
    let response = respond(&served, &method, &uri, &headers, conn).await;
    if let Some(len) = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && method != Method::HEAD
    {
        served.bytes_served.fetch_add(len, Ordering::Relaxed);
    }
    response
}

async fn respond(
    served: &Served,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    conn: Option<HttpConn>,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(path) = clean_path(uri.path()) else {
        return plain(StatusCode::BAD_REQUEST, "bad path\n");
    };
    let head = method == Method::HEAD;
    // The archive answers under /documents/ whether or not a release is served yet;
    // the release's own files there win (docs/PROTOCOL.md §20).
    if path == "documents" || path.starts_with("documents/") {
        let req = crate::documents::pages::Request {
            path: &path,
            query: uri.query(),
            headers,
            conn,
            head,
        };
        let release = served.current();
        if let Some(r) = crate::documents::pages::respond(
            &served.documents(),
            release.as_deref().map(|r| r as &dyn SiteFiles),
            req,
        )
        .await
        {
            return r;
        }
    }
    let Some(release) = served.current() else {
        let mut r = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node has no verified release yet; try again soon\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return r;
    };
    if path == RELEASE_PATH {
        return release_record(&release, headers, head);
    }
    let key = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.clone()
    };
    if let Some(entry) = release.files.get(&key) {
        return serve_file(entry, &release.modified, headers, head).await;
    }
    if release.dirs.contains(path.trim_end_matches('/')) {
        if !path.is_empty() && !path.ends_with('/') {
            let mut r = plain(StatusCode::MOVED_PERMANENTLY, "");
            let location = format!("/{path}/");
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        return listing(&release, path.trim_end_matches('/'), head);
    }
    not_found(&release, headers, head).await
}

fn release_record(release: &SiteRelease, headers: &HeaderMap, head: bool) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-swarmsite-record"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&release.record_etag).expect("hex"),
    );
    if etag_matches(headers, &release.record_etag) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(release.record.len()),
    );
    let body = if head {
        Body::empty()
    } else {
        Body::from(release.record.clone())
    };
    (StatusCode::OK, h, body).into_response()
}

fn listing(release: &SiteRelease, dir: &str, head: bool) -> Response {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let names = release.children(dir);
    let items: String = names
        .iter()
        .map(|n| {
            format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                html_escape(&percent_encoding::utf8_percent_encode(n, PATH_SET).to_string()),
                html_escape(n)
            )
        })
        .collect();
    let page = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>/{d}</title><h1>/{d}</h1><ul>\n{items}</ul>\n",
        d = html_escape(&prefix)
    );
    html_page(StatusCode::OK, page, head)
}

async fn not_found(release: &SiteRelease, headers: &HeaderMap, head: bool) -> Response {
    if let Some(entry) = release.files.get("404.html") {
        let mut r = serve_file(entry, &release.modified, headers, head).await;
        if r.status() == StatusCode::OK {
            *r.status_mut() = StatusCode::NOT_FOUND;
        }
        return r;
    }
    let page = "<!doctype html><meta charset=\"utf-8\"><title>Not found</title><h1>Not found</h1><p>This release has no such page. <a href=\"/\">Front page</a></p>\n";
    html_page(StatusCode::NOT_FOUND, page.to_string(), head)
}
