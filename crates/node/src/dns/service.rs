//! The DNS front's IO, kept thin around the pure parts: the HTTP listener PowerDNS
//! calls (answers from [`backend::answer`]), the probes (HTTP fetches judged with the
//! node's trust store), discovery (the node's DHT and wire peers, the zone's seeds),
//! and the view the answers come from.
//!
//! ```text
//!  node: DHT lookups, wire peers ─┐               ┌─ GET /.well-known/swarmsite/release
//!  zone seeds ────────────────────┴─► Prober ◄────┘  on each port, judged (trust store)
//!                                      │ healthy set (or the last known good one)
//!                                      ▼
//!                        View (ArcSwap) ──► backend::answer ──► PowerDNS
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::backend::{self, View};
use super::prober::{Change, Outcome, Prober, ProberStats};
use super::select::Sorted;
use super::zone::{ProbeConfig, Zone};
use crate::content::Blacklist;
use crate::name::{SystemName, kind};
use crate::node::{NodeEvent, NodeHandle, unix_ms};
use crate::record::{MAX_RECORD_LEN, Record};
use crate::serve::RELEASE_PATH;
use crate::trust::TrustStore;

/// Where the last known good set is kept across restarts (in the node's data folder).
pub const LAST_GOOD_FILE: &str = "dns-last-good.json";

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("DNS backend on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP client for the prober: {0}")]
    Client(String),
    #[error("DNS backend socket {path}: {source}")]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the DNS front reports (`GET /api/dns`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DnsStatus {
    pub zone: String,
    /// Where the backend listens for PowerDNS.
    pub listen: String,
    pub prober: ProberStats,
    /// The addresses answered now (the first 64).
    pub answering: Vec<String>,
    /// True when they are the last known good set or the zone's fallback.
    pub fallback: bool,
    /// Requests PowerDNS (or anyone) sent the backend.
    pub calls: u64,
    /// The last changes, newest last.
    pub recent: Vec<String>,
}

const RECENT_KEPT: usize = 32;

/// The last known good set, as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LastGood {
    version: u32,
    addrs: Vec<IpAddr>,
}

/// A running DNS front. Stops when the token given to [`DnsFront::start`] fires.
pub struct DnsFront {
    status: Arc<RwLock<DnsStatus>>,
    calls: Arc<AtomicU64>,
    listen: SocketAddr,
    answering: Answering,
}

#[derive(Clone)]
struct Answering {
    zone: Arc<Zone>,
    view: Arc<ArcSwap<View>>,
    calls: Arc<AtomicU64>,
}

impl Answering {
    /// One backend call, over either connector: `None` is a request over
    /// [`backend::MAX_REQUEST`].
    fn answer(&self, body: Option<&[u8]>) -> backend::Reply {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match body {
            Some(body) => backend::answer(body, &self.zone, &self.view.load()),
            None => backend::too_large(),
        }
    }
}

