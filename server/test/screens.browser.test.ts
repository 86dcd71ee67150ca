// The pages the server serves, driven in a real browser (Debian's Chromium through
// playwright-core; no browser is ever downloaded): the customer cash screen and the kitchen
// display, against the real server, database and sockets. Screenshots of every state go to
// artifacts/screenshots/ for a person to look at.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, markPage, notReloaded, openPage, screenshot } from './browser.js';
import { ADMIN_TOKEN, startServer, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

const PASSWORD = 'kitchen-pass-1234';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const POLL = { timeout: 10_000, interval: 50 };

const withChromium = hasChromium('browser tests of the cash screen and kitchen display');

describe.skipIf(!withChromium)('screens in a real browser', () => {
  let server: TestServer;
  let browser: Browser;
  let kioskKey: string;

  const shot = (page: Page, name: string) => screenshot(page, name, { animations: 'disabled' });

  async function newOrder(): Promise<{ id: string; orderNumber: string }> {
    const res = await server.request('POST', '/v1/orders', {
      ...key(kioskKey),
      body: {
        items: [
          { sku: 'sb-burger', qty: 1 },
          { sku: 'sb-cola', qty: 2 },
        ],
        customerName: 'Ana',
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.id as string, orderNumber: res.body.orderNumber as string };
  }

  async function openSession(orderNumber: string): Promise<string> {
    const res = await server.request('POST', '/api/cash-payment/init', {
      ...key(kioskKey),
      body: { orderNumber, totalAmount: 250 },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.orderToken as string;
  }

  const insert = async (orderNumber: string, amountAdded: number) => {
    const res = await server.request('POST', '/api/cash-payment/update', {
      ...key(kioskKey),
      body: { orderNumber, amountAdded, kind: 'BILL' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  };

  async function newPage(): Promise<Page> {
    const page = await openPage(browser, { viewport: { width: 900, height: 700 }, locale: 'en-US' });
    page.on('pageerror', (err) => console.warn(`page error: ${err.message}`));
    return page;
  }

  /** Opens the cash screen and waits until it shows the session and follows it live. */
  async function openCashScreen(orderNumber: string, token: string): Promise<Page> {
    const page = await newPage();
    let statusCalls = 0;
    page.on('request', (r) => {
      if (r.url().includes('/api/cash-payment/status/')) statusCalls++;
    });
    await page.goto(`${server.url}/kiosk/cash/${orderNumber}?token=${encodeURIComponent(token)}`);
    // One status call on load, one more once the live subscription is acknowledged.
    await expect.poll(() => statusCalls, POLL).toBeGreaterThanOrEqual(2);
    await markPage(page);
    return page;
  }

  const text = (page: Page, testId: string) => () => page.getByTestId(testId).textContent();

  beforeAll(async () => {
    server = await startServer({ engine: 'sqlite' });
    const keys = await createBurgerSite(server, {
      siteId: 'sb-manila',
      skuPrefix: 'sb-',
      site: { taxRateBp: 1200 },
      burgerStock: 20,
      machines: { 'SB-KIOSK': 'kiosk' },
    });
    kioskKey = keys['SB-KIOSK']!;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('cash screen: amount due, live Inserted/Remaining after each bill, then paid with change', async () => {
    const { id, orderNumber } = await newOrder();
    const token = await openSession(orderNumber);
    const page = await openCashScreen(orderNumber, token);

    await expect.poll(text(page, 'total'), POLL).toBe('₱250.00');
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱0.00');
    await expect.poll(text(page, 'remaining'), POLL).toBe('₱250.00');
    await expect.poll(text(page, 'state'), POLL).toBe('Waiting for cash…');
    expect(await page.getByText(orderNumber).count()).toBeGreaterThan(0);
    await shot(page, 'cash-waiting');

    await insert(orderNumber, 100);
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱100.00');
    await expect.poll(text(page, 'remaining'), POLL).toBe('₱150.00');
    expect(await page.getByTestId('state').textContent()).toBe('Waiting for cash…');
    await shot(page, 'cash-partial');

    await insert(orderNumber, 100);
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱200.00');
    await expect.poll(text(page, 'remaining'), POLL).toBe('₱50.00');

    const paid = await insert(orderNumber, 100);
    expect(paid).toMatchObject({ status: 'PAID', change: 50 });
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱300.00');
    await expect.poll(text(page, 'remaining'), POLL).toBe('₱0.00');
    await expect.poll(text(page, 'change'), POLL).toBe('₱50.00');
    await expect.poll(text(page, 'state'), POLL).toContain('₱50.00');
    expect(await page.getByTestId('state').textContent()).toMatch(/paid/i);
    expect(await page.getByRole('status').count()).toBeGreaterThan(0);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Thank you');
    expect(await notReloaded(page)).toBe(true);
    await shot(page, 'cash-paid');
    expect((await server.request('GET', `/v1/orders/${id}`)).body.status).toBe('PAID');
    await page.context().close();
  });

  it('cash screen: a status answer read before a bill arrives after its live update does not show the older amount', async () => {
    // The screen reads the status on load and again once subscribed; the live update of a bill
    // inserted meanwhile can arrive before that read's answer. Hold the second answer (read before
    // the bill) until the live update has been shown, then let it through.
    const { orderNumber } = await newOrder();
    const token = await openSession(orderNumber);
    const page = await newPage();
    let calls = 0;
    let held: (() => Promise<void>) | undefined;
    const heldNow = new Promise<void>((resolve) => {
      void page.route('**/api/cash-payment/status/**', async (route) => {
        calls += 1;
        if (calls !== 2) return route.continue();
        const response = await route.fetch(); // read now: before the bill
        held = () => route.fulfill({ response });
        resolve();
      });
    });
    let finished = 0;
    const staleDone = new Promise<void>((resolve) =>
      page.on('requestfinished', (r) => {
        if (r.url().includes('/api/cash-payment/status/') && ++finished === 2) resolve();
      }),
    );
    await page.goto(`${server.url}/kiosk/cash/${orderNumber}?token=${encodeURIComponent(token)}`);
    await heldNow;
    await insert(orderNumber, 100);
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱100.00');
    await held!();
    await staleDone;
    await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
    expect(await text(page, 'inserted')()).toBe('₱100.00');
    expect(await text(page, 'remaining')()).toBe('₱150.00');
    await page.context().close();
  });

  it('cash screen: a cancelled session shows the cancelled state', async () => {
    const { orderNumber } = await newOrder();
    const token = await openSession(orderNumber);
    const page = await openCashScreen(orderNumber, token);
    await insert(orderNumber, 100);
    await expect.poll(text(page, 'inserted'), POLL).toBe('₱100.00');
    const cancelled = await server.request('POST', `/api/cash-payment/cancel/${orderNumber}`, key(kioskKey));
    expect(cancelled.body).toMatchObject({ status: 'CANCELLED', amountReturned: 100 });
    await expect.poll(text(page, 'state'), POLL).toMatch(/cancelled/i);
    // The customer is told what comes back.
    expect(await page.getByTestId('state').textContent()).toContain('₱100.00');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toMatch(/cancelled/i);
    expect(await notReloaded(page)).toBe(true);
    await shot(page, 'cash-cancelled');
    await page.context().close();
  });

  it('cash screen: a link with a wrong token says so', async () => {
    const { orderNumber } = await newOrder();
    await openSession(orderNumber);
    const page = await newPage();
    await page.goto(`${server.url}/kiosk/cash/${orderNumber}?token=not-a-token`);
    await expect.poll(text(page, 'state'), POLL).toMatch(/not valid/i);
    await shot(page, 'cash-invalid-link');
    await page.context().close();
  });

  it('cash screen: amounts are shown in the site’s currency', async () => {
    // PUNE-1 is priced on the kiosk's own screen: the site takes ad-hoc cash orders.
    expect(
      (
        await server.request('POST', '/v1/sites', {
          body: { id: 'sb-pune', name: 'Pune Cafe', currency: 'INR', adHocCashOrders: true },
        })
      ).status,
    ).toBe(201);
    const puneKey = (await server.createMachine('SB-PUNE', { kind: 'kiosk', siteId: 'sb-pune' })).key;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(puneKey),
      body: { orderNumber: 'PUNE-1', totalAmount: 120 },
    });
    expect(init.status).toBe(200);
    const page = await openCashScreen('PUNE-1', init.body.orderToken as string);
    await expect.poll(text(page, 'total'), POLL).toBe('₹120.00');
    await server.request('POST', '/api/cash-payment/update', {
      ...key(puneKey),
      body: { orderNumber: 'PUNE-1', amountAdded: 50 },
    });
    await expect.poll(text(page, 'inserted'), POLL).toBe('₹50.00');
    await expect.poll(text(page, 'remaining'), POLL).toBe('₹70.00');
    await shot(page, 'cash-inr');
    await page.context().close();
  });

  it('kitchen display: staff sign-in, a paid order appears live, "Mark ready" completes it', async () => {
    // Start from an empty board: orders paid by the tests above are done.
    for (const o of (await server.request('GET', '/v1/kitchen/sb-manila/orders')).body.items) {
      expect((await server.request('POST', `/v1/orders/${o.id}/ready`, { body: {} })).status).toBe(200);
    }
    const email = 'cook@example.com';
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: PASSWORD, role: 'staff' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const page = await newPage();
    await page.goto(`${server.url}/kitchen/sb-manila`);

    // A wrong password is refused with a message.
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password', { exact: true }).fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent(), POLL).toMatch(/wrong/i);
    await shot(page, 'kitchen-login-error');

    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('#board').isVisible(), POLL).toBe(true);
    await expect.poll(() => page.getByRole('status').textContent(), POLL).toBe('live');
    await expect.poll(() => page.getByText('No orders waiting.').isVisible(), POLL).toBe(true);
    // The sign-in form is gone once signed in.
    expect(await page.getByRole('button', { name: 'Sign in' }).isVisible()).toBe(false);
    expect(await page.getByLabel('Email').isVisible()).toBe(false);
    await markPage(page);
    await shot(page, 'kitchen-empty');

    // An order paid in cash shows up without a reload.
    const { id, orderNumber } = await newOrder();
    await openSession(orderNumber);
    await insert(orderNumber, 300);
    const card = page.locator('li.card', { hasText: `#${orderNumber}` });
    await expect.poll(() => card.count(), POLL).toBe(1);
    expect(await card.textContent()).toContain('1 × Burger');
    expect(await card.textContent()).toContain('2 × Cola');
    expect(await card.textContent()).toContain('Ana');
    expect(await page.getByText('No orders waiting.').isVisible()).toBe(false);
    await shot(page, 'kitchen-order');

    await page.getByRole('button', { name: `Mark order ${orderNumber} ready` }).click();
    await expect.poll(() => card.count(), POLL).toBe(0);
    await expect.poll(() => page.getByText('No orders waiting.').isVisible(), POLL).toBe(true);
    await expect
      .poll(async () => (await server.request('GET', `/v1/orders/${id}`)).body.status, POLL)
      .toBe('COMPLETED');
    expect(await notReloaded(page)).toBe(true);
    await shot(page, 'kitchen-done');

    // Signed in already: a reload keeps the session and shows the (empty) board.
    await page.reload();
    await expect.poll(() => page.locator('#board').isVisible(), POLL).toBe(true);
    // Sign out ends the screen's session on the server: a copy of its token stops working.
    const signedOut = await page.evaluate<string>(`localStorage.getItem('kioskhub.token')`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Sign in' }).isVisible(), POLL).toBe(true);
    expect((await server.request('GET', '/v1/auth/me', { token: signedOut })).status).toBe(401);
    await page.context().close();
  });

  it('kitchen display: after a lost connection it shows the board as it is (orders marked ready elsewhere meanwhile are gone)', async () => {
    for (const o of (await server.request('GET', '/v1/kitchen/sb-manila/orders')).body.items)
      expect((await server.request('POST', `/v1/orders/${o.id}/ready`, { body: {} })).status).toBe(200);
    const page = await newPage();
    await page.goto(`${server.url}/kitchen/sb-manila`);
    await page.evaluate(`localStorage.setItem('kioskhub.token', ${JSON.stringify(ADMIN_TOKEN)})`);
    await page.reload();
    await expect.poll(() => page.getByRole('status').textContent(), POLL).toBe('live');
    const first = await newOrder();
    await openSession(first.orderNumber);
    await insert(first.orderNumber, 300);
    const card = page.locator('li.card', { hasText: `#${first.orderNumber}` });
    await expect.poll(() => card.count(), POLL).toBe(1);
    // The display loses its connection; another screen marks the order ready; a new one is paid.
    await page.evaluate('socket.disconnect()'); // the page's own socket (a top-level binding of kitchen.js)
    await expect.poll(() => page.getByRole('status').textContent(), POLL).toBe('reconnecting…');
    expect((await server.request('POST', `/v1/orders/${first.id}/ready`, { body: {} })).status).toBe(200);
    const second = await newOrder();
    await openSession(second.orderNumber);
    await insert(second.orderNumber, 300);
    await page.evaluate('socket.connect()');
    await expect.poll(() => page.getByRole('status').textContent(), POLL).toBe('live');
    await expect
      .poll(() => page.locator('li.card', { hasText: `#${second.orderNumber}` }).count(), POLL)
      .toBe(1);
    await expect.poll(() => card.count(), POLL).toBe(0);
    await page.context().close();
  });

  it('kitchen display: an order refunded in full before it is made leaves the board at once', async () => {
    for (const o of (await server.request('GET', '/v1/kitchen/sb-manila/orders')).body.items)
      expect((await server.request('POST', `/v1/orders/${o.id}/ready`, { body: {} })).status).toBe(200);
    const page = await newPage();
    await page.goto(`${server.url}/kitchen/sb-manila`);
    await page.evaluate(`localStorage.setItem('kioskhub.token', ${JSON.stringify(ADMIN_TOKEN)})`);
    await page.reload();
    await expect.poll(() => page.getByRole('status').textContent(), POLL).toBe('live');
    const refunded = await newOrder();
    await openSession(refunded.orderNumber);
    await insert(refunded.orderNumber, 300);
    const kept = await newOrder();
    await openSession(kept.orderNumber);
    await insert(kept.orderNumber, 300);
    const card = page.locator('li.card', { hasText: `#${refunded.orderNumber}` });
    const keptCard = page.locator('li.card', { hasText: `#${kept.orderNumber}` });
    await expect.poll(() => card.count(), POLL).toBe(1);
    await expect.poll(() => keptCard.count(), POLL).toBe(1);
    await markPage(page);

    // Staff refund the first in full (the customer left): its ticket goes, without a reload.
    const payment = (await server.request('GET', `/v1/payments?orderId=${refunded.id}`)).body.items[0];
    const res = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'customer left', to: 'refund_due' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    await expect.poll(() => card.count(), POLL).toBe(0);
    expect(await keptCard.count()).toBe(1);
    expect(await notReloaded(page)).toBe(true);
    await shot(page, 'kitchen-refunded');
    await page.context().close();
  });
});
