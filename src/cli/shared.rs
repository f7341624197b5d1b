//! What several commands share: the clock and times for people, the network folder
//! argument, and handing a published folder to the node running on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use swarmsite_node::control;
use swarmsite_node::datadir::DataDir;

/// Unix seconds now.
pub fn now() -> u64 {
    swarmsite_node::clock::unix_secs()
}

/// A unix time for people.
pub fn show_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
}

/// Where the publisher's network folder is: `--network`, `$SWARMSITE_NETWORK`.
#[derive(clap::Args, Debug, Clone)]
pub struct NetworkArg {
    /// The publisher's network folder (made by `keys init-network`).
    #[arg(long = "network", env = "SWARMSITE_NETWORK", value_name = "DIR")]
    pub network_dir: PathBuf,
}

/// Hands a published folder to the local node (`publish … --push`).
pub fn push(data_dir: Option<&Path>, dir: &Path) -> anyhow::Result<()> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{}", dir.display()))?;
    let body = serde_json::json!({ "dir": dir }).to_string();
    let reply = control::client::request(&info, "POST", "/api/publish", Some(&body))?;
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_default();
    println!(
        "pushed to the local node: {}",
        v["accepted"].as_str().unwrap_or(&reply)
    );
    Ok(())
}

/// A duration for people (`30s`, `4days`), as clap parses options.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}
