//! Wire messages (SPEC §5) and their framing on a BitTorrent-shaped stream.
//!
//! ```text
//! handshake: 0x13 "BitTorrent protocol" reserved(8, byte 5 = 0x10) info_hash(20) peer_id(20)
//! message:   length(u32 BE) id(1) payload      length 0 = keep-alive
//! extended:  id 20, ext-id(1), bencoded dictionary     (BEP 10)
//! ```

use crate::bencode::{self, DecodeError, Fields, Limits, ShapeError, Value};
use crate::name::{NameError, SystemName};

/// The protocol name a BitTorrent handshake opens with (after its length byte, 19).
pub const PROTOCOL_STRING: &[u8; 19] = b"BitTorrent protocol";
/// Length of a handshake in bytes: 1 + 19 + 8 reserved + 20 info hash + 20 peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// Largest accepted message body (length prefix), SPEC §5.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// BitTorrent message id of extended messages (BEP 10).
pub const EXTENDED: u8 = 20;
/// Extended message id of the extended handshake.
pub const EXT_HANDSHAKE: u8 = 0;

/// The swarmsite extension names in the `m` dictionary, with the ids we receive them on.
pub const EXTENSIONS: [(&str, u8); 10] = [
    ("ss_get", 1),
    ("ss_rec", 2),
    ("ss_have", 3),
    ("ss_push", 4),
    ("ss_hint", 5),
    ("ss_docs", 6),
    ("ss_blob", 7),
    ("ss_up", 8),
    ("ss_mget", 9),
    ("ss_meta", 10),
];
/// Indexes of the upload messages in [`EXTENSIONS`].
const BLOB: usize = 6;
const UP: usize = 7;
/// Indexes of the metainfo messages in [`EXTENSIONS`].
const MGET: usize = 8;
const META: usize = 9;

/// Bytes of metainfo one `ss_meta` carries (the last part may be shorter).
pub const METAINFO_CHUNK: usize = 32 * 1024;
/// Largest metainfo asked for or answered over the wire. A 4 MiB `.torrent` describes
/// ~200k pieces: tens of GiB at the piece sizes the node's `swarmsite_node::metainfo_file` picks.
pub const MAX_METAINFO_LEN: usize = 4 << 20;
/// The first extensions every swarmsite node must speak; later ones are optional.
pub const REQUIRED_EXTENSIONS: usize = 4;

/// A BitTorrent handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bytes; bit `0x10` of byte 5 advertises BEP 10 extended messages.
    pub reserved: [u8; 8],
    /// The info hash asked for; between swarmsite nodes, the node rendezvous name.
    pub info_hash: [u8; 20],
    /// The sender's 20-byte peer id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// A handshake that advertises BEP 10 extended messages.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        reserved[5] = 0x10;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// True when the sender advertised BEP 10 extended messages.
    pub fn supports_extensions(&self) -> bool {
        self.reserved[5] & 0x10 != 0
    }

    /// The 68 bytes on the wire.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0] = 19;
        b[1..20].copy_from_slice(PROTOCOL_STRING);
        b[20..28].copy_from_slice(&self.reserved);
        b[28..48].copy_from_slice(&self.info_hash);
        b[48..68].copy_from_slice(&self.peer_id);
        b
    }

    /// Parses 68 bytes; `None` when they are not a BitTorrent handshake at all.
    pub fn decode(b: &[u8; HANDSHAKE_LEN]) -> Option<Self> {
        if b[0] != 19 || &b[1..20] != PROTOCOL_STRING {
            return None;
        }
        Some(Handshake {
            reserved: b[20..28].try_into().expect("8"),
            info_hash: b[28..48].try_into().expect("20"),
            peer_id: b[48..68].try_into().expect("20"),
        })
    }
}

/// What the peer told us in its extended handshake.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The peer's ids for our messages, in [`EXTENSIONS`] order; `None` = not supported.
    pub ids: [Option<u8>; EXTENSIONS.len()],
    /// The peer's wire listening port, if it has one.
    pub port: Option<u16>,
    /// The peer's BitTorrent (content) listening port: handed to librqbit as a peer.
    pub bt_port: Option<u16>,
    /// The peer's rendezvous DHT node: UDP port and node id.
    pub dht: Option<(u16, [u8; 20])>,
    /// Client name and version.
    pub client: Option<String>,
}

