import { h, bytes, when, table } from "../dom";

/** One entry of the node's upload queue, as `GET /api/uploads` lists it. */
export interface UploadEntry {
  id: string;
  state: string;
  bytes?: number;
  files?: number;
  created?: number;
  receipt?: unknown;
  error?: string | null;
  [more: string]: unknown;
}

/** The queue, or why there is none: `null` when this node has no upload queue at all. */
export type Queue = UploadEntry[] | null | string;

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

export function render(queue: Queue, onFiles: (files: Picked[]) => void, message: string | null): HTMLElement {
  const available = Array.isArray(queue);
  const input = h("input", { type: "file", multiple: true, id: "upload-input", disabled: !available });
  const folder = h("input", { type: "file", webkitdirectory: true, id: "upload-folder", disabled: !available });
  input.addEventListener("change", () => onFiles(picked(input.files)));
  folder.addEventListener("change", () => onFiles(picked(folder.files)));
  const zone = h(
    "div",
    { class: available ? "dropzone" : "dropzone off", id: "dropzone" },
    h("p", {}, available ? "Drop files or folders here" : "Uploads are not available on this node"),
    h("label", { class: "button" }, "Choose files…", input),
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
    list = table(
      ["Upload", "State", "Size", "Queued", "Receipt"],
      queue.map((u) => [
        u.id.slice(0, 12),
        u.error ? `${u.state}: ${u.error}` : u.state,
        u.bytes !== undefined ? bytes(u.bytes) : "—",
        when(u.created),
        u.receipt ? (typeof u.receipt === "string" ? u.receipt : JSON.stringify(u.receipt)) : "—",
      ]),
      "Nothing queued.",
    );
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
    list,
  );
}

/** The request body for `POST /api/uploads`: one multipart part per file, named by its path. */
export function form(files: Picked[]): FormData {
  const fd = new FormData();
  for (const f of files) fd.append("file", f.file, f.path);
  return fd;
}
