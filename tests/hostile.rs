//! A hostile peer against real `swarmsite node` processes (issue 20): a crowd of
//! connections from one address, the process's open-files limit, floods of garbage and
//! of `have`s, slow HTTP clients, and false accusations (`ss_hint`) meant to frame an
//! honest node. The nodes must stay healthy for honest peers and their own HTTP, and
//! evidence must land on the attacker only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{ChildGuard, wait_until};

const PASS: &str = "hostile test";

fn node(data: &Path, bundle: &Path, ip: &str, peers: &[&str]) -> ChildGuard {
    node_with(data, bundle, ip, peers, &["--no-rendezvous"], "warn")
}

/// `node` with `extra` arguments and `RUST_LOG=log`; it logs to `data`.log.
fn node_with(
    data: &Path,
    bundle: &Path,
    ip: &str,
    peers: &[&str],
    extra: &[&str],
    log: &str,
) -> ChildGuard {
    let args = common::node_process_args(data, bundle, ip, 7400, peers, extra);
    let log_level = log;
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    // Started with the common default soft limit of 1,024 open files (the shell execs
    // the node, so the pid is the node's).
    ChildGuard(
        Command::new("sh")
            .args(["-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_swarmsite"))
            .env("SWARMSITE_PASSPHRASE", PASS)
            .env("RUST_LOG", log_level)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// Publishes the demo site as release 1 of the network in `dir/net`, through the node
/// whose data folder is `data`.
fn publish_release_1(dir: &Path, data: &Path) {
    let site = dir.join("site");
    swarmsite_node::demo_site::write(&site, 1).unwrap();
    common::swarmsite_ok(
        PASS,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "publish",
            "site",
            site.to_str().unwrap(),
            "--network",
            dir.join("net").to_str().unwrap(),
            "--push",
        ],
    );
}

fn status(data: &Path) -> Option<serde_json::Value> {
    common::cli_json(data, "status")
}

/// Opens a connection from `ip` and sends a BitTorrent handshake for `info_hash`, as a
/// peer would; then stays silent.
fn idle_connection(
    rt: &tokio::runtime::Runtime,
    ip: &str,
    to: SocketAddr,
    info_hash: [u8; 20],
) -> Option<TcpStream> {
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(format!("{ip}:0").parse().ok()?).ok()?;
        socket.connect(to).await.ok()
    })?;
    let mut s = stream.into_std().ok()?;
    s.set_nonblocking(false).ok()?;
    let hs = swarmsite_node::wire::message::Handshake::new(info_hash, [0x66; 20]).encode();
    s.write_all(&hs).ok()?;
    Some(s)
}

/// True while the node keeps `s` open (reads what it sent; EOF or reset: closed).
fn still_open(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return true;
            }
            Err(_) => return false,
        }
    }
}

#[test]
fn a_crowd_of_connections_from_one_address_is_capped_and_honest_peers_still_get_in() {
    let tmp = tempfile::tempdir().unwrap();
    let net = common::small_network(
        &tmp.path().join("net"),
        "HOSTILE01",
        "hostile",
        PASS.as_bytes(),
    );
    let bundle = tmp.path().join("net/bundle.json");
    let rendezvous =
        *swarmsite_node::name::SystemName::rendezvous(net.bundle().network()).as_bytes();
    let adata = tmp.path().join("a");
    let a = node(&adata, &bundle, "127.0.0.120", &[]);
    wait_until("the node's control API", 60, || status(&adata).is_some());

    // Its open-files limit is raised to the hard limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", a.0.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[3], fields[4],
        "soft limit raised to the hard one: {line}"
    );

    // 60 connections from one address, each with a proper handshake, then silence.
    let wire: SocketAddr = "127.0.0.120:7400".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut crowd: Vec<TcpStream> = (0..60)
        .filter_map(|_| idle_connection(&rt, "127.0.0.121", wire, rendezvous))
        .collect();
    assert!(crowd.len() >= 50, "{} connections made", crowd.len());
    std::thread::sleep(Duration::from_millis(500));
    let open = crowd.iter_mut().map(still_open).filter(|o| *o).count();
    assert!(
        open <= 8,
        "{open} of {} connections from one address kept",
        crowd.len()
    );
    assert!(open >= 1, "the first ones are served like any peer");

    // An honest node still gets in, and the node still answers HTTP and its control API.
    let bdata = tmp.path().join("b");
    let _b = node(&bdata, &bundle, "127.0.0.122", &["127.0.0.120"]);
    wait_until("the honest node connected", 30, || {
        status(&adata).is_some_and(|s| {
            s["peers"].as_array().is_some_and(|p| {
                p.iter().any(|p| {
                    p["addr"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("127.0.0.122"))
                })
            })
        })
    });
    let (code, _) = rt.block_on(common::http_get("127.0.0.120:7480", "/"));
    assert!(code == 200 || code == 503, "HTTP answered {code}");
    drop(crowd);
    drop(a);
}

