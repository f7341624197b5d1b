//! Propagation among in-memory nodes wired together by a synchronous router.

use super::*;
use crate::bundle::{Bundle, Site};
use crate::keys::PrivateKey;
use crate::name::NetworkTag;
use crate::record::Payload;
use crate::testkeys::key;

const T0: u64 = 1_800_000_000_000; // ms
const TAG: NetworkTag = NetworkTag::DEFAULT;

fn keyset_record(role: Role, version: u32, members: &[usize], signers: &[usize]) -> Record {
    let set = crate::testkeys::key_set(members, 2, 1);
    crate::testkeys::signed(
        SystemName::key_set(TAG, role, version),
        T0 / 1000,
        Payload::Body(set.to_body()),
        signers,
    )
}

fn bundle() -> Bundle {
    let records = Role::ALL
        .iter()
        .map(|&r| keyset_record(r, 1, &[0, 1, 2], &[0, 1]))
        .collect();
    Bundle::new(
        TAG,
        vec![Site {
            id: 1,
            name: "leaks".into(),
        }],
        records,
        vec![],
    )
    .unwrap()
}

fn release(version: u32, signer: &PrivateKey) -> Arc<[u8]> {
    let mut r = Record::new(
        SystemName::new(TAG, 0x1000, 1, version),
        T0 / 1000,
        Payload::Torrent {
            ih: [version as u8; 20],
            size: 10,
        },
    )
    .unwrap();
    r.sign(signer);
    r.encode().unwrap().into()
}

/// Nodes in a full mesh or a line; messages delivered in order, synchronously.
/// The node's configuration, but one peer confirms a key set (these networks are
/// two to four nodes; `key_sets_wait_for_three_sources_or_the_wait` tests the rule).
fn gcfg() -> GossipConfig {
    let mut c = GossipConfig::new(TAG, &[1]);
    c.confirm_sources = 1;
    c
}

struct Net {
    nodes: Vec<Gossip<TrustStore>>,
    links: Vec<(usize, usize)>,
    evidence: Vec<(usize, Refusal)>,
    accepted: Vec<(usize, SystemName)>,
    pushes: usize,
}

impl Net {
    fn new(n: usize, links: Vec<(usize, usize)>, cfg: impl Fn(usize) -> GossipConfig) -> Self {
        let b = bundle();
        let nodes = (0..n)
            .map(|i| Gossip::new(TrustStore::from_bundle(&b), cfg(i), vec![], i as u64, T0))
            .collect();
        let mut net = Net {
            nodes,
            links,
            evidence: vec![],
            accepted: vec![],
            pushes: 0,
        };
        for (a, b) in net.links.clone() {
            net.nodes[a].peer_up(b as PeerKey, src(b as u64), T0);
            net.nodes[b].peer_up(a as PeerKey, src(a as u64), T0);
        }
        net.run(T0);
        net
    }

    fn mesh(n: usize) -> Self {
        let links = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .collect();
        Net::new(n, links, |_| gcfg())
    }

