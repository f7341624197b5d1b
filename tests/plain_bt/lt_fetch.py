#!/usr/bin/python3
"""A plain BitTorrent client (libtorrent, Debian's python3-libtorrent 2.0.x) for tests.

Fetch mode (the default): adds TORRENT with its files saved under --out, connects to each
--peer (ip:port) and nothing else, waits until it is seeding (every piece checked) or
--timeout seconds have passed, prints one JSON line and exits:
    {"ok": true, "bytes": N, "secs": S}                    exit 0
    {"ok": false, "why": "...", "progress": P}             exit 1

Seed mode (--seed): adds TORRENT over the existing folder --out, waits (at most
--timeout seconds) until libtorrent has checked it and seeds, prints
    {"listening": "ip:port"}
and seeds until stdin is closed or SIGTERM arrives (then exits 0). --peer addresses, if
any, are connected to (every few seconds while not connected), so the seeder can reach
a node that does not know it.

Everything stays on the loopback address --bind: it listens there alone (TCP only), its
outgoing connections leave from it, and DHT, local peer discovery, UPnP and NAT-PMP are
off. Run it with /usr/bin/python3 (the system's, which has libtorrent).
"""

import argparse
import json
import os
import select
import signal
import sys
import time

import libtorrent as lt


def parse_peer(s):
    host, _, port = s.rpartition(":")
    return (host, int(port))


def settings(bind_ip):
    return {
        # Listen on this loopback address alone (port picked by the kernel), and connect
        # from it (else the kernel picks 127.0.0.1).
        "listen_interfaces": f"{bind_ip}:0",
        "outgoing_interfaces": bind_ip,
        # TCP only. Required: with outgoing uTP on, libtorrent 2.0.8 tries uTP first to
        # librqbit (which speaks TCP only) and never gets a peer (0 peers after 15 s).
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Nothing but the peers we are given.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        # Every peer of a loopback test shares 127.0.0.0/8; some share an address.
        "allow_multiple_connections_per_ip": True,
        # Report errors and the listen socket.
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.connect_notification,
    }


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def progress_of(h):
    return round(h.status().progress, 4)


def drain(ses, errors, listening, checked=None):
    for a in ses.pop_alerts():
        if isinstance(a, lt.torrent_checked_alert) and checked is not None:
            checked.append(1)
        elif isinstance(a, lt.listen_succeeded_alert):
            listening.append((str(a.address), a.port))
        elif isinstance(a, lt.listen_failed_alert):
            errors.append(a.message())
        elif a.category() & lt.alert.category_t.error_notification:
            errors.append(a.message())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("torrent")
    p.add_argument("--peer", action="append", default=[], help="ip:port (repeatable)")
    p.add_argument("--out", required=True, help="output folder (seed mode: the content)")
    p.add_argument("--timeout", type=float, required=True, help="seconds")
    p.add_argument("--bind", required=True, help="a loopback IP, e.g. 127.0.0.90")
    p.add_argument("--seed", action="store_true")
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="no extensions (ut_metadata, ut_pex): peers cannot get the torrent's metadata here",
    )
    args = p.parse_args()

    if not args.seed and not args.peer:
        out({"ok": False, "why": "no --peer given", "progress": 0})
        return 1

    start = time.monotonic()
    deadline = start + args.timeout
    # Flags 0 leave out libtorrent's default plugins, ut_metadata among them.
    ses = lt.session(settings(args.bind), 0 if args.no_metadata else 1)
    errors, listening = [], []

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.out
    # Start at once, outside the queue (no auto-management).
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    h = ses.add_torrent(atp)
    peers = [parse_peer(s) for s in args.peer]

    def connect():
        for peer in peers:
            h.connect_peer(peer)

    if not args.seed:
        connect()
        last_connect = time.monotonic()
        while True:
            drain(ses, errors, listening)
            s = h.status()
            if s.is_seeding:
                secs = round(time.monotonic() - start, 3)
                out({"ok": True, "bytes": s.total_wanted_done, "secs": secs})
                h.flush_cache()
                return 0
            now = time.monotonic()
            if now >= deadline:
                why = f"timeout after {args.timeout}s: state {s.state}, {s.num_peers} peers"
                if errors:
                    why += "; errors: " + " | ".join(errors[-5:])
                out({"ok": False, "why": why, "progress": progress_of(h)})
                return 1
            # Connections refused or closed are retried (the peer may still be starting).
            if s.num_peers == 0 and now - last_connect > 2:
                connect()
                last_connect = now
            time.sleep(0.1)

    # Seed mode: wait for the check of the folder, then for the listen socket.
    checked = []
    while True:
        drain(ses, errors, listening, checked)
        s = h.status()
        if checked and not s.is_seeding:
            out({"ok": False, "why": "the folder does not hold the whole content",
                 "progress": progress_of(h)})
            return 1
        if s.is_seeding and listening:
            break
        if time.monotonic() >= deadline:
            why = f"not seeding after {args.timeout}s: state {s.state}"
            if errors:
                why += "; errors: " + " | ".join(errors[-5:])
            out({"ok": False, "why": why, "progress": progress_of(h)})
            return 1
        time.sleep(0.1)
    ip, port = listening[0]
    out({"listening": f"{ip}:{port}"})

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    last_connect = 0.0
    while not stop:
        drain(ses, errors, listening)
        now = time.monotonic()
        if peers and h.status().num_peers < len(peers) and now - last_connect > 2:
            connect()
            last_connect = now
        # stdin closed (the test's handle dropped): stop.
        r, _, _ = select.select([sys.stdin], [], [], 0.5)
        if r and not os.read(sys.stdin.fileno(), 4096):
            break
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The session's destructor may wait on its threads; nothing is left to save.
    os._exit(code)
