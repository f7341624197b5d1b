//! The trust store (SPEC §2, §3): decides whether a record is accepted, and remembers
//! what that decision depends on: each role's chain of key sets and the highest version
//! accepted per (kind, id).
//!
//! [`TrustStore::check`] is a pure function of the store, the record and the clock;
//! [`TrustStore::accept`] applies it. Its saved form ([`TrustStore::to_saved`],
//! [`TrustStore::from_saved`]; the node keeps it in `trust.json`) is verified again when
//! restored, so a damaged or edited file cannot smuggle in a key.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::keys::Kid;
use crate::keyset::{KeySet, KeySetError};
use crate::name::{NetworkTag, ObjectClass, Role, Slot, SystemName};
use crate::record::{Payload, Record, RecordError};

/// How far ahead of the node's clock a record's `time` may be (SPEC §2).
pub const MAX_CLOCK_SKEW_SECS: u64 = 3600;

/// How far past the highest version a node knows of a slot (accepted, or vouched for by
/// the newest key set) one record may jump. A publisher's tools count up by one; a
/// record near `u32::MAX` would pin the slot for good (issue 20). 2^20 is a release a
/// minute for two years.
pub const MAX_VERSION_STEP: u32 = 1 << 20;

/// SHA-256 of a record's signed message: what a key set's `current` list names.
pub fn record_digest(record: &Record) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(record.signed_message()).into()
}

/// Why a record was refused. Every variant but [`Refusal::KeySetUnconfirmed`] (the record
/// waits) can be recorded as evidence (SPEC §8); [`Refusal::is_forgery`] says which ones
/// prove bad intent rather than staleness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes are not a well-formed record.
    #[error("malformed record: {0}")]
    Malformed(#[from] RecordError),
    /// The record's name carries another network's tag.
    #[error("record belongs to network {got}, this store trusts {expected}")]
    WrongNetwork {
        /// This store's network.
        expected: NetworkTag,
        /// The network in the record's name.
        got: NetworkTag,
    },
    /// The name's class has no governing role (or the store has no key set of it): such
    /// records are never accepted.
    #[error("no role may sign a {class} (kind 0x{kind:04x}, id {id})")]
    NoGoverningRole {
        /// The class of the name, as text.
        class: String,
        /// The name's kind.
        kind: u16,
        /// The name's id.
        id: u32,
    },
    /// The version is not above the highest accepted for the slot (rollback or replay); for
    /// a key set, not above the chain's length.
    #[error("version {got} is not newer than the accepted version {have} (rollback or replay)")]
    NotNewer {
        /// The highest accepted version (for key sets, the chain's newest).
        have: u32,
        /// The record's version.
        got: u32,
    },
    /// A key set more than one version ahead of the chain: the versions between are missing.
    #[error("key set version {got} cannot be checked before version {next} is known")]
    ChainGap {
        /// The key-set version that must be accepted first.
        next: u32,
        /// The record's version.
        got: u32,
    },
    /// The record's `time` is more than [`MAX_CLOCK_SKEW_SECS`] ahead of the clock.
    #[error("record time {time} is more than {MAX_CLOCK_SKEW_SECS} s ahead of the clock ({now})")]
    FromTheFuture {
        /// The record's `time`, in unix seconds.
        time: u64,
        /// The clock it was judged against, in unix seconds.
        now: u64,
    },
    /// Two signatures carry the same kid.
    #[error("key {0} signed more than once")]
    DuplicateSigner(Kid),
    /// A key of the governing (newest) key set made a signature that does not verify.
    #[error("signature by key {0} does not verify (tampered record or forged signature)")]
    BadSignature(Kid),
    /// Fewer valid signatures by the newest key set than its rule requires, and the set does
    /// not list the record as current.
    #[error("{valid} valid signatures by {signers}, {required} required{extra}")]
    NotEnoughSignatures {
        /// How many signatures by the newest key set verified.
        valid: u32,
        /// How many the rule requires (`threshold` for key sets, `sign` for content).
        required: u32,
        /// Which key set counted, e.g. `key set v2 of role …`, for the message.
        signers: String,
        /// Notes on ignored signatures by retired or unknown keys, each starting with `; `; empty
        /// when there are none.
        extra: String,
    },
    /// A key-set record is signed well enough but its body is not a valid key set.
    #[error("key set payload invalid: {0}")]
    BadKeySet(#[from] KeySetError),
    /// A key-set record carries its payload in a torrent (`ih`) instead of an inline body.
    #[error("a key set must be an inline body record")]
    KeySetNotInline,
    /// Content signed only by keys of older key sets of its role, which the newest set does
    /// not list as current: what a node that missed a rotation still holds.
    #[error(
        "signed only by keys that role {role} retired (key set v{current} is current, and does not list this record)"
    )]
    RetiredKeys {
        /// The governing role.
        role: Role,
        /// Version of the role's newest key set.
        current: u32,
    },
    /// The version is more than [`MAX_VERSION_STEP`] past the highest one known for the slot.
    #[error("version {got} jumps more than {MAX_VERSION_STEP} past version {floor}")]
    VersionJump {
        /// The highest version known: accepted, or listed by the newest key set.
        floor: u32,
        /// The record's version.
        got: u32,
    },
    /// Raised by the node layer ([`crate::gossip`]), not the store: content from a peer
    /// waits until its role's newest key set is confirmed (SPEC §3).
    #[error("role {role}'s newest key set is not confirmed yet: the record waits (SPEC §3)")]
    KeySetUnconfirmed {
        /// The role whose newest key set awaits confirmation.
        role: Role,
    },
}