    fn run(&mut self, now: u64) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(a) = self.nodes[i].poll_action() {
                    moved = true;
                    match a {
                        Action::Send { peer, msg } => {
                            if matches!(msg, Message::Push { .. }) {
                                self.pushes += 1;
                            }
                            self.nodes[peer as usize].handle_message(i as PeerKey, msg, now);
                        }
                        Action::Accepted { record, .. } => self.accepted.push((i, record.name)),
                        Action::Evidence { refusal, .. } => self.evidence.push((i, refusal)),
                        Action::Lookup { .. }
                        | Action::Announce { .. }
                        | Action::Dropped { .. } => {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn version(&self, i: usize) -> u32 {
        self.nodes[i]
            .held((0x1000, 1))
            .map_or(0, |(r, _)| r.name.version())
    }
}

#[test]
fn a_release_reaches_every_node_by_push() {
    let mut net = Net::mesh(12);
    net.nodes[0].submit(release(1, key(0)), T0).unwrap();
    net.run(T0);
    assert!((0..12).all(|i| net.version(i) == 1));
    assert_eq!(net.accepted.len(), 12);
    assert!(net.evidence.is_empty());
    // Each node pushes to at most 8 peers.
    assert!(net.pushes <= 12 * 8, "{} pushes", net.pushes);
}

#[test]
fn forgeries_and_replays_stop_at_the_first_node() {
    let mut net = Net::mesh(6);
    net.nodes[0].submit(release(2, key(0)), T0).unwrap();
    net.run(T0);
    // A forged v3 pushed by node 5 to node 1: refused, recorded, never forwarded.
    let forged = release(3, key(9));
    net.nodes[1].handle_message(
        5,
        Message::Push {
            record: forged.to_vec(),
        },
        T0,
    );
    net.run(T0);
    // Held back first (it may be signed by a key set node 1 has not seen); node 5 has
    // no newer key set, so it is judged at once.
    assert!((0..6).all(|i| net.version(i) == 2));
    assert_eq!(net.evidence.len(), 1, "{:?}", net.evidence);
    assert_eq!(net.evidence[0].0, 1);
    assert!(matches!(
        net.evidence[0].1,
        Refusal::NotEnoughSignatures { .. }
    ));
    // A replayed v1 is refused without evidence, and the sender is told about v2.
    net.nodes[3].handle_message(
        4,
        Message::Push {
            record: release(1, key(0)).to_vec(),
        },
        T0,
    );
    net.run(T0);
    assert_eq!(net.evidence.len(), 1);
    // Garbage is evidence too.
    net.nodes[2].handle_message(
        4,
        Message::Push {
            record: b"d4:spam3:egge".to_vec(),
        },
        T0,
    );
    net.run(T0);
    assert!(matches!(
        net.evidence.last().unwrap().1,
        Refusal::Malformed(_)
    ));
}

#[test]
fn a_late_node_catches_up_by_pull_alone() {
    // Line 0 - 1 - 2; node 2 ignores pushes.
    let mut net = Net::new(3, vec![(0, 1), (1, 2)], |i| {
        let mut c = gcfg();
        c.accept_push = i != 2;
        c.pull_interval_ms = 1_000;
        c
    });
    net.nodes[0].submit(release(1, key(0)), T0).unwrap();
    net.run(T0);
    assert_eq!((net.version(1), net.version(2)), (1, 0));
    net.nodes[2].handle_timeout(T0 + 1_000);
    net.run(T0 + 1_000);
    assert_eq!(net.version(2), 1, "pulled version + 1 from a random peer");
    // A node connecting later learns through the have exchange.
    net.nodes[0].submit(release(2, key(0)), T0 + 2_000).unwrap();
    net.run(T0 + 2_000);
    net.nodes[2].peer_down(1, T0 + 3_000);
    net.nodes[1].peer_down(2, T0 + 3_000);
    net.nodes[2].peer_up(1, src(1), T0);
    net.nodes[1].peer_up(2, src(2), T0);
    net.run(T0 + 3_000);
    assert_eq!(net.version(2), 2);
}

#[test]
fn content_signed_by_new_keys_waits_for_the_rotation() {
    let mut net = Net::new(2, vec![(0, 1)], |_| gcfg());
    // Node 0 learns the rotation v2 (keys 6,7,8) and a release signed by key 7.
    let rotation: Arc<[u8]> = keyset_record(Role::SITE, 2, &[6, 7, 8], &[0, 1])
        .encode()
        .unwrap()
        .into();
    let mut t = net.nodes[0].acceptor().clone();
    t.accept(&Record::decode(&rotation).unwrap(), T0 / 1000)
        .unwrap();
    let mut node0 = Gossip::new(t, gcfg(), vec![], 0, T0);
    node0.peer_up(1, src(1), T0);
    net.nodes[0] = node0;
    // Node 1 gets the release before the rotation: it asks for key set v2, gets it,
    // then accepts the release.
    net.nodes[1].handle_message(
        0,
        Message::Push {
            record: release(1, key(7)).to_vec(),
        },
        T0,
    );
    net.run(T0);
    assert_eq!(net.version(1), 1);
    assert!(net.evidence.is_empty(), "{:?}", net.evidence);
    assert_eq!(
        net.nodes[1].acceptor().current_set(Role::SITE).unwrap().0,
        2
    );
}

/// What one node sends `peer` in answer to `msg` from it.
fn answers(g: &mut Gossip<TrustStore>, peer: PeerKey, msg: Message, now: u64) -> Vec<Message> {
    g.handle_message(peer, msg, now);
    std::iter::from_fn(|| g.poll_action())
        .filter_map(|a| match a {
            Action::Send { peer: p, msg } if p == peer => Some(msg),
            _ => None,
        })
        .collect()
}

#[test]
fn a_have_costs_one_answer_per_slot_however_it_is_repeated() {
    let b = bundle();
    let mut g = Gossip::new(TrustStore::from_bundle(&b), gcfg(), vec![], 1, T0);
    g.submit(release(3, key(0)), T0).unwrap();
    g.peer_up(7, src(7), T0);
    while g.poll_action().is_some() {}
    // One old name, listed 3000 times: one push.
    let stale = SystemName::new(TAG, 0x1000, 1, 1);
    let sent = answers(
        &mut g,
        7,
        Message::Have {
            names: vec![stale; 3000],
        },
        T0,
    );
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0], Message::Push { .. }));
    // Said again and again (50 a second): no more pushes for a while.
    for i in 1..50 {
        let again = answers(&mut g, 7, Message::Have { names: vec![stale] }, T0 + i * 20);
        assert!(again.is_empty(), "{again:?}");
    }
    assert_eq!(
        answers(&mut g, 7, Message::Have { names: vec![stale] }, T0 + 6_000).len(),
        1
    );
}

