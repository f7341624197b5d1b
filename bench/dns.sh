#!/usr/bin/env bash
# The DNS front (issue 8), on this machine:
#  1. queries/s answered by PowerDNS with the swarmsite remote backend (release build,
#     five loopback volunteers serving a signed release) over HTTP and over the
#     unix-socket connector, with 3 (PowerDNS's default) and 32 distributor threads,
#     next to PowerDNS with its bind backend serving the same zone, caches off, and
#     with PowerDNS's default caches as the ceiling; dnsperf, with an ECS option;
#  2. the prober at 100,000 candidates: candidates probed per second and memory, next
#     to a bare HTTP client doing the same GETs (cargo bench --bench dns_prober).
#   bench/dns.sh [SECONDS] [CANDIDATES]
# Runs itself in a private network namespace so the loopback addresses are its own.
set -euo pipefail
if [ -z "${SWARMSITE_BENCH_NETNS:-}" ]; then
    exec unshare -n env SWARMSITE_BENCH_NETNS=1 "$0" "$@"
fi
ip link set lo up
secs=${1:-10}
candidates=${2:-100000}
need=()
command -v pdns_server >/dev/null || need+=(pdns-server)
compgen -G "/usr/lib/*/pdns/libremotebackend.so" >/dev/null || need+=(pdns-backend-remote)
compgen -G "/usr/lib/*/pdns/libbindbackend.so" >/dev/null || need+=(pdns-backend-bind)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "needs: apt-get install ${need[*]} (run outside the namespace)"
    exit 1
fi
source "$(dirname "$0")/common.sh"

# A network, one published release, five volunteers serving its record (Python's HTTP
# server: the backend's speed is measured here, not the volunteers').
export SWARMSITE_PASSPHRASE=bench
"$bin" keys init-network --network "$tmp/net" --tag BENCHLEAK --site bench >/dev/null 2>&1
mkdir -p "$tmp/site" && echo '<!doctype html><title>bench</title>' >"$tmp/site/index.html"
"$bin" publish site "$tmp/site" --network "$tmp/net" >/dev/null
mkdir -p "$tmp/www/.well-known/swarmsite"
cp "$tmp"/net/published/1000-1-v1/record.rec "$tmp/www/.well-known/swarmsite/release"
seeds=()
for i in 31 32 33 34 35; do
    python3 -m http.server --bind "127.0.0.$i" --directory "$tmp/www" 18880 \
        >/dev/null 2>&1 &
    pids+=($!)
    seeds+=("\"127.0.0.$i\"")
done
# Each volunteer answers before the front starts: a first probe refused would put it
# back only after the probe interval (60 s).
for i in 31 32 33 34 35; do
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.$i:18880/.well-known/swarmsite/release" && break
        sleep 0.1
    done
done

zone_toml() {
    cat <<TOML
zone = "site.example"
ttl = 20
ns = ["ns1.site.example"]
[soa]
primary = "ns1.site.example"
hostmaster = "hostmaster.site.example"
serial = 1
[[record]]
name = "ns1.site.example"
type = "A"
content = "192.0.2.53"
[probe]
ports = [18880]
allow_private = true
seeds = [$(IFS=,; echo "${seeds[*]}")]
TOML
}
zone_toml >"$tmp/zone.toml"
RUST_LOG=warn "$bin" --data-dir "$tmp/dns" dns --zone "$tmp/zone.toml" \
    --listen 127.0.0.1:8053 --unix "$tmp/dns.sock" --bundle "$tmp/net/bundle.json" \
    --wire 127.0.0.40:7400 --bt 127.0.0.40:7401 --http 127.0.0.40:7480 \
    --no-content-dht --no-rendezvous 2>"$tmp/dns.log" &
pids+=($!)
for _ in $(seq 300); do
    "$bin" --data-dir "$tmp/dns" status 2>/dev/null | grep -q 'answering 5 node' && break
    sleep 0.1
done
"$bin" --data-dir "$tmp/dns" status | grep '^dns'
if ! "$bin" --data-dir "$tmp/dns" status | grep -q 'answering 5 node'; then
    echo "the front did not find the five volunteers healthy:"; cat "$tmp/dns.log"; exit 1
fi

# The same zone for the bind backend: the three answers the remote backend gives.
cat >"$tmp/site.example.zone" <<ZONE
\$TTL 20
@ 3600 IN SOA ns1.site.example. hostmaster.site.example. 1 10800 3600 604800 60
@ 3600 IN NS ns1.site.example.
@ IN A 127.0.0.31
@ IN A 127.0.0.32
@ IN A 127.0.0.33
ns1 3600 IN A 192.0.2.53
ZONE
echo "zone \"site.example\" { type master; file \"$tmp/site.example.zone\"; };" >"$tmp/named.conf"

