//! Key freshness against real `swarmsite node` processes (issue 20, item 1; SPEC §3): a
//! fresh node whose first peer holds keys the publisher already rotated out (site,
//! blacklist, software). It must not stay pinned by what those keys signed, nor serve,
//! obey or offer it once it knows the rotations; and a fresh node that meets honest
//! peers too never takes it at all.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{ChildGuard, swarmsite_ok, wait_until};
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::record::{Payload, Record};

const PASS: &str = "key freshness test";
const PUBLISHER: &str = "127.0.0.200";
const ATTACKER: &str = "127.0.0.201";
const FRESH: &str = "127.0.0.202";
const CAREFUL: &str = "127.0.0.203";
const BASE: u16 = 7500;

/// A node process on `ip` with the tests' arguments; `confirm_wait` replaces the short
/// key-confirmation wait of local test swarms (`None`: the default, 20 s).
fn node(data: &Path, bundle: &Path, ip: &str, peers: &[&str], short_wait: bool) -> ChildGuard {
    let mut args = common::node_process_args(data, bundle, ip, BASE, peers, &["--no-rendezvous"]);
    if !short_wait {
        let at = args.iter().position(|a| a == "--key-confirm-wait").unwrap();
        args.drain(at..at + 2);
    }
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_swarmsite"))
            .env("SWARMSITE_PASSPHRASE", PASS)
            .env(
                "RUST_LOG",
                "info,swarmsite=debug,librqbit=warn,librqbit_dht=warn",
            )
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn log_of(data: &Path) -> String {
    std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
}

fn serves(ip: &str, page: &[u8]) -> bool {
    common::http_get_200(ip, BASE + 80, "/").is_some_and(|b| b == page)
}

#[test]
fn a_retired_key_neither_pins_nor_fools_a_fresh_node() {
    let tmp = tempfile::tempdir().unwrap();
    let net = tmp.path().join("net");
    let network = common::small_network(&net, "KEYFRESH1", "fresh", PASS.as_bytes());
    let tag = network.bundle().network();
    let bundle = net.join("bundle.json");
    let (n, b) = (net.to_str().unwrap(), bundle.as_path());
    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    let page = b"<h1>the honest release</h1>".to_vec();
    std::fs::write(site.join("index.html"), &page).unwrap();

    // The publisher publishes release 1 with site key v1, then rotates that key out:
    // key set v2 lists release 1 as current.
    let pdata = tmp.path().join("publisher");
    let p = node(&pdata, b, PUBLISHER, &[], true);
    wait_until("the publisher's control API", 60, || {
        common::cli_json(&pdata, "status").is_some()
    });
    let pd = pdata.to_str().unwrap();
    let site_dir = site.to_str().unwrap();
    swarmsite_ok(
        PASS,
        &[
            "--data-dir",
            pd,
            "publish",
            "site",
            site_dir,
            "--network",
            n,
            "--push",
        ],
    );
    for role in ["site", "blacklist", "software"] {
        let args = [
            "keys",
            "rotate",
            role,
            "--network",
            n,
            "--new",
            "1",
            "--push",
        ];
        swarmsite_ok(PASS, &[&["--data-dir", pd][..], &args].concat());
    }
    wait_until("the publisher serving release 1", 60, || {
        serves(PUBLISHER, &page)
    });
    drop(p);

    // The attacker kept the retired key: a release near the top of the version space
    // is out of reach (bounded jumps), so it signs version 1000.
    let retired =
        swarmsite_node::publisher::load_key(&net.join("keys/site/v1/key-1.pem"), PASS.as_bytes())
            .unwrap();
    let mut forged = Record::new(
        SystemName::new(tag, kind::SITE_RELEASE, 1, 1000),
        common::now(),
        Payload::Torrent {
            ih: [0xAB; 20],
            size: 4096,
        },
    )
    .unwrap();
    forged.sign(&retired);
    // A blacklist and a "9.9.9 is out" manifest by the retired keys of those roles.
    let retired_key = |role: &str| {
        let path = net.join(format!("keys/{role}/v1/key-1.pem"));
        swarmsite_node::publisher::load_key(&path, PASS.as_bytes()).unwrap()
    };
    let list = swarmsite_node::content::Blacklist {
        entries: vec![swarmsite_node::content::BlacklistEntry {
            addr: "127.0.0.250/32".parse().unwrap(),
            reason: "framed".into(),
            since: common::now(),
        }],
    };
    let mut blacklist = Record::new(
        SystemName::new(tag, kind::AUTHORIZED_FILE, 1, 50),
        common::now(),
        Payload::Body(list.encode()),
    )
    .unwrap();
    blacklist.sign(&retired_key("blacklist"));
    let manifest = swarmsite_node::update::Manifest {
        version: "9.9.9".parse().unwrap(),
        min_version: "0.0.1".parse().unwrap(),
        notes: "update now".into(),
        ih: [0xCD; 20],
        files: vec![swarmsite_node::update::PackageFile {
            platform: swarmsite_node::update::Platform::current(),
            kind: swarmsite_node::update::PackageKind::Bin,
            path: "swarmsite".into(),
            size: 1000,
            sha256: [7; 32],
        }],
    };
    let mut update = Record::new(
        SystemName::new(tag, kind::AUTHORIZED_FILE, 3, 9),
        common::now(),
        Payload::Body(manifest.encode()),
    )
    .unwrap();
    update.sign(&retired_key("software"));
    let forgeries = [&forged, &blacklist, &update];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rendezvous = *SystemName::rendezvous(tag).as_bytes();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(format!("{ATTACKER}:{BASE}")))
        .unwrap();
    let attacker = rt.spawn(common::scripted_node(
        listener,
        swarmsite_node::wire::WireConfig::new(rendezvous, [0x41; 20], Some(BASE)),
        forgeries.iter().map(|r| r.name).collect(),
        forgeries
            .iter()
            .map(|r| (r.name, r.encode().unwrap()))
            .collect(),
        forgeries.iter().map(|r| r.encode().unwrap()).collect(),
    ));

    // 1. A fresh node whose only peer is the attacker (the publisher is down): after
    //    the wait it takes the forgery, as no peer tells it of the rotation.
    let fdata = tmp.path().join("fresh");
    let _f = node(&fdata, b, FRESH, &[ATTACKER, PUBLISHER], true);
    wait_until("the fresh node to take the forgeries", 60, || {
        let log = log_of(&fdata);
        log.contains("accepted site release v1000")
            && log.contains("accepted blacklist v50")
            && log.contains("accepted software manifest v9")
    });
    let status = || common::cli_json(&fdata, "status").unwrap();
    wait_until("the forged blacklist and update in force", 30, || {
        let s = status();
        s["blacklist"]["version"] == 50 && s["update"]["newest"] == "9.9.9"
    });

    // 2. The publisher comes back: the fresh node learns key set v2, drops release
    //    1000 (its pin released), takes release 1, which v2 lists although the retired
    //    key signed it, and serves it.
    let _p = node(&pdata, b, PUBLISHER, &[FRESH], true);
    let took = wait_until("the fresh node serving the honest release", 90, || {
        serves(FRESH, &page)
    });
    let log = log_of(&fdata);
    assert!(
        log.contains("site release v1000 is signed by retired keys") && log.contains("dropped"),
        "{log}"
    );
    assert!(log.contains("accepted site release v1 from"), "{log}");
    // The blacklist and the update offer went with their key sets.
    wait_until("the forged blacklist and update gone", 30, || {
        let s = status();
        s["blacklist"].is_null() && s["update"]["newest"].is_null()
    });
    // Nobody holds the forgeries against the fresh node: it was no forger.
    let evidence = std::fs::read_to_string(pdata.join("evidence.jsonl")).unwrap_or_default();
    assert!(!evidence.contains(FRESH), "{evidence}");
    eprintln!("the fresh node served the honest release {took:?} after the publisher came back");

    // 3. A careful fresh node that meets the attacker and the publisher at once, with
    //    the default wait: it learns the rotation first and never takes the forgery.
    let cdata = tmp.path().join("careful");
    let _c = node(&cdata, b, CAREFUL, &[ATTACKER, PUBLISHER], false);
    let start = std::time::Instant::now();
    while !serves(CAREFUL, &page) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the careful node does not serve the honest release:\n{}\nits status: {}",
            log_of(&cdata)
                .lines()
                .filter(|l| !l.contains("librqbit"))
                .take(150)
                .collect::<Vec<_>>()
                .join("\n"),
            common::cli_json(&cdata, "status").map_or("none".into(), |s| s.to_string())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = log_of(&cdata);
    assert!(!log.contains("v1000 from"), "{log}");
    assert!(!log.contains("blacklist v50 from") && !log.contains("manifest v9 from"));
    assert!(log.contains("accepted site release v1 from"), "{log}");
    let wire: SocketAddr = format!("{CAREFUL}:{BASE}").parse().unwrap();
    assert!(std::net::TcpStream::connect_timeout(&wire, Duration::from_secs(2)).is_ok());
    attacker.abort();
}
