//! `swarmsite demo`: a throwaway network on this machine, no internet needed.
//!
//! A publisher and five volunteer nodes, each on its own loopback address (127.0.0.2 to
//! 127.0.0.7), in this one process. The publisher signs release 1 of the demo site; the
//! nodes fetch it over BitTorrent from each other, check it, and serve it over HTTP.
//! Then release 2, which every node switches to, and a forged release 3 that every node
//! refuses. Ctrl-C stops everything and removes the demo's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use swarmsite_node::demo_site;
use swarmsite_node::keys::{MIN_BITS, PrivateKey};
use swarmsite_node::name::{NetworkTag, SystemName, kind};
use swarmsite_node::node::{Node, NodeConfig, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::torrents::PieceAudit;

use super::shared::now;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Volunteer nodes to start (besides the publisher's).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=50))]
    nodes: u8,
    /// Seconds to wait before publishing release 2.
    #[arg(long, default_value_t = 20)]
    update_after: u64,
    /// Exit once every node serves release 2 and has refused the forgery, instead of
    /// serving until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Keep the demo's folder instead of removing it.
    #[arg(long)]
    keep: bool,
}

const PASS: &[u8] = b"demo passphrase (throwaway)";
const HTTP_PORT: u16 = 18880;

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template"));
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Errors only, so the progress display stays readable.
    let audit = swarmsite_node::logging::init("error");
    let tmp = tempfile::Builder::new()
        .prefix("swarmsite-demo-")
        .tempdir()?;
    let root = tmp.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // Ctrl-C or SIGTERM at any moment (even while the nodes start) ends the demo here,
    // so the folder below is always removed.
    let result = rt.block_on(async {
        tokio::select! {
            r = demo(&root, &args, &audit) => r,
            _ = swarmsite_node::node::shutdown_signal() => Ok(()),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    if args.keep {
        println!("demo folder kept: {}", tmp.keep().display());
    } else {
        println!("removed {}", root.display());
    }
    result.map(|_| ExitCode::SUCCESS)
}

fn publish_release(
    net: &NetworkDir,
    root: &Path,
    version: u32,
) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let site_dir = root.join(format!("site-v{version}"));
    demo_site::write(&site_dir, version)?;
    let key = publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), PASS)?;
    let (dir, record) = net
        .publish_site(&site_dir, 1, Some(version), &[key], now())?
        .published()
        .context("release left as a draft")?;
    Ok((dir, record.encode()?))
}

/// An HTTP address on `ip`: the usual 18880 when free, else any port.
fn http_addr(ip: &str) -> SocketAddr {
    let preferred: SocketAddr = format!("{ip}:{HTTP_PORT}").parse().expect("addr");
    if std::net::TcpListener::bind(preferred).is_ok() {
        preferred
    } else {
        format!("{ip}:0").parse().expect("addr")
    }
}

fn node_config(
    root: &Path,
    net: &NetworkDir,
    ip: &str,
    peers: Vec<SocketAddr>,
    audit: &PieceAudit,
) -> NodeConfig {
    let mut cfg = NodeConfig::loopback(
        root.join(format!("node-{ip}")),
        net.bundle().clone(),
        ip.parse().expect("ip"),
    );
    cfg.http = vec![http_addr(ip)];
    cfg.peers = peers;
    cfg.pull_interval = Duration::from_secs(5);
    // The demo's network is its own three nodes: nobody else could know a newer key set.
    cfg.key_confirm_wait = Duration::from_secs(1);
    cfg.piece_audit = Some(audit.clone());
    cfg
}

fn url(h: &NodeHandle) -> String {
    h.status()
        .http
        .iter()
        .find(|p| p.bound)
        .map(|p| format!("http://{}/", p.addr))
        .unwrap_or_default()
}

/// Shows each node's progress until every one serves `version`; false on Ctrl-C.
async fn watch(handles: &[(String, NodeHandle)], version: u32) -> bool {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("  {prefix:<10} [{bar:30}] {percent:>3}% {msg}")
        .expect("template")
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = handles
        .iter()
        .map(|(name, _)| {
            let pb = multi.add(ProgressBar::new(1));
            pb.set_style(style.clone());
            pb.set_prefix(name.clone());
            pb
        })
        .collect();
    let ctrl_c = swarmsite_node::node::shutdown_signal();
    tokio::pin!(ctrl_c);
    loop {
        let mut done = true;
        for ((_, h), pb) in handles.iter().zip(&bars) {
            let s = h.status();
            if s.served_version >= Some(version) {
                pb.set_length(1);
                pb.set_position(1);
                pb.set_message(format!(
                    "serving v{} at {}",
                    s.served_version.unwrap_or(0),
                    url(h)
                ));
            } else {
                done = false;
                match &s.sync {
                    Some(sync) if sync.version >= version => {
                        pb.set_length(sync.total_bytes.max(1));
                        pb.set_position(sync.have_bytes);
                        let from = format!("from {} peers", sync.peers);
                        pb.set_message(format!(
                            "fetching v{} {}",
                            sync.version,
                            sync.error.clone().unwrap_or(from)
                        ));
                    }
                    _ => {
                        pb.set_message(format!("waiting for v{version} ({} peers)", s.peers.len()))
                    }
                }
            }
        }
        if done {
            for pb in &bars {
                pb.finish();
            }
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            _ = &mut ctrl_c => return false,
        }
    }
}

