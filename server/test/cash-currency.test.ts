// Cash sessions on sites whose currency has no decimals (UGX) or three (KWD): the device's
// major units go in, exact minor units are stored, and the same major units come back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type Engine, type TestServer, startServer } from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('cash in the site currency exponent (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** A site in `currency` with a kiosk and one product priced `priceMinor`; an order of it. */
  async function orderAt(currency: string, priceMinor: number) {
    const siteId = `${currency.toLowerCase()}${++seq}`;
    const site = await server.request('POST', '/v1/sites', { body: { id: siteId, name: siteId, currency } });
    expect(site.status, JSON.stringify(site.body)).toBe(201);
    const sku = `${siteId}-meal`;
    const product = { sku, name: 'Meal', priceMinor, siteId };
    expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
    const kiosk = await server.createMachine(`K-${siteId}`, { kind: 'kiosk', siteId });
    const order = await server.request('POST', '/v1/orders', {
      ...key(kiosk.key),
      body: { items: [{ sku, qty: 1 }] },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    return { siteId, kiosk, id: order.body.id as string, orderNumber: order.body.orderNumber as string };
  }
  const post = (k: string, path: string, body: unknown) => server.request('POST', path, { ...key(k), body });

  it('UGX (no decimals): whole shillings in, the same integers stored and answered', async () => {
    const o = await orderAt('UGX', 15_000);
    const init = await post(o.kiosk.key, '/api/cash-payment/init', {
      orderNumber: o.orderNumber,
      totalAmount: 15_000,
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    expect(init.body).toMatchObject({ totalRequired: 15_000, remainingAmount: 15_000 });

    const half = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 0.5,
    });
    expect(half.status).toBe(400);
    expect(half.body.error).toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('0 decimals'),
    });

    const upd = (amountAdded: number, eventId: string) =>
      post(o.kiosk.key, '/api/cash-payment/update', { orderNumber: o.orderNumber, amountAdded, eventId });
    const first = await upd(10_000, `${o.orderNumber}-1`);
    expect(first.body).toMatchObject({ amountInserted: 10_000, remainingAmount: 5000, status: 'PENDING' });
    const second = await upd(10_000, `${o.orderNumber}-2`);
    expect(second.body).toMatchObject({
      amountInserted: 20_000,
      change: 5000,
      isComplete: true,
      status: 'PAID',
    });

    const order = await server.request('GET', `/v1/orders/${o.id}`);
    expect(order.body).toMatchObject({ status: 'PAID', amount: 15_000, currency: 'UGX' });
    const next = await server.request('GET', '/api/receipt/queue/next', key(o.kiosk.key));
    expect(next.body.receipt).toMatchObject({ totalAmount: 15_000, amountPaid: 20_000, change: 5000 });

    // Late money: recorded in exact minor units, answered in major units of UGX.
    const late = await upd(1000, `${o.orderNumber}-3`);
    expect(late.status).toBe(409);
    expect(late.body.error.details).toMatchObject({
      recordedAmount: 1000,
      amountMinor: 1000,
      currency: 'UGX',
    });
    const listed = (await server.request('GET', '/v1/cash/unallocated?limit=200')).body.items;
    expect(listed.find((u: { orderNumber: string }) => u.orderNumber === o.orderNumber)).toMatchObject({
      amount: 1000,
      amountMinor: 1000,
      currency: 'UGX',
    });
  });

  it('KWD (three decimals): fils are exact both ways', async () => {
    const o = await orderAt('KWD', 1250);
    const init = await post(o.kiosk.key, '/api/cash-payment/init', {
      orderNumber: o.orderNumber,
      totalAmount: 1.25,
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    expect(init.body).toMatchObject({ totalRequired: 1.25, remainingAmount: 1.25 });

    const tooFine = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 0.0005,
    });
    expect(tooFine.status).toBe(400);
    expect(tooFine.body.error.message).toContain('3 decimals');

    const upd = (amountAdded: number) =>
      post(o.kiosk.key, '/api/cash-payment/update', { orderNumber: o.orderNumber, amountAdded });
    expect((await upd(1)).body).toMatchObject({ amountInserted: 1, remainingAmount: 0.25 });
    expect((await upd(0.125)).body).toMatchObject({ amountInserted: 1.125, remainingAmount: 0.125 });
    expect((await upd(0.5)).body).toMatchObject({ amountInserted: 1.625, change: 0.375, status: 'PAID' });
    const status = await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, key(o.kiosk.key));
    expect(status.body).toMatchObject({
      totalRequired: 1.25,
      amountInserted: 1.625,
      change: 0.375,
      currency: 'KWD',
    });
    expect((await server.request('GET', `/v1/orders/${o.id}`)).body).toMatchObject({
      amount: 1250,
      status: 'PAID',
    });

    const late = await upd(0.005);
    expect(late.body.error.details).toMatchObject({ recordedAmount: 0.005, amountMinor: 5, currency: 'KWD' });
  });

  it('a PHP site answers as before: two decimals, ₱ major units', async () => {
    const o = await orderAt('PHP', 25_050);
    const init = await post(o.kiosk.key, '/api/cash-payment/init', {
      orderNumber: o.orderNumber,
      totalAmount: 250.5,
    });
    expect(init.body).toMatchObject({ totalRequired: 250.5 });
    const bad = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 0.005,
    });
    expect(bad.body.error).toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('2 decimals'),
    });
    const paid = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: o.orderNumber,
      amountAdded: 300,
    });
    expect(paid.body).toMatchObject({ amountInserted: 300, change: 49.5, status: 'PAID' });
  });

  it('a site currency that is not ISO 4217 is refused', async () => {
    const res = await server.request('POST', '/v1/sites', {
      body: { id: `bad${++seq}`, name: 'Bad', currency: 'ABC' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });
});
