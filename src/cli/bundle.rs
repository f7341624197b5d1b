//! `swarmsite bundle …`: which networks this client trusts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use swarmsite_node::bundle::Bundle;
use swarmsite_node::datadir::{DataDir, builtin_bundles};
use swarmsite_node::name::NetworkTag;

#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// The networks this client trusts (built in and added).
    List,
    /// Trust another network: copy its bundle into the data folder.
    Add { file: PathBuf },
    /// Stop trusting an added network.
    Remove { network: NetworkTag },
}

pub fn run(cmd: BundleCommand, data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dd = DataDir::resolve(data_dir)?;
    match cmd {
        BundleCommand::List => {
            let builtin: Vec<NetworkTag> = builtin_bundles().iter().map(Bundle::network).collect();
            for b in dd.bundles()? {
                let origin = if builtin.contains(&b.network()) {
                    "built in"
                } else {
                    "added"
                };
                let sites: Vec<&str> = b.sites().iter().map(|s| s.name.as_str()).collect();
                println!(
                    "{} ({origin}) sites {} fingerprint {}",
                    b.network(),
                    sites.join(","),
                    b.fingerprint()
                );
            }
        }
        BundleCommand::Add { file } => {
            let b = swarmsite_node::stored::read_bundle(&file)
                .with_context(|| format!("{}", file.display()))?;
            let path = dd.add_bundle(&b)?;
            println!(
                "trusting network {} (fingerprint {}) from {}",
                b.network(),
                b.fingerprint(),
                path.display()
            );
        }
        BundleCommand::Remove { network } => {
            dd.remove_bundle(network)?;
            println!("no longer trusting added network {network}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
