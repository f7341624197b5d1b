//! A node's on-disk state for one network: the newest accepted record per slot, and the
//! site releases it serves.
//!
//! ```text
//! <data>/networks/<TAG>/
//!   trust.json                   the trust store (crate::trust)
//!   records/<kind>-<id>.rec      newest accepted record of each slot
//!   sites/<id>/current           "<N>": the release being served (atomic pointer)
//!   sites/<id>/v<N>/             a release: complete once v<N>.rec exists
//!   sites/<id>/v<N>.rec          its signed record, written when it completed
//!   published.json               content this node published itself: info hash → the
//!                                publisher's folder it is seeded from
//! ```
//!
//! A release downloads into its own folder beside the served one (librqbit seeds it from
//! there afterwards, so it never moves). Its record is written only after the download
//! completed and verified, and `current` is replaced atomically after that; so whatever
//! moment the process dies at, `current` names a complete release, and a folder newer
//! than `current` is a download to resume.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil;
use crate::name::{NetworkTag, Slot};
use crate::record::Record;

#[derive(Clone, Debug)]
pub struct NodeStore {
    root: PathBuf,
}

/// Records read back from disk.
pub struct LoadedRecords {
    pub records: Vec<(Record, Arc<[u8]>)>,
    /// Files that no longer decode.
    pub unreadable: Vec<PathBuf>,
}

/// A release on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRelease {
    pub version: u32,
    pub dir: PathBuf,
    pub record: Vec<u8>,
}

