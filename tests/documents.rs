//! Published documents on a loopback swarm: a publisher's node and six volunteers whose
//! quotas are smaller than the archive keep every document alive between them, serve
//! `/documents/` (index, search, the file, the magnet page), refuse a forged document,
//! let a plain BitTorrent client fetch by magnet link, and show a signed notice on every
//! node's control API event stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use swarmsite_node::keys::{MIN_BITS, PrivateKey};
use swarmsite_node::name::{NetworkTag, SystemName, kind};
use swarmsite_node::node::{Node, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::record::{Payload, Record};

mod common;
use common::*;

const PASS: &[u8] = b"documents test";
const MIB: u64 = 1024 * 1024;
const QUOTA: u64 = 25 * MIB;

fn key(net: &NetworkDir, role: &str) -> PrivateKey {
    publisher::load_key(&net.root().join(format!("keys/{role}/v1/key-1.pem")), PASS).unwrap()
}

/// Publishes `path` as a document; returns its published folder and record bytes.
fn publish_document(
    net: &NetworkDir,
    path: &Path,
    title: &str,
    description: &str,
) -> (PathBuf, Vec<u8>) {
    let (meta, payload, files) =
        NetworkDir::document_payload(path, title.into(), description.into(), None).unwrap();
    let id = net.document_id_for(&meta.name).unwrap();
    let name = SystemName::new(net.bundle().network(), kind::AUTHORIZED_FILE, id, 1);
    let record = Record::new(name, now(), payload).unwrap();
    let (dir, record) = net
        .publish(record, &[key(net, "documents")], &files, Some(path), now())
        .unwrap()
        .published()
        .unwrap();
    (dir, record.encode().unwrap())
}

fn random_file(path: &Path, len: u64) {
    let mut bytes = vec![0u8; len as usize];
    rand::Rng::fill(&mut rand::thread_rng(), bytes.as_mut_slice());
    std::fs::write(path, bytes).unwrap();
}

/// Reads the control API's event stream of the node in `data` until `needle` shows up.
async fn event_stream_shows(data: &Path, needle: String, secs: u64) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let info = swarmsite_node::control::client::info(data).unwrap();
    let host = info.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    s.write_all(
        format!(
            "GET /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\r\n",
            info.token
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => {
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(&needle) {
                    return true;
                }
            }
            Err(_) => {}
        }
    }
    false
}

/// Volunteers holding document `id` completely.
fn holders(handles: &[NodeHandle], id: u32) -> usize {
    handles
        .iter()
        .filter(|h| h.documents().by_id(id).is_some_and(|d| d.held))
        .count()
}

