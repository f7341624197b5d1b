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
    /// Time until nodes refuse a forger, forged traffic meanwhile.
    Blacklist,
    /// Time for an upload to reach the nodes after fluff.
    Upload,
    /// Precision and recall of naming an upload's originator, by spy share and stem
    /// probability.
    Anonymity,
    /// Convergence after mass departure, under churn, by pull alone, after a partition.
    Churn,
    /// DHT and prober load per node per hour in steady state.
    Load,
    /// Reference for docs/PERFORMANCE.md: the bare event queue through 16 × N events.
    Engine,
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
    /// Churn only: run this case (1 mass departure, 2 steady churn, 3 pull alone,
    /// 4 partition, 5 partition with churn); repeat for several. Default: all.
    #[arg(long = "case")]
    cases: Vec<usize>,
}

/// glibc's malloc backs its heap with transparent huge pages only when this tunable
/// says so (the kernel's default is `madvise`). A million nodes' state is gigabytes
/// touched at random, and with 4 KiB pages nearly every access also misses the TLB:
/// huge pages save about a quarter of the CPU time at 10^5 nodes. Tunables are read at
/// start-up only, so the simulator starts itself again with it set. The report does
/// not change.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn with_huge_pages() {
    use std::os::unix::process::CommandExt;
    const TUNABLE: &str = "glibc.malloc.hugetlb=1";
    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if current.contains("glibc.malloc.hugetlb") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let tunables = if current.is_empty() {
        TUNABLE.to_string()
    } else {
        format!("{current}:{TUNABLE}")
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    // Not started again: run as we are, only slower.
    eprintln!("note: running without huge pages ({err})");
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    with_huge_pages();
    let cli = Cli::parse();
    if cli.nodes < 10 || cli.nodes > 16_000_000 {
        eprintln!("error: --nodes must be between 10 and 16000000");
        return ExitCode::from(2);
    }
    if !cli.cases.is_empty() && !matches!(cli.scenario, Scenario::Churn) {
        eprintln!("error: --case applies to the churn scenario only");
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
        Scenario::Blacklist => scenarios::blacklist::report(&ctx),
        Scenario::Upload => scenarios::upload::report(&ctx),
        Scenario::Anonymity => scenarios::anonymity::report(&ctx),
        Scenario::Churn => scenarios::churn::report(&ctx, &cli.cases),
        Scenario::Load => scenarios::load::report(&ctx),
        Scenario::Engine => {
            let events = 16 * ctx.nodes as u64;
            let took = swarmsite_sim::engine::reference(events, ctx.nodes as u64, ctx.seed);
            Ok(format!(
                "bare event queue: {events} events, {} in flight, {:.2} s ({:.1} million events/s)\n",
                ctx.nodes,
                took.as_secs_f64(),
                events as f64 / took.as_secs_f64() / 1e6
            ))
        }
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
