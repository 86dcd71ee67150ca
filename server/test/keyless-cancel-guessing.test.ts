// A key-less cash-reader cancel names an order number, and order numbers are short: an address
// that keeps naming order numbers the site has no session for is guessing. After
// KEYLESS_CANCEL_MAX_MISSES such misses in 10 minutes, its key-less cancels are refused (429) and
// change nothing; keyed cancels (kiosks, staff) are not limited by it.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

const keyed = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const guess = () => `K${randomBytes(3).toString('hex').toUpperCase()}`;

describe.each(engines())('key-less cancel guessing (%s)', (engine: Engine) => {
  let server: TestServer;
  const siteId = `kg${randomBytes(3).toString('hex')}`;
  let kiosk = '';

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: {
        KEYLESS_CANCEL_MAX_MISSES: '3',
        ...(engine === 'postgres' && process.env['TEST_REDIS_URL']
          ? { REDIS_URL: process.env['TEST_REDIS_URL'] }
          : {}),
      },
    });
    const keys = await createBurgerSite(server, {
      siteId,
      skuPrefix: `${siteId}-`,
      site: { keylessCashCancel: true },
      machines: { [`${siteId}-K`]: 'kiosk' },
    });
    kiosk = keys[`${siteId}-K`]!;
  });
  afterAll(async () => {
    await server?.close();
  });

  const openSession = async () => {
    const created = await server.request('POST', '/v1/orders', {
      ...keyed(kiosk),
      body: { items: [{ sku: `${siteId}-burger`, qty: 1 }] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const orderNumber = created.body.orderNumber as string;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...keyed(kiosk),
      body: { orderNumber, totalAmount: 150 },
    });
    expect(init.status).toBe(200);
    return orderNumber;
  };
  const readerCancel = (orderNumber: string) =>
    server.request('POST', `/sites/${siteId}/api/cash-payment/cancel/${orderNumber}`, { token: null });
  const sessionStatus = async (orderNumber: string) =>
    (await server.request('GET', `/api/cash-payment/status/${orderNumber}`, keyed(kiosk))).body.status;

  it('an address past the misses is refused (429), even for a real order, which stays open; keyed cancels still work', async () => {
    const real = await openSession();
    // A real cancel is no miss.
    const first = await openSession();
    expect((await readerCancel(first)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await readerCancel(guess())).status).toBe(404);
    const refused = await readerCancel(real);
    expect(refused.status, JSON.stringify(refused.body)).toBe(429);
    expect(refused.body.error.code).toBe('RATE_LIMITED');
    expect(refused.body.error.message).toContain('KEYLESS_CANCEL_MAX_MISSES');
    expect(await sessionStatus(real)).toBe('PENDING');
    // The kiosk's own (keyed) cancel is not limited by the key-less guard.
    const byKiosk = await server.request('POST', `/api/cash-payment/cancel/${real}`, keyed(kiosk));
    expect(byKiosk.status).toBe(200);
    expect(byKiosk.body.status).toBe('CANCELLED');
  });
});