impl Refusal {
    /// A short stable code for logs and the evidence file.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::WrongNetwork { .. } => "wrong-network",
            Refusal::NoGoverningRole { .. } => "no-governing-role",
            Refusal::NotNewer { .. } => "not-newer",
            Refusal::ChainGap { .. } => "chain-gap",
            Refusal::FromTheFuture { .. } => "from-the-future",
            Refusal::DuplicateSigner(_) => "duplicate-signer",
            Refusal::BadSignature(_) => "bad-signature",
            Refusal::NotEnoughSignatures { .. } => "not-enough-signatures",
            Refusal::BadKeySet(_) => "bad-key-set",
            Refusal::KeySetNotInline => "key-set-not-inline",
            Refusal::RetiredKeys { .. } => "retired-keys",
            Refusal::VersionJump { .. } => "version-jump",
            Refusal::KeySetUnconfirmed { .. } => "key-set-unconfirmed",
        }
    }

    /// True when the record could only come from someone forging or tampering;
    /// false for what honest peers also send (old versions, records we cannot check yet,
    /// what a node that has not heard of a rotation still holds, and a jump only a key
    /// holder could sign, which its forwarder could not judge either).
    pub fn is_forgery(&self) -> bool {
        !matches!(
            self,
            Refusal::NotNewer { .. }
                | Refusal::ChainGap { .. }
                | Refusal::WrongNetwork { .. }
                | Refusal::RetiredKeys { .. }
                | Refusal::VersionJump { .. }
                | Refusal::KeySetUnconfirmed { .. }
        )
    }
}