impl DnsFront {
    /// Binds the backend on `listen` and starts probing the candidates `node` knows of.
    pub async fn start(
        node: NodeHandle,
        zone: Zone,
        listen: SocketAddr,
        cancel: CancellationToken,
    ) -> Result<DnsFront, DnsError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| DnsError::Bind {
                addr: listen,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| DnsError::Bind {
            addr: listen,
            source,
        })?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(zone.probe.timeout)
            .connect_timeout(zone.probe.timeout)
            // One request per node per interval: nothing worth keeping open.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("swarmsite-dns/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DnsError::Client(e.to_string()))?;
        let last_good_path = node.data_dir().join(LAST_GOOD_FILE);
        let last_good = std::fs::read(&last_good_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LastGood>(&b).ok())
            .unwrap_or_default();
        let zone = Arc::new(zone);
        let view = Arc::new(ArcSwap::from_pointee(View::default()));
        let calls = Arc::new(AtomicU64::new(0));
        let status = Arc::new(RwLock::new(DnsStatus {
            zone: zone.apex.clone(),
            listen: bound.to_string(),
            ..DnsStatus::default()
        }));
        let answering = Answering {
            zone: Arc::clone(&zone),
            view: Arc::clone(&view),
            calls: Arc::clone(&calls),
        };
        let app = axum::Router::new()
            .fallback(serve_backend)
            .with_state(answering.clone());
        // PowerDNS waits for each answer before its next query on that connection: a
        // response split over two segments must not wait for a delayed ACK (40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let c = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(c.cancelled_owned())
                .await;
        });
        let driver = Driver {
            prober: Prober::new(zone.probe.settings.clone(), rand::random()),
            node,
            zone,
            client,
            view,
            status: Arc::clone(&status),
            last_good,
            last_good_path,
            last_saved: None,
            cache: HashMap::new(),
        };
        tokio::spawn(driver.run(cancel));
        Ok(DnsFront {
            status,
            calls,
            listen: bound,
            answering,
        })
    }

    /// Also answers PowerDNS's unix-socket connector at `path`
    /// (`remote-connection-string=unix:path=…`): one JSON request a line, one JSON
    /// answer a line. It spares PowerDNS's HTTP connector, which waits up to 1 ms
    /// before each call (docs/PERFORMANCE.md). The socket is open to every local user,
    /// as the HTTP port on loopback is; it is removed when `cancel` fires.
    pub fn listen_unix(&self, path: &Path, cancel: CancellationToken) -> Result<(), DnsError> {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let err = |source| DnsError::Unix {
            path: path.to_path_buf(),
            source,
        };
        // A socket left by a previous run is replaced; anything else there is kept.
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a socket",
                )));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = tokio::net::UnixListener::bind(path).map_err(err)?;
        // PowerDNS runs as its own user.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(err)?;
        let answering = self.answering.clone();
        let path = path.to_path_buf();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            tokio::spawn(serve_unix(stream, answering.clone()));
                        }
                        Err(e) => {
                            tracing::warn!("{}: {e}", path.display());
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    _ = cancel.cancelled() => break,
                }
            }
            let _ = std::fs::remove_file(&path);
        });
        Ok(())
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn status(&self) -> DnsStatus {
        let mut s = self.status.read().expect("dns status lock").clone();
        s.calls = self.calls.load(Ordering::Relaxed);
        s
    }

    /// `GET /api/dns` for the node's control API (which adds its token guard).
    pub fn control_routes(self: &Arc<Self>) -> axum::Router {
        let me = Arc::clone(self);
        axum::Router::new().route(
            "/api/dns",
            axum::routing::get(move || {
                let me = Arc::clone(&me);
                async move { axum::Json(me.status()) }
            }),
        )
    }
}

/// Every path and method: PowerDNS posts to `<url>/<method>`, the method is in the body.
async fn serve_backend(
    axum::extract::State(a): axum::extract::State<Answering>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = axum::body::to_bytes(req.into_body(), backend::MAX_REQUEST).await;
    let reply = a.answer(body.as_deref().ok());
    let status = axum::http::StatusCode::from_u16(reply.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(reply.body)).into_response()
}

/// One connection of PowerDNS's unix connector: requests and answers a line each, in
/// order, until it closes. A line over [`backend::MAX_REQUEST`] is answered as too
/// large and ends the connection (its rest cannot be told from the next request).
async fn serve_unix(stream: tokio::net::UnixStream, a: Answering) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = backend::MAX_REQUEST as u64 + 1;
        match (&mut r).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = line.len() > backend::MAX_REQUEST;
        let reply = a.answer((!too_long).then(|| line.trim_ascii()));
        let mut out = serde_json::to_vec(&reply.body).expect("a JSON value serialises");
        out.push(b'\n');
        if w.write_all(&out).await.is_err() || too_long {
            return;
        }
    }
}

