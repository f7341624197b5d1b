import { h, bytes, when, percent, row } from "../dom";
import type { Status } from "../api";


/** UPnP as the node reports it (src/reach/upnp.rs). */
function upnp(s: Status): string {
  const u = s.reach?.upnp;
  if (!u) return "not reported by this node";
  const held = u.mappings.filter((m) => m.external_port !== null && m.external_port !== undefined).length;
  let text: string = u.state;
  if (u.state === "mapped" || u.state === "partial") {
    text += `: ${held} of ${u.mappings.length} ports mapped`;
    if (u.external_ip) text += ` on ${u.external_ip}`;
  }
  if (u.error) text += ` (${u.error})`;
  if (u.warning) text += ` · ${u.warning}`;
  return text;
}

/** mDNS as the node reports it (src/reach/mdns.rs). */
function mdns(s: Status): HTMLElement | string {
  const m = s.reach?.mdns;
  if (!m) return "not reported by this node";
  if (m.state === "announced" && m.url) {
    return h("span", {}, "announced: ", h("a", { href: m.url, target: "_blank", rel: "noreferrer" }, m.url));
  }
  return m.error ? `${m.state} (${m.error})` : m.state;
}

export function render(s: Status): HTMLElement {
  const sync = s.sync;
  const url = s.health.local_url;
  const ports = s.http.map((p) =>
    h(
      "li",
      { class: p.bound ? "ok" : "bad" },
      p.bound ? `${p.addr}: serving` : `${p.addr}: not bound (${p.error ?? "unknown error"})`,
    ),
  );
  const port80 = s.http.find((p) => p.addr.endsWith(":80"));
  return h(
    "section",
    { class: "page", id: "status-page" },
    h("h2", {}, `${s.site_name || "site"} on ${s.network}`),
    s.notice ? h("p", { class: "notice" }, s.notice) : null,
    s.health.problems.length
      ? h("ul", { class: "problems", id: "problems" }, s.health.problems.map((p) => h("li", {}, p)))
      : null,
    h(
      "table",
      { class: "facts" },
      row("Served version", s.served_version ? `v${s.served_version}` : "none yet", "served-version"),
      row("Published", when(s.served_time), "published"),
      row(
        "Sync",
        sync
          ? [
              h("progress", { max: 100, value: percent(sync.have_bytes, sync.total_bytes) }),
              ` v${sync.version}: ${percent(sync.have_bytes, sync.total_bytes)}% of ${bytes(sync.total_bytes)}`,
              ` · ${bytes(sync.bytes_per_sec)}/s · ${sync.peers} peers`,
              sync.error ? h("span", { class: "bad" }, ` · ${sync.error}`) : null,
            ]
          : s.last_sync
            ? `up to date (last download v${s.last_sync.version}: ${bytes(s.last_sync.fetched_bytes)} fetched)`
            : "up to date",
        "sync",
      ),
      row("Peers", String(s.peers.length), "peer-count"),
      row("Served", `${bytes(s.bytes_served)} in ${s.requests} requests`),
      row("Sharing", s.paused ? "paused" : "on", "sharing"),
      row("HTTP ports", h("ul", { class: "ports" }, ports)),
      row(
        "Port 80",
        port80 ? (port80.bound ? "bound" : `not bound: ${port80.error ?? ""}`) : "not configured",
        "port80",
      ),
      row("UPnP", upnp(s), "upnp"),
      row("mDNS", mdns(s), "mdns"),
      row("Local URL", url ? h("a", { href: url, target: "_blank", rel: "noreferrer", id: "local-url" }, url) : "none"),
      row("Wire / BitTorrent", `${s.wire_addr} · ${s.bt_addr ?? "—"}`),
      row("Evidence", `${s.evidence} refusals recorded`),
    ),
  );
}
