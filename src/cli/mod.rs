//! Command-line definitions and dispatch.

mod bundle;
mod demo;
mod dns;
mod documents;
mod keys;
mod node;
mod passphrase;
mod publish;
mod reach;
mod shared;
mod update;
mod upload;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Serve a signed website from volunteers' computers over BitTorrent.
#[derive(Parser, Debug)]
#[command(name = "swarmsite", version, about)]
pub struct Cli {
    /// The node's data folder (trust stores, bundles, evidence).
    #[arg(long, global = true, env = "SWARMSITE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Publisher keys: create a network, rotate key sets, sign and combine drafts.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign and store a new record (site release, notice, file, blacklist).
    #[command(subcommand)]
    Publish(publish::PublishCommand),
    /// Check a record against a network's keys and say who signed it and why it is
    /// accepted or refused.
    Verify(verify::VerifyArgs),
    /// Network bundles this client trusts: list, show, add, remove.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Run a node: fetch the signed site over BitTorrent, keep it current, serve it.
    Node(Box<node::NodeArgs>),
    /// Run a node with the DNS front: a PowerDNS remote backend that answers the site's
    /// domain with the nearest live volunteers.
    Dns(Box<dns::DnsArgs>),
    /// Ask the running node (of this data folder) how it is doing.
    Status(node::StatusArgs),
    /// Print the link that opens the running node's dashboard in a browser.
    Dashboard,
    /// What this node refused, and from whom (the local evidence log).
    Evidence(node::EvidenceArgs),
    /// The published documents this node knows and keeps; set its storage quota.
    Documents(documents::DocumentsArgs),
    /// The signed notices this node received.
    Notices(documents::NoticesArgs),
    /// New versions of swarmsite the running node learned from the swarm; install one.
    Update(update::UpdateArgs),
    /// Upload files anonymously: seal them for the intake and queue them on the running
    /// node, which passes them on hop by hop after a random delay.
    Upload(upload::UploadArgs),
    /// The running node's upload queue (your own uploads marked with *).
    Uploads(upload::UploadsArgs),
    /// Run the intake: a node holding the intake key that opens every upload and
    /// publishes signed receipts for them.
    Intake(Box<upload::IntakeArgs>),
    /// A throwaway network on this machine: publish, verify, rotate, refuse a forgery.
    Demo(demo::DemoArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Absolute from here on: librqbit takes files (a blacklist) by `file://` URL, and a
    // restart after an update may run from another working folder.
    let data_dir = cli
        .data_dir
        .map(|d| anyhow::Context::with_context(std::path::absolute(&d), || d.display().to_string()))
        .transpose()?;
    match cli.command {
        Command::Keys(cmd) => keys::run(cmd, data_dir.as_deref()),
        Command::Publish(cmd) => publish::run(cmd, data_dir.as_deref()),
        Command::Verify(args) => verify::run(args, data_dir.as_deref()),
        Command::Bundle(cmd) => bundle::run(cmd, data_dir.as_deref()),
        Command::Node(args) => node::run(*args, data_dir.as_deref()),
        Command::Dns(args) => dns::run(*args, data_dir.as_deref()),
        Command::Status(args) => node::status(args, data_dir.as_deref()),
        Command::Dashboard => node::dashboard(data_dir.as_deref()),
        Command::Evidence(args) => node::evidence(args, data_dir.as_deref()),
        Command::Documents(args) => documents::documents(args, data_dir.as_deref()),
        Command::Notices(args) => documents::notices(args, data_dir.as_deref()),
        Command::Update(args) => update::run(args, data_dir.as_deref()),
        Command::Upload(args) => upload::upload(args, data_dir.as_deref()),
        Command::Uploads(args) => upload::list(args, data_dir.as_deref()),
        Command::Intake(args) => upload::intake(*args, data_dir.as_deref()),
        Command::Demo(args) => demo::run(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
