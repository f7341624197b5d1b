import { h, bytes, when, percent, row } from "../dom";
import type { Status, UpdateStatus } from "../api";

/** UPnP as the node reports it (crates/node/src/reach/upnp.rs). */
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

/** mDNS as the node reports it (crates/node/src/reach/mdns.rs). */
function mdns(s: Status): HTMLElement | string {
  const m = s.reach?.mdns;
  if (!m) return "not reported by this node";
  if (m.state === "announced" && m.url) {
    return h("span", {}, "announced: ", h("a", { href: m.url, target: "_blank", rel: "noreferrer" }, m.url));
  }
  return m.error ? `${m.state} (${m.error})` : m.state;
}

/** What to say about a newer release of swarmsite: nothing while up to date. */
function updateBanner(u: UpdateStatus, install: () => void, message: string | null): HTMLElement | null {
  if (u.phase === "up-to-date" && !message) return null;
  const newest = u.newest ?? "?";
  const headline: Record<UpdateStatus["phase"], string> = {
    "up-to-date": `swarmsite ${u.running} is up to date`,
    downloading: `Downloading swarmsite ${newest}`,
    ready: u.installable ? `swarmsite ${newest} is ready to install` : `swarmsite ${newest} is out`,
    installing: `Installing swarmsite ${newest}…`,
    restarting: `swarmsite ${newest} is installed: restarting into it…`,
    unavailable: `swarmsite ${newest} is out`,
    failed: `swarmsite ${newest}: the update did not go through`,
  };
  const p = u.progress;
  const button = h("button", { type: "button", id: "install-update", class: "primary" }, "Restart to update");
  button.addEventListener("click", () => {
    button.disabled = true;
    install();
  });
  return h(
    "div",
    { class: "update", id: "update-banner", "data-phase": u.phase },
    h("div", { class: "update-head" }, h("strong", { id: "update-headline" }, headline[u.phase]), u.installable ? button : null),
    h("p", { class: "small", id: "update-versions" }, `This computer runs ${u.running}; the newest release is ${newest}.`),
    u.phase === "downloading" && p
      ? h(
          "p",
          { id: "update-progress" },
          h("progress", { max: 100, value: percent(p.have_bytes, p.total_bytes) }),
          ` ${percent(p.have_bytes, p.total_bytes)}% of ${bytes(p.total_bytes)} · ${bytes(p.bytes_per_sec)}/s · ${p.peers} peers`,
        )
      : null,
    u.error ? h("p", { class: "bad", id: "update-error" }, u.error) : null,
    message ? h("p", { class: "message", id: "update-message" }, message) : null,
    u.notes ? h("details", { open: u.phase === "ready" }, h("summary", {}, "Release notes"), h("pre", { id: "update-notes" }, u.notes)) : null,
  );
}

export function render(s: Status, installUpdate: () => void, updateMessage: string | null): HTMLElement {
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
    s.update ? updateBanner(s.update, installUpdate, updateMessage) : null,
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
      s.update
        ? row(
            "swarmsite",
            `${s.update.running} · ${s.update.installation ?? "installs nothing"}, takes ${s.update.package_kind} packages · ${s.update.phase === "up-to-date" ? "up to date" : `newest ${s.update.newest ?? "?"}`}`,
            "software",
          )
        : null,
    ),
  );
}
