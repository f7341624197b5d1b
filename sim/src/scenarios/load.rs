//! DHT and prober load in steady state: what a node sends and receives per hour when
//! nothing is being published, with every slot the node follows by default; where the
//! DHT's load lands; and what the DNS front's prober (the project's own
//! `dns::prober::Prober`, with the zone file's defaults) can keep up with.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use swarmsite_protocol::dns::prober::{Outcome, Prober};
use swarmsite_protocol::dns::zone::Zone;
use swarmsite_protocol::gossip::GossipConfig;

use super::{Ctx, warm_network};
use crate::engine::{HOUR, MINUTE, Ms, T0, derive_seed};
use crate::net::{Net, NetConfig};
use crate::records::SITE;
use crate::report::{Plot, Series, Table};

/// Per node per hour, in steady state.
pub struct Steady {
    pub n: usize,
    pub tracked: usize,
    pub wire_mean: f64,
    pub wire_max: f64,
    pub lookups: f64,
    pub announces: f64,
    pub dht_sent: f64,
    /// Queries a node answers per hour as an ordinary hop of other lookups.
    pub dht_received_mean: f64,
    /// Queries per hour reaching each of the k nodes closest to the busiest name.
    pub dht_hot: f64,
    pub hot_name: String,
}

/// Runs a warm network following every slot a node follows by default, for `window`
/// after a minute of warm-up.
pub fn steady(n: usize, seed: u64, window: Ms) -> Steady {
    let (mut w, _) = warm_network(n, seed, |cfg| {
        cfg.gossip.tracked = GossipConfig::new(cfg.gossip.tag, &[SITE]).tracked;
    });
    w.run_until(w.now() + MINUTE, |_| false);
    let before = w.stats.clone();
    w.dht_names.clear();
    w.count_sent();
    let t0 = w.now();
    w.run_until(t0 + window, |_| false);
    let s = w.stats.since(&before);
    let hours = window as f64 / HOUR as f64;
    let per = |x: u64| x as f64 / n as f64 / hours;
    let dht = &w.cfg.dht;
    let hops = dht.hops(n);
    // Every query but the last round's lands on a node anywhere in the DHT.
    let spread = (s.lookups + s.announces) as f64 * (dht.alpha * hops) as f64;
    let received = spread / (dht.public_nodes as f64 + n as f64) / hours;
    let (hot_name, hot) = w
        .dht_names
        .iter()
        .map(|(name, (l, a))| (*name, *l + 2 * a))
        .max_by_key(|(name, q)| (*q, *name.as_bytes()))
        .map(|(name, q)| (name, q as f64 / hours))
        .unwrap_or((
            swarmsite_protocol::name::SystemName::rendezvous(w.cfg.gossip.tag),
            0.0,
        ));
    Steady {
        n,
        tracked: w.cfg.gossip.tracked.len(),
        wire_mean: per(s.wire_messages()),
        wire_max: w.watch.sent.iter().copied().max().unwrap_or(0) as f64 / hours,
        lookups: per(s.lookups),
        announces: per(s.announces),
        dht_sent: per(s.dht_queries),
        dht_received_mean: received,
        dht_hot: hot,
        hot_name: format!("{} v{}", hot_name.class(), hot_name.version()),
    }
}

/// The DNS front's prober, run on the candidates discovery gives it.
pub struct Probing {
    pub label: String,
    pub candidates: usize,
    pub healthy: usize,
    pub probes_per_hour: f64,
    /// Probes per hour on a node the prober knows, and the share of all nodes probed.
    pub per_known_node: f64,
    pub probed_share: f64,
}

/// How discovery names candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Every node (an ideal discovery that finds the whole network).
    Everyone,
    /// librqbit's peer store: the nodes closest to a name keep the first 1000
    /// announcements (of all names together) and never expire them, and answer a
    /// `get_peers` with all of them.
    LibrqbitStore,
    /// A store that answers with a fresh random sample of 50 live holders.
    Sample,
}

