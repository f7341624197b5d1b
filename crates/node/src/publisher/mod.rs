//! The publisher's network folder: keys, the public bundle, and every record published.
//!
//! ```text
//! NETWORK/
//!   bundle.json                       public: ship it (keys/ of the client)
//!   keys/<role>/v<N>/key-<i>.pem      encrypted PKCS#8, mode 0600, one file per holder
//!   keys/<role>/v<N>/key-<i>.pub      the public half (DER SPKI, hex)
//!   published/<kind>-<id>-v<N>/       one folder per record, moved into place whole:
//!       record.rec                    the signed record
//!       payload.torrent, payload/…    the torrent and its content (ih records)
//!   drafts/<kind>-<id>-v<N>/          records still waiting for signatures
//! ```
//!
//! The published folder *is* the publisher's state: the next version of a slot is one
//! past the highest version found there, so there is no counter to get out of step.

mod publish;
mod rotate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::{Bundle, BundleError, Site};
use crate::fsutil::{self, Staging};
use crate::keys::{KeyError, PrivateKey, PublicKey, generate_keys};
use crate::keyset::{KeySet, KeySetError, Vouched};
use crate::name::{NetworkTag, ObjectClass, Role, Slot, SystemName};
use crate::record::{Payload, Record, RecordError, Signature};
use crate::trust::{Refusal, TrustStore, Verdict};

pub const RECORD_FILE: &str = "record.rec";
pub const TORRENT_FILE: &str = "payload.torrent";
/// Folder holding the content an `ih` record's torrent describes.
pub const PAYLOAD_DIR: &str = "payload";

enum Dest {
    Published(Verdict),
    Draft { have: u32, need: u32 },
}

