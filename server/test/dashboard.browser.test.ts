// The operator dashboard in Debian's Chromium, driven by playwright-core, against the real
// server (SQLite; the API tests cover PostgreSQL) and a simulated machine. Each test leaves a
// screenshot in artifacts/screenshots/. Prints (does not assert) webhook → screen latency.
import { readFileSync } from 'node:fs';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hasChromium,
  launchChromium,
  markPage,
  notReloaded,
  openPage,
  screenshot,
  signIn,
} from './browser.js';
import { orderCsvHeader } from '../src/modules/dashboard/csv.js';
import { PASSWORD, staffToken } from './dashboard-fixtures.js';
import { ADMIN_TOKEN, qrCredited, startServer, type TestServer } from './harness.js';

const withChromium = hasChromium('dashboard browser tests');

describe.skipIf(!withChromium)('dashboard in a browser', { timeout: 90_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let m01: { id: string; key: string; qrCodeId: string };
  let m02: { id: string; key: string; qrCodeId: string };
  let machine: SimulatedMachine | undefined;
  const shot = (name: string, p: Page = page) => screenshot(p, `dashboard-${name}`);
  const row = (attr: string, id: string) => page.locator(`tr[${attr}="${id}"]`);
  // In-page scripts are strings: this file is type-checked for Node, without the DOM.
  /** Records, in the page, when each order row first appears (Date.now(), same clock as this test). */
  const ROW_WATCH = `(() => {
    const seen = (window.__seen = new Map());
    const scan = () => document.querySelectorAll('tr[data-order-id]').forEach((tr) => seen.has(tr.dataset.orderId) || seen.set(tr.dataset.orderId, Date.now()));
    new MutationObserver(scan).observe(document.body, { subtree: true, childList: true });
    scan();
  })()`;
  const seenAt = (orderId: string) =>
    page.evaluate<number>(`window.__seen.get(${JSON.stringify(orderId)}) ?? 0`);

  beforeAll(async () => {
    server = await startServer({ env: { DASHBOARD_SWEEP_MS: '300', MACHINE_OFFLINE_ALERT_MS: '500' } });
    m01 = await server.createVendingMachine('M01', 2000);
    m02 = await server.createVendingMachine('M02', 2000);
    await staffToken(server, 'ops@default.test', 'admin');
    browser = await launchChromium();
    page = await openPage(browser, { acceptDownloads: true });
  });
  afterAll(async () => {
    machine?.stop();
    await browser?.close();
    await server?.close();
  });

  it('signs in with email and password, stays signed in across a reload, signs out', async () => {
    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await shot('sign-in');
    await page.getByLabel('Email', { exact: true }).fill('ops@default.test');
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('UNAUTHORIZED');
    await signIn(page, server.url, 'ops@default.test');
    await page.reload();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    // Sign out ends this session on the server too: a copy of the token stops working.
    const stored = () => page.evaluate<string | null>(`localStorage.getItem('kioskhub.token')`);
    const signedOut = (await stored())!;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect(await stored()).toBeNull();
    expect((await server.request('GET', '/v1/auth/me', { token: signedOut })).status).toBe(401);
    // Sign out everywhere (the account menu) ends every session of the user.
    await signIn(page, server.url, 'ops@default.test');
    const other = (
      await server.request('POST', '/v1/auth/login', {
        token: null,
        body: { email: 'ops@default.test', password: PASSWORD },
      })
    ).body.token as string;
    await page.locator('details.account > summary').click();
    await shot('account-menu');
    await page.getByRole('button', { name: 'Sign out everywhere' }).click();
    await page.getByLabel('Admin token').waitFor();
    expect((await server.request('GET', '/v1/auth/me', { token: other })).status).toBe(401);
    // The server out of reach: the browser forgets the token all the same, and says so.
    await signIn(page, server.url, 'ops@default.test');
    await page.route('**/v1/auth/session', (route) => route.abort());
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('the server could not be reached').waitFor();
    await shot('signed-out-offline');
    expect(await stored()).toBeNull();
    await page.unroute('**/v1/auth/session');
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.getByText('Admin token (all tenants)').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, server.url, 'ops@default.test');
    await expect
      .poll(() =>
        page
          .getByRole('status')
          .filter({ hasText: /^Live$/ })
          .count(),
      )
      .toBe(1);
    await shot('fleet');
  });

  it('turns a machine online on screen when the simulator connects, without a reload', async () => {
    await expect
      .poll(() => row('data-machine-id', 'M01').locator('[data-status]').getAttribute('data-status'))
      .toBe('OFFLINE');
    await markPage(page);
    machine = new SimulatedMachine({
      url: server.url,
      machineId: 'M01',
      key: m01.key,
      heartbeatMs: 1_000,
      dispenseDelayMs: 200,
      firmware: 'sim-1.4.2',
    });
    await machine.start();
    await expect
      .poll(() => row('data-machine-id', 'M01').locator('[data-status]').getAttribute('data-status'), {
        timeout: 10_000,
      })
      .toBe('IDLE');
    expect(await notReloaded(page)).toBe(true);
    await expect.poll(() => page.locator('.summary').textContent()).toContain('1 of 2 machines online');
    await shot('machine-online');
  });

  it('shows a signed webhook’s order in the live feed and moves it to completed without a reload', async () => {
    await page.getByRole('link', { name: 'Orders', exact: true }).click();
    await page.getByRole('heading', { name: 'Orders' }).waitFor();
    await markPage(page);
    await page.evaluate(ROW_WATCH);
    const latencies: number[] = [];
    let lastOrder = '';
    for (let i = 0; i < 6; i++) {
      const sent = Date.now();
      const res = await server.postWebhook(qrCredited(m01.qrCodeId, 2000));
      lastOrder = res.body.orderId as string;
      await expect.poll(() => seenAt(lastOrder), { timeout: 10_000, interval: 5 }).not.toBe(0);
      const shownAt = await seenAt(lastOrder);
      latencies.push(shownAt - sent);
      await expect
        .poll(() => row('data-order-id', lastOrder).getAttribute('data-status'), { timeout: 10_000 })
        .toBe('COMPLETED');
    }
    expect(await notReloaded(page)).toBe(true);
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `MEASURED webhook → order row on screen (ms): ${latencies.join(', ')}; median ${sorted[Math.floor(sorted.length / 2)]}, max ${sorted.at(-1)}`,
    );
    await shot('order-completed');

    await row('data-order-id', lastOrder).getByRole('link').first().click();
    const timeline = page.getByRole('list', { name: 'Order timeline, oldest first' });
    await expect
      .poll(() => timeline.locator('li').allTextContents())
      .toEqual([
        expect.stringMatching(/Payment received.*by provider:razorpay/),
        expect.stringMatching(/Command sent.*by machine:M01/),
        expect.stringMatching(/Accepted by machine.*by machine:M01/),
        expect.stringMatching(/Done: dispensed.*by machine:M01/),
      ]);
    const payments = page.getByRole('table', { name: 'Payments of this order' });
    await expect
      .poll(() => payments.locator('tbody tr').allTextContents())
      .toEqual([expect.stringMatching(/UPI QR.*razorpay.*Succeeded.*₹20\.00.*₹20\.00.*—.*pay_/)]);
    await shot('order-timeline');
  });

  it('resolves a Needs review order (amount mismatch → refund due)', async () => {
    const orderId = (await server.postWebhook(qrCredited(m01.qrCodeId, 1500))).body.orderId as string;
    await page.getByRole('link', { name: 'Needs review' }).click();
    const item = row('data-order-id', orderId);
    await expect.poll(() => item.textContent(), { timeout: 10_000 }).toContain('Amount mismatch');
    await item.getByRole('button', { name: 'Refund due' }).click();
    await item.getByLabel('Note (optional)').fill('customer paid ₹15 for a ₹20 item');
    await shot('needs-review');
    await item.getByRole('button', { name: 'Confirm: refund due' }).click();
    await expect.poll(() => item.count()).toBe(0);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
    await page.getByText('Nothing needs review.').waitFor();
    await shot('needs-review-resolved');

    // The order page lists the refund that is now due; staff mark it handed back.
    await page.goto(`${server.url}/orders/${orderId}`);
    const refunds = page.getByRole('table', { name: 'Refunds of this order' });
    await expect
      .poll(() => refunds.locator('tbody tr').allTextContents(), { timeout: 10_000 })
      .toEqual([expect.stringMatching(/₹15\.00.*Handed back by staff.*Due.*customer paid ₹15/)]);
    await refunds.getByRole('button', { name: 'Handed back' }).click();
    await refunds.getByRole('button', { name: 'Confirm: the money was handed back' }).click();
    await expect
      .poll(() => refunds.locator('tbody tr').allTextContents())
      .toEqual([expect.stringMatching(/₹15\.00.*Handed back by staff.*Succeeded/)]);
    await shot('order-refund-handed-back');
    const [payment] = (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items;
    const [refund] = (await server.request('GET', `/v1/payments/${payment.id}/refunds`)).body.items;
    expect(refund).toMatchObject({ status: 'SUCCEEDED', destination: 'refund_due', amountMinor: 1500 });
  });

  it('exports exactly the filtered orders as CSV, by a one-time link straight to disk', async () => {
    await server.postWebhook(qrCredited(m02.qrCodeId, 2000)); // M02 is not connected: stays PAID
    await page.getByRole('link', { name: 'Orders', exact: true }).click();
    await page.getByLabel('Machine').selectOption('M01');
    await page.getByLabel('Status').selectOption('COMPLETED');
    // An empty table is not "every row COMPLETED": wait for the six filtered rows themselves.
    await expect
      .poll(
        () =>
          page
            .locator('tr[data-order-id]')
            .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status'))),
        { timeout: 10_000 },
      )
      .toEqual(Array(6).fill('COMPLETED'));
    const shown = await page
      .locator('tr[data-order-id]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-order-id')));
    expect(shown).toHaveLength(6);
    expect(page.url()).toContain('machine=M01');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^orders-.*\.csv$/);
    // The browser itself fetched the file (no bearer header): the link the page asked for.
    expect(download.url()).toMatch(/\/v1\/orders\/export\.csv\?download=[A-Za-z0-9_-]{43}$/);
    await page.getByRole('button', { name: 'Export CSV' }).waitFor();
    const lines = readFileSync((await download.path())!, 'utf8')
      .trimEnd()
      .split('\r\n');
    expect(lines[0]).toBe(orderCsvHeader());
    expect(lines.slice(1).map((l) => l.split(',')[0])).toEqual(shown);
    expect(lines.slice(1).every((l) => l.includes(',COMPLETED,,M01,'))).toBe(true);
    await shot('csv-export');
  });

  it('shows another tenant’s staff none of it', async () => {
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other Co' } })).status,
    ).toBe(201);
    await staffToken(server, 'staff@other.test', 'staff', 'other');
    const p = await openPage(browser);
    try {
      await signIn(p, server.url, 'staff@other.test');
      await p.getByText('No machines match.').waitFor();
      expect(await p.locator('tr[data-machine-id]').count()).toBe(0);
      await shot('other-tenant-fleet', p);
      await p.getByRole('link', { name: 'Orders', exact: true }).click();
      await p.getByText('No orders match.').waitFor();
      await p.getByRole('link', { name: 'Needs review' }).click();
      await p.getByText('Nothing needs review.').waitFor();
      await p.goto(`${server.url}/machines/M01`);
      await expect.poll(() => p.getByRole('alert').textContent()).toContain('does not exist');
      await shot('other-tenant-machine', p);
      expect(await p.getByTestId('alert-count').textContent()).toBe('0');
    } finally {
      await p.context().close();
    }
  });

  it('renders every screen on a laptop and on a phone (screenshots to look at)', async () => {
    await page.goto(`${server.url}/machines/M01`);
    await page.getByRole('img', { name: 'Payment QR code of machine M01' }).waitFor();
    await shot('machine');
    for (const [path, name, heading] of [
      ['/charts', 'charts', 'Charts'],
      ['/cash', 'cash-printing', 'Cash & printing'],
      ['/catalog', 'catalog', 'Sites & products'],
    ] as const) {
      await page.goto(`${server.url}${path}`);
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
      await page.waitForLoadState('networkidle');
      await shot(name);
    }
    // M01 goes away: after MACHINE_OFFLINE_ALERT_MS the header badge counts its alert, and one click acknowledges it.
    machine?.stop();
    machine = undefined;
    await page.getByRole('link', { name: /^Alerts/ }).click();
    await expect.poll(() => page.getByTestId('alert-count').textContent(), { timeout: 30_000 }).toBe('1');
    const alert = page.locator('tr[data-alert-kind="MACHINE_OFFLINE"]');
    await expect.poll(() => alert.textContent()).toContain('Machine M01 has been offline since');
    await shot('alerts');
    await alert.getByRole('button', { name: /^Acknowledge/ }).click();
    await expect.poll(() => page.getByTestId('alert-count').textContent()).toBe('0');
    await page.getByText('No open alerts.').waitFor();
    const p = await openPage(browser, {
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      await signIn(p, server.url, 'ops@default.test');
      await shot('phone-fleet', p);
      await p.goto(`${server.url}/orders`);
      await p.locator('tr[data-order-id]').first().waitFor();
      await shot('phone-orders', p);
    } finally {
      await p.context().close();
    }
  });
});
