//! `swarmsite upload`, `swarmsite uploads` and `swarmsite intake`, and the upload
//! settings of `swarmsite node`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use swarmsite::control;
use swarmsite::datadir::DataDir;
use swarmsite::name::Role;
use swarmsite::upload::{IntakeConfig, UploadConfig};

/// A range of durations, `MIN..MAX` (e.g. `0s..4days`, `100ms..500ms`).
#[derive(Clone, Copy, Debug)]
pub struct Span(u64, u64);

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once("..")
            .ok_or_else(|| format!("{s:?}: write MIN..MAX, e.g. 0s..4days"))?;
        let ms = |t: &str| {
            humantime::parse_duration(t.trim())
                .map(|d| d.as_millis() as u64)
                .map_err(|e| format!("{t:?}: {e}"))
        };
        let (lo, hi) = (ms(a)?, ms(b)?);
        if lo > hi {
            return Err(format!("{s:?}: the minimum is above the maximum"));
        }
        Ok(Span(lo, hi))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// Upload settings of a node (`swarmsite node`, `swarmsite intake`).
#[derive(Args, Debug, Clone)]
pub struct UploadFlags {
    /// Bytes of upload containers this node keeps at most (stem copies and caches).
    #[arg(long, value_name = "BYTES", default_value_t = UploadConfig::default().quota)]
    upload_quota: u64,
    /// Largest upload container this node makes or takes, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = UploadConfig::default().max_size)]
    upload_max: u64,
    /// Each stem hop waits a random time in this range.
    #[arg(long, value_name = "MIN..MAX", default_value = "0s..4days")]
    stem_delay: Span,
    /// Chance that a node receiving an upload on the stem passes it on (else fluffs).
    #[arg(long, value_name = "P", default_value_t = 0.8)]
    relay_probability: f64,
    /// A stem hop that failed is tried again after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    stem_retry: Duration,
    /// An upload handed on and not seen in fluff within this range is fluffed here.
    #[arg(long, value_name = "MIN..MAX", default_value = "60days..90days")]
    stem_failsafe: Span,
    /// Container bytes per second taken from one peer on the stem (bursts of eight
    /// seconds' worth, at most 8 MiB).
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = 1 << 20)]
    upload_rate: u64,
    /// Keep a copy this long after the intake receipted it (first to go when full).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    keep_receipted: Duration,
}

impl UploadFlags {
    pub fn apply(&self, cfg: &mut UploadConfig) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.relay_probability) {
            bail!("--relay-probability must be between 0 and 1");
        }
        let max = swarmsite::upload::container::DEFAULT_MAX_SIZE;
        if self.upload_max > max {
            bail!("--upload-max cannot exceed the protocol's {max} bytes");
        }
        cfg.quota = self.upload_quota;
        cfg.max_size = self.upload_max;
        cfg.stem.delay_ms = (self.stem_delay.0, self.stem_delay.1);
        cfg.stem.relay_probability = self.relay_probability;
        cfg.stem.retry_ms = self.stem_retry.as_millis() as u64;
        cfg.stem.failsafe_ms = (self.stem_failsafe.0, self.stem_failsafe.1);
        cfg.transfer.bytes_per_sec = self.upload_rate.max(1);
        // A burst of eight seconds' worth, at most the default.
        cfg.transfer.burst_bytes = self
            .upload_rate
            .saturating_mul(8)
            .min(cfg.transfer.burst_bytes);
        cfg.keep_receipted = self.keep_receipted;
        Ok(())
    }
}

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
    let when = |k: &str| e[k].as_u64().map(|ms| super::show_time(ms / 1000));
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
    let store = swarmsite::store::NodeStore::open(dd.root(), cfg.bundle.network())?;
    let trust = swarmsite::stored::load_trust(&store.trust_path(), &cfg.bundle)?;
    let load = |path: &PathBuf| -> anyhow::Result<swarmsite::keys::PrivateKey> {
        let pass = passphrase.read(path)?;
        Ok(swarmsite::publisher::load_key(path, pass.as_bytes())?)
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
    let current = swarmsite::upload::intake_key(&trust).map(|k| k.kid());
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
    swarmsite::fsutil::create_dir(&out, 0o700).with_context(|| format!("{}", out.display()))?;
    tracing::info!("intake: opened uploads go to {}", out.display());
    cfg.uploads.intake = Some(std::sync::Arc::new(IntakeConfig {
        keys,
        signer,
        out,
        receipt_interval: args.receipt_interval,
    }));
    super::node::serve(cfg, control, |_, _| async { Ok(axum::Router::new()) })
}
