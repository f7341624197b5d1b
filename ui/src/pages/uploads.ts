import { h, bytes, when, table } from "../dom";

/** The node's upload queue, as `GET /api/uploads` lists it (issue 5). */
export interface UploadList {
  quota_bytes: number;
  used_bytes: number;
  max_size: number;
  refused: number;
  last_refusal: string | null;
  packing: { token: string; label: string; input_bytes: number; packed_bytes: number; error: string | null }[];
  entries: {
    ih: string;
    size: number;
    state: string;
    added_ms: number;
    receipted_ms: number | null;
    originated: boolean;
    label: string | null;
  }[];
}

/** The queue, `null` when this node has no upload queue at all, or why it cannot be read. */
export type Queue = UploadList | null | string;

/** A file picked or dropped, with its path inside the dropped folder. */
export interface Picked {
  file: File;
  path: string;
}

const EXPLAIN = [
  "Before anything leaves this computer, the files are packed into one archive, compressed, padded with random bytes to the next size step (so the size tells little), and encrypted to the intake key: only the intake can open it, and the container names neither the files nor you.",
  "The node then waits a random time and hands the container to one random peer, which passes it on the same way or starts spreading it. Nobody along the way can tell that it started here.",
  "It stays queued here until a signed intake receipt lists it, so nothing is lost if the computer is switched off meanwhile.",
];

/** Walks dropped folders (webkitGetAsEntry: Chromium, WebKit and Firefox all have it). */
async function dropped(items: DataTransferItemList): Promise<Picked[]> {
  const out: Picked[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((ok, fail) => (entry as FileSystemFileEntry).file(ok, fail));
      out.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns a batch at a time; an empty batch ends the folder.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const e of batch) await walk(e, `${prefix}${entry.name}/`);
      }
    }
  };
  const entries = Array.from(items)
    .map((i) => i.webkitGetAsEntry())
    .filter((e): e is FileSystemEntry => e !== null);
  for (const e of entries) await walk(e, "");
  return out;
}

function picked(list: FileList | null): Picked[] {
  return Array.from(list ?? []).map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/** `onPick`: the app's own file chooser (paths, no copy), in place of the page's file input. */
export function render(
  queue: Queue,
  onFiles: (files: Picked[]) => void,
  message: string | null,
  onPick: (() => void) | null,
): HTMLElement {
  const available = queue !== null && typeof queue === "object";
  const input = h("input", { type: "file", multiple: true, id: "upload-input", disabled: !available });
  const folder = h("input", { type: "file", webkitdirectory: true, id: "upload-folder", disabled: !available });
  input.addEventListener("change", () => onFiles(picked(input.files)));
  folder.addEventListener("change", () => onFiles(picked(folder.files)));
  const zone = h(
    "div",
    { class: available ? "dropzone" : "dropzone off", id: "dropzone" },
    h("p", {}, available ? "Drop files or folders here" : "Uploads are not available on this node"),
    onPick
      ? h("button", { type: "button", class: "button", id: "pick-files", disabled: !available, onclick: onPick }, "Choose files…")
      : h("label", { class: "button" }, "Choose files…", input),
    h("label", { class: "button" }, "Choose a folder…", folder),
  );
  if (available) {
    zone.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("over");
      if (ev.dataTransfer) void dropped(ev.dataTransfer.items).then(onFiles);
    });
  }
  let list: HTMLElement;
  if (queue === null) {
    list = h(
      "p",
      { class: "bad", id: "uploads-missing" },
      "This node's control API has no upload queue (GET /api/uploads answered 404): the upload queue is not part of this build yet.",
    );
  } else if (typeof queue === "string") {
    list = h("p", { class: "bad" }, queue);
  } else {
    const when_ms = (ms: number | null) => (ms ? when(Math.floor(ms / 1000)) : "—");
    const rows = [
      ...queue.packing.map((p) => [
        p.label,
        p.error ? `not queued: ${p.error}` : "packing",
        `${bytes(p.packed_bytes)} of ${bytes(p.input_bytes)}`,
        "—",
        "—",
      ]),
      // Only what this computer sent: relayed uploads are counted on the Status page.
      ...queue.entries
        .filter((e) => e.originated)
        .map((e) => [
          e.label ?? e.ih.slice(0, 12),
          e.state,
          bytes(e.size),
          when_ms(e.added_ms),
          e.receipted_ms ? `receipted ${when_ms(e.receipted_ms)}` : "waiting for the intake",
        ]),
    ];
    list = table(["Upload", "State", "Size", "Queued", "Receipt"], rows, "Nothing queued from this computer.");
    list.id = "upload-queue";
  }
  return h(
    "section",
    { class: "page", id: "uploads-page" },
    h("h2", {}, "Send files anonymously"),
    EXPLAIN.map((t) => h("p", { class: "small" }, t)),
    zone,
    message ? h("p", { class: "message", id: "upload-message" }, message) : null,
    h("h2", {}, "Queue"),
    typeof queue === "object" && queue !== null
      ? h(
          "p",
          { class: "small" },
          `${bytes(queue.used_bytes)} of ${bytes(queue.quota_bytes)} upload storage used; at most ${bytes(queue.max_size)} per upload.`,
          queue.last_refusal ? ` Last refused: ${queue.last_refusal}.` : "",
        )
      : null,
    list,
  );
}

/** The request body for `POST /api/uploads/files`: one multipart part per file, named by its path. */
export function form(files: Picked[]): FormData {
  const fd = new FormData();
  for (const f of files) fd.append("file", f.file, f.path);
  return fd;
}
