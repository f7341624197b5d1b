//! Publishing demo releases and running the browser scripts of tests/browser: the part
//! of the shared helpers that the tray app's test (src-tauri/tests) includes too, so it
//! names nothing that only the core's test binaries have.
#![allow(dead_code)] // each test binary uses its own subset

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Publishes `dir` as release `version` of site 1, signed with the site role's first
/// key (passphrase `pass`); returns the published folder and the record's bytes.
pub fn publish_site(
    net: &swarmsite_node::publisher::NetworkDir,
    pass: &[u8],
    dir: &std::path::Path,
    version: u32,
) -> (std::path::PathBuf, Vec<u8>) {
    let key = swarmsite_node::publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), pass)
        .unwrap();
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
    net: &swarmsite_node::publisher::NetworkDir,
    dir: &std::path::Path,
    version: u32,
) -> (std::path::PathBuf, Vec<u8>) {
    let site = dir.join(format!("site-v{version}"));
    swarmsite_node::demo_site::write(&site, version).unwrap();
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

/// A shell script standing in for a swarmsite binary of `version`: it answers
/// `--version`, and otherwise writes the arguments it was started with beside itself
/// (so a test sees the restart) and exits. `pad` bytes of comment make it big enough to
/// span many pieces.
pub fn stand_in(version: &str, pad: usize) -> Vec<u8> {
    let mut s = format!(
        "#!/bin/sh\n# stand-in for swarmsite {version} (a test package)\n\
         if [ \"$1\" = --version ]; then echo \"swarmsite {version}\"; exit 0; fi\n\
         printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/restarted-with\"\nexit 0\n"
    );
    let mut x: u32 = 12345;
    while s.len() < pad {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(&format!("# {x:08x}{x:08x}{x:08x}{x:08x}\n"));
    }
    s.into_bytes()
}

pub fn write_exe(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Signs `manifest` as software manifest record `version` with key 1 of `role`
/// (passphrase `pass`).
pub fn manifest_record(
    net: &swarmsite_node::publisher::NetworkDir,
    pass: &str,
    manifest: &swarmsite_node::update::Manifest,
    version: u32,
    role: &str,
) -> swarmsite_node::record::Record {
    use swarmsite_node::name::{SystemName, file_id, kind};
    use swarmsite_node::record::{Payload, Record};
    // Every holder of the role signs (software needs two signatures by default).
    let keys: Vec<_> =
        swarmsite_node::publisher::pem_files(&net.root().join(format!("keys/{role}/v1")))
            .iter()
            .map(|f| swarmsite_node::publisher::load_key(f, pass.as_bytes()).unwrap())
            .collect();
    let name = SystemName::new(
        net.bundle().network(),
        kind::AUTHORIZED_FILE,
        file_id::SOFTWARE_MANIFEST,
        version,
    );
    let mut record = Record::new(name, now(), Payload::Body(manifest.encode())).unwrap();
    for key in &keys {
        record.sign(key);
    }
    record
}

/// Publishes a release (its packages and manifest) into the network folder, as
/// `publish software` does; `tamper` may spoil the manifest first.
pub fn publish_release(
    net: &swarmsite_node::publisher::NetworkDir,
    pass: &str,
    rel: &swarmsite_node::update::release::Release,
    version: u32,
    tamper: impl FnOnce(&mut swarmsite_node::update::Manifest),
) -> (std::path::PathBuf, Vec<u8>) {
    let mut manifest = rel.manifest.clone();
    tamper(&mut manifest);
    let record = manifest_record(net, pass, &manifest, version, "software");
    let files = [(
        swarmsite_node::publisher::TORRENT_FILE.to_string(),
        rel.torrent.bytes.clone(),
    )];
    let (dir, record) = net
        .publish(record, &[], &files, Some(rel.dir.path()), now())
        .unwrap()
        .published()
        .unwrap();
    (dir, record.encode().unwrap())
}
