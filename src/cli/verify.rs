//! `swarmsite verify`: who signed a record, and which rule accepts or refuses it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use swarmsite_node::content::{Blacklist, Notice};
use swarmsite_node::datadir::DataDir;
use swarmsite_node::metainfo_file;
use swarmsite_node::name::ObjectClass;
use swarmsite_node::publisher;
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::trust::{Refusal, TrustStore};

use super::shared::{now, show_time};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The record file (a published folder's record.rec).
    record: PathBuf,
    /// Trust this bundle (default: the data folder's bundle for the record's network,
    /// or the built-in one).
    #[arg(long, value_name = "BUNDLE.json")]
    bundle: Option<PathBuf>,
    /// Key-set rotation records to follow first: record files, or folders searched
    /// for them (e.g. a network's published/ folder). Repeatable.
    #[arg(long, value_name = "PATH")]
    chain: Vec<PathBuf>,
    /// Check that this .torrent file is the one the record names.
    #[arg(long, value_name = "FILE.torrent")]
    torrent: Option<PathBuf>,
    /// Check that this file or folder is the content the record names (needs --torrent
    /// for the torrent's name and layout).
    #[arg(long, value_name = "PATH", requires = "torrent")]
    content: Option<PathBuf>,
}

pub fn run(args: VerifyArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.record).with_context(|| format!("{}", args.record.display()))?;
    let record = match Record::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            println!("REFUSED (malformed): {}: {e}", args.record.display());
            return Ok(ExitCode::from(1));
        }
    };
    describe(&record);

    let bundle = match &args.bundle {
        Some(path) => swarmsite_node::stored::read_bundle(path)
            .with_context(|| format!("{}", path.display()))?,
        None => DataDir::resolve(data_dir)?.bundle(record.name.tag())?,
    };
    println!(
        "trusting network {} (bundle fingerprint {})",
        bundle.network(),
        bundle.fingerprint()
    );
    let mut trust = TrustStore::from_bundle(&bundle);
    if args.bundle.is_none() {
        let dd = DataDir::resolve(data_dir)?;
        if let Ok(stored) =
            swarmsite_node::stored::load_trust(&dd.trust_path(bundle.network()), &bundle)
        {
            let chain: Vec<Record> = swarmsite_node::name::Role::ALL
                .iter()
                .flat_map(|r| stored.chain_records(*r))
                .filter_map(|b| Record::decode(b).ok())
                .collect();
            trust.accept_chain(&chain, now())?;
        }
    }
    let mut chain = Vec::new();
    for path in &args.chain {
        collect_records(path, &mut chain)?;
    }
    chain.retain(|r| matches!(r.name.class(), ObjectClass::KeySet(_)) && r.name != record.name);
    if let Err(refusal) = trust.accept_chain(&chain, now()) {
        println!(
            "REFUSED ({}): a key set given with --chain: {refusal}",
            refusal.code()
        );
        return Ok(ExitCode::from(1));
    }

    for s in &record.sigs {
        println!(
            "  signature by {}: {}",
            s.kid,
            signer_role(&trust, &record, s.kid)
        );
    }
    let mut ok = match trust.check(&record, now()) {
        Ok(verdict) => {
            println!("ACCEPTED: {verdict}");
            true
        }
        Err(Refusal::NotNewer { .. })
            if matches!(record.name.class(), ObjectClass::KeySet(role)
                if trust.chain_records(role).contains(&bytes.as_slice())) =>
        {
            println!("ACCEPTED: this key set is already part of the trusted chain");
            true
        }
        Err(refusal) => {
            println!("REFUSED ({}): {refusal}", refusal.code());
            false
        }
    };
    if let Some(tpath) = &args.torrent {
        let tbytes = std::fs::read(tpath).with_context(|| format!("{}", tpath.display()))?;
        let ih =
            metainfo_file::info_hash_of(&tbytes).with_context(|| format!("{}", tpath.display()))?;
        match swarmsite_node::documents::content_ih(&record) {
            Some(want) if want == ih => {
                println!("torrent {} matches the record's ih", tpath.display())
            }
            _ => {
                println!(
                    "REFUSED (wrong-torrent): {} has info hash {}, not the record's",
                    tpath.display(),
                    hex::encode(ih)
                );
                ok = false;
            }
        }
        if let Some(content) = &args.content {
            let name = metainfo_file::name_of(&tbytes)?;
            let got = metainfo_file::make(content, &name)?.info_hash;
            if got == ih {
                println!(
                    "content {} matches the torrent, piece by piece",
                    content.display()
                );
            } else {
                println!(
                    "REFUSED (wrong-content): {} does not match the torrent",
                    content.display()
                );
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn signer_role(trust: &TrustStore, record: &Record, kid: swarmsite_node::keys::Kid) -> String {
    let Some(role) = record.name.class().governing_role() else {
        return "no role signs this kind".into();
    };
    let chain = trust.chain_records(role);
    for (i, bytes) in chain.iter().enumerate().rev() {
        let Ok(r) = Record::decode(bytes) else {
            continue;
        };
        let Some(body) = r.body() else { continue };
        let Ok(set) = swarmsite_node::keyset::KeySet::from_body(body) else {
            continue;
        };
        if let Some(pos) = set.keys().iter().position(|k| k.kid() == kid) {
            let state = if i + 1 == chain.len() {
                "current"
            } else {
                "retired"
            };
            return format!(
                "key {} of {state} key set v{} of role {role}",
                pos + 1,
                i + 1
            );
        }
    }
    format!("not a key of role {role}")
}

fn collect_records(path: &Path, out: &mut Vec<Record>) -> anyhow::Result<()> {
    if path.is_dir() {
        for e in std::fs::read_dir(path).with_context(|| format!("{}", path.display()))? {
            let p = e?.path();
            if p.is_dir() || p.file_name().is_some_and(|n| n == publisher::RECORD_FILE) {
                collect_records(&p, out)?;
            }
        }
    } else {
        out.push(publisher::read_record(path)?);
    }
    Ok(())
}

/// Prints what a record says, before any trust decision.
pub fn describe(r: &Record) {
    let n = r.name;
    println!("record {n}");
    println!(
        "  network {}, kind 0x{:04x} ({}), id {}, version {}",
        n.tag(),
        n.kind(),
        n.class(),
        n.id(),
        n.version()
    );
    println!("  time {} ({})", show_time(r.time), r.time);
    match &r.payload {
        Payload::Torrent { ih, size } => println!("  torrent {} of {size} bytes", hex::encode(ih)),
        Payload::Body(body) => {
            println!("  inline body of {} bytes", body.len());
            match n.class() {
                ObjectClass::Notice => match Notice::from_body(body) {
                    Ok(notice) => {
                        println!("  notice [{}]: {}", notice.severity.as_str(), notice.text)
                    }
                    Err(e) => println!("  notice body invalid: {e}"),
                },
                ObjectClass::Blacklist => match Blacklist::decode(body, body.len()) {
                    Ok(list) => {
                        for e in &list.entries {
                            println!(
                                "  blacklisted {} since {}: {}",
                                e.addr,
                                show_time(e.since),
                                e.reason
                            );
                        }
                    }
                    Err(e) => println!("  blacklist body invalid: {e}"),
                },
                ObjectClass::KeySet(_) => match swarmsite_node::keyset::KeySet::from_body(body) {
                    Ok(set) => {
                        let kids: Vec<String> =
                            set.keys().iter().map(|k| k.kid().short()).collect();
                        println!(
                            "  key set: threshold {}, sign {}, keys {}",
                            set.threshold(),
                            set.sign(),
                            kids.join(" ")
                        );
                    }
                    Err(e) => println!("  key set body invalid: {e}"),
                },
                ObjectClass::Document => {
                    match swarmsite_node::documents::Document::from_record(r) {
                        Ok(d) => println!(
                            "  document {:?} ({}, {}, {} bytes, torrent {}): {}",
                            d.meta.title,
                            d.meta.name,
                            d.meta.media_type,
                            d.meta.size,
                            hex::encode(d.meta.ih),
                            d.meta.description
                        ),
                        Err(e) => println!("  document body invalid: {e}"),
                    }
                }
                _ => {}
            }
        }
    }
    println!("  {} signatures", r.sigs.len());
}