/// Whether an address may be probed and answered: never unspecified, multicast or
/// broadcast; loopback, private, link-local and shared space only when the zone says
/// so (a test network) — a browser must not be sent to its own LAN by a false entry.
pub fn usable(ip: IpAddr, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(a) => {
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                return false;
            }
            let o = a.octets();
            let local = a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240;
            allow_private || !local
        }
        IpAddr::V6(a) => {
            if a.is_unspecified() || a.is_multicast() {
                return false;
            }
            if let Some(v4) = a.to_ipv4_mapped() {
                return usable(IpAddr::V4(v4), allow_private);
            }
            let s = a.segments();
            let local = a.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80;
            allow_private || !local
        }
    }
}

/// Judges what a node served at the release path: an authentic release of `site`
/// (its version), or why not. Pure, given the trust store.
pub fn judge(bytes: &[u8], trust: &TrustStore, site: u32, now_secs: u64) -> Outcome {
    let record = match Record::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Refused {
                why: format!("not a record: {e}"),
            };
        }
    };
    let name = record.name;
    if name.kind() != kind::SITE_RELEASE || name.id() != site {
        return Outcome::Refused {
            why: format!(
                "serves a {} (id {}), not site {site}",
                name.class(),
                name.id()
            ),
        };
    }
    match trust.check_authentic(&record, now_secs) {
        Ok(_) => Outcome::Serves {
            version: name.version(),
        },
        Err(refusal) => Outcome::Refused {
            why: format!("v{}: {} ({refusal})", name.version(), refusal.code()),
        },
    }
}

/// GETs the release record from `ip` on each port in turn; the first 200 wins.
async fn fetch(client: &reqwest::Client, ip: IpAddr, ports: &[u16]) -> Result<Vec<u8>, String> {
    let mut why = String::new();
    for port in ports {
        let url = format!("http://{}/{RELEASE_PATH}", SocketAddr::new(ip, *port));
        match fetch_one(client, &url).await {
            Ok(b) => return Ok(b),
            Err(e) => {
                if !why.is_empty() {
                    why.push_str("; ");
                }
                why.push_str(&format!("port {port}: {e}"));
            }
        }
    }
    Err(why)
}

async fn fetch_one(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut resp = client.get(url).send().await.map_err(|e| {
        // reqwest's top-level message hides the cause (refused, timed out).
        let mut s = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(inner) = src {
            s = inner.to_string();
            src = inner.source();
        }
        s
    })?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_RECORD_LEN {
            return Err(format!("more than {MAX_RECORD_LEN} bytes"));
        }
    }
    Ok(body)
}

struct Driver {
    prober: Prober,
    node: NodeHandle,
    zone: Arc<Zone>,
    client: reqwest::Client,
    view: Arc<ArcSwap<View>>,
    status: Arc<RwLock<DnsStatus>>,
    last_good: LastGood,
    last_good_path: PathBuf,
    /// When the last known good set was last written (at most every 10 s).
    last_saved: Option<tokio::time::Instant>,
    /// Judgements by SHA-256 of what was served: most nodes serve the same bytes, so
    /// one signature check serves them all. Cleared when the trust store changes.
    cache: HashMap<[u8; 32], Outcome>,
}

/// Judgements remembered at most (forgers could otherwise fill it).
const CACHE_KEPT: usize = 256;

