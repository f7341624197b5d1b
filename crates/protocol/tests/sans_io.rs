//! The protocol crate stays sans-IO: no async runtime, no BitTorrent client, no HTTP
//! stack anywhere in its dependency tree (docs/ARCHITECTURE.md). A dependency that pulled
//! one in would make the simulator link the node's world again.

use std::process::Command;

const FORBIDDEN: [&str; 8] = [
    "tokio", "librqbit", "axum", "hyper", "reqwest", "igd-next", "mdns-sd", "mio",
];

#[test]
fn no_runtime_sockets_or_http_in_the_dependency_tree() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--package",
            "swarmsite-protocol",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("utf-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"swarmsite-protocol") && crates.len() > 10,
        "not a dependency tree: {tree}"
    );
    for name in FORBIDDEN {
        assert!(
            !crates.contains(&name),
            "{name} is in swarmsite-protocol's dependency tree:\n{tree}"
        );
    }
}