impl NodeStore {
    /// Opens (creating) the store of network `tag` under the data folder `data`, and
    /// removes what interrupted writes left behind.
    pub fn open(data: &Path, tag: NetworkTag) -> io::Result<Self> {
        let root = data.join("networks").join(tag.as_str());
        for sub in ["records", "sites"] {
            fsutil::create_dir(&root.join(sub), 0o755)?;
        }
        fsutil::sweep_staging(&root.join("records"))?;
        let store = NodeStore { root };
        for entry in std::fs::read_dir(store.root.join("sites"))? {
            fsutil::sweep_staging(&entry?.path())?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn trust_path(&self) -> PathBuf {
        self.root.join("trust.json")
    }

    fn record_path(&self, slot: Slot) -> PathBuf {
        self.root
            .join("records")
            .join(format!("{:04x}-{}.rec", slot.0, slot.1))
    }

    /// Keeps `bytes` as the newest record of its slot.
    pub fn save_record(&self, record: &Record, bytes: &[u8]) -> io::Result<()> {
        fsutil::write_atomic(&self.record_path(record.name.slot()), bytes, fsutil::PUBLIC)
    }

    /// Forgets the stored record of `name`'s slot when it is that version (a newer key
    /// set no longer vouches for it).
    pub fn drop_record(&self, name: crate::name::SystemName) -> io::Result<()> {
        let path = self.record_path(name.slot());
        match std::fs::read(&path) {
            Ok(bytes) if Record::decode(&bytes).is_ok_and(|r| r.name == name) => {
                std::fs::remove_file(&path)
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every stored record. Files that no longer decode are skipped (and reported).
    pub fn records(&self) -> io::Result<LoadedRecords> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for entry in std::fs::read_dir(self.root.join("records"))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "rec") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            match Record::decode(&bytes) {
                Ok(r) => out.push((r, Arc::from(bytes))),
                Err(_) => bad.push(path),
            }
        }
        out.sort_by_key(|(r, _)| r.name);
        Ok(LoadedRecords {
            records: out,
            unreadable: bad,
        })
    }

    fn published_path(&self) -> PathBuf {
        self.root.join("published.json")
    }

    /// The folders of content this node published itself (`publish --push`), by info
    /// hash: seeded from there, so they must outlive a restart that comes before the
    /// content was copied anywhere. Folders that are gone are left out.
    pub fn published(&self) -> std::collections::HashMap<[u8; 20], PathBuf> {
        let Ok(bytes) = std::fs::read(self.published_path()) else {
            return Default::default();
        };
        let map: std::collections::BTreeMap<String, PathBuf> =
            serde_json::from_slice(&bytes).unwrap_or_default();
        map.into_iter()
            .filter(|(_, dir)| dir.join(crate::publisher::TORRENT_FILE).is_file())
            .filter_map(|(ih, dir)| Some((hex::decode(ih).ok()?.try_into().ok()?, dir)))
            .collect()
    }

    /// Keeps `published` (see [`NodeStore::published`]).
    pub fn save_published(
        &self,
        published: &std::collections::HashMap<[u8; 20], PathBuf>,
    ) -> io::Result<()> {
        let map: std::collections::BTreeMap<String, &PathBuf> = published
            .iter()
            .map(|(ih, dir)| (hex::encode(ih), dir))
            .collect();
        let json = serde_json::to_vec_pretty(&map).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.published_path(), &json, fsutil::PUBLIC)
    }

    pub fn site_dir(&self, site: u32) -> PathBuf {
        self.root.join("sites").join(site.to_string())
    }

    pub fn release_dir(&self, site: u32, version: u32) -> PathBuf {
        self.site_dir(site).join(format!("v{version}"))
    }

    /// The release being served, if any.
    pub fn current(&self, site: u32) -> io::Result<Option<StoredRelease>> {
        let dir = self.site_dir(site);
        let text = match std::fs::read_to_string(dir.join("current")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let version: u32 = text.trim().parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a version", dir.join("current").display()),
            )
        })?;
        let record = std::fs::read(dir.join(format!("v{version}.rec")))?;
        Ok(Some(StoredRelease {
            version,
            dir: self.release_dir(site, version),
            record,
        }))
    }

    /// Makes the completed download of `version` the served release: writes its record,
    /// switches `current`, and removes older releases. Each step is atomic, and the
    /// order keeps `current` valid throughout.
    pub fn promote(&self, site: u32, version: u32, record: &[u8]) -> io::Result<StoredRelease> {
        let dir = self.site_dir(site);
        let final_dir = self.release_dir(site, version);
        if !final_dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is missing", final_dir.display()),
            ));
        }
        fsutil::write_atomic(&dir.join(format!("v{version}.rec")), record, fsutil::PUBLIC)?;
        fsutil::write_atomic(
            &dir.join("current"),
            version.to_string().as_bytes(),
            fsutil::PUBLIC,
        )?;
        self.remove_older(site, version)?;
        Ok(StoredRelease {
            version,
            dir: final_dir,
            record: record.to_vec(),
        })
    }

    /// Removes release `version` of `site` for good, `current` first when it names it
    /// (then nothing is served until another release completes: never a release no
    /// key set vouches for).
    pub fn drop_release(&self, site: u32, version: u32) -> io::Result<()> {
        let dir = self.site_dir(site);
        if self
            .current(site)
            .ok()
            .flatten()
            .is_some_and(|c| c.version == version)
        {
            std::fs::remove_file(dir.join("current"))?;
            fsutil::sync_dir(&dir)?;
        }
        match std::fs::remove_file(dir.join(format!("v{version}.rec"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match std::fs::remove_dir_all(self.release_dir(site, version)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes releases (complete or not) older than `keep`.
    fn remove_older(&self, site: u32, keep: u32) -> io::Result<()> {
        self.remove_releases(site, |v| v < keep)
    }

    /// Removes every release of `site` but the served one and `resuming` (a download
    /// to go on with, when newer): what a process killed between two steps of a switch or
    /// an abandoned download left behind. Called at start, before anything uses them.
    pub fn sweep_releases(&self, site: u32, resuming: Option<u32>) -> io::Result<()> {
        if !self.site_dir(site).is_dir() {
            return Ok(());
        }
        // An unreadable `current` stops the sweep: better a stale folder than the
        // served one gone.
        let served = self.current(site)?.map(|c| c.version);
        let resuming = resuming.filter(|&r| served.is_none_or(|s| r > s));
        self.remove_releases(site, |v| Some(v) != served && Some(v) != resuming)
    }

    /// Removes each `v<N>` folder and `v<N>.rec` file of `site` with `doomed(N)`.
    fn remove_releases(&self, site: u32, doomed: impl Fn(u32) -> bool) -> io::Result<()> {
        for entry in std::fs::read_dir(self.site_dir(site))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix('v') else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let Ok(v) = digits.parse::<u32>() else {
                continue;
            };
            if doomed(v) {
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::SystemName;
    use crate::record::Payload;

    #[test]
    fn records_and_releases_survive_reopening() {
        let data = tempfile::tempdir().unwrap();
        let tag = NetworkTag::DEFAULT;
        let store = NodeStore::open(data.path(), tag).unwrap();
        let r = Record::new(
            SystemName::new(tag, 0x1000, 1, 2),
            5,
            Payload::Body(b"x".to_vec()),
        )
        .unwrap();
        let bytes = r.encode().unwrap();
        store.save_record(&r, &bytes).unwrap();
        std::fs::write(store.root().join("records/broken.rec"), b"junk").unwrap();

        assert_eq!(store.current(1).unwrap(), None);
        std::fs::create_dir_all(store.release_dir(1, 1)).unwrap();
        std::fs::write(store.release_dir(1, 1).join("index.html"), "v1").unwrap();
        store.promote(1, 1, b"rec1").unwrap();
        std::fs::create_dir_all(store.release_dir(1, 2)).unwrap();
        std::fs::write(store.release_dir(1, 2).join("index.html"), "v2").unwrap();
        // Until promoted, v1 stays current.
        assert_eq!(store.current(1).unwrap().unwrap().version, 1);
        store.promote(1, 2, b"rec2").unwrap();

        let again = NodeStore::open(data.path(), tag).unwrap();
        let loaded = again.records().unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.records[0].0, r);
        assert_eq!(loaded.unreadable.len(), 1);
        let cur = again.current(1).unwrap().unwrap();
        assert_eq!(
            (cur.version, cur.record.as_slice()),
            (2, b"rec2".as_slice())
        );
        assert_eq!(
            std::fs::read_to_string(cur.dir.join("index.html")).unwrap(),
            "v2"
        );
        assert!(
            !again.release_dir(1, 1).exists(),
            "old release removed after the switch"
        );
    }

    #[test]
    fn the_sweep_at_start_keeps_the_served_release_and_the_one_resumed() {
        let data = tempfile::tempdir().unwrap();
        let store = NodeStore::open(data.path(), NetworkTag::DEFAULT).unwrap();
        store.sweep_releases(1, None).unwrap();
        for v in 1..=5 {
            std::fs::create_dir_all(store.release_dir(1, v)).unwrap();
            std::fs::write(store.release_dir(1, v).join("index.html"), "x").unwrap();
        }
        store.promote(1, 3, b"rec3").unwrap();
        // What a kill mid-way leaves: an older release, a stray record, two downloads.
        std::fs::create_dir_all(store.release_dir(1, 2)).unwrap();
        std::fs::write(store.site_dir(1).join("v4.rec"), b"rec4").unwrap();
        store.sweep_releases(1, Some(5)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(store.site_dir(1))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["current", "v3", "v3.rec", "v5"]);

        // A `current` naming a release whose record is gone: nothing is swept.
        std::fs::remove_file(store.site_dir(1).join("v3.rec")).unwrap();
        assert!(store.sweep_releases(1, None).is_err());
        assert!(store.release_dir(1, 3).is_dir() && store.release_dir(1, 5).is_dir());
    }
}
