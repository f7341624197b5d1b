//! The scenarios of docs/SIMULATION.md. Each returns Markdown (tables naming the
//! command that reproduces them) and writes its plots under the output folder.

pub mod anonymity;
pub mod blacklist;
pub mod churn;
pub mod load;
pub mod propagation;
pub mod upload;

use std::path::PathBuf;

use crate::engine::T0;
use crate::records::{RecId, Records, SharedRecords};
use crate::report::{Plot, Series, line_plot};
use crate::world::{World, WorldConfig};

/// What every scenario is given.
pub struct Ctx {
    /// Largest network size to run.
    pub nodes: usize,
    pub seed: u64,
    /// Where plots go (`docs/sim`).
    pub out: PathBuf,
    /// How the plots are named in the Markdown (relative to docs/SIMULATION.md).
    pub link_prefix: String,
    /// Write plots (off in tests).
    pub plots: bool,
}

impl Ctx {
    /// The command line that reproduces `scenario` with this context.
    pub fn command(&self, scenario: &str) -> String {
        format!(
            "cargo run --release -p swarmsite-sim -- {scenario} --nodes {} --seed {}",
            self.nodes, self.seed
        )
    }

    /// Draws `series` into `file` in the output folder and returns the Markdown that
    /// shows it (nothing when plots are off).
    pub fn figure(&self, file: &str, plot: &Plot, series: &[Series]) -> anyhow::Result<String> {
        if !self.plots {
            return Ok(String::new());
        }
        line_plot(&self.out.join(file), plot, series)?;
        Ok(format!("\n![{}]({}{file})\n", plot.title, self.link_prefix))
    }
}

/// A warm network of `n` nodes with the node's defaults, following the site and the
/// blacklist, every node holding release 1 and connected: the starting point of most
/// scenarios. Returns the world and release 1.
pub fn warm_network(n: usize, seed: u64, adjust: impl FnOnce(&mut WorldConfig)) -> (World, RecId) {
    let records = Records::new(T0 / 1000);
    let mut cfg = WorldConfig::node_defaults(n, seed, &records);
    cfg.track_site_and_blacklist();
    adjust(&mut cfg);
    let records: SharedRecords = records.shared();
    let v1 = records
        .borrow_mut()
        .release(1, T0 / 1000 - 86_400, 50 << 20);
    let mut w = World::new(cfg, records);
    w.preload(v1);
    w.build_overlay();
    (w, v1)
}

/// Sizes 10^3, 10^4, … up to `max` (and `max` itself when it is not a power of ten).
pub fn sizes(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut n = 1000;
    while n <= max {
        v.push(n);
        n *= 10;
    }
    if v.last() != Some(&max) && max > 0 {
        v.push(max);
    }
    v
}
