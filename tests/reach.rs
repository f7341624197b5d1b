//! Reachability against real daemons, in network namespaces this test makes:
//!
//! ```text
//!  inet (11.0.0.2) ── wan ── router (11.0.0.1 | br0 192.168.77.1, Debian's miniupnpd + nftables)
//!                                        ├── home (192.168.77.10): `swarmsite node`
//!                                        └── lan2 (192.168.77.20): a neighbour, the mDNS resolver
//! ```
//!
//! The node maps its ports on the router (one held by the neighbour moves to the next),
//! the internet reaches its site through the router's address, a resolver on the LAN
//! finds `<site>.local`, the node follows a new address, reports a router that stops,
//! maps again within one renewal period when it is back, and removes everything when it
//! stops; paused (the tray's "Pause sharing") it answers the internet with 503 but
//! still serves its owner on loopback. Every process is stopped by its pid and every
//! namespace removed, even on failure.

mod common;
use common::wait_until;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use swarmsite_node::publisher::{InitOptions, NetworkDir};

const PASS: &str = "reach test";
const SITE: &str = "reachsite";
/// Lease asked by the node: renewal (and the longest retry cycle) every 4 s.
const LEASE: u64 = 8;
const RENEWAL: Duration = Duration::from_secs(LEASE / 2);
const NODE_IP: &str = "192.168.77.10";
const NEIGHBOUR_IP: &str = "192.168.77.20";
const EXTERNAL_IP: &str = "11.0.0.1";

/// A named network namespace, deleted when dropped.
struct Netns(String);

impl Netns {
    fn add(name: String) -> Result<Netns, String> {
        let o = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("ip: {e}"))?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        let ns = Netns(name);
        ns.sh("ip link set lo up");
        Ok(ns)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    /// Runs `line` (split on spaces) inside; panics unless it succeeds.
    fn sh(&self, line: &str) -> String {
        let mut parts = line.split(' ');
        let o = self
            .cmd(parts.next().unwrap())
            .args(parts)
            .output()
            .unwrap();
        assert!(o.status.success(), "{} `{line}`: {}", self.0, text(&o));
        text(&o)
    }

