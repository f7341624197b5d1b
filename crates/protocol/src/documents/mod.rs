//! Published documents (SPEC §1: kind `0x8080`, id ≥ `0x100`, role documents): the
//! large archives that travel beside the site.
//!
//! A document record carries its description inline, so that every node can list and
//! search every document without fetching any of them: its body is
//! `{desc, ih, name, size, title, type}`, where `ih` is the info hash of a single-file
//! torrent holding the file `name` of `size` bytes. The record's `time` is the publish
//! time. [`choice`] decides what a node keeps within its quota, [`search`] is the local
//! title/description index; the node renders the `/documents/` pages and drives the
//! fetching (`swarmsite::documents`, `node::core::documents`).

pub mod choice;
pub mod search;

use std::net::SocketAddr;

use crate::bencode::{self, Fields, Limits, ShapeError, Value};
use crate::name::{ObjectClass, SystemName};
use crate::record::{Payload, Record};

/// Longest title, in bytes.
pub const MAX_TITLE: usize = 256;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION: usize = 4096;
/// Longest file name, in bytes (a common file-system limit).
pub const MAX_NAME: usize = 255;
/// Longest media type, in bytes (RFC 6838 allows 127 per part).
pub const MAX_TYPE: usize = 127;

/// Why a document record or body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The body is not the expected fields and types.
    #[error("{0}")]
    Shape(#[from] ShapeError),
    /// The body is not canonical bencode within the record limits.
    #[error("{0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The title is blank, longer than [`MAX_TITLE`] bytes, or holds control characters.
    #[error("title must be 1 to {MAX_TITLE} bytes of text")]
    Title,
    /// The description is longer than [`MAX_DESCRIPTION`] bytes.
    #[error("description must be at most {MAX_DESCRIPTION} bytes")]
    Description,
    /// The file name is not one safe path segment ([`check_name`]; the name is carried).
    #[error(
        "{0:?} is not a usable file name (1 to 255 bytes, no '/', '\\', control characters, '.' or '..')"
    )]
    Name(String),
    /// The media type is not lowercase `type/subtype` ([`check_media_type`]; it is carried).
    #[error("{0:?} is not a media type (type/subtype, lowercase)")]
    MediaType(String),
    /// The record is a bare torrent (`ih`) rather than an inline body.
    #[error(
        "a document record must carry its description inline (`publish document`), not a bare torrent"
    )]
    NotInline,
    /// The record's name is not a document's (the name is carried).
    #[error("{0} is not a published document")]
    NotDocument(String),
}

/// What a document record says about its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentMeta {
    /// Shown and searched: 1 to [`MAX_TITLE`] bytes, not blank, no control characters.
    pub title: String,
    /// Free text, searched too: at most [`MAX_DESCRIPTION`] bytes.
    pub description: String,
    /// The file's name: its URL is `/documents/<name>`, and the torrent's `name`.
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Info hash of the single-file torrent that carries the file.
    pub ih: [u8; 20],
    /// The file's size, in bytes.
    pub size: u64,
}

impl DocumentMeta {
    /// Checks every field's rules.
    pub fn validate(&self) -> Result<(), DocumentError> {
        if self.title.trim().is_empty()
            || self.title.len() > MAX_TITLE
            || self.title.chars().any(char::is_control)
        {
            return Err(DocumentError::Title);
        }
        if self.description.len() > MAX_DESCRIPTION {
            return Err(DocumentError::Description);
        }
        check_name(&self.name)?;
        check_media_type(&self.media_type)?;
        Ok(())
    }

    /// The canonical bencode body `{desc, ih, name, size, title, type}` (not validated).
    pub fn to_body(&self) -> Vec<u8> {
        bencode::encode(&bencode::dict([
            ("desc", Value::Bytes(self.description.clone().into_bytes())),
            ("ih", Value::Bytes(self.ih.to_vec())),
            ("name", Value::Bytes(self.name.clone().into_bytes())),
            ("size", Value::Int(self.size as i64)),
            ("title", Value::Bytes(self.title.clone().into_bytes())),
            ("type", Value::Bytes(self.media_type.clone().into_bytes())),
        ]))
    }

    /// Strictly decodes and validates a document body.
    pub fn from_body(body: &[u8]) -> Result<Self, DocumentError> {
        let mut f = Fields::new(bencode::decode(body, Limits::RECORD)?)?;
        let description = f.string("desc")?;
        let ih = f.bytes("ih")?.try_into().map_err(|_| ShapeError::Invalid {
            field: "ih",
            why: "not 20 bytes".into(),
        })?;
        let name = f.string("name")?;
        let size = u64::try_from(f.int("size")?).map_err(|_| ShapeError::Invalid {
            field: "size",
            why: "negative".into(),
        })?;
        let title = f.string("title")?;
        let media_type = f.string("type")?;
        f.finish()?;
        let meta = DocumentMeta {
            title,
            description,
            name,
            media_type,
            ih,
            size,
        };
        meta.validate()?;
        Ok(meta)
    }
}

/// A file name that is one safe path segment.
pub fn check_name(name: &str) -> Result<(), DocumentError> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        Err(DocumentError::Name(name.into()))
    } else {
        Ok(())
    }
}

