//! Forgers isolated end to end (SPEC §8): an attacker built from the project's own
//! pieces forges records, seeds corrupt pieces of the real release and announces
//! itself in the DHT under a release name holding nothing. Eight nodes: an
//! auto-blacklist node (the publisher's) and six honest volunteers, with the attacker
//! as the eighth. Each of its three faces runs on an address of its own: the forger and
//! the corrupt seeder must each be caught by its own evidence, whatever order things
//! happen in; the empty DHT announcement is only dropped, since anyone could have
//! written it naming an innocent address.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarmsite_node::keys::MIN_BITS;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::node::{AutoBlacklist, Node, NodeConfig, NodeHandle};
use swarmsite_node::publisher::{self, NetworkDir};
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::rendezvous::Rendezvous;
use swarmsite_node::torrents::{Torrents, TorrentsConfig};
use swarmsite_node::wire::WireConfig;

const PASS: &[u8] = b"isolation test";
const FORGER: &str = "127.0.0.147";
const CORRUPTER: &str = "127.0.0.148";
const ANNOUNCER: &str = "127.0.0.149";

/// A test node with the rendezvous DHT on and bad pieces audited.
fn dht_node_config(data: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut cfg = node_config(data, net, ip, peers);
    cfg.rendezvous = Some(format!("{ip}:0").parse().unwrap());
    cfg.piece_audit = Some(piece_audit());
    cfg
}

