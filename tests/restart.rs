//! Whole-swarm restarts with real `swarmsite node` processes (issue 19): after every node
//! of a swarm stops (SIGTERM or SIGKILL) and starts again on the same data folders, each
//! node alone still seeds the release to plain BitTorrent clients (libtorrent and a bare
//! librqbit session, which know nothing of swarmsite), and a new node still joins. Also:
//! a publisher stopped right after its push, and a release whose content only a plain
//! client holds.
//!
//! Every node runs on its own address of 127.0.0.160–195 (wire 7100, BitTorrent 7101,
//! rendezvous 7102, HTTP 7180), logs at `warn` to `<data>.log` (kept across restarts; its
//! tail is printed when a test fails), and is killed by its pid when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::plain_bt::{self, LibtorrentSeed};
use common::wait_until as wait_for;

const PASS: &str = "restart test";
const SITE: &str = "restart";
const WIRE: u16 = 7100;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarmsite"));
    c.env("SWARMSITE_PASSPHRASE", PASS)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    c
}

/// A `swarmsite node` process; killed by its pid when dropped, and then, if the test is
/// failing, the tail of its log is printed.
struct NodeProc {
    child: Option<Child>,
    data: PathBuf,
    bundle: PathBuf,
    ip: String,
    peers: Vec<String>,
    /// More options, and the log filter (`warn` unless set).
    extra: Vec<String>,
    log_filter: Option<String>,
}

impl NodeProc {
    fn start(data: &Path, bundle: &Path, ip: &str, peers: &[&str]) -> Self {
        let mut n = NodeProc {
            child: None,
            data: data.to_path_buf(),
            bundle: bundle.to_path_buf(),
            ip: ip.into(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            extra: Vec::new(),
            log_filter: None,
        };
        n.spawn();
        n
    }

    /// [`NodeProc::start`] with more options and its own log filter.
    fn start_with(
        data: &Path,
        bundle: &Path,
        ip: &str,
        peers: &[&str],
        extra: &[&str],
        log_filter: &str,
    ) -> Self {
        let mut n = NodeProc {
            child: None,
            data: data.to_path_buf(),
            bundle: bundle.to_path_buf(),
            ip: ip.into(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            extra: extra.iter().map(|e| e.to_string()).collect(),
            log_filter: Some(log_filter.into()),
        };
        n.spawn();
        n
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.ip);
        let rendezvous = format!("{}:{}", self.ip, WIRE + 2);
        let peers: Vec<&str> = self.peers.iter().map(String::as_str).collect();
        let mut extra = vec!["--rendezvous", &rendezvous, "--no-dht-bootstrap"];
        extra.extend(self.extra.iter().map(String::as_str));
        let args =
            common::node_process_args(&self.data, &self.bundle, &self.ip, WIRE, &peers, &extra);
        // One log across restarts, each run under a header.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        use std::io::Write;
        writeln!(log, "=== swarmsite node on {} starts", self.ip).unwrap();
        let mut command = bin();
        if let Some(filter) = &self.log_filter {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to exit.
    fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", child.id());
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node on {} still runs 30 s after SIGTERM", self.ip);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // std's kill is SIGKILL on Unix: no chance to clean up.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn bt(&self) -> SocketAddr {
        format!("{}:{}", self.ip, WIRE + 1).parse().unwrap()
    }

    fn get(&self, path: &str) -> Option<Vec<u8>> {
        http_get(&self.ip, path)
    }

    /// `swarmsite status --json` of the running node.
    fn status(&self) -> Option<serde_json::Value> {
        common::cli_json(&self.data, "status")
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            let sync = self.status().map(|s| s["sync"].clone());
            eprintln!("---- {}: sync {sync:?}", self.ip);
        }
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}):\n{}",
                self.log_path().display(),
                self.ip,
                self.log_tail(40)
            );
        }
    }
}

fn http_get(ip: &str, path: &str) -> Option<Vec<u8>> {
    common::http_get_200(ip, WIRE + 80, path)
}

/// A site of about 200 files (≈ 4.5 MB: small pages, mid-sized files and a few that
/// span many pieces) in `dir`, deterministic.
fn write_site(dir: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    };
    let mut index = String::from("<!doctype html><title>Restart test</title><h1>Release 1</h1>\n");
    for i in 0..196 {
        let sub = dir.join(format!("part-{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        let len = 200 + (i * 7919) % 30_000;
        std::fs::write(sub.join(format!("file-{i:03}.bin")), bytes(len)).unwrap();
        index.push_str(&format!(
            "<a href=\"part-{}/file-{i:03}.bin\">{i}</a>\n",
            i % 7
        ));
    }
    for i in 0..3 {
        std::fs::write(
            dir.join(format!("big-{i}.bin")),
            bytes(500_000 + i * 123_457),
        )
        .unwrap();
    }
    std::fs::write(dir.join("index.html"), index).unwrap();
}

/// A quick network (one key per role), its site written under `content/<SITE>` (so a
/// plain client's save folder for it is `content`).
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    net: PathBuf,
    bundle: PathBuf,
    content: PathBuf,
    site: PathBuf,
}

