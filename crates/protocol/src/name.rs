//! System names (SPEC §1): the 20-byte addresses of published objects.
//!
//! `tag(9) | protocol version(1) | kind(2, BE) | id(4, BE) | version(4, BE)`

use std::fmt;
use std::str::FromStr;

/// Protocol version byte of every name this implementation emits or accepts.
pub const PROTOCOL_VERSION: u8 = 0;

/// The 9-byte ASCII tag that separates one network from another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkTag([u8; 9]);

impl NetworkTag {
    /// The default network.
    pub const DEFAULT: NetworkTag = NetworkTag(*b"WIKILEAKS");

    /// Accepts 9 bytes of printable ASCII (0x21–0x7E); anything else is [`NameError::BadTag`].
    pub fn from_bytes(bytes: [u8; 9]) -> Result<Self, NameError> {
        if bytes.iter().all(|b| b.is_ascii_graphic()) {
            Ok(NetworkTag(bytes))
        } else {
            Err(NameError::BadTag(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        }
    }

    /// The 9 tag bytes, as they appear at the start of every name.
    pub fn as_bytes(&self) -> &[u8; 9] {
        &self.0
    }

    /// The tag as text; always ASCII, checked at construction.
    pub fn as_str(&self) -> &str {
        // Validated ASCII at construction.
        std::str::from_utf8(&self.0).unwrap_or("?")
    }
}

impl FromStr for NetworkTag {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let bytes: [u8; 9] = s
            .as_bytes()
            .try_into()
            .map_err(|_| NameError::BadTag(s.to_string()))?;
        NetworkTag::from_bytes(bytes)
    }
}

impl fmt::Display for NetworkTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NetworkTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkTag({})", self.as_str())
    }
}

/// A role: a key set that governs some kinds of records (SPEC §1, §3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Role(u16);

impl Role {
    /// `0x0001`: signs site releases.
    pub const SITE: Role = Role(1);
    /// `0x0002`: signs the blacklist.
    pub const BLACKLIST: Role = Role(2);
    /// `0x0003`: signs published documents and intake receipts.
    pub const DOCUMENTS: Role = Role(3);
    /// `0x0004`: signs software manifests.
    pub const SOFTWARE: Role = Role(4);
    /// `0x0005`: the encryption key anonymous uploads are sealed to.
    pub const INTAKE: Role = Role(5);
    /// `0x0006`: signs broadcast notices.
    pub const NOTICES: Role = Role(6);
    /// The roles a network defines today; `0x0007..=0x000F` are reserved.
    pub const ALL: [Role; 6] = [
        Role::SITE,
        Role::BLACKLIST,
        Role::DOCUMENTS,
        Role::SOFTWARE,
        Role::INTAKE,
        Role::NOTICES,
    ];

    /// A role by number; `1..=0x000F` are accepted, reserved ones included.
    pub fn new(number: u16) -> Result<Self, NameError> {
        if (1..=0x000F).contains(&number) {
            Ok(Role(number))
        } else {
            Err(NameError::BadRole(number.to_string()))
        }
    }

    /// The role number, which is also the kind of its key-set names.
    pub fn number(self) -> u16 {
        self.0
    }

    /// A short name for humans and file names.
    pub fn label(self) -> &'static str {
        match self.0 {
            1 => "site",
            2 => "blacklist",
            3 => "documents",
            4 => "software",
            5 => "intake",
            6 => "notices",
            _ => "reserved",
        }
    }
}

impl FromStr for Role {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if let Some(role) = Role::ALL.iter().find(|r| r.label() == s) {
            return Ok(*role);
        }
        let number = match s.strip_prefix("0x") {
            Some(hex) => u16::from_str_radix(hex, 16),
            None => s.parse(),
        }
        .map_err(|_| NameError::BadRole(s.to_string()))?;
        Role::new(number)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:04x})", self.label(), self.0)
    }
}

