import { h, bytes, when, percent, row } from "../dom";
import type { Status } from "../api";


/** Reachability as the node reports it (issue 7's `upnp` / `mdns` fields), or honestly nothing. */
function reach(s: Status, key: string): string {
  const v = s[key];
  if (v === undefined || v === null) return "not reported by this node";
  if (typeof v === "string") return v;
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    return String(o.outcome ?? o.state ?? o.summary ?? JSON.stringify(o));
  }
  return String(v);
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
      row("UPnP", reach(s, "upnp"), "upnp"),
      row("mDNS", reach(s, "mdns"), "mdns"),
      row("Local URL", url ? h("a", { href: url, target: "_blank", rel: "noreferrer", id: "local-url" }, url) : "none"),
      row("Wire / BitTorrent", `${s.wire_addr} · ${s.bt_addr ?? "—"}`),
      row("Evidence", `${s.evidence} refusals recorded`),
    ),
  );
}
