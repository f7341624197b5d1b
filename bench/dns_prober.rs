//! The DNS front's prober at scale (issue 8): how many candidates it probes per second
//! and how much memory it holds with 100,000 of them, next to a bare HTTP client doing
//! the same GETs with the same concurrency (no scheduling, no verification).
//!
//! `bench/dns.sh` runs it inside a private network namespace, where one HTTP server on
//! 0.0.0.0:28880 answers for every 127.x.y.z: each candidate is a distinct address
//! serving a validly signed release record.
//!
//!     cargo bench --bench dns_prober -- [CANDIDATES] [CONCURRENCY]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use swarmsite_node::dns::{DnsFront, Zone};
use swarmsite_node::node::{Node, NodeConfig};
use swarmsite_node::publisher::{InitOptions, NetworkDir};

/// Not 18880: bench/dns.sh has its volunteers there.
const PORT: u16 = 28880;

/// A field of /proc/self/status, in KiB.
fn proc_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn candidate(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i as u32,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n, concurrency));
}

async fn run(n: usize, concurrency: usize) {
    // A network and one signed release, served at every loopback address.
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("BENCHLEAK".parse().unwrap(), "bench");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"bench", now).unwrap();
    let site = tmp.path().join("site");
    swarmsite_node::demo_site::write(&site, 1).unwrap();
    let key =
        swarmsite_node::publisher::load_key(&net.root().join("keys/site/v1/key-1.pem"), b"bench")
            .unwrap();
    let (_, record) = net
        .publish_site(&site, 1, Some(1), &[key], now)
        .unwrap()
        .published()
        .unwrap();
    let record = record.encode().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let app = axum::Router::new().route(
        &format!("/{}", swarmsite_node::serve::RELEASE_PATH),
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            let r = record.clone();
            async move { r }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", PORT))
        .await
        .expect("bind 0.0.0.0:28880 (run inside `unshare -n`, see bench/dns.sh)");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // Reference: a bare client, the same GETs, the same concurrency, nothing else.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        let c = client.clone();
        set.spawn(async move {
            let url = format!(
                "http://{}/{}",
                SocketAddr::new(candidate(i), PORT),
                swarmsite_node::serve::RELEASE_PATH
            );
            let ok = match c.get(&url).send().await {
                Ok(r) => r.bytes().await.is_ok(),
                Err(_) => false,
            };
            drop(permit);
            ok
        });
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    let bare = start.elapsed();

    // The prober: a node of the network and the DNS front, the candidates as seeds.
    let rss_before = proc_kib("VmRSS:");
    let node = Node::start(NodeConfig::loopback(
        tmp.path().join("node"),
        net.bundle().clone(),
        "127.0.0.1".parse().unwrap(),
    ))
    .await
    .unwrap();
    let rss_node = proc_kib("VmRSS:");
    let seeds: Vec<String> = (0..n).map(|i| format!("\"{}\"", candidate(i))).collect();
    let zone = Zone::parse(
        &format!(
            "zone = \"site.example\"\nns = [\"ns1.site.example\"]\n\
             [soa]\nprimary = \"ns1.site.example\"\nhostmaster = \"h.site.example\"\n\
             [probe]\nports = [{PORT}]\nconcurrency = {concurrency}\nallow_private = true\n\
             seeds = [{}]\n",
            seeds.join(",")
        ),
        now,
    )
    .unwrap();
    drop(seeds);
    let cancel = tokio_util::sync::CancellationToken::new();
    let before = served.load(Ordering::Relaxed);
    let start = Instant::now();
    let front = DnsFront::start(
        node.handle(),
        zone,
        "127.0.0.1:0".parse().unwrap(),
        cancel.clone(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = front.status();
        if s.prober.probes >= n as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let probed = start.elapsed();
    let s = front.status();
    let rss_after = proc_kib("VmRSS:");
    let hwm = proc_kib("VmHWM:");
    let fetched = served.load(Ordering::Relaxed) - before;

    println!("candidates: {n}, concurrency: {concurrency}");
    println!(
        "reference, bare HTTP client: {n} GETs in {:.2} s = {:.0} GET/s",
        bare.as_secs_f64(),
        n as f64 / bare.as_secs_f64()
    );
    println!(
        "prober: {} probes ({} healthy, {} candidates) in {:.2} s = {:.0} candidates/s; server saw {fetched} GETs",
        s.prober.probes,
        s.prober.healthy,
        s.prober.candidates,
        probed.as_secs_f64(),
        s.prober.probes as f64 / probed.as_secs_f64()
    );
    println!(
        "memory: RSS {} MiB before the node, {} MiB with the node, {} MiB with the DNS front and {n} candidates (+{} MiB); peak {} MiB",
        rss_before / 1024,
        rss_node / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_node) / 1024,
        hwm / 1024
    );
    cancel.cancel();
    node.shutdown().await;
}