/// What a name addresses, by its kind and id (SPEC §1 table).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ObjectClass {
    /// A key-set certificate of a role.
    KeySet(Role),
    /// A site release; the id is the site number.
    SiteRelease,
    /// `0x1111` id 1 version 0: where nodes meet in the DHT; never a record.
    NodeRendezvous,
    /// `0x1111` id ≥ 2: a signed broadcast notice.
    Notice,
    /// `0x1010`: anonymous uploads, never name-addressed.
    Upload,
    /// `0x8080` id 1.
    Blacklist,
    /// `0x8080` id 2.
    IntakeReceipts,
    /// `0x8080` id 3.
    SoftwareManifest,
    /// `0x8080` id ≥ 0x100.
    Document,
    /// Anything the table does not define.
    Unknown,
}

/// Kinds of names (the 16-bit field at offset 10) beyond the key-set kinds `0x0001..=0x000F`.
pub mod kind {
    /// Site releases; the id is the site number.
    pub const SITE_RELEASE: u16 = 0x1000;
    /// Anonymous uploads; never name-addressed.
    pub const UPLOAD: u16 = 0x1010;
    /// The node rendezvous (id 1, version 0) and signed notices (id ≥ 2).
    pub const NOTICE: u16 = 0x1111;
    /// Authorized files: the ids in [`super::file_id`].
    pub const AUTHORIZED_FILE: u16 = 0x8080;
}

/// Ids under [`kind::AUTHORIZED_FILE`].
pub mod file_id {
    /// The blacklist, signed by the blacklist role.
    pub const BLACKLIST: u32 = 1;
    /// Intake receipts, signed by the documents role.
    pub const INTAKE_RECEIPTS: u32 = 2;
    /// The software manifest, signed by the software role.
    pub const SOFTWARE_MANIFEST: u32 = 3;
    /// Lowest id of a published document; ids 4–255 are undefined.
    pub const FIRST_DOCUMENT: u32 = 0x100;
}

impl ObjectClass {
    /// Classifies a name's kind, id and version per the SPEC §1 table.
    pub fn of(kind: u16, id: u32, version: u32) -> ObjectClass {
        match (kind, id) {
            (1..=0x000F, 1) => ObjectClass::KeySet(Role(kind)),
            (kind::SITE_RELEASE, _) => ObjectClass::SiteRelease,
            (kind::NOTICE, 1) if version == 0 => ObjectClass::NodeRendezvous,
            (kind::NOTICE, 2..) => ObjectClass::Notice,
            (kind::UPLOAD, _) => ObjectClass::Upload,
            (kind::AUTHORIZED_FILE, file_id::BLACKLIST) => ObjectClass::Blacklist,
            (kind::AUTHORIZED_FILE, file_id::INTAKE_RECEIPTS) => ObjectClass::IntakeReceipts,
            (kind::AUTHORIZED_FILE, file_id::SOFTWARE_MANIFEST) => ObjectClass::SoftwareManifest,
            (kind::AUTHORIZED_FILE, file_id::FIRST_DOCUMENT..) => ObjectClass::Document,
            _ => ObjectClass::Unknown,
        }
    }

    /// The role whose keys must sign records of this class; `None` means no record of
    /// this class is ever accepted.
    pub fn governing_role(self) -> Option<Role> {
        match self {
            ObjectClass::KeySet(role) => Some(role),
            ObjectClass::SiteRelease => Some(Role::SITE),
            ObjectClass::Notice => Some(Role::NOTICES),
            ObjectClass::Blacklist => Some(Role::BLACKLIST),
            ObjectClass::IntakeReceipts | ObjectClass::Document => Some(Role::DOCUMENTS),
            ObjectClass::SoftwareManifest => Some(Role::SOFTWARE),
            ObjectClass::NodeRendezvous | ObjectClass::Upload | ObjectClass::Unknown => None,
        }
    }
}