impl ExtHandshake {
    /// Our own extended handshake: every swarmsite extension on our ids, our ports and DHT
    /// node, and `swarmsite/<version>` as the client.
    pub fn ours(port: Option<u16>, bt_port: Option<u16>, dht: Option<(u16, [u8; 20])>) -> Self {
        ExtHandshake {
            ids: EXTENSIONS.map(|(_, id)| Some(id)),
            port,
            bt_port,
            dht,
            client: Some(concat!("swarmsite/", env!("CARGO_PKG_VERSION")).into()),
        }
    }

    /// True when the peer speaks every required swarmsite message.
    pub fn is_swarmsite(&self) -> bool {
        self.ids[..REQUIRED_EXTENSIONS].iter().all(Option::is_some)
    }

    /// True when the peer takes uploads: it named both `ss_blob` and `ss_up`.
    pub fn takes_uploads(&self) -> bool {
        self.ids[BLOB].is_some() && self.ids[UP].is_some()
    }

    /// True when the peer asks for and answers metainfo: it named `ss_mget` and
    /// `ss_meta`.
    pub fn serves_metainfo(&self) -> bool {
        self.ids[MGET].is_some() && self.ids[META].is_some()
    }

    /// The bencoded payload; fields that are `None` are left out.
    pub fn encode(&self) -> Vec<u8> {
        let m = EXTENSIONS
            .iter()
            .zip(self.ids)
            .filter_map(|((name, _), id)| {
                id.map(|id| (name.as_bytes().to_vec(), Value::Int(id.into())))
            })
            .collect();
        let mut d = std::collections::BTreeMap::new();
        d.insert(b"m".to_vec(), Value::Dict(m));
        if let Some(p) = self.bt_port {
            d.insert(b"ss_bt".to_vec(), Value::Int(p.into()));
        }
        if let Some((port, id)) = self.dht {
            d.insert(b"ss_dht".to_vec(), Value::Int(port.into()));
            d.insert(b"ss_nid".to_vec(), Value::Bytes(id.to_vec()));
        }
        if let Some(p) = self.port {
            d.insert(b"p".to_vec(), Value::Int(p.into()));
        }
        if let Some(v) = &self.client {
            d.insert(b"v".to_vec(), Value::Bytes(v.clone().into_bytes()));
        }
        bencode::encode(&Value::Dict(d))
    }

    /// Reads an extended handshake leniently: other clients add keys of their own, and
    /// only `m`, `p`, `v`, `ss_bt`, `ss_dht` and `ss_nid` matter here. `None` when it is
    /// not a dictionary at all.
    pub fn decode(payload: &[u8]) -> Option<Self> {
        let Ok(Value::Dict(d)) = bencode::decode(payload, Limits::MESSAGE) else {
            return None;
        };
        let mut out = ExtHandshake::default();
        if let Some(Value::Dict(m)) = d.get(b"m".as_slice()) {
            for (i, (name, _)) in EXTENSIONS.iter().enumerate() {
                if let Some(Value::Int(id)) = m.get(name.as_bytes()) {
                    out.ids[i] = u8::try_from(*id).ok().filter(|id| *id != 0);
                }
            }
        }
        if let Some(Value::Int(p)) = d.get(b"p".as_slice()) {
            out.port = u16::try_from(*p).ok().filter(|p| *p != 0);
        }
        if let Some(Value::Int(p)) = d.get(b"ss_bt".as_slice()) {
            out.bt_port = u16::try_from(*p).ok().filter(|p| *p != 0);
        }
        if let (Some(Value::Int(p)), Some(Value::Bytes(id))) =
            (d.get(b"ss_dht".as_slice()), d.get(b"ss_nid".as_slice()))
            && let (Ok(p), Ok(id)) = (u16::try_from(*p), <[u8; 20]>::try_from(id.as_slice()))
            && p != 0
        {
            out.dht = Some((p, id));
        }
        if let Some(Value::Bytes(v)) = d.get(b"v".as_slice()) {
            out.client = Some(String::from_utf8_lossy(v).chars().take(64).collect());
        }
        Some(out)
    }
}