impl Driver {
    async fn run(mut self, cancel: CancellationToken) {
        let site = self.node.status().site_id;
        let probe: ProbeConfig = self.zone.probe.clone();
        let (found_tx, mut found_rx) = tokio::sync::mpsc::channel::<Vec<IpAddr>>(16);
        let mut probes: JoinSet<(IpAddr, Result<Vec<u8>, String>)> = JoinSet::new();
        let mut discover = tokio::time::interval(probe.discover_interval);
        let mut discovering = false;
        let mut trust = self.node.trust();
        let mut blacklist = self.node.blacklist();
        self.prober
            .set_newest(trust.highest((kind::SITE_RELEASE, site)));
        self.publish(&blacklist);
        let mut dirty = false;
        let mut last_publish = tokio::time::Instant::now();
        loop {
            let now = unix_ms();
            let t = self.node.trust();
            if !Arc::ptr_eq(&t, &trust) {
                trust = t;
                self.cache.clear();
                self.prober
                    .set_newest(trust.highest((kind::SITE_RELEASE, site)));
            }
            let b = self.node.blacklist();
            if !Arc::ptr_eq(&b, &blacklist) {
                blacklist = b;
                let listed: Vec<IpAddr> = self
                    .prober
                    .healthy()
                    .filter(|ip| blacklist.contains(*ip))
                    .collect();
                for ip in listed {
                    self.prober.remove(ip, "blacklisted");
                }
                dirty = true;
            }
            for ip in self.prober.due(now) {
                if blacklist.contains(ip) {
                    self.prober.remove(ip, "blacklisted");
                    self.prober.finished(
                        ip,
                        Outcome::Refused {
                            why: "blacklisted".into(),
                        },
                        now,
                    );
                    continue;
                }
                let (client, ports) = (self.client.clone(), probe.ports.clone());
                probes.spawn(async move { (ip, fetch(&client, ip, &ports).await) });
            }
            dirty |= self.drain_changes();
            self.status.write().expect("dns status lock").prober = self.prober.stats();
            // The view is rebuilt at most every 200 ms, however fast probes finish.
            if dirty && last_publish.elapsed() >= Duration::from_millis(200) {
                self.publish(&blacklist);
                dirty = false;
                last_publish = tokio::time::Instant::now();
            }
            let wake = self
                .prober
                .next_due()
                .map_or(Duration::from_millis(500), |d| {
                    Duration::from_millis(d.saturating_sub(now).clamp(1, 500))
                });
            let wake = if dirty {
                wake.min(Duration::from_millis(200))
            } else {
                wake
            };
            tokio::select! {
                Some(done) = probes.join_next() => {
                    if let Ok((ip, result)) = done {
                        let outcome = match result {
                            Ok(bytes) => self.judged(&bytes, &trust, site),
                            Err(why) => Outcome::Unreachable { why },
                        };
                        self.prober.finished(ip, outcome, unix_ms());
                    }
                }
                Some(found) = found_rx.recv() => {
                    discovering = false;
                    let now = unix_ms();
                    for ip in found {
                        if usable(ip, probe.allow_private) && !blacklist.contains(ip) {
                            self.prober.discovered(ip, now);
                        }
                    }
                    // Nobody named them for ten discovery rounds: forget them.
                    let keep = probe.discover_interval.as_millis() as u64 * 10;
                    self.prober.sweep(now.saturating_sub(keep));
                }
                _ = discover.tick(), if !discovering => {
                    discovering = true;
                    self.spawn_discovery(site, found_tx.clone());
                }
                _ = tokio::time::sleep(wake) => {}
                _ = cancel.cancelled() => break,
            }
        }
        probes.abort_all();
        // Writes are spaced out while running: keep the very last set.
        if !self.last_good.addrs.is_empty() {
            self.save_last_good();
        }
    }

    fn judged(&mut self, bytes: &[u8], trust: &TrustStore, site: u32) -> Outcome {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(bytes).into();
        if let Some(o) = self.cache.get(&key) {
            return o.clone();
        }
        let outcome = judge(bytes, trust, site, unix_ms() / 1000);
        if self.cache.len() >= CACHE_KEPT {
            self.cache.clear();
        }
        self.cache.insert(key, outcome.clone());
        outcome
    }

