//! Canonical bencode (BEP 3) with strict decoding.
//!
//! Records are signed over their bencoding, so there must be exactly one encoding of
//! every value: keys sorted and unique, no leading zeros, no `-0`, nothing after the
//! value. The syntax checks come from `bendy`, which enforces canonical form on decode;
//! this module adds the limits (total length, depth, integer range) and a plain owned
//! [`Value`] tree that the rest of the crate works with.

use std::collections::BTreeMap;
use std::error::Error as _;

use bendy::decoding::{Decoder, Object};

/// A decoded bencode value. `Dict` keeps keys sorted, so encoding is canonical by
/// construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer (`i…e`); canonical form has no leading zeros and no `-0`.
    Int(i64),
    /// A byte string (`<len>:<bytes>`), not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// A list (`l…e`).
    List(Vec<Value>),
    /// A dictionary (`d…e`) keyed by byte strings, in ascending key order.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Bounds applied while decoding untrusted input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_len: usize,
    /// Deepest accepted nesting of lists and dictionaries.
    pub max_depth: usize,
}

impl Limits {
    /// Limits for a signed record (SPEC §2: at most 16 KiB).
    pub const RECORD: Limits = Limits {
        max_len: 16 * 1024,
        max_depth: 8,
    };
    /// Limits for one wire message (SPEC §5: at most 64 KiB).
    pub const MESSAGE: Limits = Limits {
        max_len: 64 * 1024,
        max_depth: 8,
    };
}

/// Why an input is not canonical bencode within the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than [`Limits::max_len`].
    #[error("input is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length of the input, in bytes.
        len: usize,
        /// The limit it exceeded, in bytes.
        max: usize,
    },
    /// The input has no bytes, so holds no value.
    #[error("input is empty")]
    Empty,
    /// The input ends before the value is complete.
    #[error("input ends in the middle of a value")]
    Truncated,
    /// A dictionary's keys are out of order or repeated, which canonical form forbids.
    #[error("dictionary keys are not strictly ascending (unsorted or duplicate)")]
    UnsortedOrDuplicateKeys,
    /// Lists and dictionaries nest deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {max} levels")]
    TooDeep {
        /// The depth limit that was exceeded.
        max: usize,
    },
    /// An integer is outside the range of `i64`.
    #[error("integer does not fit in 64 bits")]
    IntegerOverflow,
    /// Bytes remain after the one complete value.
    #[error("trailing bytes after the value")]
    TrailingBytes,
    /// Any other malformed or non-canonical input (such as `i03e` or `i-0e`), with the
    /// decoder's message.
    #[error("syntax: {0}")]
    Syntax(String),
}

impl DecodeError {
    fn from_bendy(err: bendy::decoding::Error, limits: &Limits) -> Self {
        // bendy keeps its structure-error type private; its messages are the only
        // handle. The unit tests pin each mapping, so a wording change fails loudly.
        let detail = err
            .source()
            .map(|s| s.to_string())
            .unwrap_or_else(|| err.to_string());
        match detail.as_str() {
            "Keys were not sorted" => DecodeError::UnsortedOrDuplicateKeys,
            "Reached EOF in the middle of a message" => DecodeError::Truncated,
            "Maximum nesting depth exceeded" => DecodeError::TooDeep {
                max: limits.max_depth,
            },
            _ => DecodeError::Syntax(detail),
        }
    }
}

/// Decodes exactly one canonical value spanning all of `input`.
pub fn decode(input: &[u8], limits: Limits) -> Result<Value, DecodeError> {
    if input.len() > limits.max_len {
        return Err(DecodeError::TooLong {
            len: input.len(),
            max: limits.max_len,
        });
    }
    if input.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut decoder = Decoder::new(input).with_max_depth(limits.max_depth);
    let value = {
        let object = decoder
            .next_object()
            .map_err(|e| DecodeError::from_bendy(e, &limits))?
            .ok_or(DecodeError::Empty)?;
        from_object(object, &limits)?
    };
    ensure_end(&mut decoder, &limits)?;
    Ok(value)
}

fn ensure_end(decoder: &mut Decoder<'_>, limits: &Limits) -> Result<(), DecodeError> {
    match decoder.next_object() {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(DecodeError::TrailingBytes),
        // Anything after the value is trailing garbage, parseable or not.
        Err(e) => match DecodeError::from_bendy(e, limits) {
            DecodeError::Truncated | DecodeError::Syntax(_) => Err(DecodeError::TrailingBytes),
            other => Err(other),
        },
    }
}

fn from_object(object: Object<'_, '_>, limits: &Limits) -> Result<Value, DecodeError> {
    let map = |e| DecodeError::from_bendy(e, limits);
    Ok(match object {
        Object::Integer(text) => {
            Value::Int(text.parse().map_err(|_| DecodeError::IntegerOverflow)?)
        }
        Object::Bytes(bytes) => Value::Bytes(bytes.to_vec()),
        Object::List(mut list) => {
            let mut items = Vec::new();
            while let Some(item) = list.next_object().map_err(map)? {
                items.push(from_object(item, limits)?);
            }
            Value::List(items)
        }
        Object::Dict(mut dict) => {
            let mut entries = BTreeMap::new();
            while let Some((key, item)) = dict.next_pair().map_err(map)? {
                let key = key.to_vec();
                let item = from_object(item, limits)?;
                if entries.insert(key, item).is_some() {
                    return Err(DecodeError::UnsortedOrDuplicateKeys);
                }
            }
            Value::Dict(entries)
        }
    })
}