/// A swarmsite message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Ask for the record named `name`.
    Get {
        /// The name of the record wanted, version included.
        name: SystemName,
    },
    /// Answer to `Get`: the record's bytes, or `None` when not held.
    Rec {
        /// The name asked for.
        name: SystemName,
        /// The encoded record, or `None` when the sender does not hold it.
        record: Option<Vec<u8>>,
    },
    /// The newest name held per (kind, id).
    Have {
        /// One name per slot held, at its newest version.
        names: Vec<SystemName>,
    },
    /// A verified record, pushed on.
    Push {
        /// The encoded record.
        record: Vec<u8>,
    },
    /// Unsigned evidence against a peer, for an auto-blacklist node to re-check.
    Hint(Hint),
    /// Which documents the sender keeps: what the quota choice counts and the
    /// `/documents/` pages name as holders (PROTOCOL.md §20).
    Docs(DocClaims),
    /// A step of a stem transfer of an upload container (PROTOCOL.md §19).
    Blob(Blob),
    /// Fluff: the upload with this info hash can be fetched by BitTorrent.
    Up {
        /// Info hash of the upload's torrent.
        ih: [u8; 20],
    },
    /// Ask for part `part` (of [`METAINFO_CHUNK`] bytes) of the metainfo of `ih`.
    MetaGet {
        /// Info hash of the torrent.
        ih: [u8; 20],
        /// Index of the part, below what [`MAX_METAINFO_LEN`] allows.
        part: u32,
    },
    /// Answer to `MetaGet`.
    Meta(MetaPart),
}

/// Part of a torrent's metainfo, or word that the sender does not have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaPart {
    /// Info hash of the torrent the metainfo belongs to.
    pub ih: [u8; 20],
    /// Index of the part, counted in [`METAINFO_CHUNK`]s.
    pub part: u32,
    /// `None`: the sender has no metainfo for `ih`. Otherwise the metainfo's length
    /// (at most [`MAX_METAINFO_LEN`]) and this part's bytes: exactly
    /// [`METAINFO_CHUNK`], or what is left for the last part.
    pub data: Option<(u32, Vec<u8>)>,
}

impl MetaPart {
    /// How many parts a metainfo of `total` bytes has.
    pub fn parts(total: u32) -> u32 {
        (total as usize).div_ceil(METAINFO_CHUNK) as u32
    }

    /// Part `part` of `metainfo` (`None` inside when out of range or too large).
    pub fn of(ih: [u8; 20], part: u32, metainfo: &[u8]) -> MetaPart {
        let start = part as usize * METAINFO_CHUNK;
        let data = (metainfo.len() <= MAX_METAINFO_LEN && start < metainfo.len()).then(|| {
            let end = (start + METAINFO_CHUNK).min(metainfo.len());
            (metainfo.len() as u32, metainfo[start..end].to_vec())
        });
        MetaPart { ih, part, data }
    }
}
/// An upload's id on the stem: SHA-256 of its container.
pub type BlobId = [u8; 32];

/// Most container bytes one `Data` message carries (the message stays under 64 KiB).
pub const BLOB_CHUNK: usize = 60 * 1024;
/// Longest reason a `No` gives.
pub const MAX_BLOB_REASON: usize = 160;

/// The stem transfer of one container, driven by the receiver: the sender offers, the
/// receiver says what it holds and how far the sender may go, the sender sends that
/// range in order, and the receiver answers `Done` once it holds the whole container
/// and checked its hash (or `No` at any point).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blob {
    /// "I have container `id` of `size` bytes for you."
    Offer {
        /// The container's id.
        id: BlobId,
        /// Size of the container, in bytes.
        size: u64,
    },
    /// "I hold its first `have` bytes; send on up to byte `until`."
    Want {
        /// The container's id.
        id: BlobId,
        /// How many leading bytes the receiver holds: where sending resumes.
        have: u64,
        /// End of the grant (exclusive byte offset), above `have`.
        until: u64,
    },
    /// Container bytes from offset `at`.
    Data {
        /// The container's id.
        id: BlobId,
        /// Offset of the first byte in the container.
        at: u64,
        /// The bytes: 1 to [`BLOB_CHUNK`] of them.
        data: Vec<u8>,
    },
    /// "I hold it whole and it hashes to `id`."
    Done {
        /// The container's id.
        id: BlobId,
    },
    /// "I will not take it": quota full, too large, busy, bad.
    No {
        /// The container's id.
        id: BlobId,
        /// Why, in printable ASCII, at most [`MAX_BLOB_REASON`] bytes.
        why: String,
    },
}

impl Blob {
    /// A refusal, its reason made fit for the wire: printable ASCII, at most
    /// [`MAX_BLOB_REASON`] bytes.
    pub fn no(id: BlobId, why: &str) -> Blob {
        let why = why
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .take(MAX_BLOB_REASON)
            .collect();
        Blob::No { id, why }
    }

    /// The container id every step carries.
    pub fn id(&self) -> &BlobId {
        match self {
            Blob::Offer { id, .. }
            | Blob::Want { id, .. }
            | Blob::Data { id, .. }
            | Blob::Done { id }
            | Blob::No { id, .. } => id,
        }
    }
}

