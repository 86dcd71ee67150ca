// Review of the restaurant cash kiosk module (cash.service.ts, unallocated.ts, the compatibility
// routes): each test shows a defect found on review, against the real server and database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mealSite, orderMeal } from './restaurant-fixtures.js';
import { engines, type Engine, type TestServer, startServer } from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

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
    const a = await mealSite(server, uid, 'crv');
    const b = await mealSite(server, uid, 'crv');
    const o = await orderMeal(server, a);
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
