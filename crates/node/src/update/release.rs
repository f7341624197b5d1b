//! The publisher's side of a software release: the packages become a folder and its
//! torrent, and a manifest naming each package with its SHA-256.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use semver::Version;

use super::manifest::{Manifest, ManifestError, PackageFile, PackageKind, Platform};
use crate::fsutil::sha256_file;
use crate::metainfo_file::{self, Torrent, TorrentError};
use crate::publisher::Entry;
use crate::record::MAX_BODY_LEN;

/// A package to publish: where it runs, what it is, and the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSpec {
    pub platform: Platform,
    pub kind: PackageKind,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Torrent(#[from] TorrentError),
    #[error(
        "cannot tell what {0:?} is; write it as PLATFORM:KIND=FILE, e.g. linux-x86_64:bin=./swarmsite"
    )]
    Unknown(String),
    #[error("{0}: not a file")]
    NotFile(PathBuf),
    #[error(
        "version {version} is not newer than {newest}, the newest published: versions never go backwards"
    )]
    NotNewer { version: Version, newest: Version },
    #[error(
        "the manifest is {0} bytes, over the {MAX_BODY_LEN}-byte record body: shorten the release notes"
    )]
    TooLarge(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl FromStr for PackageSpec {
    type Err = ReleaseError;
    /// `PLATFORM:KIND=FILE`, or a bare `FILE` whose name tells both
    /// (`swarmsite_0.2.0_amd64.deb`, `swarmsite-0.2.0-linux-x86_64`, `swarmsite.msi`…).
    fn from_str(s: &str) -> Result<Self, ReleaseError> {
        if let Some((head, file)) = s.split_once('=')
            && let Some((platform, kind)) = head.split_once(':')
        {
            return Ok(PackageSpec {
                platform: platform.parse()?,
                kind: kind.parse()?,
                path: PathBuf::from(file),
            });
        }
        let path = PathBuf::from(s);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (platform, kind) = infer(&name).ok_or_else(|| ReleaseError::Unknown(s.into()))?;
        Ok(PackageSpec {
            platform,
            kind,
            path,
        })
    }
}

/// Guesses a package's platform and kind from its file name: the kind from its suffix
/// (none: a plain binary), the tray app's kinds (`app_…`) when the name holds
/// `swarmsite-app`, the OS from the kind or the name, the CPU from the usual spellings
/// (`amd64`, `x86_64`, `arm64`…).
pub fn infer(file_name: &str) -> Option<(Platform, PackageKind)> {
    let name = file_name.to_ascii_lowercase();
    let (kind, os) = [
        (".deb", PackageKind::Deb, Some("linux")),
        (".rpm", PackageKind::Rpm, Some("linux")),
        (".appimage", PackageKind::AppImage, Some("linux")),
        (".msi", PackageKind::Msi, Some("windows")),
        (".exe", PackageKind::Bin, Some("windows")),
        (".dmg", PackageKind::Dmg, Some("macos")),
    ]
    .into_iter()
    .find(|(suffix, _, _)| name.ends_with(suffix))
    .map_or((PackageKind::Bin, None), |(_, k, os)| (k, os));
    let os = os.or_else(|| {
        [
            ("linux", "linux"),
            ("windows", "windows"),
            ("macos", "macos"),
            ("darwin", "macos"),
        ]
        .into_iter()
        .find(|(word, _)| name.contains(word))
        .map(|(_, os)| os)
    })?;
    let arch = [
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
        ("x64", "x86_64"),
        ("aarch64", "aarch64"),
        ("arm64", "aarch64"),
        ("i686", "x86"),
        ("i386", "x86"),
        ("armhf", "arm"),
        ("armv7", "arm"),
    ]
    .into_iter()
    .find(|(word, _)| name.contains(word))
    .map(|(_, arch)| arch)?;
    // The tray app's packages carry its name (`swarmsite-app_0.2.0_amd64.deb`).
    let app = ["swarmsite-app", "swarmsite_app"]
        .iter()
        .any(|n| name.contains(n));
    Some((
        Platform {
            os: os.into(),
            arch: arch.into(),
        },
        if app { kind.for_app() } else { kind },
    ))
}

/// A release ready to sign: the manifest, the torrent of its packages, and the folder
/// that torrent describes (removed when dropped; the publication copies it).
pub struct Release {
    pub manifest: Manifest,
    pub torrent: Torrent,
    pub dir: tempfile::TempDir,
}

/// The newest release version among published records.
pub fn newest_published(published: &[Entry]) -> Option<Version> {
    published
        .iter()
        .filter_map(|e| Manifest::from_record(&e.record).ok())
        .map(|m| m.version)
        .max()
}

/// Copies the packages into one folder, hashes them, makes the torrent and the manifest.
/// `newest` is the newest version published before: the new one must be above it.
pub fn prepare(
    specs: &[PackageSpec],
    version: Version,
    min_version: Version,
    notes: String,
    newest: Option<&Version>,
) -> Result<Release, ReleaseError> {
    if let Some(newest) = newest
        && version <= *newest
    {
        return Err(ReleaseError::NotNewer {
            version,
            newest: newest.clone(),
        });
    }
    let dir = tempfile::tempdir().map_err(io(Path::new("temporary folder")))?;
    let mut files = Vec::new();
    for spec in specs {
        if !std::fs::metadata(&spec.path).is_ok_and(|m| m.is_file()) {
            return Err(ReleaseError::NotFile(spec.path.clone()));
        }
        let name = spec
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ManifestError::Path(spec.path.display().to_string()))?
            .to_string();
        let copy = dir.path().join(&name);
        if copy.exists() {
            return Err(ManifestError::DuplicatePath(name).into());
        }
        // A copy, not a link: what is hashed here is what gets published, whatever
        // happens to the original meanwhile.
        let size = std::fs::copy(&spec.path, &copy).map_err(io(&spec.path))?;
        files.push(PackageFile {
            platform: spec.platform.clone(),
            kind: spec.kind.clone(),
            path: name,
            size,
            sha256: sha256_file(&copy).map_err(io(&copy))?,
        });
    }
    let mut manifest = Manifest {
        version,
        min_version,
        notes,
        ih: [0; 20],
        files,
    };
    manifest.validate()?;
    let torrent = metainfo_file::make(dir.path(), &format!("swarmsite-{}", manifest.version))?;
    manifest.ih = torrent.info_hash;
    let len = manifest.encode().len();
    if len > MAX_BODY_LEN {
        return Err(ReleaseError::TooLarge(len));
    }
    Ok(Release {
        manifest,
        torrent,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::manifest::parse_version;

    #[test]
    fn specs_and_inference() {
        let s: PackageSpec = "linux-x86_64:bin=./out/swarmsite".parse().unwrap();
        assert_eq!(
            (s.platform.to_string(), s.kind, s.path),
            (
                "linux-x86_64".into(),
                PackageKind::Bin,
                PathBuf::from("./out/swarmsite")
            )
        );
        let i = |n: &str| infer(n).map(|(p, k)| format!("{p}:{k}"));
        assert_eq!(
            i("swarmsite_0.2.0_amd64.deb").as_deref(),
            Some("linux-x86_64:deb")
        );
        assert_eq!(
            i("swarmsite_0.2.0_arm64.deb").as_deref(),
            Some("linux-aarch64:deb")
        );
        assert_eq!(
            i("swarmsite-0.2.0-linux-x86_64").as_deref(),
            Some("linux-x86_64:bin")
        );
        assert_eq!(
            i("swarmsite_0.2.0_x64_en-US.msi").as_deref(),
            Some("windows-x86_64:msi")
        );
        assert_eq!(
            i("swarmsite_aarch64.dmg").as_deref(),
            Some("macos-aarch64:dmg")
        );
        assert_eq!(
            i("swarmsite-app_0.2.0_amd64.deb").as_deref(),
            Some("linux-x86_64:app_deb")
        );
        assert_eq!(
            i("swarmsite-app-0.2.0-linux-x86_64").as_deref(),
            Some("linux-x86_64:app_bin")
        );
        assert_eq!(
            i("swarmsite-app_0.2.0_x64_en-US.msi").as_deref(),
            Some("windows-x86_64:app_msi")
        );
        assert_eq!(i("swarmsite"), None);
        assert!(matches!(
            "swarmsite".parse::<PackageSpec>(),
            Err(ReleaseError::Unknown(_))
        ));
        assert!("Linux:bin=x".parse::<PackageSpec>().is_err());
    }

    #[test]
    fn prepare_hashes_copies_and_refuses_going_back() {
        let src = tempfile::tempdir().unwrap();
        let a = src.path().join("swarmsite-0.2.0-linux-x86_64");
        std::fs::write(&a, b"#!/bin/sh\necho swarmsite 0.2.0\n").unwrap();
        let b = src.path().join("swarmsite_0.2.0_amd64.deb");
        std::fs::write(&b, vec![9u8; 70_000]).unwrap();
        let specs: Vec<PackageSpec> = [&a, &b]
            .iter()
            .map(|p| p.to_str().unwrap().parse().unwrap())
            .collect();
        let v = |s| parse_version(s).unwrap();
        let r = prepare(
            &specs,
            v("0.2.0"),
            v("0.1.0"),
            "notes".into(),
            Some(&v("0.1.0")),
        )
        .unwrap();
        assert_eq!(r.manifest.ih, r.torrent.info_hash);
        assert_eq!(r.manifest.files.len(), 2);
        let deb = r
            .manifest
            .package(&"linux-x86_64".parse().unwrap(), &PackageKind::Deb)
            .unwrap();
        assert_eq!(deb.size, 70_000);
        assert_eq!(deb.sha256, sha256_file(&b).unwrap());
        assert_eq!(
            metainfo_file::make(r.dir.path(), "swarmsite-0.2.0")
                .unwrap()
                .info_hash,
            r.manifest.ih
        );
        assert!(matches!(
            prepare(
                &specs,
                v("0.2.0"),
                v("0.1.0"),
                String::new(),
                Some(&v("0.2.0"))
            ),
            Err(ReleaseError::NotNewer { .. })
        ));
        assert!(matches!(
            prepare(&specs, v("0.3.0"), v("0.1.0"), "x".repeat(8000), None),
            Err(ReleaseError::Manifest(ManifestError::Notes(_)))
        ));
        let twice = vec![specs[0].clone(), specs[0].clone()];
        assert!(prepare(&twice, v("0.3.0"), v("0.1.0"), String::new(), None).is_err());
    }
}
