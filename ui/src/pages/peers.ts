import { h, when, table } from "../dom";
import type { Evidence, Status } from "../api";

export function render(s: Status, evidence: Evidence[] | string): HTMLElement {
  const b = s.blacklist;
  return h(
    "section",
    { class: "page", id: "peers-page" },
    h("h2", {}, `Connected peers (${s.peers.length})`),
    table(
      ["Address", "Client", "Direction"],
      s.peers.map((p) => [p.addr, p.client ?? "—", p.outgoing ? "we dialled" : "they dialled"]),
      "No wire peers connected.",
    ),
    h("h2", {}, "Blacklist"),
    b
      ? h(
          "div",
          { id: "blacklist" },
          h(
            "p",
            {},
            `Version ${b.version}, ${b.entries.length} entries; ${b.refused} connections refused or closed`,
            b.in_bittorrent ? "; in force in BitTorrent too." : "; BitTorrent is still restarting with it.",
          ),
          table(
            ["Address", "Reason", "Listed since"],
            b.entries.map((e) => [e.addr, e.reason, when(e.since)]),
            "The list is empty.",
          ),
          b.closed.length ? h("p", { class: "small" }, `Recently closed or refused: ${b.closed.join(", ")}`) : null,
        )
      : h("p", { class: "empty", id: "blacklist" }, "No signed blacklist received yet."),
    h("h2", {}, "Local evidence"),
    h("p", { class: "small" }, "What this node refused, and from whom. It stays on this computer."),
    typeof evidence === "string"
      ? h("p", { class: "bad" }, evidence)
      : table(
          ["When", "Peer", "Reason", "Detail"],
          evidence
            .slice()
            .reverse()
            .map((e) => [when(e.time), e.peer ?? "this node", e.reason, e.detail]),
          "Nothing refused so far.",
        ),
  );
}
