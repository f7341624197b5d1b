//! The tray app itself under Xvfb, in a session bus of its own with a real notification
//! server (dunst) and a temporary home folder whose default browser is a script: it
//! starts with a data folder that points its in-process node at a loopback network and
//! syncs the release from a peer; its window (read and clicked through tauri-driver and
//! Debian's WebKitWebDriver) shows the status page; "Open site" reaches the default
//! browser through xdg-open; a new release is served and notified; start at login
//! writes and removes the XDG autostart entry; a second start only brings the window
//! back; "Upload files…" opens the desktop's file chooser (GTK, typed into with
//! xdotool) and the chosen file joins the upload queue; a new version of the app
//! arrives through the swarm, is notified and offered, and "Restart to update" installs
//! it over the app's binary (a copy: the stand-in replaces it) and restarts into it. A
//! photograph of the screen (window and tray icon) is kept as the test's artifact
//! (`$SCREENSHOT_DIR/app-window.png`, or the temp folder). WebDriver's own screenshot is
//! not used: under Xvfb it kept showing the page's first frame. `scripts/test` installs
//! xvfb-run, dbus-run-session, dunst, trayer, xdotool, ImageMagick, WebKitWebDriver and
//! tauri-driver.

#[path = "../../tests/common/site.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{browser_script, demo_release, now, publish_release, stand_in, write_exe};
use swarmsite_node::node::{Node, NodeConfig};
use swarmsite_node::publisher::{InitOptions, NetworkDir};
use swarmsite_node::settings::Settings;
use swarmsite_node::update::manifest::parse_version;
use swarmsite_node::update::{Platform, release};
use tokio_util::sync::CancellationToken;

/// Stops the driver's process group (Xvfb, D-Bus, dunst, tauri-driver, the app) on drop;
/// shows their output if the test failed.
struct Group(Child, PathBuf);

