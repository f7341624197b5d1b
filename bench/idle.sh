#!/usr/bin/env bash
# An idle node: resident memory and CPU over a period with no requests.
#   bench/idle.sh [SECONDS]        (default 300)
# The node (release build) holds a published demo release and one peer, as a volunteer's
# node would between visits; CPU is the node's own user+system time from /proc.
set -euo pipefail
secs=${1:-300}
source "$(dirname "$0")/common.sh"
export SWARMSITE_PASSPHRASE=bench RUST_LOG=error
"$bin" keys init-network --network "$tmp/net" --tag IDLELEAKS --site idle >/dev/null 2>&1
start_node() { # name ip [peer]
    local extra=()
    [ -n "${3:-}" ] && extra=(--peer "$3:7400")
    "$bin" --data-dir "$tmp/$1" node --bundle "$tmp/net/bundle.json" --wire "$2:7400" --bt "$2:7401" \
        --http "$2:7480" --no-content-dht --rendezvous "$2:7402" --no-dht-bootstrap "${extra[@]}" 2>"$tmp/$1.log" &
    pids+=($!)
}
start_node pub 127.0.0.90
for _ in $(seq 100); do [ -f "$tmp/pub/control.json" ] && break; sleep 0.1; done
mkdir -p "$tmp/site"; echo "<h1>idle</h1>" > "$tmp/site/index.html"
"$bin" --data-dir "$tmp/pub" publish site "$tmp/site" --network "$tmp/net" --push >/dev/null
start_node vol 127.0.0.91 127.0.0.90
node=${pids[1]}
for _ in $(seq 300); do curl -sf http://127.0.0.91:7480/ >/dev/null && break; sleep 0.1; done
sleep 5
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$node/stat"; }
c0=$(cpu); t0=$(date +%s.%N); peak=0
for _ in $(seq "$secs"); do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$node/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 1
done
c1=$(cpu); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$node/status")
echo "idle node over ${secs}s: RSS ${rss} KiB at the end, peak ${peak} KiB;" \
    "CPU $(echo "scale=3; ($c1 - $c0) / $tick * 100 / ($t1 - $t0)" | bc -l)% of one core"
