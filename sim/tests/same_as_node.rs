//! The simulator and the node must not diverge: the same small network is run twice —
//! as real swarmsite nodes over loopback TCP (the node's own driver around the state
//! machines) and in the simulator (its driver around the very same machines) — and
//! both must end in the same state: which release each node holds, which blacklist it
//! has in force, what evidence it recorded against whom.
//!
//! Four nodes in a line, A–B–C–D; A is the publisher's node with auto-blacklisting; a
//! hostile node F (the tests' scripted wire node) is dialled by C and greets it with a
//! forged release. C refuses it twice (the push, and the answer to its `get`), hints
//! reach A through B, A re-checks F (once per entry of evidence it needs: a hint never
//! counts), lists it, and the list travels back down the line.
//! Then release 2 is published and must reach everyone.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::RngCore;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::node::{AutoBlacklist, NodeConfig, NodeHandle};
use swarmsite_node::publisher;
use swarmsite_node::record::{Payload, Record, Signature};
use swarmsite_node::wire::WireConfig;
use swarmsite_sim::engine::{MINUTE, SECOND, T0};
use swarmsite_sim::records::Records;
use swarmsite_sim::world::{World, WorldConfig};

const PASS: &[u8] = b"same as node";
const IPS: [&str; 4] = ["127.0.0.210", "127.0.0.211", "127.0.0.212", "127.0.0.213"];
const FORGER: &str = "127.0.0.214";
/// The line: who dials whom. C (2) dials the forger once the line is up (a hint made
/// before any peer connection is ready goes nowhere, in both).
const LINE: [(usize, usize); 3] = [(1, 0), (2, 1), (3, 2)];
const THRESHOLD: u32 = 2;

/// What one node ended with.
#[derive(Debug, PartialEq, Eq)]
struct End {
    release: u32,
    blacklist: u32,
    lists_forger: bool,
    /// (against the forger?, reason), sorted.
    evidence: Vec<(bool, String)>,
}

fn end_of_real(h: &NodeHandle, data: &std::path::Path) -> End {
    let s = h.status();
    let release_class = SystemName::new(h.trust().network(), kind::SITE_RELEASE, 1, 1)
        .class()
        .to_string();
    let release = s
        .records
        .iter()
        .filter(|r| r.class == release_class)
        .map(|r| r.version)
        .max()
        .unwrap_or(0);
    let (blacklist, lists_forger) = s.blacklist.map_or((0, false), |b| {
        (
            b.version,
            b.entries.iter().any(|e| e.addr == format!("{FORGER}/32")),
        )
    });
    let log = std::fs::read_to_string(data.join("evidence.jsonl")).unwrap_or_default();
    let mut evidence: Vec<(bool, String)> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let peer = v["peer"].as_str().unwrap_or("");
            (
                peer.starts_with(&format!("{FORGER}:")),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    evidence.sort();
    End {
        release,
        blacklist,
        lists_forger,
        evidence,
    }
}

/// The real network.
async fn real() -> Vec<End> {
    let tmp = tempfile::tempdir().unwrap();
    let net = small_network(&tmp.path().join("net"), "SAMECODE0", "same", PASS);
    let tag = net.bundle().network();
    let site = |v: u32| {
        let dir = tmp.path().join(format!("site{v}"));
        swarmsite_node::demo_site::write(&dir, v).unwrap();
        publish_site(&net, PASS, &dir, v)
    };
    let (pub1, rec1) = site(1);

    // The forger: `have` of release 2, a forgery of it pushed at once and given to
    // whoever asks — claiming the real site key, with a signature that is not its.
    let v2 = SystemName::new(tag, kind::SITE_RELEASE, 1, 2);
    let site_key = publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), PASS).unwrap();
    let forged = {
        let mut r = Record::new(
            v2,
            now(),
            Payload::Torrent {
                ih: [0x66; 20],
                size: 1,
            },
        )
        .unwrap();
        let mut sig = vec![0u8; 384];
        rand::thread_rng().fill_bytes(&mut sig);
        r.add_signature(Signature {
            kid: site_key.kid(),
            sig,
        });
        r.encode().unwrap()
    };
    let listener = tokio::net::TcpListener::bind(format!("{FORGER}:0"))
        .await
        .unwrap();
    let forger_wire = listener.local_addr().unwrap();
    let rendezvous = *SystemName::rendezvous(tag).as_bytes();
    let forger = tokio::spawn(scripted_node(
        listener,
        WireConfig::new(rendezvous, [0x46; 20], Some(forger_wire.port())),
        vec![v2],
        vec![(v2, forged.clone())],
        vec![forged],
    ));

    // Nodes start in order, each dialling the ones before it as the line says.
    let mut nodes: Vec<OwnRuntime> = Vec::new();
    let mut wires: Vec<SocketAddr> = Vec::new();
    let dirs: Vec<_> = (0..4).map(|i| tmp.path().join(format!("n{i}"))).collect();
    for i in 0..4 {
        let peers = LINE
            .iter()
            .filter(|(a, _)| *a == i)
            .map(|(_, b)| wires[*b])
            .collect();
        let mut cfg: NodeConfig = node_config(&dirs[i], &net, IPS[i], peers);
        // Push only: no pull round within the test, as in the simulated run.
        cfg.pull_interval = Duration::from_secs(3600);
        if i == 0 {
            cfg.auto_blacklist = Some(Arc::new(AutoBlacklist {
                key: publisher::load_key(&net.root().join("keys/blacklist/v1/key-1.pem"), PASS)
                    .unwrap(),
                threshold: THRESHOLD,
                interval: Duration::from_secs(1),
            }));
        }
        let node = OwnRuntime::spawn(cfg).await;
        wires.push(node.handle.status().wire_addr.parse().unwrap());
        if i == 0 {
            node.handle
                .submit(rec1.clone(), Some(pub1.clone()))
                .await
                .unwrap();
        }
        nodes.push(node);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("the line is up and holds release 1", 60, || {
        handles.iter().enumerate().all(|(i, h)| {
            let s = h.status();
            s.peers.len() == if i == 0 || i == 3 { 1 } else { 2 }
                && s.records
                    .iter()
                    .any(|r| r.version == 1 && r.class.contains("release"))
        })
    })
    .await;
    handles[2].connect(forger_wire).await;
    // Listed, and in force in BitTorrent too (its session restarts with the list; a
    // publication seeded meanwhile would wait for it).
    wait_for("the forger listed everywhere", 90, || {
        handles.iter().all(|h| lists(h, FORGER))
    })
    .await;
    let (pub2, rec2) = site(2);
    handles[0].submit(rec2, Some(pub2)).await.unwrap();
    wait_for("release 2 everywhere", 60, || {
        handles.iter().all(|h| {
            h.status()
                .records
                .iter()
                .any(|r| r.version == 2 && r.class.contains("release"))
        })
    })
    .await;
    // Whatever is still under way settles.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ends = handles
        .iter()
        .zip(&dirs)
        .map(|(h, d)| end_of_real(h, d))
        .collect();
    forger.abort();
    for n in nodes {
        n.shutdown().await;
    }
    ends
}

