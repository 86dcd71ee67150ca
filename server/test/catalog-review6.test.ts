// Review 6 of the catalog and kiosk orders: inputs the catalog and order endpoints accept (201)
// and then cannot honour. Every test here failed before its fix (2026-12-06).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';

type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, body: res.body }, JSON.stringify(res.body)).toMatchObject({
    status,
    body: { error: { code } },
  });
}

describe.each(engines())('catalog review 6 (%s)', (engine: Engine) => {
  let server: TestServer;
  let kioskKey: string;
  const siteId = 'rev6';
  const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

  beforeAll(async () => {
    server = await startServer({ engine });
    const site = await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Review six', currency: 'PHP' },
    });
    expect(site.status, JSON.stringify(site.body)).toBe(201);
    kioskKey = (await server.createMachine('R6K1', { kind: 'kiosk', siteId })).key;
    const burger = await server.request('POST', '/v1/products', {
      body: { sku: 'r6-burger', name: 'Burger', priceMinor: 15_000, siteId },
    });
    expect(burger.status, JSON.stringify(burger.body)).toBe(201);
  });
  afterAll(async () => {
    await server?.close();
  });

  // Promise: docs/api.md §6 "`PATCH /v1/products/:sku {priceMinor?, stock?, name?}`" — every
  // product can be changed by its sku — and the kiosk's order number is what the cash routes are
  // addressed by: "`GET /api/cash-payment/status/:orderNumber` (device key, staff, or the order's
  // `orderToken` …)" (§14).
  // Code at fault: server/src/modules/catalog/catalog.routes.ts:46 (Sku pattern
  // `^[A-Za-z0-9_.-]+$`) and :317 (orderNumber `^[A-Za-z0-9_.:#-]+$`, the same in
  // server/src/compat/restaurant-cash.routes.ts:16) accept `.` and `..`. A URL path segment `.`
  // or `..` (also `%2e%2e`) is a dot segment every HTTP client and the URL parser resolve away,
  // so `/v1/products/..` is `/v1/`: the product is created (201) and can never be PATCHed, the
  // order's cash status can never be read by its URL.
  // Fix: refuse ids made only of dots (pattern `^(?!\.{1,2}$)[A-Za-z0-9_.-]+$`, likewise for
  // order numbers) with 400 VALIDATION_FAILED.
  it('a sku or order number that is a URL dot segment is refused, or reachable by its URL', async () => {
    for (const sku of ['.', '..']) {
      const created = await server.request('POST', '/v1/products', {
        body: { sku, name: `Dots ${sku}`, priceMinor: 100, siteId },
      });
      if (created.status !== 201) {
        expectError(created, 400, 'VALIDATION_FAILED');
        continue;
      }
      const patched = await server.request('PATCH', `/v1/products/${sku}`, { body: { priceMinor: 200 } });
      expect(
        { sku, status: patched.status },
        `product "${sku}" was created (201) but PATCH /v1/products/${sku} answers ${JSON.stringify(patched.body)}`,
      ).toEqual({ sku, status: 200 });
    }

    const order = await server.request('POST', '/v1/orders', {
      ...key(kioskKey),
      body: { orderNumber: '..', items: [{ sku: 'r6-burger', qty: 1 }] },
    });
    if (order.status !== 201) {
      expectError(order, 400, 'VALIDATION_FAILED');
      return;
    }
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(kioskKey),
      body: { orderNumber: '..', totalAmount: 150 },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const status = await server.request('GET', '/api/cash-payment/status/..', key(kioskKey));
    expect(
      status.status,
      `order ".." was created (201) but its cash status URL answers ${JSON.stringify(status.body)}`,
    ).toBe(200);
  });

  // Promise: docs/api.md §1 "Write endpoints … change nothing when they refuse", and §2 (NUL):
  // text the server cannot store as sent is refused with 400 VALIDATION_FAILED, the same on both
  // engines. A demanding operator expects the name a 201 answers to be the name stored.
  // Code at fault: server/src/platform/http/validation.ts:37 checks text for NUL only; a lone UTF-16
  // surrogate (`"\ud800"`, valid JSON) passes, server/src/modules/catalog/catalog.service.ts
  // createProduct answers the name as sent (toProduct(row) of the input) while the database keeps
  // something else: U+FFFD on PostgreSQL, three U+FFFD on SQLite. The same goes for an order's
  // customerName (POST /v1/orders answers it as sent, GET /v1/orders/:id shows the mangled one).
  // Fix: refuse text that is not well-formed (`!s.isWellFormed()`) with 400 VALIDATION_FAILED where
  // NUL is refused (nulPath), on every route.
  it('a name with a lone surrogate is refused, or stored exactly as the 201 answer says', async () => {
    const name = 'Caf\ud800 latte';
    const created = await server.request('POST', '/v1/products', {
      body: { sku: 'r6-surrogate', name, priceMinor: 100, siteId },
    });
    if (created.status === 201) {
      const listed = await server.request('GET', `/v1/products?siteId=${siteId}`);
      const stored = listed.body.items.find((p: any) => p.sku === 'r6-surrogate');
      expect(stored.name, 'the name the product was stored with').toBe(created.body.name);
    } else expectError(created, 400, 'VALIDATION_FAILED');

    const order = await server.request('POST', '/v1/orders', {
      ...key(kioskKey),
      body: { items: [{ sku: 'r6-burger', qty: 1 }], customerName: 'Ana\udc00' },
    });
    if (order.status === 201) {
      const read = await server.request('GET', `/v1/orders/${order.body.id}`);
      expect(read.body.customerName, 'the customer name the order was stored with').toBe(
        order.body.customerName,
      );
    } else expectError(order, 400, 'VALIDATION_FAILED');
  });

  // Promise: docs/api.md §6 "`POST /v1/orders` … → `201` order, `status: "CREATED"`, `amount` from
  // the catalog", and §14 "`POST /api/cash-payment/init` `{orderNumber, totalAmount}` opens … the
  // cash session of an order: an existing `CREATED` order must have that total (else `409`)".
  // Products may cost 0 (catalog.routes.ts:48, `minimum: 0`: a free glass of water).
  // Code at fault: server/src/modules/catalog/catalog.service.ts:482 accepts an order whose total
  // is 0 (201 CREATED), but server/src/compat/restaurant-cash.routes.ts:77 refuses its total
  // (`totalAmount` exclusiveMinimum 0 → 400) and any other total is 409: the order can never be
  // paid, never reaches the kitchen, and stays CREATED for good.
  // Fix: refuse an order totalling 0 at POST /v1/orders (400 VALIDATION_FAILED, nothing created),
  // or let such an order be settled without money (created PAID and sent to the kitchen).
  it('an order that costs nothing is refused, or can be settled by the documented cash flow', async () => {
    const water = await server.request('POST', '/v1/products', {
      body: { sku: 'r6-water', name: 'Glass of water', priceMinor: 0, siteId },
    });
    expect(water.status, JSON.stringify(water.body)).toBe(201);
    const order = await server.request('POST', '/v1/orders', {
      ...key(kioskKey),
      body: { items: [{ sku: 'r6-water', qty: 1 }] },
    });
    if (order.status !== 201) {
      expectError(order, 400, 'VALIDATION_FAILED');
      return;
    }
    expect(order.body).toMatchObject({ amount: 0 });
    // Created already settled (PAID, for the kitchen) would do; a CREATED one must be payable.
    if (order.body.status !== 'CREATED') return;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(kioskKey),
      body: { orderNumber: order.body.orderNumber, totalAmount: 0 },
    });
    const read = await server.request('GET', `/v1/orders/${order.body.id}`);
    expect(
      { init: init.status, status: read.body.status },
      `a ₱0 order was accepted (201 CREATED); init with totalAmount 0 answers ${JSON.stringify(init.body)}`,
    ).toEqual({ init: 200, status: 'PAID' });
  });
});
