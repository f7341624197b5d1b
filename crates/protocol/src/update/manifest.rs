//! The software update manifest (kind `0x8080` id 3, signed by the software role): the
//! body of an inline record naming a release of swarmsite, the torrent that carries its
//! packages, and one entry per package.
//!
//! ```text
//! { files: [ {kind, path, platform, sha256, size}, … ], ih, min_version, notes, version }
//! ```
//!
//! The manifest is inline so that every node learns the version and its release notes
//! from the record alone, before any download; the SHA-256 of each package is signed
//! with it, so a package is checked against the publisher's own digest as well as
//! against the torrent's SHA-1 piece hashes.

use std::fmt;
use std::str::FromStr;

use semver::Version;

use crate::bencode::{self, Fields, Limits, ShapeError, Value};
use crate::name::ObjectClass;
use crate::record::{Payload, Record};

/// Longest release notes, in bytes.
pub const MAX_NOTES: usize = 4096;
/// Most packages in one release.
pub const MAX_FILES: usize = 32;
/// Longest package file name, in bytes.
pub const MAX_PATH: usize = 128;
/// Largest package.
pub const MAX_PACKAGE_BYTES: u64 = 4 << 30;

/// Where a package runs: `os-arch`, with the names Rust gives them
/// (`std::env::consts::OS`, `ARCH`): `linux-x86_64`, `windows-x86_64`, `macos-aarch64`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, as `std::env::consts::OS` names it (`linux`, `windows`, `macos`).
    pub os: String,
    /// CPU architecture, as `std::env::consts::ARCH` names it (`x86_64`, `aarch64`).
    pub arch: String,
}

