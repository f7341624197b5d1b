#!/usr/bin/env bash
# Published documents on this machine: how long a loopback swarm takes to replicate a
# 1 GiB archive, and how fast a node serves a 1 GiB document over HTTP next to nginx.
#   bench/documents.sh [NODES] [DOCS]
# A publisher's node and NODES volunteers (release build, each on its own 127.0.0.x,
# every volunteer told of the publisher and the volunteers before it) run through the
# real tools. The archive is DOCS documents of 1 GiB / DOCS each, published and pushed
# with `publish document --push`. Two rounds: quota 1 GiB (every volunteer ends up with
# everything) and quota 1 GiB / 2 (each document ends up at >= 2 volunteers); timed from
# the first push until the condition holds. Reference: copying the archive NODES times
# with cp on the same disk (the floor: every copy is written once). Then curl downloads
# one 1 GiB document from a holding node and from nginx serving the same file, 3 times
# each.
set -euo pipefail
nodes=${1:-4}
docs=${2:-8}
for c in nginx curl jq; do
    command -v "$c" >/dev/null || { echo "needs $c (apt-get install nginx-light curl jq)"; exit 1; }
done
source "$(dirname "$0")/common.sh"
export SWARMSITE_PASSPHRASE=bench
gib=$((1024 * 1024 * 1024))
each=$((gib / docs))

"$bin" keys init-network --network "$tmp/net" --tag BENCHLEAK --site bench >/dev/null 2>&1
mkdir -p "$tmp/files"
for i in $(seq "$docs"); do
    head -c "$each" /dev/urandom >"$tmp/files/doc$i.bin"
done

start_node() { # name ip quota peers...
    local name=$1 ip=$2 quota=$3
    shift 3
    local args=()
    for p in "$@"; do args+=(--peer "$p:7500"); done
    RUST_LOG=error "$bin" --data-dir "$tmp/$name" node --bundle "$tmp/net/bundle.json" \
        --wire "$ip:7500" --bt "$ip:7501" --http "$ip:7580" --no-content-dht --no-rendezvous \
        --pull-interval 5 --documents-quota "$quota" "${args[@]}" 2>"$tmp/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do [ -f "$tmp/$name/control.json" ] && break; sleep 0.1; done
}

held() { # data-dir: number of documents held
    "$bin" --data-dir "$1" documents --json | jq '[.documents[] | select(.held)] | length'
}

round() { # quota-bytes condition(all|two) label
    local quota=$1 cond=$2 label=$3
    rm -rf "$tmp"/p "$tmp"/v* "$tmp/net/published"/8080-*
    local ips=()
    start_node p 127.0.0.80 0
    for i in $(seq "$nodes"); do
        ip=127.0.0.$((80 + i))
        start_node "v$i" "$ip" "$quota" 127.0.0.80 "${ips[@]}"
        ips+=("$ip")
    done
    sleep 2
    local t0
    t0=$(date +%s.%N)
    for i in $(seq "$docs"); do
        "$bin" --data-dir "$tmp/p" publish document "$tmp/files/doc$i.bin" --title "Document $i" \
            --network "$tmp/net" --push >/dev/null
    done
    while :; do
        local done=1
        if [ "$cond" = all ]; then
            for i in $(seq "$nodes"); do
                [ "$(held "$tmp/v$i")" = "$docs" ] || { done=0; break; }
            done
        else
            local counts
            counts=$(for i in $(seq "$nodes"); do
                "$bin" --data-dir "$tmp/v$i" documents --json | jq -r '.documents[] | select(.held) | .id'
            done | sort | uniq -c | awk '$1 >= 2' | wc -l)
            [ "$counts" = "$docs" ] || done=0
        fi
        [ $done = 1 ] && break
        sleep 0.5
    done
    local t1
    t1=$(date +%s.%N)
    printf '%-44s %8.1f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}

echo "cores: $(nproc); archive: $docs documents of $((each / 1024 / 1024)) MiB; $nodes volunteers"
t0=$(date +%s.%N)
for i in $(seq "$nodes"); do
    mkdir -p "$tmp/cp$i" && cp "$tmp"/files/*.bin "$tmp/cp$i/" && sync
done
t1=$(date +%s.%N)
printf '%-44s %8.1f s\n' "reference: cp of the archive x $nodes + sync" "$(echo "$t1 - $t0" | bc)"
rm -rf "$tmp"/cp*
round "$gib" all "quota 1 GiB: every volunteer holds all"
round $((gib / 2)) two "quota 512 MiB: every document at >= 2"

# HTTP: one 1 GiB document from a node that holds it, and from nginx.
head -c "$gib" /dev/urandom >"$tmp/files/big.bin"
rm -rf "$tmp"/p "$tmp"/v* "$tmp/net/published"/8080-*
start_node p 127.0.0.80 0
"$bin" --data-dir "$tmp/p" publish document "$tmp/files/big.bin" --title "Big" \
    --network "$tmp/net" --push >/dev/null
mkdir -p "$tmp/www"
ln "$tmp/files/big.bin" "$tmp/www/big.bin" 2>/dev/null || cp "$tmp/files/big.bin" "$tmp/www/"
cat >"$tmp/nginx.conf" <<NGINX
user $(id -un);
worker_processes auto;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    server { listen 127.0.0.79:7480; root $tmp/www; }
}
NGINX
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null -r 0-0 http://127.0.0.79:7480/big.bin && break; sleep 0.1; done
for _ in $(seq 300); do curl -sf -o /dev/null -r 0-0 http://127.0.0.80:7580/documents/big.bin && break; sleep 0.1; done
printf '%-8s %s\n' server "MiB/s (3 runs, 1 GiB each, curl -o /dev/null)"
for target in "node http://127.0.0.80:7580/documents/big.bin" "nginx http://127.0.0.79:7480/big.bin"; do
    set -- $target
    speeds=()
    for _ in 1 2 3; do
        bps=$(curl -s -o /dev/null -w '%{speed_download}' "$2")
        speeds+=("$(echo "$bps / 1048576" | bc)")
    done
    printf '%-8s %s\n' "$1" "${speeds[*]}"
done
