//! Real librqbit sessions on loopback: a seeder and a downloader of our own torrents.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{complete, corrupt_in_place, piece_audit};
use swarmsite_node::metainfo_file;
use swarmsite_node::torrents::{Torrents, TorrentsConfig};

fn config(dir: &std::path::Path, ip: &str) -> TorrentsConfig {
    TorrentsConfig::loopback(dir.join("state"), ip.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_folder_moves_between_two_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    swarmsite_node::demo_site::write(&site, 1).unwrap();
    std::fs::write(
        site.join("blob.bin"),
        (0..400_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let t = metainfo_file::make(&site, "demo").unwrap();

    let seeder = Torrents::start(config(&tmp.path().join("a"), "127.0.0.2"))
        .await
        .unwrap();
    let seed = add(&seeder, &t, &site, vec![]).await;
    complete(&seed, 30, "seeder checks its files").await;
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
    assert_eq!(
        metainfo_file::make(&out, "demo").unwrap().info_hash,
        t.info_hash
    );
    leecher.stop().await;
    seeder.stop().await;
}

/// Adds our own torrent `t` (metainfo known) to `session` over `folder`.
async fn add(
    session: &Torrents,
    t: &metainfo_file::Torrent,
    folder: &std::path::Path,
    peers: Vec<SocketAddr>,
) -> swarmsite_node::torrents::TorrentHandle {
    session
        .add(&t.info_hash, Some(t.bytes.clone().into()), folder, peers)
        .await
        .unwrap()
}

/// A folder with a file big enough for several pieces, made into a torrent, and a
/// session seeding it from `ip` once its check is done.
async fn seeder(
    dir: &std::path::Path,
    ip: &str,
    seed: u32,
) -> (Torrents, metainfo_file::Torrent, std::path::PathBuf) {
    let site = dir.join(format!("site-{seed}"));
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("blob.bin"),
        (0..2_000_000u32)
            .map(|i| (i.wrapping_mul(seed) % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let t = metainfo_file::make(&site, "blob").unwrap();
    let s = Torrents::start(config(&dir.join(format!("seeder-{seed}")), ip))
        .await
        .unwrap();
    let h = add(&s, &t, &site, vec![]).await;
    complete(&h, 30, "seeder checks its files").await;
    (s, t, site)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_corrupt_pieces_is_named() {
    let audit = piece_audit();
    let tmp = tempfile::tempdir().unwrap();
    let (bad, t, site) = seeder(tmp.path(), "127.0.0.4", 7).await;
    // Corrupt the data under the running seeder, in place: it keeps announcing every
    // piece but now sends wrong bytes.
    corrupt_in_place(&site.join("blob.bin"), 2_000_000, 65_536);
    let mut cfg = config(&tmp.path().join("leecher"), "127.0.0.5");
    cfg.audit = Some(audit);
    let leecher = Torrents::start(cfg).await.unwrap();
    let mut reports = leecher.take_bad_pieces().expect("an audit was given");
    let bad_addr = bad.listen_addr().unwrap();
    let h = add(&leecher, &t, &tmp.path().join("out"), vec![bad_addr]).await;
    let report = tokio::time::timeout(Duration::from_secs(30), reports.recv())
        .await
        .expect("a bad piece is reported")
        .unwrap();
    assert_eq!(report.ih, t.info_hash);
    assert_eq!(report.peer, bad_addr);
    assert!(!Torrents::progress(&h).finished, "nothing forged completes");
    leecher.stop().await;
    bad.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocklist_bans_a_peer_and_keeps_what_was_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, t1, _) = seeder(tmp.path(), "127.0.0.6", 3).await;
    let seeder_addr = s.listen_addr().unwrap();
    let leecher = Torrents::start(config(&tmp.path().join("leecher"), "127.0.0.7"))
        .await
        .unwrap();
    let out1 = tmp.path().join("out1");
    let h = add(&leecher, &t1, &out1, vec![seeder_addr]).await;
    complete(&h, 60, "download in time").await;

    // Ban the seeder (as a CIDR range): the session restarts with the torrent kept.
    let leecher_addr = leecher.listen_addr().unwrap();
    let generation = leecher.generation();
    let net: ipnet::IpNet = "127.0.0.6/31".parse().unwrap();
    assert_eq!(leecher.set_blocklist(1, &[net]).await.unwrap(), 1);
    assert!(generation.has_changed().unwrap(), "old handles are told");
    assert_eq!(
        leecher.listen_addr(),
        Some(leecher_addr),
        "the same port after the restart"
    );
    assert_eq!(
        leecher.set_blocklist(2, &[net]).await.unwrap(),
        0,
        "the same list restarts nothing"
    );
    let h = add(&leecher, &t1, &out1, vec![]).await;
    complete(&h, 30, "the kept torrent is checked").await;
    let p = Torrents::progress(&h);
    assert!(p.finished);
    assert_eq!(p.fetched_bytes, 0, "nothing fetched again");

    // A new torrent from the banned seeder gets nothing...
    let t2 = {
        let site = tmp.path().join("site-3");
        std::fs::write(site.join("more.bin"), vec![9u8; 300_000]).unwrap();
        metainfo_file::make(&site, "blob").unwrap()
    };
    let seed2 = add(&s, &t2, &tmp.path().join("site-3"), vec![]).await;
    complete(&seed2, 30, "seed2 complete").await;
    let out2 = tmp.path().join("out2");
    let h2 = add(&leecher, &t2, &out2, vec![seeder_addr]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(Torrents::progress(&h2).have_bytes, 0, "the ban holds");
    // ...until the list no longer names it.
    assert_eq!(
        leecher.set_blocklist(1, &[]).await.unwrap(),
        0,
        "an older version changes nothing"
    );
    leecher.set_blocklist(3, &[]).await.unwrap();
    leecher.forget(&t2.info_hash).await.unwrap();
    let h2 = add(&leecher, &t2, &out2, vec![seeder_addr]).await;
    complete(&h2, 60, "download after the ban is lifted").await;
    leecher.stop().await;
    s.stop().await;
}