/// The documents a node holds completely and is fetching, by info hash, and its HTTP
/// port. Unsigned: a claim, counted as such (docs/SECURITY.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocClaims {
    /// Info hashes of the documents the sender holds completely.
    pub held: Vec<[u8; 20]>,
    /// Info hashes of the documents the sender is still fetching.
    pub fetching: Vec<[u8; 20]>,
    /// The sender's HTTP port, if it serves pages.
    pub http: Option<u16>,
}

/// Info hashes one `ss_docs` carries at most (both lists together), within 64 KiB.
pub const MAX_DOC_CLAIMS: usize = 3000;

/// An accusation (PROTOCOL.md §17): `ip` did `reason` (an evidence code), about
/// `object`; the ports say where to re-check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The accused address.
    pub ip: std::net::IpAddr,
    /// Its wire port, to re-check it on, if known.
    pub wire_port: Option<u16>,
    /// Its BitTorrent port, to re-check it on, if known.
    pub bt_port: Option<u16>,
    /// The evidence code: `a-z`, `0-9` and `-`, at most [`MAX_REASON_LEN`] bytes.
    pub reason: String,
    /// The object the misbehaviour concerned, if any.
    pub object: Option<SystemName>,
    /// Hops left (at least 1).
    pub hops: u8,
}

/// Longest evidence code a hint carries.
pub const MAX_REASON_LEN: usize = 32;

