//! The evidence log (SPEC §8): every refusal, with who sent what and why.
//!
//! Append-only JSON lines, one `write` per entry so concurrent appends never
//! interleave. When the file passes its size bound it is rotated to `<file>.1`
//! (replacing the older one), so evidence never fills the disk; the oldest entry of each
//! reason leaving with the older file is kept in `<file>.first`, so a flood of one kind
//! cannot wash out the first evidence of another. [`EvidenceBudget`] bounds how many
//! lines one address gets written, and [`EvidenceLog::spawn_writer`] writes them off the
//! caller's thread.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Default bound of the live file.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// Reasons whose first entry `<file>.first` keeps at most.
const MAX_FIRSTS: usize = 64;

/// One refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Unix seconds.
    pub time: u64,
    /// Peer address (`ip:port`), when the object came from the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// DHT node id of the peer, hex, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// System name (hex) or info hash of the object, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Stable reason code (e.g. `bad-signature`).
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
}

/// An append-only, size-bounded evidence file.
#[derive(Clone, Debug)]
pub struct EvidenceLog {
    path: PathBuf,
    max_bytes: u64,
}

impl EvidenceLog {
    pub fn new(path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        EvidenceLog {
            path: path.into(),
            max_bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn rotated(&self) -> PathBuf {
        self.sibling(".1")
    }

    fn firsts(&self) -> PathBuf {
        self.sibling(".first")
    }

    /// Before the older file is replaced: the entries of reasons `<file>.first` does
    /// not have yet move there (the oldest of each).
    fn keep_firsts(&self) -> io::Result<()> {
        let leaving = read_lines(&self.rotated())?;
        if leaving.is_empty() {
            return Ok(());
        }
        let mut kept: Vec<String> = read_lines(&self.firsts())?
            .into_iter()
            .map(|e| e.reason)
            .collect();
        let mut out = Vec::new();
        for e in leaving {
            if kept.len() < MAX_FIRSTS && !kept.contains(&e.reason) {
                kept.push(e.reason.clone());
                out.extend(serde_json::to_vec(&e).map_err(io::Error::other)?);
                out.push(b'\n');
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        opts.mode(fsutil::PRIVATE);
        let mut file = opts.open(self.firsts())?;
        file.write_all(&out)?;
        file.sync_data()
    }

    /// Writes the entries sent to the returned sender on a thread of its own, in
    /// order, until every sender is gone. `try_send` on it never blocks the caller: a
    /// full queue (1,024 entries) means the entry is dropped.
    pub fn spawn_writer(self) -> std::sync::mpsc::SyncSender<Evidence> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Evidence>(1024);
        let spawned = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || {
                for entry in rx {
                    if let Err(e) = self.append(&entry) {
                        tracing::error!("writing evidence: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("no evidence writer: {e}");
        }
        tx
    }

    /// Appends one entry (file mode 0600: it names peers).
    pub fn append(&self, evidence: &Evidence) -> io::Result<()> {
        let mut line = serde_json::to_vec(evidence).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Ok(meta) = fs::metadata(&self.path)
            && meta.len() + line.len() as u64 > self.max_bytes
        {
            self.keep_firsts()?;
            fs::rename(&self.path, self.rotated())?;
        }
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        opts.mode(fsutil::PRIVATE);
        let mut file = opts.open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }

    /// All entries, oldest first (the first of each reason rotated out, the rotated
    /// file, then the live file). Lines that do not parse (a torn last line after a
    /// crash) are skipped.
    pub fn read_all(&self) -> io::Result<Vec<Evidence>> {
        let mut out = Vec::new();
        for path in [self.firsts(), self.rotated(), self.path.clone()] {
            out.extend(read_lines(&path)?);
        }
        Ok(out)
    }
}

fn read_lines(path: &Path) -> io::Result<Vec<Evidence>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in io::BufReader::new(file).lines() {
        if let Ok(entry) = serde_json::from_str(&line?) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// How many evidence lines one address gets written (sans-IO): `per_window` in each
/// `window_ms`; what is over is counted, and the first line of the next window says how
/// many were left out. A peer that sends junk as fast as the wire allows costs the
/// disk a few lines a minute, not a write per message.
pub struct EvidenceBudget {
    per_window: u32,
    window_ms: u64,
    /// Per address: when its window started, lines written in it, lines left out.
    seen: HashMap<std::net::IpAddr, (u64, u32, u32)>,
}

/// Addresses tracked at most; past it the oldest windows are dropped.
const MAX_TRACKED: usize = 4096;

impl EvidenceBudget {
    pub fn new(per_window: u32, window_ms: u64) -> Self {
        EvidenceBudget {
            per_window,
            window_ms,
            seen: HashMap::new(),
        }
    }

    /// `None`: leave this line out. `Some(n)`: write it; `n` lines of this address
    /// were left out before it. Evidence that names no address is always written.
    pub fn admit(&mut self, ip: Option<std::net::IpAddr>, now: u64) -> Option<u32> {
        let Some(ip) = ip else {
            return Some(0);
        };
        if self.seen.len() >= MAX_TRACKED && !self.seen.contains_key(&ip) {
            let window = self.window_ms;
            self.seen
                .retain(|_, (start, _, _)| now.saturating_sub(*start) < window);
            if self.seen.len() >= MAX_TRACKED {
                self.seen.clear();
            }
        }
        let (start, written, left_out) = self.seen.entry(ip).or_insert((now, 0, 0));
        let mut carried = 0;
        if now.saturating_sub(*start) >= self.window_ms {
            carried = std::mem::take(left_out);
            (*start, *written) = (now, 0);
        }
        if *written >= self.per_window {
            *left_out += 1;
            return None;
        }
        *written += 1;
        Some(carried)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let log = EvidenceLog::new(dir.path().join("evidence.jsonl"), 400);
        for i in 0..10 {
            log.append(&Evidence {
                time: i,
                peer: Some("127.0.0.2:7000".into()),
                node_id: None,
                object: None,
                reason: "bad-signature".into(),
                detail: "x".repeat(20),
            })
            .unwrap();
        }
        let all = log.read_all().unwrap();
        assert!(all.len() < 10 && all.len() >= 4, "bounded: {}", all.len());
        assert_eq!(all.last().unwrap().time, 9);
        assert!(fs::metadata(log.path()).unwrap().len() <= 400);
    }

    fn entry(time: u64, reason: &str) -> Evidence {
        Evidence {
            time,
            peer: Some("127.0.0.9:7000".into()),
            node_id: None,
            object: None,
            reason: reason.into(),
            detail: "x".repeat(20),
        }
    }

    #[test]
    fn a_flood_of_one_kind_keeps_the_first_of_each_other_kind() {
        let dir = tempfile::tempdir().unwrap();
        let log = EvidenceLog::new(dir.path().join("evidence.jsonl"), 1000);
        log.append(&entry(1, "bad-signature")).unwrap();
        log.append(&entry(2, "bad-piece")).unwrap();
        for t in 3..500 {
            log.append(&entry(t, "malformed")).unwrap();
        }
        let all = log.read_all().unwrap();
        let first_of = |r: &str| all.iter().find(|e| e.reason == r).map(|e| e.time);
        assert_eq!(first_of("bad-signature"), Some(1));
        assert_eq!(first_of("bad-piece"), Some(2));
        assert_eq!(first_of("malformed"), Some(3), "the first of the flood too");
        assert_eq!(all.last().unwrap().time, 499);
        assert!(all.len() < 40, "still bounded: {}", all.len());
    }

    #[test]
    fn the_budget_leaves_out_a_flood_and_says_so() {
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let mut b = EvidenceBudget::new(3, 60_000);
        let written: Vec<Option<u32>> = (0..10).map(|i| b.admit(Some(ip), i)).collect();
        assert_eq!(written[..4], [Some(0), Some(0), Some(0), None]);
        assert_eq!(b.admit(Some("10.0.0.2".parse().unwrap()), 10), Some(0));
        assert_eq!(b.admit(None, 10), Some(0));
        // The next window: its first line counts the 7 left out.
        assert_eq!(b.admit(Some(ip), 60_000), Some(7));
        assert_eq!(b.admit(Some(ip), 60_001), Some(0));
    }

    #[test]
    fn the_writer_thread_writes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EvidenceLog::new(dir.path().join("evidence.jsonl"), DEFAULT_MAX_BYTES);
        let tx = log.clone().spawn_writer();
        for t in 0..50 {
            tx.try_send(entry(t, "bad-signature")).unwrap();
        }
        drop(tx);
        let start = std::time::Instant::now();
        while log.read_all().unwrap().len() < 50 {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let times: Vec<u64> = log.read_all().unwrap().iter().map(|e| e.time).collect();
        assert_eq!(times, (0..50).collect::<Vec<_>>());
    }
}
