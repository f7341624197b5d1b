#!/usr/bin/env bash
# Record throughput next to OpenSSL's RSA-3072 figures on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/swarmsite-target}
command -v openssl >/dev/null || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get update -qq && $sudo apt-get install -y -qq openssl; }
echo "== openssl speed rsa3072 (reference)"
openssl speed -seconds 5 rsa3072 2>/dev/null | tail -3
echo "== cargo bench --bench records"
cargo bench --bench records -- --noplot 2>&1 | grep -E "^record/|time:|thrpt:"
