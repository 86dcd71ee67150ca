// The cash page in Debian's Chromium (playwright-core) against the real server (SQLite): a
// cashier resolves unallocated cash from the dashboard. Leaves a screenshot in
// artifacts/screenshots/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, staffToken } from './dashboard-fixtures.js';
import { startServer, type TestServer } from './harness.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = `${ROOT}artifacts/screenshots`;
const hasChromium = existsSync(CHROMIUM);
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.skipIf(!hasChromium)('cash page in a browser', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!existsSync(`${ROOT}dashboard/dist/index.html`)) {
      execFileSync('npm', ['run', 'build', '-w', 'dashboard'], { cwd: ROOT, stdio: 'inherit' });
    }
    mkdirSync(SHOTS, { recursive: true });
    server = await startServer();
    await server.request('POST', '/v1/sites', { body: { id: 'cafe', name: 'Cafe', currency: 'UGX' } });
    const kiosk = await server.createMachine('CAFE-KIOSK', { kind: 'kiosk', siteId: 'cafe' });
    for (const [orderNumber, amountAdded] of [
      ['GHOST-1', 5000],
      ['GHOST-2', 10000],
    ] as const) {
      const res = await server.request('POST', '/api/cash-payment/update', {
        ...key(kiosk.key),
        body: { orderNumber, amountAdded },
      });
      expect(res.status).toBe(404);
    }
    await staffToken(server, 'cashier@default.test', 'staff');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(15_000);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a cashier keeps one item with a note; the page shows the resolution, the other stays open', async () => {
    await page.goto(`${server.url}/`);
    await page.getByLabel('Email', { exact: true }).fill('cashier@default.test');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Cash & printing' }).click();
    const row = page.getByRole('row', { name: /GHOST-1/ });
    await row.getByRole('button', { name: 'Keep' }).click();
    await expect.poll(() => row.getByRole('alert').textContent()).toContain('Write a note');
    await row.getByLabel('Note').fill('Nobody came back for it');
    await row.getByRole('button', { name: 'Keep' }).click();
    await row.getByText('Nobody came back for it').waitFor();
    expect(await row.textContent()).toContain('Kept by');
    expect(await row.textContent()).toContain('5000 UGX');
    const other = page.getByRole('row', { name: /GHOST-2/ });
    expect(await other.getByRole('button', { name: 'Apply to order' }).isVisible()).toBe(true);
    await page.screenshot({ path: `${SHOTS}/dashboard-cash-unallocated.png`, fullPage: true });

    const items = (await server.request('GET', '/v1/cash/unallocated')).body.items;
    expect(items.find((u: { orderNumber: string }) => u.orderNumber === 'GHOST-1')).toMatchObject({
      status: 'KEPT',
    });
    expect(items.find((u: { orderNumber: string }) => u.orderNumber === 'GHOST-2')).toMatchObject({
      status: 'OPEN',
    });
  });
});
