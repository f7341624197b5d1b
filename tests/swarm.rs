//! Several real nodes on loopback addresses (127.0.0.x), each with its own sockets,
//! fetching a signed site over BitTorrent and serving it over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmsite::bundle::Site;
use swarmsite::keys::MIN_BITS;
use swarmsite::name::{NetworkTag, SystemName, kind};
use swarmsite::node::{Node, NodeConfig, NodeHandle};
use swarmsite::publisher::{self, InitOptions, NetworkDir, Outcome, TORRENT_FILE};
use swarmsite::record::{Payload, Record};
use swarmsite::{demo_site, torrent};

const PASS: &[u8] = b"swarm test";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn node_config(data: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut cfg = NodeConfig::new(data.to_path_buf(), net.bundle().clone());
    cfg.wire_listen = format!("{ip}:0").parse().unwrap();
    cfg.bt_listen = format!("{ip}:0").parse().unwrap();
    cfg.http = vec![format!("{ip}:0").parse().unwrap()];
    cfg.peers = peers;
    cfg.content_dht = None;
    cfg.pull_interval = Duration::from_secs(2);
    cfg
}

fn publish_site(net: &NetworkDir, dir: &Path, version: u32) -> (PathBuf, Vec<u8>) {
    let t = torrent::make(dir, "testleaks").unwrap();
    let record = Record::new(
        SystemName::new(net.bundle().network(), kind::SITE_RELEASE, 1, version),
        now(),
        Payload::Torrent {
            ih: t.info_hash,
            size: t.total_size,
        },
    )
    .unwrap();
    let key = publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), PASS).unwrap();
    match net
        .publish(
            record,
            &[key],
            &[(TORRENT_FILE.into(), t.bytes)],
            Some(dir),
            now(),
        )
        .unwrap()
    {
        Outcome::Published { dir, record, .. } => (dir, record.encode().unwrap()),
        Outcome::Draft { .. } => panic!("draft"),
    }
}

async fn http_get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

fn http_addr(h: &NodeHandle) -> String {
    h.status()
        .http
        .iter()
        .find(|p| p.bound)
        .unwrap()
        .addr
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_serve_every_release_and_refuse_forgeries() {
    let tmp = tempfile::tempdir().unwrap();
    let tag: NetworkTag = "TESTLEAKS".parse().unwrap();
    let opts = InitOptions {
        tag,
        sites: vec![Site {
            id: 1,
            name: "testleaks".into(),
        }],
        keys_per_role: 3,
        threshold: 2,
        sign: 1,
        bits: MIN_BITS,
        bootstrap: vec![],
    };
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, PASS, now()).unwrap();
    let site1 = tmp.path().join("site1");
    demo_site::write(&site1, 1).unwrap();
    let (pub1, rec1) = publish_site(&net, &site1, 1);

    // The publisher's own node, then six volunteers that know only the publisher.
    let publisher = Node::start(node_config(
        &tmp.path().join("p"),
        &net,
        "127.0.0.2",
        vec![],
    ))
    .await
    .unwrap();
    let p = publisher.handle();
    let p_wire: SocketAddr = p.status().wire_addr.parse().unwrap();
    let mut nodes = Vec::new();
    for i in 0..6 {
        let ip = format!("127.0.0.{}", 3 + i);
        let n = Node::start(node_config(
            &tmp.path().join(format!("n{i}")),
            &net,
            &ip,
            vec![p_wire],
        ))
        .await
        .unwrap();
        nodes.push(n);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    wait_for("every node connected", 30, || {
        handles.iter().all(|h| !h.status().peers.is_empty())
    })
    .await;

    p.submit(rec1.clone(), Some(pub1.clone())).await.unwrap();
    wait_for("v1 everywhere", 120, || {
        handles.iter().all(|h| h.status().served_version == Some(1))
    })
    .await;
    for h in &handles {
        let addr = http_addr(h);
        for f in [
            "index.html",
            "about.html",
            "style.css",
            "documents/report.txt",
        ] {
            let (status, body) = http_get(&addr, &format!("/{f}")).await;
            assert_eq!(status, 200, "{addr} {f}");
            assert_eq!(
                body,
                std::fs::read(site1.join(f)).unwrap(),
                "{addr} {f}: byte-identical"
            );
        }
        let (_, record) = http_get(&addr, "/.well-known/swarmsite/release").await;
        assert_eq!(record, rec1);
    }

    // v2 changes one file; every node switches.
    let site2 = tmp.path().join("site2");
    demo_site::write(&site2, 2).unwrap();
    let (pub2, rec2) = publish_site(&net, &site2, 2);
    p.submit(rec2, Some(pub2)).await.unwrap();
    wait_for("v2 everywhere", 120, || {
        handles.iter().all(|h| h.status().served_version == Some(2))
    })
    .await;
    for h in &handles {
        let (_, body) = http_get(&http_addr(h), "/").await;
        assert!(String::from_utf8_lossy(&body).contains("Release 2"));
    }

    // A v3 signed by a key that is not the publisher's: refused everywhere it arrives,
    // never served, recorded as evidence. A replayed v1: refused.
    let attacker = swarmsite::keys::PrivateKey::generate(MIN_BITS).unwrap();
    let mut forged = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 3),
        now(),
        Payload::Torrent {
            ih: [0xee; 20],
            size: 1,
        },
    )
    .unwrap();
    forged.sign(&attacker);
    let err = handles[0]
        .submit(forged.encode().unwrap(), None)
        .await
        .unwrap_err();
    assert!(err.contains("valid signatures"), "{err}");
    let err = handles[1].submit(rec1, None).await.unwrap_err();
    assert!(err.contains("not newer"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(handles.iter().all(|h| h.status().served_version == Some(2)));
    assert!(handles[0].status().evidence >= 1);
    let evidence = std::fs::read_to_string(tmp.path().join("n0/evidence.jsonl")).unwrap();
    assert!(evidence.contains("not-enough-signatures"), "{evidence}");

    for n in nodes {
        n.shutdown().await;
    }
    publisher.shutdown().await;
}
