//! What a node does about a newly accepted manifest: a pure decision from the manifest,
//! the running version, this build's platform and how it was installed.

use semver::Version;

use super::manifest::{Manifest, PackageFile, PackageKind, Platform};

/// What to do with a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Below a release this node accepted before: a signed downgrade, refused (evidence).
    Downgrade {
        /// The newest release this node accepted before.
        newest_seen: Version,
    },
    /// Older than the running version: nothing to fetch, nothing to offer.
    Older,
    /// The release has no package for this platform and installation kind.
    NoPackage,
    /// Fetch `file`, check it, and seed it; `offer` says what to offer the user.
    Fetch {
        /// The release's package for this platform and installation kind.
        file: &'a PackageFile,
        /// What to offer the user once it is fetched and checked.
        offer: Offer,
    },
}

/// Whether a fetched package is offered for installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Newer than the running version, and able to update it.
    Install,
    /// The version running now: fetched only so the swarm carries it.
    SeedOnly,
    /// Newer, but it cannot update the running version in place (below `min`): it is
    /// installed by hand.
    TooOld {
        /// The release's `min_version`, above the running version.
        min: Version,
    },
}

/// Decides about `m` on a node running `running` on `platform`, installed as `kind`,
/// that accepted `newest_seen` before.
pub fn plan<'a>(
    m: &'a Manifest,
    running: &Version,
    platform: &Platform,
    kind: &PackageKind,
    newest_seen: Option<&Version>,
) -> Plan<'a> {
    if let Some(seen) = newest_seen
        && m.version < *seen
    {
        return Plan::Downgrade {
            newest_seen: seen.clone(),
        };
    }
    if m.version < *running {
        return Plan::Older;
    }
    let Some(file) = m.package(platform, kind) else {
        return Plan::NoPackage;
    };
    let offer = if m.version == *running {
        Offer::SeedOnly
    } else if *running < m.min_version {
        Offer::TooOld {
            min: m.min_version.clone(),
        }
    } else {
        Offer::Install
    };
    Plan::Fetch { file, offer }
}

#[cfg(test)]
mod tests {
    use super::super::manifest::parse_version;
    use super::*;

    fn manifest() -> Manifest {
        let file = |kind: PackageKind| PackageFile {
            platform: "linux-x86_64".parse().unwrap(),
            path: format!("pkg-{kind}"),
            kind,
            size: 10,
            sha256: [0; 32],
        };
        Manifest {
            version: parse_version("0.3.0").unwrap(),
            min_version: parse_version("0.2.0").unwrap(),
            notes: String::new(),
            ih: [0; 20],
            files: vec![file(PackageKind::Deb), file(PackageKind::Bin)],
        }
    }

    #[test]
    fn decisions() {
        let m = manifest();
        fn v(s: &str) -> Version {
            parse_version(s).unwrap()
        }
        let linux: Platform = "linux-x86_64".parse().unwrap();
        let p = |running: &str, kind, seen: Option<&str>| {
            let seen = seen.map(v);
            match plan(&m, &v(running), &linux, &kind, seen.as_ref()) {
                Plan::Fetch { file, offer } => (file.path.clone(), offer),
                other => panic!("expected a fetch, got {other:?}"),
            }
        };
        assert_eq!(
            p("0.2.5", PackageKind::Deb, None),
            ("pkg-deb".into(), Offer::Install)
        );
        assert_eq!(
            p("0.2.0", PackageKind::Bin, None),
            ("pkg-bin".into(), Offer::Install)
        );
        assert_eq!(
            p("0.3.0", PackageKind::Bin, None),
            ("pkg-bin".into(), Offer::SeedOnly)
        );
        assert_eq!(
            p("0.1.9", PackageKind::Bin, None),
            ("pkg-bin".into(), Offer::TooOld { min: v("0.2.0") })
        );
        assert_eq!(
            plan(&m, &v("0.4.0"), &linux, &PackageKind::Bin, None),
            Plan::Older
        );
        assert_eq!(
            plan(
                &m,
                &v("0.1.0"),
                &linux,
                &PackageKind::Bin,
                Some(&v("0.3.1"))
            ),
            Plan::Downgrade {
                newest_seen: v("0.3.1")
            }
        );
        assert_eq!(
            plan(&m, &v("0.1.0"), &linux, &PackageKind::Msi, None),
            Plan::NoPackage
        );
        // The tray app takes only its own packages, never the command line's.
        assert_eq!(
            plan(&m, &v("0.2.5"), &linux, &PackageKind::AppDeb, None),
            Plan::NoPackage
        );
        let mut both = m.clone();
        both.files.push(PackageFile {
            platform: linux.clone(),
            kind: PackageKind::AppDeb,
            path: "swarmsite-app_0.3.0_amd64.deb".into(),
            size: 10,
            sha256: [1; 32],
        });
        match plan(&both, &v("0.2.5"), &linux, &PackageKind::AppDeb, None) {
            Plan::Fetch { file, .. } => assert_eq!(file.path, "swarmsite-app_0.3.0_amd64.deb"),
            other => panic!("{other:?}"),
        }
        match plan(&both, &v("0.2.5"), &linux, &PackageKind::Deb, None) {
            Plan::Fetch { file, .. } => assert_eq!(file.path, "pkg-deb"),
            other => panic!("{other:?}"),
        }
        let mac: Platform = "macos-aarch64".parse().unwrap();
        assert_eq!(
            plan(&m, &v("0.1.0"), &mac, &PackageKind::Bin, None),
            Plan::NoPackage
        );
    }
}