#[test]
fn a_have_full_of_fresh_names_grows_no_state_beyond_bounds() {
    let b = bundle();
    let mut g = Gossip::new(TrustStore::from_bundle(&b), gcfg(), vec![], 1, T0);
    g.peer_up(7, src(7), T0);
    while g.poll_action().is_some() {}
    let other: NetworkTag = "OTHERNETS".parse().unwrap();
    let mut asks = 0;
    for round in 0..10u32 {
        // Documents that may exist, names of another network, kinds nobody governs.
        let names: Vec<SystemName> = (0..3000u32)
            .map(|i| match i % 3 {
                0 => SystemName::new(TAG, 0x8080, 0x100 + round * 3000 + i, 1),
                1 => SystemName::new(other, 0x1000, 1, 5),
                _ => SystemName::new(TAG, 0x7777, i, 1),
            })
            .collect();
        let sent = answers(&mut g, 7, Message::Have { names }, T0 + u64::from(round));
        asks += sent
            .iter()
            .filter(|m| matches!(m, Message::Get { .. }))
            .count();
        assert!(sent.iter().all(|m| match m {
            Message::Get { name } => name.tag() == TAG && name.kind() == 0x8080,
            _ => false,
        }));
    }
    // Asks are bounded while they are outstanding; what is remembered of the peer too.
    assert_eq!(asks, MAX_ASKED);
    assert!(g.asked.len() <= MAX_ASKED);
    assert!(g.known.len() <= MAX_ASKED + g.cfg.tracked.len());
    // Once the asks are old, new names are asked again.
    let later = vec![SystemName::new(TAG, 0x8080, 0xFFFF_0000, 1)];
    let sent = answers(&mut g, 7, Message::Have { names: later }, T0 + 10_000);
    assert_eq!(sent.len(), 1);
    // And at the next pull round, what the flood taught is forgotten.
    g.handle_timeout(T0 + 120_000);
    assert!(
        g.known.len() <= g.cfg.tracked.len() + 1,
        "{}",
        g.known.len()
    );
}

