//! The local control API (SPEC §12): JSON over HTTP on 127.0.0.1 only, guarded by a
//! random token kept in the data folder (mode 0600), and the dashboard that uses it.
//!
//! `GET /api/status`, `GET /api/reach` (UPnP and mDNS), `GET /api/evidence`,
//! `GET /api/events` (server-sent events), `POST /api/publish {"dir": "<published
//! folder>"}`, `GET /api/documents`, `POST /api/documents/quota {"bytes": N}`,
//! `GET /api/notices`, `GET /api/update` (software updates), `POST /api/update/install`
//! (install the checked release, then restart), the upload queue (`control/uploads.rs`:
//! `GET /api/uploads`, `POST /api/uploads {"paths": [...]}`, `POST /api/uploads/files`,
//! multipart or a raw body with `?name=`), and the dashboard's own
//! (`control/app_api.rs`): pause, settings, networks. Every `/api/` request needs
//! `Authorization: Bearer <token>`; the token is never accepted in a URL, where
//! histories, logs and Referer headers would keep it (the dashboard reads the event
//! stream with `fetch`, which can send the header, not with `EventSource`). The Host
//! must be a loopback name (DNS rebinding), a request's `Origin`, when it has one, must
//! be this server or the tray app's webview, and CORS answers only the tray app: another
//! web page can neither read the API nor drive it.
//!
//! `/` serves the dashboard (`control/dashboard.rs`), built from `ui/` and compiled in.

mod app_api;
mod dashboard;
mod uploads;

#[cfg(test)]
mod ui_types;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::fsutil;
use crate::node::NodeHandle;

/// Where a running node's control API is, as written to `<data>/control.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ControlInfo {
    pub url: String,
    pub token: String,
}

pub const CONTROL_FILE: &str = "control.json";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the control API listens on loopback only, not {0}")]
    NotLoopback(SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no running node found: {0}")]
    NoNode(String),
    #[error("node answered {status}: {body}")]
    Status { status: u16, body: String },
}

#[derive(Clone)]
struct Ctl {
    node: NodeHandle,
    token: Arc<str>,
}

/// Starts the control API on `addr` (a loopback address) and writes `control.json`.
/// Returns the bound address; the server stops when `cancel` fires.
pub async fn serve(
    node: NodeHandle,
    addr: SocketAddr,
    cancel: CancellationToken,
) -> Result<SocketAddr, ControlError> {
    serve_with(node, addr, cancel, axum::Router::new()).await
}