impl fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectClass::KeySet(role) => write!(f, "key set of role {role}"),
            ObjectClass::SiteRelease => f.write_str("site release"),
            ObjectClass::NodeRendezvous => f.write_str("node rendezvous"),
            ObjectClass::Notice => f.write_str("notice"),
            ObjectClass::Upload => f.write_str("anonymous upload"),
            ObjectClass::Blacklist => f.write_str("blacklist"),
            ObjectClass::IntakeReceipts => f.write_str("intake receipts"),
            ObjectClass::SoftwareManifest => f.write_str("software manifest"),
            ObjectClass::Document => f.write_str("published document"),
            ObjectClass::Unknown => f.write_str("unknown kind"),
        }
    }
}

/// A 20-byte system name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemName([u8; 20]);

/// Which (kind, id) a name belongs to, across versions: the unit of "no rollback".
pub type Slot = (u16, u32);

impl SystemName {
    /// Lays out a name from its parts, with [`PROTOCOL_VERSION`]; does not check the tag.
    pub fn new(tag: NetworkTag, kind: u16, id: u32, version: u32) -> Self {
        let mut b = [0u8; 20];
        b[..9].copy_from_slice(tag.as_bytes());
        b[9] = PROTOCOL_VERSION;
        b[10..12].copy_from_slice(&kind.to_be_bytes());
        b[12..16].copy_from_slice(&id.to_be_bytes());
        b[16..20].copy_from_slice(&version.to_be_bytes());
        SystemName(b)
    }

    /// The name of a role's key-set certificate, version `version`.
    pub fn key_set(tag: NetworkTag, role: Role, version: u32) -> Self {
        SystemName::new(tag, role.number(), 1, version)
    }

    /// The node rendezvous name of network `tag`: every node announces itself under it.
    pub fn rendezvous(tag: NetworkTag) -> Self {
        SystemName::new(tag, kind::NOTICE, 1, 0)
    }

    /// Parses 20 raw bytes, checking the tag and the protocol version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        let b: [u8; 20] = bytes
            .try_into()
            .map_err(|_| NameError::Length(bytes.len()))?;
        let mut tag = [0u8; 9];
        tag.copy_from_slice(&b[..9]);
        NetworkTag::from_bytes(tag)?;
        if b[9] != PROTOCOL_VERSION {
            return Err(NameError::ProtocolVersion(b[9]));
        }
        Ok(SystemName(b))
    }

    /// The 20 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The network tag (bytes 0–8).
    pub fn tag(&self) -> NetworkTag {
        let mut tag = [0u8; 9];
        tag.copy_from_slice(&self.0[..9]);
        NetworkTag(tag)
    }

    /// The kind (bytes 10–11, big-endian).
    pub fn kind(&self) -> u16 {
        u16::from_be_bytes([self.0[10], self.0[11]])
    }

    /// The id (bytes 12–15, big-endian).
    pub fn id(&self) -> u32 {
        u32::from_be_bytes(self.0[12..16].try_into().expect("4 bytes"))
    }

    /// The version (bytes 16–19, big-endian).
    pub fn version(&self) -> u32 {
        u32::from_be_bytes(self.0[16..20].try_into().expect("4 bytes"))
    }

    /// The (kind, id) slot this name is a version of.
    pub fn slot(&self) -> Slot {
        (self.kind(), self.id())
    }

    /// What this name addresses; see [`ObjectClass::of`].
    pub fn class(&self) -> ObjectClass {
        ObjectClass::of(self.kind(), self.id(), self.version())
    }

    /// The same slot at version `version`.
    pub fn with_version(&self, version: u32) -> Self {
        SystemName::new(self.tag(), self.kind(), self.id(), version)
    }

    /// The name of the next version, or `None` when the version space is exhausted.
    pub fn next_version(&self) -> Option<Self> {
        self.version().checked_add(1).map(|v| self.with_version(v))
    }

    /// The text form: 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for SystemName {
    type Err = NameError;
    /// Parses 40 hex digits.
    fn from_str(s: &str) -> Result<Self, NameError> {
        if s.len() != 40 {
            return Err(NameError::HexLength(s.len()));
        }
        let bytes = hex::decode(s).map_err(|_| NameError::NotHex)?;
        SystemName::from_bytes(&bytes)
    }
}

