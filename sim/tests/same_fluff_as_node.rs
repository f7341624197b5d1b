//! The simulator and the node must not diverge on an upload's fluff: the same small
//! network is run as real swarmsite nodes over loopback TCP (the node's uploads core
//! around the stem and fluff machines, librqbit fetching) and in the simulator (its
//! upload driver around the very same machines), and every node must end in the same
//! upload state.
//!
//! Five nodes in a line, A–B–C–D–E. A makes an upload; its stem hands it to B, its only
//! peer; B relays nothing (relay probability 0), so it switches to fluff and tells A and
//! C. A holds the stem copy: it fetches the upload like any other node, and its stem
//! ends once that copy is in. C fetches and tells D (not B, which told it), D tells E. Each telling is to one
//! peer here, so B reaches its second peer only by a further telling.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use swarmsite_node::gossip::PeerKey;
use swarmsite_node::node::NodeHandle;
use swarmsite_node::upload::fluff::{FluffConfig, Phase};
use swarmsite_node::upload::stem::{Stem, StemAction, StemConfig, StemState};
use swarmsite_sim::engine::Ms;
use swarmsite_sim::net::{Net, NetConfig};
use swarmsite_sim::scenarios::upload::Spread;
use swarmsite_sim::world::OUT;

const PASS: &[u8] = b"same fluff";
const IPS: [&str; 5] = [
    "127.0.0.220",
    "127.0.0.221",
    "127.0.0.222",
    "127.0.0.223",
    "127.0.0.224",
];
/// Who dials whom.
const LINE: [(usize, usize); 4] = [(1, 0), (2, 1), (3, 2), (4, 3)];

fn stem_config() -> StemConfig {
    StemConfig {
        originator_wait_ms: (0, 0),
        delay_ms: (50, 300),
        relay_probability: 0.0,
        retry_ms: 300,
        failsafe_ms: (120_000, 180_000),
        ..StemConfig::default()
    }
}

/// One peer per telling, the next telling soon.
fn fluff_config() -> FluffConfig {
    FluffConfig {
        fanout: 1,
        retell_ms: (200, 500),
        ..FluffConfig::default()
    }
}

/// Each node's upload state, as the queue names it (`None`: it holds nothing of it).
type Ends = Vec<Option<String>>;

/// The real line.
async fn real() -> Ends {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let net = small_network(&tmp.path().join("net"), "SAMEFLUFF", "fluff", PASS);
    let mut nodes: Vec<OwnRuntime> = Vec::new();
    let mut wires = Vec::new();
    for (i, ip) in IPS.iter().enumerate() {
        let peers = LINE
            .iter()
            .filter(|(a, _)| *a == i)
            .map(|(_, b)| wires[*b])
            .collect();
        let mut cfg = node_config(&tmp.path().join(format!("n{i}")), &net, ip, peers);
        cfg.uploads.stem = stem_config();
        cfg.uploads.fluff = fluff_config();
        let node = OwnRuntime::spawn(cfg).await;
        wires.push(
            node.handle
                .status()
                .wire_addr
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        );
        nodes.push(node);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("the line is up", 30, || {
        handles
            .iter()
            .enumerate()
            .all(|(i, h)| h.status().peers.len() == if i == 0 || i == 4 { 1 } else { 2 })
    })
    .await;
    let input = tmp.path().join("note.txt");
    std::fs::write(&input, "a note for the intake").unwrap();
    let token = handles[0].upload(vec![input], None).await.unwrap().token;
    let mut ih = None;
    let mut ends: Ends = Vec::new();
    // Until every node holds it in fluff, or a minute (a divergence then shows below).
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if ih.is_none() {
            let list = handles[0].uploads().await.unwrap();
            ih = list
                .entries
                .iter()
                .find(|e| e.token.as_deref() == Some(&token))
                .map(|e| e.ih.clone());
        }
        let Some(ih) = &ih else { continue };
        ends.clear();
        for h in &handles {
            let list = h.uploads().await.unwrap();
            ends.push(
                list.entries
                    .iter()
                    .find(|e| e.ih == *ih)
                    .map(|e| serde_json::to_value(e.state).unwrap())
                    .and_then(|v| v.as_str().map(String::from)),
            );
        }
        let settled = |s: &Option<String>| matches!(s.as_deref(), Some("cached" | "fluffed"));
        if ends.iter().all(settled) {
            break;
        }
    }
    for n in nodes {
        n.shutdown().await;
    }
    ends
}

/// The same line in the simulator: the project's stem at A and B, then its fluff
/// machine on every node.
fn simulated() -> Ends {
    let mut rng = StdRng::seed_from_u64(1);
    let net = Net::new(5, NetConfig::default(), &mut rng);
    let mut links: Vec<Vec<u32>> = vec![Vec::new(); 5];
    for (a, b) in LINE {
        links[a].push(b as u32 | OUT);
        links[b].push(a as u32);
    }
    let peers = |x: usize, out: bool| -> Vec<PeerKey> {
        links[x]
            .iter()
            .filter(|l| (*l & OUT != 0) == out)
            .map(|l| (l & !OUT) as PeerKey)
            .collect()
    };
    let mut stems: Vec<Stem> = (0..5).map(|i| Stem::new(stem_config(), i)).collect();
    let id = [7; 32];
    stems[0].originate(id, 0);
    let t = stems[0].next_timeout().expect("a first hop");
    stems[0].handle_timeout(t, &peers(0, true), &peers(0, false));
    let Some(StemAction::Send { to, .. }) = stems[0].poll_action() else {
        panic!("the originator hands it on")
    };
    let (to, at) = (to as usize, t + 100);
    stems[to].received(id, 0, at);
    stems[0].sent(&id, at);
    let mut s = Spread::new(&net, &links, 1 << 20, &fluff_config(), 1);
    s.stem_copy(0, at);
    s.stem_copy(to as u32, at);
    while let Some(a) = stems[to].poll_action() {
        assert_eq!(a, StemAction::Fluff { id });
        s.fluff(to as u32, at);
    }
    s.run(Ms::MAX);
    // The story told above.
    assert_eq!(to, 1);
    let told_by: Vec<Vec<u32>> = (0..5).map(|x| s.announcers(x)).collect();
    assert_eq!(told_by, vec![vec![1], vec![], vec![1], vec![2], vec![3]]);
    (0..5)
        .map(|x| {
            if s.stem_over[x] {
                stems[x].fluff_seen(&id);
            }
            // `upload::queue::Entry::state`, from the two machines' states.
            let stem = stems[x].state(&id);
            let state = match (s.phase(x as u32), stem) {
                (Some(Phase::Fetching { .. }), _) => "fetching",
                (Some(Phase::Seeding), Some(StemState::Fluffed)) => "fluffed",
                (Some(Phase::Seeding), _) => "cached",
                (_, Some(StemState::Waiting { .. })) => "waiting",
                (_, Some(StemState::Sending { .. })) => "sending",
                (_, Some(StemState::Fluffed)) => "fluffed",
                (_, Some(_)) => "sent",
                (_, None) => return None,
            };
            Some(state.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploads_fluff_ends_in_the_simulator_where_it_ends_on_real_nodes() {
    let sim = tokio::task::spawn_blocking(simulated).await.unwrap();
    let real = real().await;
    assert_eq!(
        sim, real,
        "the simulator's upload driver diverged from the node's"
    );
    let cached = Some("cached".to_string());
    assert_eq!(
        sim,
        vec![
            cached.clone(),
            Some("fluffed".into()),
            cached.clone(),
            cached.clone(),
            cached
        ]
    );
}
