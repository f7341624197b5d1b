//! Helpers shared by the multi-node tests.
#![allow(dead_code)] // each test binary uses its own subset

pub mod plain_bt;
mod site;
#[allow(unused_imports)] // each test binary uses its own subset
pub use site::{
    browser_script, demo_release, manifest_record, now, publish_release, publish_site, stand_in,
    write_exe,
};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swarmsite_node::node::{Node, NodeConfig, NodeHandle};

/// A loopback node of `net` on `ip` (see `NodeConfig::loopback`) that knows `peers`
/// and pulls every 2 s.
pub fn node_config(
    data: &std::path::Path,
    net: &swarmsite_node::publisher::NetworkDir,
    ip: &str,
    peers: Vec<SocketAddr>,
) -> NodeConfig {
    let mut cfg = NodeConfig::loopback(
        data.to_path_buf(),
        net.bundle().clone(),
        ip.parse().unwrap(),
    );
    cfg.peers = peers;
    cfg.pull_interval = Duration::from_secs(2);
    // Swarms of two or three: fewer than three addresses can confirm a key set.
    cfg.key_confirm_wait = Duration::from_secs(1);
    cfg
}

/// A new network in `dir` with one site and one key per role (threshold 1): quick to
/// make, for tests that do not rotate keys.
pub fn small_network(
    dir: &std::path::Path,
    tag: &str,
    site: &str,
    pass: &[u8],
) -> swarmsite_node::publisher::NetworkDir {
    use swarmsite_node::publisher::{InitOptions, NetworkDir};
    let opts = InitOptions {
        keys_per_role: 1,
        threshold: 1,
        software_sign: 1,
        ..InitOptions::one_site(tag.parse().unwrap(), site)
    };
    NetworkDir::init(dir, &opts, pass, now()).unwrap()
}

/// True when the node's blacklist in force lists `ip` (as `ip/32`) and librqbit runs
/// with it too.
pub fn lists(h: &NodeHandle, ip: &str) -> bool {
    h.status()
        .blacklist
        .is_some_and(|b| b.in_bittorrent && b.entries.iter().any(|e| e.addr == format!("{ip}/32")))
}

/// A child process killed (by its pid) and reaped when dropped, also when a test fails.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most `secs`) until `cond` holds; returns how long that took.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// `wait_for` for plain threads (tests of node processes).
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The arguments of a `swarmsite node` process on loopback address `ip`: wire on port
/// `base`, BitTorrent on `base + 1`, HTTP on `base + 80`, no librqbit DHT, pulling every
/// 2 s, with `peers` (wire addresses) and then `extra`.
pub fn node_process_args(
    data: &std::path::Path,
    bundle: &std::path::Path,
    ip: &str,
    base: u16,
    peers: &[&str],
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--data-dir".into(),
        data.display().to_string(),
        "node".into(),
        "--bundle".into(),
        bundle.display().to_string(),
        "--wire".into(),
        format!("{ip}:{base}"),
        "--bt".into(),
        format!("{ip}:{}", base + 1),
        "--http".into(),
        format!("{ip}:{}", base + 80),
        "--no-content-dht".into(),
        "--pull-interval".into(),
        "2".into(),
        "--key-confirm-wait".into(),
        "1".into(),
    ];
    for p in peers {
        args.push("--peer".into());
        args.push(format!("{p}:{base}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs the built binary with `args` (key passphrase `pass`, quiet logs), asserts that
/// it succeeded, and returns what it printed.
pub fn swarmsite_ok(pass: &str, args: &[&str]) -> String {
    // option_env!: the simulator's tests share these helpers and have no such binary.
    let Some(bin) = option_env!("CARGO_BIN_EXE_swarmsite") else {
        panic!("only the swarmsite package's tests run the binary");
    };
    let o = std::process::Command::new(bin)
        .env("SWARMSITE_PASSPHRASE", pass)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "swarmsite {args:?}:\n{text}");
    text
}

/// A blocking `GET path` from `ip:port` (a node process's HTTP port): the body when it
/// answered 200, `None` otherwise (not up, another status, a broken answer).
pub fn http_get_200(ip: &str, port: u16, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    (raw.get(9..12)? == b"200").then(|| raw[split + 4..].to_vec())
}

/// `swarmsite <command> --json` about the node running in `data` (`status`, `uploads`):
/// the parsed answer, `None` while it does not answer.
pub fn cli_json(data: &std::path::Path, command: &str) -> Option<serde_json::Value> {
    let bin = option_env!("CARGO_BIN_EXE_swarmsite")?;
    let o = std::process::Command::new(bin)
        .args(["--data-dir", data.to_str()?, command, "--json"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).ok())
        .flatten()
}

pub async fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    http_request(addr, "GET", path, b"").await
}

/// One HTTP/1.1 request with `Connection: close`: status and body.
pub async fn http_request(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// A node on a tokio runtime and thread of its own.
pub struct OwnRuntime {
    pub handle: NodeHandle,
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl OwnRuntime {
    pub fn start(cfg: NodeConfig) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let node = Node::start(cfg).await.unwrap();
                tx.send(node.handle()).unwrap();
                let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                node.shutdown().await;
            });
        });
        OwnRuntime {
            handle: rx.recv().unwrap(),
            stop,
            thread,
        }
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().unwrap();
    }
}

pub fn http_addr(h: &NodeHandle) -> String {
    h.status()
        .http
        .iter()
        .find(|p| p.bound)
        .unwrap()
        .addr
        .clone()
}

