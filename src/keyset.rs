//! Key-set certificates (SPEC §3): which keys speak for a role, and how many must agree.
//!
//! Payload (the record's `body`): `{keys: [DER SPKI…], sign: s, threshold: t}`.
//! `threshold` keys of version v must sign version v+1; `sign` keys of the newest
//! version must sign the role's content.

use crate::bencode::{self, Fields, Limits, ShapeError, Value};
use crate::keys::{KeyError, Kid, PublicKey};

/// More keys than this in one set is a mistake, and would not fit in a record anyway.
pub const MAX_KEYS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
    threshold: u32,
    sign: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("key-set payload: {0}")]
    Shape(#[from] ShapeError),
    #[error("key-set payload: {0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("key {index} of the set: {error}")]
    Key { index: usize, error: KeyError },
    #[error("a key set needs 1 to {MAX_KEYS} keys, got {0}")]
    KeyCount(usize),
    #[error("the same key appears twice in the set")]
    DuplicateKey,
    #[error("threshold {threshold} must be between 1 and the number of keys ({keys})")]
    Threshold { threshold: i64, keys: usize },
    #[error("sign count {sign} must be between 1 and the number of keys ({keys})")]
    Sign { sign: i64, keys: usize },
}

impl KeySet {
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
        })
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    pub fn sign(&self) -> u32 {
        self.sign
    }

    pub fn get(&self, kid: &Kid) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid() == *kid)
    }

    pub fn to_body(&self) -> Vec<u8> {
        bencode::encode(&bencode::dict([
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
        ]))
    }

    pub fn from_body(body: &[u8]) -> Result<Self, KeySetError> {
        let mut f = Fields::new(bencode::decode(body, Limits::RECORD)?)?;
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
        KeySet::new(keys, threshold, sign)
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
        let dup = vec![keys[0].clone(), keys[0].clone()];
        assert_eq!(KeySet::new(dup, 1, 1), Err(KeySetError::DuplicateKey));
        assert_eq!(KeySet::new(vec![], 1, 1), Err(KeySetError::KeyCount(0)));
    }
}
