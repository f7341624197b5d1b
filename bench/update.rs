//! Update benchmark: how long a release of three 20 MiB packages takes to reach six
//! loopback nodes, each fetching and checking only its platform's package, next to six
//! plain librqbit sessions fetching that one file of the same torrent; how many bytes
//! each node fetched; and how long installing a plain binary takes next to a bare
//! copy-fsync-rename of the same file.
//!
//! `cargo bench --bench update` (figures in docs/PERFORMANCE.md). Loopback only.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use swarmsite_node::name::{SystemName, file_id, kind};
use swarmsite_node::node::{Node, NodeConfig, NodeHandle};
use swarmsite_node::publisher::{self, InitOptions, NetworkDir, TORRENT_FILE};
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::update::manifest::parse_version;
use swarmsite_node::update::release::{self, PackageSpec};
use swarmsite_node::update::{PackageKind, Platform, UpdatePhase, install};

#[path = "plain.rs"]
mod plain;

const PACKAGE: usize = 20 << 20;
const NODES: usize = 6;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn random_file(path: &Path, seed: u64) {
    let mut data = vec![0u8; PACKAGE];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut data[..]);
    std::fs::write(path, data).unwrap();
}

fn config(root: &Path, net: &NetworkDir, ip: &str, peers: Vec<SocketAddr>) -> NodeConfig {
    let mut cfg = NodeConfig::loopback(root.join(ip), net.bundle().clone(), ip.parse().unwrap());
    cfg.peers = peers;
    cfg
}

/// Installs the real binary over a copy of itself, and times a bare copy, fsync, rename
/// and folder fsync of the same file for reference (what the install does, without the
/// two `--version` runs).
fn install_times(root: &Path) -> (Duration, Duration) {
    let real = Path::new(env!("CARGO_BIN_EXE_swarmsite"));
    let version = parse_version(env!("CARGO_PKG_VERSION")).unwrap();
    let dir = root.join("install");
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("swarmsite");
    std::fs::copy(real, &target).unwrap();
    let start = Instant::now();
    install::replace_binary(&target, real, &version).unwrap();
    let ours = start.elapsed();
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("cp \"$1\" \"$2.new\" && sync \"$2.new\" && mv \"$2.new\" \"$2\" && sync \"$(dirname \"$2\")\"")
        .arg("sh")
        .arg(real)
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    (ours, start.elapsed())
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
        let platform = Platform::current();
        let pkgs = root.join("packages");
        std::fs::create_dir_all(&pkgs).unwrap();
        let bin = pkgs.join("swarmsite-bench-bin");
        let deb = pkgs.join("swarmsite-bench.deb");
        let msi = pkgs.join("swarmsite-bench.msi");
        random_file(&bin, 1);
        random_file(&deb, 2);
        random_file(&msi, 3);
        let specs: Vec<PackageSpec> = [
            format!("{platform}:bin={}", bin.display()),
            format!("{platform}:deb={}", deb.display()),
            format!("windows-x86_64:msi={}", msi.display()),
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let v = |s| parse_version(s).unwrap();
        let rel = release::prepare(&specs, v("9.0.0"), v("0.0.0"), String::new(), None).unwrap();
        let paths = swarmsite_node::metainfo_file::file_paths(&rel.torrent.bytes).unwrap();
        let index = paths
            .iter()
            .position(|p| *p == ["swarmsite-bench-bin"])
            .unwrap();
        println!(
            "release: 3 packages of {PACKAGE} bytes, torrent {} bytes, piece length {}",
            rel.torrent.total_size, rel.torrent.piece_length
        );

        let leechers: Vec<String> = (0..NODES).map(|i| format!("127.0.12.{}", 141 + i)).collect();
        let (t, dir) = (&rel.torrent, rel.dir.path());
        let plain = plain::plain_librqbit(root, t, dir, "127.0.12.140", &leechers, Some(vec![index])).await;
        println!(
            "plain librqbit, 1 seeder -> {NODES} sessions, one file each: {:.2} s",
            plain.as_secs_f64()
        );

        let opts = InitOptions::one_site("UPDBENCH1".parse().unwrap(), "bench");
        let net = NetworkDir::init(&root.join("net"), &opts, b"b", now()).unwrap();
        let key = publisher::load_key(&net.root().join("keys/software/v1/key-1.pem"), b"b").unwrap();
        let name = SystemName::new(
            net.bundle().network(),
            kind::AUTHORIZED_FILE,
            file_id::SOFTWARE_MANIFEST,
            1,
        );
        let record = Record::new(name, now(), Payload::Body(rel.manifest.encode())).unwrap();
        let files = [(TORRENT_FILE.to_string(), rel.torrent.bytes.clone())];
        let (dir, record) = net
            .publish(record, &[key], &files, Some(rel.dir.path()), now())
            .unwrap()
            .published()
            .unwrap();

        let publisher = Node::start(config(root, &net, "127.0.12.130", vec![])).await.unwrap();
        let p = publisher.handle();
        let pw: SocketAddr = p.status().wire_addr.parse().unwrap();
        let mut nodes = Vec::new();
        let mut last = pw;
        for i in 0..NODES {
            let ip = format!("127.0.12.{}", 131 + i);
            let n = Node::start(config(root, &net, &ip, vec![pw, last])).await.unwrap();
            last = n.handle().status().wire_addr.parse().unwrap();
            nodes.push(n);
        }
        let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
        while !handles.iter().all(|h| !h.status().peers.is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let start = Instant::now();
        p.submit(record.encode().unwrap(), Some(dir)).await.unwrap();
        while !handles
            .iter()
            .all(|h| h.update_status().phase == UpdatePhase::Ready)
        {
            assert!(start.elapsed() < Duration::from_secs(600), "the release never arrived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = start.elapsed();
        let fetched: Vec<u64> = handles
            .iter()
            .map(|h| h.update_status().progress.map_or(0, |p| p.fetched_bytes))
            .collect();
        println!(
            "swarmsite, publisher -> {NODES} nodes with the {platform} {} package checked: {:.2} s after publish",
            PackageKind::Bin,
            took.as_secs_f64()
        );
        println!("bytes fetched per node: {fetched:?} (package {PACKAGE}, release {})", rel.torrent.total_size);
        for n in nodes {
            n.shutdown().await;
        }
        publisher.shutdown().await;

        let (ours, reference) = install_times(root);
        println!(
            "plain-binary install of {} bytes: {:.1} ms (copy, fsync, --version twice, rename); cp + sync + mv + sync: {:.1} ms",
            std::fs::metadata(env!("CARGO_BIN_EXE_swarmsite")).unwrap().len(),
            ours.as_secs_f64() * 1000.0,
            reference.as_secs_f64() * 1000.0
        );
    });
}
