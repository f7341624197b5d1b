// Opens the site served by a node in Debian's headless Chromium, follows a link, and
// checks the page text; saves a screenshot. SITE_URL names the node, SCREENSHOT_DIR
// where the picture goes. Run by tests/browser.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.SITE_URL;
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';

test('a browser reads the site from a node and follows a link', async () => {
  assert.ok(url, 'SITE_URL is set');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const response = await page.goto(url, { timeout: 30_000 });
    assert.equal(response.status(), 200);
    assert.match(await page.title(), /Demo Leaks — release 1/);
    assert.match(await page.textContent('main'), /checked against the\s+publisher's signature/);
    await page.click('text=About this archive');
    await page.waitForURL(/about\.html$/);
    assert.match(await page.textContent('h1'), /About this archive/);
    mkdirSync(shots, { recursive: true });
    const file = join(shots, 'about.png');
    await page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot: ${file}`);
  } finally {
    await browser.close();
  }
});
