//! Nodes as separate processes of the built binary: kill -9 in the middle of a download,
//! restart, and the node serves the last complete release, then completes the new one;
//! kill -9 of an upload's originator while it waits and of a relay in the middle of a
//! stem transfer, and the upload still reaches the intake.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        Self::run("node", data, bundle, ip, peers, extra)
    }

    /// `swarmsite <command>` (`node` or `intake`) with the node options of a test node.
    fn run(
        command: &str,
        data: &Path,
        bundle: &Path,
        ip: &str,
        peers: &[&str],
        extra: &[&str],
    ) -> Self {
        let ip_rendezvous = format!("{ip}:7102");
        let mut more = vec!["--rendezvous", &ip_rendezvous, "--no-dht-bootstrap"];
        more.extend(extra);
        let mut args = common::node_process_args(data, bundle, ip, 7100, peers, &more);
        // The intake takes a node's options.
        args[2] = command.into();
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = bin()
            .env("RUST_LOG", "warn,swarmsite_node::node::core::uploads=info")
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
        cli_json(&self.data, "status")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn get(ip: &str, path: &str) -> Option<Vec<u8>> {
    common::http_get_200(ip, 7180, path)
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
    swarmsite_node::demo_site::write(&site, 1).unwrap();
    publish_and_push(&pdata, &site, &net);
    wait_for("publisher serves v1", 60, || serves("127.0.0.40", 1));

    let limit = ["--download-limit", "1000000"];
    let mut node = NodeProc::start(&ndata, &bundle, "127.0.0.41", &["127.0.0.40"], &limit);
    wait_for("node serves v1", 60, || serves("127.0.0.41", 1));

    // Release 2 adds 12 MB; the node fetches it at 1 MB/s.
    swarmsite_node::demo_site::write(&site, 2).unwrap();
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

use common::cli_json;

fn file_len(dir: &Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .max()
        .unwrap_or(0)
}

#[test]
fn uploads_survive_kill_9_of_the_originator_and_of_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    // One key per role: a quick network.
    let mut opts =
        swarmsite_node::publisher::InitOptions::one_site("UPLEAKS00".parse().unwrap(), "u");
    (opts.keys_per_role, opts.threshold, opts.software_sign) = (1, 1, 1);
    let net = tmp.path().join("net");
    swarmsite_node::publisher::NetworkDir::init(&net, &opts, PASS.as_bytes(), 1_700_000_000)
        .unwrap();
    let bundle = net.join("bundle.json");
    let (idata, rdata, odata) = (
        tmp.path().join("i"),
        tmp.path().join("r"),
        tmp.path().join("o"),
    );
    let out = tmp.path().join("out");
    let (key, signer, out_s) = (
        net.join("keys/intake/v1/key-1.pem"),
        net.join("keys/documents/v1/key-1.pem"),
        out.display().to_string(),
    );
    let intake_args = [
        "--key",
        key.to_str().unwrap(),
        "--signer",
        signer.to_str().unwrap(),
        "--out",
        &out_s,
        "--receipt-interval",
        "500ms",
        "--no-rendezvous",
    ];
    let _intake = NodeProc::run("intake", &idata, &bundle, "127.0.0.50", &[], &intake_args);
    // A line: originator, relay, intake (no rendezvous DHT, so no other links form).
    // The relay takes 128 KiB/s on the stem (after a 1 MiB burst) and always relays;
    // the originator waits 4 to 5 s before each hop and retries a failed one after 1 s.
    let relay_args = [
        "--no-rendezvous",
        "--upload-rate",
        "131072",
        "--relay-probability",
        "1",
        "--stem-wait",
        "0s..0s",
        "--stem-delay",
        "10ms..50ms",
    ];
    let mut relay = NodeProc::start(&rdata, &bundle, "127.0.0.51", &["127.0.0.50"], &relay_args);
    let origin_args = [
        "--no-rendezvous",
        "--stem-wait",
        "0s..0s",
        "--stem-delay",
        "4s..5s",
        "--stem-retry",
        "1s",
    ];
    let mut origin = NodeProc::start(&odata, &bundle, "127.0.0.52", &["127.0.0.51"], &origin_args);
    let ready = |n: &NodeProc, peers: usize| {
        n.status()
            .is_some_and(|s| s["peers"].as_array().is_some_and(|p| p.len() >= peers))
    };
    wait_for("the three connected", 60, || {
        ready(&origin, 1) && ready(&relay, 2)
    });

    // 1. The originator is killed while its upload waits for its first hop.
    std::fs::write(tmp.path().join("first.txt"), b"the first letter").unwrap();
    let queued = ok(&[
        "--data-dir",
        odata.to_str().unwrap(),
        "upload",
        tmp.path().join("first.txt").to_str().unwrap(),
    ]);
    let ih = queued
        .split_whitespace()
        .skip_while(|w| *w != "upload")
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert_eq!(ih.len(), 40, "{queued}");
    assert!(queued.contains("waiting"), "{queued}");
    origin.kill9();
    let queue = std::fs::read_to_string(odata.join("uploads/queue.json")).unwrap();
    assert!(queue.contains(&ih) && queue.contains("waiting"), "{queue}");
    let origin = NodeProc::start(&odata, &bundle, "127.0.0.52", &["127.0.0.51"], &origin_args);
    wait_for("the first upload opened at the intake", 60, || {
        out.join(&ih).join("first.txt").exists()
    });
    assert_eq!(
        std::fs::read(out.join(&ih).join("first.txt")).unwrap(),
        b"the first letter"
    );
    let mine = cli_json(&odata, "uploads").unwrap();
    assert!(
        mine["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ih"] == ih.as_str() && e["originated"] == true),
        "still the user's own after the restart: {mine}"
    );

    // 2. The relay is killed in the middle of receiving the next one (1.2 MB: a 2 MiB
    // container, 1 MiB at once, then 128 KiB/s), and restarted: it resumes, and the
    // upload goes on.
    let mut second = vec![0u8; 1_200_000];
    rand::RngCore::fill_bytes(
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7),
        &mut second,
    );
    std::fs::write(tmp.path().join("second.bin"), &second).unwrap();
    wait_for("the originator reconnected", 60, || ready(&origin, 1));
    ok(&[
        "--data-dir",
        odata.to_str().unwrap(),
        "upload",
        tmp.path().join("second.bin").to_str().unwrap(),
    ]);
    let incoming = rdata.join("uploads/incoming");
    wait_for("the transfer to the relay half done", 60, || {
        file_len(&incoming, "part") > 1_100_000
    });
    relay.kill9();
    let partial = file_len(&incoming, "part");
    assert!(partial > 1_000_000 && partial < 2_000_000, "{partial}");
    let relay = NodeProc::start(&rdata, &bundle, "127.0.0.51", &["127.0.0.50"], &relay_args);
    // Opened uploads are folders named by info hash (a `.staging-*` one is unfinished).
    let opened = || {
        std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().len() == 40 && e.path().join("second.bin").exists())
    };
    wait_for("the second upload opened at the intake", 90, || {
        opened().is_some()
    });
    let log = std::fs::read_to_string(rdata.with_extension("log")).unwrap();
    assert!(log.contains("resuming an upload transfer at byte"), "{log}");
    let opened = opened().unwrap().path().join("second.bin");
    assert!(std::fs::read(opened).unwrap() == second, "byte-identical");
    // The receipt frees the copies on every node.
    wait_for("copies freed", 60, || {
        [&odata, &rdata].iter().all(|d| {
            ["stem", "fluff"].iter().all(|s| {
                std::fs::read_dir(d.join("uploads").join(s))
                    .map(|mut r| r.next().is_none())
                    .unwrap_or(true)
            })
        })
    });
    drop((origin, relay));
}

