//! `swarmsite keys …`: the publisher's key ceremony.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use swarmsite_node::bencode::{self, Fields, Limits, Value};
use swarmsite_node::bundle::{Bundle, Site};
use swarmsite_node::keys::{Kid, MIN_BITS, PrivateKey};
use swarmsite_node::name::{NetworkTag, Role};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir, Outcome};
use swarmsite_node::record::{Record, Signature};

use super::passphrase::PassphraseArgs;
use super::shared::{NetworkArg, now};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a network: 3 keys per role (threshold 2), encrypted key files, the bundle.
    InitNetwork {
        #[command(flatten)]
        network: NetworkArg,
        /// Network tag: exactly 9 printable ASCII characters.
        #[arg(long, default_value = "WIKILEAKS")]
        tag: NetworkTag,
        /// A site the network carries, as NAME or NAME:ID (repeatable; default: the tag
        /// in lower case, id 1).
        #[arg(long = "site", value_name = "NAME[:ID]")]
        sites: Vec<String>,
        /// Keys per role.
        #[arg(long, default_value_t = 3)]
        keys: usize,
        /// Signatures of the current set needed to rotate to the next.
        #[arg(long, default_value_t = 2)]
        threshold: u32,
        /// Signatures needed on content.
        #[arg(long, default_value_t = 1)]
        sign: u32,
        /// Signatures needed on a software release (nodes may install it): two by
        /// default, so one stolen key cannot ship software.
        #[arg(long, default_value_t = 2)]
        software_sign: u32,
        /// RSA modulus size (3072 or 4096).
        #[arg(long, default_value_t = MIN_BITS)]
        bits: usize,
        /// A DHT bootstrap hint (HOST:PORT) to put in the bundle (repeatable).
        #[arg(long = "bootstrap", value_name = "HOST:PORT")]
        bootstrap: Vec<String>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Make the next key set of ROLE, signed by keys of the current one. With fewer
    /// signers than the threshold it is left as a draft for `sign` and `combine`.
    Rotate {
        /// site, blacklist, documents, software, intake, notices (or 1..15).
        role: Role,
        #[command(flatten)]
        network: NetworkArg,
        /// Current-set key file that signs the rotation (repeatable; default: every
        /// current key file found in the network folder, up to the threshold).
        #[arg(long = "signer", value_name = "KEY.pem")]
        signers: Vec<PathBuf>,
        /// Only sign with the keys given by --signer, even if that is not enough.
        #[arg(long)]
        only_given: bool,
        /// Public key (.pub) to carry over into the new set (repeatable).
        #[arg(long = "keep", value_name = "KEY.pub")]
        keep: Vec<PathBuf>,
        /// Number of fresh keys (default: enough for 3 keys in all).
        #[arg(long = "new")]
        new_keys: Option<usize>,
        /// Threshold of the new set (default: the current one's).
        #[arg(long)]
        threshold: Option<u32>,
        /// Sign count of the new set (default: the current one's).
        #[arg(long)]
        sign: Option<u32>,
        #[arg(long, default_value_t = MIN_BITS)]
        bits: usize,
        /// Once signed by enough holders, hand the new key set to the node running with
        /// this data folder, which sends it to the network.
        #[arg(long)]
        push: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Sign a draft with one key; writes a detached signature file for `combine`.
    Sign {
        /// The draft folder (or its record.rec).
        draft: PathBuf,
        /// The key file to sign with.
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// Where to write the signature (default: next to the draft).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Add signature files to a draft; once it has enough, it is published.
    Combine {
        /// The draft folder.
        draft: PathBuf,
        /// Signature files made by `keys sign`.
        #[arg(required = true)]
        signatures: Vec<PathBuf>,
        #[command(flatten)]
        network: NetworkArg,
        /// Once it has enough signatures, hand the record (and its content) to the node
        /// running with this data folder, which sends it to the network.
        #[arg(long)]
        push: bool,
    },
    /// Describe a key (.pub or .pem), a bundle (.json), a record or a signature file.
    Show { file: PathBuf },
}

pub fn run(cmd: KeysCommand, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::InitNetwork {
            network,
            tag,
            sites,
            keys,
            threshold,
            sign,
            software_sign,
            bits,
            bootstrap,
            passphrase,
        } => {
            let sites = parse_sites(&sites, tag)?;
            if software_sign as usize > keys {
                bail!(
                    "--software-sign {software_sign} needs at least that many keys per role (--keys {keys}); give --software-sign {keys} or more keys"
                );
            }
            let opts = InitOptions {
                tag,
                sites,
                keys_per_role: keys,
                threshold,
                sign,
                software_sign,
                bits,
                bootstrap,
            };
            if network.network_dir.exists()
                && std::fs::read_dir(&network.network_dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true)
            {
                bail!(
                    "{} exists and is not empty; a new network needs a new folder",
                    network.network_dir.display()
                );
            }
            let pass = passphrase.new_passphrase()?;
            eprintln!("generating {} RSA-{bits} keys…", keys * Role::ALL.len());
            let net = NetworkDir::init(&network.network_dir, &opts, pass.as_bytes(), now())
                .with_context(|| {
                    format!("creating network in {}", network.network_dir.display())
                })?;
            let b = net.bundle();
            println!(
                "network {} created in {}",
                b.network(),
                network.network_dir.display()
            );
            println!(
                "bundle: {} (fingerprint {})",
                network.network_dir.join("bundle.json").display(),
                b.fingerprint()
            );
            for (role, (_, set)) in b.keysets() {
                println!(
                    "  role {role}: {} keys, threshold {}, sign {} — keys/{}/v1/",
                    set.keys().len(),
                    set.threshold(),
                    set.sign(),
                    role.label()
                );
            }
            println!(
                "Give each key file to its holder and keep them offline; ship bundle.json to clients."
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            role,
            network,
            signers,
            only_given,
            keep,
            new_keys,
            threshold,
            sign,
            bits,
            push,
            passphrase,
        } => {
            let net = NetworkDir::open(&network.network_dir)?;
            let trust = net.trust()?;
            let (current, set) = trust.current_set(role).context("role has no key set")?;
            let kept = keep
                .iter()
                .map(|p| publisher::load_public(p))
                .collect::<Result<Vec<_>, _>>()?;
            let new_count = new_keys.unwrap_or(3usize.saturating_sub(kept.len()));
            let threshold = threshold.unwrap_or(set.threshold());
            let sign = sign.unwrap_or(set.sign());
            let signer_files =
                if signers.is_empty() || !only_given && signers.len() < set.threshold() as usize {
                    let mut files = signers.clone();
                    for f in current_key_files(&net, role)? {
                        if files.len() >= set.threshold() as usize {
                            break;
                        }
                        if !files.contains(&f) {
                            files.push(f);
                        }
                    }
                    files
                } else {
                    signers
                };
            let keys = load_keys(&signer_files, &passphrase)?;
            let pass = passphrase.new_passphrase()?;
            eprintln!(
                "generating {new_count} RSA-{bits} keys for key set v{} of role {role}…",
                current + 1
            );
            let rotation = net.rotate(
                role,
                new_count,
                kept,
                threshold,
                sign,
                bits,
                &keys,
                pass.as_bytes(),
                now(),
            )?;
            if !rotation.left_out.is_empty() {
                eprintln!(
                    "warning: {} records of role {role} do not fit in the key set's list of current records; nodes drop what the retired keys signed of them, so publish them again with the new keys:",
                    rotation.left_out.len()
                );
                for name in &rotation.left_out {
                    eprintln!("  {} v{} ({})", name.class(), name.version(), name.to_hex());
                }
            }
            let outcome = rotation.outcome;
            print_outcome(&outcome);
            if push {
                push_outcome(data_dir, &outcome)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Sign {
            draft,
            key,
            output,
            passphrase,
        } => {
            let record_path = record_path_of(&draft);
            let record = publisher::read_record(&record_path)?;
            let key = load_keys(std::slice::from_ref(&key), &passphrase)?.remove(0);
            let sig = key.sign(&record.signed_message());
            let file = bencode::encode(&bencode::dict([
                ("kid", Value::Bytes(key.kid().0.to_vec())),
                ("name", Value::Bytes(record.name.as_bytes().to_vec())),
                ("sig", Value::Bytes(sig)),
            ]));
            let out = output.unwrap_or_else(|| {
                let dir = if draft.is_dir() {
                    draft.clone()
                } else {
                    draft.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                dir.join(format!("{}.sig", key.kid().short()))
            });
            swarmsite_node::fsutil::write_atomic(&out, &file, swarmsite_node::fsutil::PUBLIC)
                .with_context(|| format!("{}", out.display()))?;
            println!(
                "signature by {} written to {}",
                key.kid().short(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Combine {
            draft,
            signatures,
            network,
            push,
        } => {
            let net = NetworkDir::open(&network.network_dir)?;
            let record = publisher::read_record(&record_path_of(&draft))?;
            let mut sigs = Vec::new();
            for path in &signatures {
                let (name, sig) = read_signature(path)?;
                if name != *record.name.as_bytes() {
                    bail!("{}: signs another record than the draft", path.display());
                }
                sigs.push(sig);
            }
            let dir = if draft.is_dir() {
                draft
            } else {
                draft.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let outcome = net.combine(&dir, &sigs, now())?;
            print_outcome(&outcome);
            if push {
                push_outcome(data_dir, &outcome)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Show { file } => show(&file),
    }
}

fn parse_sites(specs: &[String], tag: NetworkTag) -> anyhow::Result<Vec<Site>> {
    if specs.is_empty() {
        return Ok(vec![Site {
            id: 1,
            name: tag.as_str().to_ascii_lowercase(),
        }]);
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| match s.split_once(':') {
            Some((name, id)) => Ok(Site {
                name: name.into(),
                id: id
                    .parse()
                    .with_context(|| format!("--site {s}: id must be a number"))?,
            }),
            None => Ok(Site {
                name: s.clone(),
                id: i as u32 + 1,
            }),
        })
        .collect()
}

/// Private key files in the network folder whose public half is in `role`'s current set.
pub fn current_key_files(net: &NetworkDir, role: Role) -> anyhow::Result<Vec<PathBuf>> {
    let trust = net.trust()?;
    let (_, set) = trust.current_set(role).context("role has no key set")?;
    let role_dir = net.root().join("keys").join(role.label());
    let mut found = Vec::new();
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&role_dir)
        .with_context(|| format!("{}", role_dir.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    for dir in versions {
        for pem in publisher::pem_files(&dir) {
            let public = pem.with_extension("pub");
            if let Ok(key) = publisher::load_public(&public)
                && set.get(&key.kid()).is_some()
            {
                found.push(pem);
            }
        }
    }
    Ok(found)
}

pub fn load_keys(
    files: &[PathBuf],
    passphrase: &PassphraseArgs,
) -> anyhow::Result<Vec<PrivateKey>> {
    files
        .iter()
        .map(|f| {
            let pass = passphrase.read(f)?;
            Ok(publisher::load_key(f, pass.as_bytes())?)
        })
        .collect()
}

fn record_path_of(draft: &Path) -> PathBuf {
    if draft.is_dir() {
        draft.join(publisher::RECORD_FILE)
    } else {
        draft.to_path_buf()
    }
}

fn read_signature(path: &Path) -> anyhow::Result<([u8; 20], Signature)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let parse = || -> Result<([u8; 20], Signature), String> {
        let mut f =
            Fields::new(bencode::decode(&bytes, Limits::RECORD).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let kid = Kid::from_slice(&f.bytes("kid").map_err(|e| e.to_string())?)
            .ok_or("kid is not 32 bytes")?;
        let name: [u8; 20] = f
            .bytes("name")
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "name is not 20 bytes")?;
        let sig = f.bytes("sig").map_err(|e| e.to_string())?;
        f.finish().map_err(|e| e.to_string())?;
        Ok((name, Signature { kid, sig }))
    };
    parse().map_err(|why| anyhow::anyhow!("{}: not a signature file: {why}", path.display()))
}

/// `--push`: hands a published record to the local node; a draft waits for signatures.
pub fn push_outcome(data_dir: Option<&Path>, outcome: &Outcome) -> anyhow::Result<()> {
    match outcome {
        Outcome::Published { dir, .. } => super::shared::push(data_dir, dir),
        Outcome::Draft { .. } => {
            println!("not pushed: it needs more signatures first");
            Ok(())
        }
    }
}

pub fn print_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Published {
            dir,
            record,
            verdict,
        } => {
            println!(
                "published {:?} ({}) in {}",
                record.name,
                record.name,
                dir.display()
            );
            println!("  {verdict}");
        }
        Outcome::Draft {
            dir,
            record,
            have,
            need,
        } => {
            println!(
                "draft {:?} in {}: {have} of {need} signatures",
                record.name,
                dir.display()
            );
            println!(
                "  each remaining holder runs `swarmsite keys sign {} --key KEY.pem`,",
                dir.display()
            );
            println!(
                "  then `swarmsite keys combine {} SIG…` publishes it",
                dir.display()
            );
        }
    }
}

fn show(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
        let public = file.with_extension("pub");
        match publisher::load_public(&public) {
            Ok(k) => println!(
                "encrypted private key; public half {}: {} bits, kid {}",
                public.display(),
                k.bits(),
                k.kid()
            ),
            Err(_) => println!(
                "encrypted private key (its .pub is missing; kid unknown without the passphrase)"
            ),
        }
    } else if text.trim_start().starts_with('{') {
        let b = Bundle::parse(&text).with_context(|| format!("{}", file.display()))?;
        println!(
            "bundle of network {} (fingerprint {})",
            b.network(),
            b.fingerprint()
        );
        for s in b.sites() {
            println!("  site {} (id {})", s.name, s.id);
        }
        for (role, (_, set)) in b.keysets() {
            let kids: Vec<String> = set.keys().iter().map(|k| k.kid().short()).collect();
            println!(
                "  role {role}: threshold {}, sign {}, keys {}",
                set.threshold(),
                set.sign(),
                kids.join(" ")
            );
        }
        for h in b.bootstrap() {
            println!("  bootstrap {h}");
        }
    } else if let Ok(k) = publisher::load_public(file) {
        println!("public key: {} bits, kid {}", k.bits(), k.kid());
    } else if let Ok(r) = Record::decode(&bytes) {
        super::verify::describe(&r);
    } else if let Ok((name, sig)) = read_signature(file) {
        println!("signature by {} over record {}", sig.kid, hex::encode(name));
    } else {
        bail!(
            "{}: not a key, bundle, record or signature file",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