/// `type/subtype` in lowercase token characters (RFC 6838 §4.2), no parameters.
pub fn check_media_type(t: &str) -> Result<(), DocumentError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&^_.+-".contains(&b))
    };
    match t.split_once('/') {
        Some((a, b)) if t.len() <= MAX_TYPE && token(a) && token(b) => Ok(()),
        _ => Err(DocumentError::MediaType(t.into())),
    }
}

/// The info hash of the torrent carrying a record's content: an `ih` record's, or the
/// one a document record's (or a software manifest's) body names.
pub fn content_ih(record: &Record) -> Option<[u8; 20]> {
    match (&record.payload, record.name.class()) {
        (Payload::Torrent { ih, .. }, _) => Some(*ih),
        (Payload::Body(_), ObjectClass::Document) => {
            Document::from_record(record).ok().map(|d| d.meta.ih)
        }
        (Payload::Body(_), ObjectClass::SoftwareManifest) => {
            crate::update::Manifest::from_record(record)
                .ok()
                .map(|m| m.ih)
        }
        (Payload::Body(_), _) => None,
    }
}

/// A document as the network knows it: a verified record and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// The document's id (≥ `0x100`), the same across its versions.
    pub id: u32,
    /// The record's version: a newer one replaces the document.
    pub version: u32,
    /// Publish time (the record's `time`), unix seconds.
    pub time: u64,
    /// What the record says about the file.
    pub meta: DocumentMeta,
}

impl Document {
    /// Reads a (verified) document record.
    pub fn from_record(record: &Record) -> Result<Self, DocumentError> {
        let name: SystemName = record.name;
        if name.class() != ObjectClass::Document {
            return Err(DocumentError::NotDocument(format!("{name:?}")));
        }
        let Payload::Body(body) = &record.payload else {
            return Err(DocumentError::NotInline);
        };
        Ok(Document {
            id: name.id(),
            version: name.version(),
            time: record.time,
            meta: DocumentMeta::from_body(body)?,
        })
    }

    /// A magnet link any BitTorrent client understands (BEP 9): the info hash, the
    /// file's name (`dn`), its size (`xl`) and peers known to hold it (`x.pe`).
    pub fn magnet(&self, peers: &[SocketAddr]) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let mut m = format!(
            "magnet:?xt=urn:btih:{}&dn={}&xl={}",
            hex::encode(self.meta.ih),
            utf8_percent_encode(&self.meta.name, NON_ALPHANUMERIC),
            self.meta.size
        );
        for p in peers {
            m.push_str("&x.pe=");
            m.push_str(&utf8_percent_encode(&p.to_string(), NON_ALPHANUMERIC).to_string());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::{NetworkTag, kind};

    pub(crate) fn meta(name: &str) -> DocumentMeta {
        DocumentMeta {
            title: "Cables, 2010".into(),
            description: "Diplomatic cables".into(),
            name: name.into(),
            media_type: "application/zip".into(),
            ih: [7; 20],
            size: 42,
        }
    }

    #[test]
    fn body_round_trips_and_is_checked() {
        let m = meta("cables.zip");
        assert_eq!(DocumentMeta::from_body(&m.to_body()).unwrap(), m);
        for bad_name in ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(256)] {
            let mut b = meta(bad_name);
            b.name = bad_name.into();
            assert!(
                DocumentMeta::from_body(&b.to_body()).is_err(),
                "{bad_name:?}"
            );
        }
        for bad_type in [
            "pdf",
            "Application/pdf",
            "a/",
            "/b",
            "a/b; charset=x",
            "a/b/c",
        ] {
            let mut b = meta("x");
            b.media_type = bad_type.into();
            assert!(b.validate().is_err(), "{bad_type:?}");
        }
        let mut b = meta("x");
        b.title = " ".into();
        assert_eq!(b.validate(), Err(DocumentError::Title));
        b.title = "t".into();
        b.description = "d".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(b.validate(), Err(DocumentError::Description));
        assert!(DocumentMeta::from_body(b"d4:desc0:e").is_err());
    }

    #[test]
    fn records_and_magnets() {
        let tag = NetworkTag::DEFAULT;
        let r = Record::new(
            SystemName::new(tag, kind::AUTHORIZED_FILE, 0x100, 3),
            1_795_000_000,
            Payload::Body(meta("a b&c.zip").to_body()),
        )
        .unwrap();
        let d = Document::from_record(&r).unwrap();
        assert_eq!((d.id, d.version, d.time), (0x100, 3, 1_795_000_000));
        assert_eq!(
            d.magnet(&["127.0.0.5:6881".parse().unwrap()]),
            format!(
                "magnet:?xt=urn:btih:{}&dn=a%20b%26c%2Ezip&xl=42&x.pe=127%2E0%2E0%2E5%3A6881",
                "07".repeat(20)
            )
        );
        let bare = Record::new(
            SystemName::new(tag, kind::AUTHORIZED_FILE, 0x100, 3),
            1,
            Payload::Torrent {
                ih: [1; 20],
                size: 1,
            },
        )
        .unwrap();
        assert_eq!(Document::from_record(&bare), Err(DocumentError::NotInline));
        let blacklist = Record::new(
            SystemName::new(tag, kind::AUTHORIZED_FILE, 1, 3),
            1,
            Payload::Body(meta("x").to_body()),
        )
        .unwrap();
        assert!(Document::from_record(&blacklist).is_err());
    }
}
