//! Signed records (SPEC §2): the one envelope every published object travels in.
//!
//! A record is a canonical bencoded dictionary `{body | ih+size, name, sigs, time}`
//! of at most 16 KiB; each signature is RSASSA-PSS-SHA-256 over the encoding of the
//! same dictionary without `sigs`. Decoding checks form only; whether a record is
//! *trusted* is the trust store's decision ([`crate::trust`]).

use crate::bencode::{self, DecodeError, Fields, Limits, ShapeError, Value};
use crate::keys::{Kid, PrivateKey};
use crate::name::{NameError, SystemName};

/// Largest encoded record.
pub const MAX_RECORD_LEN: usize = 16 * 1024;
/// Largest inline body.
pub const MAX_BODY_LEN: usize = 8 * 1024;
/// Largest signature accepted (RSA-4096).
const MAX_SIG_LEN: usize = 512;

/// What a record carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Inline payload, at most 8 KiB.
    Body(Vec<u8>),
    /// A torrent whose info hash is `ih` carries the payload of `size` bytes.
    Torrent {
        /// BitTorrent v1 info hash of the torrent.
        ih: [u8; 20],
        /// Size of the payload, in bytes.
        size: u64,
    },
}

/// One signature: who (`kid`) and the PSS signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Id of the key that made the signature.
    pub kid: Kid,
    /// The RSASSA-PSS-SHA-256 signature over [`Record::signed_message`], 1 to 512 bytes.
    pub sig: Vec<u8>,
}

/// A decoded record. Fields are public for inspection; build new ones with
/// [`Record::new`] and [`Record::sign`] so the limits hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The system name the record publishes: which object, and which version of it.
    pub name: SystemName,
    /// Unix seconds at which the publisher made the record.
    pub time: u64,
    /// The inline body, or the torrent that carries the payload.
    pub payload: Payload,
    /// Signatures, sorted by kid with at most one per kid; may be empty in drafts.
    pub sigs: Vec<Signature>,
}

/// Why bytes are not a well-formed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not canonical bencode within [`Limits::RECORD`].
    #[error("bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// The dictionary lacks a field, has an unknown one, or one of the wrong type or value.
    #[error("record: {0}")]
    Shape(#[from] ShapeError),
    /// The `name` field is not a valid system name.
    #[error("name: {0}")]
    Name(#[from] NameError),
    /// Both `body` and `ih` are present; a record carries exactly one payload.
    #[error("record has both `body` and `ih`")]
    BothPayloads,
    /// Neither `body` nor `ih` is present.
    #[error("record has neither `body` nor `ih`")]
    NoPayload,
    /// The inline body is longer than [`MAX_BODY_LEN`] (its length is carried).
    #[error("body of {0} bytes exceeds {MAX_BODY_LEN}")]
    BodyTooLarge(usize),
    /// The encoding is longer than [`MAX_RECORD_LEN`] (its length is carried).
    #[error("encoded record of {0} bytes exceeds {MAX_RECORD_LEN}")]
    TooLarge(usize),
    /// `time` or `size` is above the largest bencode integer the decoder takes
    /// (`i64::MAX`): such a record would be encoded as a negative number and refused.
    #[error("{0} is above {max}", max = i64::MAX)]
    OutOfRange(&'static str),
}

impl Record {
    /// An unsigned record; fails if the body is too large, or `time` or the torrent's
    /// `size` cannot be encoded.
    pub fn new(name: SystemName, time: u64, payload: Payload) -> Result<Self, RecordError> {
        if let Payload::Body(b) = &payload
            && b.len() > MAX_BODY_LEN
        {
            return Err(RecordError::BodyTooLarge(b.len()));
        }
        if i64::try_from(time).is_err() {
            return Err(RecordError::OutOfRange("time"));
        }
        if let Payload::Torrent { size, .. } = &payload
            && i64::try_from(*size).is_err()
        {
            return Err(RecordError::OutOfRange("size"));
        }
        Ok(Record {
            name,
            time,
            payload,
            sigs: Vec::new(),
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("name", Value::Bytes(self.name.as_bytes().to_vec())),
            ("time", Value::Int(self.time as i64)),
        ];
        match &self.payload {
            Payload::Body(b) => fields.push(("body", Value::Bytes(b.clone()))),
            Payload::Torrent { ih, size } => {
                fields.push(("ih", Value::Bytes(ih.to_vec())));
                fields.push(("size", Value::Int(*size as i64)));
            }
        }
        fields
    }

    /// The bytes every signature covers: the record's encoding without `sigs`.
    pub fn signed_message(&self) -> Vec<u8> {
        bencode::encode(&to_dict(self.fields()))
    }

    /// Adds (or replaces) the signature of `key`; signatures stay ordered by kid so
    /// that the same set of signers always gives the same bytes.
    pub fn sign(&mut self, key: &PrivateKey) {
        let sig = key.sign(&self.signed_message());
        self.add_signature(Signature {
            kid: key.kid(),
            sig,
        });
    }

    /// Adds a signature made elsewhere (see `swarmsite keys combine`).
    pub fn add_signature(&mut self, signature: Signature) {
        self.sigs.retain(|s| s.kid != signature.kid);
        self.sigs.push(signature);
        self.sigs.sort_by_key(|s| s.kid);
    }

    /// Canonical encoding; fails when it would exceed 16 KiB.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut fields = self.fields();
        let sigs = self
            .sigs
            .iter()
            .map(|s| {
                bencode::dict([
                    ("kid", Value::Bytes(s.kid.0.to_vec())),
                    ("sig", Value::Bytes(s.sig.clone())),
                ])
            })
            .collect();
        fields.push(("sigs", Value::List(sigs)));
        let bytes = bencode::encode(&to_dict(fields));
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Strictly decodes a record: canonical bencode, known fields only, sizes in range.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut f = Fields::new(bencode::decode(bytes, Limits::RECORD)?)?;
        let name = SystemName::from_bytes(&f.bytes("name")?)?;
        let time = non_negative(f.int("time")?, "time")?;
        let body = f.opt_bytes("body")?;
        let ih = f.opt_bytes("ih")?;
        let size = f.opt_int("size")?;
        let payload = match (body, ih, size) {
            (Some(_), Some(_), _) => return Err(RecordError::BothPayloads),
            (Some(b), None, None) if b.len() > MAX_BODY_LEN => {
                return Err(RecordError::BodyTooLarge(b.len()));
            }
            (Some(b), None, None) => Payload::Body(b),
            (Some(_), None, Some(_)) => return Err(ShapeError::Unknown("size".into()).into()),
            (None, Some(ih), Some(size)) => Payload::Torrent {
                ih: ih.try_into().map_err(|_| invalid("ih", "not 20 bytes"))?,
                size: non_negative(size, "size")?,
            },
            (None, Some(_), None) => return Err(ShapeError::Missing("size").into()),
            (None, None, _) => return Err(RecordError::NoPayload),
        };
        let mut sigs = Vec::new();
        for item in f.list("sigs")? {
            let mut s = Fields::new(item)?;
            let kid = Kid::from_slice(&s.bytes("kid")?).ok_or(invalid("kid", "not 32 bytes"))?;
            let sig = s.bytes("sig")?;
            if sig.is_empty() || sig.len() > MAX_SIG_LEN {
                return Err(invalid("sig", "length out of range"));
            }
            s.finish()?;
            sigs.push(Signature { kid, sig });
        }
        f.finish()?;
        Ok(Record {
            name,
            time,
            payload,
            sigs,
        })
    }

    /// The inline body, if this is a body record.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.payload {
            Payload::Body(b) => Some(b),
            Payload::Torrent { .. } => None,
        }
    }
}

