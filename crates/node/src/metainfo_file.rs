//! Deterministic BitTorrent v1 metainfo for a file or a folder.
//!
//! Written here rather than taken from librqbit's `create_torrent` because the
//! publisher needs a *reproducible* info hash: the same folder always gives the same
//! bytes (files in byte order of their paths, piece length from the total size, no
//! dates or client names inside `info`), so anyone holding the folder can recompute
//! and check the `ih` a release record signs.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::bencode::{self, Limits, Value};

const MIN_PIECE: u64 = 16 * 1024;
const MAX_PIECE: u64 = 16 * 1024 * 1024;
/// Aim for about this many pieces: small pieces let a one-file change cost little.
const TARGET_PIECES: u64 = 1500;
/// Largest metainfo file read back.
const MAX_TORRENT_LEN: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: symbolic links and special files cannot be published")]
    NotRegular(PathBuf),
    #[error("{0}: file names must be UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0}: nothing to publish (no files)")]
    Empty(PathBuf),
    #[error("{0}: changed while it was being hashed")]
    Changed(PathBuf),
    #[error("not a torrent file: {0}")]
    Parse(String),
}

/// One file of a torrent, relative to its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentEntry {
    pub path: Vec<String>,
    pub length: u64,
}

/// A metainfo file and what it describes.
#[derive(Clone, Debug)]
pub struct Torrent {
    pub info_hash: [u8; 20],
    /// The whole `.torrent` file.
    pub bytes: Vec<u8>,
    pub name: String,
    pub piece_length: u64,
    pub total_size: u64,
    /// Empty for a single-file torrent.
    pub files: Vec<TorrentEntry>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TorrentError + '_ {
    move |source| TorrentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The piece length for `total` bytes: a power of two, 16 KiB to 16 MiB.
pub fn piece_length_for(total: u64) -> u64 {
    (total / TARGET_PIECES)
        .next_power_of_two()
        .clamp(MIN_PIECE, MAX_PIECE)
}

/// Lists the regular files under `root`, sorted by path bytes, refusing links.
pub fn list_files(root: &Path) -> Result<Vec<TorrentEntry>, TorrentError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<TorrentEntry>) -> Result<(), TorrentError> {
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).expect("under root");
                let parts = rel
                    .components()
                    .map(|c| c.as_os_str().to_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| TorrentError::NotUtf8(path.clone()))?;
                out.push(TorrentEntry {
                    path: parts,
                    length: meta.len(),
                });
            } else {
                return Err(TorrentError::NotRegular(path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Hashes pieces across a sequence of files, in order.
struct PieceHasher {
    piece_length: u64,
    filled: u64,
    current: Sha1,
    pieces: Vec<u8>,
}

impl PieceHasher {
    fn new(piece_length: u64) -> Self {
        PieceHasher {
            piece_length,
            filled: 0,
            current: Sha1::new(),
            pieces: Vec::new(),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (self.piece_length - self.filled) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.filled += take as u64;
            data = &data[take..];
            if self.filled == self.piece_length {
                self.pieces
                    .extend_from_slice(&std::mem::take(&mut self.current).finalize());
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.pieces.extend_from_slice(&self.current.finalize());
        }
        self.pieces
    }
}

fn hash_file(path: &Path, expected: u64, hasher: &mut PieceHasher) -> Result<(), TorrentError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut seen = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        if seen > expected {
            return Err(TorrentError::Changed(path.to_path_buf()));
        }
        hasher.update(&buf[..n]);
    }
    if seen != expected {
        return Err(TorrentError::Changed(path.to_path_buf()));
    }
    Ok(())
}

/// Makes the metainfo for the file or folder at `path`, named `name`.
pub fn make(path: &Path, name: &str) -> Result<Torrent, TorrentError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    let mut info = std::collections::BTreeMap::new();
    let (files, total) = if meta.is_file() {
        (Vec::new(), meta.len())
    } else if meta.is_dir() {
        let files = list_files(path)?;
        if files.is_empty() {
            return Err(TorrentError::Empty(path.to_path_buf()));
        }
        let total = files.iter().map(|f| f.length).sum();
        (files, total)
    } else {
        return Err(TorrentError::NotRegular(path.to_path_buf()));
    };
    let piece_length = piece_length_for(total);
    let mut hasher = PieceHasher::new(piece_length);
    if files.is_empty() {
        hash_file(path, total, &mut hasher)?;
        info.insert(b"length".to_vec(), Value::Int(total as i64));
    } else {
        let mut list = Vec::new();
        for f in &files {
            let full: PathBuf = f.path.iter().fold(path.to_path_buf(), |p, c| p.join(c));
            hash_file(&full, f.length, &mut hasher)?;
            list.push(bencode::dict([
                ("length", Value::Int(f.length as i64)),
                (
                    "path",
                    Value::List(
                        f.path
                            .iter()
                            .map(|c| Value::Bytes(c.clone().into_bytes()))
                            .collect(),
                    ),
                ),
            ]));
        }
        info.insert(b"files".to_vec(), Value::List(list));
    }
    info.insert(b"name".to_vec(), Value::Bytes(name.as_bytes().to_vec()));
    info.insert(b"piece length".to_vec(), Value::Int(piece_length as i64));
    info.insert(b"pieces".to_vec(), Value::Bytes(hasher.finish()));
    let info = Value::Dict(info);
    let info_hash: [u8; 20] = Sha1::digest(bencode::encode(&info)).into();
    let bytes = bencode::encode(&bencode::dict([("info", info)]));
    Ok(Torrent {
        info_hash,
        bytes,
        name: name.to_string(),
        piece_length,
        total_size: total,
        files,
    })
}

/// The `name` field of a metainfo file.
pub fn name_of(bytes: &[u8]) -> Result<String, TorrentError> {
    let value = decode_torrent(bytes)?;
    let name = match &value {
        Value::Dict(top) => match top.get(b"info".as_slice()) {
            Some(Value::Dict(info)) => info.get(b"name".as_slice()),
            _ => None,
        },
        _ => None,
    };
    match name {
        Some(Value::Bytes(b)) => String::from_utf8(b.clone())
            .map_err(|_| TorrentError::Parse("name is not UTF-8".into())),
        _ => Err(TorrentError::Parse("no info.name".into())),
    }
}

fn decode_torrent(bytes: &[u8]) -> Result<Value, TorrentError> {
    let limits = Limits {
        max_len: MAX_TORRENT_LEN,
        max_depth: 8,
    };
    bencode::decode(bytes, limits).map_err(|e| TorrentError::Parse(e.to_string()))
}

/// The paths of a metainfo's files, in the torrent's order (a single-file torrent: its
/// name).
pub fn file_paths(bytes: &[u8]) -> Result<Vec<Vec<String>>, TorrentError> {
    let bad = |why: &str| TorrentError::Parse(why.into());
    let text = |v: &Value| match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| bad("a path is not UTF-8")),
        _ => Err(bad("a path is not a string")),
    };
    let Value::Dict(top) = decode_torrent(bytes)? else {
        return Err(bad("not a dictionary"));
    };
    let Some(Value::Dict(info)) = top.get(b"info".as_slice()) else {
        return Err(bad("no info"));
    };
    match (info.get(b"files".as_slice()), info.get(b"name".as_slice())) {
        (Some(Value::List(files)), _) => files
            .iter()
            .map(|f| match f {
                Value::Dict(f) => match f.get(b"path".as_slice()) {
                    Some(Value::List(parts)) => parts.iter().map(text).collect(),
                    _ => Err(bad("a file has no path")),
                },
                _ => Err(bad("a file is not a dictionary")),
            })
            .collect(),
        (None, Some(name)) => Ok(vec![vec![text(name)?]]),
        _ => Err(bad("no files and no name")),
    }
}