/// A site with a file of many pieces, so a corrupt seeder is asked for some.
fn write_site(dir: &Path, version: u32) {
    swarmsite_node::demo_site::write(dir, version).unwrap();
    std::fs::write(
        dir.join("archive.bin"),
        (0..4_000_000u32)
            .map(|i| (i.wrapping_mul(version + 7) % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
}

/// Seeds the published release in `published` from `ip`, then corrupts its data in
/// place: it goes on announcing every piece, and sends wrong bytes.
async fn corrupt_seeder(dir: &Path, ip: &str, published: &Path) -> (Torrents, SocketAddr) {
    let payload = dir.join("payload");
    swarmsite_node::fsutil::copy_missing(&published.join(publisher::PAYLOAD_DIR), &payload)
        .unwrap();
    let torrent = std::fs::read(published.join(publisher::TORRENT_FILE)).unwrap();
    let ih = swarmsite_node::metainfo_file::info_hash_of(&torrent).unwrap();
    let t = Torrents::start(TorrentsConfig::loopback(
        dir.join("state"),
        ip.parse().unwrap(),
    ))
    .await
    .unwrap();
    let h = t
        .add(&ih, Some(torrent.into()), &payload, vec![])
        .await
        .unwrap();
    complete(&h, 60, "h complete").await;
    corrupt_in_place(&payload.join("archive.bin"), 4_000_000, 16_384);
    let addr = t.listen_addr().unwrap();
    (t, addr)
}

fn evidence_of(data: &Path) -> String {
    std::fs::read_to_string(data.join("evidence.jsonl")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgers_are_isolated_while_the_site_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let net = small_network(&tmp.path().join("net"), "ISOLATION", "isolation", PASS);
    let tag = net.bundle().network();
    let site_key = [publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), PASS).unwrap()];
    let publish = |version: u32| {
        let dir = tmp.path().join(format!("site{version}"));
        write_site(&dir, version);
        let (published, record) = net
            .publish_site(&dir, 1, Some(version), &site_key, now())
            .unwrap()
            .published()
            .unwrap();
        (dir, published, record.encode().unwrap())
    };
    let (site1, pub1, rec1) = publish(1);

    // The publisher's node, with the blacklist key and auto-blacklisting. Its upload is
    // capped so that volunteers also ask the corrupt seeder for pieces.
    let mut cfg = dht_node_config(&tmp.path().join("auto"), &net, "127.0.0.140", vec![]);
    cfg.auto_blacklist = Some(Arc::new(AutoBlacklist {
        key: publisher::load_key(&net.root().join("keys/blacklist/v1/key-1.pem"), PASS).unwrap(),
        threshold: 2,
        interval: Duration::from_secs(1),
    }));
    cfg.upload_limit = Some(2_000_000);
    let auto = Node::start(cfg).await.unwrap();
    let a = auto.handle();
    let a_wire: SocketAddr = a.status().wire_addr.parse().unwrap();
    a.submit(rec1.clone(), Some(pub1.clone())).await.unwrap();
    wait_for("the publisher serves v1", 60, || {
        a.status().served_version == Some(1)
    })
    .await;

    // The attacker. (a) A wire node that pushes a forged v2 to whoever connects and
    // answers `get` with it.
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    let v2 = SystemName::new(tag, kind::SITE_RELEASE, 1, 2);
    let forged = {
        let attacker = swarmsite_node::keys::PrivateKey::generate(MIN_BITS).unwrap();
        let mut r = Record::new(
            v2,
            now(),
            Payload::Torrent {
                ih: [0x66; 20],
                size: 1,
            },
        )
        .unwrap();
        r.sign(&attacker);
        r.encode().unwrap()
    };
    let mut tasks = Vec::new();
    let forger = tokio::net::TcpListener::bind(format!("{FORGER}:0"))
        .await
        .unwrap();
    let forger_wire = forger.local_addr().unwrap();
    // It names a rendezvous DHT node id, which evidence then records.
    let mut cfg = WireConfig::new(rendezvous, [0x46; 20], Some(forger_wire.port()));
    cfg.dht = Some((9, [0x46; 20]));
    tasks.push(tokio::spawn(scripted_node(
        forger,
        cfg,
        vec![v2],
        vec![(v2, forged.clone())],
        vec![forged],
    )));
    // (b) A seeder of the real release with corrupt data, behind a wire node that
    // tells its BitTorrent port like any volunteer.
    let (corrupt, corrupt_bt) = corrupt_seeder(&tmp.path().join("corrupt"), CORRUPTER, &pub1).await;
    let corrupter = tokio::net::TcpListener::bind(format!("{CORRUPTER}:0"))
        .await
        .unwrap();
    let corrupter_wire = corrupter.local_addr().unwrap();
    let mut cfg = WireConfig::new(rendezvous, [0x43; 20], Some(corrupter_wire.port()));
    cfg.bt_port = Some(corrupt_bt.port());
    tasks.push(tokio::spawn(scripted_node(
        corrupter,
        cfg,
        vec![],
        vec![],
        vec![],
    )));
    // (c) A wire node holding nothing, announced in the rendezvous DHT under the
    // release names volunteers look up.
    let empty = tokio::net::TcpListener::bind(format!("{ANNOUNCER}:0"))
        .await
        .unwrap();
    let empty_port = empty.local_addr().unwrap().port();
    tasks.push(tokio::spawn(scripted_node(
        empty,
        WireConfig::new(rendezvous, [0x45; 20], Some(empty_port)),
        vec![],
        vec![],
        vec![],
    )));
    let liar = Arc::new(
        Rendezvous::start(tag, format!("{ANNOUNCER}:0").parse().unwrap(), vec![])
            .await
            .unwrap(),
    );
    let (dht_port, dht_id) = a.status().dht.expect("the publisher runs the DHT");
    let id: [u8; 20] = hex::decode(&dht_id).unwrap().try_into().unwrap();
    liar.add_contact(id, format!("127.0.0.140:{dht_port}").parse().unwrap())
        .await;
    liar.refresh().await.unwrap();
    {
        let liar = Arc::clone(&liar);
        let names = [SystemName::new(tag, kind::SITE_RELEASE, 1, 1), v2];
        tasks.push(tokio::spawn(async move {
            loop {
                for n in names {
                    liar.find(*n.as_bytes(), Some(empty_port), Duration::from_secs(1))
                        .await;
                }
            }
        }));
    }

    // Six volunteers, each knowing the publisher and the attacker's wire nodes.
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for i in 0..6 {
        let ip = format!("127.0.0.{}", 141 + i);
        let dir = tmp.path().join(format!("n{i}"));
        dirs.push(dir.clone());
        let cfg = dht_node_config(&dir, &net, &ip, vec![a_wire, forger_wire, corrupter_wire]);
        nodes.push(OwnRuntime::spawn(cfg).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();

    // The forger and the corrupt seeder are caught by their own evidence, re-checked by
    // the publisher's node, and listed; the list reaches every volunteer and is in force
    // in BitTorrent too.
    wait_for(
        "the forger and the corrupter listed everywhere",
        180,
        || {
            [FORGER, CORRUPTER]
                .iter()
                .all(|ip| lists(&a, ip) && handles.iter().all(|h| lists(h, ip)))
        },
    )
    .await;
    let seen: String = dirs.iter().map(|d| evidence_of(d)).collect();
    for (reason, ip) in [("not-enough-signatures", FORGER), ("bad-piece", CORRUPTER)] {
        assert!(
            seen.lines()
                .any(|l| l.contains(&format!("\"reason\":\"{reason}\"")) && l.contains(ip)),
            "volunteers recorded {reason} from {ip}"
        );
    }
    assert!(
        seen.lines()
            .any(|l| l.contains(FORGER)
                && l.contains(&format!("\"node_id\":\"{}\"", "46".repeat(20)))),
        "evidence names the forger's DHT node id"
    );
    let audited = evidence_of(&tmp.path().join("auto"));
    assert!(
        audited.contains("re-checked after hints from"),
        "the publisher's node listed after its own re-checks: {audited}"
    );
    let mut listed: Vec<String> = a
        .status()
        .blacklist
        .unwrap()
        .entries
        .iter()
        .map(|e| e.addr.clone())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![format!("{FORGER}/32"), format!("{CORRUPTER}/32")],
        "only the forger and the corrupter are listed"
    );
    // The DHT entry naming the empty node is no evidence against that address.
    assert!(
        !seen.contains(ANNOUNCER) && !audited.contains(ANNOUNCER),
        "evidence names the address a DHT entry named: {seen}"
    );

    // The site stayed up: every volunteer serves the real v1, byte for byte.
    wait_for("v1 everywhere", 120, || {
        handles.iter().all(|h| h.status().served_version == Some(1))
    })
    .await;
    let archive = std::fs::read(site1.join("archive.bin")).unwrap();
    for h in &handles {
        let (status, body) = http_get(&http_addr(h), "/archive.bin").await;
        assert_eq!(status, 200);
        assert!(body == archive, "{}: the real archive", http_addr(h));
    }

    // The attacker is refused at every door now.
    let refused_before: Vec<u64> = handles
        .iter()
        .map(|h| h.status().blacklist.unwrap().refused)
        .collect();
    for h in &handles {
        let wire: SocketAddr = h.status().wire_addr.parse().unwrap();
        for ip in [FORGER, CORRUPTER] {
            hostile_push(ip, wire, rendezvous, vec![]).await;
        }
        assert!(
            !h.status()
                .peers
                .iter()
                .any(|p| [FORGER, CORRUPTER].iter().any(|ip| p.addr.starts_with(ip))),
            "no connection to the attacker is left"
        );
    }
    wait_for("every volunteer refuses the attacker", 20, || {
        handles
            .iter()
            .zip(&refused_before)
            .all(|(h, before)| h.status().blacklist.unwrap().refused >= before + 2)
    })
    .await;

    // A new release spreads without the attacker: no volunteer takes a piece from it.
    let bad_pieces_before = seen.matches("\"reason\":\"bad-piece\"").count();
    let (_, pub2, rec2) = publish(2);
    a.submit(rec2, Some(pub2)).await.unwrap();
    wait_for("v2 everywhere", 120, || {
        handles.iter().all(|h| h.status().served_version == Some(2))
    })
    .await;
    let seen: String = dirs.iter().map(|d| evidence_of(d)).collect();
    assert_eq!(
        seen.matches("\"reason\":\"bad-piece\"").count(),
        bad_pieces_before,
        "no piece came from the banned seeder"
    );

    for t in tasks {
        t.abort();
    }
    liar.stop().await;
    corrupt.stop().await;
    for n in nodes {
        n.shutdown().await;
    }
    auto.shutdown().await;
}
