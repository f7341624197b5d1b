//! `swarmsite documents` and `swarmsite notices`: what the running node keeps of the
//! archive and which signed notices it received, through its control API.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use swarmsite_node::control;
use swarmsite_node::datadir::DataDir;

#[derive(Args, Debug)]
pub struct DocumentsArgs {
    /// Set the disk space for copies of documents (e.g. 10GiB, 500MB; 0 keeps records
    /// only). The node evicts what no longer fits at once, and says what and why.
    #[arg(long, value_name = "SIZE")]
    quota: Option<bytesize::ByteSize>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct NoticesArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// Bytes for people: `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

pub fn documents(args: DocumentsArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let body = match args.quota {
        Some(q) => {
            let req = serde_json::json!({ "bytes": q.as_u64() }).to_string();
            control::client::request(&info, "POST", "/api/documents/quota", Some(&req))?
        }
        None => control::client::request(&info, "GET", "/api/documents", None)?,
    };
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&body).context("documents are not JSON")?;
    let docs = v["documents"].as_array().cloned().unwrap_or_default();
    println!(
        "{} documents known; {} of {} quota used",
        docs.len(),
        size(v["used"].as_u64().unwrap_or(0)),
        size(v["quota"].as_u64().unwrap_or(0))
    );
    for d in &docs {
        let state = match d["state"].as_str().unwrap_or("?") {
            _ if d["unusable"].is_string() => "unusable".to_string(),
            "held" | "own" if d["seeding"].as_bool() == Some(true) => "held, seeding".into(),
            "held" | "own" => "held".into(),
            "fetching" => format!(
                "fetching {:.0}%",
                d["have_bytes"].as_f64().unwrap_or(0.0) * 100.0
                    / d["size"].as_f64().unwrap_or(1.0).max(1.0)
            ),
            _ => "missing".into(),
        };
        println!(
            "{:>5} v{:<3} {:<16} {:>10}  ratio {:.2}  seen at {} other nodes  {} — {}",
            d["id"],
            d["version"].as_u64().unwrap_or(0),
            state,
            size(d["size"].as_u64().unwrap_or(0)),
            d["ratio"].as_f64().unwrap_or(0.0),
            d["seen"],
            sanitize(d["name"].as_str().unwrap_or("?")),
            sanitize(d["title"].as_str().unwrap_or("")),
        );
        if let Some(why) = d["unusable"].as_str() {
            println!("        unusable: {}", sanitize(why));
        }
    }
    for e in v["evicted"].as_array().into_iter().flatten() {
        println!(
            "evicted {} (document {} v{}, {}) at {}: {}",
            sanitize(e["name"].as_str().unwrap_or("?")),
            e["id"],
            e["version"],
            size(e["size"].as_u64().unwrap_or(0)),
            super::shared::show_time(e["at"].as_u64().unwrap_or(0)),
            e["reason"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Signed text shown in a terminal: no control characters (they could rewrite the screen).
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn notices(args: NoticesArgs, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    let info = control::client::info(dd.root())?;
    let body = control::client::request(&info, "GET", "/api/notices", None)?;
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&body).context("notices are not JSON")?;
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no signed notice received");
    }
    for n in &list {
        println!(
            "{} [{}] (channel {}, v{}) {}",
            super::shared::show_time(n["time"].as_u64().unwrap_or(0)),
            n["severity"].as_str().unwrap_or("?"),
            n["id"],
            n["version"],
            n["text"]
                .as_str()
                .map(|t| t.replace('\n', "\n    "))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
