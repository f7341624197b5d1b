//! Publishing demo releases and running the browser scripts of tests/browser: the part
//! of the shared helpers that the tray app's test (src-tauri/tests) includes too, so it
//! names nothing that only the core's test binaries have.

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Publishes `dir` as release `version` of site 1, signed with the site role's first
/// key (passphrase `pass`); returns the published folder and the record's bytes.
pub fn publish_site(
    net: &swarmsite::publisher::NetworkDir,
    pass: &[u8],
    dir: &std::path::Path,
    version: u32,
) -> (std::path::PathBuf, Vec<u8>) {
    let key =
        swarmsite::publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), pass).unwrap();
    let (dir, record) = net
        .publish_site(dir, 1, Some(version), &[key], now())
        .unwrap()
        .published()
        .unwrap();
    (dir, record.encode().unwrap())
}

/// Writes the demo site's release `version` under `dir` and publishes it (passphrase
/// `pw`, see [`publish_site`]); returns the published folder and the record's bytes.
pub fn demo_release(
    net: &swarmsite::publisher::NetworkDir,
    dir: &std::path::Path,
    version: u32,
) -> (std::path::PathBuf, Vec<u8>) {
    let site = dir.join(format!("site-v{version}"));
    swarmsite::demo_site::write(&site, version).unwrap();
    publish_site(net, b"pw", &site, version)
}

/// Runs `node --test SCRIPT` in tests/browser (playwright-core, Debian's Chromium) with
/// `env`, off the async runtime; fails the test with the script's output if it failed.
pub async fn browser_script(script: &'static str, env: Vec<(&'static str, std::ffi::OsString)>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let dir = if dir.is_dir() {
        dir
    } else {
        // From the tray app's crate (src-tauri/tests), the repository's tests/browser.
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
    };
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "needs tests/browser/node_modules (and Debian's chromium): run scripts/test, which installs them"
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["--test", "--test-concurrency=1", script])
            .current_dir(&dir)
            .envs(env)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