/// Pushes of garbage as fast as the rate limit allows: the connection is closed after a
/// few, its address kept out, only a few evidence lines name it, and evidence of
/// another peer's forgery is still there.
#[test]
fn a_peer_pushing_garbage_is_cut_off_and_cannot_wash_out_evidence() {
    use swarmsite_node::name::{SystemName, kind};
    use swarmsite_node::record::{Payload, Record};
    let tmp = tempfile::tempdir().unwrap();
    let net = common::small_network(
        &tmp.path().join("net"),
        "HOSTILE02",
        "hostile",
        PASS.as_bytes(),
    );
    let bundle = tmp.path().join("net/bundle.json");
    let tag = net.bundle().network();
    let rendezvous = *SystemName::rendezvous(tag).as_bytes();
    let data = tmp.path().join("a");
    let _a = node(&data, &bundle, "127.0.0.125", &[]);
    wait_until("the node's control API", 60, || status(&data).is_some());
    let wire: SocketAddr = "127.0.0.125:7400".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // A forgery from one peer: genuine evidence.
    let mut forged = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 7),
        common::now(),
        Payload::Body(b"forged".to_vec()),
    )
    .unwrap();
    forged
        .sign(&swarmsite_node::keys::PrivateKey::generate(swarmsite_node::keys::MIN_BITS).unwrap());
    rt.block_on(common::hostile_push(
        "127.0.0.127",
        wire,
        rendezvous,
        vec![forged.encode().unwrap()],
    ));
    let evidence = data.join("evidence.jsonl");
    let lines_from = |ip: &str| {
        std::fs::read_to_string(&evidence)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(ip))
            .count()
    };
    wait_until("the forgery's evidence", 30, || {
        lines_from("127.0.0.127") == 1
    });

    // 300 garbage pushes from another, in one burst (within the wire's rate limit).
    rt.block_on(common::hostile_push(
        "127.0.0.126",
        wire,
        rendezvous,
        vec![b"garbage, not a record".to_vec(); 300],
    ));
    std::thread::sleep(Duration::from_secs(1));
    let garbage_lines = lines_from("127.0.0.126");
    assert!(
        (1..=20).contains(&garbage_lines),
        "{garbage_lines} evidence lines for one flood"
    );
    // Its address is kept out for now.
    let mut again = idle_connection(&rt, "127.0.0.126", wire, rendezvous).unwrap();
    assert!(!still_open(&mut again), "the flooder got back in at once");
    // The first forgery's evidence is still there; the node answers as ever.
    assert_eq!(lines_from("127.0.0.127"), 1);
    let s = status(&data).expect("status answers");
    assert!(s["evidence"].as_u64().unwrap() <= 21, "{}", s["evidence"]);
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("refused items; closed"), "{log}");
}

