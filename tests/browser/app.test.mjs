// The tray app's own window, through tauri-driver and WebKitWebDriver (the W3C WebDriver
// protocol, spoken here with fetch), and what the app does on the desktop around it:
// xdg-open, notifications (dunst), the XDG autostart entry, a second start, and a new
// version through the swarm with "Restart to update". Run by src-tauri/tests/window.rs
// under Xvfb with DRIVER (tauri-driver's address), APP (a copy of the binary, which the
// update replaces), DATA_DIR, SCREENSHOT_DIR, X_DISPLAY / X_AUTHORITY of the X server
// the app draws on, BUS (the session bus), APP_HOME (the app's home folder), BROWSER,
// OPENED (where the default browser notes the URLs it gets), NOTES (where dunst notes the
// notifications it shows), SEED_API / SEED_TOKEN (the peer's control API), V2_DIR (site
// release 2) and SOFTWARE_DIR (swarmsite 0.2.0), both published, for the peer to take.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';

const driver = process.env.DRIVER;
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';
const app = process.env.APP;
const desktop = {
  ...process.env,
  DISPLAY: process.env.X_DISPLAY,
  XAUTHORITY: process.env.X_AUTHORITY,
  DBUS_SESSION_BUS_ADDRESS: process.env.BUS,
  HOME: process.env.APP_HOME,
};

async function wd(method, path, body) {
  const r = await fetch(driver + path, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json.value;
}

async function until(what, secs, fn) {
  const deadline = Date.now() + secs * 1000;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((ok) => setTimeout(ok, 300));
  }
  throw new Error(`timed out after ${secs} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

const read = (path) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
/** xdotool on the app's display (the file chooser is a native window). */
const xdo = (...args) => {
  const r = spawnSync('xdotool', args, { env: desktop, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : '';
};

/** Hands a published folder to the peer (the publisher's `--push`). */
async function publish(dir) {
  const r = await fetch(`${process.env.SEED_API}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${process.env.SEED_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ dir }),
  });
  assert.equal(r.status, 200, await r.text());
}

