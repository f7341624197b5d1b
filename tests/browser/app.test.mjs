// The tray app's own window, through tauri-driver and WebKitWebDriver (the W3C WebDriver
// protocol, spoken here with fetch): the window opens on the status page and shows the
// release its in-process node serves. Run by src-tauri/tests/window.rs under Xvfb with
// DRIVER (tauri-driver's address), APP (the binary), DATA_DIR, SCREENSHOT_DIR, and
// X_DISPLAY / X_AUTHORITY of the X server the app draws on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const driver = process.env.DRIVER;
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';

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

test('the app window shows the status page of its node', async () => {
  const session = await wd('POST', '/session', {
    capabilities: {
      alwaysMatch: {
        'tauri:options': { application: process.env.APP, args: ['--data-dir', process.env.DATA_DIR] },
      },
    },
  });
  const sid = session.sessionId;
  try {
    const deadline = Date.now() + 90_000;
    let text = '';
    while (Date.now() < deadline) {
      const found = await wd('POST', `/session/${sid}/elements`, { using: 'css selector', value: '#served-version' });
      if (found.length > 0) {
        const id = Object.values(found[0])[0];
        text = await wd('GET', `/session/${sid}/element/${id}/text`);
        if (text === 'v1') break;
      }
      await new Promise((ok) => setTimeout(ok, 500));
    }
    assert.equal(text, 'v1', 'the window shows the served release');
    const state = await wd('POST', `/session/${sid}/element`, { using: 'css selector', value: '#state' });
    const summary = await wd('GET', `/session/${sid}/element/${Object.values(state)[0]}/text`);
    assert.match(summary, /Serving v1/);
    mkdirSync(shots, { recursive: true });
    // The screen as a person sees it: ImageMagick reads the X server. (WebDriver's own
    // screenshot kept showing the first frame under Xvfb.)
    execFileSync('import', ['-window', 'root', join(shots, 'app-window.png')], {
      env: { ...process.env, DISPLAY: process.env.X_DISPLAY, XAUTHORITY: process.env.X_AUTHORITY },
    });
  } finally {
    await wd('DELETE', `/session/${sid}`).catch(() => {});
  }
});