/// Connects from `ip` and, for `secs`, sends `per_sec` `have`s a second, each naming
/// 3,000 documents never published (fresh ids every time); what the node sends back is
/// read and dropped.
async fn have_flood(
    ip: &str,
    to: SocketAddr,
    tag: swarmsite_node::name::NetworkTag,
    secs: u64,
    per_sec: u32,
) -> u32 {
    use swarmsite_node::name::{SystemName, kind};
    use swarmsite_node::wire::{Connection, Event, Message, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rendezvous = *SystemName::rendezvous(tag).as_bytes();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    let ms = swarmsite_node::clock::unix_ms;
    let mut conn = Connection::new(WireConfig::new(rendezvous, [0x77; 20], None), ms(), true);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut ready, mut sent, mut next_id) = (false, 0u32, 0x100u32);
    let start = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / u64::from(per_sec)));
    while start.elapsed() < Duration::from_secs(secs) && !conn.is_closed() {
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            break;
        }
        while let Some(ev) = conn.poll_event() {
            ready |= matches!(ev, Event::Ready { .. });
        }
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => conn.handle_input(&buf[..n], ms()),
            },
            _ = tick.tick(), if ready => {
                let names = (0..3000)
                    .map(|i| SystemName::new(tag, kind::AUTHORIZED_FILE, next_id + i, 1))
                    .collect();
                next_id += 3000;
                conn.send(&Message::Have { names }, ms());
                sent += 1;
            }
        }
    }
    sent
}

/// CPU seconds (user + system) and resident KiB of process `pid`.
fn cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    (ticks as f64 / 100.0, rss)
}

/// `have`s full of fresh names, as fast as the rate limit allows, do not pin a core or
/// grow memory, and a release published meanwhile still arrives promptly.
#[test]
fn a_have_flood_neither_burns_a_core_nor_delays_a_release() {
    let tmp = tempfile::tempdir().unwrap();
    let net = common::small_network(
        &tmp.path().join("net"),
        "HOSTILE03",
        "hostile",
        PASS.as_bytes(),
    );
    let bundle = tmp.path().join("net/bundle.json");
    let tag = net.bundle().network();
    let (pdata, vdata) = (tmp.path().join("p"), tmp.path().join("v"));
    let p = node(&pdata, &bundle, "127.0.0.130", &[]);
    let _v = node(&vdata, &bundle, "127.0.0.131", &["127.0.0.130"]);
    wait_until("both up and connected", 60, || {
        status(&pdata).is_some_and(|s| s["peers"].as_array().is_some_and(|p| !p.is_empty()))
    });
    let pid = p.0.id();
    let (cpu0, rss0) = cpu_and_rss(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let wire: SocketAddr = "127.0.0.130:7400".parse().unwrap();
    let flood = rt.spawn(have_flood("127.0.0.132", wire, tag, 20, 40));
    // A release published in the middle of it.
    std::thread::sleep(Duration::from_secs(5));
    publish_release_1(tmp.path(), &pdata);
    let took = wait_until("the volunteer serves the release", 15, || {
        status(&vdata).is_some_and(|s| s["served_version"] == 1)
    });
    let sent = rt.block_on(flood).unwrap();
    let (cpu1, rss1) = cpu_and_rss(pid);
    let cpu = (cpu1 - cpu0) / 20.0;
    eprintln!(
        "{sent} haves of 3,000 names in 20 s: the node used {:.0} % of a core, RSS {} → {} MiB; \
         the release arrived {took:?} after its push",
        cpu * 100.0,
        rss0 / 1024,
        rss1 / 1024
    );
    // Speed is the benchmarks' business (this is a debug build); what must hold here:
    // the flood went on (slowed by TCP once the node's queue for it is full), the
    // release came through at once, memory stayed bounded, and the node still answers.
    assert!(sent >= 100, "only {sent} haves sent");
    assert!(took < Duration::from_secs(10), "the release took {took:?}");
    assert!(rss1 < rss0 + 24 * 1024, "RSS {rss0} → {rss1} KiB");
    assert!(status(&pdata).is_some());
}

/// Slow and idle HTTP clients are timed out, and one address cannot hold every HTTP
/// connection.
#[test]
fn slow_idle_and_crowding_http_clients_are_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    common::small_network(
        &tmp.path().join("net"),
        "HOSTILE04",
        "hostile",
        PASS.as_bytes(),
    );
    let bundle = tmp.path().join("net/bundle.json");
    let data = tmp.path().join("a");
    let _a = node(&data, &bundle, "127.0.0.135", &[]);
    wait_until("the node's control API", 60, || status(&data).is_some());
    let http: SocketAddr = "127.0.0.135:7480".parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connect = |ip: &str| -> TcpStream {
        let stream = rt
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(format!("{ip}:0").parse().unwrap())?;
                socket.connect(http).await
            })
            .unwrap();
        let s = stream.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    };
    // A slowloris: half a header, then a byte now and then.
    let mut slow = connect("127.0.0.136");
    slow.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    // A kept-alive connection that asked once and then says nothing.
    let mut idle = connect("127.0.0.136");
    idle.write_all(b"GET /.well-known/swarmsite/release HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // 100 connections from one address: only some are taken.
    let mut crowd: Vec<TcpStream> = (0..100).map(|_| connect("127.0.0.137")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let open = crowd.iter_mut().map(still_open).filter(|o| *o).count();
    assert!(
        (1..=64).contains(&open),
        "{open} of 100 from one address kept"
    );
    // Others still get served meanwhile.
    let (code, _) = rt.block_on(common::http_get("127.0.0.135:7480", "/"));
    assert!(code == 200 || code == 503, "HTTP answered {code}");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let _ = slow.write_all(b"s");
        if !still_open(&mut slow) && !still_open(&mut idle) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "slow and idle connections still open after {:?}",
        start.elapsed()
    );
    drop(crowd);
}

