// Payments of every channel as one row each (GET /v1/payments, /v1/payments/:id): a QR webhook
// and a cash session end the same way (SUCCEEDED, the order PAID and fulfilled through the one
// settlement path); a mismatch, an underpayment and a cancellation are recorded, not applied.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, qrCredited, startServer, type TestServer } from './harness.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

describe.each(engines())('payments API (%s)', (engine) => {
  let server: TestServer;
  let vending: { id: string; key: string; qrCodeId: string };
  let kiosk: { id: string; key: string };
  let siteId: string;
  let sku: string;
  beforeAll(async () => {
    server = await startServer({ engine });
    vending = await server.createVendingMachine(uid('PV'), 2000);
    siteId = uid('pay');
    expect(
      (await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Cafe', currency: 'PHP' } }))
        .status,
    ).toBe(201);
    sku = `${siteId}-tea`;
    const product = await server.request('POST', '/v1/products', {
      body: { sku, name: 'Tea', priceMinor: 5_000, siteId },
    });
    expect(product.status).toBe(201);
    kiosk = await server.createMachine(uid('PK'), { kind: 'kiosk', siteId });
  });
  afterAll(async () => {
    await server?.close();
  });

  const byOrder = async (orderId: string) => {
    const res = await server.request('GET', `/v1/payments?orderId=${orderId}`);
    expect(res.status).toBe(200);
    return res.body.items as any[];
  };
  const kioskOrder = async () => {
    const res = await server.request('POST', '/v1/orders', {
      token: kiosk.key,
      body: { items: [{ sku, qty: 2 }] },
    });
    expect(res.status).toBe(201);
    return res.body as { id: string; orderNumber: string };
  };
  const cash = (path: string, body: unknown) =>
    server.request('POST', `/api/cash-payment/${path}`, { token: kiosk.key, body });

  it('a QR payment is one SUCCEEDED upi_qr payment of its order; a mismatch is FAILED and kept', async () => {
    const paymentId = uid('pay_');
    const ok = await server.postWebhook(qrCredited(vending.qrCodeId, 2000, paymentId));
    const [payment] = await byOrder(ok.body.orderId);
    expect(payment).toMatchObject({
      purpose: 'order',
      method: 'upi_qr',
      provider: 'razorpay',
      providerPaymentId: paymentId,
      reference: vending.qrCodeId,
      machineId: vending.id,
      amountMinor: 2000,
      receivedMinor: 2000,
      currency: 'INR',
      status: 'SUCCEEDED',
      refundedMinor: 0,
      completedAt: expect.any(String),
    });
    expect((await server.request('GET', `/v1/payments/${payment.id}`)).body).toEqual(payment);

    const wrong = await server.postWebhook(qrCredited(vending.qrCodeId, 1500));
    const [kept] = await byOrder(wrong.body.orderId);
    expect(kept).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      amountMinor: 2000,
      receivedMinor: 1500,
    });
    expect((await server.request('GET', `/v1/orders/${wrong.body.orderId}`)).body.status).toBe('FAILED');
  });

  it('a cash session is one cash payment: PENDING while underpaid, SUCCEEDED (with change) when covered', async () => {
    const order = await kioskOrder();
    expect((await cash('init', { orderNumber: order.orderNumber, totalAmount: 100 })).status).toBe(200);
    const insert = (amount: number) =>
      cash('update', {
        orderNumber: order.orderNumber,
        amountAdded: amount,
        eventId: uid('ev'),
        kind: 'BILL',
      });
    expect((await insert(50)).status).toBe(200);
    let [payment] = await byOrder(order.id);
    expect(payment).toMatchObject({
      method: 'cash',
      status: 'PENDING',
      amountMinor: 10_000,
      receivedMinor: 5_000,
      currency: 'PHP',
    });

    const done = await insert(100);
    expect(done.body).toMatchObject({ status: 'PAID', change: 50 });
    [payment] = await byOrder(order.id);
    expect(payment).toMatchObject({
      status: 'SUCCEEDED',
      receivedMinor: 15_000,
      completedAt: expect.any(String),
    });
    // The one settlement path: the order is PAID and its receipt queued, as for any channel.
    expect((await server.request('GET', `/v1/orders/${order.id}`)).body.status).toBe('PAID');
    const jobs = await server.request('GET', `/v1/print-jobs?siteId=${siteId}`);
    expect(jobs.body.items.some((j: any) => j.orderId === order.id)).toBe(true);
  });

  it('a cancelled cash session leaves its payment FAILED with CANCELLED', async () => {
    const order = await kioskOrder();
    await cash('init', { orderNumber: order.orderNumber, totalAmount: 100 });
    await cash('update', { orderNumber: order.orderNumber, amountAdded: 20, eventId: uid('ev') });
    expect((await cash('cancel', { orderNumber: order.orderNumber })).body).toMatchObject({
      amountReturned: 20,
    });
    const [payment] = await byOrder(order.id);
    expect(payment).toMatchObject({ status: 'FAILED', failureCode: 'CANCELLED', receivedMinor: 2_000 });
  });

  it('filters, pages and refuses bad queries without changing anything', async () => {
    const cashOnly = await server.request('GET', '/v1/payments?method=cash&limit=1');
    expect(cashOnly.body.items).toHaveLength(1);
    expect(cashOnly.body.items[0].method).toBe('cash');
    expect(cashOnly.body.nextCursor).toEqual(expect.any(String));
    const next = await server.request(
      'GET',
      `/v1/payments?method=cash&limit=1&cursor=${cashOnly.body.nextCursor}`,
    );
    expect(next.body.items[0].id < cashOnly.body.items[0].id).toBe(true);
    for (const query of ['status=PAID', 'method=cheque', 'limit=0', 'purpose=gift', 'extra=1']) {
      const res = await server.request('GET', `/v1/payments?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect((await server.request('GET', '/v1/payments/nope')).status).toBe(404);
    expect((await server.request('GET', '/v1/payments', { token: kiosk.key })).status).toBe(403);
    expect((await server.request('GET', '/v1/payments', { token: null })).status).toBe(401);
  });

  it('another tenant sees none of these payments', async () => {
    const tenant = uid('t');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Other' } })).status,
    ).toBe(201);
    const email = `${tenant}@example.com`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: 'a long password', role: 'admin', tenantId: tenant },
    });
    expect(created.status).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      token: null,
      body: { email, password: 'a long password' },
    });
    const mine = await server.request('GET', '/v1/payments?limit=1');
    const theirs = await server.request('GET', '/v1/payments', { token: login.body.token });
    expect(theirs.body.items).toEqual([]);
    expect(
      (await server.request('GET', `/v1/payments/${mine.body.items[0].id}`, { token: login.body.token }))
        .status,
    ).toBe(404);
  });
});
