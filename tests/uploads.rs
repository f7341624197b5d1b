//! Anonymous uploads end to end (SPEC §7): real nodes on loopback addresses pass a
//! sealed container hop by hop, fluff it through librqbit, the intake opens it and
//! publishes a receipt, and every node lets its copy go. Delays are milliseconds.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use swarmsite_node::node::{NodeConfig, NodeEvent, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::upload::{IntakeConfig, UploadConfig};

const PASS: &[u8] = b"upload test";

/// One network (its keys made once per test binary).
fn network() -> &'static (tempfile::TempDir, NetworkDir) {
    static N: std::sync::OnceLock<(tempfile::TempDir, NetworkDir)> = std::sync::OnceLock::new();
    N.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // One key per role keeps the key generation short; rotations need one signer.
        let mut opts = InitOptions::one_site("TESTLEAKS".parse().unwrap(), "testleaks");
        (opts.keys_per_role, opts.threshold, opts.software_sign) = (1, 1, 1);
        let net = NetworkDir::init(&dir.path().join("net"), &opts, PASS, now()).unwrap();
        (dir, net)
    })
}

fn key(net: &NetworkDir, role: &str, version: u32, n: u32) -> swarmsite_node::keys::PrivateKey {
    publisher::load_key(
        &net.root()
            .join(format!("keys/{role}/v{version}/key-{n}.pem")),
        PASS,
    )
    .unwrap()
}

/// Upload settings for tests: no wait, hops of 50–300 ms, quick retries, room for many
/// offers.
fn fast() -> UploadConfig {
    let mut u = UploadConfig::default();
    u.stem.originator_wait_ms = (0, 0);
    u.stem.delay_ms = (50, 300);
    u.stem.retry_ms = 300;
    u.stem.failsafe_ms = (120_000, 180_000);
    u.transfer.stall_ms = 10_000;
    u.transfer.offers_burst = 200;
    u
}

fn upload_node(data: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut cfg = node_config(data, net, ip, peers);
    cfg.uploads = fast();
    cfg
}

/// The intake node: an upload node holding the intake key, opening uploads into `out`.
fn intake_node(data: &Path, net: &NetworkDir, ip: &str, out: &Path) -> NodeConfig {
    let mut cfg = upload_node(data, net, ip, vec![]);
    cfg.uploads.intake = Some(intake(net, out));
    cfg
}

fn intake(net: &NetworkDir, out: &Path) -> Arc<IntakeConfig> {
    Arc::new(IntakeConfig {
        keys: vec![key(net, "intake", 1, 1)],
        signer: key(net, "documents", 1, 1),
        out: out.to_path_buf(),
        receipt_interval: Duration::from_millis(500),
    })
}

fn wire(h: &NodeHandle) -> SocketAddr {
    h.status().wire_addr.parse().unwrap()
}

/// Files under `dir`, relative, with their bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = swarmsite_node::metainfo_file::list_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| {
            let rel: PathBuf = f.path.iter().collect();
            let bytes = std::fs::read(dir.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Bytes of containers under a node's `uploads/` folder (stem and fluff copies).
fn held_bytes(data: &Path) -> u64 {
    ["stem", "fluff"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(data.join("uploads").join(s))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|e| std::fs::metadata(e.path().join("upload")).map_or(0, |m| m.len()))
        .sum()
}

/// Packs `inputs` at `h` and waits until the container is queued; returns its info hash.
async fn queue(h: &NodeHandle, inputs: Vec<PathBuf>) -> String {
    let view = h.upload(inputs, None).await.unwrap();
    let token = view.token;
    for _ in 0..600 {
        let list = h.uploads().await.unwrap();
        if let Some(p) = list.packing.iter().find(|p| p.token == token) {
            assert!(p.error.is_none(), "{:?}", p.error);
        }
        if let Some(e) = list
            .entries
            .iter()
            .find(|e| e.token.as_deref() == Some(&token))
        {
            assert!(e.originated);
            return e.ih.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not packed in time");
}

/// Every upload event a node emits: (info hash, state, when), in order.
type Events = Arc<std::sync::Mutex<Vec<(String, String, std::time::Instant)>>>;

fn record_events(h: &NodeHandle) -> Events {
    let log = Events::default();
    let mut rx = h.subscribe();
    let l = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(NodeEvent::Upload { ih, state, .. }) => {
                    let state = serde_json::to_value(state).unwrap();
                    let state = state.as_str().unwrap().to_string();
                    l.lock()
                        .unwrap()
                        .push((ih, state, std::time::Instant::now()));
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    log
}

/// When each upload first waited for a hop at the node (its first `waiting` event).
fn first_waiting(events: &Events) -> HashMap<[u8; 20], std::time::Instant> {
    let mut first = HashMap::new();
    for (ih, state, at) in events.lock().unwrap().iter() {
        if state == "waiting" {
            let ih: [u8; 20] = hex::decode(ih).unwrap().try_into().unwrap();
            first.entry(ih).or_insert(*at);
        }
    }
    first
}

/// The links of the next node of a ring of `n` with chords, given the wire addresses of
/// the nodes before it: the one before, the one three back, and the first for the last.
fn ring_links(wires: &[SocketAddr], n: usize) -> Vec<SocketAddr> {
    let i = wires.len();
    let mut peers = Vec::new();
    if i > 0 {
        peers.push(wires[i - 1]);
    }
    if i > 2 {
        peers.push(wires[i - 3]);
    }
    if i + 1 == n && n > 1 {
        peers.push(wires[0]);
    }
    peers
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; n];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// 5 MiB over a few files and folders: mostly incompressible, some text.
fn five_mib_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("scans/2026")).unwrap();
    std::fs::write(dir.join("scans/2026/a.bin"), random_bytes(3 << 20, 1)).unwrap();
    std::fs::write(dir.join("scans/b.bin"), random_bytes(1 << 20, 2)).unwrap();
    let memo: String = (0..60_000)
        .map(|i| format!("line {i} of the memo\n"))
        .collect();
    std::fs::write(dir.join("memo.txt"), &memo.as_bytes()[..1 << 20]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_carry_a_folder_to_the_intake_and_its_receipt_frees_every_cache() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    // The intake takes no stem transfer here, so the upload must reach it by fluff.
    let out = tmp.path().join("intake-out");
    let mut icfg = intake_node(&tmp.path().join("intake"), net, "127.0.0.40", &out);
    (
        icfg.uploads.transfer.offers_burst,
        icfg.uploads.transfer.offers_per_hour,
    ) = (0, 0);
    let intake_node = OwnRuntime::spawn(icfg).await;
    let iw = wire(&intake_node.handle);
    // Ten nodes in a ring with chords; the intake hangs off node 5.
    let mut nodes: Vec<OwnRuntime> = Vec::new();
    let mut wires = Vec::new();
    for i in 0..10 {
        let ip = format!("127.0.0.{}", 41 + i);
        let mut peers = ring_links(&wires, 10);
        if i == 5 {
            peers.push(iw);
        }
        let mut cfg = upload_node(&tmp.path().join(format!("n{i}")), net, &ip, peers);
        cfg.uploads.stem.relay_probability = 0.6;
        let n = OwnRuntime::spawn(cfg).await;
        wires.push(wire(&n.handle));
        nodes.push(n);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("every link up", 30, || {
        handles.iter().all(|h| h.status().peers.len() >= 2)
            && !intake_node.handle.status().peers.is_empty()
    })
    .await;
    let events: Vec<_> = handles.iter().map(record_events).collect();

    let input = tmp.path().join("leak");
    five_mib_folder(&input);
    let t0 = std::time::Instant::now();
    let ih = queue(&handles[0], vec![input.clone()]).await;
    let opened = out.join(&ih).join("leak");
    wait_for("the upload opened at the intake", 120, || opened.exists()).await;
    assert_eq!(tree(&opened), tree(&input), "byte-identical");
    let arrived = t0.elapsed();

    // It went the whole way: a stem, one node switching to fluff, BitTorrent fetches.
    let states = |i: usize| -> Vec<String> {
        events[i]
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, ..)| *h == ih)
            .map(|(_, s, _)| s.clone())
            .collect()
    };
    let fluffed = (0..10)
        .filter(|&i| states(i).contains(&"fluffed".into()))
        .count();
    let fetched = (0..10)
        .filter(|&i| states(i).contains(&"fetching".into()))
        .count();
    assert_eq!(states(0).first().map(String::as_str), Some("waiting"));
    assert!(fluffed >= 1, "a node switched it to fluff");
    assert!(fetched >= 1, "nodes fetched it by BitTorrent");

    // The receipt frees every copy, everywhere, and says so.
    wait_for("every cache freed", 60, || {
        (0..10).all(|i| held_bytes(&tmp.path().join(format!("n{i}"))) == 0)
    })
    .await;
    for (i, h) in handles.iter().enumerate() {
        let list = h.uploads().await.unwrap();
        for e in list.entries.iter().filter(|e| e.ih == ih) {
            assert_eq!(
                serde_json::to_value(e.state).unwrap(),
                "receipted",
                "node {i}"
            );
            assert_eq!(e.originated, i == 0, "only node 0 marks it as its own");
        }
        assert!(h.status().uploads.receipts_version >= 1);
    }
    eprintln!(
        "5 MiB folder: arrived in {arrived:?}, {fluffed} fluff node(s), {fetched} fetches, all freed in {:?}",
        t0.elapsed()
    );
    for n in nodes {
        n.shutdown().await;
    }
    intake_node.shutdown().await;
}

/// A minimal, lenient bencode value, for the spy's KRPC (librqbit's messages are not
/// always in canonical key order, which the project's strict decoder refuses).
#[derive(Clone, Debug)]
enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(Vec<u8>, B)>),
}

