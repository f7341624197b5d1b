//! A real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! tests/browser) opens the site from a node, follows a link, and takes a screenshot.
//! `scripts/test` installs both; without them this test fails and says so.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use swarmsite::node::{Node, NodeConfig};
use swarmsite::publisher::{self, InitOptions, NetworkDir};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_reads_the_site_from_a_node() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "needs Debian's chromium and tests/browser/node_modules: run scripts/test, which installs them"
    );
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("WEBLEAKS1".parse().unwrap(), "webleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"pw", now()).unwrap();
    let site = tmp.path().join("site");
    swarmsite::demo_site::write(&site, 1).unwrap();
    let key = publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), b"pw").unwrap();
    let (dir, record) = net
        .publish_site(&site, 1, None, &[key], now())
        .unwrap()
        .published()
        .unwrap();
    let cfg = NodeConfig::loopback(
        tmp.path().join("node"),
        net.bundle().clone(),
        "127.0.0.50".parse().unwrap(),
    );
    let node = Node::start(cfg).await.unwrap();
    let h = node.handle();
    h.submit(record.encode().unwrap(), Some(dir)).await.unwrap();
    let start = Instant::now();
    while h.status().served_version != Some(1) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node never served v1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://{}/", h.status().http[0].addr);
    let shots = tmp.path().join("screenshots");
    let out = tokio::task::spawn_blocking({
        let shots = shots.clone();
        move || {
            Command::new("node")
                .args(["--test", "site.test.mjs"])
                .current_dir(&browser_dir)
                .env("SITE_URL", &url)
                .env("SCREENSHOT_DIR", &shots)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{text}");
    let png = std::fs::read(shots.join("about.png")).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "a real PNG"
    );
    node.shutdown().await;
}