impl fmt::Display for SystemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SystemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{:04x}/{}/v{}",
            self.tag(),
            self.kind(),
            self.id(),
            self.version()
        )
    }
}

/// Why bytes or text are not a valid name, tag or role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Raw bytes of a name are not 20 long (the length is carried).
    #[error("a system name is 20 bytes, got {0}")]
    Length(usize),
    /// Text of a name is not 40 characters long (the length is carried).
    #[error("a system name is 40 hex digits, got {0} characters")]
    HexLength(usize),
    /// Text of a name has a character that is not a hex digit.
    #[error("a system name must be hexadecimal")]
    NotHex,
    /// A network tag is not exactly 9 printable ASCII characters.
    #[error("network tag {0:?} is not 9 printable ASCII characters")]
    BadTag(String),
    /// A name's protocol version byte is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0} (this build speaks 0)")]
    ProtocolVersion(u8),
    /// Text names no role, or a number outside `1..=0x000F`.
    #[error("{0:?} is not a role (site, blacklist, documents, software, intake, notices or 1..15)")]
    BadRole(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_spec() {
        let n = SystemName::new(NetworkTag::DEFAULT, 0x1000, 1, 7);
        assert_eq!(
            n.to_hex(),
            "57494b494c45414b5300100000000001000000 07".replace(' ', "")
        );
        assert_eq!(n.class(), ObjectClass::SiteRelease);
        assert_eq!(n.next_version().unwrap().version(), 8);
        assert_eq!(n.to_hex().parse::<SystemName>().unwrap(), n);
        assert_eq!(
            SystemName::new(NetworkTag::DEFAULT, 1, 1, u32::MAX).next_version(),
            None
        );
    }

    #[test]
    fn classes_and_roles() {
        let c = |k, i, v| ObjectClass::of(k, i, v);
        assert_eq!(c(3, 1, 2), ObjectClass::KeySet(Role::DOCUMENTS));
        assert_eq!(c(3, 2, 2), ObjectClass::Unknown);
        assert_eq!(c(0x1111, 1, 0), ObjectClass::NodeRendezvous);
        assert_eq!(c(0x1111, 1, 1), ObjectClass::Unknown);
        assert_eq!(c(0x1111, 9, 1).governing_role(), Some(Role::NOTICES));
        assert_eq!(c(0x8080, 1, 1).governing_role(), Some(Role::BLACKLIST));
        assert_eq!(c(0x8080, 0xff, 1).governing_role(), None);
        assert_eq!(c(0x8080, 0x100, 1).governing_role(), Some(Role::DOCUMENTS));
        assert_eq!(c(0x1010, 5, 1).governing_role(), None);
        assert_eq!("intake".parse::<Role>(), Ok(Role::INTAKE));
        assert_eq!("0x0002".parse::<Role>(), Ok(Role::BLACKLIST));
        assert!("16".parse::<Role>().is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!("abc".parse::<SystemName>(), Err(NameError::HexLength(3)));
        assert!("zz".repeat(20).parse::<SystemName>().is_err());
        let mut b = *SystemName::new(NetworkTag::DEFAULT, 1, 1, 1).as_bytes();
        b[9] = 1;
        assert_eq!(
            SystemName::from_bytes(&b),
            Err(NameError::ProtocolVersion(1))
        );
        b[9] = 0;
        b[0] = 0;
        assert!(matches!(
            SystemName::from_bytes(&b),
            Err(NameError::BadTag(_))
        ));
        assert!("WIKILEAK".parse::<NetworkTag>().is_err());
        assert!("WIKILEAK\u{e9}".parse::<NetworkTag>().is_err());
    }
}
