//! The reference the transfer benchmarks compare with: one plain librqbit seeder and
//! plain librqbit sessions (the same embedded librqbit, no swarmsite logic), each told
//! of the seeder and of the session before it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use swarmsite_node::metainfo_file::Torrent;
use swarmsite_node::torrents::{Torrents, TorrentsConfig};

/// Seeds `t` from `content` on `seeder`, then times sessions on `leechers` (one each)
/// fetching it (only the files of `only_files`, when given) until all are complete.
pub async fn plain_librqbit(
    root: &Path,
    t: &Torrent,
    content: &Path,
    seeder: &str,
    leechers: &[String],
    only_files: Option<Vec<usize>>,
) -> Duration {
    let seed = Torrents::start(TorrentsConfig::loopback(
        root.join("plain-seed"),
        seeder.parse().unwrap(),
    ))
    .await
    .unwrap();
    let h = seed
        .add(&t.info_hash, Some(t.bytes.clone().into()), content, vec![])
        .await
        .unwrap();
    Torrents::wait(&h, Duration::from_millis(100), |_| {})
        .await
        .unwrap();
    let seed_addr = seed.listen_addr().unwrap();
    let mut sessions = Vec::new();
    for (i, ip) in leechers.iter().enumerate() {
        sessions.push(
            Torrents::start(TorrentsConfig::loopback(
                root.join(format!("plain-{i}")),
                ip.parse().unwrap(),
            ))
            .await
            .unwrap(),
        );
    }
    let addrs: Vec<SocketAddr> = sessions.iter().map(|l| l.listen_addr().unwrap()).collect();
    let start = Instant::now();
    let mut waits = Vec::new();
    for (i, l) in sessions.iter().enumerate() {
        let mut peers = vec![seed_addr];
        if i > 0 {
            peers.push(addrs[i - 1]);
        }
        let out = root.join(format!("plain-out-{i}"));
        let h = l
            .add_files(&t.info_hash, None, &out, peers, only_files.clone())
            .await
            .unwrap();
        waits.push(h);
    }
    for h in &waits {
        Torrents::wait(h, Duration::from_millis(100), |_| {})
            .await
            .unwrap();
    }
    let took = start.elapsed();
    for l in sessions {
        l.stop().await;
    }
    seed.stop().await;
    took
}
