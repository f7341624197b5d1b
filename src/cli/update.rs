//! `swarmsite update`: what the local node knows of new versions; install one now.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use swarmsite_node::control;
use swarmsite_node::datadir::DataDir;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Install the downloaded and checked release now; the node then restarts into it.
    #[arg(long)]
    install: bool,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: UpdateArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let body = if args.install {
        control::client::request(&info, "POST", "/api/update/install", Some("{}"))?
    } else {
        control::client::request(&info, "GET", "/api/update", None)?
    };
    if args.json {
        println!("{body}");
    } else {
        let s: serde_json::Value = serde_json::from_str(&body).context("not JSON")?;
        print_update(&s);
        if args.install {
            println!("installed; the node is restarting into it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints an update status (`GET /api/update`, the status's `update`).
pub fn print_update(u: &serde_json::Value) {
    let text = |k: &str| u[k].as_str().unwrap_or("").to_string();
    let phase = text("phase");
    let newest = u["newest"].as_str();
    let what = match (phase.as_str(), newest) {
        ("up-to-date", _) => "up to date".to_string(),
        ("downloading", Some(v)) => format!("downloading {v}"),
        ("ready", Some(v)) if u["installable"].as_bool() == Some(true) => format!(
            "{v} ready to install ({})",
            if u["auto_install"].as_bool() == Some(true) {
                "installing it"
            } else {
                "swarmsite update --install"
            }
        ),
        ("ready", Some(v)) => format!("{v} downloaded"),
        ("installing", Some(v)) => format!("installing {v}"),
        ("restarting", Some(v)) => format!("{v} installed, restarting"),
        ("unavailable", Some(v)) => format!("{v} out, not for this installation"),
        ("failed", Some(v)) => format!("{v} failed"),
        (p, _) => p.to_string(),
    };
    println!(
        "software: running {} on {} ({}) · {what}",
        text("running"),
        text("platform"),
        u["installation"].as_str().map_or_else(
            || format!("{} packages", text("package_kind")),
            str::to_string
        )
    );
    if let Some(p) = u.get("progress").filter(|p| !p.is_null())
        && phase == "downloading"
    {
        let have = p["have_bytes"].as_u64().unwrap_or(0);
        let total = p["total_bytes"].as_u64().unwrap_or(0).max(1);
        println!(
            "  {:.0}% of {total} bytes from {} peers",
            have as f64 * 100.0 / total as f64,
            p["peers"]
        );
    }
    if let Some(p) = u.get("package").filter(|p| !p.is_null()) {
        println!(
            "  package {} {} ({} bytes, sha256 {}), seeded",
            p["version"].as_str().unwrap_or("?"),
            p["path"].as_str().unwrap_or("?"),
            p["size"],
            p["sha256"].as_str().unwrap_or("?")
        );
    }
    if let Some(notes) = u["notes"].as_str().filter(|n| !n.is_empty()) {
        println!("  release notes of {}:", newest.unwrap_or("?"));
        for line in notes.lines() {
            println!("    {line}");
        }
    }
    if let Some(e) = u["error"].as_str() {
        println!("  {e}");
    }
}