/// Why a record was accepted: the rule and the signers, for `swarmsite verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The accepted record's name.
    pub name: SystemName,
    /// What the record addresses.
    pub class: ObjectClass,
    /// The governing role whose key set counted.
    pub role: Role,
    /// Version of the key set whose keys counted.
    pub set_version: u32,
    /// Kids of the valid signatures by that key set, in the record's order.
    pub signers: Vec<Kid>,
    /// How many valid signatures the rule required (`threshold` or `sign` of the set).
    pub required: u32,
    /// True when the record is a key-set rotation (threshold rule), false for content
    /// (sign rule).
    pub rotation: bool,
    /// True when content counted because the newest key set lists it as current (signed
    /// by keys since retired), not by signatures of that set.
    pub vouched: bool,
    /// (Rotations, once accepted) content accepted earlier that the new set does not
    /// vouch for: no longer trusted, the caller drops it.
    pub dropped: Vec<SystemName>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vouched {
            return write!(
                f,
                "{} v{} accepted: listed as current by key set v{} of role {}",
                self.class,
                self.name.version(),
                self.set_version,
                self.role
            );
        }
        let rule = if self.rotation { "threshold" } else { "sign" };
        write!(
            f,
            "{} v{} accepted: {} of {} required signatures ({} rule) by key set v{} of role {}",
            self.class,
            self.name.version(),
            self.signers.len(),
            self.required,
            rule,
            self.set_version,
            self.role
        )
    }
}

#[derive(Clone, Debug)]
struct AcceptedSet {
    set: KeySet,
    /// The certificate record, kept so the chain can be handed to others.
    record: Vec<u8>,
}

/// What the store remembers of the newest accepted record of a content slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Accepted {
    version: u32,
    /// Version of the key set that vouched for it (signed it, or listed it).
    set: u32,
    /// [`record_digest`] of it; `None` for a floor set by a rotation, and for entries of
    /// trust files written before digests were kept (filled in by
    /// [`TrustStore::note_held`]).
    digest: Option<[u8; 32]>,
}

/// Trust state of one network.
#[derive(Clone, Debug)]
pub struct TrustStore {
    tag: NetworkTag,
    /// Each role's key sets, index 0 = version 1 (shipped in the bundle).
    chains: BTreeMap<Role, Vec<AcceptedSet>>,
    /// Highest accepted version per content slot.
    highest: BTreeMap<Slot, Accepted>,
}

/// The role whose key sets govern `slot`'s content.
fn role_of(slot: Slot) -> Option<Role> {
    ObjectClass::of(slot.0, slot.1, 1).governing_role()
}

/// Why a trust file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedTrustError {
    /// The file is not a trust file for this network: bad JSON, unknown format, another
    /// network, or an undecodable role, hex string or record (the detail says which).
    #[error("not a trust store file: {0}")]
    Format(String),
    /// The file's version-1 key set of a role differs from the bundle's.
    #[error("made from another bundle of network {tag} (version 1 of role {role} differs)")]
    OtherBundle {
        /// The network of the bundle.
        tag: NetworkTag,
        /// The role whose version 1 differs.
        role: Role,
    },
    /// A stored key set after version 1 no longer verifies along the chain.
    #[error("stored key set of role {role} no longer verifies: {refusal}")]
    Chain {
        /// The role whose chain fails.
        role: Role,
        /// Why the key set was refused.
        refusal: Refusal,
    },
}

#[derive(Serialize, Deserialize)]
struct TrustFile {
    format: String,
    network: String,
    /// Hex-encoded key-set certificate records per role number, version 1 first.
    keysets: BTreeMap<u16, Vec<String>>,
    highest: Vec<(u16, u32, u32)>,
    /// Per slot of `highest`: the key set version that vouched for it and the record's
    /// digest (hex, empty when unknown). Absent in files of older builds.
    #[serde(default)]
    vouched_by: Vec<(u16, u32, u32, String)>,
}

const TRUST_FORMAT: &str = "swarmsite-trust/1";

impl TrustStore {
    /// A store that trusts exactly the version-1 key sets of `bundle`.
    pub fn from_bundle(bundle: &Bundle) -> Self {
        let chains = bundle
            .keysets()
            .iter()
            .map(|(role, (record, set))| {
                let bytes = record
                    .encode()
                    .expect("bundle records were decoded, so they encode");
                (
                    *role,
                    vec![AcceptedSet {
                        set: set.clone(),
                        record: bytes,
                    }],
                )
            })
            .collect();
        TrustStore {
            tag: bundle.network(),
            chains,
            highest: BTreeMap::new(),
        }
    }

