//! Churn: 20 `swarmsite` node processes on loopback. For three minutes a random half of
//! the volunteers are killed with SIGKILL and started again at random moments, while the
//! publisher signs three releases and a document and an anonymous upload travel. At the
//! end every node serves the newest release byte for byte, holds the document (its quota
//! has room), the upload reached the intake, and no data folder holds half-written state.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

mod common;
use common::wait_until;

const PASS: &str = "churn test";
const NODES: usize = 20;
/// Node 0 publishes and node 1 is the intake; the others churn.
const PUBLISHER: usize = 0;
const INTAKE: usize = 1;
const TAG: &str = "CHURNLEAK";
const CHURN: Duration = Duration::from_secs(180);

fn ip(i: usize) -> String {
    format!("127.0.1.{}", 10 + i)
}

fn ok(args: &[&str]) -> String {
    common::swarmsite_ok(PASS, args)
}

/// A node process that can be killed and started again with the same arguments; killed
/// by its pid when dropped (also when the test fails).
struct Proc {
    args: Vec<String>,
    data: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_swarmsite"))
            .env("SWARMSITE_PASSPHRASE", PASS)
            .env("RUST_LOG", "warn,swarmsite_node::node::core::site=info")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// The tail of its log, for a failure message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The log lines (of every start) that mention `needle`.
    fn log_about(&self, needle: &str) -> String {
        let log = std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        lines.join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn http_get(ip: &str, path: &str) -> Option<Vec<u8>> {
    common::http_get_200(ip, 7380, path)
}

/// Release `v` of the test site: an index naming it and 40 small files, some of which
/// change from release to release.
fn write_site(dir: &Path, v: u32) -> Vec<(String, Vec<u8>)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("pages")).unwrap();
    let mut files = vec![(
        "index.html".to_string(),
        format!("<h1>Release {v}</h1>\n").into_bytes(),
    )];
    for i in 0..40u32 {
        let changed = if i % 4 == 0 { v } else { 1 };
        let body = format!("page {i}, written for release {changed}\n").repeat(50 + i as usize);
        files.push((format!("pages/{i}.txt"), body.into_bytes()));
    }
    for (path, bytes) in &files {
        std::fs::write(dir.join(path), bytes).unwrap();
    }
    files
}

fn serves_exactly(ip: &str, files: &[(String, Vec<u8>)]) -> bool {
    files
        .iter()
        .all(|(path, bytes)| http_get(ip, &format!("/{path}")).as_deref() == Some(bytes))
}

