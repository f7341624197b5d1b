//! Sync benchmark: how long six loopback nodes take to serve a 1,000-file, 50 MiB site,
//! next to six plain librqbit sessions downloading the same torrent from the same kind
//! of seeder; then how long a one-file change takes to reach all six, and how many bytes
//! each node fetched for it.
//!
//! `cargo bench --bench sync` (figures in docs/PERFORMANCE.md). Loopback only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use swarmsite_node::metainfo_file;
use swarmsite_node::node::{Node, NodeConfig, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};

#[path = "plain.rs"]
mod plain;

const FILES: usize = 1000;
const TOTAL: usize = 50 << 20;
const NODES: usize = 6;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn make_site(dir: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut left = TOTAL;
    for i in 0..FILES {
        let len = if i == FILES - 1 {
            left
        } else {
            (TOTAL / FILES) * rng.gen_range(50..150) / 100
        }
        .min(left);
        left -= len;
        let path = dir.join(format!("d{}/f{i:04}.bin", i % 20));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        std::fs::write(path, data).unwrap();
    }
    std::fs::write(dir.join("index.html"), "<h1>bench</h1>").unwrap();
}

fn publish(
    net: &NetworkDir,
    dir: &Path,
    version: u32,
) -> (std::path::PathBuf, Vec<u8>, metainfo_file::Torrent) {
    let key = publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), b"b").unwrap();
    let (out, record) = net
        .publish_site(dir, 1, Some(version), &[key], now())
        .unwrap()
        .published()
        .unwrap();
    let t = metainfo_file::make(dir, "bench").unwrap();
    (out, record.encode().unwrap(), t)
}

fn config(root: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut cfg = NodeConfig::loopback(root.join(ip), net.bundle().clone(), ip.parse().unwrap());
    cfg.peers = peers;
    cfg
}

async fn until_all(handles: &[NodeHandle], version: u32) -> Duration {
    let start = Instant::now();
    while !handles
        .iter()
        .all(|h| h.status().served_version == Some(version))
    {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "v{version} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let site = root.join("site");
        make_site(&site);
        let opts = InitOptions::one_site("SYNCBENCH".parse().unwrap(), "bench");
        let net = NetworkDir::init(&root.join("net"), &opts, b"b", now()).unwrap();
        let (dir1, rec1, t1) = publish(&net, &site, 1);
        println!("site: {FILES} files, {} bytes, piece length {}", t1.total_size, t1.piece_length);

        let leechers: Vec<String> = (0..NODES).map(|i| format!("127.0.0.{}", 121 + i)).collect();
        let plain = plain::plain_librqbit(root, &t1, &site, "127.0.0.120", &leechers, None).await;
        println!("plain librqbit, 1 seeder -> {NODES} sessions: {:.2} s", plain.as_secs_f64());

        let publisher = Node::start(config(root, &net, "127.0.0.110", vec![])).await.unwrap();
        let p = publisher.handle();
        p.submit(rec1, Some(dir1)).await.unwrap();
        until_all(std::slice::from_ref(&p), 1).await;
        let pw: SocketAddr = p.status().wire_addr.parse().unwrap();
        let mut nodes = Vec::new();
        let mut last = pw;
        for i in 0..NODES {
            let n = Node::start(config(root, &net, &format!("127.0.0.{}", 111 + i), vec![pw, last])).await.unwrap();
            last = n.handle().status().wire_addr.parse().unwrap();
            nodes.push(n);
        }
        let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
        let t_v1 = until_all(&handles, 1).await;
        println!("swarmsite, publisher -> {NODES} nodes serving v1: {:.2} s (from node start)", t_v1.as_secs_f64());

        // One file changes (same length, new bytes).
        let changed = site.join("d7/f0507.bin");
        let len = std::fs::metadata(&changed).unwrap().len() as usize;
        let mut data = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(99).fill(&mut data[..]);
        std::fs::write(&changed, data).unwrap();
        let (dir2, rec2, t2) = publish(&net, &site, 2);
        let start = Instant::now();
        p.submit(rec2, Some(dir2)).await.unwrap();
        let t_v2 = until_all(&handles, 2).await;
        let fetched: Vec<u64> = handles.iter().map(|h| h.status().last_sync.map_or(0, |s| s.fetched_bytes)).collect();
        println!(
            "one-file change ({len} bytes, piece length {}): all {NODES} serving v2 {:.2} s after publish (wait {:.2} s)",
            t2.piece_length,
            start.elapsed().as_secs_f64(),
            t_v2.as_secs_f64()
        );
        println!("bytes fetched per node for v2: {fetched:?} (release size {})", t2.total_size);
        for n in nodes {
            n.shutdown().await;
        }
        publisher.shutdown().await;
    });
}