/// A hostile peer built from the project's own wire state machine: connects from `ip`
/// and pushes `records`.
pub async fn hostile_push(ip: &str, to: SocketAddr, rendezvous: [u8; 20], records: Vec<Vec<u8>>) {
    use swarmsite_node::wire::{Connection, Event, Message, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = socket.connect(to).await else {
        return;
    };
    let mut conn = Connection::new(WireConfig::new(rendezvous, [0x66; 20], None), 0, true);
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pending = records;
    let mut sent = false;
    while Instant::now() < deadline && !conn.is_closed() {
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        if sent {
            // Give the node a moment to read them, then leave.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        while let Some(ev) = conn.poll_event() {
            if matches!(ev, Event::Ready { .. }) {
                for r in pending.drain(..) {
                    conn.send(&Message::Push { record: r }, 0);
                }
                sent = true;
            }
        }
        if sent {
            continue;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => conn.handle_input(&buf[..n], 0),
            Err(_) => {}
        }
    }
}

/// `hostile_push` from `ip` to the wire port of every node of `handles`.
pub async fn hostile_push_all(
    ip: &str,
    handles: &[NodeHandle],
    rendezvous: [u8; 20],
    records: Vec<Vec<u8>>,
) {
    for h in handles {
        let wire: SocketAddr = h.status().wire_addr.parse().unwrap();
        hostile_push(ip, wire, rendezvous, records.clone()).await;
    }
}

/// A scripted wire node built from the project's own wire state machine: accepts on
/// `listener`, handshakes with `cfg`, says `have`, answers `get` from `answers` (else
/// `rec {none}`) and pushes `push` to every peer. Runs until its task is aborted, which
/// also ends every connection it holds.
pub async fn scripted_node(
    listener: tokio::net::TcpListener,
    cfg: swarmsite_node::wire::WireConfig,
    have: Vec<swarmsite_node::name::SystemName>,
    answers: Vec<(swarmsite_node::name::SystemName, Vec<u8>)>,
    push: Vec<Vec<u8>>,
) {
    use swarmsite_node::wire::{Event, Message};
    wire_server(listener, cfg, move |_, ev| match ev {
        Event::Ready { .. } => std::iter::once(Message::Have {
            names: have.clone(),
        })
        .chain(push.iter().map(|r| Message::Push { record: r.clone() }))
        .collect(),
        Event::Message(Message::Get { name }) => {
            let record = answers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, r)| r.clone());
            vec![Message::Rec { name, record }]
        }
        _ => vec![],
    })
    .await
}

/// A wire node built from the project's own wire state machine: accepts on `listener`,
/// handshakes with `cfg`, and sends what `answer` returns for each event of each
/// connection (given the peer's address). Runs until its task is aborted, which also
/// ends every connection it holds.
pub async fn wire_server(
    listener: tokio::net::TcpListener,
    cfg: swarmsite_node::wire::WireConfig,
    answer: impl Fn(SocketAddr, swarmsite_node::wire::Event) -> Vec<swarmsite_node::wire::Message>
    + Clone
    + Send
    + 'static,
) {
    use swarmsite_node::wire::Connection;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conns = tokio::task::JoinSet::new();
    while let Ok((mut s, remote)) = listener.accept().await {
        let (cfg, answer) = (cfg.clone(), answer.clone());
        conns.spawn(async move {
            let ms = swarmsite_node::clock::unix_ms;
            let mut conn = Connection::new(cfg, ms(), false);
            let mut buf = vec![0u8; 64 * 1024];
            while !conn.is_closed() {
                let out = conn.take_transmit();
                if !out.is_empty() && s.write_all(&out).await.is_err() {
                    return;
                }
                while let Some(ev) = conn.poll_event() {
                    for m in answer(remote, ev) {
                        conn.send(&m, ms());
                    }
                }
                match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
                    Ok(Ok(n)) => conn.handle_input(&buf[..n], ms()),
                    Err(_) => conn.handle_timeout(ms()),
                }
            }
            let _ = s.write_all(&conn.take_transmit()).await;
        });
    }
}

/// Waits at most `secs` for torrent `h` to be complete (checked or fetched).
pub async fn complete(h: &swarmsite_node::torrents::TorrentHandle, secs: u64, what: &str) {
    use swarmsite_node::torrents::Torrents;
    tokio::time::timeout(
        Duration::from_secs(secs),
        Torrents::wait(h, Duration::from_millis(200), |_| {}),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    .unwrap();
}

/// Overwrites a few bytes of `path` every `step` bytes, in place (same inode), so a
/// librqbit seeder reading it goes on announcing every piece and sends wrong bytes.
pub fn corrupt_in_place(path: &std::path::Path, len: u64, step: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for at in (0..len).step_by(step as usize) {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(b"corrupt").unwrap();
    }
    f.sync_all().unwrap();
}

/// The process's tracing subscriber with a piece audit's layer, made once per test
/// binary (librqbit's tasks run on many threads, so it must be the global one). Logs
/// errors only, unless `RUST_LOG` says otherwise.
pub fn piece_audit() -> swarmsite_node::torrents::PieceAudit {
    use swarmsite_node::torrents::PieceAudit;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    static A: std::sync::OnceLock<PieceAudit> = std::sync::OnceLock::new();
    A.get_or_init(|| {
        let a = PieceAudit::new();
        let log = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(tracing_subscriber::EnvFilter::from_default_env());
        tracing_subscriber::registry()
            .with(log)
            .with(a.layer())
            .init();
        a
    })
    .clone()
}

impl OwnRuntime {
    /// Starts a node on a runtime of its own, from async code.
    pub async fn spawn(cfg: NodeConfig) -> Self {
        tokio::task::spawn_blocking(move || OwnRuntime::start(cfg))
            .await
            .unwrap()
    }

    /// Stops it, from async code.
    pub async fn shutdown(self) {
        tokio::task::spawn_blocking(move || self.stop())
            .await
            .unwrap();
    }
}