fn to_dict(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Dict(
        fields
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn invalid(field: &'static str, why: &str) -> RecordError {
    ShapeError::Invalid {
        field,
        why: why.into(),
    }
    .into()
}

fn non_negative(v: i64, field: &'static str) -> Result<u64, RecordError> {
    u64::try_from(v).map_err(|_| invalid(field, "negative"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NetworkTag;
    use crate::testkeys;

    fn name() -> SystemName {
        SystemName::new(NetworkTag::DEFAULT, 0x1000, 1, 1)
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut r = Record::new(
            name(),
            1_700_000_000,
            Payload::Torrent {
                ih: [7; 20],
                size: 42,
            },
        )
        .unwrap();
        r.sign(testkeys::key(0));
        r.sign(testkeys::key(1));
        let bytes = r.encode().unwrap();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        let sig = &r.sigs[0];
        let signer = [testkeys::key(0), testkeys::key(1)]
            .into_iter()
            .find(|k| k.kid() == sig.kid)
            .unwrap();
        assert!(signer.public().verify(&r.signed_message(), &sig.sig));
    }

    #[test]
    fn malformed_records_are_refused() {
        let body = Record::new(name(), 1, Payload::Body(vec![0; MAX_BODY_LEN + 1]));
        assert_eq!(
            body.unwrap_err(),
            RecordError::BodyTooLarge(MAX_BODY_LEN + 1)
        );
        let late = Record::new(name(), u64::MAX, Payload::Body(vec![]));
        assert_eq!(late.unwrap_err(), RecordError::OutOfRange("time"));
        let huge = Payload::Torrent {
            ih: [1; 20],
            size: 1 << 63,
        };
        assert_eq!(
            Record::new(name(), 1, huge).unwrap_err(),
            RecordError::OutOfRange("size")
        );
        let enc = |v: Value| Record::decode(&bencode::encode(&v));
        let n = Value::Bytes(name().as_bytes().to_vec());
        let no_sigs = Value::List(vec![]);
        assert_eq!(
            enc(bencode::dict([
                ("name", n.clone()),
                ("sigs", no_sigs.clone()),
                ("time", Value::Int(1))
            ])),
            Err(RecordError::NoPayload)
        );
        assert_eq!(
            enc(bencode::dict([
                ("body", Value::Bytes(vec![])),
                ("ih", Value::Bytes(vec![0; 20])),
                ("name", n.clone()),
                ("sigs", no_sigs.clone()),
                ("time", Value::Int(1)),
            ])),
            Err(RecordError::BothPayloads)
        );
        assert!(matches!(
            enc(bencode::dict([
                ("body", Value::Bytes(vec![])),
                ("extra", Value::Int(0)),
                ("name", n.clone()),
                ("sigs", no_sigs.clone()),
                ("time", Value::Int(1)),
            ])),
            Err(RecordError::Shape(ShapeError::Unknown(_)))
        ));
        assert!(matches!(
            enc(bencode::dict([
                ("body", Value::Bytes(vec![])),
                ("name", n),
                ("sigs", no_sigs),
                ("time", Value::Int(-1)),
            ])),
            Err(RecordError::Shape(ShapeError::Invalid {
                field: "time",
                ..
            }))
        ));
    }
}
