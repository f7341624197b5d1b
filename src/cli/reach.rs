//! `swarmsite node`'s reachability options, and their lines in `swarmsite status`.

use clap::Args;
use serde_json::Value;
use swarmsite_node::reach::{ReachConfig, UpnpConfig};

#[derive(Args, Debug)]
pub struct ReachArgs {
    /// Do not ask the home router (UPnP IGD) to forward the node's ports.
    #[arg(long)]
    no_upnp: bool,
    /// Lease asked for each UPnP port mapping, in seconds; renewed at half of it.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(2..=604_800))]
    upnp_lease: u64,
    /// Do not announce the site on the local network (mDNS: `<site>.local`).
    #[arg(long)]
    no_mdns: bool,
}

impl ReachArgs {
    pub fn config(&self) -> ReachConfig {
        ReachConfig {
            upnp: (!self.no_upnp).then(|| UpnpConfig {
                lease: std::time::Duration::from_secs(self.upnp_lease),
                ..UpnpConfig::default()
            }),
            mdns: !self.no_mdns,
        }
    }
}

/// Prints the `reach` part of a status.
pub fn print(r: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let time = |v: &Value| {
        v.as_u64()
            .map(super::shared::show_time)
            .unwrap_or_else(|| "-".into())
    };
    let u = &r["upnp"];
    let state = u["state"].as_str().unwrap_or("off");
    let mut line = format!("UPnP: {state}");
    if let Some(g) = u["gateway"].as_str() {
        line.push_str(&format!(" · router {g}"));
    }
    if let Some(e) = u["external_ip"].as_str() {
        line.push_str(&format!(" · external address {e}"));
    }
    if !u["next_attempt"].is_null() {
        line.push_str(&format!(" · next attempt {}", time(&u["next_attempt"])));
    }
    println!("{line}");
    let external = u["external_ip"].as_str().unwrap_or("?");
    for m in u["mappings"].as_array().into_iter().flatten() {
        match m["external_port"].as_u64() {
            Some(p) => println!(
                "  {} {} {external}:{p} → {}{}",
                text(&m["service"]),
                text(&m["protocol"]),
                text(&m["internal"]),
                if m["expires"].is_null() {
                    " (permanent)".to_string()
                } else {
                    format!(" (lease until {})", time(&m["expires"]))
                }
            ),
            None => println!(
                "  {} {} → {} not mapped{}",
                text(&m["service"]),
                text(&m["protocol"]),
                text(&m["internal"]),
                m["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        }
    }
    for k in ["error", "warning"] {
        if let Some(e) = u[k].as_str() {
            println!("  {k}: {e}");
        }
    }

    let m = &r["mdns"];
    let mut line = format!("mDNS: {}", m["state"].as_str().unwrap_or("off"));
    if let Some(url) = m["url"].as_str() {
        line.push_str(&format!(" · {url}"));
    }
    let addrs: Vec<&str> = m["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !addrs.is_empty() {
        line.push_str(&format!(" on {}", addrs.join(", ")));
    }
    println!("{line}");
    if let Some(e) = m["error"].as_str() {
        println!("  {e}");
    }
}