/// A node started with a relative `--data-dir` puts a blacklist into its BitTorrent
/// session (librqbit takes the list as a `file://` URL, which needs an absolute path).
#[test]
fn a_relative_data_dir_still_applies_the_blacklist_in_bittorrent() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let mut opts =
        swarmsite_node::publisher::InitOptions::one_site("RELATIVE1".parse().unwrap(), "r");
    (opts.keys_per_role, opts.threshold, opts.software_sign) = (1, 1, 1);
    swarmsite_node::publisher::NetworkDir::init(&net, &opts, PASS.as_bytes(), common::now())
        .unwrap();
    let bundle = net.join("bundle.json");
    let args = common::node_process_args(
        Path::new("data"),
        &bundle,
        "127.0.0.45",
        7100,
        &[],
        &["--no-rendezvous"],
    );
    let log = std::fs::File::create(tmp.path().join("node.log")).unwrap();
    let _node = common::ChildGuard(
        bin()
            .current_dir(tmp.path())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let data = tmp.path().join("data");
    wait_for("the node's control API", 60, || {
        data.join("control.json").exists()
    });
    let list = tmp.path().join("blacklist.txt");
    std::fs::write(&list, "203.0.113.7 forged releases\n").unwrap();
    ok(&[
        "--data-dir",
        data.to_str().unwrap(),
        "publish",
        "blacklist",
        list.to_str().unwrap(),
        "--network",
        net.to_str().unwrap(),
        "--push",
    ]);
    wait_for("the blacklist in force in BitTorrent too", 30, || {
        cli_json(&data, "status").is_some_and(|s| s["blacklist"]["in_bittorrent"] == true)
    });
    let log = std::fs::read_to_string(tmp.path().join("node.log")).unwrap();
    assert!(!log.contains("failed to convert file URL"), "{log}");
}
