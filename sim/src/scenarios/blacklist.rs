//! Blacklist: a forger pushes forged releases to its peers every minute; the honest
//! nodes refuse them, record evidence and pass hints; the auto-blacklist node re-checks
//! the accused and lists it; the new blacklist spreads like any record. How long until
//! 99 % of the nodes refuse the forger, and how many forgeries reach honest nodes
//! meanwhile?

use rand::Rng;

use super::{Ctx, warm_network};
use crate::engine::{MINUTE, Ms, SECOND};
use crate::report::{Plot, Series, Table};
use crate::stats::{self, fmt_ms, fmt_opt};

/// What kind of forger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forger {
    /// Reachable, and answers the auditor's probe with its forgery.
    Naive,
    /// Reachable, but answers probes with nothing: only what it pushes to an
    /// auto-blacklist node itself can count.
    Evasive,
    /// Behind NAT: nobody can dial it, so no re-check can reach it.
    BehindNat,
}

impl Forger {
    pub fn label(self) -> &'static str {
        match self {
            Forger::Naive => "reachable, answers probes",
            Forger::Evasive => "reachable, ignores probes",
            Forger::BehindNat => "behind NAT",
        }
    }
}

pub const SHARES: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

pub struct Run {
    pub n: usize,
    pub forger: Forger,
    /// From the first forgery to: the auditor listing it, then each share of the
    /// honest online nodes refusing it.
    pub listed: Option<Ms>,
    pub times: Vec<Option<Ms>>,
    /// Forged records delivered to honest nodes: in all, and before 99 % refused.
    pub forged: usize,
    pub forged_before_99: usize,
    pub hints: u64,
    pub rechecks: u64,
    pub refusing: Vec<(f64, f64)>,
    pub forged_curve: Vec<(f64, f64)>,
    pub events: u64,
}

/// A warm `n`-node network with one auto-blacklist node and one forger, run for
/// `limit` after the first forgery.
pub fn run(n: usize, seed: u64, forger: Forger, limit: Ms) -> Run {
    // Only the forger looks for new peers (the others keep theirs; rounds for a
    // million nodes would cost more than they show here).
    let (mut w, _) = warm_network(n, seed, |cfg| cfg.rounds = false);
    let t0 = w.now() + 30 * SECOND;
    let pick = |w: &mut crate::world::World| loop {
        let p = w.rng.gen_range(0..n as u32);
        if w.net.reachable(p) {
            break p;
        }
    };
    let auditor = pick(&mut w);
    let bad = loop {
        let b = pick(&mut w);
        // A forger next to the auditor would give evidence directly; the question is
        // how evidence reaches it.
        if b != auditor && !w.peers(auditor).any(|p| p == b) {
            break b;
        }
    };
    if forger == Forger::BehindNat {
        w.net.set_reachable(bad, false);
    }
    w.forgers_answer_probes = forger == Forger::Naive;
    w.make_auditor(auditor);
    w.make_forger(bad, t0);
    w.start_rounds(bad);
    w.watch_forger(bad);
    let before = w.stats.clone();
    let honest = n - 1;
    w.run_until(t0 + limit, |w| w.now() > t0 && w.watch.refusing >= honest);
    let stats = w.stats.since(&before);
    let refuse_at: Vec<Ms> = w
        .watch
        .refuse_at
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u32 != bad)
        .map(|(_, t)| *t)
        .collect();
    let times = stats::times_to(&refuse_at, honest, &SHARES, t0);
    let t99 = times[2].map(|t| t0 + t);
    let forged = &w.watch.forged_delivered;
    let forged_before_99 = forged
        .iter()
        .filter(|t| t99.is_none_or(|x| **t < x))
        .count();
    let span = w.now().saturating_sub(t0).max(1);
    let forged_curve = (0..=100)
        .map(|k| {
            let t = t0 + span * k / 100;
            let c = forged.iter().filter(|x| **x <= t).count();
            ((t - t0) as f64 / 1000.0, c as f64)
        })
        .collect();
    Run {
        n,
        forger,
        listed: (w.watch.refuse_at[auditor as usize] != Ms::MAX)
            .then(|| w.watch.refuse_at[auditor as usize] - t0),
        times,
        forged: forged.len(),
        forged_before_99,
        hints: stats.hint,
        rechecks: stats.rechecks,
        refusing: stats::curve(&refuse_at, honest, t0, 200)
            .into_iter()
            .map(|(t, s)| (t / 1000.0, s))
            .collect(),
        forged_curve,
        events: w.events(),
    }
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let mut t = Table::new(
        "Blacklist: from a forger's first forgery to honest nodes refusing it",
        &ctx.command("blacklist"),
        &[
            "N",
            "forger",
            "listed by the auditor",
            "50 %",
            "90 %",
            "99 %",
            "100 %",
            "forgeries delivered before 99 %",
            "in all",
            "hint messages",
            "re-checks",
        ],
    );
    let mut refusing = Vec::new();
    let mut forged = Vec::new();
    for forger in [Forger::Naive, Forger::Evasive, Forger::BehindNat] {
        let r = run(ctx.nodes, ctx.seed, forger, 10 * MINUTE);
        t.row(vec![
            r.n.to_string(),
            forger.label().into(),
            fmt_opt(r.listed),
            fmt_opt(r.times[0]),
            fmt_opt(r.times[1]),
            fmt_opt(r.times[2]),
            fmt_opt(r.times[3]),
            if r.times[2].is_some() {
                r.forged_before_99.to_string()
            } else {
                "–".into()
            },
            r.forged.to_string(),
            r.hints.to_string(),
            r.rechecks.to_string(),
        ]);
        refusing.push(Series {
            label: forger.label().into(),
            points: r.refusing,
        });
        forged.push(Series {
            label: forger.label().into(),
            points: r.forged_curve,
        });
    }
    t.note(format!(
        "One auto-blacklist node (threshold {}, batches every {}) and one forger that is \
         not its neighbour; the forger pushes a fresh forged release to all its peers \
         every minute from the start. \"In all\" counts forged records delivered to \
         honest nodes during the 10 simulated minutes. Only the forger looks for new \
         peers when it loses some; the other nodes keep their connections.",
        swarmsite_protocol::policy::AUTO_BLACKLIST_THRESHOLD,
        fmt_ms(swarmsite_protocol::policy::AUTO_BLACKLIST_INTERVAL_MS),
    ));
    let mut md = t.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "blacklist.png",
            &Plot {
                title: "Share of honest nodes refusing the forger",
                x_label: "seconds after its first forgery",
                y_label: "share of nodes",
                log_x: false,
                log_y: false,
            },
            &refusing,
        )?;
        md += &ctx.figure(
            "blacklist-forged.png",
            &Plot {
                title: "Forged records delivered to honest nodes (cumulative)",
                x_label: "seconds after the first forgery",
                y_label: "forged records",
                log_x: false,
                log_y: false,
            },
            &forged,
        )?;
    }
    Ok(md)
}