impl Drop for Group {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.1).unwrap_or_default();
            eprintln!("---- the app and its desktop:\n{log}");
        }
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
    let (Some(driver), Some(_), Some(_), Some(_), Some(_)) = (
        tool("tauri-driver"),
        tool("WebKitWebDriver"),
        tool("xvfb-run"),
        tool("dunst"),
        tool("xdotool"),
    ) else {
        panic!(
            "needs tauri-driver, WebKitWebDriver, xvfb-run, dunst and xdotool: run scripts/test, which installs them"
        );
    };

    // A loopback network with one node serving v1.
    let tmp = tempfile::tempdir().unwrap();
    let opts = InitOptions::one_site("APPLEAKS1".parse().unwrap(), "appleaks");
    let net = NetworkDir::init(&tmp.path().join("net"), &opts, b"pw", now()).unwrap();
    let (dir, record) = demo_release(&net, tmp.path(), 1);
    let (v2_dir, _) = demo_release(&net, tmp.path(), 2);
    let seed = Node::start(NodeConfig::loopback(
        tmp.path().join("seed"),
        net.bundle().clone(),
        "127.0.0.60".parse().unwrap(),
    ))
    .await
    .unwrap();
    let sh = seed.handle();
    sh.submit(record, Some(dir)).await.unwrap();
    // The publisher's side: the script hands releases to the seed through its API.
    let cancel = CancellationToken::new();
    swarmsite_node::control::serve(sh.clone(), "127.0.0.1:0".parse().unwrap(), cancel.clone())
        .await
        .unwrap();
    let seed_api = swarmsite_node::control::client::info(sh.data_dir()).unwrap();

    // swarmsite 0.2.0: the app's own package (a stand-in that answers `--version` and
    // notes how it was started) and the command line's, which the app must not take.
    let pkg = tmp.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let (app_pkg, cli_pkg) = (pkg.join("swarmsite-app-0.2.0"), pkg.join("swarmsite-0.2.0"));
    write_exe(&app_pkg, &stand_in("0.2.0", 200_000));
    write_exe(&cli_pkg, &stand_in("0.2.0", 100_000));
    let platform = Platform::current();
    let rel = release::prepare(
        &[
            format!("{platform}:app_bin={}", app_pkg.display())
                .parse()
                .unwrap(),
            format!("{platform}:bin={}", cli_pkg.display())
                .parse()
                .unwrap(),
        ],
        parse_version("0.2.0").unwrap(),
        parse_version("0.1.0").unwrap(),
        "The tray tells when a new version is ready.".into(),
        None,
    )
    .unwrap();
    let (software_dir, _) = publish_release(&net, "pw", &rel, 1, |_| {});

    // The app runs from a copy of its binary, which the update replaces.
    let app = tmp.path().join("bin/swarmsite-app");
    std::fs::create_dir_all(app.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_swarmsite-app"), &app).unwrap();

    // A home folder whose default browser (XDG mimeapps.list, as a desktop sets it) is
    // a script noting the URL: xdg-open asks it before $BROWSER when there is a display.
    let home = tmp.path().join("home");
    let opened = tmp.path().join("opened");
    let browser = tmp.path().join("browser.sh");
    write_exe(
        &browser,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()).as_bytes(),
    );
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::create_dir_all(home.join(".local/share/applications")).unwrap();
    std::fs::write(
        home.join(".local/share/applications/test-browser.desktop"),
        format!(
            "[Desktop Entry]\nType=Application\nName=test browser\nExec={} %u\nMimeType=x-scheme-handler/http;\n",
            browser.display()
        ),
    )
    .unwrap();
    std::fs::write(
        home.join(".config/mimeapps.list"),
        "[Default Applications]\nx-scheme-handler/http=test-browser.desktop\n",
    )
    .unwrap();
    // dunst, the notification server, runs this for every notification it shows.
    let notes = tmp.path().join("notes");
    let note_script = tmp.path().join("note.sh");
    write_exe(
        &note_script,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$1\" \"$2\" \"$3\" >> '{}'\n",
            notes.display()
        )
        .as_bytes(),
    );
    let dunstrc = tmp.path().join("dunstrc");
    std::fs::write(
        &dunstrc,
        format!(
            "[global]\n    font = Monospace 10\n[capture]\n    appname = swarmsite\n    script = {}\n",
            note_script.display()
        ),
    )
    .unwrap();

    // The app's data folder: the network's bundle and settings that keep it on loopback.
    let data = tmp.path().join("app");
    let dd = swarmsite_node::datadir::DataDir::resolve(Some(data.as_path())).unwrap();
    dd.add_bundle(net.bundle()).unwrap();
    let any = "127.0.0.61:0".parse().unwrap();
    Settings {
        network: Some("APPLEAKS1".into()),
        wire: Some(any),
        bt: Some(any),
        http: vec![any],
        dht: Some(false),
        peers: vec![sh.status().wire_addr.parse().unwrap()],
        notifications: Some(true),
        ..Settings::default()
    }
    .save(&data)
    .unwrap();

    let port = 4444 + (std::process::id() % 1000) as u16;
    // tauri-driver inside a fresh X display and session bus, with trayer as the panel's
    // tray (so the icon shows) and dunst as the notification server; the display's and
    // the bus's addresses are written out so the screen can be photographed as a person
    // would see it and the script can start the app a second time in the same session.
    let display_file = tmp.path().join("display");
    let mut cmd = Command::new("setsid");
    cmd.args(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "dbus-run-session", "--"])
        .args(["sh", "-c", r#"trayer --edge top --align right --widthtype pixel --width 120 --height 36 --SetDockType true & dunst -config "$4" & printf '%s\n%s\n%s\n' "$DISPLAY" "$XAUTHORITY" "$DBUS_SESSION_BUS_ADDRESS" > "$1"; exec "$2" --port "$3""#, "sh"])
        .arg(&display_file)
        .arg(&driver)
        .arg(port.to_string())
        .arg(&dunstrc)
        .env("HOME", &home)
        .env("BROWSER", &browser);
    let log = tmp.path().join("desktop.log");
    let out = std::fs::File::create(&log).unwrap();
    cmd.stdout(out.try_clone().unwrap()).stderr(out);
    let _group = Group(cmd.spawn().expect("tauri-driver starts"), log);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tauri-driver never listened"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The X server's DISPLAY and XAUTHORITY, and the session bus.
    let x = std::fs::read_to_string(&display_file).unwrap_or_default();
    let mut lines = x.lines().map(str::to_string);
    let (x_display, x_auth, bus) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let shots = std::env::var_os("SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    browser_script(
        "app.test.mjs",
        vec![
            ("DRIVER", format!("http://127.0.0.1:{port}").into()),
            ("APP", app.clone().into()),
            ("DATA_DIR", data.into()),
            ("SCREENSHOT_DIR", shots.clone().into()),
            ("X_DISPLAY", x_display.into()),
            ("X_AUTHORITY", x_auth.into()),
            ("BUS", bus.into()),
            ("APP_HOME", home.clone().into()),
            ("BROWSER", browser.into()),
            ("OPENED", opened.into()),
            ("NOTES", notes.into()),
            ("SEED_API", seed_api.url.into()),
            ("SEED_TOKEN", seed_api.token.into()),
            ("V2_DIR", v2_dir.into()),
            ("SOFTWARE_DIR", software_dir.into()),
        ],
    )
    .await;
    cancel.cancel();
    seed.shutdown().await;
    // The app's binary is now the app's 0.2.0 package, never the command line's, and
    // the app restarted into it with its arguments.
    assert_eq!(
        std::fs::read(&app).unwrap(),
        std::fs::read(&app_pkg).unwrap()
    );
    let restarted = std::fs::read_to_string(app.with_file_name("restarted-with")).unwrap();
    assert!(restarted.contains("--data-dir"), "{restarted}");
    let png = std::fs::read(shots.join("app-window.png")).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1000);
}
