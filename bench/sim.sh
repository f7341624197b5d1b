#!/usr/bin/env bash
# The simulator's scenarios at N nodes, one at a time: wall time and peak memory
# (/usr/bin/time -v) and the machine's load around each run (uptime: the machine is
# shared), then the reference — the bare event queue through 16 × N events.
#   bench/sim.sh [N] [SCENARIO…]    (default: 1000000, every scenario)
# Plots go to docs/sim/, the Markdown of each scenario to $OUT (default /tmp/sim-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/swarmsite-target}
n=${1:-1000000}
shift || true
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(propagation upload anonymity blacklist churn load)
out=${OUT:-/tmp/sim-bench}
mkdir -p "$out"
cargo build --release --quiet -p swarmsite-sim
bin=$CARGO_TARGET_DIR/release/swarmsite-sim
printf '| scenario | wall time | CPU time | peak memory | load before → after |\n|---|---|---|---|---|\n'
for s in "${scenarios[@]}" engine; do
    before=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -v "$bin" "$s" --nodes "$n" --seed 1 >"$out/$s.md" 2>"$out/$s.time"
    after=$(cut -d' ' -f1 /proc/loadavg)
    wall=$(awk -F': ' '/Elapsed/ {print $2}' "$out/$s.time")
    cpu=$(awk -F': ' '/User time|System time/ {t += $2} END {printf "%.0f s", t}' "$out/$s.time")
    rss=$(awk -F': ' '/Maximum resident/ {printf "%.2f GiB", $2 / 1048576}' "$out/$s.time")
    printf '| %s | %s | %s | %s | %s → %s |\n' "$s" "$wall" "$cpu" "$rss" "$before" "$after"
done
cat "$out/engine.md"
