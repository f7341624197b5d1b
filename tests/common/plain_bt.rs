//! Plain BitTorrent clients, which know nothing of swarmsite: libtorrent (Debian's
//! `python3-libtorrent`, through `tests/plain_bt/lt_fetch.py`) and a bare librqbit session.
//! They talk BitTorrent alone to a node, so a test sees what any client of the swarm
//! sees. Everything stays on the loopback address each is given.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ChildGuard;

/// The system's Python, which has libtorrent (not a pyenv one that may be first on PATH).
pub const PYTHON: &str = "/usr/bin/python3";

/// `tests/plain_bt/lt_fetch.py` of the repository (also from the simulator's crate).
pub fn lt_script() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = root.join("tests/plain_bt/lt_fetch.py");
    if here.exists() {
        here
    } else {
        root.join("../tests/plain_bt/lt_fetch.py")
    }
}

/// What a plain client downloaded.
#[derive(Debug, Clone, Copy)]
pub struct Fetched {
    pub bytes: u64,
    pub secs: f64,
}

fn lt_command(
    torrent: &Path,
    peers: &[SocketAddr],
    out: &Path,
    bind_ip: &str,
    secs: u64,
) -> Command {
    let mut c = Command::new(PYTHON);
    c.arg(lt_script()).arg(torrent);
    for p in peers {
        c.arg("--peer").arg(p.to_string());
    }
    c.arg("--out")
        .arg(out)
        .arg("--timeout")
        .arg(secs.to_string())
        .arg("--bind")
        .arg(bind_ip);
    c
}

/// Reads `r` to its end on a thread of its own.
fn read_all(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// libtorrent downloads `torrent` from `peers` alone (and nobody else: no DHT, no local
/// discovery) into `out`, listening and connecting from `bind_ip` only; at most `secs`
/// seconds. A folder torrent's files land in `out/<name>`, as in any client. `Err` holds
/// the script's JSON line and its stderr. The child is killed (by its pid) if it
/// overruns or the test fails.
pub fn libtorrent_fetch(
    torrent: &Path,
    peers: &[SocketAddr],
    out: &Path,
    bind_ip: &str,
    secs: u64,
) -> Result<Fetched, String> {
    let mut child = ChildGuard(
        lt_command(torrent, peers, out, bind_ip, secs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{PYTHON}: {e}"))?,
    );
    let stdout = read_all(child.0.stdout.take().unwrap());
    let stderr = read_all(child.0.stderr.take().unwrap());
    // The script keeps its own deadline; this one is for a script that hangs.
    let deadline = Instant::now() + Duration::from_secs(secs + 15);
    let status = loop {
        if let Some(s) = child.0.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child); // kills it if it still runs, so its pipes close
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        return Err(format!(
            "lt_fetch.py overran {secs} s and was killed: {stdout}{stderr}"
        ));
    };
    let line: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("lt_fetch.py ({status}) printed no JSON ({e}): {stdout}{stderr}"))?;
    if status.success() && line["ok"] == true {
        Ok(Fetched {
            bytes: line["bytes"].as_u64().unwrap_or(0),
            secs: line["secs"].as_f64().unwrap_or(0.0),
        })
    } else {
        Err(format!("lt_fetch.py ({status}): {line} {stderr}"))
    }
}

/// libtorrent seeding the content of `torrent` from the existing folder `dir` (holding
/// `<name>/…` of a folder torrent), listening on `bind_ip` alone: a plain client that
/// may be the only holder of a release. Killed (by its pid) when dropped.
pub struct LibtorrentSeed {
    child: ChildGuard,
    /// Closed on drop: the script stops when its stdin ends.
    _stdin: std::process::ChildStdin,
    /// Where it listens for peers.
    pub addr: SocketAddr,
}

