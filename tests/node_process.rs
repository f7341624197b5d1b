//! Nodes as separate processes of the built binary: kill -9 in the middle of a download,
//! restart, and the node serves the last complete release, then completes the new one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::wait_until as wait_for;

const PASS: &str = "process test";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarmsite"));
    c.env("SWARMSITE_PASSPHRASE", PASS).env("RUST_LOG", "warn");
    c
}

fn ok(args: &[&str]) -> String {
    common::swarmsite_ok(PASS, args)
}

/// A node process, killed by its pid when dropped (also when a test fails).
struct NodeProc {
    child: Child,
    data: PathBuf,
}

impl NodeProc {
    fn start(data: &Path, bundle: &Path, ip: &str, peers: &[&str], extra: &[&str]) -> Self {
        let ip_rendezvous = format!("{ip}:7102");
        let mut more = vec!["--rendezvous", &ip_rendezvous, "--no-dht-bootstrap"];
        more.extend(extra);
        let args = common::node_process_args(data, bundle, ip, 7100, peers, &more);
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = bin()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProc {
            child,
            data: data.to_path_buf(),
        }
    }

    fn kill9(&mut self) {
        // std's kill is SIGKILL on Unix: no chance to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn status(&self) -> Option<serde_json::Value> {
        let o = bin()
            .args([
                "--data-dir",
                self.data.to_str().unwrap(),
                "status",
                "--json",
            ])
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).ok())
            .flatten()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn get(ip: &str, path: &str) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((ip, 7180)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    (&raw[9..12] == b"200").then(|| raw[split + 4..].to_vec())
}

fn serves(ip: &str, release: u32) -> bool {
    get(ip, "/")
        .is_some_and(|b| String::from_utf8_lossy(&b).contains(&format!("Release {release}")))
}

/// `swarmsite publish site SITE --push` to the publisher's node in `pdata`.
fn publish_and_push(pdata: &Path, site: &Path, net: &Path) {
    ok(&[
        "--data-dir",
        pdata.to_str().unwrap(),
        "publish",
        "site",
        site.to_str().unwrap(),
        "--network",
        net.to_str().unwrap(),
        "--push",
    ]);
}

#[test]
fn kill_9_during_a_download_then_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    ok(&[
        "keys",
        "init-network",
        "--network",
        net.to_str().unwrap(),
        "--tag",
        "PROCLEAKS",
        "--site",
        "procleaks",
    ]);
    let bundle = net.join("bundle.json");
    let (pdata, ndata) = (tmp.path().join("p"), tmp.path().join("n"));
    let _publisher = NodeProc::start(&pdata, &bundle, "127.0.0.40", &[], &[]);
    wait_for("publisher's control API", 30, || {
        pdata.join("control.json").exists()
    });

    let site = tmp.path().join("site");
    swarmsite::demo_site::write(&site, 1).unwrap();
    publish_and_push(&pdata, &site, &net);
    wait_for("publisher serves v1", 60, || serves("127.0.0.40", 1));

    let limit = ["--download-limit", "1000000"];
    let mut node = NodeProc::start(&ndata, &bundle, "127.0.0.41", &["127.0.0.40"], &limit);
    wait_for("node serves v1", 60, || serves("127.0.0.41", 1));

    // Release 2 adds 12 MB; the node fetches it at 1 MB/s.
    swarmsite::demo_site::write(&site, 2).unwrap();
    let big: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(site.join("archive.bin"), &big).unwrap();
    publish_and_push(&pdata, &site, &net);
    wait_for("the download to be under way", 60, || {
        node.status().is_some_and(|s| {
            let have = s["sync"]["have_bytes"].as_u64().unwrap_or(0);
            let total = s["sync"]["total_bytes"].as_u64().unwrap_or(0);
            have > 1_000_000 && have < total / 2
        })
    });
    node.kill9();
    assert!(!serves("127.0.0.41", 1), "the killed node is gone");

    // Restarted, it serves release 1 at once, then completes release 2.
    let node = NodeProc::start(&ndata, &bundle, "127.0.0.41", &["127.0.0.40"], &limit);
    wait_for("restarted node serves", 30, || {
        get("127.0.0.41", "/").is_some()
    });
    assert!(
        serves("127.0.0.41", 1),
        "the last complete release is served right after restart"
    );
    wait_for("node serves v2", 90, || serves("127.0.0.41", 2));
    assert_eq!(get("127.0.0.41", "/archive.bin").unwrap(), big);

    // No half state: only the served release, its record and the pointer.
    let mut left: Vec<String> = std::fs::read_dir(ndata.join("networks/PROCLEAKS/sites/1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["current", "v2", "v2.rec"]);
    drop(node);
}
