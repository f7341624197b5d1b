# Shared by the bench/*.sh scripts (sourced): a release build of the node, a scratch
# folder, and the processes started, all removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/swarmsite-target}
cargo build --release --quiet
bin=$CARGO_TARGET_DIR/release/swarmsite
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
