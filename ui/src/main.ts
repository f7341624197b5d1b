import "./style.css";
import { Api, ApiError, connection, forgetToken, setToken } from "./api";
import type { Evidence, NetworkInfo, NodeEvent, SettingsReply, Status } from "./api";
import { h } from "./dom";

import * as statusPage from "./pages/status";
import * as peersPage from "./pages/peers";
import * as uploadsPage from "./pages/uploads";
import * as settingsPage from "./pages/settings";

type Page = "status" | "peers" | "uploads" | "settings";
const PAGES: Page[] = ["status", "peers", "uploads", "settings"];

const tauri = window.__TAURI__?.core;
const $ = (id: string) => document.getElementById(id)!;

let api: Api;
let status: Status | null = null;
let evidence: Evidence[] | string = [];
let queue: uploadsPage.Queue = "loading…";
let settings: SettingsReply | string = "loading…";
let networks: NetworkInfo[] | string = [];
let autostart: boolean | null = null;
let uploadMessage: string | null = null;
let updateMessage: string | null = null;
let settingsMessage: string | null = null;

function page(): Page {
  const p = location.hash.replace(/^#/, "") as Page;
  return PAGES.includes(p) ? p : "status";
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The header: what the node is doing, in the tray's words. */
function header(s: Status): void {
  $("site-title").textContent = `swarmsite · ${s.site_name || s.network}`;
  const state = $("state");
  state.dataset.state = s.health.state;
  state.textContent = s.health.summary;
  state.title = s.health.problems.join("\n");
  const open = $("open-site") as HTMLButtonElement;
  open.disabled = s.health.local_url === null || s.served_version === null;
  const pause = $("pause") as HTMLButtonElement;
  pause.disabled = false;
  pause.textContent = s.paused ? "Resume sharing" : "Pause sharing";
}

function render(): void {
  const p = page();
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav.tabs a")) {
    a.classList.toggle("current", a.dataset.page === p);
  }
  const main = $("page");
  if (!status) return;
  header(status);
  let view: HTMLElement;
  switch (p) {
    case "status":
      view = statusPage.render(status, installUpdate, updateMessage);
      break;
    case "peers":
      view = peersPage.render(status, evidence);
      break;
    case "uploads":
      view = uploadsPage.render(queue, upload, uploadMessage, tauri ? pickUploads : null);
      break;
    case "settings":
      view = settingsPage.render(
        {
          reply: settings,
          networks,
          autostart,
          documents: status.documents ? { quota: status.documents.quota, used: status.documents.used } : null,
          message: settingsMessage,
        },
        { save, addBundle, removeNetwork, setAutostart, setQuota },
      );
      break;
  }
  // Keep a form being edited: settings re-render only on their own changes.
  if (p === "settings" && main.querySelector("#settings-form") && document.activeElement?.closest("form")) return;
  main.replaceChildren(view);
}

async function refreshStatus(): Promise<void> {
  try {
    status = await api.get<Status>("/api/status");
    render();
  } catch (e) {
    failed(e);
  }
}

async function refreshEvidence(): Promise<void> {
  try {
    evidence = await api.get<Evidence[]>("/api/evidence?limit=100");
  } catch (e) {
    evidence = `Cannot read the evidence log: ${describe(e)}`;
  }
  render();
}

async function refreshUploads(): Promise<void> {
  try {
    queue = await api.get<uploadsPage.UploadList>("/api/uploads");
  } catch (e) {
    queue = e instanceof ApiError && e.status === 404 ? null : `Cannot read the queue: ${describe(e)}`;
  }
  render();
}

async function refreshSettings(): Promise<void> {
  try {
    [settings, networks] = await Promise.all([
      api.get<SettingsReply>("/api/settings"),
      api.get<NetworkInfo[]>("/api/networks"),
    ]);
  } catch (e) {
    settings = `Cannot read the settings: ${describe(e)}`;
  }
  if (tauri) autostart = (await tauri.invoke("autostart_get").catch(() => null)) as boolean | null;
  render();
}

function upload(files: uploadsPage.Picked[]): void {
  if (files.length === 0) return;
  uploadMessage = `Packing and queueing ${files.length} file(s)…`;
  render();
  api
    .sendRaw<unknown>("POST", "/api/uploads/files", uploadsPage.form(files))
    .then(() => {
      uploadMessage = `${files.length} file(s) queued.`;
    })
    .catch((e) => {
      uploadMessage = `Not queued: ${describe(e)}`;
    })
    .finally(() => void refreshUploads());
}

/**
 * "Upload files…" in the app: the desktop's file chooser (the shell's `pick_uploads`),
 * then the chosen paths go to the queue, read by the node where they are.
 */
function pickUploads(): void {
  if (!tauri) return;
  void (tauri.invoke("pick_uploads") as Promise<string[]>)
    .then(async (paths) => {
      if (paths.length === 0) return;
      uploadMessage = `Packing and queueing ${paths.length} file(s)…`;
      render();
      await api.send("POST", "/api/uploads", { paths });
      uploadMessage = `${paths.length} file(s) queued.`;
    })
    .catch((e) => {
      uploadMessage = `Not queued: ${describe(e)}`;
    })
    .finally(() => void refreshUploads());
}

/** The tray's "Upload files…" opens the window at `#uploads/pick`: the Uploads page, chooser open. */
function pickRequested(): boolean {
  if (location.hash !== "#uploads/pick") return false;
  history.replaceState(null, "", "#uploads");
  return true;
}

/** "Restart to update": the node installs the checked release, answers, then restarts. */
function installUpdate(): void {
  updateMessage = "Installing…";
  render();
  api
    .send<import("./api").UpdateStatus>("POST", "/api/update/install")
    .then((u) => {
      updateMessage = tauri
        ? `swarmsite ${u?.newest ?? ""} is installed; the app restarts into it now.`
        : `swarmsite ${u?.newest ?? ""} is installed; the node restarts into it now. Open the link \`swarmsite dashboard\` prints to see it again.`;
    })
    .catch((e) => {
      updateMessage = `Not installed: ${describe(e)}`;
    })
    .finally(() => void refreshStatus());
}

function save(s: import("./api").Settings): void {
  api
    .send<SettingsReply>("PUT", "/api/settings", s)
    .then((r) => {
      settings = r!;
      settingsMessage = "Saved. The node uses the new settings when it next starts.";
    })
    .catch((e) => {
      settingsMessage = `Not saved: ${describe(e)}`;
    })
    .finally(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      render();
    });
}