test('the app: window, browser, notifications, autostart, one instance, update', async () => {
  const session = await wd('POST', '/session', {
    capabilities: {
      alwaysMatch: {
        'tauri:options': { application: app, args: ['--data-dir', process.env.DATA_DIR] },
      },
    },
  });
  const sid = session.sessionId;
  const s = (path) => `/session/${sid}${path}`;
  const find = async (css) => {
    const found = await wd('POST', s('/elements'), { using: 'css selector', value: css });
    return found.length > 0 ? Object.values(found[0])[0] : null;
  };
  // The page re-renders on every event: an element found may be gone a moment later
  // ("stale element reference"), so look it up again.
  const stale = (e) => {
    if (/stale element/.test(String(e))) return null;
    throw e;
  };
  const text = async (css) => {
    const id = await find(css);
    return id ? wd('GET', s(`/element/${id}/text`)).catch(stale) : null;
  };
  const click = (css) =>
    until(css, 30, async () => {
      const id = await find(css);
      return id ? wd('POST', s(`/element/${id}/click`), {}).then(() => true, stale) : false;
    });
  const js = (script) => wd('POST', s('/execute/sync'), { script, args: [] });
  try {
    // 1. The window opens on the status page and shows the release the node serves.
    await until('v1 in the window', 90, async () => (await text('#served-version')) === 'v1');
    assert.match(await text('#state'), /Serving v1/);

    // 2. "Open site" goes to the default browser through xdg-open.
    const url = await until('the local URL', 15, () => text('#local-url'));
    await click('#open-site');
    const opened = await until('the browser to be asked', 30, () => read(process.env.OPENED).trim());
    assert.equal(opened, url);

    // 3. The release served is told by a real notification server; the next one comes
    // live into the window (its notification waits out the one-a-minute limit).
    await until('the "new version" notification', 30, () =>
      read(process.env.NOTES).includes('swarmsite|Now serving version 1|'),
    );
    await publish(process.env.V2_DIR);
    await until('v2 in the window', 60, async () => (await text('#served-version')) === 'v2');

    // 4. Start at login writes the XDG autostart entry (starting hidden); off removes it.
    const entry = join(process.env.APP_HOME, '.config/autostart/swarmsite-app.desktop');
    await click('a[data-page="settings"]');
    await click('#autostart');
    await until('the autostart entry', 15, () => existsSync(entry));
    assert.match(read(entry), new RegExp(`^Exec=${app} --hidden$`, 'm'));
    await until('the settings page to say so', 15, async () => /will start when you log in/.test((await text('#settings-message')) ?? ''));
    await click('#autostart');
    await until('the autostart entry removed', 15, () => !existsSync(entry));

    // 5. A second start in the same session only brings the first one's window back
    // (on its status page) and ends.
    await click('a[data-page="uploads"]');
    await until('the uploads page', 15, async () => (await js('return location.hash')) === '#uploads');
    const started = Date.now();
    const second = spawnSync(app, ['--data-dir', process.env.DATA_DIR], { env: desktop, timeout: 30_000 });
    assert.equal(second.status, 0, `second start: ${second.error ?? ''} signal ${second.signal} ${second.stderr}`);
    assert.ok(Date.now() - started < 20_000, 'the second start ended at once');
    await until('the first window back on its status page', 15, async () => (await js('return location.hash')) === '#status');

    // 6. "Upload files…": the tray menu opens the window at #uploads/pick (as here); the
    // desktop's file chooser opens, a person types a file's path into it, and the file
    // is packed and queued (read where it is, by path).
    const leak = join(dirname(process.env.DATA_DIR), 'leak-from-the-app.txt');
    writeFileSync(leak, 'a document for the intake, chosen in the app\n');
    await js('location.hash = "uploads/pick"');
    const chooser = await until('the file chooser', 30, () => xdo('search', '--onlyvisible', '--name', '^Upload files$').split('\n')[0]);
    // No window manager here: focus it directly, then type as a person would.
    xdo('windowfocus', '--sync', chooser);
    xdo('key', '--delay', '100', 'ctrl+l');
    xdo('type', '--delay', '20', leak);
    // Open is enabled once the chooser has checked the typed path: press Return until
    // it takes it and closes.
    await until('the file chooser to take the path', 15, () => {
      if (!xdo('search', '--onlyvisible', '--name', '^Upload files$')) return true;
      xdo('key', 'Return');
      return false;
    });
    await until('the chosen file queued', 30, async () => {
      const said = (await text('#upload-message')) ?? '';
      return said === '1 file(s) queued.' || (said.startsWith('Not queued') ? { said } : false);
    }).then((r) => assert.equal(r, true, JSON.stringify(r)));
    await until('the chosen file in the queue', 30, async () => /leak-from-the-app\.txt/.test((await text('#upload-queue')) ?? ''));
    assert.equal(await js('return location.hash'), '#uploads');
    await click('a[data-page="status"]');

    // 7. swarmsite 0.2.0 comes through the swarm: downloaded in the background, told by a
    // notification, offered in the window; the user chooses "Restart to update".
    await publish(process.env.SOFTWARE_DIR);
    await until('the update offered', 60, () => find('#install-update'));
    assert.equal(await text('#update-headline'), 'swarmsite 0.2.0 is ready to install');
    assert.match(await text('#software'), /plain binary .*swarmsite-app, takes app_bin packages/);
    await until('the "update ready" notification', 30, () =>
      read(process.env.NOTES).includes('swarmsite|swarmsite 0.2.0 is ready to install|'),
    );
    mkdirSync(shots, { recursive: true });
    // The screen as a person sees it: ImageMagick reads the X server. (WebDriver's own
    // screenshot kept showing the first frame under Xvfb.)
    execFileSync('import', ['-window', 'root', join(shots, 'app-window.png')], { env: desktop });
    await click('#install-update');
    // The app installs it over its binary, stops its node, and starts the new binary
    // with its arguments (the stand-in notes them and ends).
    const restarted = join(dirname(app), 'restarted-with');
    const args = await until('the restart into 0.2.0', 60, () => read(restarted));
    assert.match(args, /--data-dir/);
  } finally {
    await wd('DELETE', `/session/${sid}`).catch(() => {});
  }
});