async fn demo(root: &Path, args: &DemoArgs, audit: &PieceAudit) -> anyhow::Result<()> {
    println!(
        "swarmsite demo: a throwaway network in {}\n",
        root.display()
    );
    let pb =
        spinner("The publisher creates network DEMOLEAKS: 3 RSA-3072 keys for each of 6 roles");
    let tag: NetworkTag = "DEMOLEAKS".parse()?;
    let opts = InitOptions::one_site(tag, "demoleaks");
    let net = NetworkDir::init(&root.join("network"), &opts, PASS, now())?;
    pb.finish_with_message(format!(
        "network DEMOLEAKS created, bundle fingerprint {}",
        &net.bundle().fingerprint()[..16]
    ));

    // The publisher's node, then volunteers that each know the publisher and the
    // volunteer started before them.
    let publisher = Node::start(node_config(root, &net, "127.0.0.2", vec![], audit))
        .await
        .context("publisher node")?;
    let mut wires = vec![
        publisher
            .handle()
            .status()
            .wire_addr
            .parse::<SocketAddr>()?,
    ];
    let mut nodes = Vec::new();
    for i in 0..args.nodes {
        let ip = format!("127.0.0.{}", 3 + i);
        let peers = vec![wires[0], *wires.last().expect("one")];
        let node = Node::start(node_config(root, &net, &ip, peers, audit))
            .await
            .with_context(|| format!("node {ip}"))?;
        wires.push(node.handle().status().wire_addr.parse()?);
        nodes.push((ip, node));
    }
    let handles: Vec<(String, NodeHandle)> = nodes
        .iter()
        .map(|(ip, n)| (ip.clone(), n.handle()))
        .collect();
    println!(
        "started the publisher's node on 127.0.0.2 and {} volunteer nodes on 127.0.0.3-{}",
        args.nodes,
        2 + args.nodes
    );

    let outcome = run_scenario(&net, root, &publisher.handle(), &handles, args).await;
    println!("\nstopping…");
    for (_, n) in nodes {
        n.shutdown().await;
    }
    publisher.shutdown().await;
    outcome
}

async fn run_scenario(
    net: &NetworkDir,
    root: &Path,
    publisher: &NodeHandle,
    handles: &[(String, NodeHandle)],
    args: &DemoArgs,
) -> anyhow::Result<()> {
    println!("\nThe publisher signs release 1 of the demo site and hands it to its node:");
    let (dir, record) = publish_release(net, root, 1)?;
    publisher
        .submit(record, Some(dir))
        .await
        .map_err(anyhow::Error::msg)?;
    if !watch(handles, 1).await {
        return Ok(());
    }
    println!(
        "\nEvery node checked the publisher's signature and the torrent, and serves the site."
    );
    println!("Open one in a browser, e.g. {}", url(&handles[0].1));

    println!(
        "\nRelease 2 follows in {} s (Ctrl-C to stop)…",
        args.update_after
    );
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(args.update_after)) => {}
        _ = swarmsite_node::node::shutdown_signal() => return Ok(()),
    }
    println!("The publisher signs release 2 (one page changed):");
    let (dir, record) = publish_release(net, root, 2)?;
    publisher
        .submit(record, Some(dir))
        .await
        .map_err(anyhow::Error::msg)?;
    if !watch(handles, 2).await {
        return Ok(());
    }

    println!(
        "\nAn attacker signs a release 3 with a key of its own and hands it to {}:",
        handles[0].0
    );
    let attacker = PrivateKey::generate(MIN_BITS)?;
    let mut forged = Record::new(
        SystemName::new(net.bundle().network(), kind::SITE_RELEASE, 1, 3),
        now(),
        Payload::Torrent {
            ih: [0xee; 20],
            size: 666,
        },
    )?;
    forged.sign(&attacker);
    match handles[0].1.submit(forged.encode()?, None).await {
        Ok(_) => anyhow::bail!("the forgery was accepted"),
        Err(refusal) => println!("  refused: {refusal}"),
    }
    println!(
        "  recorded as evidence in {}",
        handles[0].1.data_dir().join("evidence.jsonl").display()
    );
    let still: Vec<Option<u32>> = handles
        .iter()
        .map(|(_, h)| h.status().served_version)
        .collect();
    println!(
        "  every node still serves release 2: {}",
        still.iter().all(|v| *v == Some(2))
    );
    if args.once {
        return Ok(());
    }
    println!("\nThe nodes keep serving; Ctrl-C to stop and clean up.");
    for (ip, h) in handles {
        println!("  {ip}: {}", url(h));
    }
    swarmsite_node::node::shutdown_signal().await;
    Ok(())
}
