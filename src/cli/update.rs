//! `swarmsite publish software` (the publisher ships a version through the swarm) and
//! `swarmsite update` (what the local node knows of new versions; install one now).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use semver::Version;
use swarmsite::control;
use swarmsite::datadir::DataDir;
use swarmsite::name::{file_id, kind};
use swarmsite::publisher::{NetworkDir, TORRENT_FILE};
use swarmsite::record::Payload;
use swarmsite::update::manifest::parse_version;
use swarmsite::update::release::{self, PackageSpec};

use super::NetworkArg;
use super::passphrase::PassphraseArgs;
use super::publish::{Common, Publication, publish};

#[derive(Args, Debug)]
pub struct SoftwareArgs {
    /// Packages: `PLATFORM:KIND=FILE` (`linux-x86_64:bin=target/release/swarmsite`), or a
    /// FILE whose name tells both (`swarmsite_0.2.0_amd64.deb`). Kinds: deb, bin, rpm,
    /// msi, dmg, appimage for the command line; app_deb, app_bin… for the tray app
    /// (inferred from names holding `swarmsite-app`); platforms: os-arch as Rust names
    /// them.
    #[arg(required = true, value_name = "PACKAGE")]
    packages: Vec<PackageSpec>,
    /// The version released (X.Y.Z): above every version published before.
    #[arg(long, value_parser = parse_version, value_name = "X.Y.Z")]
    version: Version,
    /// The oldest running version this release can update in place (default: any).
    #[arg(long, value_parser = parse_version, value_name = "X.Y.Z")]
    min_from: Option<Version>,
    /// Release notes shown to volunteers (at most 4096 bytes).
    #[arg(long, conflicts_with = "notes_file")]
    notes: Option<String>,
    /// Read the release notes from this file.
    #[arg(long, value_name = "FILE")]
    notes_file: Option<PathBuf>,
    #[command(flatten)]
    network: NetworkArg,
    /// Key file of the software role to sign with (repeatable; default: the network
    /// folder's key files of the role's current set, as many as it requires).
    #[arg(long = "key", value_name = "KEY.pem")]
    keys: Vec<PathBuf>,
    /// Manifest record version (default: one past the newest published).
    #[arg(long, value_name = "N")]
    record_version: Option<u32>,
    /// Hand the manifest and the packages to the node running with this data folder,
    /// which seeds them and sends the manifest to the network.
    #[arg(long)]
    push: bool,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

pub fn publish_software(args: SoftwareArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let net = NetworkDir::open(&args.network.network_dir)?;
    let newest = release::newest_published(&net.published()?);
    let notes = match &args.notes_file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?,
        None => args.notes.clone().unwrap_or_default(),
    };
    let min = args.min_from.clone().unwrap_or(Version::new(0, 0, 0));
    let rel = release::prepare(
        &args.packages,
        args.version.clone(),
        min,
        notes,
        newest.as_ref(),
    )?;
    println!(
        "swarmsite {} (updates {} and later): torrent {}",
        rel.manifest.version,
        rel.manifest.min_version,
        hex::encode(rel.manifest.ih)
    );
    for f in &rel.manifest.files {
        println!(
            "  {} {:<8} {} ({} bytes, sha256 {})",
            f.platform,
            f.kind,
            f.path,
            f.size,
            hex::encode(f.sha256)
        );
    }
    let common = Common {
        network: args.network,
        keys: args.keys,
        version: args.record_version,
        push: args.push,
        passphrase: args.passphrase,
    };
    let files = [(TORRENT_FILE.to_string(), rel.torrent.bytes.clone())];
    let p = Publication {
        kind: kind::AUTHORIZED_FILE,
        id: file_id::SOFTWARE_MANIFEST,
        payload: Payload::Body(rel.manifest.encode()),
        files: &files,
        payload_dir: Some(rel.dir.path()),
    };
    publish(data_dir, &net, p, &common)
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Install the downloaded and checked release now; the node then restarts into it.
    #[arg(long)]
    install: bool,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: UpdateArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let body = if args.install {
        control::client::request(&info, "POST", "/api/update/install", Some("{}"))?
    } else {
        control::client::request(&info, "GET", "/api/update", None)?
    };
    if args.json {
        println!("{body}");
    } else {
        let s: serde_json::Value = serde_json::from_str(&body).context("not JSON")?;
        print_update(&s);
        if args.install {
            println!("installed; the node is restarting into it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an update status (`GET /api/update`, the status's `update`).
pub fn print_update(u: &serde_json::Value) {
    let text = |k: &str| u[k].as_str().unwrap_or("").to_string();
    let phase = text("phase");
    let newest = u["newest"].as_str();
    let what = match (phase.as_str(), newest) {
        ("up-to-date", _) => "up to date".to_string(),
        ("downloading", Some(v)) => format!("downloading {v}"),
        ("ready", Some(v)) if u["installable"].as_bool() == Some(true) => format!(
            "{v} ready to install ({})",
            if u["auto_install"].as_bool() == Some(true) {
                "installing it"
            } else {
                "swarmsite update --install"
            }
        ),
        ("ready", Some(v)) => format!("{v} downloaded"),
        ("installing", Some(v)) => format!("installing {v}"),
        ("restarting", Some(v)) => format!("{v} installed, restarting"),
        ("unavailable", Some(v)) => format!("{v} out, not for this installation"),
        ("failed", Some(v)) => format!("{v} failed"),
        (p, _) => p.to_string(),
    };
    println!(
        "software: running {} on {} ({}) · {what}",
        text("running"),
        text("platform"),
        u["installation"].as_str().map_or_else(
            || format!("{} packages", text("package_kind")),
            str::to_string
        )
    );
    if let Some(p) = u.get("progress").filter(|p| !p.is_null())
        && phase == "downloading"
    {
        let have = p["have_bytes"].as_u64().unwrap_or(0);
        let total = p["total_bytes"].as_u64().unwrap_or(0).max(1);
        println!(
            "  {:.0}% of {total} bytes from {} peers",
            have as f64 * 100.0 / total as f64,
            p["peers"]
        );
    }
    if let Some(p) = u.get("package").filter(|p| !p.is_null()) {
        println!(
            "  package {} {} ({} bytes, sha256 {}), seeded",
            p["version"].as_str().unwrap_or("?"),
            p["path"].as_str().unwrap_or("?"),
            p["size"],
            p["sha256"].as_str().unwrap_or("?")
        );
    }
    if let Some(notes) = u["notes"].as_str().filter(|n| !n.is_empty()) {
        println!("  release notes of {}:", newest.unwrap_or("?"));
        for line in notes.lines() {
            println!("    {line}");
        }
    }
    if let Some(e) = u["error"].as_str() {
        println!("  {e}");
    }
}
