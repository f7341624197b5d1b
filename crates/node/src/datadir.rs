//! The node's data folder: trust stores, added bundles, evidence, and the built-in
//! bundles this client ships (`keys/`).

use std::path::{Path, PathBuf};

use crate::bundle::Bundle;
use crate::evidence::{self, EvidenceLog};
use crate::fsutil;
use crate::name::NetworkTag;

/// The bundles compiled into this client from `keys/`.
const BUILTIN: &[(&str, &str)] = &[(
    "keys/wikileaks.json",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../keys/wikileaks.json"
    )),
)];

/// The bundles this client trusts without being told: `keys/` of the source tree.
pub fn builtin_bundles() -> Vec<Bundle> {
    BUILTIN
        .iter()
        .map(|(path, json)| {
            Bundle::parse(json).unwrap_or_else(|e| panic!("built-in {path} is invalid: {e}"))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("no home folder to put the data folder in; pass --data-dir")]
    NoHome,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Bundle(#[from] crate::stored::StoredError),
    #[error("network {0} is built in and cannot be removed")]
    Builtin(NetworkTag),
    #[error("no bundle for network {0}")]
    Unknown(NetworkTag),
}

/// A node's data folder.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `flag` when given, else the platform's data folder (e.g. `~/.local/share/swarmsite`).
    pub fn resolve(flag: Option<&Path>) -> Result<Self, DataDirError> {
        let root = match flag {
            Some(p) => p.to_path_buf(),
            None => directories::ProjectDirs::from("org", "swarmsite", "swarmsite")
                .ok_or(DataDirError::NoHome)?
                .data_dir()
                .to_path_buf(),
        };
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bundles_dir(&self) -> PathBuf {
        self.root.join("bundles")
    }

    /// Trust store file of network `tag`.
    pub fn trust_path(&self, tag: NetworkTag) -> PathBuf {
        self.root
            .join("networks")
            .join(tag.as_str())
            .join("trust.json")
    }

    pub fn evidence(&self) -> EvidenceLog {
        EvidenceLog::new(
            self.root.join("evidence.jsonl"),
            evidence::DEFAULT_MAX_BYTES,
        )
    }

    /// Built-in bundles, then added ones (an added bundle of the same network wins).
    pub fn bundles(&self) -> Result<Vec<Bundle>, DataDirError> {
        let mut out = builtin_bundles();
        let dir = self.bundles_dir();
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(DataDirError::Io { path: dir, source }),
        };
        paths.sort();
        for path in paths {
            let bundle = crate::stored::read_bundle(&path)?;
            out.retain(|b| b.network() != bundle.network());
            out.push(bundle);
        }
        Ok(out)
    }

    pub fn bundle(&self, tag: NetworkTag) -> Result<Bundle, DataDirError> {
        self.bundles()?
            .into_iter()
            .find(|b| b.network() == tag)
            .ok_or(DataDirError::Unknown(tag))
    }

    /// Adds (or replaces) the bundle of a network.
    pub fn add_bundle(&self, bundle: &Bundle) -> Result<PathBuf, DataDirError> {
        let dir = self.bundles_dir();
        let io = |source| DataDirError::Io {
            path: dir.clone(),
            source,
        };
        fsutil::create_dir(&dir, 0o755).map_err(io)?;
        let path = dir.join(format!("{}.json", bundle.network()));
        fsutil::write_atomic(&path, bundle.to_json().as_bytes(), fsutil::PUBLIC).map_err(io)?;
        Ok(path)
    }

    /// Removes an added bundle; built-in ones stay.
    pub fn remove_bundle(&self, tag: NetworkTag) -> Result<(), DataDirError> {
        let path = self.bundles_dir().join(format!("{tag}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if builtin_bundles().iter().any(|b| b.network() == tag) {
                    Err(DataDirError::Builtin(tag))
                } else {
                    Err(DataDirError::Unknown(tag))
                }
            }
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }
}
