//! The evidence log (SPEC §8): every refusal, with who sent what and why.
//!
//! Append-only JSON lines, one `write` per entry so concurrent appends never
//! interleave. When the file passes its size bound it is rotated to `<file>.1`
//! (replacing the older one), so evidence never fills the disk.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Default bound of the live file.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024;

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

    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }

    /// Appends one entry (file mode 0600: it names peers).
    pub fn append(&self, evidence: &Evidence) -> io::Result<()> {
        let mut line = serde_json::to_vec(evidence).map_err(io::Error::other)?;
        line.push(b'\n');
        if let Ok(meta) = fs::metadata(&self.path)
            && meta.len() + line.len() as u64 > self.max_bytes
        {
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

    /// All entries, oldest first (rotated file, then live file). Lines that do not
    /// parse (a torn last line after a crash) are skipped.
    pub fn read_all(&self) -> io::Result<Vec<Evidence>> {
        let mut out = Vec::new();
        for path in [self.rotated(), self.path.clone()] {
            let file = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in io::BufReader::new(file).lines() {
                if let Ok(entry) = serde_json::from_str(&line?) {
                    out.push(entry);
                }
            }
        }
        Ok(out)
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
}
