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
    Torrent(#[from] crate::torrent::TorrentError),
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

    /// What `publish document` signs for the file at `path`: the document payload
    /// (title, description, media type — guessed from the extension when `None` —,
    /// the torrent's info hash and size) and the metainfo file that goes with it.
    pub fn document_payload(
        path: &Path,
        title: String,
        description: String,
        media_type: Option<String>,
    ) -> Result<DocumentPayload, PublishError> {
        if !path.is_file() {
            return Err(PublishError::Usage(format!(
                "{}: not a file",
                path.display()
            )));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                PublishError::Usage(format!("{}: file name is not UTF-8", path.display()))
            })?
            .to_string();
        let media_type = media_type.unwrap_or_else(|| {
            mime_guess::from_path(path)
                .first_or_octet_stream()
                .essence_str()
                .to_string()
        });
        crate::documents::check_name(&name)?;
        let t = crate::torrent::make(path, &name)?;
        let meta = crate::documents::DocumentMeta {
            title,
            description,
            name,
            media_type,
            ih: t.info_hash,
            size: t.total_size,
        };
        meta.validate()?;
        Ok((
            meta.clone(),
            Payload::Body(meta.to_body()),
            vec![(TORRENT_FILE.to_string(), t.bytes)],
        ))
    }

    /// The id for a document file named `name`: that of the newest published document
    /// with this file name (its next version replaces it), else one past the highest
    /// document id published (the first is `0x100`).
    pub fn document_id_for(&self, name: &str) -> Result<u32, PublishError> {
        let mut newest: Option<(u32, u32)> = None;
        let mut highest = crate::name::file_id::FIRST_DOCUMENT - 1;
        for e in self.published()? {
            let Ok(doc) = crate::documents::Document::from_record(&e.record) else {
                continue;
            };
            highest = highest.max(doc.id);
            if doc.meta.name == name && newest.is_none_or(|(_, v)| doc.version > v) {
                newest = Some((doc.id, doc.version));
            }
        }
        match newest {
            Some((id, _)) => Ok(id),
            None => highest
                .checked_add(1)
                .ok_or_else(|| PublishError::Usage("no document id left".into())),
        }
    }

    /// Publishes the folder `site_dir` as release `version` (default: the next one) of
    /// site `site_id`: makes its torrent, signs the record with `keys`, stores it.
    pub fn publish_site(
        &self,
        site_dir: &Path,
        site_id: u32,
        version: Option<u32>,
        keys: &[PrivateKey],
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let site = self
            .bundle
            .site(site_id)
            .ok_or_else(|| PublishError::Usage(format!("the bundle has no site {site_id}")))?;
        let t = crate::torrent::make(site_dir, &site.name)?;
        let version = match version {
            Some(v) => v,
            None => self.next_version((crate::name::kind::SITE_RELEASE, site_id))?,
        };
        let name = SystemName::new(
            self.bundle.network(),
            crate::name::kind::SITE_RELEASE,
            site_id,
            version,
        );
        let record = Record::new(
            name,
            now,
            Payload::Torrent {
                ih: t.info_hash,
                size: t.total_size,
            },
        )?;
        self.publish(
            record,
            keys,
            &[(TORRENT_FILE.to_string(), t.bytes)],
            Some(site_dir),
            now,
        )
    }

    /// Signs `record` with `keys` and stores it with its `files` (name, bytes) — in
    /// `published/` when it carries enough signatures, else in `drafts/`.
    pub fn publish(
        &self,
        mut record: Record,
        keys: &[PrivateKey],
        files: &[(String, Vec<u8>)],
        payload_dir: Option<&Path>,
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let role = record.name.class().governing_role();
        let trust = self.trust()?;
        let current = role.and_then(|r| trust.current_set(r));
        for k in keys {
            match current {
                Some((_, set)) if set.get(&k.kid()).is_some() => record.sign(k),
                Some((version, _)) => {
                    return Err(PublishError::Usage(format!(
                        "key {} is not in key set v{version} of role {}, the current one",
                        k.kid().short(),
                        role.expect("current set implies a role")
                    )));
                }
                None => {
                    return Err(PublishError::Refused(
                        trust.check(&record, now).unwrap_err(),
                    ));
                }
            }
        }
        self.store(record, files, payload_dir, now)
    }

    fn store(
        &self,
        record: Record,
        files: &[(String, Vec<u8>)],
        payload_dir: Option<&Path>,
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let trust = self.trust()?;
        let dir_name = slot_dir_name(&record.name);
        let (target, draft) = match trust.check(&record, now) {
            Ok(verdict) => (
                self.published_dir().join(&dir_name),
                Dest::Published(verdict),
            ),
            Err(Refusal::NotEnoughSignatures {
                valid, required, ..
            }) => (
                self.drafts_dir().join(&dir_name),
                Dest::Draft {
                    have: valid,
                    need: required,
                },
            ),
            Err(refusal) => return Err(PublishError::Refused(refusal)),
        };
        if target.exists() {
            return Err(PublishError::Usage(format!(
                "{} already exists; choose another version",
                target.display()
            )));
        }
        let staging = Staging::new(&target, 0o755).map_err(io(&target))?;
        for (name, bytes) in files {
            staging
                .write(name, bytes, fsutil::PUBLIC)
                .map_err(io(&target))?;
        }
        if let Some(src) = payload_dir {
            // The payload folder is what librqbit seeds from: a folder torrent's files
            // sit directly in it, a single-file torrent's file under its own name.
            let name = crate::torrent::name_of(&files_torrent(files)?)?;
            let root = staging.path().join(PAYLOAD_DIR);
            let copy = if src.is_file() {
                root.join(&name)
            } else {
                root
            };
            fsutil::copy_missing(src, &copy).map_err(io(src))?;
            // What is published must be what was signed (the torrent the record names),
            // even if the source changed while we were working.
            let ih = crate::torrent::info_hash_of(&files_torrent(files)?)?;
            if crate::torrent::make(&copy, &name)?.info_hash != ih {
                return Err(PublishError::BadFile {
                    path: src.to_path_buf(),
                    why: "changed while it was being published; try again".into(),
                });
            }
        }
        staging
            .write(RECORD_FILE, &record.encode()?, fsutil::PUBLIC)
            .map_err(io(&target))?;
        let dir = staging.commit().map_err(io(&target))?;
        *self.trust.lock().expect("trust cache lock") = None;
        Ok(match draft {
            Dest::Published(verdict) => Outcome::Published {
                dir,
                record,
                verdict,
            },
            Dest::Draft { have, need } => Outcome::Draft {
                dir,
                record,
                have,
                need,
            },
        })
    }

    /// Adds detached signatures to the draft in `draft_dir`; when enough, moves it to
    /// `published/` (the draft is removed only after the published copy is in place).
    pub fn combine(
        &self,
        draft_dir: &Path,
        sigs: &[Signature],
        now: u64,
    ) -> Result<Outcome, PublishError> {
        let mut record = read_record(&draft_dir.join(RECORD_FILE))?;
        let message = record.signed_message();
        let trust = self.trust()?;
        let role = record.name.class().governing_role();
        for s in sigs {
            let known = role
                .and_then(|r| trust.current_set(r))
                .and_then(|(_, set)| set.get(&s.kid).cloned());
            match known {
                Some(key) if key.verify(&message, &s.sig) => record.add_signature(s.clone()),
                Some(_) => return Err(PublishError::Refused(Refusal::BadSignature(s.kid))),
                None => {
                    return Err(PublishError::Usage(format!(
                        "signature by {} is not from the current key set of the record's role",
                        s.kid.short()
                    )));
                }
            }
        }
        let mut files = Vec::new();
        let mut payload = None;
        for e in std::fs::read_dir(draft_dir).map_err(io(draft_dir))? {
            let e = e.map_err(io(draft_dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == RECORD_FILE {
                continue;
            }
            if name == PAYLOAD_DIR && e.path().is_dir() {
                payload = Some(e.path());
            } else {
                files.push((name, std::fs::read(e.path()).map_err(io(draft_dir))?));
            }
        }
        match trust.check(&record, now) {
            Ok(_) => {
                let outcome = self.store(record, &files, payload.as_deref(), now)?;
                std::fs::remove_dir_all(draft_dir).map_err(io(draft_dir))?;
                Ok(outcome)
            }
            Err(Refusal::NotEnoughSignatures {
                valid, required, ..
            }) => {
                // Rewrite the draft in place, atomically.
                fsutil::write_atomic(
                    &draft_dir.join(RECORD_FILE),
                    &record.encode()?,
                    fsutil::PUBLIC,
                )
                .map_err(io(draft_dir))?;
                Ok(Outcome::Draft {
                    dir: draft_dir.to_path_buf(),
                    record,
                    have: valid,
                    need: required,
                })
            }
            Err(refusal) => Err(PublishError::Refused(refusal)),
        }
    }

    /// The certificate of key set `version` of `role` made of `set`, listing as current
    /// the newest published record of each slot the role signs (SPEC §3: what the
    /// retired keys signed and nodes may keep). What does not fit in a record's body
    /// is left out, documents first (highest ids kept); nodes then drop those copies
    /// until they are published again with the new keys.
    fn vouching(
        &self,
        role: Role,
        version: u32,
        set: KeySet,
        now: u64,
    ) -> Result<(Record, Vec<SystemName>), PublishError> {
        let mut newest: BTreeMap<Slot, Record> = BTreeMap::new();
        for e in self.published()? {
            let name = e.record.name;
            if name.class().governing_role() != Some(role)
                || matches!(name.class(), ObjectClass::KeySet(_))
            {
                continue;
            }
            if newest
                .get(&name.slot())
                .is_none_or(|r| r.name.version() < name.version())
            {
                newest.insert(name.slot(), e.record);
            }
        }
        // Least important last: documents by id, after everything else.
        let mut listed: Vec<&Record> = newest.values().collect();
        listed.sort_by_key(|r| {
            (
                r.name.class() == ObjectClass::Document,
                std::cmp::Reverse(r.name.id()),
            )
        });
        let name = SystemName::key_set(self.bundle.network(), role, version);
        let mut left_out = Vec::new();
        loop {
            let current = listed
                .iter()
                .map(|r| Vouched {
                    slot: r.name.slot(),
                    version: r.name.version(),
                    digest: crate::trust::record_digest(r),
                })
                .collect();
            let body = set.clone().with_current(current)?.to_body();
            match Record::new(name, now, Payload::Body(body)) {
                Ok(record) => return Ok((record, left_out)),
                Err(RecordError::BodyTooLarge(_)) if !listed.is_empty() => {
                    left_out.push(listed.pop().expect("not empty").name);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes the next key set of `role`: `new_count` fresh keys (written for their
    /// holders) plus `kept` existing public keys, signed by `signers` of the current set.
    /// It lists the role's current records ([`NetworkDir::vouching`]).
    #[allow(clippy::too_many_arguments)]
    pub fn rotate(
        &self,
        role: Role,
        new_count: usize,
        kept: Vec<PublicKey>,
        threshold: u32,
        sign: u32,
        bits: usize,
        signers: &[PrivateKey],
        passphrase: &[u8],
        now: u64,
    ) -> Result<Rotation, PublishError> {
        let trust = self.trust()?;
        let (current, _) = trust
            .current_set(role)
            .ok_or_else(|| PublishError::Usage(format!("no key set for role {role}")))?;
        let version = current + 1;
        let key_dir = self
            .root
            .join("keys")
            .join(role.label())
            .join(format!("v{version}"));
        if key_dir.exists() {
            return Err(PublishError::Usage(format!(
                "{} exists: a rotation to v{version} was started; finish it with `keys sign` and `keys combine` on its draft, or remove the folder",
                key_dir.display()
            )));
        }
        let fresh = generate_keys(new_count, bits).map_err(|error| PublishError::Key {
            path: key_dir.clone(),
            error,
        })?;
        let mut public: Vec<PublicKey> = kept;
        public.extend(fresh.iter().map(|k| k.public().clone()));
        let set = KeySet::new(public, threshold, sign)?;
        let (record, left_out) = self.vouching(role, version, set, now)?;
        // Keys first (staged, then moved), so a published set never lacks its key files.
        let staging = Staging::new(&key_dir, 0o700).map_err(io(&key_dir))?;
        write_key_files(staging.path(), &fresh, 1, passphrase)?;
        staging.commit().map_err(io(&key_dir))?;
        match self.publish(record, signers, &[], None, now) {
            Ok(outcome) => Ok(Rotation { outcome, left_out }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&key_dir);
                Err(e)
            }
        }
    }
}
