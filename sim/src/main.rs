//! `swarmsite-sim <scenario> --nodes N --seed S`: runs a scenario and prints its
//! Markdown report; plots go to `--out` (docs/sim by default).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use swarmsite_sim::scenarios::{self, Ctx};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Release propagation against log8 N and the seed article's scheme.
    Propagation,
}

#[derive(Parser)]
#[command(
    version,
    about = "Runs swarmsite's own protocol state machines on up to a million virtual nodes"
)]
struct Cli {
    scenario: Scenario,
    /// Nodes in the network (scenarios that sweep sizes run 10^3 … N).
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for the plots.
    #[arg(long, default_value = "docs/sim")]
    out: PathBuf,
    /// Skip the plots.
    #[arg(long)]
    no_plots: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.nodes < 10 || cli.nodes > 16_000_000 {
        eprintln!("error: --nodes must be between 10 and 16000000");
        return ExitCode::from(2);
    }
    let ctx = Ctx {
        nodes: cli.nodes,
        seed: cli.seed,
        out: cli.out,
        link_prefix: "sim/".into(),
        plots: !cli.no_plots,
    };
    let result = match cli.scenario {
        Scenario::Propagation => scenarios::propagation::report(&ctx),
    };
    match result {
        Ok(md) => {
            print!("{md}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
