// The Firmware page in Debian's Chromium against the real server (SQLite): upload a signed image
// through the form, create and start a campaign, watch simulated devices update live, approve
// the manual wave. Screenshots go to artifacts/screenshots/firmware-*.png.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openPage, screenshot, signIn } from './browser.js';
import { staffToken } from './dashboard-fixtures.js';
import { SIGNING_KEYS, device, signedImage, uploadOk, HW } from './firmware-fixtures.js';
import { startServer, tempDir, type TestServer } from './harness.js';

const withChromium = hasChromium('firmware browser tests');

describe.skipIf(!withChromium)('firmware page in a browser', { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const dir = tempDir('kioskhub-fw-browser-');
  const files = tempDir('kioskhub-fw-files-');
  const shot = (name: string) => screenshot(page, `firmware-${name}`);
  let fleet: { id: string; key: string }[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: { FIRMWARE_SIGNING_KEYS: SIGNING_KEYS, FIRMWARE_DIR: dir.path, FIRMWARE_TICK_MS: '50' },
    });
    fleet = [];
    for (let i = 1; i <= 4; i++) fleet.push(await server.createMachine(`K0${i}`, { kind: 'kiosk' }));
    await uploadOk(server, signedImage('1.4.0'));
    await staffToken(server, 'fw@default.test', 'admin');
    browser = await launchChromium();
    page = await openPage(browser, { viewport: { width: 1280, height: 900 } });
    await signIn(page, server.url, 'fw@default.test');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    dir.remove();
    files.remove();
  });

  it('uploads a signed image through the form and refuses a bad signature', async () => {
    await page.getByRole('link', { name: 'Firmware' }).click();
    await page.getByRole('heading', { name: 'Firmware', level: 1 }).waitFor();
    const img = signedImage('1.5.0', { size: 300_000 });
    writeFileSync(join(files.path, 'fw.bin'), img.image);
    writeFileSync(join(files.path, 'manifest.json'), img.manifest);
    writeFileSync(join(files.path, 'manifest.sig'), img.signature + '\n');
    writeFileSync(join(files.path, 'bad.sig'), Buffer.alloc(64, 1).toString('base64'));
    const form = page.getByRole('form', { name: 'Upload firmware' });
    await form.getByLabel('Image').setInputFiles(join(files.path, 'fw.bin'));
    await form.getByLabel('Manifest (manifest.json)').setInputFiles(join(files.path, 'manifest.json'));
    await form.getByLabel('Signature (manifest.sig)').setInputFiles(join(files.path, 'bad.sig'));
    await form.getByLabel('Key id').fill('k1');
    await form.getByRole('button', { name: 'Upload' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toContain('VALIDATION_FAILED');
    await shot('upload-refused');
    await form.getByLabel('Signature (manifest.sig)').setInputFiles(join(files.path, 'manifest.sig'));
    await form.getByRole('button', { name: 'Upload' }).click();
    await form.getByText('Stored kiosk-fw 1.5.0').waitFor();
    await page
      .getByRole('region', { name: 'Firmware images' })
      .getByRole('cell', { name: '1.5.0' })
      .waitFor();
    await shot('images');
  });

  it('creates and starts a campaign; devices update live; the manual wave waits for approval', async () => {
    const form = page.getByRole('form', { name: 'New campaign' });
    await form.getByLabel('Firmware').selectOption({ label: 'kiosk-fw 1.5.0' });
    await form.getByLabel('Hardware model').selectOption(HW);
    await form.getByLabel('Name').fill('Spring update');
    await form.getByLabel('Machines (ids, comma-separated)').fill(fleet.map((m) => m.id).join(', '));
    await form.getByLabel('Waves (percent:soak min:approval)').fill('25:0:auto, 100:0:manual');
    await form.getByRole('button', { name: 'Create campaign' }).click();
    await page.getByRole('heading', { name: /Spring update/ }).waitFor();
    await shot('campaign-draft');
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('tr[data-state="NOTIFIED"]').first().waitFor();
    const devices = fleet.map((m) => device(server, m));
    // Devices run on their own; the page follows by live events only.
    let running = true;
    const loop = (async () => {
      while (running) {
        await Promise.all(devices.map((d) => d.runOnce().catch(() => 'none')));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await page.getByRole('button', { name: 'Approve next wave' }).waitFor();
      await expect.poll(() => page.locator('tr[data-state="SUCCEEDED"]').count()).toBe(1);
      await shot('campaign-awaiting-approval');
      await page.getByRole('button', { name: 'Approve next wave' }).click();
      await expect
        .poll(() => page.locator('tr[data-state="SUCCEEDED"]').count(), { timeout: 20_000 })
        .toBe(4);
      await page.locator('.page-head [data-status="COMPLETED"]').waitFor();
      await shot('campaign-completed');
    } finally {
      running = false;
      await loop;
    }
    await page.getByRole('link', { name: 'Firmware' }).first().click();
    await page.getByRole('link', { name: 'Spring update' }).waitFor();
    await shot('list');
  });
});
