// The dashboard (ui/, as compiled into the node) in Debian's headless Chromium against
// a real node on loopback. Run by tests/dashboard.rs, which starts the node (running
// swarmsite "0.1.0", with 0.2.0 downloaded and ready to install) and prepares a second
// release (V2_DIR) and a signed blacklist (BLACKLIST_DIR) for the page to see arrive.
// DASHBOARD = the control API's address, TOKEN its token; screenshots of every page go
// to SCREENSHOT_DIR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.DASHBOARD;
const token = process.env.TOKEN;
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';
mkdirSync(shots, { recursive: true });

async function publish(dir) {
  const r = await fetch(`${base}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ dir }),
  });
  assert.equal(r.status, 200, await r.text());
}

async function withPage(fn) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
    await fn(page);
  } finally {
    await browser.close();
  }
}

test('a wrong token gets no data', async () => {
  const r = await fetch(`${base}/api/status`, { headers: { Authorization: 'Bearer 00' } });
  assert.equal(r.status, 401);
  await withPage(async (page) => {
    const seen = [];
    page.on('response', (res) => {
      if (res.url().includes('/api/')) seen.push(res.status());
    });
    await page.goto(`${base}/#token=0123456789abcdef`);
    await page.waitForSelector('#login-error', { timeout: 15_000 });
    assert.equal(await page.locator('#served-version').count(), 0);
    assert.ok(seen.length > 0 && seen.every((s) => s === 401), `API answers: ${seen}`);
    assert.ok(!page.url().includes('token='), 'the token left the address bar');
  });
});

test('status, live updates, blacklist, uploads and settings', async () => {
  await withPage(async (page) => {
    await page.goto(`${base}/#token=${token}`);
    assert.ok(!page.url().includes(token), 'the token is not kept in the URL');
    await page.waitForSelector('#served-version:has-text("v1")', { timeout: 15_000 });
    await page.waitForSelector('#state[data-state="serving"]', { timeout: 15_000 });
    await page.waitForSelector('footer:has-text("Live")', { timeout: 15_000 });
    // The new version of swarmsite: running and newest versions, notes, the button.
    await page.waitForSelector('#update-banner[data-phase="ready"]', { timeout: 15_000 });
    assert.equal(await page.textContent('#update-headline'), 'swarmsite 0.2.0 is ready to install');
    assert.match(await page.textContent('#update-versions'), /runs 0\.1\.0; the newest release is 0\.2\.0/);
    assert.match(await page.textContent('#update-notes'), /Faster sync on slow links/);
    assert.equal(await page.locator('#install-update').count(), 1);
    await page.screenshot({ path: join(shots, 'status.png'), fullPage: true });

    // A new release arrives while the page is open: it updates without a reload.
    await page.evaluate(() => { window.__sameDocument = true; });
    await publish(process.env.V2_DIR);
    await page.waitForSelector('#served-version:has-text("v2")', { timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');

    // Pause and resume from the header.
    await page.click('#pause');
    await page.waitForSelector('#sharing:has-text("paused")', { timeout: 15_000 });
    await page.click('#pause');
    await page.waitForSelector('#sharing:has-text("on")', { timeout: 15_000 });

    // A signed blacklist shows on the Peers & blacklist page as it arrives.
    await page.click('a[data-page="peers"]');
    await publish(process.env.BLACKLIST_DIR);
    await page.waitForSelector('#blacklist:has-text("192.0.2.0/24")', { timeout: 30_000 });
    assert.match(await page.textContent('#blacklist'), /Version 1, 1 entries/);
    await page.waitForSelector('#blacklist:has-text("in force in BitTorrent too")', { timeout: 30_000 });
    await page.screenshot({ path: join(shots, 'peers.png'), fullPage: true });

    // Uploads: a file set on the drop zone's input is packed and shows in the queue.
    await page.click('a[data-page="uploads"]');
    await page.waitForSelector('#uploads-page');
    await page.waitForSelector('#upload-input:not([disabled])', { state: 'attached', timeout: 30_000 });
    assert.equal(await page.locator('#uploads-missing').count(), 0);
    const file = join(shots, 'leak.txt');
    writeFileSync(file, 'a document for the intake\n');
    await page.setInputFiles('#upload-input', file);
    await page.waitForSelector('#upload-queue tbody tr', { timeout: 30_000 });
    assert.match(await page.textContent('#upload-queue'), /leak\.txt/);
    await page.screenshot({ path: join(shots, 'uploads.png'), fullPage: true });

    // Settings: saved through the API and read back.
    await page.click('a[data-page="settings"]');
    await page.waitForSelector('#settings-form');
    await page.fill('input[name="upload_limit"]', '250000');
    await page.click('#settings-form button[type="submit"]');
    await page.waitForSelector('#settings-message:has-text("Saved")', { timeout: 15_000 });
    const r = await fetch(`${base}/api/settings`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal((await r.json()).settings.upload_limit, 250000);
    // The documents quota applies at once.
    await page.fill('#quota', '1');
    await page.click('#quota-form button[type="submit"]');
    await page.waitForSelector('#settings-message:has-text("Storage quota set")', { timeout: 15_000 });
    const st = await fetch(`${base}/api/status`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal((await st.json()).documents.quota, 1024 ** 3);
    await page.screenshot({ path: join(shots, 'settings.png'), fullPage: true });

    // Last (the node then wants to restart): "Restart to update" installs 0.2.0.
    await page.click('a[data-page="status"]');
    await page.click('#install-update');
    await page.waitForSelector('#update-message:has-text("0.2.0 is installed")', { timeout: 30_000 });
    await page.waitForSelector('#update-banner[data-phase="restarting"]', { timeout: 15_000 });
  });
});