/// The zone file defaults of the prober (the DNS front's `[probe]` section).
fn zone_defaults() -> anyhow::Result<swarmsite_protocol::dns::zone::ProbeConfig> {
    let zone = Zone::parse(
        "zone = \"site.example\"\nns = [\"ns1.site.example\"]\n\
         [soa]\nprimary = \"ns1.site.example\"\nhostmaster = \"hostmaster.site.example\"\n",
        T0 / 1000,
    )
    .map_err(|e| anyhow::anyhow!("the minimal zone file: {e}"))?;
    Ok(zone.probe)
}

/// Two hours of the prober over an `n`-node network (the second hour measured).
pub fn probing(n: usize, seed: u64, discovery: Discovery) -> anyhow::Result<Probing> {
    let probe = zone_defaults()?;
    let mut rng = StdRng::seed_from_u64(derive_seed(seed, 40, discovery as u64));
    let net = Net::new(n, NetConfig::default(), &mut rng);
    let mut prober = Prober::new(probe.settings.clone(), derive_seed(seed, 41, 0));
    prober.set_newest(2);
    // The prober's host: in Europe west, on a good line.
    let host_rtt =
        |v: u32| crate::net::RTT_MS[3][net.region(v)] as Ms + 2 * net.class(v).access_ms as Ms + 4;
    let timeout = probe.timeout.as_millis() as Ms;
    let ports = probe.ports.len().max(1) as Ms;
    let every = probe.discover_interval.as_millis() as Ms;
    // The first thousand announcers, as librqbit's store keeps them.
    let mut first: Vec<u32> = (0..n as u32).collect();
    first.shuffle(&mut rng);
    first.truncate(1000.min(n));
    let mut done: BinaryHeap<Reverse<(Ms, u32)>> = BinaryHeap::new();
    let mut probes_of = vec![0u32; n];
    let (start, end) = (T0, T0 + 2 * HOUR);
    let measure = start + HOUR;
    let mut next_discovery = start;
    let mut now = start;
    let mut probes = 0u64;
    while now < end {
        if now >= next_discovery {
            next_discovery = now + every;
            let named: Vec<u32> = match discovery {
                Discovery::Everyone => (0..n as u32).collect(),
                Discovery::LibrqbitStore => first.clone(),
                Discovery::Sample => (0..100).map(|_| rng.gen_range(0..n as u32)).collect(),
            };
            for v in named {
                prober.discovered(Net::ip(v), now);
            }
            prober.sweep(now.saturating_sub(10 * every));
        }
        for ip in prober.due(now) {
            let v = Net::node_of(ip).expect("a simulated address");
            let took = if net.reachable(v) {
                // TCP, then one HTTP request for the release record.
                2 * host_rtt(v)
            } else {
                // Nothing answers: every port waits out the timeout.
                ports * timeout
            };
            done.push(Reverse((now + took, v)));
        }
        let wake = [
            done.peek().map(|Reverse((t, _))| *t),
            prober.next_due(),
            Some(next_discovery),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end)
        .max(now + 1);
        now = wake;
        while let Some(&Reverse((t, v))) = done.peek() {
            if t > now {
                break;
            }
            done.pop();
            let outcome = if net.reachable(v) {
                Outcome::Serves { version: 2 }
            } else {
                Outcome::Unreachable {
                    why: "connect timed out".into(),
                }
            };
            prober.finished(Net::ip(v), outcome, t);
            if t >= measure {
                probes += 1;
                probes_of[v as usize] += 1;
            }
        }
    }
    let stats = prober.stats();
    let probed = probes_of.iter().filter(|p| **p > 0).count();
    Ok(Probing {
        label: match discovery {
            Discovery::Everyone => "discovery finds every node".into(),
            Discovery::LibrqbitStore => "librqbit's DHT store (first 1000, kept)".into(),
            Discovery::Sample => "a DHT store answering 50 random holders".into(),
        },
        candidates: stats.candidates,
        healthy: stats.healthy,
        probes_per_hour: probes as f64,
        per_known_node: probes as f64 / probed.max(1) as f64,
        probed_share: probed as f64 / n as f64,
    })
}

