//! The protocol's documents as files: the bundle, the trust store and the DNS zone are
//! parsed and checked by `swarmsite_protocol`; this module reads and writes them, and
//! says which file an error came from.

use std::path::Path;

use crate::bundle::{Bundle, BundleError};
use crate::dns::{Zone, ZoneError};
use crate::fsutil;
use crate::trust::{SavedTrustError, TrustStore};

#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Bundle { path: String, source: BundleError },
    #[error("{path}: {source}")]
    Trust {
        path: String,
        source: SavedTrustError,
    },
    #[error("{path}: {source}")]
    Zone { path: String, source: ZoneError },
}

fn read(path: &Path) -> Result<String, StoredError> {
    std::fs::read_to_string(path).map_err(|source| StoredError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A network's bundle (`keys/<network>.json`, or one added with `swarmsite bundle add`).
pub fn read_bundle(path: &Path) -> Result<Bundle, StoredError> {
    Bundle::parse(&read(path)?).map_err(|source| StoredError::Bundle {
        path: path.display().to_string(),
        source,
    })
}

/// The trust store saved at `path`, or a fresh one from `bundle` if there is none.
pub fn load_trust(path: &Path, bundle: &Bundle) -> Result<TrustStore, StoredError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TrustStore::from_bundle(bundle));
        }
        Err(source) => {
            return Err(StoredError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    TrustStore::from_saved(&text, bundle).map_err(|source| StoredError::Trust {
        path: path.display().to_string(),
        source,
    })
}

/// Saves the trust store atomically: a crash leaves the old file or the new one.
pub fn save_trust(store: &TrustStore, path: &Path) -> Result<(), StoredError> {
    fsutil::write_atomic(path, &store.to_saved(), fsutil::PUBLIC).map_err(|source| {
        StoredError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

/// The DNS front's zone file, checked; its serial defaults to the time it was read.
pub fn read_zone(path: &Path) -> Result<Zone, StoredError> {
    Zone::parse(&read(path)?, crate::clock::unix_secs()).map_err(|source| StoredError::Zone {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_file_round_trips_and_a_missing_one_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.json");
        let bundle = crate::datadir::builtin_bundles().remove(0);
        let fresh = load_trust(&path, &bundle).unwrap();
        save_trust(&fresh, &path).unwrap();
        let back = load_trust(&path, &bundle).unwrap();
        assert_eq!(back.to_saved(), fresh.to_saved());
        std::fs::write(&path, b"{not json").unwrap();
        let err = load_trust(&path, &bundle).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("not a trust store file"), "{err}");
    }
}
