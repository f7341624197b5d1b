//! Intake receipts (kind `0x8080` id 2, signed by the documents role): the info hashes
//! of the uploads the intake holds. A node frees its copy of every upload listed.
//!
//! Payload: `{ihs: n × 20 bytes}`, canonical bencode, the newest receipt last. Inline in
//! the record while it fits (about 400 uploads); past that the record carries a torrent
//! of one file holding the same bytes.

use crate::bencode::{self, Fields, Limits, Value};
use crate::record::MAX_BODY_LEN;

/// Most info hashes a receipt lists (a 16 MiB torrent-form list).
pub const MAX_RECEIPTS: usize = 800_000;
/// Largest torrent-form receipt list read.
pub const MAX_RECEIPTS_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("{0}")]
    Bencode(#[from] bencode::DecodeError),
    #[error("{0}")]
    Shape(#[from] bencode::ShapeError),
    #[error("`ihs` is not a whole number of 20-byte info hashes")]
    Length,
    #[error("more than {MAX_RECEIPTS} info hashes")]
    TooMany,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipts {
    pub ihs: Vec<[u8; 20]>,
}

impl Receipts {
    pub fn encode(&self) -> Vec<u8> {
        bencode::encode(&bencode::dict([("ihs", Value::Bytes(self.ihs.concat()))]))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let limits = Limits {
            max_len: MAX_RECEIPTS_BYTES as usize,
            max_depth: 2,
        };
        let mut f = Fields::new(bencode::decode(bytes, limits)?)?;
        let flat = f.bytes("ihs")?;
        f.finish()?;
        if flat.len() % 20 != 0 {
            return Err(ReceiptError::Length);
        }
        if flat.len() / 20 > MAX_RECEIPTS {
            return Err(ReceiptError::TooMany);
        }
        Ok(Receipts {
            ihs: flat.chunks(20).map(|c| c.try_into().expect("20")).collect(),
        })
    }

    /// True when the list fits in a record body.
    pub fn fits_inline(&self) -> bool {
        self.encode().len() <= MAX_BODY_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_refuse_junk() {
        let r = Receipts {
            ihs: vec![[1; 20], [2; 20]],
        };
        assert_eq!(Receipts::decode(&r.encode()).unwrap(), r);
        assert!(r.fits_inline());
        let many = Receipts {
            ihs: vec![[7; 20]; 500],
        };
        assert!(!many.fits_inline());
        assert_eq!(Receipts::decode(b"d3:ihs3:abce"), Err(ReceiptError::Length));
        assert!(Receipts::decode(b"d3:ihs0:1:xi1ee").is_err());
    }
}
