//! Network bundles: what a client needs to join a network and trust its publisher.
//!
//! A bundle is a JSON file holding the network tag, the sites it carries, the
//! version-1 key-set certificate of every role (as hex record bytes) and optional
//! bootstrap hints. Whoever hands you a bundle defines whom you trust, so clients ship
//! theirs in `keys/` and show its fingerprint for out-of-band comparison.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keyset::KeySet;
use crate::name::{NetworkTag, Role, SystemName};
use crate::record::Record;

/// The `format` of the bundle files this build reads and writes.
pub const BUNDLE_FORMAT: &str = "swarmsite-bundle/1";

/// One site a network carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// Site number: the id of its release names (kind 0x1000).
    pub id: u32,
    /// A DNS label, used for `<name>.local` and in paths.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
struct BundleFile {
    format: String,
    network: String,
    sites: Vec<Site>,
    keysets: Vec<String>,
    #[serde(default)]
    bootstrap: Vec<String>,
}

/// A validated bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    network: NetworkTag,
    sites: Vec<Site>,
    keysets: BTreeMap<Role, (Record, KeySet)>,
    bootstrap: Vec<String>,
}

/// Why a bundle is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The text is not JSON of a bundle's shape (serde's message is carried).
    #[error("not a bundle: {0}")]
    Json(String),
    /// The `format` is not [`BUNDLE_FORMAT`] (the one found is carried).
    #[error("unknown bundle format {0:?} (this build reads {BUNDLE_FORMAT})")]
    Format(String),
    /// The `network` is not a valid network tag.
    #[error("network tag: {0}")]
    Tag(#[from] crate::name::NameError),
    /// A key-set record is unusable: not hex, not a record, not version 1 of a role on this
    /// network, not inline, or short of the threshold of valid self-signatures.
    #[error("key set {index}: {why}")]
    KeySet {
        /// Position of the record in `keysets`, from 0.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// A role has no key set in the bundle; every role needs one.
    #[error("role {0} has no version-1 key set")]
    MissingRole(Role),
    /// A role has more than one key set in the bundle.
    #[error("role {0} has more than one key set")]
    DuplicateRole(Role),
    /// A site is unusable, or there is none: its name (empty when none) and why. Ids start at
    /// 1 and are unique; names are DNS labels.
    #[error("site {0:?}: {1}")]
    Site(String, String),
    /// A bootstrap hint is not `host:port` with a port from 1 to 65535 (the hint is carried).
    #[error("bootstrap hint {0:?} is not host:port")]
    Bootstrap(String),
}

impl Bundle {
    /// Builds a bundle from version-1 key-set records; validates like [`Bundle::parse`].
    pub fn new(
        network: NetworkTag,
        sites: Vec<Site>,
        keyset_records: Vec<Record>,
        bootstrap: Vec<String>,
    ) -> Result<Self, BundleError> {
        let mut keysets = BTreeMap::new();
        for (index, record) in keyset_records.into_iter().enumerate() {
            let why = |why: String| BundleError::KeySet { index, why };
            let name = record.name;
            let crate::name::ObjectClass::KeySet(role) = name.class() else {
                return Err(why(format!("{name:?} is not a key-set name")));
            };
            if name != SystemName::key_set(network, role, 1) {
                return Err(why(format!(
                    "{name:?} is not version 1 of role {role} on {network}"
                )));
            }
            let body = record
                .body()
                .ok_or_else(|| why("not an inline record".into()))?;
            let set = KeySet::from_body(body).map_err(|e| why(e.to_string()))?;
            // Version 1 is trusted because it ships; its own signatures only prove the
            // file was not damaged or assembled from mismatched parts.
            let message = record.signed_message();
            let valid = record
                .sigs
                .iter()
                .filter(|s| set.get(&s.kid).is_some_and(|k| k.verify(&message, &s.sig)))
                .count();
            if valid < set.threshold() as usize {
                return Err(why(format!(
                    "only {valid} valid self-signatures, threshold {}",
                    set.threshold()
                )));
            }
            if keysets.insert(role, (record, set)).is_some() {
                return Err(BundleError::DuplicateRole(role));
            }
        }
        for role in Role::ALL {
            if !keysets.contains_key(&role) {
                return Err(BundleError::MissingRole(role));
            }
        }
        let mut ids = Vec::new();
        for site in &sites {
            let bad = |why: &str| BundleError::Site(site.name.clone(), why.into());
            if site.id == 0 {
                return Err(bad("site ids start at 1"));
            }
            if ids.contains(&site.id) {
                return Err(bad("duplicate site id"));
            }
            ids.push(site.id);
            if !is_dns_label(&site.name) {
                return Err(bad(
                    "name must be 1-63 of a-z, 0-9 and '-', not starting or ending with '-'",
                ));
            }
        }
        if sites.is_empty() {
            return Err(BundleError::Site(
                String::new(),
                "a bundle names at least one site".into(),
            ));
        }
        for hint in &bootstrap {
            match hint.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
                _ => return Err(BundleError::Bootstrap(hint.clone())),
            }
        }
        Ok(Bundle {
            network,
            sites,
            keysets,
            bootstrap,
        })
    }

    /// Reads and validates a bundle file (key sets as hex record bytes); see [`Bundle::new`].
    pub fn parse(json: &str) -> Result<Self, BundleError> {
        let file: BundleFile =
            serde_json::from_str(json).map_err(|e| BundleError::Json(e.to_string()))?;
        if file.format != BUNDLE_FORMAT {
            return Err(BundleError::Format(file.format));
        }
        let network: NetworkTag = file.network.parse()?;
        let mut records = Vec::new();
        for (index, hex_record) in file.keysets.iter().enumerate() {
            let why = |why: String| BundleError::KeySet { index, why };
            let bytes = hex::decode(hex_record).map_err(|e| why(format!("not hex: {e}")))?;
            records.push(Record::decode(&bytes).map_err(|e| why(e.to_string()))?);
        }
        Bundle::new(network, file.sites, records, file.bootstrap)
    }

    /// The bundle as a pretty-printed JSON file ending in a newline, as [`Bundle::parse`] reads.
    pub fn to_json(&self) -> String {
        let file = BundleFile {
            format: BUNDLE_FORMAT.into(),
            network: self.network.to_string(),
            sites: self.sites.clone(),
            keysets: self
                .keysets
                .values()
                .map(|(r, _)| hex::encode(r.encode().expect("decoded records encode")))
                .collect(),
            bootstrap: self.bootstrap.clone(),
        };
        serde_json::to_string_pretty(&file).expect("serialisable") + "\n"
    }

    /// The network this bundle joins.
    pub fn network(&self) -> NetworkTag {
        self.network
    }

    /// The sites the network carries, in the bundle's order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The site numbered `id`, if the network carries it.
    pub fn site(&self, id: u32) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Bootstrap nodes for the content (BitTorrent) DHT, each `host:port`.
    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// The version-1 key set of every role, with the record carrying it: the root of trust.
    pub fn keysets(&self) -> &BTreeMap<Role, (Record, KeySet)> {
        &self.keysets
    }

    /// SHA-256 over the tag and the version-1 records in role order: the root of trust
    /// in 64 hex digits, for comparing bundles out of band.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.network.as_bytes());
        for (record, _) in self.keysets.values() {
            let bytes = record.encode().expect("decoded records encode");
            h.update((bytes.len() as u32).to_be_bytes());
            h.update(&bytes);
        }
        hex::encode(h.finalize())
    }
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