impl Platform {
    /// The platform this build runs on.
    pub fn current() -> Self {
        Platform {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

fn is_token(s: &str) -> bool {
    (1..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for Platform {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, ManifestError> {
        match s.split_once('-') {
            Some((os, arch)) if is_token(os) && is_token(arch) => Ok(Platform {
                os: os.into(),
                arch: arch.into(),
            }),
            _ => Err(ManifestError::Platform(s.into())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.os, self.arch)
    }
}

/// What a package is, which decides how it is installed. Kinds named `app_…` are the
/// tray app's packages (`swarmsite-app`), the others the command-line program's
/// (`swarmsite`): the two programs never take each other's packages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PackageKind {
    /// A Debian package of the command-line program, installed by the package manager.
    Deb,
    /// The command-line program as a plain executable that replaces the running one.
    Bin,
    /// The tray app's Debian package (`swarmsite-app`).
    AppDeb,
    /// The tray app as a plain executable.
    AppBin,
    /// An RPM package of the command-line program.
    Rpm,
    /// A Windows installer (MSI) of the command-line program.
    Msi,
    /// A macOS disk image of the command-line program.
    Dmg,
    /// An AppImage (self-contained Linux executable) of the command-line program.
    AppImage,
    /// A kind this build has no name for: a newer publisher's, or one built here for the
    /// tray app (`app_msi`…, see [`PackageKind::for_app`]); chosen only when it equals the
    /// kind asked for.
    Other(String),
}

impl PackageKind {
    /// The kind's name in the manifest (`deb`, `app_bin`, or an unknown kind's own).
    pub fn as_str(&self) -> &str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Bin => "bin",
            PackageKind::AppDeb => "app_deb",
            PackageKind::AppBin => "app_bin",
            PackageKind::Rpm => "rpm",
            PackageKind::Msi => "msi",
            PackageKind::Dmg => "dmg",
            PackageKind::AppImage => "appimage",
            PackageKind::Other(s) => s,
        }
    }
}

impl FromStr for PackageKind {
    type Err = ManifestError;
    fn from_str(s: &str) -> Result<Self, ManifestError> {
        Ok(match s {
            "deb" => PackageKind::Deb,
            "bin" => PackageKind::Bin,
            "app_deb" => PackageKind::AppDeb,
            "app_bin" => PackageKind::AppBin,
            "rpm" => PackageKind::Rpm,
            "msi" => PackageKind::Msi,
            "dmg" => PackageKind::Dmg,
            "appimage" => PackageKind::AppImage,
            other if is_token(other) => PackageKind::Other(other.into()),
            _ => return Err(ManifestError::Kind(s.into())),
        })
    }
}

impl PackageKind {
    /// The tray app's package of the same form (`deb` → `app_deb`, `msi` → `app_msi`).
    pub fn for_app(&self) -> PackageKind {
        match self {
            PackageKind::Deb | PackageKind::AppDeb => PackageKind::AppDeb,
            PackageKind::Bin | PackageKind::AppBin => PackageKind::AppBin,
            other if other.is_app() => other.clone(),
            other => PackageKind::Other(format!("app_{}", other.as_str())),
        }
    }

    /// Whether this is one of the tray app's packages.
    pub fn is_app(&self) -> bool {
        self.as_str().starts_with("app_")
    }
}

impl fmt::Display for PackageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One package of a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    /// Where the package runs.
    pub platform: Platform,
    /// What the package is, which decides how it is installed.
    pub kind: PackageKind,
    /// Its file name in the release torrent (one path component).
    pub path: String,
    /// Its length in bytes (1 to [`MAX_PACKAGE_BYTES`]).
    pub size: u64,
    /// SHA-256 of the package, signed with the manifest and checked after download.
    pub sha256: [u8; 32],
}

/// A release of swarmsite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The release's version (semantic versioning, no build metadata).
    pub version: Version,
    /// The oldest running version this release can update in place.
    pub min_version: Version,
    /// Release notes for people, at most [`MAX_NOTES`] bytes.
    pub notes: String,
    /// Info hash of the torrent holding every package, each at its `path`.
    pub ih: [u8; 20],
    /// The packages: 1 to [`MAX_FILES`], at most one per platform and kind.
    pub files: Vec<PackageFile>,
}

/// Why a manifest, or one of its parts, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The body is not canonical bencode within the record limits.
    #[error("{0}")]
    Bencode(#[from] bencode::DecodeError),
    /// A field is missing, unknown, of the wrong type, or of the wrong length.
    #[error("{0}")]
    Shape(#[from] ShapeError),
    /// A version is not semantic versioning, or carries build metadata.
    #[error("{0:?} is not a version (semantic versioning, X.Y.Z, no build metadata)")]
    Version(String),
    /// `min_version` is above `version`.
    #[error("minimum version {min} is above the release version {version}")]
    MinAbove {
        /// The manifest's `min_version`.
        min: Version,
        /// The manifest's `version`.
        version: Version,
    },
    /// The release notes are longer than [`MAX_NOTES`] (their length in bytes is carried).
    #[error("release notes of {0} bytes exceed {MAX_NOTES}")]
    Notes(usize),
    /// No packages, or more than [`MAX_FILES`] (the count is carried).
    #[error("a release lists 1 to {MAX_FILES} packages, not {0}")]
    FileCount(usize),
    /// A package file name is empty, over [`MAX_PATH`], `.` or `..`, or holds `/`, `\`
    /// or NUL.
    #[error("package file name {0:?} must be one path component of 1 to {MAX_PATH} bytes")]
    Path(String),
    /// Two packages have the same file name.
    #[error("two packages are named {0:?}")]
    DuplicatePath(String),
    /// Two packages have the same platform and kind.
    #[error("two {kind} packages for {platform}")]
    DuplicatePackage {
        /// The platform listed twice.
        platform: Platform,
        /// The kind listed twice for it.
        kind: PackageKind,
    },
    /// A package is empty or larger than [`MAX_PACKAGE_BYTES`].
    #[error("package {path:?} of {size} bytes is empty or over {MAX_PACKAGE_BYTES}")]
    Size {
        /// The package's file name.
        path: String,
        /// Its size in bytes, as listed.
        size: u64,
    },
    /// A platform is not `os-arch`, each a token of 1 to 16 bytes of `a-z`, `0-9`, `_`.
    #[error("{0:?} is not a platform (os-arch, lowercase, e.g. linux-x86_64)")]
    Platform(String),
    /// A package kind is not a token of 1 to 16 bytes of `a-z`, `0-9`, `_`.
    #[error("{0:?} is not a package kind (deb, bin, rpm, msi, dmg, appimage, …)")]
    Kind(String),
    /// The record is not a software manifest, or names a torrent instead of carrying
    /// the manifest inline.
    #[error("not a software manifest: {0}")]
    NotManifest(String),
}

/// Parses a release version: semantic versioning without build metadata, which would
/// make two different releases compare equal.
pub fn parse_version(s: &str) -> Result<Version, ManifestError> {
    match Version::parse(s) {
        Ok(v) if v.build.is_empty() => Ok(v),
        _ => Err(ManifestError::Version(s.into())),
    }
}

fn invalid(field: &'static str, why: &str) -> ShapeError {
    ShapeError::Invalid {
        field,
        why: why.into(),
    }
}

impl Manifest {
    /// Checks every rule a manifest must keep (the decoder and the publisher both call it).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.min_version > self.version {
            return Err(ManifestError::MinAbove {
                min: self.min_version.clone(),
                version: self.version.clone(),
            });
        }
        for v in [&self.version, &self.min_version] {
            if !v.build.is_empty() {
                return Err(ManifestError::Version(v.to_string()));
            }
        }
        if self.notes.len() > MAX_NOTES {
            return Err(ManifestError::Notes(self.notes.len()));
        }
        if self.files.is_empty() || self.files.len() > MAX_FILES {
            return Err(ManifestError::FileCount(self.files.len()));
        }
        for (i, f) in self.files.iter().enumerate() {
            let p = &f.path;
            if p.is_empty()
                || p.len() > MAX_PATH
                || p == "."
                || p == ".."
                || p.contains(['/', '\\', '\0'])
            {
                return Err(ManifestError::Path(p.clone()));
            }
            // A kind made in code (`for_app`) must still be a token the decoder takes.
            f.kind.as_str().parse::<PackageKind>()?;
            if f.size == 0 || f.size > MAX_PACKAGE_BYTES {
                return Err(ManifestError::Size {
                    path: p.clone(),
                    size: f.size,
                });
            }
            for g in &self.files[..i] {
                if g.path == f.path {
                    return Err(ManifestError::DuplicatePath(p.clone()));
                }
                if g.platform == f.platform && g.kind == f.kind {
                    return Err(ManifestError::DuplicatePackage {
                        platform: f.platform.clone(),
                        kind: f.kind.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The canonical bencoding: the record body.
    pub fn encode(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|f| {
                bencode::dict([
                    ("kind", Value::Bytes(f.kind.as_str().as_bytes().to_vec())),
                    ("path", Value::Bytes(f.path.clone().into_bytes())),
                    (
                        "platform",
                        Value::Bytes(f.platform.to_string().into_bytes()),
                    ),
                    ("sha256", Value::Bytes(f.sha256.to_vec())),
                    ("size", Value::Int(f.size as i64)),
                ])
            })
            .collect();
        bencode::encode(&bencode::dict([
            ("files", Value::List(files)),
            ("ih", Value::Bytes(self.ih.to_vec())),
            (
                "min_version",
                Value::Bytes(self.min_version.to_string().into_bytes()),
            ),
            ("notes", Value::Bytes(self.notes.clone().into_bytes())),
            (
                "version",
                Value::Bytes(self.version.to_string().into_bytes()),
            ),
        ]))
    }

    /// Strictly decodes a record body: canonical bencode, known fields only, every rule
    /// of [`Manifest::validate`].
    pub fn decode(body: &[u8]) -> Result<Self, ManifestError> {
        let mut f = Fields::new(bencode::decode(body, Limits::RECORD)?)?;
        let mut files = Vec::new();
        for item in f.list("files")? {
            let mut e = Fields::new(item)?;
            let kind = e.string("kind")?.parse()?;
            let path = e.string("path")?;
            let platform = e.string("platform")?.parse()?;
            let sha256 = e
                .bytes("sha256")?
                .try_into()
                .map_err(|_| invalid("sha256", "not 32 bytes"))?;
            let size = u64::try_from(e.int("size")?).map_err(|_| invalid("size", "negative"))?;
            e.finish()?;
            files.push(PackageFile {
                platform,
                kind,
                path,
                size,
                sha256,
            });
        }
        let ih = f
            .bytes("ih")?
            .try_into()
            .map_err(|_| invalid("ih", "not 20 bytes"))?;
        let min_version = parse_version(&f.string("min_version")?)?;
        let notes = f.string("notes")?;
        let version = parse_version(&f.string("version")?)?;
        f.finish()?;
        let m = Manifest {
            version,
            min_version,
            notes,
            ih,
            files,
        };
        m.validate()?;
        Ok(m)
    }

    /// The manifest a record carries, when it is a software manifest record.
    pub fn from_record(record: &Record) -> Result<Self, ManifestError> {
        if record.name.class() != ObjectClass::SoftwareManifest {
            return Err(ManifestError::NotManifest(format!(
                "a {} record",
                record.name.class()
            )));
        }
        match &record.payload {
            Payload::Body(body) => Manifest::decode(body),
            Payload::Torrent { .. } => Err(ManifestError::NotManifest(
                "a manifest is an inline record, this one names a torrent".into(),
            )),
        }
    }

    /// The package for `platform` of `kind`, if the release has one.
    pub fn package(&self, platform: &Platform, kind: &PackageKind) -> Option<&PackageFile> {
        self.files
            .iter()
            .find(|f| &f.platform == platform && &f.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            version: parse_version("0.2.0").unwrap(),
            min_version: parse_version("0.1.0").unwrap(),
            notes: "Faster sync.\nFixes a crash.".into(),
            ih: [7; 20],
            files: vec![
                PackageFile {
                    platform: "linux-x86_64".parse().unwrap(),
                    kind: PackageKind::Deb,
                    path: "swarmsite_0.2.0_amd64.deb".into(),
                    size: 5_000_000,
                    sha256: [1; 32],
                },
                PackageFile {
                    platform: "linux-x86_64".parse().unwrap(),
                    kind: PackageKind::Bin,
                    path: "swarmsite-0.2.0-linux-x86_64".into(),
                    size: 20_000_000,
                    sha256: [2; 32],
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_choice() {
        let m = sample();
        let body = m.encode();
        assert_eq!(Manifest::decode(&body).unwrap(), m);
        let linux: Platform = "linux-x86_64".parse().unwrap();
        assert_eq!(
            m.package(&linux, &PackageKind::Bin).unwrap().path,
            "swarmsite-0.2.0-linux-x86_64"
        );
        assert!(
            m.package(&"windows-x86_64".parse().unwrap(), &PackageKind::Msi)
                .is_none()
        );
        assert_eq!(
            "flatpak".parse::<PackageKind>().unwrap(),
            PackageKind::Other("flatpak".into())
        );
        assert_eq!(
            Platform::current().to_string().parse::<Platform>().unwrap(),
            Platform::current()
        );
    }

    #[test]
    fn bad_manifests_are_refused() {
        let check = |edit: &dyn Fn(&mut Manifest)| {
            let mut m = sample();
            edit(&mut m);
            Manifest::decode(&m.encode()).unwrap_err()
        };
        assert!(matches!(
            check(&|m| m.min_version = parse_version("0.3.0").unwrap()),
            ManifestError::MinAbove { .. }
        ));
        assert!(matches!(
            check(&|m| m.notes = "x".repeat(MAX_NOTES + 1)),
            ManifestError::Notes(_)
        ));
        assert!(matches!(
            check(&|m| m.files.clear()),
            ManifestError::FileCount(0)
        ));
        assert!(matches!(
            check(&|m| m.files[0].path = "../evil".into()),
            ManifestError::Path(_)
        ));
        assert!(matches!(
            check(&|m| m.files[1].path = m.files[0].path.clone()),
            ManifestError::DuplicatePath(_)
        ));
        assert!(matches!(
            check(&|m| m.files[1].kind = PackageKind::Deb),
            ManifestError::DuplicatePackage { .. }
        ));
        assert!(matches!(
            check(&|m| m.files[0].size = 0),
            ManifestError::Size { .. }
        ));
        assert!(parse_version("1.2").is_err());
        assert!(parse_version("1.2.3+build5").is_err());
        assert!(parse_version("1.2.3-rc.1").is_ok());
        assert!("Linux-x86_64".parse::<Platform>().is_err());
        assert!("linux".parse::<Platform>().is_err());
        // Unknown fields: every signed byte has a meaning.
        let mut body = sample().encode();
        body.pop();
        body.extend_from_slice(b"5:zzzzzi1ee");
        assert!(matches!(
            Manifest::decode(&body),
            Err(ManifestError::Shape(ShapeError::Unknown(_)))
        ));
    }
}
