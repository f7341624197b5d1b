//! The dashboard (ui/, compiled into the node) in a real headless Chromium against a
//! real node on loopback: status, a release arriving live, pause, the blacklist page,
//! uploads, settings, a wrong token, and a new version of swarmsite fetched from the
//! peer, offered with its notes and installed by "Restart to update".
//! tests/browser/dashboard.test.mjs drives it; `SCREENSHOT_DIR=$PWD/docs/screenshots`
//! remakes the README's pictures.

mod common;

use common::{
    browser_script, demo_release, node_config, now, publish_release, stand_in, wait_for, write_exe,
};
use swarmsite_node::content::Blacklist;
use swarmsite_node::name::{SystemName, kind};
use swarmsite_node::node::Node;
use swarmsite_node::publisher::{self, InitOptions, NetworkDir};
use swarmsite_node::record::{Payload, Record};
use swarmsite_node::update::manifest::parse_version;
use swarmsite_node::update::{Installation, Platform, UpdatePhase, release};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_live_node() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("DASHLEAKS".parse().unwrap(), "dashleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"pw", now()).unwrap();
    let (v1_dir, v1) = demo_release(&net, tmp.path(), 1);
    let (v2_dir, _) = demo_release(&net, tmp.path(), 2);
    // A signed blacklist, in a folder as `publish … --push` would hand it over.
    let list = Blacklist::from_text("192.0.2.0/24 documentation range\n", now()).unwrap();
    let name = SystemName::new(net.bundle().network(), kind::AUTHORIZED_FILE, 1, 1);
    let mut bl = Record::new(name, now(), Payload::Body(list.encode())).unwrap();
    bl.sign(&publisher::load_key(&net.root().join("keys/blacklist/v1/key-1.pem"), b"pw").unwrap());
    let bl_dir = tmp.path().join("blacklist");
    std::fs::create_dir_all(&bl_dir).unwrap();
    std::fs::write(bl_dir.join(publisher::RECORD_FILE), bl.encode().unwrap()).unwrap();

    // A volunteer's node (its data folder trusts the network, as after `bundle add`) and
    // one peer, so the pages show a connected swarm.
    let data = tmp.path().join("node");
    swarmsite_node::datadir::DataDir::resolve(Some(data.as_path()))
        .unwrap()
        .add_bundle(net.bundle())
        .unwrap();
    // It runs "0.1.0" as a plain binary, which an update replaces (a stand-in here).
    let exe = tmp.path().join("bin/swarmsite");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    write_exe(&exe, &stand_in("0.1.0", 0));
    let mut cfg = node_config(&data, &net, "127.0.0.52", vec![]);
    cfg.update.running = parse_version("0.1.0").unwrap();
    cfg.update.installation = Some(Installation::Binary { exe: exe.clone() });
    let node = Node::start(cfg).await.unwrap();
    let h = node.handle();
    let wire = h.status().wire_addr.parse().unwrap();
    let peer = Node::start(node_config(
        &tmp.path().join("peer"),
        &net,
        "127.0.0.53",
        vec![wire],
    ))
    .await
    .unwrap();
    let cancel = CancellationToken::new();
    swarmsite_node::control::serve(h.clone(), "127.0.0.1:0".parse().unwrap(), cancel.clone())
        .await
        .unwrap();
    let info = swarmsite_node::control::client::info(h.data_dir()).unwrap();
    h.submit(v1, Some(v1_dir)).await.unwrap();
    wait_for("v1 served, one peer", 60, || {
        let s = h.status();
        s.served_version == Some(1) && s.peers.len() == 1
    })
    .await;

    // swarmsite 0.2.0 comes out: the peer seeds it, the node fetches its package.
    let pkg = tmp.path().join("pkg/swarmsite-0.2.0");
    std::fs::create_dir_all(pkg.parent().unwrap()).unwrap();
    write_exe(&pkg, &stand_in("0.2.0", 300_000));
    let spec = format!("{}:bin={}", Platform::current(), pkg.display());
    let rel = release::prepare(
        &[spec.parse().unwrap()],
        parse_version("0.2.0").unwrap(),
        parse_version("0.1.0").unwrap(),
        "Faster sync on slow links.\nThe tray tells when a new version is ready.".into(),
        None,
    )
    .unwrap();
    let (sw_dir, sw) = publish_release(&net, "pw", &rel, 1, |_| {});
    peer.handle().submit(sw, Some(sw_dir)).await.unwrap();
    wait_for("0.2.0 downloaded, checked and installable", 60, || {
        let u = h.update_status();
        u.phase == UpdatePhase::Ready && u.installable
    })
    .await;

    let shots = std::env::var_os("SCREENSHOT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    browser_script(
        "dashboard.test.mjs",
        vec![
            ("DASHBOARD", info.url.into()),
            ("TOKEN", info.token.into()),
            ("V2_DIR", v2_dir.into()),
            ("BLACKLIST_DIR", bl_dir.into()),
            ("SCREENSHOT_DIR", shots.clone().into()),
        ],
    )
    .await;
    // "Restart to update" installed it: the binary is 0.2.0, and the node asks to restart
    // (a `swarmsite node` process would exec it now).
    assert_eq!(h.update_status().phase, UpdatePhase::Restarting);
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        std::fs::read(&pkg).unwrap(),
        "the stand-in was replaced by the release"
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), h.restart_requested())
        .await
        .expect("the node asks to be restarted");
    cancel.cancel();
    peer.shutdown().await;
    node.shutdown().await;
    for page in ["status", "peers", "uploads", "settings"] {
        let png = std::fs::read(shots.join(format!("{page}.png"))).expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 1000,
            "{page}.png"
        );
    }
}