    /// Runs `program args` inside and returns what it printed, whatever its exit.
    fn out(&self, program: &str, args: &[&str]) -> String {
        text(&self.cmd(program).args(args).output().unwrap())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A process started by the test, killed by its pid when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut c: Command, log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        let child = c
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM (a clean stop), then waits at most `secs` for the exit.
    fn terminate(&mut self, secs: u64) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {}:\n{}", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The home router: namespaces, links, nftables chains, and miniupnpd.
struct Lab {
    dir: PathBuf,
    // Fields drop in order: processes before the namespaces they run in.
    miniupnpd: Option<Proc>,
    inet: Netns,
    home: Netns,
    lan2: Netns,
    router: Netns,
}

impl Lab {
    /// Builds the rest around `router`, the first namespace (named `<prefix>-router`).
    fn new(dir: &Path, prefix: &str, router: Netns) -> Lab {
        let inet = Netns::add(format!("{prefix}-inet")).unwrap();
        let home = Netns::add(format!("{prefix}-home")).unwrap();
        let lan2 = Netns::add(format!("{prefix}-lan2")).unwrap();
        let link = |a: &Netns, an: &str, b: &Netns, bn: &str| {
            let o = Command::new("ip")
                .args(["link", "add", an, "netns", &a.0, "type", "veth", "peer"])
                .args(["name", bn, "netns", &b.0])
                .output()
                .unwrap();
            assert!(o.status.success(), "veth {an}: {}", text(&o));
        };
        link(&router, "wan", &inet, "up0");
        router.sh("ip addr add 11.0.0.1/24 dev wan");
        router.sh("ip link set wan up");
        inet.sh("ip addr add 11.0.0.2/24 dev up0");
        inet.sh("ip link set up0 up");
        // The LAN: a bridge in the router, one port per host.
        router.sh("ip link add br0 type bridge mcast_snooping 0");
        router.sh("ip addr add 192.168.77.1/24 dev br0");
        router.sh("ip link set br0 up");
        for (host, port, ip) in [(&home, "p-home", NODE_IP), (&lan2, "p-lan2", NEIGHBOUR_IP)] {
            link(&router, port, host, "eth0");
            router.sh(&format!("ip link set {port} master br0"));
            router.sh(&format!("ip link set {port} up"));
            host.sh(&format!("ip addr add {ip}/24 dev eth0"));
            host.sh("ip link set eth0 up");
            // SSDP and mDNS need a route for multicast: the default one.
            host.sh("ip route add default via 192.168.77.1");
        }
        router.sh("sysctl -qw net.ipv4.ip_forward=1");
        let nft = dir.join("router.nft");
        std::fs::write(&nft, RULESET).unwrap();
        router.sh(&format!("nft -f {}", nft.display()));
        let conf = dir.join("miniupnpd.conf");
        std::fs::write(&conf, MINIUPNPD_CONF).unwrap();
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            miniupnpd: None,
            inet,
            home,
            lan2,
            router,
        };
        lab.start_router();
        lab
    }

    fn start_router(&mut self) {
        let mut c = self.router.cmd("miniupnpd");
        c.arg("-f")
            .arg(self.dir.join("miniupnpd.conf"))
            .arg("-d")
            .arg("-P")
            .arg(self.dir.join("miniupnpd.pid"));
        let p = Proc::spawn(c, &self.dir.join("miniupnpd.log"));
        wait_until("miniupnpd to listen", 10, || {
            p.log().contains("HTTP listening on port")
        });
        self.miniupnpd = Some(p);
    }

    /// Stops miniupnpd and clears what it left in the firewall, as a reboot would.
    fn stop_router(&mut self) {
        let mut p = self.miniupnpd.take().expect("router running");
        assert!(p.terminate(10), "miniupnpd did not stop");
        for chain in [
            "inet filter miniupnpd",
            "inet nat prerouting_miniupnpd",
            "inet nat postrouting_miniupnpd",
        ] {
            self.router.sh(&format!("nft flush chain {chain}"));
        }
    }

    /// The router's mappings as `upnpc -l` lists them from the neighbour.
    fn mappings(&self) -> String {
        self.lan2.out("upnpc", &["-l"])
    }
}

/// Chains miniupnpd 2.3.1 fills (its own table names given in the config: by default it
/// looks for its NAT chains in the filter table). Forwarding from outside is allowed only
/// through them.
const RULESET: &str = r#"
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "br0" accept
    jump miniupnpd
  }
  chain miniupnpd {
  }
}
table inet nat {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan" masquerade
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
"#;

const MINIUPNPD_CONF: &str = "\
ext_ifname=wan
listening_ip=br0
http_port=0
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=yes
upnp_table_name=filter
upnp_nat_table_name=nat
uuid=3c2e8a7c-1f6b-4d2e-9b9a-7e0c3d2f1a11
allow 1-65535 192.168.77.0/24 1-65535
deny 0-65535 0.0.0.0/0 0-65535
";

fn bin() -> String {
    env!("CARGO_BIN_EXE_swarmsite").to_string()
}

/// `swarmsite ARGS` inside `ns`, with the test's passphrase; panics unless it succeeds.
fn swarmsite(ns: &Netns, args: &[&str]) -> String {
    let o = ns
        .cmd(&bin())
        .args(args)
        .env("SWARMSITE_PASSPHRASE", PASS)
        .output()
        .unwrap();
    assert!(o.status.success(), "swarmsite {args:?}: {}", text(&o));
    text(&o)
}

fn status(ns: &Netns, data: &Path) -> serde_json::Value {
    let out = swarmsite(
        ns,
        &["--data-dir", data.to_str().unwrap(), "status", "--json"],
    );
    serde_json::from_str(&out).unwrap()
}

/// `curl URL` from `ns`: the body of a 200 answer.
fn curl(ns: &Netns, url: &str, extra: &[&str]) -> Option<String> {
    let o = ns
        .cmd("curl")
        .args(["-sf", "-m", "5"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A multicast DNS query for `name`/`qtype` from `ns`, answered by whoever holds it
/// (drill: dig 9.18 drops answers that do not come from 224.0.0.251).
fn mdns_query(ns: &Netns, name: &str, qtype: &str) -> String {
    ns.out("drill", &["-p", "5353", name, qtype, "@224.0.0.251"])
}

fn mapped(m: &serde_json::Value, service: &str) -> (Option<u64>, String) {
    let entry = m["reach"]["upnp"]["mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["service"] == service)
        .unwrap_or_else(|| panic!("no {service} mapping in {m}"));
    (
        entry["external_port"].as_u64(),
        entry["internal"].as_str().unwrap().to_string(),
    )
}

#[test]
fn upnp_and_mdns_against_miniupnpd_and_a_real_resolver() {
    let tools = ["miniupnpd", "nft", "upnpc", "drill", "curl"];
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    let prefix = format!("r7-{}", std::process::id());
    let router = match Netns::add(format!("{prefix}-router")) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot create network namespaces here ({e}); \
                 the reachability test needs root (CI runs it as root)"
            );
            return;
        }
    };
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run scripts/test, which installs them"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(tmp.path(), &prefix, router);

    // A network with one site and its first release (one key per role: fast).
    let opts = InitOptions {
        keys_per_role: 1,
        software_sign: 1,
        threshold: 1,
        ..InitOptions::one_site("REACHTEST".parse().unwrap(), SITE)
    };
    let net = tmp.path().join("net");
    NetworkDir::init(&net, &opts, PASS.as_bytes(), common::now()).unwrap();
    let site = tmp.path().join("site");
    swarmsite_node::demo_site::write(&site, 1).unwrap();

    // The neighbour already holds external port 7101 (the node's BitTorrent port).
    let held = lab
        .lan2
        .out("upnpc", &["-a", NEIGHBOUR_IP, "7101", "7101", "tcp", "600"]);
    assert!(held.contains("is redirected to internal"), "{held}");

    // The node, in the home namespace: HTTP on 80 and 18880 (the defaults), UPnP and
    // mDNS on (the defaults), nothing sent beyond the namespaces (no DHT bootstrap).
    let data = tmp.path().join("node");
    let mut node_cmd = lab.home.cmd(&bin());
    node_cmd
        .env("RUST_LOG", "info,librqbit=warn,librqbit_dht=warn")
        .args(["--data-dir", data.to_str().unwrap(), "node"])
        .args(["--bundle", net.join("bundle.json").to_str().unwrap()])
        .args(["--wire", "0.0.0.0:7100", "--bt", "0.0.0.0:7101"])
        .args(["--rendezvous", "0.0.0.0:7102", "--no-dht-bootstrap"])
        .args(["--no-content-dht", "--upnp-lease", &LEASE.to_string()]);
    let mut node = Proc::spawn(node_cmd, &tmp.path().join("node.log"));
    wait_until("the node's control API", 30, || {
        data.join("control.json").exists()
    });
    swarmsite(
        &lab.home,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "publish",
            "site",
            site.to_str().unwrap(),
            "--network",
            net.to_str().unwrap(),
            "--push",
        ],
    );

    // 1. Mapped: HTTP 80 → 80 (free), BitTorrent on the next port, wire and DHT as they are.
    wait_until("the mappings", 30, || {
        status(&lab.home, &data)["reach"]["upnp"]["state"] == "mapped"
    });
    let s = status(&lab.home, &data);
    let upnp = &s["reach"]["upnp"];
    assert_eq!(upnp["external_ip"], EXTERNAL_IP, "{upnp}");
    assert_eq!(upnp["local_ip"], NODE_IP);
    assert_eq!(upnp["lease_secs"], LEASE);
    assert_eq!(mapped(&s, "http"), (Some(80), format!("{NODE_IP}:80")));
    assert_eq!(
        mapped(&s, "bittorrent"),
        (Some(7102), format!("{NODE_IP}:7101"))
    );
    assert_eq!(mapped(&s, "wire"), (Some(7100), format!("{NODE_IP}:7100")));
    assert_eq!(mapped(&s, "dht"), (Some(7102), format!("{NODE_IP}:7102")));
    let expires = upnp["mappings"][0]["expires"].as_u64().unwrap();
    assert!(expires > common::now() && expires <= common::now() + LEASE + 1);
    let list = lab.mappings();
    for line in [
        "TCP    80->192.168.77.10:80",
        "TCP  7102->192.168.77.10:7101",
        "TCP  7100->192.168.77.10:7100",
        "UDP  7102->192.168.77.10:7102",
        "TCP  7101->192.168.77.20:7101",
    ] {
        assert!(list.contains(line), "no `{line}` in\n{list}");
    }
    let printed = swarmsite(&lab.home, &["--data-dir", data.to_str().unwrap(), "status"]);
    assert!(
        printed.contains("UPnP: mapped · router 192.168.77.1:")
            && printed.contains("  http TCP 11.0.0.1:80 → 192.168.77.10:80 (lease until ")
            && printed.contains("  bittorrent TCP 11.0.0.1:7102 → 192.168.77.10:7101"),
        "{printed}"
    );
    // The control API: the same at /api/reach, and a `reach` event at each renewal.
    let ctl: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("control.json")).unwrap()).unwrap();
    let auth = format!("Authorization: Bearer {}", ctl["token"].as_str().unwrap());
    let url = ctl["url"].as_str().unwrap();
    let reach: serde_json::Value = serde_json::from_str(
        &curl(&lab.home, &format!("{url}/api/reach"), &["-H", &auth]).expect("/api/reach"),
    )
    .unwrap();
    assert_eq!(reach["upnp"]["external_ip"], EXTERNAL_IP, "{reach}");
    // curl gives up after one renewal period and a half, with what the stream sent.
    let events = lab.home.out(
        "curl",
        &["-sN", "-m", "6", "-H", &auth, &format!("{url}/api/events")],
    );
    assert!(
        events.contains(r#"data: {"type":"reach","upnp":{"state":"mapped""#),
        "{events}"
    );

    // The internet reaches the site through the router's address.
    wait_until("release 1 from the internet", 60, || {
        curl(&lab.inet, "http://11.0.0.1/", &[]).is_some_and(|b| b.contains("Release 1"))
    });
    // Paused sharing (the tray's "Pause sharing"): the internet gets 503 and when to come
    // back, the owner still reads the site on loopback; resumed, the internet has it again.
    let pause = |paused: bool| {
        let body = format!(r#"{{"paused":{paused}}}"#);
        let json = "Content-Type: application/json";
        let api = format!("{url}/api/pause");
        curl(&lab.home, &api, &["-H", &auth, "-H", json, "-d", &body]).expect("/api/pause");
    };
    pause(true);
    let answer = lab
        .inet
        .out("curl", &["-si", "-m", "5", "http://11.0.0.1/"]);
    assert!(
        answer.starts_with("HTTP/1.1 503")
            && answer.to_ascii_lowercase().contains("retry-after: 600")
            && answer.contains("paused sharing"),
        "{answer}"
    );
    assert!(curl(&lab.home, "http://127.0.0.1/", &[]).is_some_and(|b| b.contains("Release 1")));
    assert!(status(&lab.home, &data)["paused"] == true);
    pause(false);
    assert!(curl(&lab.inet, "http://11.0.0.1/", &[]).is_some_and(|b| b.contains("Release 1")));

    // 2. mDNS: a resolver on the LAN finds <site>.local and the service, and the site
    // answers by that name.
    wait_until("the mDNS announcement", 20, || {
        status(&lab.home, &data)["reach"]["mdns"]["state"] == "announced"
    });
    let mdns = status(&lab.home, &data)["reach"]["mdns"].clone();
    assert_eq!(mdns["host"], "reachsite.local");
    assert_eq!(mdns["url"], "http://reachsite.local/");
    assert_eq!(mdns["addresses"][0], NODE_IP);
    let a = mdns_query(&lab.lan2, "reachsite.local", "A");
    assert!(
        a.contains("reachsite.local.\t10\tIN\tA\t192.168.77.10"),
        "{a}"
    );
    let ptr = mdns_query(&lab.lan2, "_http._tcp.local", "PTR");
    assert!(ptr.contains("PTR\treachsite._http._tcp.local."), "{ptr}");
    let body = curl(
        &lab.lan2,
        "http://reachsite.local/",
        &["--resolve", "reachsite.local:80:192.168.77.10"],
    )
    .expect("the site by its .local name");
    assert!(body.contains("Release 1"));

    // It follows interface changes: a new address is announced too.
    lab.home.sh("ip addr add 192.168.77.11/24 dev eth0");
    wait_until("the new address in mDNS", 20, || {
        mdns_query(&lab.lan2, "reachsite.local", "A").contains("A\t192.168.77.11")
    });
    assert!(
        status(&lab.home, &data)["reach"]["mdns"]["addresses"]
            .as_array()
            .unwrap()
            .contains(&"192.168.77.11".into())
    );

    // 3. The router stops (and forgets, as a reboot would): the node says so and goes on
    // serving on the LAN.
    lab.stop_router();
    assert!(curl(&lab.inet, "http://11.0.0.1/", &[]).is_none());
    wait_until("the node to notice", LEASE * 2, || {
        let s = status(&lab.home, &data);
        s["reach"]["upnp"]["state"] == "no-router"
    });
    let s = status(&lab.home, &data);
    let upnp = &s["reach"]["upnp"];
    assert!(upnp["error"].as_str().unwrap().contains("router"), "{upnp}");
    assert!(
        upnp["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["external_port"].is_null())
    );
    assert!(curl(&lab.lan2, "http://192.168.77.10/", &[]).is_some_and(|b| b.contains("Release 1")));

    // 4. The router is back: the mappings return within one renewal period.
    lab.start_router();
    // One renewal period, and a second for polling the status through the CLI.
    let took = wait_until("the mappings again", LEASE / 2 + 1, || {
        status(&lab.home, &data)["reach"]["upnp"]["state"] == "mapped"
    });
    eprintln!("mapped again {took:?} after the router restarted (renewal every {RENEWAL:?})");
    assert!(lab.mappings().contains("TCP    80->192.168.77.10:80"));
    wait_until("release 1 from the internet again", 10, || {
        curl(&lab.inet, "http://11.0.0.1/", &[]).is_some_and(|b| b.contains("Release 1"))
    });

    // 5. The node stops: every mapping removed, the announcement withdrawn.
    assert!(node.terminate(30), "the node did not stop");
    let list = lab.mappings();
    assert!(!list.contains("192.168.77.10"), "left behind:\n{list}");
    assert!(curl(&lab.inet, "http://11.0.0.1/", &[]).is_none());
    let log = node.log();
    assert!(log.contains("UPnP: mappings removed"), "{log}");
    assert!(log.contains("mDNS: withdrew reachsite.local"), "{log}");
    assert!(!mdns_query(&lab.lan2, "reachsite.local", "A").contains("IN\tA\t192.168.77"));
}
