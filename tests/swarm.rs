//! Several real nodes on loopback addresses (127.0.0.x), each with its own sockets,
//! fetching a signed site over BitTorrent and serving it over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmsite_node::demo_site;
use swarmsite_node::keys::MIN_BITS;
use swarmsite_node::name::{NetworkTag, SystemName, kind};
use swarmsite_node::node::{Node, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::record::{Payload, Record};

mod common;
use common::*;

const PASS: &[u8] = b"swarm test";

async fn start_node(data: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> Node {
    Node::start(node_config(data, net, ip, peers))
        .await
        .unwrap()
}

/// One network with releases 1 and 2 published, made once per test binary.
struct Fixture {
    _dir: tempfile::TempDir,
    net: NetworkDir,
    site1: PathBuf,
    site2: PathBuf,
    releases: Vec<(PathBuf, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions::one_site("TESTLEAKS".parse().unwrap(), "testleaks");
        let net = NetworkDir::init(&dir.path().join("net"), &opts, PASS, now()).unwrap();
        let site1 = dir.path().join("site1");
        demo_site::write(&site1, 1).unwrap();
        let site2 = dir.path().join("site2");
        demo_site::write(&site2, 2).unwrap();
        let releases = vec![
            publish_site(&net, PASS, &site1, 1),
            publish_site(&net, PASS, &site2, 2),
        ];
        Fixture {
            _dir: dir,
            net,
            site1,
            site2,
            releases,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_serve_every_release_and_refuse_forgeries() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let net = &f.net;
    let tag: NetworkTag = net.bundle().network();
    let site1 = &f.site1;
    let (pub1, rec1) = f.releases[0].clone();

    // The publisher's own node, then six volunteers that know only the publisher.
    let publisher = start_node(&tmp.path().join("p"), net, "127.0.0.2", vec![]).await;
    let p = publisher.handle();
    let p_wire: SocketAddr = p.status().wire_addr.parse().unwrap();
    // Each volunteer on a tokio runtime (and thread) of its own, with its own sockets.
    let mut nodes = Vec::new();
    for i in 0..6 {
        let ip = format!("127.0.0.{}", 3 + i);
        let cfg = node_config(&tmp.path().join(format!("n{i}")), net, &ip, vec![p_wire]);
        nodes.push(OwnRuntime::spawn(cfg).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
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
    let (pub2, rec2) = f.releases[1].clone();
    assert!(f.site2.exists());
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
    let attacker = swarmsite_node::keys::PrivateKey::generate(MIN_BITS).unwrap();
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
    let err = handles[1].submit(rec1.clone(), None).await.unwrap_err();
    assert!(err.contains("not newer"), "{err}");
    // A hostile peer pushes the forgery, and the replayed v1, to every node over the wire.
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    hostile_push_all(
        "127.0.0.99",
        &handles,
        rendezvous,
        vec![forged.encode().unwrap(), rec1.clone()],
    )
    .await;
    wait_for("every node to record the forgery", 30, || {
        (0..6).all(|i| {
            std::fs::read_to_string(tmp.path().join(format!("n{i}/evidence.jsonl")))
                .is_ok_and(|e| e.contains("127.0.0.99") && e.contains("not-enough-signatures"))
        })
    })
    .await;
    assert!(
        handles.iter().all(|h| h.status().served_version == Some(2)),
        "v3 never served"
    );
    let (_, body) = http_get(&http_addr(&handles[5]), "/").await;
    assert!(String::from_utf8_lossy(&body).contains("Release 2"));

    for n in nodes {
        n.shutdown().await;
    }
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_catches_up_by_pull_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let publisher = start_node(&tmp.path().join("p"), &f.net, "127.0.0.20", vec![]).await;
    let p = publisher.handle();
    for (dir, rec) in &f.releases {
        p.submit(rec.clone(), Some(dir.clone())).await.unwrap();
    }
    wait_for("publisher serves v2", 60, || {
        p.status().served_version == Some(2)
    })
    .await;
    let mut cfg = node_config(
        &tmp.path().join("late"),
        &f.net,
        "127.0.0.21",
        vec![p.status().wire_addr.parse().unwrap()],
    );
    cfg.accept_push = false;
    let late = Node::start(cfg).await.unwrap();
    let l = late.handle();
    wait_for("late node serves v2", 60, || {
        l.status().served_version == Some(2)
    })
    .await;
    let (_, body) = http_get(&http_addr(&l), "/").await;
    assert!(String::from_utf8_lossy(&body).contains("Release 2"));
    late.shutdown().await;
    publisher.shutdown().await;
}

/// Raw bytes to a node's wire port: returns what came back before the node closed.
async fn poke(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut back))
        .await
        .expect("node closes the connection");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_port_closes_strangers_politely_and_records_bad_input() {
    use swarmsite_node::wire::message::{EXT_HANDSHAKE, Handshake, frame_extended};
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let node = start_node(&tmp.path().join("n"), &f.net, "127.0.0.30", vec![]).await;
    let h = node.handle();
    let wire: SocketAddr = h.status().wire_addr.parse().unwrap();
    let rendezvous = *SystemName::new(f.net.bundle().network(), kind::NOTICE, 1, 0).as_bytes();

    // A BitTorrent client looking for some torrent: nothing back, nothing recorded.
    let back = poke(wire, &Handshake::new([7; 20], [1; 20]).encode()).await;
    assert!(back.is_empty(), "a stranger learns nothing");
    // Our info hash, but a plain client's extended handshake: answered, then closed.
    let mut plain = Handshake::new(rendezvous, [1; 20]).encode().to_vec();
    plain.extend_from_slice(&frame_extended(EXT_HANDSHAKE, b"d1:md6:ut_pexi1eee"));
    let back = poke(wire, &plain).await;
    assert_eq!(&back[..20], b"\x13BitTorrent protocol");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.status().evidence, 0, "plain clients are not evidence");

    // Garbage that is no handshake (a scanner, an HTTP client on the wrong port, or bytes
    // anyone could inject): closed, not evidence. An oversized message and a message cut
    // short after our handshake: each closes and is recorded (never counted toward the
    // blacklist).
    poke(wire, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut ours = Handshake::new(rendezvous, [1; 20]).encode().to_vec();
    ours.extend_from_slice(&frame_extended(
        EXT_HANDSHAKE,
        &swarmsite_node::wire::message::ExtHandshake::ours(None, None, None).encode(),
    ));
    let mut oversized = ours.clone();
    oversized.extend_from_slice(&(1u32 << 20).to_be_bytes());
    poke(wire, &oversized).await;
    let mut truncated = ours.clone();
    truncated.extend_from_slice(&frame_extended(1, b"d4:name20:")[..9]);
    poke(wire, &truncated).await;
    wait_for("two evidence entries", 10, || h.status().evidence >= 2).await;
    // Written by the evidence thread a moment later.
    let path = tmp.path().join("n/evidence.jsonl");
    wait_for("two evidence lines", 10, || {
        std::fs::read_to_string(&path).is_ok_and(|l| l.lines().count() >= 2)
    })
    .await;
    let log = std::fs::read_to_string(&path).unwrap();
    for code in ["wire-oversized", "wire-malformed"] {
        assert!(log.contains(code), "{code} missing from {log}");
    }
    assert!(
        !log.contains("wire-garbage"),
        "garbage is no evidence: {log}"
    );
    assert!(
        log.contains("127.0.0.1:"),
        "the peer address is recorded: {log}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_know_only_a_seed_find_each_other_through_the_rendezvous_dht() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let with_dht = |name: &str, ip: &str, peers: Vec<SocketAddr>| {
        let mut cfg = node_config(&tmp.path().join(name), &f.net, ip, peers);
        cfg.rendezvous = Some(format!("{ip}:0").parse().unwrap());
        cfg.rendezvous_bootstrap = vec![]; // loopback only
        cfg
    };
    let seed = Node::start(with_dht("seed", "127.0.0.60", vec![]))
        .await
        .unwrap();
    let seed_wire: SocketAddr = seed.handle().status().wire_addr.parse().unwrap();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let ip = format!("127.0.0.{}", 61 + i);
        nodes.push(
            Node::start(with_dht(&format!("n{i}"), &ip, vec![seed_wire]))
                .await
                .unwrap(),
        );
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    // Each volunteer was told only of the seed; through the DHT it finds the other two.
    wait_for("every volunteer connected to all the others", 60, || {
        handles.iter().all(|h| h.status().peers.len() >= 3)
    })
    .await;
    for n in nodes {
        n.shutdown().await;
    }
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_needs_its_token_and_streams_events() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let data = tmp.path().join("n");
    let node = start_node(&data, &f.net, "127.0.0.80", vec![]).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = swarmsite_node::control::serve(
        node.handle(),
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let info = swarmsite_node::control::client::info(&data).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("control.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        swarmsite_node::control::serve(node.handle(), "0.0.0.0:0".parse().unwrap(), cancel.clone())
            .await
            .is_err()
    );

    let raw = |req: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let no_token = raw(format!(
        "GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(no_token.starts_with("HTTP/1.1 401"), "{no_token}");
    let bad_host = raw(format!(
        "GET /api/status HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        info.token
    ))
    .await;
    assert!(bad_host.starts_with("HTTP/1.1 403"), "{bad_host}");
    // The token is never taken from a URL.
    let query_token = raw(format!(
        "GET /api/status?token={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        info.token
    ))
    .await;
    assert!(query_token.starts_with("HTTP/1.1 401"), "{query_token}");
    // Another web page cannot drive it, even with the token; the tray app's window can.
    let foreign = raw(format!(
        "GET /api/status HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        info.token
    ))
    .await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    let preflight = raw(format!(
        "OPTIONS /api/status HTTP/1.1\r\nHost: {addr}\r\nOrigin: tauri://localhost\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n"
    ))
    .await
    .to_ascii_lowercase();
    assert!(
        preflight.starts_with("http/1.1 200")
            && preflight.contains("access-control-allow-origin: tauri://localhost"),
        "{preflight}"
    );
    let foreign_preflight = raw(format!(
        "OPTIONS /api/status HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
    ))
    .await
    .to_ascii_lowercase();
    assert!(
        !foreign_preflight.contains("access-control-allow-origin"),
        "{foreign_preflight}"
    );
    // The dashboard's files need no token (they hold no secret), and may not be framed.
    let page = raw(format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("frame-ancestors 'none'"),
        "{page}"
    );
    let status = tokio::task::spawn_blocking({
        let info = info.clone();
        move || swarmsite_node::control::client::request(&info, "GET", "/api/status", None).unwrap()
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["network"], "TESTLEAKS");
    assert!(v["served_version"].is_null());

    // The event stream reports the release being accepted and switched in.
    let mut events = tokio::net::TcpStream::connect(addr).await.unwrap();
    events
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
                info.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut lines = BufReader::new(events).lines();
    let (dir, rec) = f.releases[0].clone();
    let publish = serde_json::json!({ "dir": dir }).to_string();
    let reply = tokio::task::spawn_blocking({
        let info = info.clone();
        move || {
            swarmsite_node::control::client::request(&info, "POST", "/api/publish", Some(&publish))
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(reply.contains("site release v1 accepted"), "{reply}");
    assert!(!rec.is_empty());
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l: &String| l.contains("\"switched\"")) {
        assert!(Instant::now() < deadline, "no switched event: {seen:?}");
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if line.starts_with("data:") {
            seen.push(line);
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("record-accepted")),
        "{seen:?}"
    );
    let evidence = tokio::task::spawn_blocking(move || {
        swarmsite_node::control::client::request(&info, "GET", "/api/evidence", None).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(evidence.trim(), "[]");
    cancel.cancel();
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_node_is_cut_off() {
    use swarmsite_node::content::Blacklist;
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let p = start_node(&tmp.path().join("p"), &f.net, "127.0.0.100", vec![]).await;
    let pw: SocketAddr = p.handle().status().wire_addr.parse().unwrap();
    let a = start_node(&tmp.path().join("a"), &f.net, "127.0.0.101", vec![pw]).await;
    let aw: SocketAddr = a.handle().status().wire_addr.parse().unwrap();
    let m = start_node(&tmp.path().join("m"), &f.net, "127.0.0.102", vec![aw]).await;
    let (ah, ph) = (a.handle(), p.handle());
    wait_for("A connected to P and M", 30, || {
        ah.status().peers.len() == 2
    })
    .await;

    let tag = f.net.bundle().network();
    let name = SystemName::new(tag, kind::AUTHORIZED_FILE, 1, 1);
    let list = Blacklist::from_text(
        "127.0.0.102 forged releases\n10.0.0.0/8 test range\n",
        now(),
    )
    .unwrap();
    let record = |body: Vec<u8>, key: &str| {
        let mut r = Record::new(name, now(), Payload::Body(body)).unwrap();
        r.sign(&publisher::load_key(&f.net.root().join(key), PASS).unwrap());
        r.encode().unwrap()
    };
    // Signed by the site role instead of the blacklist role: refused.
    let wrong = record(list.encode(), "keys/site/v1/key-1.pem");
    assert!(
        ph.submit(wrong, None)
            .await
            .unwrap_err()
            .contains("valid signatures")
    );
    assert!(ph.status().blacklist.is_none());

    ph.submit(record(list.encode(), "keys/blacklist/v1/key-1.pem"), None)
        .await
        .unwrap();
    wait_for("A applies blacklist v1", 30, || {
        ah.status().blacklist.is_some_and(|b| b.version == 1)
    })
    .await;
    wait_for("A drops M", 30, || {
        ah.status()
            .peers
            .iter()
            .all(|p| !p.addr.starts_with("127.0.0.102"))
    })
    .await;
    // M keeps dialling A every few seconds; A refuses it each time.
    wait_for("A refuses M's reconnections", 30, || {
        ah.status().blacklist.is_some_and(|b| b.refused >= 2)
    })
    .await;
    let b = ah.status().blacklist.unwrap();
    assert_eq!(b.entries.len(), 2);
    assert_eq!(b.entries[1].addr, "10.0.0.0/8");
    assert!(
        !b.closed.is_empty() && b.closed.iter().all(|a| a.starts_with("127.0.0.102:")),
        "the status names what it closed: {:?}",
        b.closed
    );
    assert!(
        ah.status()
            .peers
            .iter()
            .any(|p| p.addr.starts_with("127.0.0.100")),
        "honest peers stay"
    );
    m.shutdown().await;
    a.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgers_are_blacklisted_automatically() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let mut cfg = node_config(&tmp.path().join("auto"), &f.net, "127.0.0.110", vec![]);
    cfg.auto_blacklist = Some(std::sync::Arc::new(swarmsite_node::node::AutoBlacklist {
        key: publisher::load_key(&f.net.root().join("keys/blacklist/v1/key-1.pem"), PASS).unwrap(),
        threshold: 2,
        interval: Duration::from_secs(1),
    }));
    let auto = Node::start(cfg).await.unwrap();
    let aw: SocketAddr = auto.handle().status().wire_addr.parse().unwrap();
    let honest = start_node(&tmp.path().join("h"), &f.net, "127.0.0.111", vec![aw]).await;
    let (ah, hh) = (auto.handle(), honest.handle());
    wait_for("honest node connected", 30, || {
        !hh.status().peers.is_empty()
    })
    .await;

    let tag = f.net.bundle().network();
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    let attacker = swarmsite_node::keys::PrivateKey::generate(MIN_BITS).unwrap();
    let forged: Vec<Vec<u8>> = (3..5)
        .map(|v| {
            let mut r = Record::new(
                SystemName::new(tag, kind::SITE_RELEASE, 1, v),
                now(),
                Payload::Torrent {
                    ih: [v as u8; 20],
                    size: 1,
                },
            )
            .unwrap();
            r.sign(&attacker);
            r.encode().unwrap()
        })
        .collect();
    // One stray failure is not enough to be listed...
    hostile_push("127.0.0.112", aw, rendezvous, forged[..1].to_vec()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        ah.status().blacklist.is_none(),
        "listed after a single failure"
    );
    // ...a second one is.
    hostile_push("127.0.0.112", aw, rendezvous, forged[1..].to_vec()).await;
    wait_for("a signed blacklist reaches the honest node", 30, || {
        hh.status()
            .blacklist
            .is_some_and(|b| b.entries.iter().any(|e| e.addr == "127.0.0.112/32"))
    })
    .await;
    let b = hh.status().blacklist.unwrap();
    assert!(
        b.entries[0].reason.starts_with("auto: 2 x"),
        "{:?}",
        b.entries
    );
    // From now on the forger is refused at the door.
    hostile_push("127.0.0.112", aw, rendezvous, vec![]).await;
    wait_for("the forger is refused", 10, || {
        ah.status().blacklist.is_some_and(|b| b.refused >= 1)
    })
    .await;
    assert_eq!(
        ah.status().served_version,
        None,
        "nothing forged was ever served"
    );
    honest.shutdown().await;
    auto.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_false_announcement_in_the_dht_is_dropped_and_held_against_nobody() {
    use swarmsite_node::rendezvous::Rendezvous;
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let tag = f.net.bundle().network();
    let with_dht = |name: &str, ip: &str, peers: Vec<SocketAddr>| {
        let mut cfg = node_config(&tmp.path().join(name), &f.net, ip, peers);
        cfg.rendezvous = Some(format!("{ip}:0").parse().unwrap());
        cfg
    };
    let seed = Node::start(with_dht("seed", "127.0.0.130", vec![]))
        .await
        .unwrap();
    let (dht_port, dht_id) = seed.handle().status().dht.unwrap();
    let seed_wire: SocketAddr = seed.handle().status().wire_addr.parse().unwrap();

    // The liar: a DHT node that announces, under the node rendezvous name, a port where
    // something that is not a swarmsite node answers.
    let junk = tokio::net::TcpListener::bind("127.0.0.131:0")
        .await
        .unwrap();
    let junk_port = junk.local_addr().unwrap().port();
    // How often the honest node (127.0.0.132) dials it.
    let dialled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let junk_task = {
        let dialled = std::sync::Arc::clone(&dialled);
        tokio::spawn(async move {
            while let Ok((mut s, from)) = junk.accept().await {
                if from.ip().to_string() == "127.0.0.132" {
                    dialled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        })
    };
    let liar = std::sync::Arc::new(
        Rendezvous::start(tag, "127.0.0.131:0".parse().unwrap(), vec![])
            .await
            .unwrap(),
    );
    let id: [u8; 20] = hex::decode(&dht_id).unwrap().try_into().unwrap();
    liar.add_contact(id, format!("127.0.0.130:{dht_port}").parse().unwrap())
        .await;
    liar.refresh().await.unwrap();
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    // The seed's DHT starts once a wire peer names a DHT node, so the liar keeps
    // announcing until it is heard (the task is aborted at the end).
    let announcing = {
        let liar = std::sync::Arc::clone(&liar);
        tokio::spawn(async move {
            loop {
                liar.find(rendezvous, Some(junk_port), Duration::from_secs(1))
                    .await;
            }
        })
    };

    // An honest node looking for others under that name meets the liar's port once:
    // the entry is dropped, not dialled again round after round (every 2 s here), and
    // nothing is held against the address it names (anyone can write DHT entries).
    let node = Node::start(with_dht("n", "127.0.0.132", vec![seed_wire]))
        .await
        .unwrap();
    let count = || dialled.load(std::sync::atomic::Ordering::SeqCst);
    wait_for("the honest node dials the DHT entry", 60, || count() >= 1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(count(), 1, "a false DHT entry is not dialled again soon");
    let evidence = std::fs::read_to_string(tmp.path().join("n/evidence.jsonl")).unwrap_or_default();
    assert!(
        !evidence.contains("127.0.0.131"),
        "a DHT entry is no evidence against the address it names: {evidence}"
    );
    junk_task.abort();
    announcing.abort();
    liar.stop().await;
    node.shutdown().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_blacklist_travels_as_a_torrent_and_grows_automatically() {
    use swarmsite_node::content::Blacklist;
    use swarmsite_node::publisher::{PAYLOAD_DIR, TORRENT_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture();
    let tag = f.net.bundle().network();
    let key = publisher::load_key(&f.net.root().join("keys/blacklist/v1/key-1.pem"), PASS).unwrap();

    // 300 entries: far too long for a record body, so it goes as a torrent of one file,
    // laid out like a publication.
    let text: String = (0..300)
        .map(|i| format!("10.9.{}.{} scraper\n", i / 250, i % 250))
        .collect();
    let list = Blacklist::from_text(&text, now()).unwrap();
    let body = list.encode();
    assert!(body.len() > swarmsite_node::record::MAX_BODY_LEN);
    let published = tmp.path().join("bl-v1");
    std::fs::create_dir_all(published.join(PAYLOAD_DIR)).unwrap();
    let file = published.join(PAYLOAD_DIR).join("blacklist.bencode");
    std::fs::write(&file, &body).unwrap();
    let t = swarmsite_node::metainfo_file::make(&file, "blacklist.bencode").unwrap();
    std::fs::write(published.join(TORRENT_FILE), &t.bytes).unwrap();
    let mut r = Record::new(
        SystemName::new(tag, kind::AUTHORIZED_FILE, 1, 1),
        now(),
        Payload::Torrent {
            ih: t.info_hash,
            size: t.total_size,
        },
    )
    .unwrap();
    r.sign(&key);

    let mut cfg = node_config(&tmp.path().join("auto"), &f.net, "127.0.0.150", vec![]);
    cfg.auto_blacklist = Some(std::sync::Arc::new(swarmsite_node::node::AutoBlacklist {
        key,
        threshold: 1,
        interval: Duration::from_secs(1),
    }));
    let auto = Node::start(cfg).await.unwrap();
    let aw: SocketAddr = auto.handle().status().wire_addr.parse().unwrap();
    let honest = start_node(&tmp.path().join("h"), &f.net, "127.0.0.151", vec![aw]).await;
    let (ah, hh) = (auto.handle(), honest.handle());
    ah.submit(r.encode().unwrap(), Some(published))
        .await
        .unwrap();
    wait_for("the long list in force on the honest node", 60, || {
        hh.status()
            .blacklist
            .is_some_and(|b| b.version == 1 && b.entries.len() == 300 && b.in_bittorrent)
    })
    .await;

    // One forgery (threshold 1 here) and the auto node's next version, 301 entries,
    // goes out as a torrent too.
    let attacker = swarmsite_node::keys::PrivateKey::generate(MIN_BITS).unwrap();
    let mut forged = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 9),
        now(),
        Payload::Torrent {
            ih: [9; 20],
            size: 1,
        },
    )
    .unwrap();
    forged.sign(&attacker);
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    hostile_push(
        "127.0.0.152",
        aw,
        rendezvous,
        vec![forged.encode().unwrap()],
    )
    .await;
    wait_for("the grown list on the honest node", 60, || {
        hh.status().blacklist.is_some_and(|b| {
            b.version == 2
                && b.entries.len() == 301
                && b.entries.iter().any(|e| e.addr == "127.0.0.152/32")
        })
    })
    .await;
    // The superseded list's files are gone; the new one is kept and seeded.
    let lists = tmp
        .path()
        .join("h/networks")
        .join(tag.as_str())
        .join("blacklists");
    wait_for("v1's files removed", 10, || {
        !lists.join(hex::encode(t.info_hash)).exists()
    })
    .await;
    assert_eq!(std::fs::read_dir(&lists).unwrap().count(), 1);
    honest.shutdown().await;
    auto.shutdown().await;
}