/// Reads back a metainfo file made by [`make`] (or any canonical one) and returns its
/// info hash: the SHA-1 of the `info` dictionary's bytes.
pub fn info_hash_of(bytes: &[u8]) -> Result<[u8; 20], TorrentError> {
    let Value::Dict(top) = decode_torrent(bytes)? else {
        return Err(TorrentError::Parse("not a dictionary".into()));
    };
    let info = top
        .get(b"info".as_slice())
        .ok_or_else(|| TorrentError::Parse("no info".into()))?;
    // Strict decoding accepted only canonical bytes, so re-encoding gives them back.
    Ok(Sha1::digest(bencode::encode(info)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_torrent_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/z.txt"), vec![1u8; 40_000]).unwrap();
        std::fs::write(dir.path().join("a.html"), b"<h1>hi</h1>").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let t1 = make(dir.path(), "site").unwrap();
        let t2 = make(dir.path(), "site").unwrap();
        assert_eq!(t1.bytes, t2.bytes);
        assert_eq!(info_hash_of(&t1.bytes).unwrap(), t1.info_hash);
        assert_eq!(
            file_paths(&t1.bytes).unwrap(),
            [vec!["a.html"], vec!["b", "z.txt"], vec!["empty"]]
        );
        assert_eq!(t1.files[0].path, vec!["a.html"]);
        assert_eq!(t1.files[2].path, vec!["empty"]);
        assert_eq!(t1.total_size, 40_011);
        assert_eq!(t1.piece_length, 16 * 1024);
        std::fs::write(dir.path().join("a.html"), b"<h1>ho</h1>").unwrap();
        assert_ne!(make(dir.path(), "site").unwrap().info_hash, t1.info_hash);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
            assert!(matches!(
                make(dir.path(), "site"),
                Err(TorrentError::NotRegular(_))
            ));
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            make(empty.path(), "site"),
            Err(TorrentError::Empty(_))
        ));
    }

    #[test]
    fn piece_lengths() {
        assert_eq!(piece_length_for(0), MIN_PIECE);
        assert_eq!(piece_length_for(50 << 20), 64 * 1024);
        assert_eq!(piece_length_for(1 << 40), MAX_PIECE);
    }
}