/// Why a message payload is refused (the connection closes as `wire-malformed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The payload is not canonical bencode within [`Limits::MESSAGE`].
    #[error("{0}")]
    Bencode(#[from] DecodeError),
    /// A field is missing, unknown, of the wrong type or out of range.
    #[error("{0}")]
    Shape(#[from] ShapeError),
    /// A field that carries a system name is not a valid one.
    #[error("{0}")]
    Name(#[from] NameError),
    /// `ss_have`'s `names` is not a multiple of 20 bytes long.
    #[error("`names` is not a whole number of 20-byte names")]
    NamesLength,
    /// `ss_docs`' lists are not multiples of 20 bytes, or hold more than [`MAX_DOC_CLAIMS`]
    /// hashes together.
    #[error("document claims are not a whole number of 20-byte info hashes, or too many")]
    ClaimsLength,
}

impl Message {
    /// Index into [`EXTENSIONS`].
    pub fn extension(&self) -> usize {
        match self {
            Message::Get { .. } => 0,
            Message::Rec { .. } => 1,
            Message::Have { .. } => 2,
            Message::Push { .. } => 3,
            Message::Hint(_) => 4,
            Message::Docs(_) => 5,
            Message::Blob(_) => BLOB,
            Message::Up { .. } => UP,
            Message::MetaGet { .. } => MGET,
            Message::Meta(_) => META,
        }
    }

    /// The bencoded payload, to send with [`frame_extended`] under the peer's id for
    /// [`Message::extension`].
    pub fn encode_payload(&self) -> Vec<u8> {
        let name = |n: &SystemName| Value::Bytes(n.as_bytes().to_vec());
        bencode::encode(&match self {
            Message::Get { name: n } => bencode::dict([("name", name(n))]),
            Message::Rec {
                name: n,
                record: Some(r),
            } => bencode::dict([("name", name(n)), ("rec", Value::Bytes(r.clone()))]),
            Message::Rec {
                name: n,
                record: None,
            } => bencode::dict([("name", name(n)), ("none", Value::Int(1))]),
            Message::Have { names } => {
                let mut flat = Vec::with_capacity(names.len() * 20);
                for n in names {
                    flat.extend_from_slice(n.as_bytes());
                }
                bencode::dict([("names", Value::Bytes(flat))])
            }
            Message::Push { record } => bencode::dict([("rec", Value::Bytes(record.clone()))]),
            Message::Docs(c) => {
                let mut d = vec![
                    ("fetching", Value::Bytes(c.fetching.concat())),
                    ("held", Value::Bytes(c.held.concat())),
                ];
                if let Some(p) = c.http {
                    d.push(("http", Value::Int(p.into())));
                }
                Value::Dict(
                    d.into_iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v))
                        .collect(),
                )
            }
            Message::Hint(h) => {
                let ip = match h.ip {
                    std::net::IpAddr::V4(a) => a.octets().to_vec(),
                    std::net::IpAddr::V6(a) => a.octets().to_vec(),
                };
                let mut d = vec![
                    ("ip", Value::Bytes(ip)),
                    ("why", Value::Bytes(h.reason.as_bytes().to_vec())),
                    ("hops", Value::Int(h.hops.into())),
                ];
                if let Some(p) = h.wire_port {
                    d.push(("wire", Value::Int(p.into())));
                }
                if let Some(p) = h.bt_port {
                    d.push(("bt", Value::Int(p.into())));
                }
                if let Some(o) = &h.object {
                    d.push(("obj", name(o)));
                }
                Value::Dict(
                    d.into_iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v))
                        .collect(),
                )
            }
            Message::Blob(b) => encode_blob(b),
            Message::Up { ih } => bencode::dict([("ih", Value::Bytes(ih.to_vec()))]),
            Message::MetaGet { ih, part } => bencode::dict([
                ("ih", Value::Bytes(ih.to_vec())),
                ("part", Value::Int((*part).into())),
            ]),
            Message::Meta(MetaPart { ih, part, data }) => {
                let mut d = vec![
                    ("ih", Value::Bytes(ih.to_vec())),
                    ("part", Value::Int((*part).into())),
                ];
                match data {
                    Some((total, bytes)) => {
                        d.push(("total", Value::Int((*total).into())));
                        d.push(("data", Value::Bytes(bytes.clone())));
                    }
                    None => d.push(("none", Value::Int(1))),
                }
                Value::Dict(
                    d.into_iter()
                        .map(|(k, v)| (k.as_bytes().to_vec(), v))
                        .collect(),
                )
            }
        })
    }

    /// Strictly decodes the payload of extension `index` (our numbering).
    pub fn decode_payload(index: usize, payload: &[u8]) -> Result<Self, MessageError> {
        let mut f = Fields::new(bencode::decode(payload, Limits::MESSAGE)?)?;
        let msg = match index {
            0 => Message::Get {
                name: SystemName::from_bytes(&f.bytes("name")?)?,
            },
            1 => {
                let name = SystemName::from_bytes(&f.bytes("name")?)?;
                let record = f.opt_bytes("rec")?;
                let none = f.opt_int("none")?;
                match (record, none) {
                    (Some(r), None) => Message::Rec {
                        name,
                        record: Some(r),
                    },
                    (None, Some(1)) => Message::Rec { name, record: None },
                    _ => {
                        return Err(ShapeError::Invalid {
                            field: "rec",
                            why: "needs exactly one of rec, none=1".into(),
                        }
                        .into());
                    }
                }
            }
            2 => {
                let flat = f.bytes("names")?;
                if flat.len() % 20 != 0 {
                    return Err(MessageError::NamesLength);
                }
                let names = flat
                    .chunks(20)
                    .map(SystemName::from_bytes)
                    .collect::<Result<_, _>>()?;
                Message::Have { names }
            }
            3 => Message::Push {
                record: f.bytes("rec")?,
            },
            4 => Message::Hint(decode_hint(&mut f)?),
            5 => {
                let hashes = |flat: Vec<u8>| {
                    if !flat.len().is_multiple_of(20) {
                        return Err(MessageError::ClaimsLength);
                    }
                    Ok(flat
                        .chunks(20)
                        .map(|c| <[u8; 20]>::try_from(c).expect("20"))
                        .collect::<Vec<_>>())
                };
                let fetching = hashes(f.bytes("fetching")?)?;
                let held = hashes(f.bytes("held")?)?;
                if held.len() + fetching.len() > MAX_DOC_CLAIMS {
                    return Err(MessageError::ClaimsLength);
                }
                let http = match f.opt_int("http")? {
                    None => None,
                    Some(p) => Some(u16::try_from(p).ok().filter(|p| *p != 0).ok_or(
                        ShapeError::Invalid {
                            field: "http",
                            why: "not a port".into(),
                        },
                    )?),
                };
                Message::Docs(DocClaims {
                    held,
                    fetching,
                    http,
                })
            }
            BLOB => Message::Blob(decode_blob(&mut f)?),
            UP => Message::Up {
                ih: info_hash(&mut f)?,
            },
            MGET => Message::MetaGet {
                ih: info_hash(&mut f)?,
                part: meta_part_index(&mut f)?,
            },
            META => Message::Meta(decode_meta(&mut f)?),
            _ => return Err(ShapeError::Unknown(format!("extension {index}")).into()),
        };
        f.finish()?;
        Ok(msg)
    }
}