#[test]
fn records_waiting_for_a_key_set_are_bounded_per_peer_and_never_evicted_as_forgeries() {
    let b = bundle();
    let mut g = Gossip::new(TrustStore::from_bundle(&b), gcfg(), vec![], 1, T0);
    // key(5) is in no key set this node knows: each such record waits for one.
    let unknown = |v: u32| release(v, key(5)).to_vec();
    for p in 0..70u64 {
        g.peer_up(p, src(p), T0);
    }
    // The key sets this node knows are confirmed current (by one peer, in `gcfg`).
    g.handle_message(0, Message::Have { names: vec![] }, T0);
    while g.poll_action().is_some() {}
    let evidence = |g: &mut Gossip<TrustStore>| {
        std::iter::from_fn(|| g.poll_action())
            .filter(|a| matches!(a, Action::Evidence { .. }))
            .count()
    };
    // 64 peers, one record each: the queue is full, nobody is accused.
    for p in 0..64u64 {
        g.handle_message(
            p,
            Message::Push {
                record: unknown(p as u32 + 1),
            },
            T0,
        );
    }
    assert_eq!(evidence(&mut g), 0);
    assert_eq!(g.pending.len(), 64);
    // One more from another peer: the oldest goes, unjudged.
    g.handle_message(
        64,
        Message::Push {
            record: unknown(100),
        },
        T0 + 1,
    );
    assert_eq!(evidence(&mut g), 0);
    assert_eq!(g.pending.len(), 64);
    // A peer sending twenty: beyond eight waiting, its own oldest are judged.
    for v in 0..20 {
        g.handle_message(
            65,
            Message::Push {
                record: unknown(200 + v),
            },
            T0 + 2,
        );
    }
    assert_eq!(evidence(&mut g), 12);
    let from_65 = g.pending.iter().filter(|(p, _, _)| *p == Some(65)).count();
    assert_eq!(from_65, 8);
}

/// Everything `g` did, drained.
fn drain(g: &mut Gossip<TrustStore>) -> Vec<Action> {
    std::iter::from_fn(|| g.poll_action()).collect()
}

fn accepted_versions(actions: &[Action]) -> Vec<u32> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Accepted { record, .. } => Some(record.name.version()),
            _ => None,
        })
        .collect()
}

#[test]
fn key_sets_wait_for_three_sources_or_the_wait() {
    let fresh = || {
        let t = TrustStore::from_bundle(&bundle());
        Gossip::new(t, GossipConfig::new(TAG, &[1]), vec![], 1, T0)
    };
    let mut g = fresh();
    // Three connections from one address, then a push: it waits, and is no evidence.
    for p in 1..=3 {
        g.peer_up(p, src(100), T0);
        g.handle_message(p, Message::Have { names: vec![] }, T0);
    }
    g.handle_message(
        1,
        Message::Push {
            record: release(1, key(0)).to_vec(),
        },
        T0,
    );
    let actions = drain(&mut g);
    assert!(accepted_versions(&actions).is_empty(), "{actions:?}");
    assert!(!actions.iter().any(|a| matches!(a, Action::Evidence { .. })));
    assert!(!g.key_set_confirmed(Role::SITE));
    // Two more addresses whose `have` names no newer site key set: taken.
    for (p, source) in [(4, 200), (5, 300)] {
        g.peer_up(p, src(source as u64), T0 + 10);
        g.handle_message(p, Message::Have { names: vec![] }, T0 + 10);
    }
    assert!(g.key_set_confirmed(Role::SITE));
    assert_eq!(accepted_versions(&drain(&mut g)), vec![1]);

    // One address alone: taken once the wait after the first peer is over.
    let mut g = fresh();
    g.peer_up(1, src(100), T0);
    g.handle_message(1, Message::Have { names: vec![] }, T0);
    let push = Message::Push {
        record: release(1, key(0)).to_vec(),
    };
    g.handle_message(1, push, T0 + 1_000);
    assert!(accepted_versions(&drain(&mut g)).is_empty());
    assert_eq!(g.next_timeout(), T0 + CONFIRM_WAIT_MS);
    g.handle_timeout(T0 + CONFIRM_WAIT_MS);
    assert_eq!(accepted_versions(&drain(&mut g)), vec![1]);
    // What this node submits itself never waits.
    let mut g = fresh();
    assert!(g.submit(release(1, key(0)), T0).is_ok());
}

