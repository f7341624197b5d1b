//! `swarmsite dns`: a node with the DNS front beside it (the PowerDNS remote backend
//! that steers browsers to the nearest live volunteers; docs/DNS.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use swarmsite_node::dns::{DnsFront, Zone};

#[derive(Args, Debug)]
pub struct DnsArgs {
    /// The zone file: zone, SOA, NS, steered names, TTLs, prober settings (docs/DNS.md).
    #[arg(long, value_name = "ZONE.toml")]
    zone: PathBuf,
    /// Where PowerDNS reaches the backend (the url of its remote-connection-string).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8053")]
    listen: SocketAddr,
    /// Also answer PowerDNS's unix-socket connector at this path
    /// (`remote-connection-string=unix:path=PATH`): faster than HTTP (docs/DNS.md).
    #[arg(long, value_name = "PATH")]
    unix: Option<PathBuf>,
    /// Check the zone file, print what it serves, and exit.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    node: super::node::NodeArgs,
}

pub fn run(args: DnsArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let zone = swarmsite_node::stored::read_zone(&args.zone)?;
    if args.check {
        print_zone(&zone);
        return Ok(ExitCode::SUCCESS);
    }
    let (cfg, control) = super::node::config(args.node, data_dir)?;
    let (listen, unix) = (args.listen, args.unix);
    super::node::serve(cfg, control, move |node, cancel| async move {
        let front = DnsFront::start(node, zone, listen, cancel.clone())
            .await
            .context("starting the DNS front")?;
        if let Some(path) = &unix {
            front
                .listen_unix(path, cancel)
                .context("starting the DNS front")?;
            tracing::info!("DNS backend also on unix:path={}", path.display());
        }
        let s = front.status();
        tracing::info!(
            "DNS backend for {} on http://{}/dns",
            s.zone,
            front.listen_addr()
        );
        Ok(Arc::new(front).control_routes())
    })
}

fn print_zone(z: &Zone) {
    println!("zone {} (serial {})", z.apex, z.soa.serial);
    println!("  SOA {}", z.soa.content());
    for ns in &z.ns {
        println!("  NS {ns} (ttl {})", z.ns_ttl);
    }
    println!(
        "  steered: {} -> up to {} nearest healthy nodes, ttl {} (fallback ttl {})",
        z.steer.join(", "),
        z.answers,
        z.ttl,
        z.fallback_ttl
    );
    for r in &z.records {
        println!("  {} {} {} (ttl {})", r.name, r.qtype, r.content, r.ttl);
    }
    let p = &z.probe;
    println!(
        "  probe: every {} ms (jitter {}), ports {:?}, timeout {:?}, {} at once, {} seeds",
        p.settings.interval_ms,
        p.settings.jitter,
        p.ports,
        p.timeout,
        p.settings.concurrency,
        p.seeds.len()
    );
}
