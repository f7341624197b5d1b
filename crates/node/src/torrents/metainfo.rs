//! The metainfo (`.torrent` bytes) of every torrent a node holds, kept on disk so that
//! after a restart it can add each torrent again and seed it at once, with no peer to
//! ask (docs/ARCHITECTURE.md: "everything a node holds, it can seed alone").
//!
//! ```text
//! <state>/metainfo/<info hash hex>.torrent
//! ```
//!
//! Content-addressed: a file is kept only when the SHA-1 of its raw `info` dictionary is
//! the info hash it is filed under, and it is checked again when read, so a damaged or
//! planted file is never handed to librqbit.

use std::io;
use std::path::{Path, PathBuf};

/// Largest metainfo kept (the wire's limit: a peer is never asked for more).
pub use crate::wire::message::MAX_METAINFO_LEN;

/// Why bytes are not the metainfo of an info hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetainfoError {
    #[error("metainfo of {0} bytes is over the {MAX_METAINFO_LEN}-byte limit")]
    TooLarge(usize),
    #[error("not a torrent metainfo: {0}")]
    Parse(String),
    #[error("metainfo has info hash {got}, not {want}")]
    WrongInfoHash { want: String, got: String },
}

/// A file of a torrent: path relative to the output folder, and length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub len: u64,
}

/// Checks that `bytes` are the metainfo of `ih` and lists its files.
pub fn check(ih: &[u8; 20], bytes: &[u8]) -> Result<Vec<FileEntry>, MetainfoError> {
    if bytes.len() > MAX_METAINFO_LEN {
        return Err(MetainfoError::TooLarge(bytes.len()));
    }
    let t = librqbit::torrent_from_bytes(bytes).map_err(|e| MetainfoError::Parse(e.to_string()))?;
    if t.info_hash.0 != *ih {
        return Err(MetainfoError::WrongInfoHash {
            want: hex::encode(ih),
            got: hex::encode(t.info_hash.0),
        });
    }
    // librqbit's own validation: lengths fit, at least one file, no path traversal.
    let info = t
        .info
        .data
        .validate()
        .map_err(|e| MetainfoError::Parse(e.to_string()))?;
    Ok(info
        .iter_file_details()
        .map(|d| FileEntry {
            path: d.filename.to_pathbuf(),
            len: d.len,
        })
        .collect())
}

/// The folder of kept metainfo files.
#[derive(Clone, Debug)]
pub struct MetainfoStore {
    dir: PathBuf,
}

impl MetainfoStore {
    /// Opens (creating) the store in `dir`, sweeping what interrupted writes left.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        crate::fsutil::create_dir(&dir, 0o755)?;
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                // write_atomic's temp files start with a dot.
                if e.file_name().to_string_lossy().starts_with('.') {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(MetainfoStore { dir })
    }

    fn path(&self, ih: &[u8; 20]) -> PathBuf {
        self.dir.join(format!("{}.torrent", hex::encode(ih)))
    }

    /// The kept metainfo of `ih`, when there is one and it still checks.
    pub fn get(&self, ih: &[u8; 20]) -> Option<bytes::Bytes> {
        let path = self.path(ih);
        let bytes = std::fs::read(&path).ok()?;
        match check(ih, &bytes) {
            Ok(_) => Some(bytes.into()),
            Err(e) => {
                tracing::warn!("{}: {e}; removed", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps `bytes` as the metainfo of `ih` (checked first; a kept one is not written
    /// again).
    pub fn put(&self, ih: &[u8; 20], bytes: &[u8]) -> Result<(), PutError> {
        check(ih, bytes)?;
        let path = self.path(ih);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        crate::fsutil::write_atomic(&path, bytes, crate::fsutil::PUBLIC)
            .map_err(|source| PutError::Io { path, source })
    }

    /// Forgets the metainfo of `ih` (its content is gone for good).
    pub fn remove(&self, ih: &[u8; 20]) {
        let _ = std::fs::remove_file(self.path(ih));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("{0}")]
    Metainfo(#[from] MetainfoError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_checked_and_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.txt"), b"hello").unwrap();
        let t = crate::metainfo_file::make(tmp.path(), "site").unwrap();
        let store = MetainfoStore::open(tmp.path().join("meta")).unwrap();
        assert_eq!(store.get(&t.info_hash), None);
        store.put(&t.info_hash, &t.bytes).unwrap();
        assert_eq!(store.get(&t.info_hash).unwrap().as_ref(), &t.bytes[..]);
        let files = check(&t.info_hash, &t.bytes).unwrap();
        assert_eq!(
            files,
            [FileEntry {
                path: "a.txt".into(),
                len: 5
            }]
        );
        // Filed under another info hash: refused.
        assert!(matches!(
            store.put(&[7; 20], &t.bytes),
            Err(PutError::Metainfo(MetainfoError::WrongInfoHash { .. }))
        ));
        assert!(matches!(
            check(&[7; 20], b"garbage"),
            Err(MetainfoError::Parse(_))
        ));
        // A file damaged on disk is dropped, not used.
        std::fs::write(store.path(&t.info_hash), b"d4:infod4:name1:xee").unwrap();
        assert_eq!(store.get(&t.info_hash), None);
        assert!(!store.path(&t.info_hash).exists());
        store.put(&t.info_hash, &t.bytes).unwrap();
        store.remove(&t.info_hash);
        assert_eq!(store.get(&t.info_hash), None);
        // Leftover temp files of a killed write are swept on open.
        std::fs::write(store.dir().join(".tmp-x.torrent-1"), b"half").unwrap();
        let store = MetainfoStore::open(store.dir().to_path_buf()).unwrap();
        assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 0);
    }
}