/// [`serve`], plus the routes of a service run beside the node (the DNS front's
/// `/api/dns`), behind the same guard.
pub async fn serve_with(
    node: NodeHandle,
    addr: SocketAddr,
    cancel: CancellationToken,
    extra: axum::Router,
) -> Result<SocketAddr, ControlError> {
    if !addr.ip().is_loopback() {
        return Err(ControlError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let token: String = hex::encode(rand::random::<[u8; 32]>());
    let info = ControlInfo {
        url: format!("http://{bound}"),
        token: token.clone(),
    };
    let path = node.data_dir().join(CONTROL_FILE);
    fsutil::create_dir(node.data_dir(), 0o700)?;
    fsutil::write_atomic(
        &path,
        &serde_json::to_vec_pretty(&info).expect("json"),
        fsutil::PRIVATE,
    )?;
    let ctl = Ctl {
        node,
        token: token.into(),
    };
    let api = axum::Router::new()
        .route("/api/status", get(status))
        .route("/api/reach", get(reach))
        .route("/api/evidence", get(evidence))
        .route("/api/events", get(events))
        .route("/api/publish", post(publish))
        .route("/api/documents", get(documents))
        .route("/api/documents/quota", post(documents_quota))
        .route("/api/notices", get(notices))
        .route("/api/update", get(update))
        .route("/api/update/install", post(install_update))
        .route("/api/uploads", get(uploads::list).post(uploads::queue))
        .route(
            "/api/uploads/files",
            post(uploads::files).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .merge(app_api::routes())
        .with_state(ctl.clone())
        .merge(extra)
        .layer(middleware::from_fn_with_state(ctl, token_guard));
    let app = api
        .merge(dashboard::routes())
        .layer(middleware::from_fn(origin_guard))
        .layer(cors());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        let _ = std::fs::remove_file(&path);
    });
    Ok(bound)
}

/// Waits, at most `limit`, until the control API of `data_dir` has stopped: its last
/// answers (an install's, before a restart) are out and `control.json` is gone.
pub async fn wait_stopped(data_dir: &Path, limit: std::time::Duration) {
    let file = data_dir.join(CONTROL_FILE);
    let start = std::time::Instant::now();
    while file.exists() && start.elapsed() < limit {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Origins of the tray app's webview (Linux and macOS, Windows, Windows with https).
pub const APP_ORIGINS: [&str; 3] = [
    "tauri://localhost",
    "http://tauri.localhost",
    "https://tauri.localhost",
];

fn is_loopback_name(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name == "127.0.0.1" || name == "localhost" || name == "[::1]"
}

/// CORS for the tray app's window only; the dashboard in a browser is same-origin.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(APP_ORIGINS.map(HeaderValue::from_static))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Every request: a loopback Host, and an Origin (when sent) that is this very server
/// or the tray app.
async fn origin_guard(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_name(host) {
        return (StatusCode::FORBIDDEN, "bad host\n").into_response();
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin.strip_prefix("http://") == Some(host);
        if !own && !APP_ORIGINS.contains(&origin) {
            return (StatusCode::FORBIDDEN, "bad origin\n").into_response();
        }
    }
    next.run(req).await
}

async fn token_guard(State(ctl): State<Ctl>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token is the only secret here.
    let ok = given.is_some_and(|g| {
        g.len() == ctl.token.len()
            && g.bytes()
                .zip(ctl.token.bytes())
                .fold(0, |a, (x, y)| a | (x ^ y))
                == 0
    });
    if !ok {
        return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
    }
    next.run(req).await
}

async fn status(State(ctl): State<Ctl>) -> impl IntoResponse {
    Json(ctl.node.status())
}

async fn reach(State(ctl): State<Ctl>) -> impl IntoResponse {
    Json(ctl.node.status().reach)
}

#[derive(Deserialize)]
struct EvidenceQuery {
    limit: Option<usize>,
}

async fn evidence(State(ctl): State<Ctl>, Query(q): Query<EvidenceQuery>) -> Response {
    let log = crate::evidence::EvidenceLog::new(
        ctl.node.data_dir().join("evidence.jsonl"),
        crate::evidence::DEFAULT_MAX_BYTES,
    );
    match tokio::task::spawn_blocking(move || log.read_all()).await {
        Ok(Ok(mut all)) => {
            let limit = q.limit.unwrap_or(200).min(10_000);
            let skip = all.len().saturating_sub(limit);
            Json(all.split_off(skip)).into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot read evidence\n").into_response(),
    }
}

async fn events(State(ctl): State<Ctl>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = ctl.node.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let data = serde_json::to_string(&ev).expect("json");
                    return Some((Ok(Event::default().data(data)), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn documents(State(ctl): State<Ctl>) -> impl IntoResponse {
    Json((*ctl.node.documents()).clone())
}

#[derive(Deserialize)]
struct QuotaBody {
    bytes: u64,
}

async fn documents_quota(State(ctl): State<Ctl>, Json(body): Json<QuotaBody>) -> Response {
    match ctl.node.set_documents_quota(body.bytes).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn notices(State(ctl): State<Ctl>) -> impl IntoResponse {
    Json(ctl.node.status().notices)
}

#[derive(Deserialize)]
struct PublishBody {
    dir: PathBuf,
}

#[derive(Serialize)]
struct PublishReply {
    accepted: String,
}

async fn publish(State(ctl): State<Ctl>, Json(body): Json<PublishBody>) -> Response {
    let record_path = body.dir.join(crate::publisher::RECORD_FILE);
    let record = match std::fs::read(&record_path) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{}: {e}\n", record_path.display()),
            )
                .into_response();
        }
    };
    let payload = body
        .dir
        .join(crate::publisher::TORRENT_FILE)
        .is_file()
        .then_some(body.dir.clone());
    match ctl.node.submit(record, payload).await {
        Ok(accepted) => Json(PublishReply { accepted }).into_response(),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response(),
    }
}

async fn update(State(ctl): State<Ctl>) -> impl IntoResponse {
    Json(ctl.node.update_status())
}

/// Installs the checked release; the answer comes when the install is done (the
/// package manager may take a while), and the node then restarts.
async fn install_update(State(ctl): State<Ctl>) -> Response {
    match ctl.node.install_update().await {
        Ok(status) => Json(status).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

/// A minimal client for the CLI (`swarmsite status`, `publish --push`): plain HTTP/1.1
/// to loopback, written here because the other end is our own server on 127.0.0.1 and a
/// full HTTP client stack would add nothing.
pub mod client {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::{CONTROL_FILE, ControlError, ControlInfo, Path};

    pub fn info(data_dir: &Path) -> Result<ControlInfo, ControlError> {
        let path = data_dir.join(CONTROL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ControlError::NoNode(format!(
                "{}: {e} (is `swarmsite node` running with this data folder?)",
                path.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| ControlError::NoNode(format!("{}: {e}", path.display())))
    }

    /// Sends one request and returns the body of a 2xx answer.
    pub fn request(
        info: &ControlInfo,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<String, ControlError> {
        let hostport = info.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(hostport)
            .map_err(|e| ControlError::NoNode(format!("{}: {e}", info.url)))?;
        // An install waits for the package manager, which may wait for another's lock.
        let wait = if path == "/api/update/install" {
            660
        } else {
            60
        };
        s.set_read_timeout(Some(Duration::from_secs(wait)))?;
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            info.token,
            body.len()
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let rest = raw.get(split + 4..).unwrap_or_default();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        let body = String::from_utf8_lossy(&body).into_owned();
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(ControlError::Status {
                status,
                body: body.trim().to_string(),
            })
        }
    }

    fn dechunk(mut s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
            let Some(n) = std::str::from_utf8(&s[..eol])
                .ok()
                .and_then(|l| usize::from_str_radix(l.trim(), 16).ok())
            else {
                break;
            };
            let rest = &s[eol + 2..];
            if n == 0 || rest.len() < n {
                break;
            }
            out.extend_from_slice(&rest[..n]);
            s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
        }
        out
    }
}