function addBundle(text: string): void {
  api
    .sendRaw<{ tag: string }>("POST", "/api/networks", text, "application/json")
    .then((r) => {
      settingsMessage = `Network ${r.tag} added.`;
    })
    .catch((e) => {
      settingsMessage = `Not added: ${describe(e)}`;
    })
    .finally(() => void refreshSettings());
}

function removeNetwork(tag: string): void {
  api
    .send("DELETE", `/api/networks/${encodeURIComponent(tag)}`)
    .then(() => {
      settingsMessage = `Network ${tag} removed.`;
    })
    .catch((e) => {
      settingsMessage = `Not removed: ${describe(e)}`;
    })
    .finally(() => void refreshSettings());
}

function setQuota(bytes: number): void {
  api
    .send("POST", "/api/documents/quota", { bytes })
    .then(() => {
      settingsMessage = "Storage quota set.";
    })
    .catch((e) => {
      settingsMessage = `Quota not set: ${describe(e)}`;
    })
    .finally(() => {
      (document.activeElement as HTMLElement | null)?.blur();
      void refreshStatus();
    });
}

function setAutostart(on: boolean): void {
  tauri
    ?.invoke("autostart_set", { enabled: on })
    .then(() => {
      settingsMessage = on ? "swarmsite will start when you log in." : "swarmsite will not start at login.";
    })
    .catch((e) => {
      settingsMessage = `Start at login: ${describe(e)}`;
    })
    .finally(() => void refreshSettings());
}

/** Refreshes at most every 250 ms however fast events come (sync progress is chatty). */
let pending = false;
function soon(): void {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    void refreshStatus();
  }, 250);
}

function onEvent(ev: NodeEvent): void {
  soon();
  if (ev.type === "evidence" || ev.type === "blacklist") void refreshEvidence();
  if (ev.type.startsWith("upload") || ev.type === "record-accepted") void refreshUploads();
}

function failed(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) {
    forgetToken();
    login("The node refused this token.");
  } else {
    $("conn").textContent = `Not connected: ${describe(e)}`;
  }
}

/** No token (a browser opened the bare address) or a wrong one: ask for it. */
function login(why: string | null): void {
  status = null;
  $("state").textContent = "Not connected";
  $("state").dataset.state = "offline";
  const input = h("input", { name: "token", id: "token", size: 64, placeholder: "token", autocomplete: "off" });
  const form = h(
    "form",
    { class: "page", id: "login" },
    h("h2", {}, "Connect to your node"),
    why ? h("p", { class: "bad", id: "login-error" }, why) : null,
    h(
      "p",
      {},
      "Run ",
      h("code", {}, "swarmsite dashboard"),
      " on this computer and open the link it prints, or paste the token from the node's control.json:",
    ),
    input,
    h("button", { type: "submit" }, "Connect"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken(input.value);
    location.reload();
  });
  $("page").replaceChildren(form);
}

function start(): void {
  const broken = window.__SWARMSITE__?.error;
  if (broken) {
    $("state").textContent = "Not running";
    $("state").dataset.state = "attention";
    $("page").replaceChildren(
      h("section", { class: "page", id: "not-running" }, h("h2", {}, "The node could not start"), h("p", { class: "bad" }, broken)),
    );
    return;
  }
  const conn = connection();
  if (!conn) return login(null);
  api = new Api(conn);
  const stop = new AbortController();
  void api.follow(
    onEvent,
    (link) => {
      $("conn").textContent = {
        live: "Live: updates arrive as they happen",
        down: "Connection to the node lost; reconnecting…",
        refused: "The node refused this token",
      }[link];
      if (link === "live") {
        // Whatever happened while the stream was down.
        void refreshStatus();
        void refreshEvidence();
        void refreshUploads();
      }
      if (link === "refused") failed(new ApiError(401, "refused"));
    },
    stop.signal,
  );
  void refreshSettings();
  window.addEventListener("hashchange", () => {
    const pick = pickRequested();
    if (page() === "settings") void refreshSettings();
    render();
    if (pick) pickUploads();
  });
  if (pickRequested()) pickUploads();
  $("open-site").addEventListener("click", () => {
    const url = status?.health.local_url;
    if (!url) return;
    if (tauri) void tauri.invoke("open_site");
    else window.open(url, "_blank", "noreferrer");
  });
  $("pause").addEventListener("click", () => {
    if (!status) return;
    ($("pause") as HTMLButtonElement).disabled = true;
    api
      .send("POST", "/api/pause", { paused: !status.paused })
      .catch((e) => failed(e))
      .finally(() => void refreshStatus());
  });
}

start();
