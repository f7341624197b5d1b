//! Software updates through the swarm (SPEC §1: kind `0x8080` id 3, signed by the
//! software role `0x0004`): new versions of swarmsite reach volunteers the way the site
//! does, with no download server.
//!
//! - [`manifest`] and [`plan`] (the protocol's, re-exported): the signed manifest, and
//!   what a node does about one (pure: fetch, offer, seed, or ignore);
//! - [`install`]: how this copy was installed, the installers (package manager for
//!   `.deb`, atomic replacement of a plain binary) and the restart;
//! - [`release`]: the publisher's side (`swarmsite publish software`).
//!
//! The node side (learning, fetching only this platform's package, checking, seeding,
//! installing) is `node/core/update/`.

pub mod install;
pub mod release;

pub use swarmsite_protocol::update::{manifest, plan};

use semver::Version;
use serde::Serialize;

pub use install::Installation;
pub use manifest::{Manifest, PackageFile, PackageKind, Platform};

/// The version of this build.
pub fn running_version() -> Version {
    Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate version is semver")
}

/// Which of swarmsite's programs a node runs in. Each takes its own packages (the tray
/// app's kinds are `app_deb`, `app_bin`…; the command line's `deb`, `bin`…), so an
/// update never puts one program in the other's place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Program {
    /// `swarmsite` (`swarmsite node`, `swarmsite dns`).
    #[default]
    Cli,
    /// `swarmsite-app`, the tray app.
    App,
}

impl Program {
    /// The package kind this program takes when installed as `installation` (none: a
    /// node that only fetches and seeds, which takes the plain binary).
    pub fn package_kind(self, installation: Option<&Installation>) -> PackageKind {
        let kind = installation.map_or(PackageKind::Bin, Installation::kind);
        match self {
            Program::Cli => kind,
            Program::App => kind.for_app(),
        }
    }
}

/// How a node treats software updates.
#[derive(Clone, Debug)]
pub struct UpdateConfig {
    /// The version running (this build's, unless a test says otherwise).
    pub running: Version,
    /// The platform whose packages are fetched.
    pub platform: Platform,
    /// The program running, which with `installation` says which package it takes.
    pub program: Program,
    /// How this copy was installed, which says what to replace and how; `None`: the
    /// node fetches, checks and seeds plain-binary packages but installs nothing.
    pub installation: Option<Installation>,
    /// Install a verified newer release at once and ask to be restarted (headless
    /// `--auto-update`); otherwise it waits for [`crate::node::NodeHandle::install_update`].
    pub auto_install: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            running: running_version(),
            platform: Platform::current(),
            program: Program::Cli,
            installation: None,
            auto_install: false,
        }
    }
}

/// Where a node is with software updates: the status's `update`, `GET /api/update`, and
/// the `update` event.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UpdateStatus {
    /// The version running now.
    pub running: String,
    /// This build's platform (`linux-x86_64`).
    pub platform: String,
    /// How this copy was installed (`plain binary /usr/local/bin/swarmsite`), if known.
    pub installation: Option<String>,
    /// The package kind it takes (`bin`, `deb`).
    pub package_kind: String,
    pub phase: UpdatePhase,
    /// The newest release the network announced, and its manifest.
    pub newest: Option<String>,
    pub manifest_version: Option<u32>,
    pub min_version: Option<String>,
    pub notes: Option<String>,
    /// The download of the package, while it runs and as it ended.
    pub progress: Option<UpdateProgress>,
    /// The checked package on disk (seeded), when there is one.
    pub package: Option<PackageStatus>,
    /// True when `POST /api/update/install` would install a newer version now.
    pub installable: bool,
    pub auto_install: bool,
    /// Why the last step failed, or why the newest release is not offered.
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePhase {
    /// No newer release known (a package of the running version may be seeded).
    #[default]
    UpToDate,
    /// Fetching the package of a newer release.
    Downloading,
    /// A newer release is downloaded and checked (installable, or to install by hand).
    Ready,
    Installing,
    /// Installed; the node asks to be restarted into it.
    Restarting,
    /// A newer release exists but this node cannot take it (no package for it).
    Unavailable,
    /// Its package failed its check, or the install failed: `error` says why.
    Failed,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct UpdateProgress {
    pub have_bytes: u64,
    pub total_bytes: u64,
    pub peers: u32,
    pub bytes_per_sec: u64,
    /// Bytes received from peers.
    pub fetched_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PackageStatus {
    pub version: String,
    pub path: String,
    pub kind: String,
    pub size: u64,
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn each_program_takes_its_own_packages() {
        let deb = Installation::Deb {
            package: "swarmsite-app".into(),
            exe: PathBuf::from("/usr/bin/swarmsite-app"),
        };
        let bin = Installation::Binary {
            exe: PathBuf::from("/opt/swarmsite"),
        };
        let k = |p: Program, i: Option<&Installation>| p.package_kind(i).to_string();
        assert_eq!(k(Program::Cli, Some(&deb)), "deb");
        assert_eq!(k(Program::Cli, Some(&bin)), "bin");
        assert_eq!(k(Program::Cli, None), "bin");
        assert_eq!(k(Program::App, Some(&deb)), "app_deb");
        assert_eq!(k(Program::App, Some(&bin)), "app_bin");
        assert_eq!(k(Program::App, None), "app_bin");
        assert!(PackageKind::AppDeb.is_app() && !PackageKind::Deb.is_app());
        assert_eq!(PackageKind::Msi.for_app().to_string(), "app_msi");
        assert_eq!(
            "app_deb".parse::<PackageKind>().unwrap(),
            PackageKind::AppDeb
        );
    }
}
