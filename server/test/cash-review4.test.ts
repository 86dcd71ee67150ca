// Review of the restaurant cash kiosk module (cash.service.ts, unallocated.ts, the compatibility
// routes): each test shows a defect found on review, against the real server and database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type Engine, type TestServer, startServer } from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

interface CashSite {
  siteId: string;
  kiosk: { id: string; key: string };
  cashUnit: { id: string; key: string };
  meal: string;
}

describe.each(engines())('cash review 4 (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}${++seq}`;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** A PHP site with a kiosk, a cash unit and a ₱150 meal. */
  async function cashSite(): Promise<CashSite> {
    const siteId = uid('crv');
    const res = await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: siteId, currency: 'PHP' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const meal = `${siteId}-meal`;
    const product = { sku: meal, name: 'Meal', priceMinor: 15_000, siteId };
    expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
    const kiosk = await server.createMachine(uid('CRVK'), { kind: 'kiosk', siteId });
    const cashUnit = await server.createMachine(uid('CRVC'), { kind: 'cash', siteId });
    return { siteId, kiosk, cashUnit, meal };
  }

  async function order150(site: CashSite): Promise<{ id: string; orderNumber: string }> {
    const res = await server.request('POST', '/v1/orders', {
      ...key(site.kiosk.key),
      body: { items: [{ sku: site.meal, qty: 1 }] },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.id as string, orderNumber: res.body.orderNumber as string };
  }

  const post = (k: string, path: string, body: unknown) => server.request('POST', path, { ...key(k), body });
  const unallocatedFor = async (orderNumber: string): Promise<any[]> => {
    const res = await server.request('GET', '/v1/cash/unallocated?limit=200');
    return res.body.items.filter((u: any) => u.orderNumber === orderNumber);
  };

  // docs/api.md §14: "`UNKNOWN_ORDER`, `WRONG_SITE` → 404 NOT_FOUND"; init answers another site's
  // order as "does not exist at this site" (404). cash.service.ts insertIn: with no session yet,
  // another site's order is recorded as NO_OPEN_SESSION and answered 409 "order … is not waiting
  // for cash", which also tells a device of site B that site A has that order number.
  it('money for another site’s order that has no session yet is WRONG_SITE (404), as once it has one', async () => {
    const a = await cashSite();
    const b = await cashSite();
    const o = await order150(a);
    // Site B's cash unit reports a bill for site A's order before A opened its session.
    const early = await post(b.cashUnit.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 100,
      eventId: `${o.orderNumber}-e1`,
    });
    expect({ status: early.status, reason: early.body.error?.details?.reason }).toEqual({
      status: 404,
      reason: 'WRONG_SITE',
    });
    // Once A's session is open, the same mistake is WRONG_SITE, 404.
    expect(
      (await post(a.kiosk.key, '/api/cash-payment/init', { orderNumber: o.orderNumber, totalAmount: 150 }))
        .status,
    ).toBe(200);
    const later = await post(b.cashUnit.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 100,
      eventId: `${o.orderNumber}-e2`,
    });
    expect(later.status).toBe(404);
    expect(later.body.error.details.reason).toBe('WRONG_SITE');
    const items = await unallocatedFor(o.orderNumber);
    expect(items.map((u) => [u.siteId, u.reason]).sort()).toEqual([
      [b.siteId, 'WRONG_SITE'],
      [b.siteId, 'WRONG_SITE'],
    ]);
  });
});
