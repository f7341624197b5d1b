//! Key-set certificates (SPEC §3): which keys speak for a role, and how many must agree.
//!
//! Payload (the record's `body`): `{current: …, keys: [DER SPKI…], sign: s, threshold: t}`.
//! `threshold` keys of version v must sign version v+1; `sign` keys of the newest
//! version must sign the role's content. `current` (optional, rotations only) names the
//! role's content that was current when the set was made: what the retired keys signed
//! and the new set still vouches for (SPEC §3, PROTOCOL.md §4), in the manner of TUF's
//! snapshot.

use crate::bencode::{self, Fields, Limits, ShapeError, Value};
use crate::keys::{KeyError, Kid, PublicKey};
use crate::name::Slot;

/// More keys than this in one set is a mistake, and would not fit in a record anyway.
pub const MAX_KEYS: usize = 16;

/// Bytes of one packed `current` entry: kind (2), id (4), version (4), digest (32).
pub const VOUCHED_LEN: usize = 42;

/// One record a key set vouches for: its name's slot and version, and the SHA-256 of
/// its signed message (the record without `sigs`, so a re-signed copy matches too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vouched {
    /// Kind and id of the vouched-for record's name.
    pub slot: Slot,
    /// The version of that name the set vouches for.
    pub version: u32,
    /// SHA-256 of that record's signed message.
    pub digest: [u8; 32],
}

impl Vouched {
    fn pack(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.slot.0.to_be_bytes());
        out.extend_from_slice(&self.slot.1.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.digest);
    }

    fn unpack(b: &[u8]) -> Self {
        Vouched {
            slot: (
                u16::from_be_bytes([b[0], b[1]]),
                u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            ),
            version: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            digest: b[10..42].try_into().expect("42-byte entry"),
        }
    }
}

/// A role's key-set certificate, decoded and checked: its keys, how many of them must sign
/// the next version (`threshold`) and the role's content (`sign`), and what it vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    threshold: u32,
    sign: u32,
    /// Sorted by slot, one entry per slot.
    current: Vec<Vouched>,
}

/// Why a key-set payload, or the parts of a new key set, are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The payload is not a dictionary of the expected fields and types.
    #[error("key-set payload: {0}")]
    Shape(#[from] ShapeError),
    /// The payload is not canonical bencode within the record limits.
    #[error("key-set payload: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// A key of `keys` is not an acceptable public key.
    #[error("key {index} of the set: {error}")]
    Key {
        /// Position of the key in `keys`, from 0.
        index: usize,
        /// Why the key was refused.
        error: KeyError,
    },
    /// The set has no keys, or more than [`MAX_KEYS`] (the count is carried).
    #[error("a key set needs 1 to {MAX_KEYS} keys, got {0}")]
    KeyCount(usize),
    /// Two keys of the set have the same kid.
    #[error("the same key appears twice in the set")]
    DuplicateKey,
    /// `threshold` is 0, or more than the set has keys.
    #[error("threshold {threshold} must be between 1 and the number of keys ({keys})")]
    Threshold {
        /// The threshold given (`i64`, so a decoded value beyond `u32` is shown as sent).
        threshold: i64,
        /// How many keys the set has.
        keys: usize,
    },
    /// `sign` is 0, or more than the set has keys.
    #[error("sign count {sign} must be between 1 and the number of keys ({keys})")]
    Sign {
        /// The sign count given (`i64`, so a decoded value beyond `u32` is shown as sent).
        sign: i64,
        /// How many keys the set has.
        keys: usize,
    },
    /// `current` is not whole [`VOUCHED_LEN`]-byte entries, or names a slot twice (or, when
    /// decoded, out of slot order).
    #[error("`current` must be whole {VOUCHED_LEN}-byte entries, one per slot, in slot order")]
    Current,
}

impl KeySet {
    /// A set of `keys` (1 to [`MAX_KEYS`], all distinct), `threshold` of which must sign the
    /// next version and `sign` of which the role's content (each 1 to the number of keys).
    /// It vouches for nothing until [`KeySet::with_current`].
    pub fn new(keys: Vec<PublicKey>, threshold: u32, sign: u32) -> Result<Self, KeySetError> {
        let n = keys.len();
        if n == 0 || n > MAX_KEYS {
            return Err(KeySetError::KeyCount(n));
        }
        let mut kids: Vec<Kid> = keys.iter().map(PublicKey::kid).collect();
        kids.sort();
        kids.dedup();
        if kids.len() != n {
            return Err(KeySetError::DuplicateKey);
        }
        if threshold == 0 || threshold as usize > n {
            return Err(KeySetError::Threshold {
                threshold: threshold.into(),
                keys: n,
            });
        }
        if sign == 0 || sign as usize > n {
            return Err(KeySetError::Sign {
                sign: sign.into(),
                keys: n,
            });
        }
        Ok(KeySet {
            keys,
            threshold,
            sign,
            current: Vec::new(),
        })
    }

    /// The same set, vouching for `current` (one entry per slot).
    pub fn with_current(mut self, mut current: Vec<Vouched>) -> Result<Self, KeySetError> {
        current.sort();
        if current.windows(2).any(|w| w[0].slot == w[1].slot) {
            return Err(KeySetError::Current);
        }
        self.current = current;
        Ok(self)
    }

