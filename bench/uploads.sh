#!/usr/bin/env bash
# Upload container throughput next to tar | zstd -3 | openssl enc -chacha20 on the same
# machine and files, and the peak memory of packing 1 GiB. Scratch space: $BENCH_DIR
# (default: a temporary folder under the target folder; needs about 2.5 GiB).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/swarmsite-target}
for c in tar zstd openssl; do
    command -v $c >/dev/null || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get update -qq && $sudo apt-get install -y -qq $c; }
done
export BENCH_DIR=${BENCH_DIR:-$CARGO_TARGET_DIR}
echo "== $(zstd --version | head -1); $(openssl version)"
cargo bench --bench uploads
