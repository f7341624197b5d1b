//! `swarmsite demo`: a throwaway network on this machine, no internet needed.
//!
//! It walks through the trust core end to end with real keys and records: create a
//! network, publish two site releases, have a fresh client verify them, refuse a
//! replay and a forgery (recorded as evidence), rotate the site keys, and show the
//! fresh client following the rotation.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use swarmsite::bundle::Site;
use swarmsite::evidence::Evidence;
use swarmsite::keys::{MIN_BITS, PrivateKey};
use swarmsite::name::{NetworkTag, Role, SystemName, kind};
use swarmsite::publisher::{self, InitOptions, NetworkDir, Outcome, TORRENT_FILE};
use swarmsite::record::{Payload, Record};
use swarmsite::trust::TrustStore;
use swarmsite::{demo_site, torrent};

use super::now;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's folder (printed at the end) instead of removing it.
    #[arg(long)]
    keep: bool,
}

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("    {spinner} {msg} ({elapsed})").expect("template"),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

fn published(outcome: Outcome) -> anyhow::Result<Record> {
    match outcome {
        Outcome::Published { record, .. } => Ok(record),
        Outcome::Draft { .. } => anyhow::bail!("unexpectedly left as a draft"),
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("swarmsite-demo-")
        .tempdir()?;
    let root = tmp.path();
    let pass = b"demo passphrase (throwaway)";
    let tag: NetworkTag = "DEMOLEAKS".parse()?;
    println!("swarmsite demo: a throwaway network in {}", root.display());

    step(
        1,
        "The publisher creates a network: 3 RSA-3072 keys for each of 6 roles, threshold 2",
    );
    let pb = spinner("generating 18 keys");
    let opts = InitOptions {
        tag,
        sites: vec![Site {
            id: 1,
            name: "demoleaks".into(),
        }],
        keys_per_role: 3,
        threshold: 2,
        sign: 1,
        bits: MIN_BITS,
        bootstrap: vec![],
    };
    let net = NetworkDir::init(&root.join("network"), &opts, pass, now())?;
    pb.finish_and_clear();
    println!("    bundle fingerprint {}", net.bundle().fingerprint());
    let site_key = |v: u32, i: u32| -> anyhow::Result<PrivateKey> {
        let path = net.root().join(format!("keys/site/v{v}/key-{i}.pem"));
        Ok(publisher::load_key(&path, pass)?)
    };

    // A fresh client: it ships only the bundle.
    let mut client = TrustStore::from_bundle(net.bundle());
    let evidence =
        swarmsite::evidence::EvidenceLog::new(root.join("client/evidence.jsonl"), 1 << 20);

    let mut releases = Vec::new();
    for version in 1..=2 {
        step(
            1 + version,
            &format!("The publisher signs release {version} of the demo site"),
        );
        let site_dir = root.join(format!("site-v{version}"));
        demo_site::write(&site_dir, version)?;
        let t = torrent::make(&site_dir, "demoleaks")?;
        let record = Record::new(
            SystemName::new(tag, kind::SITE_RELEASE, 1, version),
            now(),
            Payload::Torrent {
                ih: t.info_hash,
                size: t.total_size,
            },
        )?;
        let files = [(TORRENT_FILE.to_string(), t.bytes.clone())];
        let record =
            published(net.publish(record, &[site_key(1, 1)?], &files, Some(&site_dir), now())?)?;
        println!(
            "    {} files, {} bytes, info hash {}",
            t.files.len(),
            t.total_size,
            hex::encode(t.info_hash)
        );
        let verdict = client
            .accept_bytes(&record.encode()?, now())
            .context("client refused")?
            .1;
        println!("    client: {verdict}");
        releases.push(record);
    }

    step(
        4,
        "An attacker replays release 1 and forges a release 3 with a key of its own",
    );
    let replay = client
        .accept(&releases[0], now())
        .expect_err("replay must be refused");
    println!("    replay refused: {replay}");
    let attacker = PrivateKey::generate(MIN_BITS)?;
    let mut forged = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 3),
        now(),
        Payload::Torrent {
            ih: [0xee; 20],
            size: 666,
        },
    )?;
    forged.sign(&attacker);
    let refusal = client
        .accept(&forged, now())
        .expect_err("forgery must be refused");
    println!("    forgery refused: {refusal}");
    evidence.append(&Evidence {
        time: now(),
        peer: Some("127.0.0.66:6881".into()),
        node_id: None,
        object: Some(forged.name.to_hex()),
        reason: refusal.code().into(),
        detail: refusal.to_string(),
    })?;
    println!("    recorded as evidence in {}", evidence.path().display());

    step(
        5,
        "Key 1 of the site role is stolen: holders 2 and 3 rotate it out (2 of 3 sign)",
    );
    let pb = spinner("generating the new key");
    let kept = vec![
        publisher::load_public(&net.root().join("keys/site/v1/key-2.pub"))?,
        publisher::load_public(&net.root().join("keys/site/v1/key-3.pub"))?,
    ];
    let outcome = net.rotate(
        Role::SITE,
        1,
        kept,
        2,
        1,
        MIN_BITS,
        &[site_key(1, 2)?, site_key(1, 3)?],
        pass,
        now(),
    )?;
    pb.finish_and_clear();
    let rotation = published(outcome)?;
    println!("    client: {}", client.accept(&rotation, now())?);

    step(
        6,
        "The thief signs release 3 with the stolen key; the publisher signs it with a kept key",
    );
    let mut stolen = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 3),
        now(),
        Payload::Torrent {
            ih: [0xdd; 20],
            size: 1,
        },
    )?;
    stolen.sign(&site_key(1, 1)?);
    println!(
        "    stolen-key release refused: {}",
        client.accept(&stolen, now()).expect_err("retired key")
    );
    let site_dir = root.join("site-v3");
    demo_site::write(&site_dir, 3)?;
    let t = torrent::make(&site_dir, "demoleaks")?;
    let record = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 3),
        now(),
        Payload::Torrent {
            ih: t.info_hash,
            size: t.total_size,
        },
    )?;
    let files = [(TORRENT_FILE.to_string(), t.bytes)];
    let v3 = published(net.publish(record, &[site_key(1, 2)?], &files, Some(&site_dir), now())?)?;
    println!("    client: {}", client.accept(&v3, now())?);

    step(
        7,
        "A client installed today, shipping only version 1 of the keys, catches up",
    );
    let mut newcomer = TrustStore::from_bundle(net.bundle());
    newcomer.accept_chain(std::slice::from_ref(&rotation), now())?;
    println!("    newcomer: {}", newcomer.accept(&v3, now())?);

    println!("\nEvery step used real RSA-3072 keys, signed records and torrents.");
    println!("Serving the site from a local swarm of nodes comes with the node (issue 4).");
    if args.keep {
        let kept = tmp.keep();
        println!("demo folder kept: {}", kept.display());
    }
    Ok(ExitCode::SUCCESS)
}
