// The one transport: the node's local control API (HTTP + server-sent events on
// 127.0.0.1, `Authorization: Bearer <token>`). The tray app's shell injects the address
// and token; in a browser the token comes from the `#token=` fragment of the link
// `swarmsite dashboard` prints (a fragment is never sent to a server), or is typed in.

export interface Conn {
  /** Base URL of the control API: "" when the page came from it, else http://127.0.0.1:PORT */
  base: string;
  token: string;
}

/** What the tray app's shell puts on the page before it loads. */
interface Injected {
  api?: string;
  token?: string;
  /** Why the app's node is not running. */
  error?: string;
  /** The page the window opens on. */
  page?: string;
}

declare global {
  interface Window {
    __SWARMSITE__?: Injected;
    __TAURI__?: { core: { invoke: (cmd: string, args?: unknown) => Promise<unknown> } };
  }
}

const KEY = "swarmsite-token";

export function connection(): Conn | null {
  const injected = window.__SWARMSITE__;
  if (injected?.api && injected.token) {
    if (injected.page && !location.hash) history.replaceState(null, "", `#${injected.page}`);
    return { base: injected.api, token: injected.token };
  }
  const m = location.hash.match(/token=([0-9a-fA-F]+)/);
  if (m) {
    sessionStorage.setItem(KEY, m[1]);
    // Out of the address bar and the history at once.
    history.replaceState(null, "", location.pathname + "#status");
  }
  const token = sessionStorage.getItem(KEY);
  return token ? { base: "", token } : null;
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim());
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  constructor(private conn: Conn) {}

  private async call(method: string, path: string, body?: BodyInit, type?: string): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.conn.token}` };
    if (type) headers["Content-Type"] = type;
    let r: Response;
    try {
      r = await fetch(this.conn.base + path, { method, headers, body, cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, `the node does not answer (${(e as Error).message})`);
    }
    if (!r.ok) throw new ApiError(r.status, (await r.text()).trim() || r.statusText);
    return r;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.call("GET", path)).json() as Promise<T>;
  }

  async send<T>(method: "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T | null> {
    const r = await this.call(method, path, body === undefined ? undefined : JSON.stringify(body), "application/json");
    return r.status === 204 ? null : ((await r.json()) as T);
  }

  async sendRaw<T>(method: "POST", path: string, body: BodyInit, type?: string): Promise<T> {
    return (await this.call(method, path, body, type)).json() as Promise<T>;
  }

  /**
   * Follows /api/events until `signal` aborts: `onEvent` for each event, `onLink` when
   * the stream opens or drops. Read with fetch, not EventSource, so the token travels in
   * a header, never in a URL. A dropped stream is opened again after a growing pause.
   */
  async follow(
    onEvent: (ev: NodeEvent) => void,
    onLink: (state: "live" | "down" | "refused") => void,
    signal: AbortSignal,
  ): Promise<void> {
    let pause = 1000;
    while (!signal.aborted) {
      try {
        const r = await fetch(this.conn.base + "/api/events", {
          headers: { Authorization: `Bearer ${this.conn.token}`, Accept: "text/event-stream" },
          signal,
        });
        if (r.status === 401) {
          onLink("refused");
          return;
        }
        if (!r.ok || !r.body) throw new Error(`events: ${r.status}`);
        onLink("live");
        pause = 1000;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end: number;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).replace(/^ /, ""))
              .join("\n");
            if (data) onEvent(JSON.parse(data) as NodeEvent);
          }
        }
      } catch {
        if (signal.aborted) return;
      }
      onLink("down");
      await new Promise((ok) => setTimeout(ok, pause));
      pause = Math.min(pause * 2, 30000);
    }
  }
}

// Shapes of the control API (crates/node/src/node/status.rs, crates/node/src/control/app_api.rs).

export interface SyncStatus {
  version: number;
  have_bytes: number;
  total_bytes: number;
  peers: number;
  bytes_per_sec: number;
  fetched_bytes: number;
  error: string | null;
}

export interface PeerStatus {
  addr: string;
  client: string | null;
  outgoing: boolean;
}

export interface HttpPortStatus {
  addr: string;
  bound: boolean;
  error: string | null;
}

export interface BlacklistStatus {
  version: number;
  entries: { addr: string; reason: string; since: number }[];
  refused: number;
  in_bittorrent: boolean;
  closed: string[];
}

/** Software updates (crates/node/src/update/mod.rs, PROTOCOL §21): `GET /api/update`, the status's `update`. */
export interface UpdateStatus {
  running: string;
  platform: string;
  installation: string | null;
  package_kind: string;
  phase: "up-to-date" | "downloading" | "ready" | "installing" | "restarting" | "unavailable" | "failed";
  newest: string | null;
  manifest_version: number | null;
  min_version: string | null;
  notes: string | null;
  progress: {
    have_bytes: number;
    total_bytes: number;
    peers: number;
    bytes_per_sec: number;
    fetched_bytes: number;
  } | null;
  package: { version: string; path: string; kind: string; size: number; sha256: string } | null;
  installable: boolean;
  auto_install: boolean;
  error: string | null;
}

export interface Status {
  network: string;
  site_id: number;
  site_name: string;
  served_version: number | null;
  served_time: number | null;
  sync: SyncStatus | null;
  last_sync: SyncStatus | null;
  peers: PeerStatus[];
  http: HttpPortStatus[];
  wire_addr: string;
  dht: [number, string] | null;
  bt_addr: string | null;
  bytes_served: number;
  requests: number;
  records: { name: string; class: string; version: number }[];
  evidence: number;
  notice: string | null;
  blacklist: BlacklistStatus | null;
  paused: boolean;
  /** The tray's word for it all (crates/node/src/node/health.rs). */
  health: {
    state: "offline" | "syncing" | "serving" | "paused" | "attention";
    summary: string;
    problems: string[];
    local_url: string | null;
  };
  /** UPnP and mDNS (crates/node/src/reach). */
  reach?: {
    upnp: {
      state: string;
      external_ip: string | null;
      mappings: { external_port?: number | null }[];
      error: string | null;
      warning: string | null;
    };
    mdns: { state: string; url: string | null; error: string | null };
  };
  update?: UpdateStatus;
  /** The documents archive in short (crates/node/src/node/status.rs). */
  documents?: { known: number; held: number; fetching: number; quota: number; used: number; evicted: number };
}

export interface Evidence {
  time: number;
  /** Absent when the object came from no one connection (a signed record). */
  peer?: string | null;
  reason: string;
  detail: string;
  object?: string | null;
}

export interface Settings {
  network: string | null;
  site: number | null;
  wire: string | null;
  bt: string | null;
  http: string[];
  control: string | null;
  download_limit: number | null;
  upload_limit: number | null;
  notifications: boolean | null;
}

export interface SettingsReply {
  settings: Settings;
  data_dir: string;
}

export interface NetworkInfo {
  tag: string;
  sites: { id: number; name: string }[];
  fingerprint: string;
  builtin: boolean;
  running: boolean;
}

export type NodeEvent = { type: string; [k: string]: unknown };