/// Connects from `ip` as a wire peer (its own peer id), sends `hints`, stays a moment so
/// the node reads them from a live connection, and leaves. False when it never got in.
async fn send_hints(
    ip: &str,
    to: SocketAddr,
    rendezvous: [u8; 20],
    hints: Vec<swarmsite_node::wire::Hint>,
) -> bool {
    use swarmsite_node::wire::{Connection, Event, Message, WireConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ms = swarmsite_node::clock::unix_ms;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let Ok(mut s) = socket.connect(to).await else {
        return false;
    };
    let id = ip.parse::<std::net::Ipv4Addr>().unwrap().octets()[3];
    let mut conn = Connection::new(WireConfig::new(rendezvous, [id; 20], None), ms(), true);
    let mut buf = vec![0u8; 64 * 1024];
    let start = std::time::Instant::now();
    let mut sent: Option<std::time::Instant> = None;
    while start.elapsed() < Duration::from_secs(15) && !conn.is_closed() {
        let out = conn.take_transmit();
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return sent.is_some();
        }
        while let Some(ev) = conn.poll_event() {
            if matches!(ev, Event::Ready { .. }) && sent.is_none() {
                for h in &hints {
                    conn.send(&Message::Hint(h.clone()), ms());
                }
                sent = Some(std::time::Instant::now());
            }
        }
        if sent.is_some_and(|at| at.elapsed() > Duration::from_millis(1500)) {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => conn.handle_eof(),
            Ok(Ok(n)) => conn.handle_input(&buf[..n], ms()),
            Err(_) => conn.handle_timeout(ms()),
        }
    }
    sent.is_some()
}

/// True when the node in `data` has a blacklist in force listing `ip`.
fn lists_ip(data: &Path, ip: &str) -> bool {
    status(data).is_some_and(|s| {
        s["blacklist"]["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["addr"].as_str() == Some(&format!("{ip}/32")))
        })
    })
}

