//! The tray app itself under Xvfb: it starts with a data folder that points its
//! in-process node at a loopback network, syncs the release from a peer, and its window
//! shows the status page with that release (read through tauri-driver and Debian's
//! WebKitWebDriver); a photograph of the screen (window and tray icon) is kept as the
//! test's artifact (`$SCREENSHOT_DIR/app-window.png`, or the temp folder). WebDriver's
//! own screenshot is not used: under Xvfb it kept showing the page's first frame.
//! `scripts/test` installs xvfb-run, dbus-run-session, trayer, ImageMagick,
//! WebKitWebDriver and tauri-driver.

#[path = "../../tests/common/site.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{browser_script, demo_release, now};
use swarmsite::node::{Node, NodeConfig};
use swarmsite::publisher::{InitOptions, NetworkDir};
use swarmsite::settings::Settings;

/// Stops the driver's process group (Xvfb, D-Bus, tauri-driver, the app) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        // The whole group: xvfb-run and dbus-run-session start children of their own.
        let _ = Command::new("kill")
            .args(["--", &format!("-{pid}")])
            .status();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    [
        home.join(".cargo/bin").join(name),
        Path::new("/usr/bin").join(name),
        Path::new("/usr/local/bin").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_window_shows_its_node() {
    let (Some(driver), Some(_), Some(_)) = (
        tool("tauri-driver"),
        tool("WebKitWebDriver"),
        tool("xvfb-run"),
    ) else {
        panic!(
            "needs tauri-driver, WebKitWebDriver and xvfb-run: run scripts/test, which installs them"
        );
    };

    // A loopback network with one node serving v1.
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("APPLEAKS1".parse().unwrap(), "appleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"pw", now()).unwrap();
    let (dir, record) = demo_release(&net, tmp.path(), 1);
    let seed = Node::start(NodeConfig::loopback(
        tmp.path().join("seed"),
        net.bundle().clone(),
        "127.0.0.60".parse().unwrap(),
    ))
    .await
    .unwrap();
    let sh = seed.handle();
    sh.submit(record, Some(dir)).await.unwrap();

    // The app's data folder: the network's bundle and settings that keep it on loopback.
    let data = tmp.path().join("app");
    let dd = swarmsite::datadir::DataDir::resolve(Some(data.as_path())).unwrap();
    dd.add_bundle(net.bundle()).unwrap();
    let any = "127.0.0.61:0".parse().unwrap();
    Settings {
        network: Some("APPLEAKS1".into()),
        wire: Some(any),
        bt: Some(any),
        http: vec![any],
        dht: Some(false),
        peers: vec![sh.status().wire_addr.parse().unwrap()],
        notifications: Some(false),
        ..Settings::default()
    }
    .save(&data)
    .unwrap();

    let port = 4444 + (std::process::id() % 1000) as u16;
    // tauri-driver inside a fresh X display and session bus, with trayer as the panel's
    // tray (so the icon shows); the display's name is written out so the screen can be
    // photographed as a person would see it.
    let display_file = tmp.path().join("display");
    let mut cmd = Command::new("setsid");
    cmd.args(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "dbus-run-session", "--"])
        .args(["sh", "-c", r#"trayer --edge top --align right --widthtype pixel --width 120 --height 36 --SetDockType true & echo "$DISPLAY $XAUTHORITY" > "$1"; exec "$2" --port "$3""#, "sh"])
        .arg(&display_file)
        .arg(&driver)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _group = Group(cmd.spawn().expect("tauri-driver starts"));
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tauri-driver never listened"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // "DISPLAY XAUTHORITY" of the X server, so the script can photograph the screen.
    let x = std::fs::read_to_string(&display_file).unwrap_or_default();
    let (x_display, x_auth) = x.trim().split_once(' ').unwrap_or((x.trim(), ""));
    let (x_display, x_auth) = (x_display.to_string(), x_auth.to_string());
    let shots = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    browser_script(
        "app.test.mjs",
        vec![
            ("DRIVER", format!("http://127.0.0.1:{port}").into()),
            ("APP", env!("CARGO_BIN_EXE_swarmsite-app").into()),
            ("DATA_DIR", data.into()),
            ("SCREENSHOT_DIR", shots.clone().into()),
            ("X_DISPLAY", x_display.into()),
            ("X_AUTHORITY", x_auth.into()),
        ],
    )
    .await;
    seed.shutdown().await;
    let png = std::fs::read(shots.join("app-window.png")).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
}
