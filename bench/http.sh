#!/usr/bin/env bash
# HTTP throughput of a node next to nginx serving the same folder, on this machine.
#   bench/http.sh [SECONDS] [CONNECTIONS]
# A real node (release build) serves a release published and pushed through the real
# tools; nginx (sendfile on, access log off, as many workers as cores) serves the same
# files. wrk runs against each in turn: a 3 KiB page and a 1 MiB file. Server and wrk
# share the machine, as they would on a volunteer's computer.
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
for c in wrk nginx curl; do
    command -v "$c" >/dev/null || { echo "needs $c (apt-get install wrk nginx-light curl)"; exit 1; }
done
source "$(dirname "$0")/common.sh"

mkdir -p "$tmp/site"
python3 - "$tmp/site" <<'PY'
import os, sys
d = sys.argv[1]
words = "the archive grew again and every volunteer served it ".split()
text = " ".join(words[i % len(words)] for i in range(600))
page = "<!doctype html><title>bench</title><p>" + text + "</p>\n"
open(os.path.join(d, "page.html"), "w").write(page[:3072].ljust(3072))
open(os.path.join(d, "file.bin"), "wb").write(os.urandom(1 << 20))
open(os.path.join(d, "index.html"), "w").write("<a href=page.html>page</a>")
PY

export SWARMSITE_PASSPHRASE=bench
"$bin" keys init-network --network "$tmp/net" --tag BENCHLEAK --site bench >/dev/null 2>&1
RUST_LOG=error "$bin" --data-dir "$tmp/node" node --bundle "$tmp/net/bundle.json" \
    --wire 127.0.0.70:7300 --bt 127.0.0.70:7301 --http 127.0.0.70:7380 \
    --no-content-dht --no-rendezvous 2>"$tmp/node.log" &
pids+=($!)
for _ in $(seq 100); do [ -f "$tmp/node/control.json" ] && break; sleep 0.1; done
"$bin" --data-dir "$tmp/node" publish site "$tmp/site" --network "$tmp/net" --push >/dev/null
for _ in $(seq 300); do curl -sf http://127.0.0.70:7380/page.html >/dev/null && break; sleep 0.1; done

cat >"$tmp/nginx.conf" <<NGINX
user $(id -un);
worker_processes auto;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    include /etc/nginx/mime.types;
    server { listen 127.0.0.71:7480; root $tmp/site; }
}
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.71:7480/page.html >/dev/null && break; sleep 0.1; done

echo "cores: $(nproc); wrk -t2 -c$conns -d${secs}s --latency"
printf '%-8s %-10s %12s %10s\n' server file "requests/s" "p99"
for target in "node http://127.0.0.70:7380" "nginx http://127.0.0.71:7480"; do
    set -- $target
    for f in page.html file.bin; do
        out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$2/$f")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p99=$(echo "$out" | awk '$1=="99%" {print $2}')
        bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
        printf '%-8s %-10s %12s %10s %s\n' "$1" "$f" "$rps" "$p99" "${bad:+($bad non-2xx!)}"
    done
done
