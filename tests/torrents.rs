//! Real librqbit sessions on loopback: a seeder and a downloader of our own torrents.

use std::net::SocketAddr;
use std::time::Duration;

use swarmsite::torrent;
use swarmsite::torrents::{Torrents, TorrentsConfig};

fn config(dir: &std::path::Path, ip: &str) -> TorrentsConfig {
    // Port 0 lets the kernel pick; loopback only, and no DHT.
    TorrentsConfig {
        state_dir: dir.join("state"),
        listen: format!("{ip}:0").parse().unwrap(),
        dht_bootstrap: None,
        download_limit: None,
        upload_limit: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_folder_moves_between_two_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    swarmsite::demo_site::write(&site, 1).unwrap();
    std::fs::write(
        site.join("blob.bin"),
        (0..400_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let t = torrent::make(&site, "demo").unwrap();

    let seeder = Torrents::start(config(&tmp.path().join("a"), "127.0.0.2"))
        .await
        .unwrap();
    let seed = seeder
        .add(&t.info_hash, Some(t.bytes.clone().into()), &site, vec![])
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        Torrents::wait(&seed, Duration::from_millis(200), |_| {}),
    )
    .await
    .expect("seeder checks its files")
    .unwrap();
    let seeder_addr: SocketAddr = seeder.listen_addr().unwrap();
    assert_eq!(seeder_addr.ip().to_string(), "127.0.0.2");

    let leecher = Torrents::start(config(&tmp.path().join("b"), "127.0.0.3"))
        .await
        .unwrap();
    let files = tokio::time::timeout(
        Duration::from_secs(30),
        leecher.list_files(&t.info_hash, vec![seeder_addr]),
    )
    .await
    .expect("metadata in time")
    .unwrap();
    assert_eq!(files.len(), 5);
    let out = tmp.path().join("out");
    let h = leecher
        .add(&t.info_hash, None, &out, vec![seeder_addr])
        .await
        .unwrap();
    let mut last = None;
    tokio::time::timeout(
        Duration::from_secs(60),
        Torrents::wait(&h, Duration::from_millis(200), |p| last = Some(p)),
    )
    .await
    .expect("download in time")
    .unwrap();
    assert!(last.unwrap().finished);
    for f in [
        "index.html",
        "about.html",
        "style.css",
        "documents/report.txt",
        "blob.bin",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(site.join(f)).unwrap(),
            "{f}"
        );
    }
    // Our own deterministic torrent of what arrived has the same info hash.
    assert_eq!(torrent::make(&out, "demo").unwrap().info_hash, t.info_hash);
    leecher.stop().await;
    seeder.stop().await;
}
