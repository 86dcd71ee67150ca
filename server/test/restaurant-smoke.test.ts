import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

describe.each(engines())('restaurant kiosk flow (%s)', (engine) => {
  let server: TestServer;
  let kioskKey: string;
  beforeAll(async () => {
    server = await startServer({ engine });
    const keys = await createBurgerSite(server, {
      site: { taxRateBp: 1200, address: '1 Rizal Ave', phone: '+63 2 555 0100' },
      burgerStock: 10,
      machines: { KIOSK1: 'kiosk' },
    });
    kioskKey = keys['KIOSK1']!;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('order, cash to completion with change, stock down, receipt leased and printed', async () => {
    const keyed = { token: null, headers: { 'x-api-key': kioskKey } } as const;
    const order = await server.request('POST', '/v1/orders', {
      ...keyed,
      body: {
        items: [
          { sku: 'burger', qty: 1 },
          { sku: 'cola', qty: 2 },
        ],
        customerName: 'Ana',
      },
    });
    expect(order.status).toBe(201);
    expect(order.body).toMatchObject({
      status: 'CREATED',
      amount: 25_000,
      currency: 'PHP',
      dispatchPending: false,
    });
    const orderNumber = order.body.orderNumber as string;

    const init = await server.request('POST', '/api/cash-payment/init', {
      ...keyed,
      body: { orderNumber, totalAmount: 250 },
    });
    expect(init.status).toBe(200);
    expect(init.body).toMatchObject({
      success: true,
      orderNumber,
      totalRequired: 250,
      amountInserted: 0,
      remainingAmount: 250,
      status: 'PENDING',
    });

    const first = await server.request('POST', '/api/cash-payment/update', {
      ...keyed,
      body: { orderNumber, amountAdded: 100, eventId: 'e1', kind: 'BILL' },
    });
    expect(first.body).toMatchObject({
      amountInserted: 100,
      remainingAmount: 150,
      isComplete: false,
      status: 'PENDING',
    });
    const again = await server.request('POST', '/api/cash-payment/update', {
      ...keyed,
      body: { orderNumber, amountAdded: 100, eventId: 'e1', kind: 'BILL' },
    });
    expect(again.body.amountInserted).toBe(100);
    const paid = await server.request('POST', '/api/cash-payment/update', {
      ...keyed,
      body: { orderNumber, amountAdded: 200, eventId: 'e2' },
    });
    expect(paid.body).toMatchObject({ amountInserted: 300, isComplete: true, change: 50, status: 'PAID' });

    const late = await server.request('POST', '/api/cash-payment/update', {
      ...keyed,
      body: { orderNumber, amountAdded: 20, eventId: 'e3' },
    });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('INVALID_STATE');
    const unallocated = await server.request('GET', '/v1/cash/unallocated');
    expect(unallocated.body.items[0]).toMatchObject({
      orderNumber,
      amount: 20,
      amountMinor: 2000,
      currency: 'PHP',
      reason: 'SESSION_PAID',
      machineId: 'KIOSK1',
    });

    const products = await server.request('GET', '/v1/products?siteId=manila1');
    expect(products.body.items.find((p: any) => p.sku === 'burger').stock).toBe(9);

    const job = await server.request('GET', '/api/receipt/queue/next', keyed);
    expect(job.status).toBe(200);
    expect(job.body.receipt).toMatchObject({
      restaurantName: 'Burger Manila',
      orderNumber,
      totalAmount: 250,
      amountPaid: 300,
      change: 50,
      paymentMethod: 'Cash',
      tax: 26.79,
    });
    expect(job.body.receiptData.jobId).toBe(job.body.jobId);
    expect((await server.request('GET', '/api/receipt/queue/next', keyed)).status).toBe(204);
    expect(
      (await server.request('POST', `/api/receipt/queue/complete/${job.body.jobId}`, keyed)).body,
    ).toEqual({ success: true });
    const status = await server.request('GET', '/api/receipt/queue/status', keyed);
    expect(status.body).toEqual({ success: true, pending: 0, leased: 0, printed: 1, failed: 0 });

    const kitchen = await server.request('GET', '/v1/kitchen/manila1/orders');
    expect(kitchen.body.items.map((o: any) => o.orderNumber)).toEqual([orderNumber]);
  });
});
