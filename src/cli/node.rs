//! `swarmsite node` and `swarmsite status`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use swarmsite_node::control;
use swarmsite_node::datadir::DataDir;
use swarmsite_node::name::NetworkTag;
use swarmsite_node::node::{Node, NodeConfig, NodeHandle};
use swarmsite_node::settings::Settings;
use swarmsite_node::upload::UploadConfig;
use tokio_util::sync::CancellationToken;

use super::shared::duration;

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Network to join, by tag (its bundle is built in or added with `bundle add`).
    /// [default: the saved setting, else WIKILEAKS]
    #[arg(long)]
    tag: Option<NetworkTag>,
    /// Use this bundle file instead of a known network.
    #[arg(long, value_name = "BUNDLE.json")]
    bundle: Option<PathBuf>,
    /// Site to serve (bundle site id; default: the first).
    #[arg(long)]
    site: Option<u32>,
    /// Wire protocol listen address [default: the saved setting, else 0.0.0.0:6880].
    #[arg(long)]
    wire: Option<SocketAddr>,
    /// BitTorrent listen address [default: the saved setting, else 0.0.0.0:6881].
    #[arg(long)]
    bt: Option<SocketAddr>,
    /// HTTP listen address (repeatable; default: the saved setting, else port 80, and
    /// 18880 as the fallback).
    #[arg(long = "http", value_name = "ADDR")]
    http: Vec<SocketAddr>,
    /// Control API address (loopback only; port 0 picks one, see <data>/control.json)
    /// [default: the saved setting, else 127.0.0.1:0].
    #[arg(long)]
    control: Option<SocketAddr>,
    /// A wire peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// A BitTorrent peer to ask for every torrent (repeatable): a plain client or
    /// seedbox that holds the content, e.g. the publisher's.
    #[arg(long = "bt-peer", value_name = "ADDR")]
    bt_peers: Vec<SocketAddr>,
    /// Ignore pushed records and learn new ones by pull alone.
    #[arg(long)]
    no_push: bool,
    /// Seconds between pull rounds.
    #[arg(long, default_value_t = 60)]
    pull_interval: u64,
    /// Seconds after the first peer that content is taken although fewer than three
    /// peer addresses confirmed its key set current (a local test swarm waits less).
    #[arg(long, default_value_t = 20)]
    key_confirm_wait: u64,
    /// Do not use librqbit's DHT (content peers then come from wire peers only).
    #[arg(long)]
    no_content_dht: bool,
    /// Rendezvous DHT (UDP) listen address [default: the wire address's].
    #[arg(long)]
    rendezvous: Option<SocketAddr>,
    /// Run without the rendezvous DHT (wire peers only).
    #[arg(long)]
    no_rendezvous: bool,
    /// Bootstrap the rendezvous DHT from this HOST:PORT instead of the public routers
    /// (repeatable).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    dht_bootstrap: Vec<String>,
    /// Bootstrap the rendezvous DHT from wire peers only (a private or test network).
    #[arg(long)]
    no_dht_bootstrap: bool,
    /// Turn evidence into new signed blacklist versions, signing with this key of the
    /// blacklist role (its passphrase: --passphrase-file or $SWARMSITE_PASSPHRASE).
    #[arg(long, value_name = "KEY.pem")]
    auto_blacklist: Option<PathBuf>,
    /// Evidence entries from one address before auto-blacklisting lists it.
    #[arg(long, default_value_t = swarmsite_node::node::AutoBlacklist::DEFAULT_THRESHOLD)]
    auto_blacklist_threshold: u32,
    /// Seconds between auto-blacklist batches.
    #[arg(long, default_value_t = swarmsite_node::node::AutoBlacklist::DEFAULT_INTERVAL.as_secs())]
    auto_blacklist_interval: u64,
    #[command(flatten)]
    pub(super) passphrase: super::passphrase::PassphraseArgs,
    /// Cap BitTorrent downloads at this many bytes per second.
    #[arg(long, value_name = "BYTES_PER_SEC")]
    download_limit: Option<u32>,
    /// Cap BitTorrent uploads at this many bytes per second.
    #[arg(long, value_name = "BYTES_PER_SEC")]
    upload_limit: Option<u32>,
    /// Disk space for copies of published documents, e.g. 10GiB, 500MB; 0 keeps their
    /// records only. Default: the last value set (`swarmsite documents --quota`), else
    /// 10 GiB.
    #[arg(long, value_name = "SIZE")]
    documents_quota: Option<bytesize::ByteSize>,
    #[command(flatten)]
    reach: super::reach::ReachArgs,
    /// Install new versions of swarmsite as soon as they arrived through the swarm and
    /// were checked, then restart into them (same arguments). Without it the node
    /// fetches, checks and seeds them, and waits for `swarmsite update --install`.
    #[arg(long)]
    auto_update: bool,
    #[command(flatten)]
    uploads: UploadFlags,
}

