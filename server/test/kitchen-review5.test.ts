// Review 5 of restaurant operations (kitchen.service.ts, restaurant-ops.routes.ts) and the screens
// (screens.routes.ts, kitchen.js, cash-screen.js): each test shows a defect found on review,
// against the real server and database, and fails on the code it was written against.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, openPage } from './browser.js';
import { engines, startServer, type Engine, type TestServer } from './harness.js';
import { guestOrder, makeCafe } from './cafe-fixtures.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('kitchen review 5 (%s)', (engine: Engine) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  // docs/cafe.md §9: "a paid table order also shows on the kitchen display of api.md §16 until it
  // is `PREPARING`, where _Mark ready_ (`POST /v1/orders/:id/ready`) moves it to `READY` as here,
  // never to `COMPLETED` (an unpaid one: `409`)."
  // docs/api.md §16: `GET /v1/kitchen/:siteId/orders`: "paid orders waiting in the kitchen".
  // What is wrong: kitchen.service.ts:87-88 (markReady) hands every table order to the cafe's
  // kitchen-status move (app.ts:691, cafe-orders.ts kitchenStatus), which lets a pay-later cash
  // order the kitchen was sent move on unpaid. So the kiosk kitchen display's "Mark ready" (the
  // unpaid pay-later order reaches it live through order_created to kitchen:<site>, though its
  // list never holds it) tells the guest "ready" for an order nobody has paid, and answers 200
  // where the docs promise 409. Fix: in markReady, refuse a table order whose paidAt is null with
  // 409 INVALID_STATE before calling tableOrderReady (staff keep kitchen-status for the cafe's
  // own pay-later flow).
  it('"Mark ready" on an unpaid pay-later table order the kitchen was sent is 409 and changes nothing', async () => {
    const cafe = await makeCafe(server);
    const site = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: true } });
    expect(site.status, JSON.stringify(site.body)).toBe(200);
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    const cash = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(cash.body).toMatchObject({ status: 'PENDING', payLater: true });
    // Unpaid: not on the kitchen's list of paid orders.
    const list = await server.request('GET', `/v1/kitchen/${cafe.siteId}/orders`);
    expect(list.body.items.map((o: { id: string }) => o.id)).not.toContain(order.body.id);

    const ready = await server.request('POST', `/v1/orders/${order.body.id}/ready`, { body: {} });
    const after = (await server.request('GET', `/v1/orders/${order.body.id}`)).body;
    expect({ ready: ready.status, status: after.status, paidAt: after.paidAt }).toEqual({
      ready: 409,
      status: 'CREATED',
      paidAt: null,
    });
  });
});

describe.skipIf(!hasChromium('the cash screen in a real browser'))(
  'kitchen review 5: cash screen (browser)',
  () => {
    let server: TestServer;
    let browser: Browser;

    beforeAll(async () => {
      server = await startServer({ engine: 'sqlite' });
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await server?.close();
    });

    // docs/api.md §18: "`/kiosk/cash/:orderNumber?token=<orderToken>`: the customer's cash screen,
    // live"; cash-screen.js:6 "The site's currency comes with the session status".
    // What is wrong: the screen learns the currency only from a status answer (cash-screen.js:27),
    // defaulting to PHP (cash-screen.js:7), and drops a status answer older than what a live update
    // already showed (cash-screen.js:21-23, 25) — its currency with it; `cash_session_updated`
    // carries no currency (cash.service.ts:196-211, announce). When a bill's live update reaches the
    // screen before the status answers read before it (a slow answer on a busy kiosk), an INR
    // customer is shown every amount in pesos (₱) for the rest of the session: no later answer is
    // ever newer than the live updates. Fix: put `currency` in `cash_session_updated` (announce), or
    // take `currency` from every status answer even when its amounts are older.
    it('amounts stay in the site’s currency when a live update is shown before the status answers', async () => {
      expect(
        (
          await server.request('POST', '/v1/sites', {
            body: { id: 'k5-pune', name: 'Pune Cafe', currency: 'INR', adHocCashOrders: true },
          })
        ).status,
      ).toBe(201);
      const kiosk = (await server.createMachine('K5-PUNE', { kind: 'kiosk', siteId: 'k5-pune' })).key;
      const init = await server.request('POST', '/api/cash-payment/init', {
        ...key(kiosk),
        body: { orderNumber: 'K5PUNE-1', totalAmount: 120 },
      });
      expect(init.status, JSON.stringify(init.body)).toBe(200);

      const page = await openPage(browser, { viewport: { width: 900, height: 700 }, locale: 'en-US' });
      // Both status reads (on load, and once subscribed) are made before the bill; their answers
      // arrive after its live update.
      const held: (() => Promise<void>)[] = [];
      await page.route('**/api/cash-payment/status/**', async (route) => {
        const response = await route.fetch();
        held.push(() => route.fulfill({ response }));
      });
      await page.goto(`${server.url}/kiosk/cash/K5PUNE-1?token=${encodeURIComponent(init.body.orderToken)}`);
      await expect.poll(() => held.length, { timeout: 10_000, interval: 50 }).toBe(2);
      const bill = await server.request('POST', '/api/cash-payment/update', {
        ...key(kiosk),
        body: { orderNumber: 'K5PUNE-1', amountAdded: 50 },
      });
      expect(bill.status, JSON.stringify(bill.body)).toBe(200);
      const inserted = () => page.getByTestId('inserted').textContent();
      await expect.poll(inserted, { timeout: 10_000, interval: 50 }).toMatch(/50\.00/);
      for (const release of held) await release();
      await page.evaluate(() => new Promise((r) => setTimeout(r, 200)));
      expect({
        inserted: await inserted(),
        remaining: await page.getByTestId('remaining').textContent(),
      }).toEqual({ inserted: '₹50.00', remaining: '₹70.00' });
      await page.context().close();
    });
  },
);