    /// The network this store trusts records of.
    pub fn network(&self) -> NetworkTag {
        self.tag
    }

    /// The newest key set of `role` and its version.
    pub fn current_set(&self, role: Role) -> Option<(u32, &KeySet)> {
        let chain = self.chains.get(&role)?;
        chain.last().map(|a| (chain.len() as u32, &a.set))
    }

    /// Every accepted key set of `role`, version 1 first.
    pub fn sets(&self, role: Role) -> impl Iterator<Item = &KeySet> {
        self.chains.get(&role).into_iter().flatten().map(|a| &a.set)
    }

    /// The accepted key-set certificate records of `role`, version 1 first.
    pub fn chain_records(&self, role: Role) -> Vec<&[u8]> {
        self.chains
            .get(&role)
            .map(|c| c.iter().map(|a| a.record.as_slice()).collect())
            .unwrap_or_default()
    }

    /// The highest accepted version of a slot (key sets: the chain length).
    pub fn highest(&self, slot: Slot) -> u32 {
        match ObjectClass::of(slot.0, slot.1, 1) {
            ObjectClass::KeySet(role) => self.chains.get(&role).map_or(0, |c| c.len() as u32),
            _ => self.highest.get(&slot).map_or(0, |a| a.version),
        }
    }

    /// A record restored from disk is the one `highest` counted: remember its digest
    /// where a trust file from an older build did not.
    pub fn note_held(&mut self, record: &Record) {
        if let Some(a) = self.highest.get_mut(&record.name.slot())
            && a.version == record.name.version()
            && a.digest.is_none()
        {
            a.digest = Some(record_digest(record));
        }
    }

    /// Decides about `record` at unix time `now` without changing anything.
    pub fn check(&self, record: &Record, now: u64) -> Result<Verdict, Refusal> {
        self.judge(record, now, true)
    }

    /// Every rule of [`TrustStore::check`] but the no-rollback one for content: is this
    /// record signed as its role requires by the newest key set, whatever version was
    /// accepted already? For judging what another node serves (the DNS prober keeps
    /// the nodes serving the newest release). Key sets keep the chain rule.
    pub fn check_authentic(&self, record: &Record, now: u64) -> Result<Verdict, Refusal> {
        self.judge(record, now, false)
    }

    fn judge(&self, record: &Record, now: u64, no_rollback: bool) -> Result<Verdict, Refusal> {
        let name = record.name;
        if name.tag() != self.tag {
            return Err(Refusal::WrongNetwork {
                expected: self.tag,
                got: name.tag(),
            });
        }
        let class = name.class();
        let no_role = || Refusal::NoGoverningRole {
            class: class.to_string(),
            kind: name.kind(),
            id: name.id(),
        };
        let role = class.governing_role().ok_or_else(no_role)?;
        let chain = self.chains.get(&role).ok_or_else(no_role)?;
        let current = chain.len() as u32;
        let got = name.version();
        let rotation = matches!(class, ObjectClass::KeySet(_));
        if rotation {
            if got <= current {
                return Err(Refusal::NotNewer { have: current, got });
            }
            if got > current + 1 {
                return Err(Refusal::ChainGap {
                    next: current + 1,
                    got,
                });
            }
        } else if no_rollback {
            let have = self.highest(name.slot());
            if got <= have {
                return Err(Refusal::NotNewer { have, got });
            }
        }
        if record.time > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(Refusal::FromTheFuture {
                time: record.time,
                now,
            });
        }
        let set = &chain[chain.len() - 1].set;
        let listed = set.vouched(name.slot());
        if !rotation {
            let floor = self
                .highest(name.slot())
                .max(listed.map_or(0, |v| v.version));
            if got > floor.saturating_add(MAX_VERSION_STEP) {
                return Err(Refusal::VersionJump { floor, got });
            }
        }
        let required = if rotation {
            set.threshold()
        } else {
            set.sign()
        };

