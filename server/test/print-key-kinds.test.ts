// Who may use the receipt print queue with a machine key: a receipt printer, or a kiosk that prints
// its own receipts (the earlier kiosk's Raspberry Pi runs its printer). The key of any other machine
// of the site (a cash unit, a vending machine, a water kiosk, a table) is 403 on every print route
// and changes nothing: it cannot read receipts (orders, names, amounts) nor take or report jobs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';

const rand = () => Math.random().toString(36).slice(2, 8);
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('print routes by machine kind (%s)', (engine) => {
  let server: TestServer;
  let siteId = '';
  let jobId = '';
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    server = await startServer({ engine });
    siteId = `pk${rand()}`;
    expect(
      (await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Diner', currency: 'PHP' } }))
        .status,
    ).toBe(201);
    const sku = `${siteId}-meal`;
    expect(
      (
        await server.request('POST', '/v1/products', {
          body: { sku, name: 'Meal', priceMinor: 12_000, siteId },
        })
      ).status,
    ).toBe(201);
    for (const kind of ['kiosk', 'printer', 'cash', 'vending', 'water', 'table'])
      keys[kind] = (await server.createMachine(`${kind}-${rand()}`, { kind, siteId })).key;
    const order = await server.request('POST', '/v1/orders', {
      ...key(keys['kiosk']!),
      body: { items: [{ sku, qty: 1 }] },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    const orderNumber = order.body.orderNumber as string;
    for (const [path, body] of [
      ['/api/cash-payment/init', { orderNumber, totalAmount: 120 }],
      ['/api/cash-payment/update', { orderNumber, amountAdded: 120 }],
    ] as const)
      expect((await server.request('POST', path, { ...key(keys['kiosk']!), body })).status).toBe(200);
    const jobs = (await server.request('GET', `/v1/print-jobs?siteId=${siteId}&limit=200`)).body.items;
    jobId = jobs.find((j: { orderId: string }) => j.orderId === order.body.id).jobId as string;
  });
  afterAll(async () => {
    await server?.close();
  });

  const job = async () =>
    (await server.request('GET', `/v1/print-jobs?siteId=${siteId}&limit=200`)).body.items.find(
      (j: { jobId: string }) => j.jobId === jobId,
    );

  it('the key of a cash unit, a vending machine, a water kiosk or a table is 403 on every print route, and nothing changes', async () => {
    const before = await job();
    expect(before).toMatchObject({ status: 'PENDING', attempts: 0 });
    for (const kind of ['cash', 'vending', 'water', 'table']) {
      const k = key(keys[kind]!);
      const calls = [
        await server.request('GET', '/api/receipt/queue/next', k),
        await server.request('POST', `/api/receipt/queue/complete/${jobId}`, k),
        await server.request('POST', `/api/receipt/queue/failed/${jobId}`, { ...k, body: { error: 'jam' } }),
        await server.request('GET', '/api/receipt/queue/status', k),
        await server.request('GET', `/api/receipt/queue/status/${jobId}`, k),
        await server.request('GET', `/sites/${siteId}/api/receipt/queue/next`, k),
      ];
      for (const res of calls) {
        expect(res.status, `${kind}: ${JSON.stringify(res.body)}`).toBe(403);
        expect(res.body.error.code).toBe('FORBIDDEN');
        expect(res.body.error.message).toContain('printer or kiosk');
      }
    }
    expect(await job()).toEqual(before);
  });

  it("a printer's and a kiosk's key are served", async () => {
    for (const kind of ['printer', 'kiosk']) {
      const res = await server.request('GET', '/api/receipt/queue/status', key(keys[kind]!));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.success).toBe(true);
    }
    const leased = await server.request('GET', '/api/receipt/queue/next', key(keys['printer']!));
    expect(leased.status).toBe(200);
    expect(leased.body.jobId).toBe(jobId);
    expect(
      (await server.request('POST', `/api/receipt/queue/complete/${jobId}`, key(keys['printer']!))).body,
    ).toEqual({
      success: true,
    });
    expect(await job()).toMatchObject({ status: 'PRINTED' });
  });
});
