//! Payloads of the small signed objects: notices and the blacklist.
//!
//! Both are canonical bencode inside a record body (or, for a long blacklist, inside
//! the file its torrent carries), decoded strictly like everything signed.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::bencode::{self, Fields, Limits, ShapeError, Value};

/// Largest notice text, in bytes.
pub const MAX_NOTICE_TEXT: usize = 4096;

/// Why a notice or blacklist payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// The payload is not the expected fields and types.
    #[error("{0}")]
    Shape(#[from] ShapeError),
    /// The payload is not canonical bencode within the limits.
    #[error("{0}")]
    Bencode(#[from] bencode::DecodeError),
    /// A notice's `severity` is not one of the three words (the word is carried).
    #[error("severity must be info, warning or critical, not {0:?}")]
    Severity(String),
    /// A notice's text is empty or longer than [`MAX_NOTICE_TEXT`] bytes.
    #[error("notice text must be 1 to {MAX_NOTICE_TEXT} bytes")]
    NoticeText,
    /// A blacklist `addr` is neither an IP address nor a CIDR block (the text is carried).
    #[error("{0:?} is not an IP address or CIDR block")]
    Addr(String),
}

/// How loudly a notice asks to be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// `info`: for information.
    Info,
    /// `warning`: something the reader should heed.
    Warning,
    /// `critical`: the most urgent level.
    Critical,
}

impl std::str::FromStr for Severity {
    type Err = ContentError;
    fn from_str(s: &str) -> Result<Self, ContentError> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            _ => Err(ContentError::Severity(s.into())),
        }
    }
}

impl Severity {
    /// The word the payload carries: `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A signed broadcast notice (kind 0x1111, id ≥ 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// How loudly it asks to be shown.
    pub severity: Severity,
    /// The message, 1 to [`MAX_NOTICE_TEXT`] bytes of UTF-8.
    pub text: String,
}

impl Notice {
    /// A notice, if `text` is 1 to [`MAX_NOTICE_TEXT`] bytes long.
    pub fn new(severity: Severity, text: String) -> Result<Self, ContentError> {
        if text.is_empty() || text.len() > MAX_NOTICE_TEXT {
            return Err(ContentError::NoticeText);
        }
        Ok(Notice { severity, text })
    }

    /// The canonical bencode payload `{severity, text}` for the record's `body`.
    pub fn to_body(&self) -> Vec<u8> {
        bencode::encode(&bencode::dict([
            ("severity", Value::Bytes(self.severity.as_str().into())),
            ("text", Value::Bytes(self.text.clone().into_bytes())),
        ]))
    }

    /// Strictly decodes a record's `body` and checks it like [`Notice::new`].
    pub fn from_body(body: &[u8]) -> Result<Self, ContentError> {
        let mut f = Fields::new(bencode::decode(body, Limits::RECORD)?)?;
        let severity = f.string("severity")?.parse()?;
        let text = f.string("text")?;
        f.finish()?;
        Notice::new(severity, text)
    }
}

/// One blacklisted address or block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlacklistEntry {
    /// The address or block listed; a bare address is a /32 or /128.
    pub addr: IpNet,
    /// Why it is listed, as the publisher wrote it (may be empty).
    pub reason: String,
    /// Unix seconds since which it is listed.
    pub since: u64,
}

impl BlacklistEntry {
    /// True when `ip` is this address or inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addr.contains(&ip)
    }
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`; a bare address is a /32 or /128.
pub fn parse_addr(s: &str) -> Result<IpNet, ContentError> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| ContentError::Addr(s.into()))
}

/// The blacklist payload (kind 0x8080, id 1): `[{addr, reason, since}, …]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blacklist {
    /// The listed addresses and blocks, in the publisher's order.
    pub entries: Vec<BlacklistEntry>,
}

impl Blacklist {
    /// The canonical bencode payload: a list of `{addr, reason, since}` dictionaries.
    pub fn encode(&self) -> Vec<u8> {
        bencode::encode(&Value::List(
            self.entries
                .iter()
                .map(|e| {
                    bencode::dict([
                        ("addr", Value::Bytes(e.addr.to_string().into_bytes())),
                        ("reason", Value::Bytes(e.reason.clone().into_bytes())),
                        ("since", Value::Int(e.since as i64)),
                    ])
                })
                .collect(),
        ))
    }

    /// Strictly decodes a payload (a record's `body`, or the file its torrent carries) of at
    /// most `max_len` bytes.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Self, ContentError> {
        let limits = Limits {
            max_len,
            max_depth: 4,
        };
        let Value::List(items) = bencode::decode(bytes, limits)? else {
            return Err(ShapeError::WrongType("entries").into());
        };
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let mut f = Fields::new(item)?;
            let raw = f.string("addr")?;
            let addr = parse_addr(&raw)?;
            // Strict: the block as `encode` writes it (`1.2.3.0/24`, never `1.2.3.5/24`
            // or a bare address), so a signed list has one encoding.
            if addr.to_string() != raw {
                return Err(ContentError::Addr(raw));
            }
            let reason = f.string("reason")?;
            let since = u64::try_from(f.int("since")?).map_err(|_| ShapeError::Invalid {
                field: "since",
                why: "negative".into(),
            })?;
            f.finish()?;
            entries.push(BlacklistEntry {
                addr,
                reason,
                since,
            });
        }
        Ok(Blacklist { entries })
    }

    /// Parses the publisher's list: one `ADDR [reason…]` per line, `#` comments.
    pub fn from_text(text: &str, since: u64) -> Result<Self, (usize, ContentError)> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (addr, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let addr = parse_addr(addr).map_err(|e| (i + 1, e))?;
            entries.push(BlacklistEntry {
                addr,
                reason: reason.trim().to_string(),
                since,
            });
        }
        Ok(Blacklist { entries })
    }

    /// True when any entry lists `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|e| e.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_and_blacklist_round_trip() {
        let n = Notice::new(Severity::Warning, "key rotated".into()).unwrap();
        assert_eq!(Notice::from_body(&n.to_body()).unwrap(), n);
        assert!(Notice::new(Severity::Info, String::new()).is_err());

        let b = Blacklist::from_text("# forgers\n10.1.2.3 forged v3\n2001:db8::/32\n", 5).unwrap();
        assert_eq!(b.entries.len(), 2);
        assert_eq!(b.entries[0].addr.to_string(), "10.1.2.3/32");
        assert!(b.contains("2001:db8::1".parse().unwrap()));
        assert!(!b.contains("10.1.2.4".parse().unwrap()));
        assert_eq!(Blacklist::decode(&b.encode(), 1 << 20).unwrap(), b);
        assert_eq!(Blacklist::from_text("x.y forged", 0).unwrap_err().0, 1);
        // One encoding per list: a block with host bits, or a bare address, is refused.
        for addr in ["10.1.2.5/24", "10.1.2.3"] {
            let odd = bencode::encode(&Value::List(vec![bencode::dict([
                ("addr", Value::Bytes(addr.into())),
                ("reason", Value::Bytes(b"x".to_vec())),
                ("since", Value::Int(1)),
            ])]));
            assert!(
                matches!(Blacklist::decode(&odd, 1 << 20), Err(ContentError::Addr(_))),
                "{addr}"
            );
        }
    }
}
