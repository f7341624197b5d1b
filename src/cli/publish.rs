//! `swarmsite publish …`: sign new records into the network folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use semver::Version;
use swarmsite_node::content::{Blacklist, Notice, Severity};
use swarmsite_node::metainfo_file;
use swarmsite_node::name::{Role, SystemName, file_id, kind};
use swarmsite_node::publisher::{NetworkDir, TORRENT_FILE};
use swarmsite_node::record::{MAX_BODY_LEN, Payload, Record};
use swarmsite_node::update::manifest::parse_version;
use swarmsite_node::update::release::{self, PackageSpec};

use super::keys::{current_key_files, load_keys, print_outcome, push_outcome};
use super::passphrase::PassphraseArgs;
use super::shared::{NetworkArg, now};

#[derive(Subcommand, Debug)]
pub enum PublishCommand {
    /// Publish a folder as the next release of a site.
    Site {
        /// The site's folder (index.html at its top).
        dir: PathBuf,
        /// Site number (from the bundle).
        #[arg(long, default_value_t = 1)]
        site_id: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Send a signed notice to every node.
    Notice {
        text: String,
        #[arg(long, default_value = "info", value_parser = ["info", "warning", "critical"])]
        severity: String,
        /// Notice channel (2 and up).
        #[arg(long, default_value_t = 2)]
        id: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Publish a document for the archive: a file every node lists and searches, and
    /// keeps copies of within its quota (kind 0x8080, id ≥ 256).
    Document {
        /// The file.
        path: PathBuf,
        /// Its title, as lists and searches show it.
        #[arg(long)]
        title: String,
        /// What it is; searched like the title.
        #[arg(long, default_value = "")]
        description: String,
        /// Media type (default: guessed from the file name's extension).
        #[arg(long = "type", value_name = "TYPE/SUBTYPE")]
        media_type: Option<String>,
        /// Document id (256 and up). Default: the id of the published document with the
        /// same file name, whose next version this becomes; else the next free id.
        #[arg(long, value_parser = clap::value_parser!(u32).range(0x100..))]
        id: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Publish a file as an authorized file (kind 0x8080): intake receipts (2).
    /// Documents: `publish document`; software manifests: `publish software`.
    File {
        path: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
        id: u32,
        /// Carry the file inside the record (at most 8 KiB) instead of a torrent.
        #[arg(long)]
        inline: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Publish the blacklist from a text file: one `ADDR [reason]` per line.
    Blacklist {
        entries: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Publish a new version of swarmsite: a torrent of its packages and a signed
    /// manifest (kind 0x8080, id 3) that every node follows.
    Software(SoftwareArgs),
}

#[derive(Args, Debug)]
pub struct Common {
    #[command(flatten)]
    pub(super) network: NetworkArg,
    /// Key file to sign with (repeatable; default: the network folder's key files of
    /// the role's current set, as many as it requires).
    #[arg(long = "key", value_name = "KEY.pem")]
    pub(super) keys: Vec<PathBuf>,
    /// Version to publish (default: one past the newest published).
    #[arg(long)]
    pub(super) version: Option<u32>,
    /// Hand the published record and its content to the node running with this data
    /// folder, which seeds the content and sends the record to the network.
    #[arg(long)]
    pub(super) push: bool,
    #[command(flatten)]
    pub(super) passphrase: PassphraseArgs,
}

pub fn run(cmd: PublishCommand, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    match cmd {
        PublishCommand::Site {
            dir,
            site_id,
            common,
        } => {
            let net = NetworkDir::open(&common.network.network_dir)?;
            let site = net
                .bundle()
                .site(site_id)
                .with_context(|| format!("the bundle has no site {site_id}"))?
                .clone();
            let t = metainfo_file::make(&dir, &site.name)?;
            println!(
                "site {} from {}: {} files, {} bytes, info hash {}",
                site.name,
                dir.display(),
                t.files.len().max(1),
                t.total_size,
                hex::encode(t.info_hash)
            );
            let (payload, files) = torrent_payload(t);
            publish(
                data_dir,
                &net,
                Publication {
                    kind: kind::SITE_RELEASE,
                    id: site_id,
                    payload,
                    files: &files,
                    payload_dir: Some(&dir),
                },
                &common,
            )
        }
        PublishCommand::Notice {
            text,
            severity,
            id,
            common,
        } => {
            let net = NetworkDir::open(&common.network.network_dir)?;
            let severity: Severity = severity.parse()?;
            let notice = Notice::new(severity, text)?;
            publish(
                data_dir,
                &net,
                Publication {
                    kind: kind::NOTICE,
                    id: id.max(2),
                    payload: Payload::Body(notice.to_body()),
                    files: &[],
                    payload_dir: None,
                },
                &common,
            )
        }
        PublishCommand::Document {
            path,
            title,
            description,
            media_type,
            id,
            common,
        } => {
            let net = NetworkDir::open(&common.network.network_dir)?;
            let (meta, payload, files) =
                NetworkDir::document_payload(&path, title, description, media_type)?;
            let id = match id {
                Some(id) => id,
                None => net.document_id_for(&meta.name)?,
            };
            println!(
                "document {id} ({}): {} bytes, {}, info hash {}",
                meta.name,
                meta.size,
                meta.media_type,
                hex::encode(meta.ih)
            );
            publish(
                data_dir,
                &net,
                Publication {
                    kind: kind::AUTHORIZED_FILE,
                    id,
                    payload,
                    files: &files,
                    payload_dir: Some(&path),
                },
                &common,
            )
        }
        PublishCommand::File {
            path,
            id,
            inline,
            common,
        } => {
            let net = NetworkDir::open(&common.network.network_dir)?;
            if id >= file_id::FIRST_DOCUMENT {
                bail!(
                    "ids from {} up are documents: use `swarmsite publish document`, which signs the title and description every node lists and searches",
                    file_id::FIRST_DOCUMENT
                );
            }
            if id == file_id::SOFTWARE_MANIFEST {
                bail!("a software manifest is made by `swarmsite publish software`");
            }
            if SystemName::new(net.bundle().network(), kind::AUTHORIZED_FILE, id, 1)
                .class()
                .governing_role()
                .is_none()
            {
                bail!("id {id} is not an authorized file: use 2 (receipts)");
            }
            if !path.is_file() {
                bail!("{}: not a file", path.display());
            }
            let (payload, files) = if inline {
                let body = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
                if body.len() > MAX_BODY_LEN {
                    bail!(
                        "{}: {} bytes is too large for --inline (at most {MAX_BODY_LEN})",
                        path.display(),
                        body.len()
                    );
                }
                (Payload::Body(body), vec![])
            } else {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("file name is not UTF-8")?;
                torrent_payload(metainfo_file::make(&path, name)?)
            };
            let dir = if inline { None } else { Some(path.as_path()) };
            publish(
                data_dir,
                &net,
                Publication {
                    kind: kind::AUTHORIZED_FILE,
                    id,
                    payload,
                    files: &files,
                    payload_dir: dir,
                },
                &common,
            )
        }
        PublishCommand::Software(args) => publish_software(args, data_dir),
        PublishCommand::Blacklist { entries, common } => {
            let net = NetworkDir::open(&common.network.network_dir)?;
            let text = std::fs::read_to_string(&entries)
                .with_context(|| format!("{}", entries.display()))?;
            let list = Blacklist::from_text(&text, now())
                .map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}", entries.display()))?;
            let encoded = list.encode();
            println!(
                "blacklist of {} entries ({} bytes)",
                list.entries.len(),
                encoded.len()
            );
            // Inline when it fits a record; otherwise a torrent of one file. The
            // temporary folder lives until the publication has copied the file.
            let tmp = tempfile::tempdir()?;
            let file = tmp.path().join("blacklist.bencode");
            let (payload, files, payload_dir) = if encoded.len() <= MAX_BODY_LEN {
                (Payload::Body(encoded), Vec::new(), None)
            } else {
                std::fs::write(&file, &encoded)?;
                let (payload, files) =
                    torrent_payload(metainfo_file::make(&file, "blacklist.bencode")?);
                (payload, files, Some(file.as_path()))
            };
            let p = Publication {
                kind: kind::AUTHORIZED_FILE,
                id: file_id::BLACKLIST,
                payload,
                files: &files,
                payload_dir,
            };
            publish(data_dir, &net, p, &common)
        }
    }
}

/// The payload naming torrent `t`, and the metainfo file that goes with it.
fn torrent_payload(t: metainfo_file::Torrent) -> (Payload, Vec<(String, Vec<u8>)>) {
    (
        Payload::Torrent {
            ih: t.info_hash,
            size: t.total_size,
        },
        vec![(TORRENT_FILE.to_string(), t.bytes)],
    )
}

/// What to publish: the record's slot and payload, and the files that go with it.
pub(super) struct Publication<'a> {
    pub(super) kind: u16,
    pub(super) id: u32,
    pub(super) payload: Payload,
    pub(super) files: &'a [(String, Vec<u8>)],
    pub(super) payload_dir: Option<&'a Path>,
}

pub(super) fn publish(
    data_dir: Option<&Path>,
    net: &NetworkDir,
    p: Publication<'_>,
    common: &Common,
) -> anyhow::Result<ExitCode> {
    let Publication {
        kind,
        id,
        payload,
        files,
        payload_dir,
    } = p;
    let tag = net.bundle().network();
    let version = match common.version {
        Some(v) => v,
        None => net.next_version((kind, id))?,
    };
    let name = SystemName::new(tag, kind, id, version);
    let role: Role = name
        .class()
        .governing_role()
        .context("no role signs this kind")?;
    let key_files = if common.keys.is_empty() {
        let trust = net.trust()?;
        let need = trust.current_set(role).map_or(1, |(_, s)| s.sign()) as usize;
        let files: Vec<PathBuf> = current_key_files(net, role)?
            .into_iter()
            .take(need)
            .collect();
        if files.is_empty() {
            bail!(
                "no key file of role {role} in {}; pass --key",
                net.root().display()
            );
        }
        files
    } else {
        common.keys.clone()
    };
    let keys = load_keys(&key_files, &common.passphrase)?;
    let record = Record::new(name, now(), payload)?;
    let outcome = net.publish(record, &keys, files, payload_dir, now())?;
    print_outcome(&outcome);
    if common.push {
        push_outcome(data_dir, &outcome)?;
    }
    Ok(ExitCode::SUCCESS)
}

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
