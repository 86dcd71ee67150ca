// Refunds (POST /v1/payments/:id/refunds): rows against their payment, never more than it
// received (also when two staff refund at once); through Razorpay's refund API as a retried job,
// or owed and handed back by staff; a review's "refund due" and a cancelled cash session too.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispensed, engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv } from './fake-razorpay.js';
import { ledgerInvariants } from './ledger-invariants.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

/** A local Razorpay refunds API (POST /v1/payments/:id/refund → refund entity); fails the first call. */

describe.each(engines())('refunds (%s)', (engine) => {
  let server: TestServer;
  let razorpay: Awaited<ReturnType<typeof fakeRazorpay>>;
  let vending: { id: string; key: string; qrCodeId: string };
  beforeAll(async () => {
    razorpay = await fakeRazorpay({ failFirst: 1 });
    server = await startServer({
      engine,
      env: {
        ...razorpayEnv(razorpay),
      },
    });
    vending = await server.createVendingMachine(uid('RV'), 2000);
  });
  afterAll(async () => {
    await server?.close();
    await razorpay?.close();
  });

  /**
   * A vending order paid, and dispensed (sent and its result recorded as the machine's socket
   * would): a dispense still queued is another case (refund-dispense.test.ts).
   */
  const paid = async (amount = 2000) => {
    const res = await server.postWebhook(qrCredited(vending.qrCodeId, amount));
    // Another amount than the machine's is FAILED: nothing to dispense.
    if (amount === 2000) await dispensed(server, vending.id, res.body.orderId);
    const list = await server.request('GET', `/v1/payments?orderId=${res.body.orderId}`);
    return { orderId: res.body.orderId as string, payment: list.body.items[0] };
  };
  const refund = (paymentId: string, body: unknown, token?: string) =>
    server.request('POST', `/v1/payments/${paymentId}/refunds`, { body, ...(token ? { token } : {}) });
  /** A site account's balance (0 before it exists). */
  const balance = async (siteId: string, kind: 'revenue' | 'refunds_due', unit: string): Promise<number> => {
    const res = await server.request(
      'GET',
      `/v1/ledger/accounts?ownerType=site&ownerId=${siteId}&kind=${kind}`,
    );
    expect(res.status).toBe(200);
    return res.body.items.find((a: any) => a.unit === unit)?.balance ?? 0;
  };
  const state = async (paymentId: string) => ({
    payment: (await server.request('GET', `/v1/payments/${paymentId}`)).body,
    refunds: (await server.request('GET', `/v1/payments/${paymentId}/refunds`)).body.items,
  });

  it('part, then the rest, owed back by staff; more than remains is refused and changes nothing', async () => {
    const { payment } = await paid();
    const first = await refund(payment.id, {
      amountMinor: 500,
      reason: 'cup was half empty',
      to: 'refund_due',
    });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      amountMinor: 500,
      currency: 'INR',
      destination: 'refund_due',
      status: 'DUE',
    });
    expect((await state(payment.id)).payment).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 500,
    });

    const before = await state(payment.id);
    const tooMuch = await refund(payment.id, { amountMinor: 1501, reason: 'oops', to: 'refund_due' });
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.body.error).toMatchObject({ code: 'INVALID_STATE', details: { remainingMinor: 1500 } });
    expect(await state(payment.id)).toEqual(before);

    const rest = await refund(payment.id, { reason: 'goodwill', to: 'refund_due' });
    expect(rest.body.amountMinor).toBe(1500);
    expect((await state(payment.id)).payment).toMatchObject({ status: 'REFUNDED', refundedMinor: 2000 });
    expect((await refund(payment.id, { amountMinor: 1, reason: 'again', to: 'refund_due' })).status).toBe(
      409,
    );

    // Owed back: the default site's refunds due hold 2000 until staff hand the money over.
    const dueAccount = async () => {
      const res = await server.request(
        'GET',
        '/v1/ledger/accounts?ownerType=site&ownerId=default&kind=refunds_due',
      );
      return res.body.items.find((a: any) => a.unit === 'INR');
    };
    const owedBefore = (await dueAccount()).balance;
    const done = await server.request('POST', `/v1/refunds/${first.body.id}/complete`, {
      body: { note: 'handed ₹5' },
    });
    expect(done.body).toMatchObject({ status: 'SUCCEEDED', completedAt: expect.any(String) });
    expect((await server.request('POST', `/v1/refunds/${first.body.id}/complete`, { body: {} })).status).toBe(
      409,
    );
    expect((await dueAccount()).balance).toBe(owedBefore - 500);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('two refunds at once never give back more than was paid', async () => {
    const { payment } = await paid();
    const both = await Promise.all(
      [1, 2].map(() => refund(payment.id, { amountMinor: 1200, reason: 'race', to: 'refund_due' })),
    );
    expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
    const after = await state(payment.id);
    expect(after.payment.refundedMinor).toBe(1200);
    expect(after.refunds).toHaveLength(1);
  });

  it('to the original method goes through Razorpay’s refund API as a job, retried after a failure', async () => {
    const { payment } = await paid();
    const res = await refund(payment.id, { amountMinor: 700, reason: 'wrong drink' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ destination: 'original', status: 'PENDING' });
    const done = await eventually(
      async () => {
        const [r] = (await state(payment.id)).refunds;
        return r.status === 'SUCCEEDED' ? r : undefined;
      },
      15_000,
      'the provider refund',
    );
    expect(done.providerRefundId).toMatch(/^rfnd_/);
    const calls = razorpay.calls.filter((c) => c.path === `/v1/payments/${payment.providerPaymentId}/refund`);
    expect(calls.length).toBe(2); // the first answered 502 and was retried
    expect(calls[1]).toMatchObject({
      body: { amount: 700 },
      auth: `Basic ${Buffer.from('rzp_test_key:rzp_test_secret').toString('base64')}`,
    });
  });

  it('to the original method the money leaves revenue: owed while the provider works, gone once it refunded', async () => {
    const { payment } = await paid();
    const revenue = await balance('default', 'revenue', 'INR');
    const due = await balance('default', 'refunds_due', 'INR');
    const res = await refund(payment.id, { reason: 'machine jammed' });
    expect(res.body).toMatchObject({ amountMinor: 2000, destination: 'original' });
    await eventually(
      async () => ((await state(payment.id)).refunds[0].status === 'SUCCEEDED' ? true : undefined),
      15_000,
      'the provider refund',
    );
    expect(await balance('default', 'revenue', 'INR')).toBe(revenue - 2000);
    expect(await balance('default', 'refunds_due', 'INR')).toBe(due);
    const entries = await server.request(
      'GET',
      `/v1/ledger/accounts/${(await server.request('GET', '/v1/ledger/accounts?ownerType=site&ownerId=default&kind=refunds_due')).body.items.find((a: any) => a.unit === 'INR').id}/entries`,
    );
    const ofRefund = entries.body.items.filter((e: any) => e.cause.id === res.body.id);
    expect(ofRefund.map((e: any) => e.amount).sort()).toEqual([-2000, 2000]);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a vending order marked "refund due" in review owes the customer what they paid', async () => {
    const { orderId, payment } = await paid(1500); // amount mismatch: FAILED, kept for refund
    expect(payment).toMatchObject({ status: 'FAILED', failureCode: 'AMOUNT_MISMATCH' });
    const revenue = await balance('default', 'revenue', 'INR');
    const due = await balance('default', 'refunds_due', 'INR');
    const decided = await server.request('POST', `/v1/orders/${orderId}/refund-due`, {
      body: { note: 'paid ₹15' },
    });
    expect(decided.status).toBe(200);
    const after = await state(payment.id);
    expect(after.refunds).toEqual([
      expect.objectContaining({ amountMinor: 1500, destination: 'refund_due', status: 'DUE' }),
    ]);
    expect(after.payment).toMatchObject({ status: 'FAILED', refundedMinor: 1500 });
    // The ₹15 never counted as revenue, so revenue gives nothing: it is owed out of what arrived.
    expect(await balance('default', 'revenue', 'INR')).toBe(revenue);
    expect(await balance('default', 'refunds_due', 'INR')).toBe(due + 1500);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a cash payment refunds what the order cost, not the change the kiosk handed back', async () => {
    const siteId = uid('rc');
    await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Kiosk', currency: 'PHP', adHocCashOrders: true },
    });
    const kiosk = await server.createMachine(uid('RK'), { kind: 'kiosk', siteId });
    const orderNumber = uid('N');
    const call = (path: string, body: unknown) =>
      server.request('POST', `/api/cash-payment/${path}`, { token: kiosk.key, body });
    const opened = await call('init', { orderNumber, totalAmount: 100 });
    await call('update', { orderNumber, amountAdded: 150, eventId: uid('e') }); // ₱50 change
    const paymentId = opened.body.sessionId as string;
    expect((await state(paymentId)).payment).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 15_000 });
    expect(await balance(siteId, 'revenue', 'PHP')).toBe(10_000);

    const tooMuch = await refund(paymentId, { amountMinor: 10_001, reason: 'x', to: 'refund_due' });
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.body.error.details).toEqual({ remainingMinor: 10_000 });
    const all = await refund(paymentId, { reason: 'cold food', to: 'refund_due' });
    expect(all.body).toMatchObject({ amountMinor: 10_000, status: 'DUE' });
    expect((await state(paymentId)).payment).toMatchObject({ status: 'REFUNDED', refundedMinor: 10_000 });
    expect(await balance(siteId, 'revenue', 'PHP')).toBe(0);
    expect(await balance(siteId, 'refunds_due', 'PHP')).toBe(10_000);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a cancelled cash session’s money becomes a refund due', async () => {
    const siteId = uid('rf');
    await server.request('POST', '/v1/sites', {
      body: { id: siteId, name: 'Kiosk', currency: 'PHP', adHocCashOrders: true },
    });
    const kiosk = await server.createMachine(uid('RK'), { kind: 'kiosk', siteId });
    const orderNumber = uid('N');
    const call = (path: string, body: unknown) =>
      server.request('POST', `/api/cash-payment/${path}`, { token: kiosk.key, body });
    const opened = await call('init', { orderNumber, totalAmount: 100 });
    await call('update', { orderNumber, amountAdded: 20, eventId: uid('e') });
    expect((await call('cancel', { orderNumber })).body.amountReturned).toBe(20);
    const after = await state(opened.body.sessionId);
    expect(after.payment).toMatchObject({
      method: 'cash',
      status: 'FAILED',
      failureCode: 'CANCELLED',
      refundedMinor: 2000,
    });
    expect(after.refunds).toEqual([
      expect.objectContaining({
        amountMinor: 2000,
        destination: 'refund_due',
        status: 'DUE',
        reason: 'cash session cancelled',
      }),
    ]);
    // Nothing of it was revenue: the ₱20 are owed back out of what the kiosk took.
    expect(await balance(siteId, 'revenue', 'PHP')).toBe(0);
    expect(await balance(siteId, 'refunds_due', 'PHP')).toBe(2000);
  });

  it('refuses bad bodies, a wallet with no payer, and callers who may not refund, changing nothing', async () => {
    const { payment } = await paid();
    const before = await state(payment.id);
    for (const body of [
      {},
      { reason: '' },
      { reason: 'x', amountMinor: 0 },
      { reason: 'x', amountMinor: 1.5 },
      { reason: 'x', to: 'cheque' },
      { reason: 'x', extra: 1 },
    ]) {
      const res = await refund(payment.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    // NUL would reach PostgreSQL text columns and lookups: refused by the schema on every path.
    for (const [path, body] of [
      [`/v1/payments/${payment.id}/refunds`, { reason: 'oops\u0000' }],
      [`/api/payments/${payment.id}/refund`, { reason: 'oops\u0000', to: 'refund_due' }],
      [`/v1/payments/${payment.id}/refunds`, { reason: 'x', to: 'credit', customerId: 'c\u0000' }],
      [`/v1/refunds/${uid('r')}/complete`, { note: 'x\u0000' }],
    ] as const) {
      const res = await server.request('POST', path, { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    for (const path of [`/v1/payments/a%00b`, `/v1/payments/a%00b/refunds`, `/v1/payments?orderId=a%00b`]) {
      const res = await server.request('GET', path);
      expect(res.status, path).toBe(400);
    }
    expect((await refund(payment.id, { reason: 'x', to: 'credit' })).status).toBe(409);
    expect((await refund(payment.id, { reason: 'x' }, vending.key)).status).toBe(403);
    expect((await refund('nope', { reason: 'x' })).status).toBe(404);
    expect(await state(payment.id)).toEqual(before);
  });
});

describe('refunds without provider keys', () => {
  it('to the original method answers 503 PROVIDER_NOT_CONFIGURED and changes nothing', async () => {
    const server = await startServer();
    try {
      const m = await server.createVendingMachine('RNK1', 2000);
      const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
      const [payment] = (await server.request('GET', `/v1/payments?orderId=${res.body.orderId}`)).body.items;
      const refused = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
        body: { reason: 'x' },
      });
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
      expect((await server.request('GET', `/v1/payments/${payment.id}`)).body).toEqual(payment);
    } finally {
      await server.close();
    }
  });
});