impl LibtorrentSeed {
    /// Starts it and waits (at most `secs`) until it has checked `dir` and seeds. It
    /// also connects to each of `connect_to` (again every few seconds while not
    /// connected), so a node that does not know it can still meet it.
    pub fn start(
        torrent: &Path,
        dir: &Path,
        bind_ip: &str,
        connect_to: &[SocketAddr],
        secs: u64,
    ) -> Result<Self, String> {
        Self::start_with(torrent, dir, bind_ip, connect_to, secs, &[])
    }

    /// [`LibtorrentSeed::start`] without libtorrent's extensions: it gives out pieces
    /// but never the torrent's metadata (no ut_metadata), so whoever fetches from it
    /// must have the metainfo from elsewhere.
    pub fn start_without_metadata(
        torrent: &Path,
        dir: &Path,
        bind_ip: &str,
        secs: u64,
    ) -> Result<Self, String> {
        Self::start_with(torrent, dir, bind_ip, &[], secs, &["--no-metadata"])
    }

    fn start_with(
        torrent: &Path,
        dir: &Path,
        bind_ip: &str,
        connect_to: &[SocketAddr],
        secs: u64,
        extra: &[&str],
    ) -> Result<Self, String> {
        // Its stderr goes to a file beside `dir`: shown if it fails to start.
        let log = dir.with_extension("lt-seed.log");
        let mut child = ChildGuard(
            lt_command(torrent, connect_to, dir, bind_ip, secs)
                .arg("--seed")
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
                .spawn()
                .map_err(|e| format!("{PYTHON}: {e}"))?,
        );
        let stdin = child.0.stdin.take().unwrap();
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(secs + 15))
            .unwrap_or_default();
        let addr = serde_json::from_str::<serde_json::Value>(line.trim())
            .ok()
            .and_then(|v| v["listening"].as_str().and_then(|a| a.parse().ok()));
        let Some(addr) = addr else {
            drop(child);
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("lt_fetch.py --seed: {line:?} {err}"));
        };
        Ok(LibtorrentSeed {
            child,
            _stdin: stdin,
            addr,
        })
    }

    /// The seeder's pid (its `ChildGuard` kills it on drop).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// A bare librqbit session on `ip` (no swarmsite protocol: BitTorrent alone) downloads
/// `ih`, whose metainfo is `torrent`, from `peer` alone into `out` (the torrent's files
/// directly in it, as the node keeps them); at most `secs` seconds, else the test fails.
pub async fn librqbit_fetch(
    torrent: &[u8],
    ih: [u8; 20],
    peer: SocketAddr,
    out: &Path,
    ip: &str,
    secs: u64,
) -> swarmsite_node::torrents::Progress {
    use swarmsite_node::torrents::{Torrents, TorrentsConfig};
    let state = out.with_extension("librqbit-state");
    let session = Torrents::start(TorrentsConfig::loopback(state, ip.parse().unwrap()))
        .await
        .unwrap();
    let h = session
        .add(&ih, Some(torrent.to_vec().into()), out, vec![peer])
        .await
        .unwrap();
    super::complete(
        &h,
        secs,
        &format!("bare librqbit on {ip} fetching from {peer}"),
    )
    .await;
    let p = Torrents::progress(&h);
    session.stop().await;
    p
}

/// Every regular file under `dir`, relative paths, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// `Ok(number of files)` when `got` holds exactly the files of `want`, byte for byte;
/// else what differs.
pub fn same_tree(want: &Path, got: &Path) -> Result<usize, String> {
    let (w, g) = (files_under(want), files_under(got));
    if w != g {
        let missing: Vec<_> = w.iter().filter(|p| !g.contains(p)).take(5).collect();
        let extra: Vec<_> = g.iter().filter(|p| !w.contains(p)).take(5).collect();
        return Err(format!(
            "{} files in {}, {} in {}; missing {missing:?}, extra {extra:?}",
            w.len(),
            want.display(),
            g.len(),
            got.display()
        ));
    }
    for p in &w {
        if std::fs::read(want.join(p)).ok() != std::fs::read(got.join(p)).ok() {
            return Err(format!("{} differs", p.display()));
        }
    }
    Ok(w.len())
}
