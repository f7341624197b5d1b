//! The README's first command, `swarmsite demo`: run to the end (`--once`), and stopped
//! by SIGTERM while it serves. Both use the same loopback addresses and port, so they
//! run one after the other.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

static ONE_DEMO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_runs_a_local_swarm_and_cleans_up() {
    let _one = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(env!("CARGO_BIN_EXE_swarmsite"))
        .args(["demo", "--once", "--update-after", "1", "--nodes", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("serves the site"), "{text}");
    assert!(text.contains("refused: 0 valid signatures"), "{text}");
    assert!(
        text.contains("every node still serves release 2: true"),
        "{text}"
    );
    let folder = text
        .lines()
        .find_map(|l| l.strip_prefix("removed "))
        .expect("cleanup line");
    assert!(
        !std::path::Path::new(folder).exists(),
        "demo folder left behind"
    );
}

#[test]
fn sigterm_stops_the_demo_and_removes_its_folder() {
    let _one = ONE_DEMO_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmsite"))
        .args(["demo", "--update-after", "600", "--nodes", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed by its pid if the test fails before it exits.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut guard = Guard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut folder = None;
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Up to the wait before release 2: every node serves release 1.
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo did not get to release 2's wait:\n{lines:#?}"));
        if let Some(f) = line.split(" a throwaway network in ").nth(1) {
            folder = Some(std::path::PathBuf::from(f.trim()));
        }
        let waiting = line.contains("Release 2 follows");
        lines.push(line);
        if waiting {
            break;
        }
    }
    let folder = folder.expect("the demo names its folder");
    assert!(folder.is_dir());
    let sent = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the demo still runs 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(status.success(), "{status}: {rest:#?}");
    assert!(
        rest.iter().any(|l| l.starts_with("removed ")),
        "no cleanup line: {rest:#?}"
    );
    assert!(!folder.exists(), "{} left behind", folder.display());
}