/// Three addresses accuse an honest node to an auto-blacklist node (issue 20, item 2):
/// of DHT lies under the node rendezvous name (which no `have` lists), of a forgery its
/// own answers refute, and of forgeries "seen" on its HTTP and BitTorrent ports, which
/// answer as no swarmsite node. Nothing is listed and the honest node keeps its peers.
/// Then the same three accuse a real forger, which answers the auditor's own `get` with
/// its forgery: it is listed, by the auditor's own evidence, everywhere.
#[test]
fn false_hints_cannot_frame_an_honest_node_and_a_real_forger_is_still_listed() {
    use swarmsite_node::name::{SystemName, kind};
    use swarmsite_node::record::{Payload, Record, Signature};
    use swarmsite_node::wire::{Hint, WireConfig};
    const AUDITOR: &str = "127.0.0.230";
    const HONEST: &str = "127.0.0.231";
    const ACCUSERS: [&str; 3] = ["127.0.0.232", "127.0.0.233", "127.0.0.234"];
    const FORGER: &str = "127.0.0.235";
    let tmp = tempfile::tempdir().unwrap();
    let net = common::small_network(
        &tmp.path().join("net"),
        "HOSTILE05",
        "hostile",
        PASS.as_bytes(),
    );
    let bundle = tmp.path().join("net/bundle.json");
    let tag = net.bundle().network();
    let rendezvous_name = SystemName::rendezvous(tag);
    let rendezvous = *rendezvous_name.as_bytes();
    let key = tmp.path().join("net/keys/blacklist/v1/key-1.pem");
    let (adata, hdata) = (tmp.path().join("auditor"), tmp.path().join("honest"));
    // Both run the rendezvous DHT, as in the attack first reported.
    let dht = |ip: &str| format!("{ip}:7410");
    let (a_dht, h_dht) = (dht(AUDITOR), dht(HONEST));
    let _a = node_with(
        &adata,
        &bundle,
        AUDITOR,
        &[],
        &[
            "--rendezvous",
            &a_dht,
            "--no-dht-bootstrap",
            "--auto-blacklist",
            key.to_str().unwrap(),
            "--auto-blacklist-threshold",
            "3",
            "--auto-blacklist-interval",
            "1",
        ],
        "warn,swarmsite=info",
    );
    let _h = node_with(
        &hdata,
        &bundle,
        HONEST,
        &[AUDITOR],
        &["--rendezvous", &h_dht, "--no-dht-bootstrap"],
        "warn",
    );
    wait_until("both up and connected", 60, || {
        status(&adata).is_some_and(|s| s["peers"].as_array().is_some_and(|p| !p.is_empty()))
    });
    // Release 1, published through the auditor's node, held by both.
    publish_release_1(tmp.path(), &adata);
    wait_until("the honest node serves release 1", 60, || {
        status(&hdata).is_some_and(|s| s["served_version"] == 1)
    });
    let v1 = SystemName::new(tag, kind::SITE_RELEASE, 1, 1);

    // The accusations, from three addresses.
    let honest = |reason: &str, wire: Option<u16>, bt: Option<u16>, object| Hint {
        ip: HONEST.parse().unwrap(),
        wire_port: wire,
        bt_port: bt,
        reason: reason.into(),
        object: Some(object),
        hops: 4,
    };
    let lies = vec![
        honest("dht-empty-announce", Some(7400), None, rendezvous_name),
        honest("dht-false-announce", Some(7480), None, rendezvous_name),
        honest("bad-signature", Some(7400), None, v1),
        // Its HTTP port, and its BitTorrent port, as if they were its wire port.
        honest("malformed", Some(7480), None, v1),
        honest("not-enough-signatures", Some(7401), None, v1),
        honest("bad-piece", None, Some(7401), v1),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let wire: SocketAddr = format!("{AUDITOR}:7400").parse().unwrap();
    for ip in ACCUSERS {
        assert!(
            rt.block_on(send_hints(ip, wire, rendezvous, lies.clone())),
            "{ip} got in"
        );
    }
    // The auditor re-checks what it can check, from the honest node itself, and none of
    // it holds (a piece re-check downloads the release from it: up to 20 s).
    let log = adata.with_extension("log");
    let refuted = |reason: &str| {
        std::fs::read_to_string(&log).is_ok_and(|l| {
            l.contains(&format!(
                "re-check of {reason} against {HONEST}: not confirmed"
            ))
        })
    };
    wait_until(
        "the auditor's re-checks refute every accusation",
        60,
        || {
            [
                "bad-signature",
                "malformed",
                "not-enough-signatures",
                "bad-piece",
            ]
            .iter()
            .all(|r| refuted(r))
        },
    );
    // Several batches later: nothing listed, the honest node still has its peer.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!lists_ip(&adata, HONEST), "the honest node was listed");
    assert!(
        status(&adata).is_some_and(|s| s["blacklist"].is_null()),
        "no blacklist was signed at all"
    );
    assert!(
        status(&hdata).is_some_and(|s| s["peers"].as_array().is_some_and(|p| !p.is_empty())),
        "the honest node was cut off"
    );
    let evidence = std::fs::read_to_string(adata.join("evidence.jsonl")).unwrap_or_default();
    assert!(
        !evidence.contains(HONEST),
        "evidence against the honest node: {evidence}"
    );

    // The control: a real forger, which answers `get` of release 2 with a forgery
    // claiming the real site key (a signature that is not its). The auditor never
    // connected to it; only the same three accusers name it.
    let v2 = SystemName::new(tag, kind::SITE_RELEASE, 1, 2);
    let site_key = swarmsite_node::publisher::load_key(
        &tmp.path().join("net/keys/site/v1/key-1.pem"),
        PASS.as_bytes(),
    )
    .unwrap();
    let forged = {
        let mut r = Record::new(
            v2,
            common::now(),
            Payload::Torrent {
                ih: [0x66; 20],
                size: 1,
            },
        )
        .unwrap();
        r.add_signature(Signature {
            kid: site_key.kid(),
            sig: vec![0x5a; 384],
        });
        r.encode().unwrap()
    };
    let forger_wire: SocketAddr = format!("{FORGER}:7400").parse().unwrap();
    let forger = rt.spawn(async move {
        let listener = tokio::net::TcpListener::bind(forger_wire).await.unwrap();
        common::scripted_node(
            listener,
            WireConfig::new(rendezvous, [0x46; 20], Some(forger_wire.port())),
            vec![v2],
            vec![(v2, forged)],
            vec![],
        )
        .await
    });
    let accusation = Hint {
        ip: FORGER.parse().unwrap(),
        wire_port: Some(forger_wire.port()),
        bt_port: None,
        reason: "bad-signature".into(),
        object: Some(v2),
        hops: 4,
    };
    for ip in ACCUSERS {
        assert!(
            rt.block_on(send_hints(ip, wire, rendezvous, vec![accusation.clone()])),
            "{ip} got in"
        );
    }
    wait_until(
        "the forger listed by the auditor and the honest node",
        60,
        || lists_ip(&adata, FORGER) && lists_ip(&hdata, FORGER),
    );
    let evidence = std::fs::read_to_string(adata.join("evidence.jsonl")).unwrap_or_default();
    let own = evidence
        .lines()
        .filter(|l| l.contains(FORGER) && l.contains("answered with a forged record"))
        .count();
    assert!(
        own >= 3,
        "listed on the auditor's own re-checks: {evidence}"
    );
    assert!(!lists_ip(&adata, HONEST) && !lists_ip(&hdata, HONEST));
    assert!(
        ACCUSERS.iter().all(|ip| !evidence.contains(ip)),
        "the accusers' hints are no evidence either way"
    );
    forger.abort();
}