fn info_hash(f: &mut Fields) -> Result<[u8; 20], MessageError> {
    Ok(f.bytes("ih")?
        .try_into()
        .map_err(|_| invalid("ih", "needs 20 bytes"))?)
}

fn meta_part_index(f: &mut Fields) -> Result<u32, MessageError> {
    let max = MetaPart::parts(MAX_METAINFO_LEN as u32);
    Ok(u32::try_from(f.int("part")?)
        .ok()
        .filter(|p| *p < max)
        .ok_or(invalid("part", "not a part of a metainfo within the limit"))?)
}

/// A part that is exactly where `part` and `total` put it, or `none = 1`.
fn decode_meta(f: &mut Fields) -> Result<MetaPart, MessageError> {
    let ih = info_hash(f)?;
    let part = meta_part_index(f)?;
    let total = f.opt_int("total")?;
    let data = f.opt_bytes("data")?;
    let none = f.opt_int("none")?;
    let data = match (total, data, none) {
        (None, None, Some(1)) => None,
        (Some(total), Some(data), None) => {
            let total = u32::try_from(total)
                .ok()
                .filter(|t| *t > 0 && *t as usize <= MAX_METAINFO_LEN)
                .ok_or(invalid("total", "1 byte to the metainfo limit"))?;
            let start = part as usize * METAINFO_CHUNK;
            let want = (total as usize)
                .checked_sub(start)
                .filter(|left| *left > 0)
                .map(|left| left.min(METAINFO_CHUNK));
            if want != Some(data.len()) {
                return Err(invalid("data", "not the length its part and total call for").into());
            }
            Some((total, data))
        }
        _ => return Err(invalid("meta", "needs total and data, or none = 1").into()),
    };
    Ok(MetaPart { ih, part, data })
}

fn invalid(field: &'static str, why: &str) -> ShapeError {
    ShapeError::Invalid {
        field,
        why: why.into(),
    }
}

fn encode_blob(b: &Blob) -> Value {
    let int = |n: u64| Value::Int(n as i64);
    let mut d = vec![("id", Value::Bytes(b.id().to_vec()))];
    match b {
        Blob::Offer { size, .. } => d.push(("size", int(*size))),
        Blob::Want { have, until, .. } => {
            d.push(("have", int(*have)));
            d.push(("until", int(*until)));
        }
        Blob::Data { at, data, .. } => {
            d.push(("at", int(*at)));
            d.push(("data", Value::Bytes(data.clone())));
        }
        Blob::Done { .. } => d.push(("done", Value::Int(1))),
        Blob::No { why, .. } => d.push(("no", Value::Bytes(why.as_bytes().to_vec()))),
    }
    Value::Dict(
        d.into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// Exactly one of the shapes of [`Blob`]; offsets and sizes are non-negative.
fn decode_blob(f: &mut Fields) -> Result<Blob, MessageError> {
    let id: BlobId = f
        .bytes("id")?
        .try_into()
        .map_err(|_| invalid("id", "needs 32 bytes"))?;
    let count = |v: Option<i64>, field| match v {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| invalid(field, "negative")),
    };
    let size = count(f.opt_int("size")?, "size")?;
    let have = count(f.opt_int("have")?, "have")?;
    let until = count(f.opt_int("until")?, "until")?;
    let at = count(f.opt_int("at")?, "at")?;
    let data = f.opt_bytes("data")?;
    let done = f.opt_int("done")?;
    let no = f.opt_bytes("no")?;
    let blob = match (size, have, until, at, data, done, no) {
        (Some(size), None, None, None, None, None, None) => Blob::Offer { id, size },
        (None, Some(have), Some(until), None, None, None, None) if until > have => {
            Blob::Want { id, have, until }
        }
        (None, None, None, Some(at), Some(data), None, None)
            if !data.is_empty() && data.len() <= BLOB_CHUNK =>
        {
            Blob::Data { id, at, data }
        }
        (None, None, None, None, None, Some(1), None) => Blob::Done { id },
        (None, None, None, None, None, None, Some(why))
            if why.len() <= MAX_BLOB_REASON && why.iter().all(|c| (0x20..0x7f).contains(c)) =>
        {
            Blob::No {
                id,
                why: String::from_utf8(why).expect("ascii"),
            }
        }
        _ => {
            return Err(invalid(
                "blob",
                "needs exactly one of: size; have and until (until > have); at and data \
                 (1 to 61440 bytes); done = 1; no (a short printable reason)",
            )
            .into());
        }
    };
    Ok(blob)
}

fn decode_hint(f: &mut Fields) -> Result<Hint, MessageError> {
    let ip = match f.bytes("ip")?.as_slice() {
        b if b.len() == 4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).expect("4")),
        b if b.len() == 16 => std::net::IpAddr::from(<[u8; 16]>::try_from(b).expect("16")),
        _ => return Err(invalid("ip", "needs 4 or 16 bytes").into()),
    };
    let port = |p: Option<i64>, field| match p {
        None => Ok(None),
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .map(Some)
            .ok_or(invalid(field, "not a port")),
    };
    let wire_port = port(f.opt_int("wire")?, "wire")?;
    let bt_port = port(f.opt_int("bt")?, "bt")?;
    let reason = f.bytes("why")?;
    if reason.is_empty()
        || reason.len() > MAX_REASON_LEN
        || !reason
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        return Err(invalid("why", "an evidence code: a-z, 0-9, -").into());
    }
    let object = f
        .opt_bytes("obj")?
        .map(|b| SystemName::from_bytes(&b))
        .transpose()?;
    let hops = u8::try_from(f.int("hops")?)
        .ok()
        .filter(|h| (1..=16).contains(h))
        .ok_or(invalid("hops", "1 to 16"))?;
    Ok(Hint {
        ip,
        wire_port,
        bt_port,
        reason: String::from_utf8(reason).expect("ascii"),
        object,
        hops,
    })
}