start_pdns() { # name port backend-lines cache-lines
    local d="$tmp/pdns-$1"
    mkdir -p "$d"
    {
        echo "$3"
        echo "local-address=127.0.0.1"
        echo "local-port=$2"
        echo "daemon=no"
        echo "guardian=no"
        echo "write-pid=no"
        echo "socket-dir=$d"
        echo "edns-subnet-processing=yes"
        echo "no-shuffle=yes"
        echo "loglevel=3"
        echo "$4"
    } >"$d/pdns.conf"
    pdns_server --config-dir="$d" >"$d/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$2" site.example SOA 2>/dev/null | grep -q hostmaster && return
        sleep 0.1
    done
    echo "PowerDNS ($1) did not start:"; cat "$d/log"; exit 1
}
nocache=$'cache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0'
remote=$'launch=remote\nremote-connection-string=http:url=http://127.0.0.1:8053/dns,post=1,post_json=1,timeout=2000'
bind=$'launch=bind\nbind-config='"$tmp/named.conf"
# PowerDNS's HTTP connector waits up to 1 ms (a poll for a closed connection) before
# each call it makes on a kept connection, and one query takes two calls: three
# distributor threads (its default) top out near 1,300 queries/s whatever the backend
# does. docs/DNS.md sets 32.
start_pdns remote 5301 "$remote" "$nocache"
start_pdns remote-32 5304 "$remote"$'\ndistributor-threads=32' "$nocache"
# The packet cache alone (the query cache would keep the unsteered answer of
# PowerDNS's own zone lookup): 4.7 keys it on the query's bytes, ECS option included.
start_pdns remote-32-pc 5305 "$remote"$'\ndistributor-threads=32' $'query-cache-ttl=0\nnegquery-cache-ttl=0'
# The unix-socket connector: no HTTP, no wait before each call.
unix="launch=remote"$'\n'"remote-connection-string=unix:path=$tmp/dns.sock,timeout=2000"
start_pdns unix 5306 "$unix" "$nocache"
start_pdns unix-32 5307 "$unix"$'\ndistributor-threads=32' "$nocache"
start_pdns bind 5302 "$bind" "$nocache"
start_pdns bind-cached 5303 "$bind" ""

echo "site.example A" >"$tmp/queries"
# ECS 198.51.100.0/24 on every query (option 8: family 1, source 24, scope 0, 3 bytes).
ecs="8:00011800c63364"
run_dnsperf() {
    dnsperf -s 127.0.0.1 -p "$1" -d "$tmp/queries" -l "$secs" -c 8 -T 2 -E "$ecs" -q 200 2>&1 |
        awk '/Queries per second/ {q=$4} /Average Latency/ {l=$4} /Queries lost/ {lost=$3}
             END {printf "%10.0f queries/s, average latency %.3f ms, lost %s\n", q, l*1000, lost}'
}
echo "== PowerDNS 4.7 + swarmsite remote backend, 3 distributor threads (default), caches off"
dig +short @127.0.0.1 -p 5301 site.example A +subnet=198.51.100.0/24 | tr '\n' ' '; echo
run_dnsperf 5301
echo "== PowerDNS 4.7 + swarmsite remote backend, 32 distributor threads, caches off"
dig +short @127.0.0.1 -p 5304 site.example A +subnet=198.51.100.0/24 | tr '\n' ' '; echo
run_dnsperf 5304
echo "== PowerDNS 4.7 + swarmsite remote backend, 32 distributor threads, packet cache on"
run_dnsperf 5305
echo "== PowerDNS 4.7 + swarmsite remote backend, unix socket, 3 distributor threads, caches off"
dig +short @127.0.0.1 -p 5306 site.example A +subnet=198.51.100.0/24 | tr '\n' ' '; echo
run_dnsperf 5306
echo "== PowerDNS 4.7 + swarmsite remote backend, unix socket, 32 distributor threads, caches off"
run_dnsperf 5307
echo "== PowerDNS 4.7 + bind backend, same zone (caches off)"
run_dnsperf 5302
echo "== PowerDNS 4.7 + bind backend, default caches"
run_dnsperf 5303

echo "== prober at $candidates candidates"
cargo bench --quiet --bench dns_prober -- "$candidates" 64