/// The same network in the simulator.
fn simulated() -> Vec<End> {
    let records = Records::new(T0 / 1000);
    let mut cfg = WorldConfig::node_defaults(5, 1, &records);
    cfg.gossip.pull_interval_ms = 3_600_000;
    cfg.rounds = false;
    cfg.auto_threshold = THRESHOLD;
    cfg.auto_interval = SECOND;
    let records = records.shared();
    let v1 = records.borrow_mut().release(1, T0 / 1000 - 60, 1 << 20);
    let mut w = World::new(cfg, records);
    for i in 0..5 {
        w.net.set_reachable(i, true);
    }
    w.preload(v1);
    w.make_auditor(0);
    w.make_forger(4, T0 + 24 * 60 * MINUTE);
    for (a, b) in LINE {
        w.dial(a as u32, b as u32);
    }
    w.run_until(T0 + 10 * SECOND, |_| false);
    w.dial(2, 4);
    w.run_until(T0 + 40 * SECOND, |_| false);
    let v2 = w.new_release(2);
    w.publish(0, v2);
    w.run_until(T0 + 50 * SECOND, |_| false);
    let forger_ip = World::ip(4);
    (0..4u32)
        .map(|i| {
            let n = w.node(i);
            let release = n
                .gossip
                .held((kind::SITE_RELEASE, 1))
                .map_or(0, |(r, _)| r.name.version());
            let mut evidence: Vec<(bool, String)> = w
                .watch
                .evidence
                .iter()
                .filter(|(by, _, _)| *by == i)
                .map(|(_, against, why)| (*against == Some(4), why.clone()))
                .collect();
            evidence.sort();
            End {
                release,
                blacklist: n.blacklist.version(),
                lists_forger: n.blacklist.contains(forger_ip),
                evidence,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_ends_where_real_nodes_end() {
    let sim = tokio::task::spawn_blocking(simulated).await.unwrap();
    let real = real().await;
    assert_eq!(
        sim, real,
        "the simulator's driver diverged from the node's:\nsimulated {sim:#?}\nreal {real:#?}"
    );
    // And the story is the one told above.
    assert!(
        sim.iter()
            .all(|e| e.release == 2 && e.blacklist == 1 && e.lists_forger)
    );
    assert_eq!(
        sim[2].evidence.len(),
        2,
        "C refused the push and the answer"
    );
    assert_eq!(
        sim[0].evidence.len(),
        THRESHOLD as usize,
        "A's own re-checks, one entry each (the hint only triggered them)"
    );
}
