//! The README's first command, `swarmsite demo`, run to the end (`--once`).

use std::process::Command;

#[test]
fn the_demo_runs_a_local_swarm_and_cleans_up() {
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