#[test]
fn a_rotation_learned_later_drops_what_a_retired_key_pinned() {
    // Issue 20: a fresh node whose only peer held the retired site key 1.
    let t = TrustStore::from_bundle(&bundle());
    let mut g = Gossip::new(t, GossipConfig::new(TAG, &[1]), vec![], 1, T0);
    g.peer_up(1, src(100), T0);
    let forged = release(1000, key(1));
    g.handle_message(
        1,
        Message::Push {
            record: forged.to_vec(),
        },
        T0,
    );
    g.handle_timeout(T0 + CONFIRM_WAIT_MS);
    assert_eq!(accepted_versions(&drain(&mut g)), vec![1000]);

    // The publisher had rotated key 1 out while release 5 (key 0) was current.
    let honest = Record::decode(&release(5, key(0))).unwrap();
    let set = crate::testkeys::key_set(&[6, 7, 8], 2, 1)
        .with_current(vec![crate::keyset::Vouched {
            slot: (0x1000, 1),
            version: 5,
            digest: crate::trust::record_digest(&honest),
        }])
        .unwrap();
    let rotation = crate::testkeys::signed(
        SystemName::key_set(TAG, Role::SITE, 2),
        T0 / 1000,
        Payload::Body(set.to_body()),
        &[0, 2],
    );
    // An honest peer comes: its `have` names key set v2 and release 5.
    g.peer_up(2, src(200), T0 + 30_000);
    let have = vec![rotation.name, honest.name];
    let sent = answers(&mut g, 2, Message::Have { names: have }, T0 + 30_000);
    assert!(sent.contains(&Message::Get {
        name: rotation.name
    }));
    g.handle_message(
        2,
        Message::Rec {
            name: rotation.name,
            record: Some(rotation.encode().unwrap()),
        },
        T0 + 30_100,
    );
    let actions = drain(&mut g);
    let forged_name = SystemName::new(TAG, 0x1000, 1, 1000);
    assert!(
        actions.contains(&Action::Dropped { name: forged_name }),
        "{actions:?}"
    );
    assert!(
        g.held((0x1000, 1)).is_none(),
        "the forgery is no longer held"
    );
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Send { peer: 2, msg: Message::Get { name } } if *name == honest.name)),
        "asks the peer that holds release 5: {actions:?}"
    );
    // Release 5 comes, signed by the retired key 0, and counts: the rotation lists it.
    g.handle_message(
        2,
        Message::Rec {
            name: honest.name,
            record: Some(honest.encode().unwrap()),
        },
        T0 + 30_200,
    );
    assert_eq!(accepted_versions(&drain(&mut g)), vec![5]);
    // The attacker's forgeries are refused now, and are no evidence against whoever
    // forwards them (a node that has not heard of the rotation does).
    g.handle_message(
        1,
        Message::Push {
            record: release(1001, key(1)).to_vec(),
        },
        T0 + 31_000,
    );
    let actions = drain(&mut g);
    assert!(accepted_versions(&actions).is_empty());
    assert!(!actions.iter().any(|a| matches!(a, Action::Evidence { .. })));
}

/// A peer's address in these tests: distinct numbers, distinct addresses.
fn src(n: u64) -> std::net::IpAddr {
    std::net::IpAddr::from([10, 0, (n >> 8) as u8, n as u8])
}