/// Leftovers of interrupted writes anywhere under `dir`.
fn half_written(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") || name.starts_with(".staging-") {
                out.push(e.path());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn twenty_nodes_under_churn_end_in_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let mut opts = swarmsite_node::publisher::InitOptions::one_site(TAG.parse().unwrap(), "churn");
    (opts.keys_per_role, opts.threshold, opts.software_sign) = (1, 1, 1);
    swarmsite_node::publisher::NetworkDir::init(&net, &opts, PASS.as_bytes(), common::now())
        .unwrap();
    let bundle = net.join("bundle.json");
    let out = tmp.path().join("intake-out");
    let (key, signer, out_s) = (
        net.join("keys/intake/v1/key-1.pem"),
        net.join("keys/documents/v1/key-1.pem"),
        out.display().to_string(),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);

    let mut procs: Vec<Proc> = (0..NODES)
        .map(|i| {
            let data = tmp.path().join(format!("n{i}"));
            // Each knows the publisher, the intake and two others picked at random.
            let mut peers = vec![ip(PUBLISHER), ip(INTAKE)];
            for _ in 0..2 {
                let j = rng.gen_range(2..NODES);
                if j != i && !peers.contains(&ip(j)) {
                    peers.push(ip(j));
                }
            }
            peers.retain(|p| *p != ip(i));
            let peer_refs: Vec<&str> = peers.iter().map(String::as_str).collect();
            let rendezvous = format!("{}:7302", ip(i));
            let mut extra = vec![
                "--rendezvous",
                &rendezvous,
                "--no-dht-bootstrap",
                "--stem-wait",
                "0s..0s",
                "--stem-delay",
                "50ms..300ms",
                "--stem-retry",
                "1s",
            ];
            if i == INTAKE {
                extra.extend([
                    "--key",
                    key.to_str().unwrap(),
                    "--signer",
                    signer.to_str().unwrap(),
                    "--out",
                    &out_s,
                    "--receipt-interval",
                    "500ms",
                ]);
            }
            let mut args =
                common::node_process_args(&data, &bundle, &ip(i), 7300, &peer_refs, &extra);
            if i == INTAKE {
                args[2] = "intake".into();
            }
            Proc {
                args,
                data,
                child: None,
                starts: 0,
            }
        })
        .collect();
    for p in &mut procs {
        p.start();
    }
    let pdata = procs[PUBLISHER].data.clone();
    wait_until("the publisher's control API", 60, || {
        pdata.join("control.json").exists()
    });
    let site = tmp.path().join("site");
    let publish = |v: u32| {
        let files = write_site(&site, v);
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
        files
    };
    let mut newest = publish(1);

    // Churn: each volunteer lives 5–20 s, is killed (while fewer than half are down),
    // stays down 5–20 s, comes back.
    let start = Instant::now();
    let mut next: Vec<Instant> = (0..NODES)
        .map(|_| start + Duration::from_millis(rng.gen_range(5_000..20_000)))
        .collect();
    let mut releases = 1;
    let (mut document, mut upload) = (None, None);
    let payload = tmp.path().join("ledger.bin");
    let mut ledger = vec![0u8; 2 << 20];
    rng.fill(ledger.as_mut_slice());
    std::fs::write(&payload, &ledger).unwrap();
    let letter = tmp.path().join("letter.txt");
    std::fs::write(
        &letter,
        b"a letter that must reach the intake through churn",
    )
    .unwrap();
    let mut most_down = 0;
    while start.elapsed() < CHURN {
        let now = Instant::now();
        for i in 2..NODES {
            if now >= next[i] {
                let down = procs.iter().filter(|p| !p.alive()).count();
                if procs[i].alive() {
                    // Half of the nodes down at most.
                    if down < NODES / 2 {
                        procs[i].kill9();
                    }
                } else {
                    procs[i].start();
                }
                next[i] = now + Duration::from_millis(rng.gen_range(5_000..20_000));
            }
        }
        most_down = most_down.max(procs.iter().filter(|p| !p.alive()).count());
        let t = start.elapsed().as_secs();
        if (t >= 40 && releases == 1) || (t >= 110 && releases == 2) {
            releases += 1;
            newest = publish(releases);
        }
        if t >= 60 && document.is_none() {
            document = Some(ok(&[
                "--data-dir",
                pdata.to_str().unwrap(),
                "publish",
                "document",
                payload.to_str().unwrap(),
                "--title",
                "Ledger",
                "--network",
                net.to_str().unwrap(),
                "--push",
            ]));
        }
        if t >= 70 && upload.is_none() {
            // Queued on a volunteer that is up now (and may well be killed soon after).
            if let Some(p) = procs[2..]
                .iter()
                .find(|p| p.alive() && p.data.join("control.json").exists())
            {
                let o = Command::new(env!("CARGO_BIN_EXE_swarmsite"))
                    .args(["--data-dir", p.data.to_str().unwrap(), "upload"])
                    .arg(&letter)
                    .output()
                    .unwrap();
                if o.status.success() {
                    upload = Some(String::from_utf8_lossy(&o.stdout).into_owned());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(releases, 3);
    assert!(document.is_some() && upload.is_some(), "{upload:?}");
    assert!(
        most_down >= NODES / 4,
        "at most {most_down} were down at once"
    );
    for p in &mut procs {
        if !p.alive() {
            p.start();
        }
    }
    let restarts: u32 = procs.iter().map(|p| p.starts - 1).sum();

    // Every node serves release 3, byte for byte.
    let report = |procs: &[Proc], what: &str| {
        let lagging: Vec<String> = (0..NODES)
            .filter(|&i| !serves_exactly(&ip(i), &newest))
            .map(|i| format!("node {i}:\n{}", procs[i].log_tail()))
            .collect();
        format!("{what}; not serving release 3:\n{}", lagging.join("\n"))
    };
    let settle = Instant::now();
    while !(0..NODES).all(|i| serves_exactly(&ip(i), &newest)) {
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "{}",
            report(&procs, "120 s after the churn")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let served_in = settle.elapsed();

    // The document: every volunteer's quota (10 GiB) has room, so every one holds a
    // copy (the publisher seeds it from its own folder).
    let docs_dir = |i: usize| procs[i].data.join("networks").join(TAG).join("documents");
    let holds = |i: usize| {
        std::fs::read_dir(docs_dir(i))
            .into_iter()
            .flatten()
            .flatten()
            .any(|d| {
                d.path().join("held").exists()
                    && std::fs::read(d.path().join("v1/ledger.bin")).is_ok_and(|b| b == ledger)
            })
    };
    let settle = Instant::now();
    while !(1..NODES).all(holds) {
        let missing: Vec<String> = (1..NODES)
            .filter(|&i| !holds(i))
            .map(|i| format!("node {i}:\n{}", procs[i].log_tail()))
            .collect();
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "the document is missing on:\n{}",
            missing.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The upload reached the intake and was opened there.
    let opened = || {
        std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().len() == 40
                    && std::fs::read(e.path().join("letter.txt")).is_ok_and(|b| {
                        b == b"a letter that must reach the intake through churn".as_slice()
                    })
            })
    };
    wait_until("the upload opened at the intake", 120, opened);

    // No half-written state, and only the served release on disk.
    for (i, p) in procs.iter().enumerate() {
        assert_eq!(half_written(&p.data), Vec::<PathBuf>::new(), "node {i}");
        let mut left: Vec<String> =
            std::fs::read_dir(p.data.join("networks").join(TAG).join("sites/1"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        left.sort();
        assert_eq!(
            left,
            ["current", "v3", "v3.rec"],
            "node {i}, its log about releases:\n{}",
            p.log_about("release")
        );
    }
    eprintln!(
        "churn: {restarts} restarts, at most {most_down} of {NODES} down at once; every node \
         served release 3 {served_in:?} after the churn"
    );
}
