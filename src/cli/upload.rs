//! `swarmsite upload`, `swarmsite uploads` and `swarmsite intake` (a node, with
//! `swarmsite node`'s options, that opens every upload).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::shared::duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use swarmsite_node::control;
use swarmsite_node::datadir::DataDir;
use swarmsite_node::name::Role;
use swarmsite_node::upload::IntakeConfig;

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// Files and folders to upload, together, as one sealed container.
    #[arg(required = true, value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// Keep watching the upload until the intake receipts it.
    #[arg(long)]
    follow: bool,
    /// Print the queue entry as JSON.
    #[arg(long)]
    json: bool,
}

fn fetch_list(info: &control::ControlInfo) -> anyhow::Result<Value> {
    let body = control::client::request(info, "GET", "/api/uploads", None)?;
    serde_json::from_str(&body).context("the upload list is not JSON")
}

fn find_entry<'a>(list: &'a Value, token: &str) -> Option<&'a Value> {
    list["entries"]
        .as_array()?
        .iter()
        .find(|e| e["token"].as_str() == Some(token))
}

fn describe(e: &Value) -> String {
    let state = e["state"].as_str().unwrap_or("?");
    let when = |k: &str| e[k].as_u64().map(|ms| super::shared::show_time(ms / 1000));
    match state {
        "waiting" => format!(
            "waiting; next hop at {}",
            when("next_hop_ms").unwrap_or_else(|| "?".into())
        ),
        "receipted" => format!(
            "receipted by the intake at {}",
            when("receipted_ms").unwrap_or_else(|| "?".into())
        ),
        "sent" => "handed on along the stem".into(),
        other => other.into(),
    }
}

pub fn upload(args: UploadArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let paths: Vec<PathBuf> = args
        .paths
        .iter()
        .map(|p| p.canonicalize().with_context(|| format!("{}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    let body = serde_json::json!({ "paths": paths }).to_string();
    let reply = control::client::request(&info, "POST", "/api/uploads", Some(&body))?;
    let packing: Value = serde_json::from_str(&reply).context("the node's answer is not JSON")?;
    let token = packing["token"]
        .as_str()
        .context("the node's answer has no token")?
        .to_string();
    let total = packing["input_bytes"].as_u64().unwrap_or(0);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("packing {bar:30} {bytes}/{total_bytes} {msg}")
            .expect("template"),
    );
    let entry = loop {
        let list = fetch_list(&info)?;
        if let Some(e) = find_entry(&list, &token) {
            break e.clone();
        }
        let p = list["packing"].as_array().and_then(|a| {
            a.iter()
                .find(|p| p["token"].as_str() == Some(token.as_str()))
        });
        match p {
            Some(p) => {
                if let Some(err) = p["error"].as_str() {
                    bar.abandon();
                    bail!("{err}");
                }
                bar.set_position(p["packed_bytes"].as_u64().unwrap_or(0));
            }
            None => bail!("the node lost the upload while packing it (did it restart?)"),
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        println!(
            "queued upload {}: {} bytes sealed, holding {}",
            entry["ih"].as_str().unwrap_or("?"),
            entry["size"],
            entry["label"].as_str().unwrap_or("?")
        );
        println!("  {}", describe(&entry));
    }
    if args.follow {
        let mut last = describe(&entry);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let list = fetch_list(&info)?;
            let Some(e) = find_entry(&list, &token) else {
                bail!("the upload left the queue");
            };
            let now = describe(e);
            if now != last {
                println!("  {now}");
                last = now;
            }
            if e["state"] == "receipted" {
                break;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct UploadsArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// `swarmsite uploads`: the queue of the running node; `*` marks your own uploads.
pub fn list(args: UploadsArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let list = fetch_list(&info)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} of {} bytes used by uploads; {} refused{}",
        list["used_bytes"],
        list["quota_bytes"],
        list["refused"],
        list["last_refusal"]
            .as_str()
            .map(|r| format!(" (last: {r})"))
            .unwrap_or_default()
    );
    for p in list["packing"].as_array().into_iter().flatten() {
        println!(
            "* packing {} ({}/{} bytes){}",
            p["label"].as_str().unwrap_or("?"),
            p["packed_bytes"],
            p["input_bytes"],
            p["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    for e in list["entries"].as_array().into_iter().flatten() {
        println!(
            "{} {} {:>12} {}{}",
            if e["originated"] == true { "*" } else { " " },
            e["ih"].as_str().unwrap_or("?"),
            e["size"],
            describe(e),
            e["label"]
                .as_str()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct IntakeArgs {
    #[command(flatten)]
    node: super::node::NodeArgs,
    /// A private key of the intake role (encrypted PKCS#8, as `keys init-network` and
    /// `keys rotate` write them); repeat it to open uploads sealed before a rotation.
    /// It stays encrypted on disk and is decrypted in memory only.
    #[arg(long = "key", required = true, value_name = "KEY.pem")]
    keys: Vec<PathBuf>,
    /// A private key of the documents role: it signs the receipts.
    #[arg(long, value_name = "KEY.pem")]
    signer: PathBuf,
    /// Where opened uploads go, one folder per upload (default: <data>/intake).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// How often new receipts are published.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    receipt_interval: Duration,
}

/// `swarmsite intake`: a node that holds the intake key, opens every upload it hears
/// of and publishes receipts for them.
pub fn intake(args: IntakeArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let out = args.out.clone().unwrap_or_else(|| dd.root().join("intake"));
    let passphrase = args.node.passphrase.clone();
    let (mut cfg, control) = super::node::config(args.node, data_dir)?;
    // The node's own trust store: it follows rotations past the bundle's version 1.
    let store = swarmsite_node::store::NodeStore::open(dd.root(), cfg.bundle.network())?;
    let trust = swarmsite_node::stored::load_trust(&store.trust_path(), &cfg.bundle)?;
    let load = |path: &PathBuf| -> anyhow::Result<swarmsite_node::keys::PrivateKey> {
        let pass = passphrase.read(path)?;
        Ok(swarmsite_node::publisher::load_key(path, pass.as_bytes())?)
    };
    let mut keys = Vec::new();
    for path in &args.keys {
        let key = load(path)?;
        if !trust
            .sets(Role::INTAKE)
            .any(|s| s.get(&key.kid()).is_some())
        {
            bail!("{}: not a key of any intake key set", path.display());
        }
        keys.push(key);
    }
    let current = swarmsite_node::upload::intake_key(&trust).map(|k| k.kid());
    if !keys.iter().any(|k| Some(k.kid()) == current) {
        tracing::warn!(
            "none of the keys given is the current intake key {}: new uploads will be kept sealed",
            current.map_or("(none)".into(), |k| k.short())
        );
    }
    let signer = load(&args.signer)?;
    anyhow::ensure!(
        trust
            .current_set(Role::DOCUMENTS)
            .is_some_and(|(_, set)| set.get(&signer.kid()).is_some()),
        "{}: not a key of the documents role's current key set",
        args.signer.display()
    );
    swarmsite_node::fsutil::create_dir(&out, 0o700)
        .with_context(|| format!("{}", out.display()))?;
    tracing::info!("intake: opened uploads go to {}", out.display());
    cfg.uploads.intake = Some(std::sync::Arc::new(IntakeConfig {
        keys,
        signer,
        out,
        receipt_interval: args.receipt_interval,
    }));
    super::node::serve(cfg, control, |_, _| async { Ok(axum::Router::new()) })
}
