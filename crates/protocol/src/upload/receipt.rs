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

/// Why a receipt list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not canonical bencode, or longer than [`MAX_RECEIPTS_BYTES`].
    #[error("{0}")]
    Bencode(#[from] bencode::DecodeError),
    /// Not a dictionary holding exactly the byte string `ihs`.
    #[error("{0}")]
    Shape(#[from] bencode::ShapeError),
    /// `ihs` is not a multiple of 20 bytes long.
    #[error("`ihs` is not a whole number of 20-byte info hashes")]
    Length,
    /// `ihs` lists more than [`MAX_RECEIPTS`] info hashes.
    #[error("more than {MAX_RECEIPTS} info hashes")]
    TooMany,
}

/// The payload of an intake receipt: the uploads the intake holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipts {
    /// Info hashes of the uploads held, the newest receipt last.
    pub ihs: Vec<[u8; 20]>,
}

impl Receipts {
    /// The canonical bencoding: the record body, or the torrent's one file.
    pub fn encode(&self) -> Vec<u8> {
        bencode::encode(&bencode::dict([("ihs", Value::Bytes(self.ihs.concat()))]))
    }

    /// Strictly decodes a receipt list, inline body or torrent file (at most
    /// [`MAX_RECEIPTS_BYTES`]).
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