        let verdict = |signers, vouched| Verdict {
            name,
            class,
            role,
            set_version: current,
            signers,
            required,
            rotation,
            vouched,
            dropped: Vec::new(),
        };
        let message = record.signed_message();
        let mut signers = Vec::new();
        let mut retired = Vec::new();
        let mut unknown = 0;
        for (i, s) in record.sigs.iter().enumerate() {
            if record.sigs[..i].iter().any(|t| t.kid == s.kid) {
                return Err(Refusal::DuplicateSigner(s.kid));
            }
            match set.get(&s.kid) {
                Some(key) if key.verify(&message, &s.sig) => signers.push(s.kid),
                Some(_) => return Err(Refusal::BadSignature(s.kid)),
                None => match chain.iter().position(|a| a.set.get(&s.kid).is_some()) {
                    Some(v) => {
                        retired.push(format!("{} (retired, key set v{})", s.kid.short(), v + 1))
                    }
                    None => unknown += 1,
                },
            }
        }
        if (signers.len() as u32) < required {
            if !rotation
                && listed.is_some_and(|v| v.version == got && v.digest == record_digest(record))
            {
                return Ok(verdict(signers, true));
            }
            if !rotation && signers.is_empty() && unknown == 0 && !retired.is_empty() {
                return Err(Refusal::RetiredKeys { role, current });
            }
            let mut extra = String::new();
            if !retired.is_empty() {
                extra.push_str(&format!("; ignored signatures by {}", retired.join(", ")));
            }
            if unknown > 0 {
                extra.push_str(&format!("; ignored {unknown} signatures by unknown keys"));
            }
            return Err(Refusal::NotEnoughSignatures {
                valid: signers.len() as u32,
                required,
                signers: format!("key set v{current} of role {role}"),
                extra,
            });
        }
        if rotation {
            match &record.payload {
                Payload::Body(body) => {
                    KeySet::from_body(body)?;
                }
                Payload::Torrent { .. } => return Err(Refusal::KeySetNotInline),
            }
        }
        Ok(verdict(signers, false))
    }

    /// Checks `record` and, when accepted, records its version (and its key set). A new
    /// key set keeps of the content older sets vouched for only what it lists as
    /// current: the rest is named in [`Verdict::dropped`] and its slot's pin released
    /// (down to just below the listed version, if any), so the honest current record is
    /// taken again whatever version a retired key claimed (SPEC §3).
    pub fn accept(&mut self, record: &Record, now: u64) -> Result<Verdict, Refusal> {
        let mut verdict = self.check(record, now)?;
        if verdict.rotation {
            let body = record.body().expect("checked: key sets are inline");
            let set = KeySet::from_body(body)?;
            let bytes = record.encode()?;
            let chain = self.chains.entry(verdict.role).or_default();
            chain.push(AcceptedSet { set, record: bytes });
            let (new, set) = (chain.len() as u32, &chain[chain.len() - 1].set);
            let mut dropped = Vec::new();
            self.highest.retain(|slot, a| {
                if role_of(*slot) != Some(verdict.role) || a.set >= new {
                    return true;
                }
                let listed = set.vouched(*slot);
                if let Some(v) = listed
                    && v.version == a.version
                    && a.digest == Some(v.digest)
                {
                    a.set = new;
                    return true;
                }
                if a.digest.is_some() {
                    dropped.push(SystemName::new(self.tag, slot.0, slot.1, a.version));
                }
                match listed {
                    Some(v) if v.version > 1 => {
                        *a = Accepted {
                            version: v.version - 1,
                            set: new,
                            digest: None,
                        };
                        true
                    }
                    _ => false,
                }
            });
            verdict.dropped = dropped;
        } else {
            self.highest.insert(
                record.name.slot(),
                Accepted {
                    version: record.name.version(),
                    set: verdict.set_version,
                    digest: Some(record_digest(record)),
                },
            );
        }
        Ok(verdict)
    }

    /// Decodes and accepts raw record bytes.
    pub fn accept_bytes(&mut self, bytes: &[u8], now: u64) -> Result<(Record, Verdict), Refusal> {
        let record = Record::decode(bytes)?;
        let verdict = self.accept(&record, now)?;
        Ok((record, verdict))
    }

    /// Accepts a batch of key-set certificates in version order, skipping ones already
    /// known. Lets a fresh client that ships version 1 catch up with v1→v2→…→vN.
    pub fn accept_chain(&mut self, records: &[Record], now: u64) -> Result<usize, Refusal> {
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by_key(|r| (r.name.kind(), r.name.version()));
        let mut accepted = 0;
        for record in sorted {
            match self.accept(record, now) {
                Ok(_) => accepted += 1,
                Err(Refusal::NotNewer { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(accepted)
    }

    /// Restores a store from its saved form ([`TrustStore::to_saved`]). Every stored key
    /// set is verified again from the bundle's version 1.
    pub fn from_saved(text: &str, bundle: &Bundle) -> Result<Self, SavedTrustError> {
        let format = SavedTrustError::Format;
        let file: TrustFile = serde_json::from_str(text).map_err(|e| format(e.to_string()))?;
        if file.format != TRUST_FORMAT {
            return Err(format(format!("unknown format {:?}", file.format)));
        }
        if file.network != bundle.network().as_str() {
            return Err(format(format!("it is for network {}", file.network)));
        }
        let mut store = Self::from_bundle(bundle);
        for (number, records) in &file.keysets {
            let role = Role::new(*number).map_err(|e| format(e.to_string()))?;
            let mut decoded = Vec::new();
            for (i, hex_record) in records.iter().enumerate() {
                let bytes = hex::decode(hex_record).map_err(|e| format(e.to_string()))?;
                if i == 0 {
                    if store.chain_records(role).first() != Some(&bytes.as_slice()) {
                        return Err(SavedTrustError::OtherBundle {
                            tag: store.tag,
                            role,
                        });
                    }
                    continue;
                }
                decoded.push(Record::decode(&bytes).map_err(|e| format(e.to_string()))?);
            }
            // The clock does not matter for records accepted before; only signatures do.
            store
                .accept_chain(&decoded, u64::MAX - MAX_CLOCK_SKEW_SECS)
                .map_err(|refusal| SavedTrustError::Chain { role, refusal })?;
        }
        for (kind, id, version) in file.highest {
            // Files of older builds: vouched for by the newest set, digest filled in
            // from the held record.
            let set = role_of((kind, id))
                .and_then(|r| store.current_set(r))
                .map_or(1, |(v, _)| v);
            let accepted = Accepted {
                version,
                set,
                digest: None,
            };
            store.highest.insert((kind, id), accepted);
        }
        for (kind, id, set, digest) in file.vouched_by {
            if let Some(a) = store.highest.get_mut(&(kind, id)) {
                a.set = set;
                a.digest = hex::decode(&digest)
                    .ok()
                    .and_then(|d| <[u8; 32]>::try_from(d).ok());
            }
        }
        Ok(store)
    }

    /// The store's saved form: JSON, restored by [`TrustStore::from_saved`].
    pub fn to_saved(&self) -> Vec<u8> {
        let file = TrustFile {
            format: TRUST_FORMAT.into(),
            network: self.tag.to_string(),
            keysets: self
                .chains
                .iter()
                .map(|(role, c)| {
                    (
                        role.number(),
                        c.iter().map(|a| hex::encode(&a.record)).collect(),
                    )
                })
                .collect(),
            highest: self
                .highest
                .iter()
                .map(|((k, i), a)| (*k, *i, a.version))
                .collect(),
            vouched_by: self
                .highest
                .iter()
                .map(|((k, i), a)| (*k, *i, a.set, a.digest.map(hex::encode).unwrap_or_default()))
                .collect(),
        };
        serde_json::to_vec_pretty(&file).expect("serialisable")
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