    /// What this set vouches for that older sets signed, sorted by slot.
    pub fn current(&self) -> &[Vouched] {
        &self.current
    }

    /// The entry of `current` for `slot`.
    pub fn vouched(&self, slot: Slot) -> Option<&Vouched> {
        self.current
            .binary_search_by_key(&slot, |v| v.slot)
            .ok()
            .map(|i| &self.current[i])
    }

    /// The role's keys, in the order the certificate lists them.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// How many of these keys must sign the set's next version (SPEC §3).
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// How many of these keys must sign the role's content (SPEC §3).
    pub fn sign(&self) -> u32 {
        self.sign
    }

    /// The key of the set whose kid is `kid`, if any.
    pub fn get(&self, kid: &Kid) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid() == *kid)
    }

    /// The canonical bencode payload for the record's `body` (no `current` when it is empty).
    pub fn to_body(&self) -> Vec<u8> {
        let mut fields = vec![
            (
                "keys",
                Value::List(
                    self.keys
                        .iter()
                        .map(|k| Value::Bytes(k.der().to_vec()))
                        .collect(),
                ),
            ),
            ("sign", Value::Int(self.sign.into())),
            ("threshold", Value::Int(self.threshold.into())),
        ];
        if !self.current.is_empty() {
            let mut packed = Vec::with_capacity(self.current.len() * VOUCHED_LEN);
            for v in &self.current {
                v.pack(&mut packed);
            }
            fields.push(("current", Value::Bytes(packed)));
        }
        bencode::encode(&Value::Dict(
            fields
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        ))
    }

    /// Strictly decodes a record's `body` and checks it like [`KeySet::new`] and
    /// [`KeySet::with_current`]; `current` must be in strictly increasing slot order.
    pub fn from_body(body: &[u8]) -> Result<Self, KeySetError> {
        let mut f = Fields::new(bencode::decode(body, Limits::RECORD)?)?;
        let current = f.opt_bytes("current")?.unwrap_or_default();
        let items = f.list("keys")?;
        let sign = f.int("sign")?;
        let threshold = f.int("threshold")?;
        f.finish()?;
        if items.is_empty() || items.len() > MAX_KEYS {
            return Err(KeySetError::KeyCount(items.len()));
        }
        let mut keys = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let Value::Bytes(der) = item else {
                return Err(ShapeError::WrongType("keys").into());
            };
            keys.push(
                PublicKey::from_der(&der).map_err(|error| KeySetError::Key { index, error })?,
            );
        }
        let n = keys.len();
        let threshold =
            u32::try_from(threshold).map_err(|_| KeySetError::Threshold { threshold, keys: n })?;
        let sign = u32::try_from(sign).map_err(|_| KeySetError::Sign { sign, keys: n })?;
        if current.len() % VOUCHED_LEN != 0 {
            return Err(KeySetError::Current);
        }
        let current: Vec<Vouched> = current.chunks(VOUCHED_LEN).map(Vouched::unpack).collect();
        // Canonical: strictly increasing slots, so one body has one meaning.
        if current.windows(2).any(|w| w[0].slot >= w[1].slot) {
            return Err(KeySetError::Current);
        }
        KeySet::new(keys, threshold, sign)?.with_current(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;

    #[test]
    fn body_round_trip_and_bounds() {
        let keys: Vec<_> = (0..3).map(|i| testkeys::key(i).public().clone()).collect();
        let set = KeySet::new(keys.clone(), 2, 1).unwrap();
        assert_eq!(KeySet::from_body(&set.to_body()).unwrap(), set);
        assert!(matches!(
            KeySet::new(keys.clone(), 4, 1),
            Err(KeySetError::Threshold { .. })
        ));
        assert!(matches!(
            KeySet::new(keys.clone(), 0, 1),
            Err(KeySetError::Threshold { .. })
        ));
        assert!(matches!(
            KeySet::new(keys.clone(), 2, 0),
            Err(KeySetError::Sign { .. })
        ));
        let vouched = |kind, id, version| Vouched {
            slot: (kind, id),
            version,
            digest: [version as u8; 32],
        };
        let with = set
            .clone()
            .with_current(vec![vouched(0x1000, 1, 7), vouched(0x8080, 3, 2)])
            .unwrap();
        assert_eq!(KeySet::from_body(&with.to_body()).unwrap(), with);
        assert_eq!(with.vouched((0x1000, 1)).unwrap().version, 7);
        assert!(with.vouched((0x1000, 2)).is_none());
        assert_eq!(
            set.clone()
                .with_current(vec![vouched(0x1000, 1, 7), vouched(0x1000, 1, 8)]),
            Err(KeySetError::Current)
        );
        let dup = vec![keys[0].clone(), keys[0].clone()];
        assert_eq!(KeySet::new(dup, 1, 1), Err(KeySetError::DuplicateKey));
        assert_eq!(KeySet::new(vec![], 1, 1), Err(KeySetError::KeyCount(0)));
    }
}
