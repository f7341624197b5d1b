import { h, row, table, bytes } from "../dom";
import type { NetworkInfo, Settings, SettingsReply } from "../api";

export interface SettingsView {
  reply: SettingsReply | string;
  networks: NetworkInfo[] | string;
  /** Start at login: only the tray app can (null in a browser). */
  autostart: boolean | null;
  /** The documents archive's quota and use, when this node keeps one. */
  documents: { quota: number; used: number } | null;
  message: string | null;
}

export interface SettingsActions {
  save: (s: Settings) => void;
  addBundle: (text: string) => void;
  removeNetwork: (tag: string) => void;
  setAutostart: (on: boolean) => void;
  setQuota: (bytes: number) => void;
}

const addr = (v: string): string | null => (v.trim() === "" ? null : v.trim());
const num = (v: string): number | null => (v.trim() === "" ? null : Number(v));

export function render(v: SettingsView, act: SettingsActions): HTMLElement {
  const page = h("section", { class: "page", id: "settings-page" }, h("h2", {}, "Settings"));
  if (v.message) page.append(h("p", { class: "message", id: "settings-message" }, v.message));
  if (typeof v.reply === "string") {
    page.append(h("p", { class: "bad" }, v.reply));
    return page;
  }
  const s = v.reply.settings;
  const field = (name: string, value: string | number | null, placeholder: string) =>
    h("input", { name, value: value ?? "", placeholder });
  const networks = Array.isArray(v.networks) ? v.networks : [];
  const chosen = s.network ?? networks.find((n) => n.running)?.tag ?? "WIKILEAKS";
  const select = h(
    "select",
    { name: "network" },
    networks.map((n) =>
      h("option", { value: n.tag, selected: chosen === n.tag }, n.tag),
    ),
  );
  const notify = h("input", { type: "checkbox", name: "notifications", checked: s.notifications ?? true });
  const form = h(
    "form",
    { id: "settings-form" },
    h(
      "table",
      { class: "facts" },
      row("Data folder", h("code", {}, v.reply.data_dir)),
      row("Network", select),
      row("Site id", field("site", s.site, "the network's first site")),
      row("HTTP addresses", field("http", s.http.join(", "), "0.0.0.0:80, 0.0.0.0:18880")),
      row("Wire address", field("wire", s.wire, "0.0.0.0:6880")),
      row("BitTorrent address", field("bt", s.bt, "0.0.0.0:6881")),
      row("Control API", field("control", s.control, "127.0.0.1:0")),
      row("Download cap (bytes/s)", field("download_limit", s.download_limit, "no cap")),
      row("Upload cap (bytes/s)", field("upload_limit", s.upload_limit, "no cap")),
      row("Notifications", h("label", {}, notify, " show desktop notifications (tray app)")),
    ),
    h("p", { class: "small" }, "Changes apply the next time the node starts. The data folder moves only with --data-dir."),
    h("button", { type: "submit" }, "Save"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const text = (k: string) => String(f.get(k) ?? "");
    act.save({
      network: select.value || null,
      site: num(text("site")),
      http: text("http")
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
      wire: addr(text("wire")),
      bt: addr(text("bt")),
      control: addr(text("control")),
      download_limit: num(text("download_limit")),
      upload_limit: num(text("upload_limit")),
      notifications: notify.checked,
    });
  });
  page.append(form);

  page.append(h("h2", {}, "Start at login"));
  if (v.autostart === null) {
    page.append(h("p", { class: "small" }, "Only the tray app can start itself at login."));
  } else {
    const box = h("input", { type: "checkbox", id: "autostart", checked: v.autostart });
    box.addEventListener("change", () => act.setAutostart(box.checked));
    page.append(h("label", {}, box, " start swarmsite when I log in"));
  }

  page.append(h("h2", {}, "Storage quota"));
  if (v.documents) {
    const gib = 1024 * 1024 * 1024;
    const quota = h("input", {
      type: "number",
      min: 0,
      step: 0.5,
      id: "quota",
      value: String(Math.round((v.documents.quota / gib) * 10) / 10),
    });
    const form = h(
      "form",
      { id: "quota-form" },
      h(
        "p",
        { class: "small" },
        `Copies of published documents kept on this computer: ${bytes(v.documents.used)} of ${bytes(v.documents.quota)} used. `,
        "The swarm keeps the rarest documents where there is room; 0 keeps none. Applies at once.",
      ),
      h("label", {}, "GiB ", quota),
      h("button", { type: "submit" }, "Set quota"),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act.setQuota(Math.round(Number(quota.value) * gib));
    });
    page.append(form);
  } else {
    page.append(h("p", { class: "small" }, "This node reports no documents archive, so there is no quota to set."));
  }

  page.append(h("h2", {}, "Networks"));
  if (typeof v.networks === "string") page.append(h("p", { class: "bad" }, v.networks));
  page.append(
    table(
      ["Network", "Sites", "Fingerprint", ""],
      networks.map((n) => [
        n.tag + (n.running ? " (running)" : ""),
        n.sites.map((x) => `${x.id} ${x.name}`).join(", "),
        h("code", {}, n.fingerprint.slice(0, 16)),
        n.builtin || n.running
          ? h("span", { class: "small" }, n.builtin ? "built in" : "in use")
          : h("button", { type: "button", onclick: () => act.removeNetwork(n.tag) }, "Remove"),
      ]),
      "No networks.",
    ),
  );
  const bundle = h("input", { type: "file", accept: ".json,application/json", id: "bundle-input" });
  bundle.addEventListener("change", () => {
    const f = bundle.files?.[0];
    if (f) void f.text().then(act.addBundle);
  });
  page.append(h("label", { class: "button" }, "Add a bundle file…", bundle));
  return page;
}