fn http_get_with(addr: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_volunteers_keep_the_archive_alive_within_their_quotas() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("TESTLEAKS".parse().unwrap(), "testleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, PASS, now()).unwrap();
    let tag: NetworkTag = net.bundle().network();

    // The publisher's node, and six volunteers that each know it and the ones before.
    let publisher = Node::start(node_config(
        &tmp.path().join("p"),
        &net,
        "127.0.0.40",
        vec![],
    ))
    .await
    .unwrap();
    let p = publisher.handle();
    let mut peers: Vec<SocketAddr> = vec![p.status().wire_addr.parse().unwrap()];
    let mut nodes = Vec::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    for i in 0..6 {
        let data = tmp.path().join(format!("n{i}"));
        let mut cfg = node_config(&data, &net, &format!("127.0.0.{}", 41 + i), peers.clone());
        cfg.documents_quota = Some(QUOTA);
        let node = OwnRuntime::spawn(cfg).await;
        swarmsite_node::control::serve(
            node.handle.clone(),
            "127.0.0.1:0".parse().unwrap(),
            cancel.clone(),
        )
        .await
        .unwrap();
        peers.push(node.handle.status().wire_addr.parse().unwrap());
        nodes.push(node);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|n| n.handle.clone()).collect();
    wait_for("every volunteer connected to all others", 30, || {
        handles.iter().all(|h| h.status().peers.len() >= 6)
    })
    .await;

    // Three documents of 20 MiB (60 MiB in all, each volunteer has room for one) and a
    // small one whose title is markup.
    let files = tmp.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut docs = Vec::new();
    for (name, title, desc) in [
        (
            "cables.bin",
            "Diplomatic cables",
            "Embassy reports from 2010",
        ),
        ("logs.bin", "War logs", "Field reports, unedited"),
        (
            "mails.bin",
            "Mail archive",
            "Correspondence of the ministry",
        ),
    ] {
        let path = files.join(name);
        random_file(&path, 20 * MIB);
        docs.push((path.clone(), publish_document(&net, &path, title, desc)));
    }
    let small = files.join("note.txt");
    std::fs::write(&small, "a short note\n").unwrap();
    let (small_dir, small_rec) = publish_document(
        &net,
        &small,
        "<script>alert(1)</script> memo",
        "The quartermaster's memo",
    );
    for (_, (dir, rec)) in &docs {
        p.submit(rec.clone(), Some(dir.clone())).await.unwrap();
    }
    p.submit(small_rec, Some(small_dir)).await.unwrap();

    // A document signed by a key that is not the publisher's, pushed by a hostile peer.
    let forged_file = files.join("forged.bin");
    random_file(&forged_file, MIB);
    let (_, forged_payload, _) =
        NetworkDir::document_payload(&forged_file, "Forged".into(), "never listed".into(), None)
            .unwrap();
    let mut forged = Record::new(
        SystemName::new(tag, kind::AUTHORIZED_FILE, 0x200, 1),
        now(),
        forged_payload,
    )
    .unwrap();
    forged.sign(&PrivateKey::generate(MIN_BITS).unwrap());
    let rendezvous = *SystemName::new(tag, kind::NOTICE, 1, 0).as_bytes();
    hostile_push_all(
        "127.0.0.99",
        &handles,
        rendezvous,
        vec![forged.encode().unwrap()],
    )
    .await;

    // Convergence: every document held by at least two volunteers, none over its quota
    // at any moment.
    let ids: Vec<u32> = (0x100..0x104).collect();
    let start = Instant::now();
    loop {
        for h in &handles {
            let v = h.documents();
            assert!(
                v.used <= QUOTA,
                "{} over its quota: {}",
                h.status().wire_addr,
                v.used
            );
        }
        let settled = handles.iter().all(|h| {
            let v = h.documents();
            v.documents.len() == 4
                && v.documents
                    .iter()
                    .all(|d| d.state != swarmsite_node::documents::choice::Local::Fetching)
        }) && ids[..3].iter().all(|id| holders(&handles, *id) >= 2)
            && holders(&handles, ids[3]) == 6;
        if settled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no convergence: {:?}",
            ids.iter()
                .map(|id| holders(&handles, *id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for h in &handles {
        assert!(h.documents().by_id(0x200).is_none(), "forgery listed");
        assert_eq!(h.status().documents.known, 4);
    }
    wait_for("every volunteer to record the forgery", 30, || {
        (0..6).all(|i| {
            std::fs::read_to_string(tmp.path().join(format!("n{i}/evidence.jsonl")))
                .is_ok_and(|e| e.contains("127.0.0.99") && e.contains("not-enough-signatures"))
        })
    })
    .await;
    for i in 0..6 {
        let dir = tmp
            .path()
            .join(format!("n{i}/networks/TESTLEAKS/documents/512"));
        assert!(!dir.exists(), "forgery fetched at node {i}");
    }

    // Search: by a word of a description; the markup title is shown as text.
    let addr = http_addr(&handles[0]);
    let (status, body) = http_get(&addr, "/documents/?q=quartermaster").await;
    let page = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(page.contains("1 document for"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt; memo"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    let (_, body) = http_get(&addr, "/documents/?q=embassy+2010").await;
    assert!(String::from_utf8_lossy(&body).contains("Diplomatic cables"));
    let (_, body) = http_get(&addr, "/documents/").await;
    let index = String::from_utf8_lossy(&body);
    for title in ["Diplomatic cables", "War logs", "Mail archive"] {
        assert!(index.contains(title), "{index}");
    }
    assert!(index.contains("magnet:?xt=urn:btih:"), "{index}");

    // A held document comes over HTTP with ranges; one not held gives the magnet page,
    // naming a node that holds it.
    let (cables_path, _) = &docs[0];
    let cables = std::fs::read(cables_path).unwrap();
    let holder = handles
        .iter()
        .find(|h| h.documents().by_id(0x100).unwrap().held)
        .unwrap();
    let other = handles
        .iter()
        .find(|h| !h.documents().by_id(0x100).unwrap().held)
        .unwrap();
    let (status, head, body) = http_get_with(
        &http_addr(holder),
        "/documents/cables.bin",
        "Range: bytes=100-199\r\n",
    );
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, cables[100..200]);
    let (status, body) = http_get(&http_addr(holder), "/documents/cables.bin").await;
    assert_eq!(status, 200);
    assert!(body == cables, "the whole file, byte for byte");
    let (status, body) = http_get(&http_addr(other), "/documents/cables.bin").await;
    let page = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200);
    let ih = other.documents().by_id(0x100).unwrap().ih.clone();
    assert!(
        page.contains(&format!("magnet:?xt=urn:btih:{ih}")),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "http://{}/documents/cables.bin",
            http_addr(holder)
        )) || {
            // Any holder will do, nearest first.
            handles
                .iter()
                .filter(|h| h.documents().by_id(0x100).unwrap().held)
                .any(|h| page.contains(&format!("http://{}/documents/cables.bin", http_addr(h))))
        },
        "{page}"
    );
    // A name that is no document falls through to the site (none served here: 503).
    let (status, _) = http_get(&http_addr(other), "/documents/nothing.bin").await;
    assert_eq!(status, 503);

    // A signed notice shows on every volunteer's event stream; a forged one nowhere.
    let text = format!("keys rotated at {}", now());
    let watchers: Vec<_> = (0..6)
        .map(|i| {
            let data = tmp.path().join(format!("n{i}"));
            let needle = text.clone();
            tokio::spawn(async move { event_stream_shows(&data, needle, 30).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notice = swarmsite_node::content::Notice::new(
        swarmsite_node::content::Severity::Warning,
        text.clone(),
    )
    .unwrap();
    let mut forged_notice = Record::new(
        SystemName::new(tag, kind::NOTICE, 3, 1),
        now(),
        Payload::Body(
            swarmsite_node::content::Notice::new(
                swarmsite_node::content::Severity::Critical,
                "fake".into(),
            )
            .unwrap()
            .to_body(),
        ),
    )
    .unwrap();
    forged_notice.sign(&PrivateKey::generate(MIN_BITS).unwrap());
    hostile_push(
        "127.0.0.98",
        handles[0].status().wire_addr.parse().unwrap(),
        rendezvous,
        vec![forged_notice.encode().unwrap()],
    )
    .await;
    let record = Record::new(
        SystemName::new(tag, kind::NOTICE, 2, 1),
        now(),
        Payload::Body(notice.to_body()),
    )
    .unwrap();
    let (dir, record) = net
        .publish(record, &[key(&net, "notices")], &[], None, now())
        .unwrap()
        .published()
        .unwrap();
    assert!(dir.exists());
    p.submit(record.encode().unwrap(), None).await.unwrap();
    for (i, w) in watchers.into_iter().enumerate() {
        assert!(w.await.unwrap(), "notice not on node {i}'s event stream");
    }
    for h in &handles {
        let s = h.status();
        assert_eq!(s.notices.len(), 1, "{:?}", s.notices);
        assert_eq!(s.notices[0].text, text);
        assert!(!s.notices.iter().any(|n| n.text == "fake"));
    }

    // The publisher leaves; a plain librqbit session, given only the magnet link a
    // volunteer's page shows, fetches the document from the swarm.
    publisher.shutdown().await;
    let magnet = page
        .split("href=\"")
        .find(|s| s.starts_with("magnet:"))
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    assert!(
        magnet.contains("&dn=cables%2Ebin&xl=20971520&x.pe="),
        "{magnet}"
    );
    let out = fetch_by_magnet(&tmp.path().join("client"), &magnet).await;
    assert!(std::fs::read(out.join("cables.bin")).unwrap() == cables);

    cancel.cancel();
    for n in nodes {
        n.shutdown().await;
    }
}

/// A plain librqbit session (no swarmsite code), standing for any BitTorrent client:
/// it takes the magnet link, and the peers its `x.pe` hints name (librqbit 9.1 reads
/// `xt`, `dn` and `tr` but not `x.pe`, so they are handed over as a client that reads
/// them would use them; there is no DHT on the loopback test network).
async fn fetch_by_magnet(dir: &Path, magnet: &str) -> PathBuf {
    use librqbit::{AddTorrent, AddTorrentOptions, Session, SessionOptions};
    let peers: Vec<SocketAddr> = magnet
        .split('&')
        .filter_map(|kv| kv.strip_prefix("x.pe="))
        .map(|v| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(!peers.is_empty(), "{magnet}");
    let session = Session::new_with_opts(
        dir.to_path_buf(),
        SessionOptions {
            dht: None,
            disable_trackers: true,
            disable_local_service_discovery: true,
            persistence: None,
            listen: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let handle = session
        .add_torrent(
            AddTorrent::from_url(magnet),
            Some(AddTorrentOptions {
                initial_peers: Some(peers),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_handle()
        .unwrap();
    complete(&handle, 60, "the magnet download").await;
    session.stop().await;
    dir.to_path_buf()
}
