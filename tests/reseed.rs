//! What a node holds besides the site — a document copy and an upload in fluff — it
//! seeds again by itself after a restart: a plain BitTorrent session that knows only the
//! info hashes and that one node fetches both from it (metadata included).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use swarmsite_node::keys::PrivateKey;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::publisher::{self, NetworkDir};
use swarmsite_node::record::Record;
use swarmsite_node::torrents::{Torrents, TorrentsConfig};
use swarmsite_node::upload::queue::UploadState;

const PASS: &[u8] = b"reseed test";

fn key(net: &NetworkDir, role: &str) -> PrivateKey {
    publisher::load_key(&net.root().join(format!("keys/{role}/v1/key-1.pem")), PASS).unwrap()
}

/// Publishes `path` as a document: its published folder, record bytes and info hash.
fn publish_document(net: &NetworkDir, path: &Path) -> (std::path::PathBuf, Vec<u8>, [u8; 20]) {
    let (meta, payload, files) =
        NetworkDir::document_payload(path, "Ledger".into(), "kept after a restart".into(), None)
            .unwrap();
    let id = net.document_id_for(&meta.name).unwrap();
    let name = SystemName::new(net.bundle().network(), kind::AUTHORIZED_FILE, id, 1);
    let record = Record::new(name, now(), payload).unwrap();
    let (dir, record) = net
        .publish(record, &[key(net, "documents")], &files, Some(path), now())
        .unwrap()
        .published()
        .unwrap();
    (dir, record.encode().unwrap(), meta.ih)
}

/// Fetches `ih` (metainfo too) from `peer` alone into `out` with a bare librqbit
/// session on `ip`.
async fn fetch_alone(ih: [u8; 20], peer: SocketAddr, out: &Path, ip: &str, what: &str) {
    let state = out.join("state");
    let plain = Torrents::start(TorrentsConfig::loopback(state, ip.parse().unwrap()))
        .await
        .unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(60),
        plain.add(&ih, None, &out.join("files"), vec![peer]),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: no metadata from {peer} in 60 s"))
    .unwrap();
    complete(&got, 60, what).await;
    plain.stop().await;
}

fn files_under(dir: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = swarmsite_node::metainfo_file::list_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| std::fs::read(dir.join(f.path.iter().collect::<std::path::PathBuf>())).unwrap())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_copy_and_an_upload_in_fluff_are_seeded_again_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let net = small_network(&tmp.path().join("net"), "RESEEDLKS", "reseed", PASS);

    // The publisher (also the upload's originator) and a volunteer that keeps copies and
    // fluffs every upload it is handed.
    let pdata = tmp.path().join("p");
    let mut pcfg = node_config(&pdata, &net, "127.0.0.140", vec![]);
    pcfg.uploads.stem.originator_wait_ms = (0, 0);
    pcfg.uploads.stem.delay_ms = (50, 100);
    let publisher = OwnRuntime::spawn(pcfg).await;
    let p = publisher.handle.clone();
    let vdata = tmp.path().join("v");
    let volunteer_cfg = |peers: Vec<SocketAddr>| {
        let mut cfg = node_config(&vdata, &net, "127.0.0.141", peers);
        cfg.documents_quota = Some(64 << 20);
        cfg.uploads.stem.relay_probability = 0.0;
        cfg
    };
    let volunteer =
        OwnRuntime::spawn(volunteer_cfg(vec![p.status().wire_addr.parse().unwrap()])).await;
    let v = volunteer.handle.clone();
    wait_for("the two connected", 30, || {
        p.status().peers.len() == 1 && v.status().peers.len() == 1
    })
    .await;

    // A 3 MiB document, copied by the volunteer.
    let doc = tmp.path().join("ledger.bin");
    let mut bytes = vec![0u8; 3 << 20];
    rand::Rng::fill(&mut rand::thread_rng(), bytes.as_mut_slice());
    std::fs::write(&doc, &bytes).unwrap();
    let (dir, record, doc_ih) = publish_document(&net, &doc);
    p.submit(record, Some(dir)).await.unwrap();
    let doc_held = |h: &swarmsite_node::node::NodeHandle| {
        h.documents()
            .documents
            .iter()
            .any(|d| d.ih == hex::encode(doc_ih) && d.held)
    };
    wait_for("the volunteer holds the document", 60, || doc_held(&v)).await;

    // An upload: one hop to the volunteer, which fluffs and seeds it.
    let letter = tmp.path().join("letter.txt");
    std::fs::write(&letter, b"a letter for the intake, held in fluff").unwrap();
    let view = p.upload(vec![letter], None).await.unwrap();
    let mut upload_ih = None;
    for _ in 0..300 {
        let list = v.uploads().await.unwrap();
        if let Some(e) = list
            .entries
            .iter()
            .find(|e| e.state == UploadState::Fluffed)
        {
            upload_ih = Some(e.ih.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let upload_ih = upload_ih.unwrap_or_else(|| panic!("upload {} never fluffed", view.token));
    let upload_ih: [u8; 20] = hex::decode(&upload_ih).unwrap().try_into().unwrap();

    // Everyone stops; the volunteer alone comes back, knowing no peer.
    publisher.shutdown().await;
    volunteer.shutdown().await;
    let volunteer = OwnRuntime::spawn(volunteer_cfg(vec![])).await;
    let v = volunteer.handle.clone();
    wait_for("the document held again", 30, || doc_held(&v)).await;
    let bt: SocketAddr = v.status().bt_addr.clone().unwrap().parse().unwrap();

    let out = tmp.path().join("plain-doc");
    fetch_alone(doc_ih, bt, &out, "127.0.0.142", "the document").await;
    assert_eq!(files_under(&out.join("files")), [bytes]);

    let out = tmp.path().join("plain-upload");
    fetch_alone(upload_ih, bt, &out, "127.0.0.143", "the upload").await;
    let held = vdata
        .join("uploads/fluff")
        .join(hex::encode(upload_ih))
        .join("upload");
    assert_eq!(
        files_under(&out.join("files")),
        [std::fs::read(held).unwrap()]
    );
    volunteer.shutdown().await;
}