/// Encodes `value` canonically.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out`.
///
/// Written out rather than through bendy's encoder: a sorted map already fixes the
/// order, and this path is infallible and allocation-light.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(entries) => {
            out.push(b'd');
            for (k, v) in entries {
                encode_bytes(k, out);
                encode_into(v, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Why a decoded value does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The value is not a dictionary.
    #[error("expected a dictionary")]
    NotDict,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A field holds a different bencode type than expected.
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A field has the right type but a value the protocol does not allow.
    #[error("field `{field}` is invalid: {why}")]
    Invalid {
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// A field no accessor consumed was left at [`Fields::finish`].
    #[error("unknown field `{0}`")]
    Unknown(String),
}

/// Typed access to the fields of a decoded dictionary, refusing unknown fields.
///
/// Each accessor removes the field it reads; [`Fields::finish`] then fails on any field
/// left over, so every byte of a signed record has a known meaning.
pub struct Fields(BTreeMap<Vec<u8>, Value>);

impl Fields {
    /// Wraps a dictionary for field access; fails with [`ShapeError::NotDict`] on any other
    /// value.
    pub fn new(value: Value) -> Result<Self, ShapeError> {
        match value {
            Value::Dict(d) => Ok(Fields(d)),
            _ => Err(ShapeError::NotDict),
        }
    }

    /// Removes and returns the raw value of `key`, if present, without checking its type.
    pub fn take(&mut self, key: &'static str) -> Option<Value> {
        self.0.remove(key.as_bytes())
    }

    /// Takes the required byte-string field `key`.
    pub fn bytes(&mut self, key: &'static str) -> Result<Vec<u8>, ShapeError> {
        self.opt_bytes(key)?.ok_or(ShapeError::Missing(key))
    }

    /// Takes the optional byte-string field `key`; `None` when absent.
    pub fn opt_bytes(&mut self, key: &'static str) -> Result<Option<Vec<u8>>, ShapeError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b)),
            Some(_) => Err(ShapeError::WrongType(key)),
        }
    }

    /// Takes the required byte-string field `key` and checks that it is UTF-8.
    pub fn string(&mut self, key: &'static str) -> Result<String, ShapeError> {
        String::from_utf8(self.bytes(key)?).map_err(|_| ShapeError::Invalid {
            field: key,
            why: "not UTF-8".into(),
        })
    }

    /// Takes the required integer field `key`.
    pub fn int(&mut self, key: &'static str) -> Result<i64, ShapeError> {
        self.opt_int(key)?.ok_or(ShapeError::Missing(key))
    }

    /// Takes the optional integer field `key`; `None` when absent.
    pub fn opt_int(&mut self, key: &'static str) -> Result<Option<i64>, ShapeError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(i)),
            Some(_) => Err(ShapeError::WrongType(key)),
        }
    }

    /// Takes the required list field `key`.
    pub fn list(&mut self, key: &'static str) -> Result<Vec<Value>, ShapeError> {
        match self.take(key) {
            None => Err(ShapeError::Missing(key)),
            Some(Value::List(l)) => Ok(l),
            Some(_) => Err(ShapeError::WrongType(key)),
        }
    }

    /// Succeeds only if every field has been taken; otherwise names a leftover field as
    /// [`ShapeError::Unknown`].
    pub fn finish(self) -> Result<(), ShapeError> {
        match self.0.into_keys().next() {
            None => Ok(()),
            Some(k) => Err(ShapeError::Unknown(
                String::from_utf8_lossy(&k).into_owned(),
            )),
        }
    }
}

/// Builds a dictionary value from `(key, value)` pairs.
pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Value, DecodeError> {
        decode(s.as_bytes(), Limits::RECORD)
    }

    #[test]
    fn canonical_values_round_trip() {
        for s in [
            "i0e",
            "i-7e",
            "0:",
            "3:abc",
            "le",
            "de",
            "d1:ai1e1:bl1:xee",
            "li1ei2ee",
        ] {
            assert_eq!(encode(&d(s).unwrap()), s.as_bytes(), "{s}");
        }
    }

    #[test]
    fn non_canonical_inputs_are_refused() {
        assert!(matches!(d("i03e"), Err(DecodeError::Syntax(_))));
        assert!(matches!(d("i-0e"), Err(DecodeError::Syntax(_))));
        assert!(matches!(d("03:abc"), Err(DecodeError::Syntax(_))));
        assert_eq!(
            d("d1:bi1e1:ai1ee"),
            Err(DecodeError::UnsortedOrDuplicateKeys)
        );
        assert_eq!(
            d("d1:ai1e1:ai2ee"),
            Err(DecodeError::UnsortedOrDuplicateKeys)
        );
        assert!(matches!(d("i1ei2e"), Err(DecodeError::TrailingBytes)));
        assert!(matches!(d("i1ex"), Err(DecodeError::TrailingBytes)));
        assert_eq!(d("4:ab"), Err(DecodeError::Truncated));
        assert_eq!(d(""), Err(DecodeError::Empty));
        assert_eq!(
            d("i99999999999999999999e"),
            Err(DecodeError::IntegerOverflow)
        );
        assert_eq!(
            d("lllllllllleeeeeeeeee"),
            Err(DecodeError::TooDeep { max: 8 })
        );
        let long = format!("{}:{}", 20_000, "a".repeat(20_000));
        assert!(matches!(d(&long), Err(DecodeError::TooLong { .. })));
        assert!(d("18446744073709551616:a").is_err());
    }

    #[test]
    fn fields_refuse_unknown_keys() {
        let mut f = Fields::new(d("d1:ai1e1:bi2ee").unwrap()).unwrap();
        assert_eq!(f.int("a"), Ok(1));
        assert_eq!(f.finish(), Err(ShapeError::Unknown("b".into())));
    }
}
