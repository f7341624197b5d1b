//! A real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! tests/browser) opens the site from a node, follows a link, and takes a screenshot.
//! `scripts/test` installs both; without them this test fails and says so.

mod common;

use common::{browser_script, demo_release, now, wait_for};
use swarmsite_node::node::{Node, NodeConfig};
use swarmsite_node::publisher::{InitOptions, NetworkDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reads_the_site_from_a_node() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "needs Debian's chromium: run scripts/test, which installs it"
    );
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("WEBLEAKS1".parse().unwrap(), "webleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"pw", now()).unwrap();
    let (dir, record) = demo_release(&net, tmp.path(), 1);
    let cfg = NodeConfig::loopback(
        tmp.path().join("node"),
        net.bundle().clone(),
        "127.0.0.50".parse().unwrap(),
    );
    let node = Node::start(cfg).await.unwrap();
    let h = node.handle();
    h.submit(record, Some(dir)).await.unwrap();
    wait_for("v1 served", 60, || h.status().served_version == Some(1)).await;
    let url = format!("http://{}/", h.status().http[0].addr);
    let shots = tmp.path().join("screenshots");
    browser_script(
        "site.test.mjs",
        vec![
            ("SITE_URL", url.into()),
            ("SCREENSHOT_DIR", shots.clone().into()),
        ],
    )
    .await;
    let png = std::fs::read(shots.join("about.png")).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "a real PNG"
    );
    node.shutdown().await;
}
