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

  it('a currency change of the site while a session is open: the session keeps the currency it opened in', async () => {
    const o = await orderAt('PHP', 25_000);
    const init = () =>
      post(o.kiosk.key, '/api/cash-payment/init', { orderNumber: o.orderNumber, totalAmount: 250 });
    expect((await init()).body).toMatchObject({ totalRequired: 250, status: 'PENDING' });
    const upd = (amountAdded: number, eventId: string) =>
      post(o.kiosk.key, '/api/cash-payment/update', { orderNumber: o.orderNumber, amountAdded, eventId });
    expect((await upd(100, `${o.orderNumber}-1`)).body).toMatchObject({ amountInserted: 100 });

    // The operator switches the site to UGX (no decimals) mid-session.
    const patched = await server.request('PATCH', `/v1/sites/${o.siteId}`, { body: { currency: 'UGX' } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.currency).toBe('UGX');

    // Later bills and coins of this session are still pesos, centavos included.
    const bill = await upd(100, `${o.orderNumber}-2`);
    expect(bill.status, JSON.stringify(bill.body)).toBe(200);
    expect(bill.body).toMatchObject({ amountInserted: 200, remainingAmount: 50, status: 'PENDING' });
    const coin = await upd(0.25, `${o.orderNumber}-3`);
    expect(coin.status, JSON.stringify(coin.body)).toBe(200);
    expect(coin.body).toMatchObject({ amountInserted: 200.25, remainingAmount: 49.75 });
    // The kiosk asking again for its session gets it, in pesos.
    const again = await init();
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body).toMatchObject({ totalRequired: 250, amountInserted: 200.25 });
    const paid = await upd(50, `${o.orderNumber}-4`);
    expect(paid.body).toMatchObject({
      amountInserted: 250.25,
      change: 0.25,
      isComplete: true,
      status: 'PAID',
    });
    const status = await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, key(o.kiosk.key));
    expect(status.body).toMatchObject({ amountInserted: 250.25, change: 0.25, currency: 'PHP' });
    expect((await server.request('GET', `/v1/orders/${o.id}`)).body).toMatchObject({
      status: 'PAID',
      amount: 25_000,
      currency: 'PHP',
    });

    // A late bill for that order is still its currency, recorded as such.
    const late = await upd(20, `${o.orderNumber}-5`);
    expect(late.status).toBe(409);
    expect(late.body.error.details).toMatchObject({
      recordedAmount: 20,
      amountMinor: 2000,
      currency: 'PHP',
      reason: 'SESSION_PAID',
    });

    // New orders of the site are in the new currency: whole shillings.
    const sku = `${o.siteId}-tea`;
    const product = { sku, name: 'Tea', priceMinor: 3000, siteId: o.siteId };
    expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
    const next = await post(o.kiosk.key, '/v1/orders', { items: [{ sku, qty: 1 }] });
    expect(next.body).toMatchObject({ amount: 3000, currency: 'UGX' });
    const nextNumber = next.body.orderNumber as string;
    expect(
      (await post(o.kiosk.key, '/api/cash-payment/init', { orderNumber: nextNumber, totalAmount: 3000 }))
        .body,
    ).toMatchObject({ totalRequired: 3000 });
    const shillings = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: nextNumber,
      amountAdded: 0.5,
    });
    expect(shillings.status).toBe(400);
    const ugxBill = await post(o.kiosk.key, '/api/cash-payment/update', {
      orderNumber: nextNumber,
      amountAdded: 5000,
    });
    expect(ugxBill.body).toMatchObject({ amountInserted: 5000, change: 2000, status: 'PAID' });
  });

  it('a site currency that is not ISO 4217 is refused', async () => {
    const res = await server.request('POST', '/v1/sites', {
      body: { id: `bad${++seq}`, name: 'Bad', currency: 'ABC' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });
});