/// Frames an extended message: length, id 20, ext id, payload.
pub fn frame_extended(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() + 2) as u32;
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(EXTENDED);
    out.push(ext_id);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NetworkTag;

    #[test]
    fn messages_round_trip() {
        let n = SystemName::new(NetworkTag::DEFAULT, 0x1000, 1, 3);
        for m in [
            Message::Get { name: n },
            Message::Rec {
                name: n,
                record: Some(vec![1, 2, 3]),
            },
            Message::Rec {
                name: n,
                record: None,
            },
            Message::Have {
                names: vec![n, n.with_version(9)],
            },
            Message::Have { names: vec![] },
            Message::Push {
                record: b"d4:namee".to_vec(),
            },
            Message::Hint(Hint {
                ip: "2001:db8::7".parse().unwrap(),
                wire_port: Some(6880),
                bt_port: None,
                reason: "bad-piece".into(),
                object: Some(n),
                hops: 4,
            }),
            Message::Docs(DocClaims {
                held: vec![[1; 20], [2; 20]],
                fetching: vec![],
                http: Some(18880),
            }),
            Message::Docs(DocClaims::default()),
            Message::Hint(Hint {
                ip: "10.1.2.3".parse().unwrap(),
                wire_port: None,
                bt_port: Some(6881),
                reason: "dht-empty-announce".into(),
                object: None,
                hops: 1,
            }),
            Message::Blob(Blob::Offer {
                id: [1; 32],
                size: 4096 + 65536 + 32,
            }),
            Message::Blob(Blob::Want {
                id: [1; 32],
                have: 0,
                until: 1 << 20,
            }),
            Message::Blob(Blob::Data {
                id: [1; 32],
                at: 61440,
                data: vec![7; BLOB_CHUNK],
            }),
            Message::Blob(Blob::Done { id: [2; 32] }),
            Message::Blob(Blob::No {
                id: [2; 32],
                why: "storage quota full".into(),
            }),
            Message::Up { ih: [9; 20] },
            Message::MetaGet {
                ih: [3; 20],
                part: 2,
            },
            Message::Meta(MetaPart {
                ih: [3; 20],
                part: 1,
                data: Some((METAINFO_CHUNK as u32 + 5, vec![1; 5])),
            }),
            Message::Meta(MetaPart::of([3; 20], 0, &[4; METAINFO_CHUNK + 1])),
            Message::Meta(MetaPart {
                ih: [3; 20],
                part: 0,
                data: None,
            }),
        ] {
            assert_eq!(
                Message::decode_payload(m.extension(), &m.encode_payload()).unwrap(),
                m
            );
        }
        assert_eq!(
            Message::decode_payload(2, b"d5:names3:abce"),
            Err(MessageError::NamesLength)
        );
        assert!(Message::decode_payload(0, b"d4:name20:aaaaaaaaaaaaaaaaaaaa5:extrai1ee").is_err());
        // Hints: a bad address, port, reason or hop count is refused.
        for bad in [
            &b"d4:hopsi1e2:ip3:abc3:why1:xe"[..],
            b"d4:hopsi1e2:ip4:abcd3:why1:X",
            b"d4:hopsi0e2:ip4:abcd3:why1:xe",
            b"d4:hopsi1e2:ip4:abcd3:why1:x4:wirei70000ee",
            b"d4:hopsi1e2:ip4:abcd3:why0:e",
        ] {
            assert!(Message::decode_payload(4, bad).is_err(), "{bad:?}");
        }
        assert!(Message::decode_payload(4, b"d4:hopsi1e2:ip4:abcd3:why1:xe").is_ok());
        assert_eq!(
            Message::decode_payload(5, b"d8:fetching0:4:held3:abce"),
            Err(MessageError::ClaimsLength)
        );
        assert!(Message::decode_payload(5, b"d8:fetching0:4:held0:4:httpi0ee").is_err());
        // Blobs: exactly one shape, sane numbers, chunks within the limit.
        let id = format!("2:id32:{}", "a".repeat(32));
        for bad in [
            format!("d{id}e"),
            format!("d4:havei5e{id}5:untili5ee"),
            format!("d{id}4:sizei-1ee"),
            format!("d{id}4:sizei1e4:donei1ee"),
            format!("d2:ati0e4:data0:{id}e"),
            format!("d4:donei2e{id}e"),
            "d2:id3:abc4:sizei1ee".to_string(),
        ] {
            assert!(
                Message::decode_payload(BLOB, bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        let big = Message::Blob(Blob::Data {
            id: [1; 32],
            at: 0,
            data: vec![0; BLOB_CHUNK + 1],
        });
        assert!(Message::decode_payload(BLOB, &big.encode_payload()).is_err());
        assert!(big.encode_payload().len() > BLOB_CHUNK);
        let full = Message::Blob(Blob::Data {
            id: [1; 32],
            at: u64::MAX >> 2,
            data: vec![0; BLOB_CHUNK],
        });
        assert!(frame_extended(6, &full.encode_payload()).len() - 4 <= MAX_MESSAGE_LEN);
        assert!(Message::decode_payload(UP, b"d2:ih3:abce").is_err());
        // Metainfo parts: where part and total say, within the limit, or none.
        let ih = format!("2:ih20:{}", "b".repeat(20));
        for (index, bad) in [
            (MGET, format!("d{ih}4:parti128ee")),
            (MGET, format!("d{ih}4:parti-1ee")),
            (META, format!("d4:data3:abc{ih}4:parti0e5:totali4ee")),
            (META, format!("d4:data3:abc{ih}4:parti1e5:totali3ee")),
            (META, format!("d4:data0:{ih}4:parti0e5:totali0ee")),
            (META, format!("d4:data1:a{ih}4:parti0e5:totali4194305ee")),
            (META, format!("d{ih}4:nonei1e4:parti0e5:totali3ee")),
            (META, format!("d{ih}4:parti0ee")),
        ] {
            assert!(
                Message::decode_payload(index, bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
        let last = Message::Meta(MetaPart {
            ih: [1; 20],
            part: 127,
            data: Some((MAX_METAINFO_LEN as u32, vec![0; METAINFO_CHUNK])),
        });
        assert!(frame_extended(10, &last.encode_payload()).len() - 4 <= MAX_MESSAGE_LEN);
        assert_eq!(
            Message::decode_payload(META, &last.encode_payload()),
            Ok(last)
        );
        assert_eq!(MetaPart::of([1; 20], 1, &[0; 10]).data, None);
        // Any reason a node gives is made fit to send.
        let long = Message::Blob(Blob::no([1; 32], &format!("é{}", "x".repeat(500))));
        let back = Message::decode_payload(BLOB, &long.encode_payload()).unwrap();
        assert!(
            matches!(back, Message::Blob(Blob::No { why, .. }) if why.len() == MAX_BLOB_REASON && why.starts_with("?x"))
        );
    }

    #[test]
    fn handshakes() {
        let h = Handshake::new([1; 20], [2; 20]);
        assert_eq!(Handshake::decode(&h.encode()), Some(h.clone()));
        assert!(h.supports_extensions());
        let ext = ExtHandshake::ours(Some(7000), Some(6881), Some((6882, [5; 20])));
        assert!(ext.takes_uploads());
        assert_eq!(ExtHandshake::decode(&ext.encode()), Some(ext));
        // Another client's handshake: unknown keys fine, no swarmsite messages.
        let other = ExtHandshake::decode(b"d1:md6:ut_pexi1ee1:pi6881e4:reqqi250ee").unwrap();
        assert!(!other.is_swarmsite());
        assert_eq!(other.port, Some(6881));
    }
}
