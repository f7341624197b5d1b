//! DNS steering end to end (issue 8): real nodes on loopback, `swarmsite dns` (the
//! built binary) as the remote backend of a real PowerDNS, asked with dig.
//!
//! Five nodes serve release 2 at 127.0.0.1–5, one serves release 1 (127.0.0.6), one
//! a forged record (127.0.0.7). The DNS node knows node 1 as a wire peer and the other
//! two as seeds; nodes 2–5 it finds through the rendezvous DHT. Then node 3 dies and
//! comes back, fake callers send junk, a second PowerDNS asks through the unix-socket
//! connector, and a blacklist names node 5.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use swarmsite_node::content::Blacklist;
use swarmsite_node::demo_site;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::node::NodeConfig;
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::record::{Payload, Record};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

mod common;
use common::*;

const PASS: &[u8] = b"dns test";
/// Every node serves HTTP on its own address and this port (the prober's fallback
/// port; port 80 is tried first and refused).
const HTTP_PORT: u16 = 18880;
/// Probe interval set in the zone file (seconds).
const INTERVAL: f64 = 1.0;
const TIMEOUT: f64 = 1.0;

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_cfg(tmp: &Path, net: &NetworkDir, i: u8, peers: Vec<SocketAddr>, dht: bool) -> NodeConfig {
    let ip = format!("127.0.0.{i}");
    let mut cfg = node_config(&tmp.join(format!("n{i}")), net, &ip, peers);
    cfg.http = vec![format!("{ip}:{HTTP_PORT}").parse().unwrap()];
    if dht {
        cfg.rendezvous = Some(format!("{ip}:0").parse().unwrap());
        cfg.rendezvous_bootstrap = vec![]; // loopback only
    }
    cfg
}