pub fn run(args: NodeArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (cfg, control) = config(args, data_dir)?;
    serve(cfg, control, |_, _| async { Ok(axum::Router::new()) })
}

/// The node's settings from its arguments, and its control API address; starts the
/// logging.
pub(super) fn config(
    args: NodeArgs,
    data_dir: Option<&Path>,
) -> anyhow::Result<(NodeConfig, SocketAddr)> {
    let audit = swarmsite_node::logging::init("info,librqbit=warn,librqbit_dht=warn");
    // Found before anything can replace it: an update restarts this very path.
    let exe = std::env::current_exe().context("finding this program's binary")?;
    let installation = swarmsite_node::update::Installation::detect(&exe);
    let dd = DataDir::resolve(data_dir)?;
    // Saved settings (the dashboard's Settings page) first, then the flags given.
    let mut settings = Settings::load(dd.root())?;
    if let Some(tag) = args.tag {
        settings.network = Some(tag.to_string());
    }
    let bundle = match &args.bundle {
        Some(p) => {
            swarmsite_node::stored::read_bundle(p).with_context(|| format!("{}", p.display()))?
        }
        None => dd.bundle(settings.network_tag())?,
    };
    let mut cfg = settings.node_config_for(dd.root(), bundle.clone())?;
    cfg.piece_audit = Some(audit);
    if let Some(site) = args.site {
        anyhow::ensure!(
            bundle.site(site).is_some(),
            "the bundle of {} has no site {site}",
            bundle.network()
        );
        cfg.site = site;
    }
    if let Some(w) = args.wire {
        cfg.wire_listen = w;
        cfg.rendezvous = Some(w);
    }
    if let Some(b) = args.bt {
        cfg.bt_listen = b;
    }
    if !args.http.is_empty() {
        cfg.http = args.http;
    }
    cfg.peers = args.peers;
    cfg.bt_peers = args.bt_peers;
    cfg.accept_push = !args.no_push;
    cfg.pull_interval = Duration::from_secs(args.pull_interval.max(1));
    cfg.key_confirm_wait = Duration::from_secs(args.key_confirm_wait);
    if let Some(r) = args.rendezvous {
        cfg.rendezvous = Some(r);
    }
    if args.no_rendezvous {
        cfg.rendezvous = None;
    }
    cfg.rendezvous_bootstrap = if args.no_dht_bootstrap {
        Vec::new()
    } else if !args.dht_bootstrap.is_empty() {
        args.dht_bootstrap.clone()
    } else {
        swarmsite_node::rendezvous::PUBLIC_ROUTERS
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    if let Some(path) = &args.auto_blacklist {
        let pass = args.passphrase.read(path)?;
        let key = swarmsite_node::publisher::load_key(path, pass.as_bytes())?;
        // The node's own trust store: it follows rotations past the bundle's version 1.
        let store = swarmsite_node::store::NodeStore::open(dd.root(), bundle.network())?;
        let trust = swarmsite_node::stored::load_trust(&store.trust_path(), &bundle)?;
        let role = swarmsite_node::name::Role::BLACKLIST;
        anyhow::ensure!(
            trust
                .current_set(role)
                .is_some_and(|(_, set)| set.get(&key.kid()).is_some()),
            "{}: not a key of the blacklist role's current key set",
            path.display()
        );
        cfg.auto_blacklist = Some(std::sync::Arc::new(swarmsite_node::node::AutoBlacklist {
            key,
            threshold: args.auto_blacklist_threshold.max(1),
            interval: Duration::from_secs(args.auto_blacklist_interval.max(1)),
        }));
    }
    cfg.documents_quota = args.documents_quota.map(|q| q.as_u64());
    cfg.download_limit = args.download_limit.or(cfg.download_limit);
    cfg.upload_limit = args.upload_limit.or(cfg.upload_limit);
    cfg.reach = args.reach.config();
    cfg.update.auto_install = args.auto_update;
    cfg.update.installation = Some(installation);
    if args.no_content_dht {
        cfg.content_dht = None;
    }
    args.uploads.apply(&mut cfg.uploads)?;
    Ok((cfg, args.control.unwrap_or_else(|| settings.control_addr())))
}

/// Runs a node until SIGINT or SIGTERM, with its control API on `control`. `beside`
/// starts what runs next to the node (the DNS front) and returns its control routes.
/// After an installed update it shuts down and runs the new binary with the same
/// arguments.
pub(super) fn serve<F, Fut>(
    cfg: NodeConfig,
    control: SocketAddr,
    beside: F,
) -> anyhow::Result<ExitCode>
where
    F: FnOnce(NodeHandle, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<axum::Router>>,
{
    let exe = cfg
        .update
        .installation
        .as_ref()
        .map(|i| i.exe().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let restart = rt.block_on(async move {
        let node = Node::start(cfg).await.context("starting the node")?;
        let handle = node.handle();
        let cancel = CancellationToken::new();
        let routes = match beside(handle.clone(), cancel.clone()).await {
            Ok(r) => r,
            Err(e) => {
                node.shutdown().await;
                return Err(e);
            }
        };
        let ctl = control::serve_with(handle.clone(), control, cancel.clone(), routes)
            .await
            .context("control API")?;
        let s = handle.status();
        for h in &s.http {
            match &h.error {
                None => tracing::info!("serving {} on http://{}/", s.site_name, h.addr),
                Some(e) => tracing::warn!("not serving on {}: {e}", h.addr),
            }
        }
        tracing::info!("dashboard: run `swarmsite dashboard` for its link");
        tracing::info!(
            "wire {} · BitTorrent {} · control {ctl}",
            s.wire_addr,
            s.bt_addr.clone().unwrap_or_default()
        );
        let restart = tokio::select! {
            _ = swarmsite_node::node::shutdown_signal() => false,
            _ = handle.restart_requested() => true,
        };
        tracing::info!("shutting down");
        cancel.cancel();
        node.shutdown().await;
        if restart {
            // The install's answer goes out before this process is replaced.
            control::wait_stopped(handle.data_dir(), Duration::from_secs(5)).await;
        }
        anyhow::Ok(restart)
    })?;
    let Some(exe) = exe.filter(|_| restart) else {
        return Ok(ExitCode::SUCCESS);
    };
    rt.shutdown_timeout(Duration::from_secs(10));
    tracing::info!("restarting: {} with the same arguments", exe.display());
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let err = swarmsite_node::update::install::restart(&exe, &args);
    Err(err).with_context(|| format!("restarting into {}", exe.display()))
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub fn status(args: StatusArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let body = control::client::request(&info, "GET", "/api/status", None)?;
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let s: serde_json::Value = serde_json::from_str(&body).context("status is not JSON")?;
    print_status(&s);
    // A node run by `swarmsite dns` also has its DNS front to show.
    if let Ok(dns) = control::client::request(&info, "GET", "/api/dns", None)
        && let Ok(d) = serde_json::from_str::<serde_json::Value>(&dns)
    {
        let p = &d["prober"];
        println!(
            "dns {} on {}: answering {} node(s){} · {} healthy of {} candidates, newest v{} · {} probes, {} calls",
            d["zone"].as_str().unwrap_or("?"),
            d["listen"].as_str().unwrap_or("?"),
            d["answering"].as_array().map_or(0, Vec::len),
            if d["fallback"].as_bool() == Some(true) {
                " (fallback)"
            } else {
                ""
            },
            p["healthy"],
            p["candidates"],
            p["newest"],
            p["probes"],
            d["calls"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The dashboard link: the token rides in the fragment, which browsers never send to a
/// server (nor in a Referer); the page moves it into session storage and out of the
/// address bar at once.
pub fn dashboard(data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    println!("{}/#token={}", info.url, info.token);
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &serde_json::Value) {
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    println!(
        "network {} · site {} (id {})",
        get("network").as_str().unwrap_or("?"),
        get("site_name").as_str().unwrap_or("?"),
        get("site_id")
    );
    match get("served_version").as_u64() {
        Some(v) => println!(
            "serving release v{v} (published {})",
            get("served_time")
                .as_u64()
                .map(super::shared::show_time)
                .unwrap_or_default()
        ),
        None => println!("no verified release yet"),
    }
    if let Some(sync) = s.get("sync").filter(|v| !v.is_null()) {
        let have = sync["have_bytes"].as_u64().unwrap_or(0);
        let total = sync["total_bytes"].as_u64().unwrap_or(0).max(1);
        println!(
            "syncing v{}: {:.0}% of {} bytes from {} peers{}",
            sync["version"],
            have as f64 * 100.0 / total as f64,
            total,
            sync["peers"],
            sync["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    for h in get("http").as_array().into_iter().flatten() {
        match h["error"].as_str() {
            None => println!("http://{}/ serving", h["addr"].as_str().unwrap_or("?")),
            Some(e) => println!("http {} not bound: {e}", h["addr"].as_str().unwrap_or("?")),
        }
    }
    println!(
        "wire {} · BitTorrent {}",
        get("wire_addr").as_str().unwrap_or("?"),
        get("bt_addr").as_str().unwrap_or("-")
    );
    let peers = get("peers");
    let peers = peers.as_array().map_or(0, Vec::len);
    println!(
        "{peers} peers · {} requests · {} bytes served · {} evidence entries",
        get("requests"),
        get("bytes_served"),
        get("evidence")
    );
    for r in get("records").as_array().into_iter().flatten() {
        println!(
            "  holds {} v{}",
            r["class"].as_str().unwrap_or("?"),
            r["version"]
        );
    }
    if let Some(n) = get("notice").as_str() {
        println!("notice: {n}");
    }
    let d = get("documents");
    println!(
        "documents: {} known, {} held, {} fetching; {} of {} quota used{}",
        d["known"],
        d["held"],
        d["fetching"],
        super::documents::size(d["used"].as_u64().unwrap_or(0)),
        super::documents::size(d["quota"].as_u64().unwrap_or(0)),
        match d["evicted"].as_u64() {
            Some(n) if n > 0 => format!("; {n} evicted (see `swarmsite documents`)"),
            _ => String::new(),
        }
    );
    super::reach::print(&get("reach"));
    if let Some(u) = s.get("update").filter(|u| !u.is_null()) {
        super::update::print_update(u);
    }
    if let Some(b) = s.get("blacklist").filter(|b| !b.is_null()) {
        let entries = b["entries"].as_array().map_or(0, Vec::len);
        println!(
            "blacklist v{}: {entries} entries, {} connections refused{}",
            b["version"],
            b["refused"],
            if b["in_bittorrent"].as_bool() == Some(true) {
                ", in force in BitTorrent too"
            } else {
                ""
            }
        );
        for e in b["entries"].as_array().into_iter().flatten() {
            println!(
                "  {} {}",
                e["addr"].as_str().unwrap_or("?"),
                e["reason"].as_str().unwrap_or("")
            );
        }
        let closed: Vec<&str> = b["closed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        if !closed.is_empty() {
            println!("  closed or refused: {}", closed.join(", "));
        }
    }
}

#[derive(Args, Debug)]
pub struct EvidenceArgs {
    /// Show only the last N entries.
    #[arg(long, default_value_t = 50)]
    last: usize,
    /// Print JSON lines as stored.
    #[arg(long)]
    json: bool,
}

pub fn evidence(args: EvidenceArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let log = dd.evidence();
    let all = log
        .read_all()
        .with_context(|| format!("{}", log.path().display()))?;
    let skip = all.len().saturating_sub(args.last);
    if all.is_empty() {
        println!("no evidence recorded in {}", log.path().display());
    }
    for e in &all[skip..] {
        if args.json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            println!(
                "{} {} {}: {}{}",
                super::shared::show_time(e.time),
                e.peer.as_deref().unwrap_or("this node"),
                e.reason,
                e.detail,
                e.object
                    .as_ref()
                    .map(|o| format!(" (object {o})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

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

/// Upload settings of a node (`swarmsite node`, `swarmsite intake`).
#[derive(Args, Debug, Clone)]
pub struct UploadFlags {
    /// Bytes of upload containers this node keeps at most (stem copies and caches).
    #[arg(long, value_name = "BYTES", default_value_t = UploadConfig::default().quota)]
    upload_quota: u64,
    /// Largest upload container this node makes or takes, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = UploadConfig::default().max_size)]
    upload_max: u64,
    /// Before an upload made here takes its first hop, it waits a random time in this
    /// range (hides when it was made; at most 4 days).
    #[arg(long, value_name = "MIN..MAX", default_value = "0s..1day")]
    stem_wait: Span,
    /// Each stem hop waits a random time in this range.
    #[arg(long, value_name = "MIN..MAX", default_value = "0s..2h")]
    stem_delay: Span,
    /// Chance that a node receiving an upload on the stem passes it on (else fluffs).
    #[arg(long, value_name = "P", default_value_t = 0.8)]
    relay_probability: f64,
    /// A stem hop that failed is tried again after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    stem_retry: Duration,
    /// An upload handed on and not seen in fluff within this range is fluffed here.
    #[arg(long, value_name = "MIN..MAX", default_value = "36h..48h")]
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
        let max = swarmsite_node::upload::container::DEFAULT_MAX_SIZE;
        if self.upload_max > max {
            bail!("--upload-max cannot exceed the protocol's {max} bytes");
        }
        cfg.quota = self.upload_quota;
        cfg.max_size = self.upload_max;
        if self.stem_wait.1 > 4 * 24 * 3600 * 1000 {
            bail!("--stem-wait cannot exceed 4 days (SPEC §7: delivery stays bounded)");
        }
        cfg.stem.originator_wait_ms = (self.stem_wait.0, self.stem_wait.1);
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