pub fn report(ctx: &Ctx) -> anyhow::Result<String> {
    let n = ctx.nodes;
    let mut t = Table::new(
        "Steady-state load per node per hour",
        &ctx.command("load"),
        &[
            "N",
            "slots followed",
            "wire messages sent, mean / busiest node",
            "DHT lookups / announcements",
            "DHT queries sent",
            "DHT queries answered, mean node",
            "DHT queries at each of the 8 nodes closest to the busiest name",
        ],
    );
    let mut sent = Vec::new();
    let mut answered = Vec::new();
    let mut hot = Vec::new();
    for size in super::sizes(n) {
        let s = steady(size, ctx.seed, 3 * MINUTE);
        t.row(vec![
            size.to_string(),
            s.tracked.to_string(),
            format!("{:.0} / {:.0}", s.wire_mean, s.wire_max),
            format!("{:.0} / {:.0}", s.lookups, s.announces),
            format!("{:.0}", s.dht_sent),
            format!("{:.0}", s.dht_received_mean),
            format!(
                "{:.0} ({:.0}/s, {})",
                s.dht_hot,
                s.dht_hot / 3600.0,
                s.hot_name
            ),
        ]);
        sent.push((size as f64, s.dht_sent));
        answered.push((size as f64, s.dht_received_mean.max(1e-3)));
        hot.push((size as f64, s.dht_hot));
    }
    t.note(format!(
        "3 simulated minutes after 1 of warm-up, nothing published; every node pulls and \
         looks up `version + 1` of each slot it follows every minute and announces itself \
         under the rendezvous name every minute. DHT model: {} public nodes besides the \
         swarmsite ones, α = 3, k = 8, ⌈log2(size)/3⌉ rounds per lookup.",
        crate::dht::DhtConfig::default().public_nodes,
    ));
    let mut md = t.markdown();
    if ctx.plots {
        md += &ctx.figure(
            "load-dht.png",
            &Plot {
                title: "DHT queries per node per hour",
                x_label: "nodes",
                y_label: "queries per hour",
                log_x: true,
                log_y: true,
            },
            &[
                Series {
                    label: "sent by every node".into(),
                    points: sent,
                },
                Series {
                    label: "answered by a typical node".into(),
                    points: answered,
                },
                Series {
                    label: "answered by each of the 8 nodes closest to a name".into(),
                    points: hot,
                },
            ],
        )?;
    }
    let mut p = Table::new(
        "The DNS front's prober (zone defaults: every 60 s, 64 at once, 5 s timeout, ports 80 and 18880)",
        &ctx.command("load"),
        &[
            "N",
            "discovery",
            "candidates",
            "healthy",
            "probes per hour",
            "probes per known node per hour",
            "share of nodes ever probed",
        ],
    );
    for d in [
        Discovery::Everyone,
        Discovery::LibrqbitStore,
        Discovery::Sample,
    ] {
        let r = probing(n, ctx.seed, d)?;
        p.row(vec![
            n.to_string(),
            r.label.clone(),
            r.candidates.to_string(),
            r.healthy.to_string(),
            format!("{:.0}", r.probes_per_hour),
            format!("{:.1}", r.per_known_node),
            format!("{:.3} %", 100.0 * r.probed_share),
        ]);
    }
    p.note(
        "The project's `dns::prober::Prober` with the zone file's defaults, two simulated \
         hours (the second measured); discovery every 60 s, candidates nobody named for 10 \
         rounds forgotten. A probe of a reachable node takes two round trips from a host \
         in western Europe; a node behind NAT costs the timeout on each port.",
    );
    md += "\n";
    md += &p.markdown();
    Ok(md)
}