/// `dig` through PowerDNS: the A records, in the order given.
fn dig(port: u16, extra: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .args(extra)
        .output()
        .expect("dig (package dnsutils) is installed by scripts/test");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

fn a(port: u16, subnet: Option<&str>) -> Vec<String> {
    let s = subnet.map(|s| format!("+subnet={s}"));
    let mut args = vec!["site.example", "A"];
    if let Some(s) = &s {
        args.push(s);
    }
    dig(port, &args)
}

fn ips(last: &[u8]) -> Vec<String> {
    last.iter().map(|i| format!("127.0.0.{i}")).collect()
}

fn write_zone(path: &Path, seeds: &[&str]) {
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    std::fs::write(
        path,
        format!(
            r#"zone = "site.example"
ttl = 2
fallback_ttl = 1
ns = ["ns1.site.example"]
[soa]
primary = "ns1.site.example"
hostmaster = "hostmaster.site.example"
[[record]]
name = "ns1.site.example"
type = "A"
content = "192.0.2.53"
[probe]
interval = {INTERVAL}
timeout = {TIMEOUT}
retry_max = 2
discover_interval = 1
allow_private = true
seeds = [{}]
"#,
            seeds.join(", ")
        ),
    )
    .unwrap();
}

/// PowerDNS with the remote backend at `connection` (its remote-connection-string),
/// caches off, order kept.
fn start_pdns(dir: &Path, port: u16, connection: &str) -> ChildGuard {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("pdns.conf"),
        format!(
            "launch=remote
remote-connection-string={connection}
local-address=127.0.0.1
local-port={port}
daemon=no
guardian=no
write-pid=no
socket-dir={}
edns-subnet-processing=yes
no-shuffle=yes
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
loglevel=4
",
            dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("pdns.log")).unwrap();
    ChildGuard(
        Command::new("pdns_server")
            .arg(format!("--config-dir={}", dir.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pdns_server (package pdns-server) is installed by scripts/test"),
    )
}

/// An HTTP server that serves `record` as its release: a node forging one.
async fn fake_release_server(addr: SocketAddr, record: Vec<u8>) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new().route(
        &format!("/{}", swarmsite_node::serve::RELEASE_PATH),
        axum::routing::get(move || {
            let r = record.clone();
            async move { r }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// POSTs `body` to the backend the way PowerDNS does; returns status and JSON.
async fn post(port: u16, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, reply) = http_request(&format!("127.0.0.1:{port}"), "POST", path, body).await;
    (status, serde_json::from_slice(&reply).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn powerdns_steers_dig_to_live_nearest_verified_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let opts = InitOptions::one_site("TESTLEAKS".parse().unwrap(), "testleaks");
    let net = NetworkDir::init(&t.join("net"), &opts, PASS, now()).unwrap();
    let mut releases = Vec::new();
    for v in 1..=2 {
        let site = t.join(format!("site{v}"));
        demo_site::write(&site, v).unwrap();
        releases.push(publish_site(&net, PASS, &site, v));
    }

    // Node 1 gets release 2 from its publisher; nodes 2–5 from node 1.
    let n1 = OwnRuntime::spawn(node_cfg(t, &net, 1, vec![], true)).await;
    let n1_wire: SocketAddr = n1.handle.status().wire_addr.parse().unwrap();
    let (dir2, rec2) = releases[1].clone();
    n1.handle.submit(rec2.clone(), Some(dir2)).await.unwrap();
    let mut nodes = vec![Some(n1)];
    for i in 2..=5 {
        nodes.push(Some(
            OwnRuntime::spawn(node_cfg(t, &net, i, vec![n1_wire], true)).await,
        ));
    }
    // Node 6 alone, with release 1 only; 7 forges a release 3 from release 2.
    let old = OwnRuntime::spawn(node_cfg(t, &net, 6, vec![], false)).await;
    let (dir1, rec1) = releases[0].clone();
    old.handle.submit(rec1, Some(dir1)).await.unwrap();
    let mut forged = Record::decode(&rec2).unwrap();
    forged.name = forged.name.with_version(3);
    let forger = fake_release_server(
        format!("127.0.0.7:{HTTP_PORT}").parse().unwrap(),
        forged.encode().unwrap(),
    )
    .await;
    let handles: Vec<_> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().handle.clone())
        .collect();
    wait_for("release 2 on nodes 1-5, release 1 on node 6", 120, || {
        handles.iter().all(|h| h.status().served_version == Some(2))
            && old.handle.status().served_version == Some(1)
    })
    .await;

    // The DNS node: a node of the network with the backend beside it.
    let bundle = t.join("bundle.json");
    std::fs::write(&bundle, net.bundle().to_json()).unwrap();
    let zone = t.join("zone.toml");
    write_zone(&zone, &["127.0.0.6", "127.0.0.7"]);
    let backend = free_port("127.0.0.1");
    let socket = t.join("dns.sock");
    let dns_data = t.join("dns");
    std::fs::create_dir_all(&dns_data).unwrap();
    let dns_log = std::fs::File::create(t.join("dns.log")).unwrap();
    let _dns = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_swarmsite"))
            .env("RUST_LOG", "info,librqbit=warn,librqbit_dht=warn")
            .args(["--data-dir", &dns_data.display().to_string(), "dns"])
            .args(["--zone", &zone.display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{backend}")])
            .args(["--unix", &socket.display().to_string()])
            .args(["--bundle", &bundle.display().to_string()])
            .args(["--wire", "127.0.0.9:0", "--bt", "127.0.0.9:0"])
            .args(["--http", "127.0.0.9:0", "--rendezvous", "127.0.0.9:0"])
            .args([
                "--no-dht-bootstrap",
                "--no-content-dht",
                "--pull-interval",
                "2",
                "--key-confirm-wait",
                "1",
            ])
            .args(["--peer", &n1_wire.to_string()])
            .stdout(Stdio::null())
            .stderr(dns_log)
            .spawn()
            .unwrap(),
    );
    // PowerDNS fills its zone cache (getAllDomains) when it starts: the backend first.
    wait_for("the backend listening", 60, || {
        std::net::TcpStream::connect(("127.0.0.1", backend)).is_ok()
    })
    .await;
    let port = free_port("127.0.0.1");
    let http = format!("http:url=http://127.0.0.1:{backend}/dns,post=1,post_json=1,timeout=2000");
    let _pdns = start_pdns(&t.join("pdns"), port, &http);
    let show_logs = || {
        format!(
            "dns log:\n{}\npdns log:\n{}",
            std::fs::read_to_string(t.join("dns.log")).unwrap_or_default(),
            std::fs::read_to_string(t.join("pdns/pdns.log")).unwrap_or_default()
        )
    };

    // Every healthy node found (through the DHT too), and only those answered.
    let five = ips(&[1, 2, 3, 4, 5]);
    let subnets = [
        ("127.0.0.3/32", [3, 2, 1]),
        ("127.0.0.5/32", [5, 4, 3]),
        ("127.0.0.1/32", [1, 2, 3]),
        ("127.0.0.4/32", [4, 5, 3]),
        ("127.0.0.6/32", [5, 4, 3]),
        ("127.0.0.7/32", [5, 4, 3]),
        ("10.0.0.0/8", [1, 2, 3]),
    ];
    let took = wait_for("all five healthy nodes answered", 90, || {
        subnets
            .iter()
            .all(|(s, want)| a(port, Some(s)) == ips(want))
    })
    .await;
    eprintln!("steering complete {took:?} after the DNS node started");
    for _ in 0..3 {
        for (s, want) in &subnets {
            let got = a(port, Some(s));
            assert_eq!(got, ips(want), "subnet {s}\n{}", show_logs());
            assert!(got.iter().all(|g| five.contains(g)), "{got:?}");
        }
    }
    // Without ECS the resolver's own address (dig's, 127.0.0.1) counts.
    assert_eq!(a(port, None), ips(&[1, 2, 3]));
    assert_eq!(dig(port, &["site.example", "SOA"]).len(), 1);
    assert!(dig(port, &["site.example", "AAAA"]).is_empty());
    assert_eq!(dig(port, &["ns1.site.example", "A"]), ["192.0.2.53"]);

    // A fake caller: errors the protocol's way, and the backend goes on serving.
    let (status, body) = post(backend, "/dns/lookup", b"{\"method\": \"lookup\", ").await;
    assert_eq!(status, 400);
    assert_eq!(body["result"], false);
    assert!(
        body["log"][0].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );
    let (status, body) = post(
        backend,
        "/dns/frobnicate",
        br#"{"method":"frobnicate","parameters":{}}"#,
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &serde_json::json!(false)));
    assert!(
        body["log"][0].as_str().unwrap().contains("unknown method"),
        "{body}"
    );
    let (status, _) = post(backend, "/dns", &vec![b'x'; 100_000]).await;
    assert_eq!(status, 413);
    let (_, body) = post(
        backend,
        "/dns/lookup",
        br#"{"method":"lookup","parameters":{"qtype":"A","qname":"site.example.","real-remote":"127.0.0.5/32"}}"#,
    )
    .await;
    assert_eq!(body["result"][0]["content"], "127.0.0.5");
    assert_eq!(a(port, Some("127.0.0.3/32")), ips(&[3, 2, 1]));

    // The same answers through PowerDNS's unix-socket connector.
    let unix_port = free_port("127.0.0.1");
    let _pdns_unix = start_pdns(
        &t.join("pdns-unix"),
        unix_port,
        &format!("unix:path={},timeout=2000", socket.display()),
    );
    wait_for("PowerDNS answering through the unix socket", 30, || {
        a(unix_port, Some("127.0.0.3/32")) == ips(&[3, 2, 1])
    })
    .await;
    for (s, want) in &subnets {
        assert_eq!(a(unix_port, Some(s)), ips(want), "unix, subnet {s}");
    }
    // A fake caller there: a malformed line gets an error, the next line its answer.
    let mut conn = tokio::net::UnixStream::connect(&socket).await.unwrap();
    conn.write_all(b"{\"method\": \"lookup\", \n{\"method\":\"lookup\",\"parameters\":{\"qtype\":\"A\",\"qname\":\"site.example.\",\"real-remote\":\"127.0.0.4/32\"}}\n")
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(conn).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["result"], false);
    assert!(
        first["log"][0].as_str().unwrap().contains("malformed JSON"),
        "{first}"
    );
    let second: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(second["result"][0]["content"], "127.0.0.4", "{second}");

    // Node 3 dies: it leaves the answers within one probe interval (plus the probe's
    // own timeout); restarted on the same address, it comes back.
    let n3 = nodes[2].take().unwrap();
    n3.shutdown().await;
    let gone = wait_for("node 3 out of the answers", 30, || {
        a(port, Some("127.0.0.3/32")) == ips(&[2, 1, 4])
    })
    .await;
    eprintln!("node 3 left the answers {gone:?} after it stopped");
    assert!(
        gone.as_secs_f64() <= INTERVAL + TIMEOUT + 1.0,
        "took {gone:?}\n{}",
        show_logs()
    );
    nodes[2] = Some(OwnRuntime::spawn(node_cfg(t, &net, 3, vec![n1_wire], true)).await);
    let back = wait_for("node 3 back in the answers", 30, || {
        a(port, Some("127.0.0.3/32")) == ips(&[3, 2, 1])
    })
    .await;
    eprintln!("node 3 came back {back:?} after its restart");

    // The control API shows the DNS front beside the node.
    let status = Command::new(env!("CARGO_BIN_EXE_swarmsite"))
        .args(["--data-dir", &dns_data.display().to_string(), "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("dns site.example. on 127.0.0.1:"), "{text}");
    assert!(text.contains("answering 5 node(s)"), "{text}");

    // A signed blacklist naming node 5 reaches the DNS node: node 5 leaves the answers.
    let list = Blacklist::from_text("127.0.0.5 test\n", now()).unwrap();
    let name = SystemName::new(net.bundle().network(), kind::AUTHORIZED_FILE, 1, 1);
    let mut r = Record::new(name, now(), Payload::Body(list.encode())).unwrap();
    r.sign(&publisher::load_key(&net.root().join("keys/blacklist/v1/key-1.pem"), PASS).unwrap());
    handles[0].submit(r.encode().unwrap(), None).await.unwrap();
    wait_for("node 5 out of the answers once blacklisted", 30, || {
        a(port, Some("127.0.0.5/32")) == ips(&[4, 3, 2])
    })
    .await;

    forger.abort();
    old.shutdown().await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}
