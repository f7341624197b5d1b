//! Upload spread after fluff (SPEC §7): the fluffing node seeds the container and sends
//! `up {ih}` to up to 8 wire peers; each fetches it by BitTorrent, caches it and passes
//! `up` on to 8 peers not known to have it. How long until 99 % of the nodes hold it?
//!
//! The fluff phase is not yet a state machine of the core (issue 5 builds the upload
//! driver), so its rules are modelled here from SPEC §7: fanout 8 like a record's push,
//! a fetch from the node that told (a BitTorrent seeder gives a downloader about a
//! quarter of its upload: four unchoke slots), no further pull.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::Ctx;
use crate::engine::{Ms, derive_seed};
use crate::net::{Net, NetConfig};
use crate::report::{Plot, Series, Table};
use crate::stats::{self, fmt_opt};
use crate::world::{OUT, random_overlay};

/// Peers told with `up`.
pub const FANOUT: usize = 8;
/// Share of a seeder's upload one downloader gets (four unchoke slots).
pub const SLOT_SHARE: f64 = 0.25;

pub const SIZES: [(u64, &str); 3] = [
    (1 << 20, "1 MiB"),
    (16 << 20, "16 MiB"),
    (256 << 20, "256 MiB"),
];
/// 98 % as well: the fluff misses about 1.7 % of the nodes (see the report), so 99 %
/// is never reached.
pub const SHARES: [f64; 5] = [0.5, 0.9, 0.98, 0.99, 1.0];

/// When each node of an `n`-node overlay holds an upload of `size` bytes fluffed by a
/// random node at time 0.
pub fn spread(n: usize, size: u64, seed: u64) -> Vec<Ms> {
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 30, 0));
    let net = Net::new(n, NetConfig::default(), &mut rng);
    let links = random_overlay(&net, 32, &mut rng);
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 31, size));
    // Heard of it (a fetch is under way or done), and when it was held.
    let mut heard = vec![false; n];
    let mut held = vec![Ms::MAX; n];
    // (time, node, from, kind): 0 = `up` arrives, 1 = fetch done.
    let mut heap: BinaryHeap<Reverse<(Ms, u32, u32, u8)>> = BinaryHeap::new();
    let w = rng.gen_range(0..n as u32);
    heard[w as usize] = true;
    held[w as usize] = 0;
    // Up to 8 peers, never back to the one that told it.
    let tell = |x: u32,
                told_by: u32,
                t: Ms,
                heap: &mut BinaryHeap<Reverse<(Ms, u32, u32, u8)>>,
                rng: &mut StdRng| {
        let peers: Vec<u32> = links[x as usize]
            .iter()
            .map(|l| l & !OUT)
            .filter(|p| *p != told_by)
            .collect();
        for &y in peers.choose_multiple(rng, FANOUT) {
            heap.push(Reverse((t + net.delay(x, y, rng), y, x, 0)));
        }
    };
    tell(w, w, 0, &mut heap, &mut rng);
    while let Some(Reverse((t, y, from, kind))) = heap.pop() {
        match kind {
            0 if !heard[y as usize] => {
                heard[y as usize] = true;
                let rate = (net.upload_bps(from) * SLOT_SHARE).min(net.download_bps(y));
                let fetch = net.rtt(from, y) * 2 + (size as f64 * 1000.0 / rate) as Ms;
                heap.push(Reverse((t + fetch, y, from, 1)));
            }
            1 => {
                held[y as usize] = t;
                tell(y, from, t, &mut heap, &mut rng);
            }
            _ => {}
        }
    }
    held
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let mut t = Table::new(
        "Upload spread after fluff",
        &ctx.command("upload"),
        &[
            "N",
            "container",
            "50 %",
            "90 %",
            "98 %",
            "99 %",
            "100 %",
            "never reached",
        ],
    );
    let mut series = Vec::new();
    for (size, label) in SIZES {
        let held = spread(ctx.nodes, size, ctx.seed);
        let times = stats::times_to(&held, ctx.nodes, &SHARES, 0);
        let missed = held.iter().filter(|t| **t == Ms::MAX).count();
        t.row(vec![
            ctx.nodes.to_string(),
            label.into(),
            fmt_opt(times[0]),
            fmt_opt(times[1]),
            fmt_opt(times[2]),
            fmt_opt(times[3]),
            fmt_opt(times[4]),
            format!(
                "{missed} ({:.2} %)",
                100.0 * missed as f64 / ctx.nodes as f64
            ),
        ]);
        series.push(Series {
            label: label.into(),
            points: stats::curve(&held, ctx.nodes, 0, 200)
                .into_iter()
                .map(|(t, s)| (t / 1000.0, s))
                .collect(),
        });
    }
    t.note(
        "From the fluffing node's first `up` to the share of all nodes holding the \
         container. A node fetches from the peer that told it at a quarter of that \
         peer's upload (or its own download, if lower); connection classes from 1 to \
         500 Mbit/s up. Nodes no `up` ever reached would get it only from a pull, which \
         the fluff phase as specified does not have.",
    );
    let mut md = t.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "upload.png",
            &Plot {
                title: "Share of nodes holding an upload after fluff",
                x_label: "seconds after fluff (log scale)",
                y_label: "share of nodes",
                log_x: true,
                log_y: false,
            },
            &series,
        )?;
    }
    Ok(md)
}