    /// Names of candidates, gathered away from the loop: the zone's seeds, the node's
    /// wire peers, and who the DHT says holds the newest release or is a node at all.
    fn spawn_discovery(&self, site: u32, found: tokio::sync::mpsc::Sender<Vec<IpAddr>>) {
        let node = self.node.clone();
        let seeds = self.zone.probe.seeds.clone();
        let newest = self.prober.newest();
        let wait = self
            .zone
            .probe
            .discover_interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut ips = seeds;
            ips.extend(
                node.status()
                    .peers
                    .iter()
                    .filter_map(|p| p.addr.parse::<SocketAddr>().ok())
                    .map(|a| a.ip()),
            );
            let tag = node.trust().network();
            let mut names = vec![SystemName::rendezvous(tag)];
            if newest > 0 {
                names.push(SystemName::new(tag, kind::SITE_RELEASE, site, newest));
            }
            for name in names {
                ips.extend(node.find(name, wait).await.iter().map(|a| a.ip()));
            }
            ips.sort_unstable();
            ips.dedup();
            let _ = found.send(ips).await;
        });
    }

    /// Passes the prober's changes to the log, the status and the node's events.
    fn drain_changes(&mut self) -> bool {
        let mut any = false;
        while let Some(change) = self.prober.poll_change() {
            any = true;
            let (line, event) = match change {
                Change::Up { ip, version } => (
                    format!("{ip} healthy (v{version})"),
                    NodeEvent::DnsHealthy {
                        addr: ip.to_string(),
                        version,
                    },
                ),
                Change::Down { ip, why } => (
                    format!("{ip} dropped: {why}"),
                    NodeEvent::DnsDropped {
                        addr: ip.to_string(),
                        why,
                    },
                ),
            };
            // Debug: a large network churns all day; the status keeps the last ones.
            tracing::debug!("dns: {line}");
            self.node.emit(event);
            let mut s = self.status.write().expect("dns status lock");
            if s.recent.len() >= RECENT_KEPT {
                s.recent.remove(0);
            }
            s.recent.push(line);
        }
        any
    }

    fn save_last_good(&mut self) {
        self.last_saved = Some(tokio::time::Instant::now());
        let bytes = serde_json::to_vec(&self.last_good).expect("json");
        if let Err(e) = crate::fsutil::write_atomic(&self.last_good_path, &bytes, 0o644) {
            tracing::warn!("{}: {e}", self.last_good_path.display());
        }
    }

    /// Rebuilds the view: the healthy set, else the last known good one, else the
    /// zone's fallback; keeps the last known good set on disk.
    fn publish(&mut self, blacklist: &Blacklist) {
        let healthy: Vec<IpAddr> = self.prober.healthy().collect();
        let view = if !healthy.is_empty() {
            let mut addrs = healthy.clone();
            addrs.sort_unstable();
            if addrs != self.last_good.addrs || self.prober.newest() != self.last_good.version {
                self.last_good = LastGood {
                    version: self.prober.newest(),
                    addrs,
                };
                if self
                    .last_saved
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                {
                    self.save_last_good();
                }
            }
            View {
                addrs: Sorted::new(healthy),
                fallback: false,
            }
        } else {
            let good = self
                .last_good
                .addrs
                .iter()
                .copied()
                .filter(|ip| !blacklist.contains(*ip));
            let addrs = Sorted::new(good);
            let addrs = if addrs.is_empty() {
                Sorted::new(self.zone.fallback.iter().copied())
            } else {
                addrs
            };
            View {
                addrs,
                fallback: true,
            }
        };
        let mut s = self.status.write().expect("dns status lock");
        s.prober = self.prober.stats();
        s.fallback = view.fallback;
        s.answering = view.addrs.iter().take(64).map(|a| a.to_string()).collect();
        drop(s);
        self.view.store(Arc::new(view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_unless_the_zone_allows_private_ones() {
        for a in ["203.0.113.7", "8.8.8.8", "2001:db8::1", "2a00::1"] {
            assert!(usable(a.parse().unwrap(), false), "{a}");
        }
        for a in [
            "127.0.0.3",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(!usable(a.parse().unwrap(), false), "{a}");
            assert!(usable(a.parse().unwrap(), true), "{a}");
        }
        for a in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert!(!usable(a.parse().unwrap(), true), "{a}");
        }
    }
}
