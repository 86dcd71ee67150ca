// The cash page in Debian's Chromium (playwright-core) against the real server (SQLite): a
// cashier resolves unallocated cash from the dashboard. Leaves a screenshot in
// artifacts/screenshots/.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openPage, screenshot, signIn } from './browser.js';
import { staffToken } from './dashboard-fixtures.js';
import { startServer, type TestServer } from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

const withChromium = hasChromium('cash page browser tests');

describe.skipIf(!withChromium)('cash page in a browser', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
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
    browser = await launchChromium();
    page = await openPage(browser, { viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a cashier keeps one item with a note; the page shows the resolution, the other stays open', async () => {
    await signIn(page, server.url, 'cashier@default.test');
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
    await screenshot(page, 'dashboard-cash-unallocated');

    const items = (await server.request('GET', '/v1/cash/unallocated')).body.items;
    expect(items.find((u: { orderNumber: string }) => u.orderNumber === 'GHOST-1')).toMatchObject({
      status: 'KEPT',
    });
    expect(items.find((u: { orderNumber: string }) => u.orderNumber === 'GHOST-2')).toMatchObject({
      status: 'OPEN',
    });
  });
});