fn files_torrent(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, PublishError> {
    files
        .iter()
        .find(|(n, _)| n == TORRENT_FILE)
        .map(|(_, b)| b.clone())
        .ok_or_else(|| PublishError::Usage(format!("a payload folder needs its {TORRENT_FILE}")))
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    Key { path: PathBuf, error: KeyError },
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    BundleFile(#[from] crate::stored::StoredError),
    #[error("{0}")]
    KeySet(#[from] KeySetError),
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("{path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error(
        "{0} is not a network folder (no bundle.json); create one with `swarmsite keys init-network`"
    )]
    NotNetwork(PathBuf),
    #[error("the record would be refused by clients: {0}")]
    Refused(Refusal),
    #[error("{0}")]
    Torrent(#[from] crate::metainfo_file::TorrentError),
    #[error("{0}")]
    Document(#[from] crate::documents::DocumentError),
    #[error("{0}")]
    Usage(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a document publication signs and stores: what the record says, its payload,
/// and the metainfo file.
pub type DocumentPayload = (
    crate::documents::DocumentMeta,
    Payload,
    Vec<(String, Vec<u8>)>,
);

/// Options of `swarmsite keys init-network`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub tag: NetworkTag,
    pub sites: Vec<Site>,
    pub keys_per_role: usize,
    pub threshold: u32,
    pub sign: u32,
    /// `sign` of the software role: installing is what one stolen key must not be able
    /// to cause (docs/SECURITY.md).
    pub software_sign: u32,
    pub bits: usize,
    pub bootstrap: Vec<String>,
}

impl InitOptions {
    /// One site (id 1) named `site`, with `keys init-network`'s defaults: 3 keys per
    /// role, 2 of them to rotate a set, 1 to sign (2 for software), RSA-3072, no
    /// bootstrap hints.
    pub fn one_site(tag: NetworkTag, site: &str) -> Self {
        InitOptions {
            tag,
            sites: vec![crate::bundle::Site {
                id: 1,
                name: site.into(),
            }],
            keys_per_role: 3,
            threshold: 2,
            sign: 1,
            software_sign: 2,
            bits: crate::keys::MIN_BITS,
            bootstrap: Vec::new(),
        }
    }
}

/// Where a publication ended up.
#[derive(Debug)]
pub enum Outcome {
    /// Signed enough: in `published/`, ready to send.
    Published {
        dir: PathBuf,
        record: Record,
        verdict: Verdict,
    },
    /// Needs more signatures: in `drafts/`; `keys sign` + `keys combine` finish it.
    Draft {
        dir: PathBuf,
        record: Record,
        have: u32,
        need: u32,
    },
}

impl Outcome {
    /// The folder and record, when published (not left as a draft).
    pub fn published(self) -> Option<(PathBuf, Record)> {
        match self {
            Outcome::Published { dir, record, .. } => Some((dir, record)),
            Outcome::Draft { .. } => None,
        }
    }
}

/// A rotation made: where its certificate ended up, and the records it could not list
/// as current (no room in the record): nodes drop their copies of those.
#[derive(Debug)]
pub struct Rotation {
    pub outcome: Outcome,
    pub left_out: Vec<SystemName>,
}

/// A published or drafted record on disk.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub record: Record,
}

/// Reads an encrypted key file.
pub fn load_key(path: &Path, passphrase: &[u8]) -> Result<PrivateKey, PublishError> {
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    PrivateKey::from_encrypted_pem(&pem, passphrase).map_err(|error| PublishError::Key {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads a public key file (`.pub`: hex DER) or the public half of nothing else.
pub fn load_public(path: &Path) -> Result<PublicKey, PublishError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let der = hex::decode(text.trim()).map_err(|_| PublishError::BadFile {
        path: path.to_path_buf(),
        why: "not a .pub file (hex DER public key)".into(),
    })?;
    PublicKey::from_der(&der).map_err(|error| PublishError::Key {
        path: path.to_path_buf(),
        error,
    })
}

/// Reads a record file.
pub fn read_record(path: &Path) -> Result<Record, PublishError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Record::decode(&bytes).map_err(|e| PublishError::BadFile {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// The `.pem` files in `dir`, sorted (none when `dir` does not exist).
pub fn pem_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    files.sort();
    files
}

fn slot_dir_name(name: &SystemName) -> String {
    format!("{:04x}-{}-v{}", name.kind(), name.id(), name.version())
}

/// Writes the holders' key files for one key set into `dir` (inside a staging area).
fn write_key_files(
    dir: &Path,
    keys: &[PrivateKey],
    first_index: usize,
    passphrase: &[u8],
) -> Result<(), PublishError> {
    fsutil::create_dir(dir, 0o700).map_err(io(dir))?;
    for (i, key) in keys.iter().enumerate() {
        let n = first_index + i;
        let pem = key
            .to_encrypted_pem(passphrase)
            .map_err(|error| PublishError::Key {
                path: dir.to_path_buf(),
                error,
            })?;
        write_new(
            &dir.join(format!("key-{n}.pem")),
            pem.as_bytes(),
            fsutil::PRIVATE,
        )?;
        let public = hex::encode(key.public().der()) + "\n";
        write_new(
            &dir.join(format!("key-{n}.pub")),
            public.as_bytes(),
            fsutil::PUBLIC,
        )?;
    }
    Ok(())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PublishError> {
    use std::io::Write;
    let mut f = fsutil::open_new(path, mode).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// A publisher's network folder.
pub struct NetworkDir {
    root: PathBuf,
    bundle: Bundle,
    /// The trust reached from `published/`: building it reads every published record
    /// and verifies the key-set chain, so it is built once and dropped only when a
    /// publication lands.
    trust: std::sync::Mutex<Option<TrustStore>>,
}

impl NetworkDir {
    /// Creates a new network: every role's keys and version-1 key set, and the bundle.
    /// `root` must not exist (or be an empty folder); it appears whole or not at all.
    pub fn init(
        root: &Path,
        opts: &InitOptions,
        passphrase: &[u8],
        now: u64,
    ) -> Result<Self, PublishError> {
        if root.is_dir() && std::fs::read_dir(root).map_err(io(root))?.next().is_none() {
            std::fs::remove_dir(root).map_err(io(root))?;
        }
        let staging = Staging::new(root, 0o700).map_err(io(root))?;
        let per_role = opts.keys_per_role;
        let mut keys = generate_keys(per_role * Role::ALL.len(), opts.bits).map_err(|error| {
            PublishError::Key {
                path: root.to_path_buf(),
                error,
            }
        })?;
        let mut records = Vec::new();
        for role in Role::ALL {
            let role_keys: Vec<PrivateKey> = keys.drain(..per_role).collect();
            let sign = if role == Role::SOFTWARE {
                opts.software_sign
            } else {
                opts.sign
            };
            let set = KeySet::new(
                role_keys.iter().map(|k| k.public().clone()).collect(),
                opts.threshold,
                sign,
            )?;
            let mut record = Record::new(
                SystemName::key_set(opts.tag, role, 1),
                now,
                Payload::Body(set.to_body()),
            )?;
            for k in &role_keys {
                record.sign(k);
            }
            write_key_files(
                &staging.path().join("keys").join(role.label()).join("v1"),
                &role_keys,
                1,
                passphrase,
            )?;
            records.push(record);
        }
        let bundle = Bundle::new(
            opts.tag,
            opts.sites.clone(),
            records,
            opts.bootstrap.clone(),
        )?;
        staging
            .write("bundle.json", bundle.to_json().as_bytes(), fsutil::PUBLIC)
            .map_err(io(root))?;
        for sub in ["published", "drafts"] {
            fsutil::create_dir(&staging.path().join(sub), 0o755).map_err(io(root))?;
        }
        staging.commit().map_err(io(root))?;
        Ok(NetworkDir {
            root: root.to_path_buf(),
            bundle,
            trust: Default::default(),
        })
    }

    pub fn open(root: &Path) -> Result<Self, PublishError> {
        let bundle_path = root.join("bundle.json");
        if !bundle_path.is_file() {
            return Err(PublishError::NotNetwork(root.to_path_buf()));
        }
        let bundle = crate::stored::read_bundle(&bundle_path)?;
        for sub in ["published", "drafts"] {
            let dir = root.join(sub);
            fsutil::create_dir(&dir, 0o755).map_err(io(&dir))?;
            fsutil::sweep_staging(&dir).map_err(io(&dir))?;
        }
        Ok(NetworkDir {
            root: root.to_path_buf(),
            bundle,
            trust: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    pub fn published_dir(&self) -> PathBuf {
        self.root.join("published")
    }

    pub fn drafts_dir(&self) -> PathBuf {
        self.root.join("drafts")
    }

    /// Records in `published/` (or `drafts/`), in no particular order.
    fn entries(dir: &Path) -> Result<Vec<Entry>, PublishError> {
        let mut out = Vec::new();
        let Ok(read) = std::fs::read_dir(dir) else {
            return Ok(out);
        };
        for e in read {
            let e = e.map_err(io(dir))?;
            let record_path = e.path().join(RECORD_FILE);
            if e.file_name().to_string_lossy().starts_with('.') || !record_path.is_file() {
                continue;
            }
            out.push(Entry {
                dir: e.path(),
                record: read_record(&record_path)?,
            });
        }
        Ok(out)
    }

    pub fn published(&self) -> Result<Vec<Entry>, PublishError> {
        Self::entries(&self.published_dir())
    }

    /// The trust a fresh client would reach after receiving everything published:
    /// the bundle plus every published key-set rotation.
    pub fn trust(&self) -> Result<TrustStore, PublishError> {
        let mut cache = self.trust.lock().expect("trust cache lock");
        if let Some(t) = cache.as_ref() {
            return Ok(t.clone());
        }
        let mut trust = TrustStore::from_bundle(&self.bundle);
        let rotations: Vec<Record> = self
            .published()?
            .into_iter()
            .map(|e| e.record)
            .filter(|r| matches!(r.name.class(), crate::name::ObjectClass::KeySet(_)))
            .collect();
        trust
            .accept_chain(&rotations, u64::MAX / 2)
            .map_err(PublishError::Refused)?;
        *cache = Some(trust.clone());
        Ok(trust)
    }

    /// One past the highest version of `slot` published so far.
    pub fn next_version(&self, slot: Slot) -> Result<u32, PublishError> {
        let trust = self.trust()?;
        let published = self
            .published()?
            .iter()
            .filter(|e| e.record.name.slot() == slot)
            .map(|e| e.record.name.version())
            .max()
            .unwrap_or(0);
        Ok(published.max(trust.highest(slot)) + 1)
    }
}