fn fixture(tag: &str) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let net = root.join("net");
    common::small_network(&net, tag, SITE, PASS.as_bytes());
    let content = root.join("content");
    let site = content.join(SITE);
    write_site(&site);
    Fixture {
        bundle: net.join("bundle.json"),
        _tmp: tmp,
        root,
        net,
        content,
        site,
    }
}

impl Fixture {
    /// `swarmsite publish site SITE --network NET --push` to the node of `pdata`.
    fn publish_and_push(&self, pdata: &Path) {
        common::swarmsite_ok(
            PASS,
            &[
                "--data-dir",
                pdata.to_str().unwrap(),
                "publish",
                "site",
                self.site.to_str().unwrap(),
                "--network",
                self.net.to_str().unwrap(),
                "--push",
            ],
        );
    }

    /// The published release's folder (`published/<kind>-1-v1`, the one with a torrent).
    fn release_dir(&self) -> PathBuf {
        std::fs::read_dir(self.net.join("published"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join(swarmsite_node::publisher::TORRENT_FILE).exists())
            .expect("a published release with its torrent")
    }

    fn torrent_path(&self) -> PathBuf {
        self.release_dir()
            .join(swarmsite_node::publisher::TORRENT_FILE)
    }

    fn record(&self) -> Vec<u8> {
        std::fs::read(
            self.release_dir()
                .join(swarmsite_node::publisher::RECORD_FILE),
        )
        .unwrap()
    }

    fn index(&self) -> Vec<u8> {
        std::fs::read(self.site.join("index.html")).unwrap()
    }

    fn serves_index(&self, n: &NodeProc) -> bool {
        n.get("/").is_some_and(|b| b == self.index())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// libtorrent, then a bare librqbit session, each download the whole release from `n`
/// alone (its BitTorrent address is their only peer), byte-identical to the site.
/// They run on `lt_ip` and `rq_ip`; `when` names the moment for messages.
fn plain_clients_fetch(
    f: &Fixture,
    rt: &tokio::runtime::Runtime,
    n: &NodeProc,
    [lt_ip, rq_ip]: [&str; 2],
    when: &str,
) {
    let torrent = f.torrent_path();
    let bytes = std::fs::read(&torrent).unwrap();
    let ih = swarmsite_node::metainfo_file::info_hash_of(&bytes).unwrap();
    let out = f.root.join(format!("lt-{when}-{}", n.ip));
    let got = plain_bt::libtorrent_fetch(&torrent, &[n.bt()], &out, lt_ip, 60)
        .unwrap_or_else(|e| panic!("{when}: libtorrent from {} alone: {e}", n.ip));
    let files = plain_bt::same_tree(&f.site, &out.join(SITE))
        .unwrap_or_else(|e| panic!("{when}: libtorrent from {}: {e}", n.ip));
    eprintln!(
        "{when}: libtorrent fetched {} bytes ({files} files) from {} in {:.1} s",
        got.bytes, n.ip, got.secs
    );
    let out = f.root.join(format!("rqbit-{when}-{}", n.ip));
    let start = Instant::now();
    rt.block_on(plain_bt::librqbit_fetch(
        &bytes,
        ih,
        n.bt(),
        &out,
        rq_ip,
        60,
    ));
    plain_bt::same_tree(&f.site, &out)
        .unwrap_or_else(|e| panic!("{when}: bare librqbit from {}: {e}", n.ip));
    eprintln!(
        "{when}: bare librqbit fetched the release from {} in {:.1} s",
        n.ip,
        start.elapsed().as_secs_f64()
    );
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    Sigterm,
    Sigkill,
}

/// Four nodes (the publisher and three) serve a ~200-file release; if `stop`, all four
/// stop that way and start again on the same data folders. Then each node alone seeds
/// the whole release to libtorrent and to a bare librqbit session, and a fifth node that
/// knows one old node serves the release over HTTP.
fn whole_swarm(tag: &str, ips: [&str; 7], stop: Option<Stop>) {
    let f = fixture(tag);
    let rt = runtime();
    let [p_ip, a_ip, b_ip, c_ip, new_ip, lt_ip, rq_ip] = ips;
    let pdata = f.root.join("p");
    let mut nodes = vec![NodeProc::start(&pdata, &f.bundle, p_ip, &[])];
    wait_for("publisher's control API", 30, || {
        pdata.join("control.json").exists()
    });
    f.publish_and_push(&pdata);
    wait_for("publisher serves the release", 60, || {
        f.serves_index(&nodes[0])
    });
    for (i, ip) in [a_ip, b_ip, c_ip].into_iter().enumerate() {
        let data = f.root.join(format!("n{i}"));
        nodes.push(NodeProc::start(&data, &f.bundle, ip, &[p_ip]));
    }
    for n in &nodes {
        wait_for(&format!("{} serves the release", n.ip), 90, || {
            f.serves_index(n)
        });
    }
    // Fresh, each seeds on its own (the harness works, and so does a fresh node).
    for n in nodes.iter().filter(|_| stop.is_some()) {
        plain_clients_fetch(&f, &rt, n, [lt_ip, rq_ip], "before");
    }

    if let Some(stop) = stop {
        for n in &mut nodes {
            match stop {
                Stop::Sigterm => {
                    let s = n.sigterm();
                    assert!(s.success(), "node on {} after SIGTERM: {s}", n.ip);
                }
                Stop::Sigkill => n.kill9(),
            }
        }
        for n in &nodes {
            assert!(n.get("/").is_none(), "{} is down", n.ip);
        }
        for n in &mut nodes {
            n.spawn();
        }
        for n in &nodes {
            wait_for(&format!("{} serves again", n.ip), 60, || f.serves_index(n));
        }
    }

    let when = if stop.is_some() { "after" } else { "fresh" };
    for n in &nodes {
        plain_clients_fetch(&f, &rt, n, [lt_ip, rq_ip], when);
    }

    let new = NodeProc::start(&f.root.join("new"), &f.bundle, new_ip, &[b_ip]);
    let took = wait_for("a new node serves the release", 120, || {
        f.serves_index(&new)
    });
    eprintln!("{when}: a new node served the release after {took:?}");
    drop(new);
    drop(nodes);
}

/// No restart: what the restart tests check afterwards holds for a fresh swarm.
#[test]
fn a_fresh_swarm_seeds_to_plain_clients() {
    let ips = [
        "127.0.0.180",
        "127.0.0.181",
        "127.0.0.182",
        "127.0.0.183",
        "127.0.0.184",
        "127.0.0.185",
        "127.0.0.186",
    ];
    whole_swarm("RESTART00", ips, None);
}

#[test]
fn whole_swarm_restart_by_sigterm() {
    let ips = [
        "127.0.0.160",
        "127.0.0.161",
        "127.0.0.162",
        "127.0.0.163",
        "127.0.0.164",
        "127.0.0.165",
        "127.0.0.166",
    ];
    whole_swarm("RESTART01", ips, Some(Stop::Sigterm));
}

#[test]
fn whole_swarm_restart_by_sigkill() {
    let ips = [
        "127.0.0.167",
        "127.0.0.168",
        "127.0.0.169",
        "127.0.0.170",
        "127.0.0.171",
        "127.0.0.172",
        "127.0.0.173",
    ];
    whole_swarm("RESTART02", ips, Some(Stop::Sigkill));
}

/// A publisher is stopped (SIGTERM) right after `publish --push` returns and started
/// again; a new node whose only peer it is syncs the release.
#[test]
fn publisher_restarts_right_after_push() {
    let f = fixture("RESTART03");
    let pdata = f.root.join("p");
    let mut publisher = NodeProc::start(&pdata, &f.bundle, "127.0.0.174", &[]);
    wait_for("publisher's control API", 30, || {
        pdata.join("control.json").exists()
    });
    f.publish_and_push(&pdata);
    let s = publisher.sigterm();
    assert!(s.success(), "publisher after SIGTERM: {s}");
    publisher.spawn();
    let new = NodeProc::start(
        &f.root.join("new"),
        &f.bundle,
        "127.0.0.175",
        &["127.0.0.174"],
    );
    let took = wait_for("the new node serves the release", 120, || {
        f.serves_index(&new)
    });
    eprintln!("the new node served the release after {took:?}");
    wait_for("the restarted publisher serves the release", 60, || {
        f.serves_index(&publisher)
    });
    drop((new, publisher));
}

/// No swarmsite node holds the release's content: a plain libtorrent client alone seeds
/// it. A wire peer (the project's own wire state machine, on the seeder's address)
/// hands a new node the signed record and, in its handshake, the seeder's BitTorrent
/// port — how a node learns BitTorrent peers with the content DHT off. The new node
/// fetches the metainfo and the files from the plain client and serves the release.
#[test]
fn a_plain_client_is_the_only_content_holder() {
    use swarmsite_node::name::SystemName;
    use swarmsite_node::wire::WireConfig;
    const HOLDER: &str = "127.0.0.176";
    let f = fixture("RESTART04");
    // Published, never pushed to any node.
    common::swarmsite_ok(
        PASS,
        &[
            "publish",
            "site",
            f.site.to_str().unwrap(),
            "--network",
            f.net.to_str().unwrap(),
        ],
    );
    let seed = LibtorrentSeed::start(&f.torrent_path(), &f.content, HOLDER, &[], 30)
        .unwrap_or_else(|e| panic!("the plain seeder: {e}"));
    let record = f.record();
    let name = swarmsite_node::record::Record::decode(&record)
        .unwrap()
        .name;
    let tag = "RESTART04".parse().unwrap();
    let rt = runtime();
    let wire = rt
        .block_on(tokio::net::TcpListener::bind(format!("{HOLDER}:{WIRE}")))
        .unwrap();
    let rendezvous = *SystemName::rendezvous(tag).as_bytes();
    let mut cfg = WireConfig::new(rendezvous, [0x50; 20], Some(WIRE));
    cfg.bt_port = Some(seed.addr.port());
    let holder = rt.spawn(common::scripted_node(
        wire,
        cfg,
        vec![name],
        vec![(name, record.clone())],
        vec![record],
    ));
    let new = NodeProc::start(&f.root.join("new"), &f.bundle, "127.0.0.177", &[HOLDER]);
    let took = wait_for("the new node serves the release", 120, || {
        f.serves_index(&new)
    });
    eprintln!("the new node served the release, fetched from libtorrent alone, after {took:?}");
    // And it now seeds it itself, to another plain client.
    plain_clients_fetch(&f, &rt, &new, ["127.0.0.178", "127.0.0.179"], "from-plain");
    holder.abort();
    drop((new, seed));
}

/// The plain client holds the content but gives out no metadata (no ut_metadata), and
/// the one swarmsite node left holds the record and the metainfo but not the content:
/// a new node gets the metainfo over the wire (`ss_mget`) and the pieces from the plain
/// client alone.
#[test]
fn metainfo_over_the_wire_and_pieces_from_a_plain_client() {
    const SEED: &str = "127.0.0.190";
    let f = fixture("RESTART05");
    let pdata = f.root.join("p");
    let mut publisher = NodeProc::start(&pdata, &f.bundle, "127.0.0.191", &[]);
    wait_for("the publisher's control API", 60, || {
        pdata.join("control.json").exists()
    });
    f.publish_and_push(&pdata);
    let adata = f.root.join("a");
    let mut holder = NodeProc::start(&adata, &f.bundle, "127.0.0.192", &["127.0.0.191"]);
    wait_for("the node serves the release", 60, || {
        f.serves_index(&holder)
    });
    publisher.sigterm();
    holder.sigterm();
    // The node keeps the record and the metainfo, but loses the content.
    std::fs::remove_dir_all(adata.join("networks/RESTART05/sites")).unwrap();
    let kept = adata.join("networks/RESTART05/bittorrent/metainfo");
    assert_eq!(
        std::fs::read_dir(&kept).unwrap().count(),
        1,
        "metainfo kept"
    );
    holder.spawn();
    // It takes the release up again from its record and kept metainfo (and finds no
    // peer with the content).
    wait_for("the holder fetching the release again", 60, || {
        holder.status().is_some_and(|s| s["sync"]["version"] == 1)
    });
    let seed = LibtorrentSeed::start_without_metadata(&f.torrent_path(), &f.content, SEED, 30)
        .unwrap_or_else(|e| panic!("the plain seeder: {e}"));
    let bt_peer = seed.addr.to_string();
    let new = NodeProc::start_with(
        &f.root.join("new"),
        &f.bundle,
        "127.0.0.193",
        &["127.0.0.192"],
        &["--bt-peer", &bt_peer],
        "warn,swarmsite_node::torrents=debug",
    );
    let took = wait_for("the new node serves the release", 120, || {
        f.serves_index(&new)
    });
    let log = std::fs::read_to_string(new.log_path()).unwrap();
    assert!(
        log.contains("from a wire peer"),
        "metainfo not from the wire:\n{log}"
    );
    eprintln!(
        "the new node served the release after {took:?}: metainfo by ss_mget, pieces from libtorrent"
    );
    let rt = runtime();
    plain_clients_fetch(
        &f,
        &rt,
        &new,
        ["127.0.0.194", "127.0.0.195"],
        "wire-metainfo",
    );
    drop((new, holder, seed));
}