impl B {
    fn parse(b: &[u8], at: &mut usize) -> Option<B> {
        match *b.get(*at)? {
            b'i' => {
                let end = *at + b[*at..].iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(&b[*at + 1..end]).ok()?.parse().ok()?;
                *at = end + 1;
                Some(B::I(n))
            }
            b'l' | b'd' => {
                let dict = b[*at] == b'd';
                *at += 1;
                let (mut l, mut d) = (Vec::new(), Vec::new());
                while *b.get(*at)? != b'e' {
                    if dict {
                        let B::S(k) = B::parse(b, at)? else {
                            return None;
                        };
                        d.push((k, B::parse(b, at)?));
                    } else {
                        l.push(B::parse(b, at)?);
                    }
                }
                *at += 1;
                Some(if dict { B::D(d) } else { B::L(l) })
            }
            _ => {
                let colon = *at + b[*at..].iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(&b[*at..colon]).ok()?.parse().ok()?;
                let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
                *at = colon + 1 + n;
                Some(B::S(s))
            }
        }
    }

    fn get(&self, k: &str) -> Option<&B> {
        match self {
            B::D(d) => d
                .iter()
                .find(|(key, _)| key == k.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            B::S(s) => Some(s),
            _ => None,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::I(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            B::S(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            B::L(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            B::D(d) => {
                let mut d = d.clone();
                d.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'd');
                for (k, v) in &d {
                    B::S(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn dict(pairs: Vec<(&str, B)>) -> B {
    B::D(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// What the spy saw: when, from whom (a node's address), and about which upload.
#[derive(Clone, Debug)]
struct Sighting {
    at: std::time::Instant,
    who: std::net::IpAddr,
    ih: [u8; 20],
    what: &'static str,
}

type Sightings = Arc<std::sync::Mutex<Vec<Sighting>>>;

/// A spy that is the whole DHT of every node's librqbit: it answers `find_node` with
/// its own sockets, `get_peers` with a token and a node id right next to the info hash
/// (so the node announces to it), and records every `get_peers` and `announce_peer`.
/// A node is told apart by the BitTorrent port it announces (librqbit's DHT socket is
/// bound to 0.0.0.0, so on loopback every query comes from 127.0.0.1).
async fn dht_spy(
    ip: &str,
    log: Sightings,
    ports: Arc<std::sync::Mutex<HashMap<u16, std::net::IpAddr>>>,
) -> (SocketAddr, tokio::task::JoinSet<()>) {
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(Arc::new(
            tokio::net::UdpSocket::bind(format!("{ip}:0"))
                .await
                .unwrap(),
        ));
    }
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let ids: Vec<[u8; 20]> = (0..4).map(|i| [0x80 + i as u8; 20]).collect();
    let compact = |id: &[u8; 20], a: SocketAddr| {
        let std::net::IpAddr::V4(v4) = a.ip() else {
            unreachable!()
        };
        let mut c = id.to_vec();
        c.extend_from_slice(&v4.octets());
        c.extend_from_slice(&a.port().to_be_bytes());
        c
    };
    let all_nodes: Vec<u8> = ids
        .iter()
        .zip(&addrs)
        .flat_map(|(id, a)| compact(id, *a))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (log, ports, all_nodes, me, my_id) = (
            Arc::clone(&log),
            Arc::clone(&ports),
            all_nodes.clone(),
            addrs[i],
            ids[i],
        );
        tasks.spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let Some(msg) = B::parse(&buf[..n], &mut 0) else {
                    continue;
                };
                let (Some(t), Some(B::S(q))) = (msg.get("t").cloned(), msg.get("q")) else {
                    continue;
                };
                let args = msg.get("a");
                let ih: Option<[u8; 20]> = args
                    .and_then(|a| a.get("info_hash"))
                    .and_then(B::bytes)
                    .and_then(|b| b.try_into().ok());
                let mut r = vec![("id", B::S(my_id.to_vec()))];
                match (q.as_slice(), ih) {
                    (b"get_peers", Some(ih)) => {
                        // Its id: next to the info hash, so the node announces to it.
                        let mut near = ih;
                        near[19] ^= 1;
                        r[0] = ("id", B::S(near.to_vec()));
                        r.push(("token", B::S(b"spy".to_vec())));
                        r.push(("nodes", B::S(compact(&near, me))));
                    }
                    (b"announce_peer", Some(ih)) => {
                        let port = args.and_then(|a| a.get("port")).and_then(|p| match p {
                            B::I(p) => u16::try_from(*p).ok(),
                            _ => None,
                        });
                        if let Some(who) = port.and_then(|p| ports.lock().unwrap().get(&p).copied())
                        {
                            log.lock().unwrap().push(Sighting {
                                at: std::time::Instant::now(),
                                who,
                                ih,
                                what: "dht-announce",
                            });
                        }
                    }
                    _ => r.push(("nodes", B::S(all_nodes.clone()))),
                }
                let reply = dict(vec![("t", t), ("y", B::S(b"r".to_vec())), ("r", dict(r))]);
                let mut out = Vec::new();
                reply.encode(&mut out);
                let _ = sock.send_to(&out, from).await;
            }
        });
    }
    (addrs[0], tasks)
}

/// The spy's wire face: records every `up` with the sender's address, and turns down
/// every stem transfer.
async fn wire_spy(listener: tokio::net::TcpListener, rendezvous: [u8; 20], log: Sightings) {
    use swarmsite_node::wire::message::Blob;
    use swarmsite_node::wire::{Event, Message, WireConfig};
    let port = listener.local_addr().unwrap().port();
    let cfg = WireConfig::new(rendezvous, [0x55; 20], Some(port));
    wire_server(listener, cfg, move |remote, ev| match ev {
        Event::Message(Message::Up { ih }) => {
            log.lock().unwrap().push(Sighting {
                at: std::time::Instant::now(),
                who: remote.ip(),
                ih,
                what: "up",
            });
            vec![]
        }
        Event::Message(Message::Blob(Blob::Offer { id, .. })) => {
            vec![Message::Blob(Blob::no(id, "busy"))]
        }
        _ => vec![],
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spy_never_sees_the_originator_or_a_stem_relay_announce_before_the_fluff() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let log: Sightings = Default::default();
    let ports: Arc<std::sync::Mutex<HashMap<u16, std::net::IpAddr>>> = Default::default();
    let (dht, _dht_tasks) = dht_spy("127.0.0.60", Arc::clone(&log), Arc::clone(&ports)).await;
    let spy_listener = tokio::net::TcpListener::bind("127.0.0.60:0").await.unwrap();
    let spy_wire = spy_listener.local_addr().unwrap();
    let rendezvous = *swarmsite_node::name::SystemName::new(
        net.bundle().network(),
        swarmsite_node::name::kind::NOTICE,
        1,
        0,
    )
    .as_bytes();
    let spy = tokio::spawn(wire_spy(spy_listener, rendezvous, Arc::clone(&log)));

    // Eight nodes: each knows the one before, one three back, and the spy. Their
    // librqbit DHT is the spy.
    let mut nodes: Vec<OwnRuntime> = Vec::new();
    let mut wires = Vec::new();
    for i in 0..8 {
        let ip = format!("127.0.0.{}", 61 + i);
        let mut peers = vec![spy_wire];
        peers.extend(ring_links(&wires, 8));
        let mut cfg = upload_node(&tmp.path().join(format!("n{i}")), net, &ip, peers);
        cfg.content_dht = Some(vec![dht.to_string()]);
        let n = OwnRuntime::spawn(cfg).await;
        let bt: SocketAddr = n.handle.status().bt_addr.unwrap().parse().unwrap();
        ports.lock().unwrap().insert(bt.port(), bt.ip());
        wires.push(wire(&n.handle));
        nodes.push(n);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("every link up", 30, || {
        handles.iter().all(|h| h.status().peers.len() >= 3)
    })
    .await;
    let events: Vec<_> = handles.iter().map(record_events).collect();
    let ips: Vec<std::net::IpAddr> = (0..8)
        .map(|i| format!("127.0.0.{}", 61 + i).parse().unwrap())
        .collect();

    // Twenty uploads, from every node in turn, all at once.
    let input = tmp.path().join("in");
    let mut uploads = Vec::new();
    for run in 0..20usize {
        let file = input.join(format!("note-{run}.txt"));
        std::fs::create_dir_all(&input).unwrap();
        std::fs::write(&file, format!("note {run}")).unwrap();
        let origin = run % 8;
        let ih = queue(&handles[origin], vec![file]).await;
        uploads.push((ih, origin));
    }
    let hex20 = |ih: &[u8; 20]| hex::encode(ih);
    // Each one is fluffed, and the spy hears of it from the fluff node.
    let announced = || {
        let log = log.lock().unwrap();
        uploads
            .iter()
            .map(|(ih, _)| {
                let fluff = (0..8).find(|&i| {
                    events[i]
                        .lock()
                        .unwrap()
                        .iter()
                        .any(|(h, s, _)| h == ih && s == "fluffed")
                });
                let seen = fluff.is_some_and(|f| {
                    log.iter()
                        .any(|s| hex20(&s.ih) == *ih && s.who == ips[f] && s.what == "dht-announce")
                });
                (fluff, seen)
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..600 {
        if announced().iter().all(|(_, seen)| *seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        announced().iter().all(|(_, seen)| *seen),
        "every upload fluffed and announced: {:?}; {} sightings",
        announced(),
        log.lock().unwrap().len()
    );
    // Let the fluff spread for a moment, so later announcements are seen too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = log.lock().unwrap().clone();
    for (run, (ih, origin)) in uploads.iter().enumerate() {
        let history = |i: usize| -> Vec<String> {
            events[i]
                .lock()
                .unwrap()
                .iter()
                .filter(|(h, ..)| h == ih)
                .map(|(_, s, _)| s.clone())
                .collect()
        };
        let fluff: Vec<usize> = (0..8)
            .filter(|&i| history(i).contains(&"fluffed".into()))
            .collect();
        let stem: Vec<usize> = (0..8)
            .filter(|&i| {
                history(i).first().map(String::as_str) == Some("waiting") && !fluff.contains(&i)
            })
            .collect();
        // The originator held it on the stem first (it may have fluffed it later, when
        // the walk brought it back: the same coin as any relay).
        assert_eq!(
            history(*origin).first().map(String::as_str),
            Some("waiting"),
            "run {run}: the originator held it on the stem"
        );
        let seen: Vec<&Sighting> = log.iter().filter(|s| hex20(&s.ih) == *ih).collect();
        let first_fluff = seen
            .iter()
            .filter(|s| fluff.iter().any(|&f| s.who == ips[f]))
            .map(|s| s.at)
            .min()
            .expect("the fluff node announced");
        for s in &seen {
            let i = ips.iter().position(|ip| *ip == s.who).unwrap();
            assert!(
                !(stem.contains(&i) && s.at < first_fluff),
                "run {run}: stem node {i} ({}) was seen ({}) before the fluff",
                if i == *origin {
                    "the originator"
                } else {
                    "a relay"
                },
                s.what
            );
        }
        eprintln!(
            "run {run}: origin {origin}, stem {stem:?}, fluff {fluff:?}, {} sightings",
            seen.len()
        );
    }
    spy.abort();
    for n in nodes {
        n.shutdown().await;
    }
}

/// A scripted peer: connects to the node at `to` from `ip` (a fresh peer id) and
/// answers each wire event with `answer`, for `hold` or until the node closes.
async fn scripted_peer(
    ip: &str,
    to: SocketAddr,
    rendezvous: [u8; 20],
    hold: Duration,
    mut answer: impl FnMut(swarmsite_node::wire::Event) -> Vec<swarmsite_node::wire::Message>,
) {
    use swarmsite_node::wire::{Connection, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ms = swarmsite_node::clock::unix_ms;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = socket.connect(to).await else {
        return;
    };
    let mut conn = Connection::new(
        WireConfig::new(rendezvous, rand::random(), None),
        ms(),
        true,
    );
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + hold;
    while std::time::Instant::now() < deadline && !conn.is_closed() {
        while let Some(ev) = conn.poll_event() {
            for m in answer(ev) {
                conn.send(&m, ms());
            }
        }
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
            Ok(Ok(n)) => conn.handle_input(&buf[..n], ms()),
            Err(_) => conn.handle_timeout(ms()),
        }
    }
}

/// A spy on the stem of upload `ih`: announces it (`ss_up`) as if it were in fluff,
/// and then never gives its metadata nor seeds it, for `hold`. Returns the metadata
/// requests the node sent it.
async fn announce_and_stall(
    ip: &str,
    to: SocketAddr,
    rendezvous: [u8; 20],
    ih: [u8; 20],
    hold: Duration,
) -> usize {
    use swarmsite_node::wire::{Event, Message};
    let mut asked = 0;
    scripted_peer(ip, to, rendezvous, hold, |ev| match ev {
        Event::Ready { .. } => vec![Message::Up { ih }],
        Event::Message(Message::MetaGet { .. }) => {
            asked += 1;
            vec![]
        }
        _ => vec![],
    })
    .await;
    asked
}

/// Issue 22: a spy on the stem knows the upload's info hash, and announced it upstream
/// as if it were in fluff, never seeding it. That used to end the stem there for good
/// (no hop, no fail-safe). Now only a fluff copy fetched and checked ends a stem: the
/// originator's fetch goes nowhere, and its hop to the intake goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_announcement_does_not_stop_an_upload_reaching_the_intake() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let out = tmp.path().join("intake-out");
    let intake_node = OwnRuntime::spawn(intake_node(
        &tmp.path().join("intake"),
        net,
        "127.0.0.100",
        &out,
    ))
    .await;
    // The originator dialled only the intake; its first hop waits 3 s, time enough for
    // the spy to speak first.
    let mut cfg = upload_node(
        &tmp.path().join("origin"),
        net,
        "127.0.0.101",
        vec![wire(&intake_node.handle)],
    );
    cfg.uploads.stem.delay_ms = (3000, 3000);
    let origin = OwnRuntime::spawn(cfg).await;
    let h = origin.handle.clone();
    wait_for("the link up", 30, || !h.status().peers.is_empty()).await;
    let events = record_events(&h);

    let file = tmp.path().join("in/letter.txt");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "a letter past a spy").unwrap();
    let ih = queue(&h, vec![file]).await;
    let ih_bytes: [u8; 20] = hex::decode(&ih).unwrap().try_into().unwrap();
    let spy = tokio::spawn(announce_and_stall(
        "127.0.0.102",
        wire(&h),
        rendezvous(net),
        ih_bytes,
        Duration::from_secs(20),
    ));

    let opened = out.join(&ih).join("letter.txt");
    wait_for("the upload opened at the intake", 60, || opened.exists()).await;
    assert_eq!(std::fs::read(&opened).unwrap(), b"a letter past a spy");
    let history: Vec<String> = (events.lock().unwrap().iter())
        .filter(|(h, ..)| *h == ih)
        .map(|(_, s, _)| s.clone())
        .collect();
    assert!(history.contains(&"sent".to_string()), "{history:?}");
    assert!(!history.contains(&"cached".to_string()), "{history:?}");
    let asked = spy.await.unwrap();
    assert!(
        asked > 0,
        "the node took the announcement up (asked the spy for metadata)"
    );
    origin.shutdown().await;
    intake_node.shutdown().await;
}

/// Issue 22: a Sybil that opens 200 connections to a node (8 from each of 25
/// addresses, the most the node takes from one) is the first hop of none of its
/// uploads: a node's own uploads go to peers it dialled itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sybil_with_200_connections_is_no_uploads_first_hop() {
    use swarmsite_node::wire::message::Blob;
    use swarmsite_node::wire::{Event, Message};
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let mut relays = Vec::new();
    for i in 0..2 {
        let ip = format!("127.0.0.{}", 110 + i);
        let mut cfg = upload_node(&tmp.path().join(format!("r{i}")), net, &ip, vec![]);
        // They fluff what they get: no container comes back to the node, so every one
        // it offers is a first hop (one that comes back is relayed, and may go to a
        // peer that dialled in: the Sybil, as one host).
        cfg.uploads.stem.relay_probability = 0.0;
        relays.push(OwnRuntime::spawn(cfg).await);
    }
    let dialled: Vec<SocketAddr> = relays.iter().map(|r| wire(&r.handle)).collect();
    let origin = OwnRuntime::spawn(upload_node(
        &tmp.path().join("origin"),
        net,
        "127.0.0.112",
        dialled,
    ))
    .await;
    let h = origin.handle.clone();
    let offers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut sybil = tokio::task::JoinSet::new();
    for c in 0..200 {
        let ip = format!("127.0.1.{}", 1 + c / 8);
        let (offers, ready, to, rv) = (
            Arc::clone(&offers),
            Arc::clone(&ready),
            wire(&h),
            rendezvous(net),
        );
        sybil.spawn(async move {
            scripted_peer(&ip, to, rv, Duration::from_secs(60), |ev| match ev {
                Event::Ready { .. } => {
                    ready.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    vec![]
                }
                Event::Message(Message::Blob(Blob::Offer { id, .. })) => {
                    offers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    vec![Message::Blob(Blob::no(id, "busy"))]
                }
                _ => vec![],
            })
            .await
        });
    }
    wait_for("the Sybil's 200 connections and both relays up", 30, || {
        ready.load(std::sync::atomic::Ordering::Relaxed) == 200 && h.status().peers.len() >= 202
    })
    .await;
    let events = record_events(&h);
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut ihs = Vec::new();
    for n in 0..10 {
        let file = input.join(format!("note-{n}.txt"));
        std::fs::write(&file, format!("note {n}")).unwrap();
        ihs.push(queue(&h, vec![file]).await);
    }
    let all_sent = || {
        let ev = events.lock().unwrap();
        ihs.iter()
            .all(|ih| ev.iter().any(|(h, s, _)| h == ih && s == "sent"))
    };
    wait_for("every upload handed on", 60, all_sent).await;
    assert_eq!(
        offers.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the Sybil was offered a container"
    );
    sybil.abort_all();
    origin.shutdown().await;
    for r in relays {
        r.shutdown().await;
    }
}

/// What the stem spy saw, and from which node.
#[derive(Clone, Debug)]
enum Seen {
    /// A container's info hash, once the spy held it.
    Ih([u8; 32], [u8; 20]),
    /// A container offered by the node.
    Offer([u8; 32]),
    /// A container offered back to the node and taken.
    Bounced([u8; 32]),
    /// An `ss_up` announcement.
    Up([u8; 20]),
    /// An `ss_blob` message of this kind about a container, sent by the node.
    Blob(&'static str, [u8; 32]),
}

type SpyLog = Arc<std::sync::Mutex<Vec<(std::net::IpAddr, std::time::Instant, Seen)>>>;

/// A spy node on the stem, for nodes that dialled it. It hands the node at `feed_ip`
/// the containers of `feed` (one at a time), as the predecessor of a relay; it takes
/// every container a node offers, offers each back once (so the node shows what it
/// does with a container that loops back), takes the second offer, and never passes
/// anything on: the node's fail-safe must fluff it. Everything it sees is logged with
/// the sender's address.
async fn stem_spy(
    listener: tokio::net::TcpListener,
    rendezvous: [u8; 20],
    log: SpyLog,
    feed_ip: std::net::IpAddr,
    feed: Vec<Vec<u8>>,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut feed = Some(feed);
    while let Ok((s, from)) = listener.accept().await {
        let log = Arc::clone(&log);
        let mine = if from.ip() == feed_ip {
            feed.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        conns.spawn(spy_conn(s, from.ip(), rendezvous, log, mine));
    }
}

async fn spy_conn(
    mut s: tokio::net::TcpStream,
    ip: std::net::IpAddr,
    rendezvous: [u8; 20],
    log: SpyLog,
    feed: Vec<Vec<u8>>,
) {
    use sha2::Digest;
    use swarmsite_node::upload::transfer::{Local, TransferAction, TransferConfig, Transfers};
    use swarmsite_node::wire::message::Blob;
    use swarmsite_node::wire::{Connection, Event, Message, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ms = swarmsite_node::clock::unix_ms;
    let note = |what: Seen| {
        log.lock()
            .unwrap()
            .push((ip, std::time::Instant::now(), what))
    };
    let files = tempfile::tempdir().unwrap();
    let ih_of = |data: &[u8]| {
        let file = files.path().join("upload");
        std::fs::write(&file, data).unwrap();
        swarmsite_node::metainfo_file::make(&file, "upload")
            .unwrap()
            .info_hash
    };
    let mut conn = Connection::new(
        WireConfig::new(rendezvous, rand::random(), None),
        ms(),
        false,
    );
    let mut tx = Transfers::new(TransferConfig {
        incoming_per_peer: 64,
        incoming_total: 64,
        offers_burst: 1000,
        ..TransferConfig::default()
    });
    // What the spy can send: the feed first, then what it took.
    let mut held: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    let mut to_feed = std::collections::VecDeque::new();
    for c in feed {
        let id: [u8; 32] = sha2::Sha256::digest(&c).into();
        note(Seen::Ih(id, ih_of(&c)));
        held.insert(id, c);
        to_feed.push_back(id);
    }
    let (mut feeding, mut retry_at) = (None, 0);
    let mut partial: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
    let mut bounced = std::collections::HashSet::new();
    let mut ready = false;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..20_000 {
        if ready && feeding.is_none() && ms() >= retry_at {
            feeding = to_feed.pop_front();
            if let Some(id) = feeding {
                tx.send(1, id, held[&id].len() as u64, ms());
            }
        }
        let mut bounce = Vec::new();
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Ready { .. } => {
                    tx.peer_up(1, ip);
                    // A moment for the test to start listening to the node's events.
                    (ready, retry_at) = (true, ms() + 1000);
                }
                Event::Message(Message::Up { ih }) => note(Seen::Up(ih)),
                Event::Message(Message::Blob(b)) => {
                    let (kind, id) = match &b {
                        Blob::Offer { id, .. } => ("offer", *id),
                        Blob::Want { id, .. } => ("want", *id),
                        Blob::Data { id, .. } => ("data", *id),
                        Blob::Done { id } => ("done", *id),
                        Blob::No { id, .. } => ("no", *id),
                    };
                    note(Seen::Blob(kind, id));
                    if kind == "offer" {
                        note(Seen::Offer(id));
                        if held.contains_key(&id) && !bounced.contains(&id) {
                            bounce.push(id);
                        }
                    }
                    let whole = |id: &[u8; 32], _| {
                        if held.contains_key(id) {
                            Local::Whole
                        } else {
                            Local::Partial(0)
                        }
                    };
                    tx.handle(1, b, whole, ms());
                }
                Event::Closed(_) => return,
                _ => {}
            }
        }
        while let Some(a) = tx.poll_action() {
            match a {
                TransferAction::Send { msg, .. } => conn.send(&Message::Blob(msg), ms()),
                TransferAction::SendData { id, at, len, .. } => {
                    let data = held[&id][at as usize..(at + len) as usize].to_vec();
                    conn.send(&Message::Blob(Blob::Data { id, at, data }), ms());
                }
                TransferAction::Store { id, at, data, .. } => {
                    let b = partial.entry(id).or_default();
                    let end = at as usize + data.len();
                    if b.len() < end {
                        b.resize(end, 0);
                    }
                    b[at as usize..end].copy_from_slice(&data);
                    tx.stored(1, id, ms());
                }
                TransferAction::Verify { id, .. } => {
                    let data = partial.remove(&id).unwrap_or_default();
                    let ok = <[u8; 32]>::from(sha2::Sha256::digest(&data)) == id;
                    tx.verified(1, id, if ok { Ok(()) } else { Err("hash".into()) });
                    if ok {
                        note(Seen::Ih(id, ih_of(&data)));
                        held.insert(id, data);
                        bounce.push(id);
                    }
                }
                TransferAction::Delivered { id, .. } if feeding == Some(id) => {
                    // Handed over: the spy forgets the bytes, so the relay's hop
                    // carries them as an originator's does.
                    held.remove(&id);
                    feeding = None;
                }
                TransferAction::SendFailed { id, .. } if feeding == Some(id) => {
                    to_feed.push_front(id);
                    (feeding, retry_at) = (None, ms() + 200);
                }
                TransferAction::Delivered { id, .. } => note(Seen::Bounced(id)),
                _ => {}
            }
        }
        for id in bounce {
            if bounced.insert(id) {
                // Back to where it came from, once: the walk loops.
                tx.send(1, id, held[&id].len() as u64, ms());
            }
        }
        while let Some(TransferAction::Send { msg, .. }) = tx.poll_action() {
            conn.send(&Message::Blob(msg), ms());
        }
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        if conn.is_closed() {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
            Ok(Ok(n)) => conn.handle_input(&buf[..n], ms()),
            Err(_) => {
                conn.handle_timeout(ms());
                tx.handle_timeout(ms());
            }
        }
    }
}

/// The largest gap between two samples' empirical distribution functions (the
/// two-sample Kolmogorov–Smirnov statistic).
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let cdf = |s: &[f64], x: f64| s.iter().filter(|&&v| v <= x).count() as f64 / s.len() as f64;
    a.iter()
        .chain(b)
        .map(|&x| (cdf(a, x) - cdf(b, x)).abs())
        .fold(0.0, f64::max)
}

/// The KS statistic two samples of these sizes from one distribution stay under with
/// probability 0.999 (three comparisons per run: a false alarm in about 1 run in 300).
fn ks_bound(n: usize, m: usize) -> f64 {
    1.949 * (((n + m) as f64) / ((n * m).max(1) as f64)).sqrt()
}

/// Issue 22: an originator and a relay, each with a spy as its only peer, carry 25
/// uploads each: the originator its own, the relay those the spy itself hands it (the
/// spy is its predecessor too). The spy sees the same things from both: the same delay
/// before a hop, the same choice when it offers a container back (relay again with
/// probability 0.8, else fluff), the same fail-safe delay before a container it keeps
/// is fluffed, and the same messages. The originator's own wait before its first hop
/// (hours by default; 0 here) is not something a spy sees: it hides when the source
/// acted, not who it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spy_cannot_tell_an_originator_from_a_relay_over_50_uploads() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    const N: usize = 25;
    let (o_ip, r_ip): (std::net::IpAddr, std::net::IpAddr) = (
        "127.0.0.121".parse().unwrap(),
        "127.0.0.122".parse().unwrap(),
    );
    let feed = (0..N)
        .map(|n| {
            let dir = tmp.path().join(format!("s{n}"));
            sealed(net, &dir, format!("letter {n}").as_bytes())
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.120:0")
        .await
        .unwrap();
    let spy_addr = listener.local_addr().unwrap();
    let log: SpyLog = Arc::default();
    let spy = tokio::spawn(stem_spy(
        listener,
        rendezvous(net),
        Arc::clone(&log),
        r_ip,
        feed,
    ));
    let node = |dir: &str, ip: &str| {
        let mut cfg = upload_node(&tmp.path().join(dir), net, ip, vec![spy_addr]);
        // Delays long beside the scheduling noise of a loaded machine (~0.3 s).
        cfg.uploads.stem.delay_ms = (500, 4500);
        cfg.uploads.stem.failsafe_ms = (3000, 6000);
        cfg
    };
    // Each hop's start: when the node put the container in line for its next hop
    // (packed at the originator, received at the relay).
    let origin = OwnRuntime::spawn(node("origin", "127.0.0.121")).await;
    let o_events = record_events(&origin.handle);
    let relay = OwnRuntime::spawn(node("relay", "127.0.0.122")).await;
    let r_events = record_events(&relay.handle);
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for n in 0..N {
        let file = input.join(format!("memo-{n}.txt"));
        std::fs::write(&file, format!("memo {n}")).unwrap();
        origin.handle.upload(vec![file], None).await.unwrap();
    }
    let ihs = || {
        let l = log.lock().unwrap();
        let (mut ih, mut up) = (HashMap::new(), std::collections::HashSet::new());
        for (_, _, s) in l.iter() {
            match s {
                Seen::Ih(id, i) => {
                    ih.insert(*id, *i);
                }
                Seen::Up(i) => {
                    up.insert(*i);
                }
                _ => {}
            }
        }
        (ih, up)
    };
    // Done when the spy has heard `up` for all 50 (each fluffed on arrival, on the
    // loop-back, or by the fail-safe).
    wait_for("every upload fluffed", 120, || {
        let (ih, up) = ihs();
        ih.len() == 2 * N && ih.values().all(|i| up.contains(i))
    })
    .await;
    spy.abort();
    let (ih_of, _) = ihs();
    let mut start = first_waiting(&o_events);
    start.extend(first_waiting(&r_events));

    // Each upload as the spy saw it, from the node's first offer on.
    #[derive(Default)]
    struct Walk {
        offers: Vec<std::time::Instant>,
        bounced: Option<std::time::Instant>,
        up: Option<std::time::Instant>,
        shape: Vec<&'static str>,
    }
    let log = log.lock().unwrap().clone();
    let mut walks: HashMap<(std::net::IpAddr, [u8; 20]), Walk> = HashMap::new();
    for (ip, at, s) in &log {
        let id = match s {
            Seen::Offer(id) | Seen::Bounced(id) | Seen::Blob(_, id) => Some(id),
            _ => None,
        };
        let ih = match s {
            Seen::Up(ih) => *ih,
            Seen::Ih(..) => continue,
            _ => ih_of[id.expect("about a container")],
        };
        let w = walks.entry((*ip, ih)).or_default();
        match s {
            Seen::Offer(_) => w.offers.push(*at),
            Seen::Bounced(_) => w.bounced = Some(*at),
            Seen::Up(_) => w.up = w.up.or(Some(*at)),
            Seen::Blob(kind, _)
                if (!w.offers.is_empty() || *kind == "offer") && w.shape.last() != Some(kind) =>
            {
                w.shape.push(kind)
            }
            _ => {}
        }
    }
    let secs = |d: Duration| d.as_secs_f64();
    #[derive(Default)]
    struct Features {
        hop: Vec<f64>,
        rehop: Vec<f64>,
        failsafe: Vec<f64>,
        fluffed_on_loop: usize,
        fluffed_on_arrival: usize,
        shapes: std::collections::BTreeSet<Vec<&'static str>>,
    }
    let features = |ip: std::net::IpAddr| {
        let mut f = Features::default();
        for ((from, ih), w) in &walks {
            if *from != ip {
                continue;
            }
            let up = w.up.expect("fluffed");
            let Some(&first) = w.offers.first() else {
                // The relay's coin sent it to fluff as it arrived: no hop to see.
                f.fluffed_on_arrival += 1;
                continue;
            };
            f.hop.push(secs(first - start[ih]));
            let bounced = w.bounced.expect("taken back");
            match w.offers.get(1) {
                Some(&again) => {
                    f.rehop.push(secs(again - bounced));
                    f.failsafe.push(secs(up - again));
                }
                None => f.fluffed_on_loop += 1,
            }
            // Up to the node's answer to the loop-back (what follows is the coin's).
            let mut shape = w.shape.clone();
            if shape.len() > 1 && shape.last() == Some(&"offer") {
                shape.pop();
            }
            f.shapes.insert(shape);
        }
        f
    };
    let (o, r) = (features(o_ip), features(r_ip));
    assert_eq!(
        o.hop.len(),
        N,
        "every upload of the originator went to the spy"
    );
    assert_eq!(o.fluffed_on_arrival, 0);
    assert_eq!(r.hop.len() + r.fluffed_on_arrival, N);
    let show = |name: &str, f: &Features| {
        let med = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            format!(
                "n {} median {:.2} s",
                v.len(),
                v.get(v.len() / 2).unwrap_or(&0.0)
            )
        };
        eprintln!(
            "{name}: hop {}, re-hop {}, fail-safe {}, fluffed on loop-back {}, on arrival {}, \
             shapes {:?}",
            med(&f.hop),
            med(&f.rehop),
            med(&f.failsafe),
            f.fluffed_on_loop,
            f.fluffed_on_arrival,
            f.shapes
        );
    };
    show("originator", &o);
    show("relay", &r);
    for (name, a, b) in [
        ("hop delay", &o.hop, &r.hop),
        ("re-hop delay", &o.rehop, &r.rehop),
        ("fail-safe delay", &o.failsafe, &r.failsafe),
    ] {
        let (d, bound) = (ks(a, b), ks_bound(a.len(), b.len()));
        eprintln!("{name}: KS {d:.3} (bound {bound:.3})");
        assert!(
            d < bound,
            "{name}: the spy tells them apart (KS {d:.3} ≥ {bound:.3})"
        );
    }
    // On the loop-back each fluffs with probability 0.2: over about 20–25 tries each,
    // rates 0.35 apart happen by chance less than once in a hundred runs.
    let rate = |f: &Features| f.fluffed_on_loop as f64 / f.hop.len().max(1) as f64;
    let (fo, fr) = (rate(&o), rate(&r));
    assert!((fo - fr).abs() < 0.35, "loop-back: {fo} against {fr}");
    assert!(fo.max(fr) < 0.6, "loop-back fluffs too often: {fo}, {fr}");
    assert_eq!(o.shapes, r.shapes, "the same messages");
    origin.shutdown().await;
    relay.shutdown().await;
}

/// Offers `container` to the node at `to`, as a peer built from the project's own wire
/// and transfer machines connecting from `ip`; returns the node's last word: `Ok` for
/// `Done`, the reason of its `No`, or why the connection ended.
async fn blob_send(
    ip: &str,
    to: SocketAddr,
    rendezvous: [u8; 20],
    container: Vec<u8>,
) -> Result<(), String> {
    use sha2::Digest;
    use swarmsite_node::upload::transfer::{Local, TransferAction, TransferConfig, Transfers};
    use swarmsite_node::wire::message::Blob;
    use swarmsite_node::wire::{Connection, Event, Message, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ms = swarmsite_node::clock::unix_ms;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.map_err(|e| e.to_string())?;
    // A fresh peer id each time: a node keeps one link per peer id.
    let peer_id: [u8; 20] = rand::random();
    let mut conn = Connection::new(WireConfig::new(rendezvous, peer_id, None), ms(), true);
    let mut tx = Transfers::new(TransferConfig::default());
    let id: [u8; 32] = sha2::Sha256::digest(&container).into();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        while let Some(a) = tx.poll_action() {
            match a {
                TransferAction::Send { msg, .. } => conn.send(&Message::Blob(msg), ms()),
                TransferAction::SendData { id, at, len, .. } => {
                    let data = container[at as usize..(at + len) as usize].to_vec();
                    conn.send(&Message::Blob(Blob::Data { id, at, data }), ms());
                }
                TransferAction::Delivered { .. } => return Ok(()),
                TransferAction::SendFailed { why, .. } => return Err(why),
                TransferAction::Violation { why, .. } => return Err(why),
                _ => {}
            }
        }
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return Err("the node closed the connection".into());
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Ready { .. } => {
                    tx.peer_up(1, ip.parse().unwrap());
                    tx.send(1, id, container.len() as u64, ms());
                }
                // It takes nothing itself: a node may pick it for a stem hop.
                Event::Message(Message::Blob(b)) => {
                    tx.handle(1, b, |_, _| Local::Refuse("busy".into()), ms())
                }
                Event::Closed(why) => return Err(format!("closed: {why}")),
                _ => {}
            }
        }
        if conn.is_closed() {
            return Err("closed".into());
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
            Ok(Ok(n)) => conn.handle_input(&buf[..n], ms()),
            Err(_) => conn.handle_timeout(ms()),
        }
    }
    Err("no answer".into())
}

fn evidence(data: &Path) -> Vec<swarmsite_node::evidence::Evidence> {
    swarmsite_node::evidence::EvidenceLog::new(data.join("evidence.jsonl"), 1 << 22)
        .read_all()
        .unwrap()
}

fn rendezvous(net: &NetworkDir) -> [u8; 20] {
    *swarmsite_node::name::SystemName::new(
        net.bundle().network(),
        swarmsite_node::name::kind::NOTICE,
        1,
        0,
    )
    .as_bytes()
}

/// A real container for the intake key, of `input` bytes.
fn sealed(net: &NetworkDir, dir: &Path, input: &[u8]) -> Vec<u8> {
    let file = dir.join("letter.txt");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&file, input).unwrap();
    let mut out = Vec::new();
    let key = key(net, "intake", 1, 1);
    swarmsite_node::upload::container::pack(
        &[file],
        key.public(),
        &mut out,
        &swarmsite_node::upload::container::Limits::default(),
    )
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_containers_are_refused_and_recorded_and_nothing_crashes() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let out = tmp.path().join("intake-out");
    let icfg = intake_node(&tmp.path().join("intake"), net, "127.0.0.80", &out);
    let intake_node = OwnRuntime::spawn(icfg).await;
    let iw = wire(&intake_node.handle);
    let a = OwnRuntime::spawn(upload_node(
        &tmp.path().join("a"),
        net,
        "127.0.0.81",
        vec![iw],
    ))
    .await;
    let aw = wire(&a.handle);
    let b = OwnRuntime::spawn(upload_node(
        &tmp.path().join("b"),
        net,
        "127.0.0.82",
        vec![aw, iw],
    ))
    .await;
    wait_for("connected", 30, || b.handle.status().peers.len() == 2).await;
    let rv = rendezvous(net);
    const HOSTILE: &str = "127.0.0.89";

    // Not a container at all (a container's size, no header): the first node refuses it
    // and records the sender.
    let junk = random_bytes(
        swarmsite_node::upload::container::container_size(1 << 16) as usize,
        9,
    );
    let answer = blob_send(HOSTILE, aw, rv, junk).await;
    assert!(answer.is_err(), "{answer:?}");
    wait_for("evidence at A", 10, || {
        evidence(&tmp.path().join("a")).iter().any(|e| {
            e.reason == "bad-upload" && e.peer.as_deref().unwrap_or("").starts_with(HOSTILE)
        })
    })
    .await;

    // Well-formed outside, broken inside: a wrapped key and a body chunk tampered with.
    // Relays cannot tell; the intake refuses to open them, records it, and still
    // receipts them, so no node carries them for ever.
    let good = sealed(net, &tmp.path().join("s1"), b"first");
    let mut bad_key = sealed(net, &tmp.path().join("s2"), b"second");
    bad_key[60] ^= 1;
    let mut bad_body = sealed(net, &tmp.path().join("s3"), b"third");
    let at = 4096 + 100;
    bad_body[at] ^= 0x40;
    for c in [good.clone(), bad_key.clone(), bad_body.clone()] {
        assert_eq!(blob_send(HOSTILE, aw, rv, c).await, Ok(()));
    }
    let ih_of = |c: &[u8]| {
        let f = tmp.path().join("ih-probe").join("upload");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, c).unwrap();
        hex::encode(
            swarmsite_node::metainfo_file::make(&f, "upload")
                .unwrap()
                .info_hash,
        )
    };
    // A decompression bomb: 100 MiB of zeros in the smallest container, over the
    // intake's cap for it (64 times its size, at least 64 MiB).
    let bomb = bomb(net, 100 << 20);
    assert_eq!(blob_send(HOSTILE, aw, rv, bomb.clone()).await, Ok(()));
    let (ih_good, ih_key, ih_body) = (ih_of(&good), ih_of(&bad_key), ih_of(&bad_body));
    let ih_bomb = ih_of(&bomb);
    let handled = || {
        [
            out.join(&ih_good).join("letter.txt").exists(),
            out.join("refused").join(&ih_key).exists(),
            out.join("refused").join(&ih_body).exists(),
            out.join("refused").join(&ih_bomb).exists(),
        ]
    };
    for _ in 0..600 {
        if handled() == [true; 4] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        handled(),
        [true; 4],
        "handled at the intake; queues: {:?} {:?} {:?}",
        a.handle.uploads().await.unwrap().entries,
        b.handle.uploads().await.unwrap().entries,
        intake_node.handle.uploads().await.unwrap().entries,
    );
    assert!(
        !out.join(&ih_key).exists() && !out.join(&ih_body).exists(),
        "nothing half-opened"
    );
    // Of the bomb, nothing but the sealed copy kept for the publisher: no folder, no
    // staging left, not a byte unpacked.
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want = vec![ih_good.clone(), "refused".to_string()];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(
        std::fs::metadata(out.join("refused").join(&ih_bomb))
            .unwrap()
            .len(),
        bomb.len() as u64
    );
    // The refused copy is kept before the evidence is written: wait for the three.
    let refusals = [
        (&ih_key, "wrapped key"),
        (&ih_body, "authenticate"),
        (&ih_bomb, "unpacks to more than 67108864 bytes"),
    ];
    let recorded = || {
        let at_intake = evidence(&tmp.path().join("intake"));
        refusals.iter().all(|(ih, what)| {
            at_intake.iter().any(|e| {
                e.reason == "bad-upload"
                    && e.detail.contains(ih.as_str())
                    && e.detail.contains(what)
            })
        })
    };
    for _ in 0..100 {
        if recorded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recorded(), "{:?}", evidence(&tmp.path().join("intake")));
    wait_for("every copy freed", 60, || {
        ["a", "b", "intake"]
            .iter()
            .all(|n| held_bytes(&tmp.path().join(n)) == 0)
    })
    .await;
    for n in [&a, &b, &intake_node] {
        assert!(
            n.handle.status().uploads.receipts_version >= 1,
            "still running, receipted"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
    intake_node.shutdown().await;
}

/// A tmpfs this test mounted (the test suite runs as root), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "swarmsite-test",
            ])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs at {} (root needed)", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "resizing the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Issue 22: the intake opens an upload only with the free disk space for its unpack cap
/// (64 MiB for a small one) plus a 512 MiB reserve; short of it, the upload waits, and
/// opens at a later tick once there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_waits_for_disk_space_before_it_opens_an_upload() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let out = tmp.path().join("intake-out");
    let disk = Tmpfs::mount(&out, "300m");
    let intake_node = OwnRuntime::spawn(intake_node(
        &tmp.path().join("intake"),
        net,
        "127.0.0.120",
        &out,
    ))
    .await;
    let origin = OwnRuntime::spawn(upload_node(
        &tmp.path().join("origin"),
        net,
        "127.0.0.121",
        vec![wire(&intake_node.handle)],
    ))
    .await;
    let h = origin.handle.clone();
    wait_for("the link up", 30, || !h.status().peers.is_empty()).await;
    let file = tmp.path().join("in/letter.txt");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "a letter for a full disk").unwrap();
    let ih = queue(&h, vec![file]).await;
    // It reaches the intake, which holds it but does not open it: 300 MiB free.
    let held = || held_bytes(&tmp.path().join("intake")) > 0;
    wait_for("the upload held at the intake", 30, held).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let opened = out.join(&ih).join("letter.txt");
    assert!(!opened.exists(), "opened without room for its cap");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
    // Room: the next tick opens it.
    disk.resize("1g");
    wait_for("the upload opened once there is room", 30, || {
        opened.exists()
    })
    .await;
    assert_eq!(std::fs::read(&opened).unwrap(), b"a letter for a full disk");
    origin.shutdown().await;
    intake_node.shutdown().await;
    drop(disk);
}

/// A container for the intake key holding a zstd-compressed tar of one file of `len`
/// zeros, built header by header as an attacker would.
fn bomb(net: &NetworkDir, len: u64) -> Vec<u8> {
    use std::io::Write;
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb.bin").unwrap();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_cksum();
    z.write_all(h.as_bytes()).unwrap();
    let mib = vec![0u8; 1 << 20];
    let mut left = len.div_ceil(512) * 512 + 1024;
    while left > 0 {
        let n = left.min(mib.len() as u64) as usize;
        z.write_all(&mib[..n]).unwrap();
        left -= n as u64;
    }
    let payload = z.finish().unwrap();
    let mut out = Vec::new();
    swarmsite_node::upload::container::seal(
        &payload,
        key(net, "intake", 1, 1).public(),
        &mut out,
        &swarmsite_node::upload::container::Limits::default(),
    )
    .unwrap();
    out
}

/// The header of the one stem copy the node in `data` holds of the upload `ih`.
fn sealed_to(data: &Path) -> Vec<swarmsite_node::keys::Kid> {
    std::fs::read_dir(data.join("uploads/stem"))
        .unwrap()
        .flatten()
        .map(|e| {
            let mut f = std::fs::File::open(e.path().join("upload")).unwrap();
            swarmsite_node::upload::container::read_header(&mut f)
                .unwrap()
                .kid
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_intake_key_rotation_new_uploads_use_the_new_key() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let old = key(net, "intake", 1, 1);
    // A node with the bundle's intake key; far away delays keep the copies at hand.
    let mut cfg = upload_node(&tmp.path().join("a"), net, "127.0.0.90", vec![]);
    cfg.uploads.stem.delay_ms = (600_000, 600_000);
    let a = OwnRuntime::spawn(cfg).await;
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, b"before").unwrap();
    queue(&a.handle, vec![input.clone()]).await;
    assert_eq!(sealed_to(&tmp.path().join("a")), vec![old.kid()]);

    // The intake holders rotate their key; the node hears of it like of any record.
    let rotated = net
        .rotate(
            swarmsite_node::name::Role::INTAKE,
            1,
            vec![],
            1,
            1,
            swarmsite_node::keys::MIN_BITS,
            &[old],
            PASS,
            now(),
        )
        .unwrap()
        .outcome;
    let (dir, _) = rotated.published().expect("one signature is enough here");
    let record = std::fs::read(dir.join(publisher::RECORD_FILE)).unwrap();
    a.handle.submit(record, None).await.unwrap();
    let new = key(net, "intake", 2, 1);
    std::fs::write(&input, b"after").unwrap();
    queue(&a.handle, vec![input.clone()]).await;
    let mut kids = sealed_to(&tmp.path().join("a"));
    kids.sort();
    let mut want = vec![key(net, "intake", 1, 1).kid(), new.kid()];
    want.sort();
    assert_eq!(kids, want, "the second upload is sealed to the new key");
    a.shutdown().await;
}

/// A node with room for `quota` bytes of uploads that holds each for ten minutes before
/// its next hop.
async fn holding_node(data: &Path, net: &NetworkDir, ip: &str, quota: u64) -> OwnRuntime {
    let mut cfg = upload_node(data, net, ip, vec![]);
    cfg.uploads.quota = quota;
    cfg.uploads.stem.delay_ms = (600_000, 600_000);
    OwnRuntime::spawn(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_quota_refuses_new_uploads_with_a_reason_and_keeps_what_it_has() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let smallest = swarmsite_node::upload::container::container_size(1 << 16);
    // Room for two of the smallest containers.
    let a = holding_node(
        &tmp.path().join("a"),
        net,
        "127.0.0.95",
        2 * smallest + 1000,
    )
    .await;
    let aw = wire(&a.handle);
    let one = tmp.path().join("one.bin");
    std::fs::write(&one, b"x").unwrap();
    let sixty = tmp.path().join("sixty.bin");
    std::fs::write(&sixty, random_bytes(60 * 1024, 5)).unwrap();
    queue(&a.handle, vec![one.clone()]).await;
    queue(&a.handle, vec![sixty]).await;
    let list = a.handle.uploads().await.unwrap();
    assert_eq!(list.entries.len(), 2);
    assert!(
        list.entries.iter().all(|e| e.size == smallest),
        "1 byte and 60 KiB make containers of one size"
    );
    // A third is refused at once, with the reason; the two stay.
    let third = a.handle.upload(vec![one], None).await.unwrap_err();
    assert!(third.starts_with("storage quota full"), "{third}");
    assert!(third.contains("not receipted"), "{third}");
    // A peer's upload offered on the stem is refused the same way.
    let junk_free = sealed(net, &tmp.path().join("s"), b"from a peer");
    let answer = blob_send("127.0.0.96", aw, rendezvous(net), junk_free).await;
    assert!(
        answer
            .as_ref()
            .is_err_and(|e| e.starts_with("storage quota full")),
        "{answer:?}"
    );
    let status = a.handle.status().uploads;
    assert!(status.refused >= 2);
    assert!(
        status
            .last_refusal
            .unwrap()
            .starts_with("storage quota full")
    );
    assert_eq!(
        held_bytes(&tmp.path().join("a")),
        2 * smallest,
        "kept what it had"
    );
    assert_eq!(a.handle.uploads().await.unwrap().entries.len(), 2);
    a.shutdown().await;
}

/// Issue 22: well-formed containers of junk (a relay cannot tell them from a leak) from
/// one address fill no more than its share of a node's quota: an honest upload from
/// another address still finds room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_from_one_address_does_not_crowd_out_an_honest_upload() {
    let _ = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (_, net) = network();
    let smallest = swarmsite_node::upload::container::container_size(1 << 16);
    // Room for eight of the smallest containers; a share is two.
    let a = holding_node(&tmp.path().join("a"), net, "127.0.0.97", 8 * smallest).await;
    let (aw, rv) = (wire(&a.handle), rendezvous(net));
    const JUNK: &str = "127.0.0.98";
    let mut answers = Vec::new();
    for n in 0..4 {
        let c = sealed(
            net,
            &tmp.path().join(format!("j{n}")),
            format!("junk {n}").as_bytes(),
        );
        answers.push(blob_send(JUNK, aw, rv, c).await);
    }
    assert!(answers[..2].iter().all(Result::is_ok), "{answers:?}");
    for refused in &answers[2..] {
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.starts_with("storage quota share full")),
            "{answers:?}"
        );
    }
    assert_eq!(held_bytes(&tmp.path().join("a")), 2 * smallest);
    let honest = sealed(net, &tmp.path().join("h"), b"the real leak");
    blob_send("127.0.0.99", aw, rv, honest).await.unwrap();
    assert_eq!(held_bytes(&tmp.path().join("a")), 3 * smallest);
    let status = a.handle.status().uploads;
    assert!(
        (status.last_refusal.unwrap()).starts_with("storage quota share full"),
        "the refusal is shown"
    );
    a.shutdown().await;
}
