// Review of how provider notifications are received (PROVIDERS.md; docs/api.md §9,
// docs/cafe-payments.md §3–§5, docs/water-payments.md "Callbacks"), against the real server:
// out-of-order and repeated deliveries, amounts and currencies, and what each answer changes.
// Tests marked `it.skip` show a bug outside what this review may change; each says why.
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qrCreditedEvent } from '../src/providers/razorpay/razorpay.events.js';
import { eventually, engines, startServer, type TestServer } from './harness.js';
import { guestOrder, makeCafe, type Cafe } from './cafe-fixtures.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';
import { MOMO, startProviderFakes, type ProviderFakes } from './fixtures/mobile-money-fakes.js';

const WHSEC = 'whsec_provider_review';
const MOMO_KEY = 'momo-callback-k-review-0001';
const rid = (p: string) => `${p}_${randomBytes(8).toString('hex')}`;

describe.each(engines())('provider notifications review (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let fakes: ProviderFakes;
  let cafe: Cafe;

  beforeAll(async () => {
    stripe = await fakeStripe({ webhookSecret: WHSEC });
    fakes = await startProviderFakes();
    server = await startServer({
      engine,
      env: {
        STRIPE_SECRET_KEY: 'sk_test_review',
        STRIPE_WEBHOOK_SECRET: WHSEC,
        STRIPE_API_BASE: stripe.url,
        MOMO_API_BASE: fakes.url,
        MOMO_SUBSCRIPTION_KEY: MOMO.subscriptionKey,
        MOMO_API_USER: MOMO.apiUser,
        MOMO_API_KEY: MOMO.apiKey,
        MOMO_TARGET_ENVIRONMENT: 'sandbox',
        MOMO_CALLBACK_KEY: MOMO_KEY,
        PUBLIC_URL: 'https://kiosk.example.org',
        PAYMENT_STATUS_POLL_MS: '3600000',
      },
    });
    cafe = await makeCafe(server);
    const res = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: { cardGateway: 'stripe' },
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
    await stripe?.close();
    await fakes?.close();
  });

  const paymentView = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const alertsAbout = async (subjectId: string) =>
    server.kioskhub.db.selectFrom('alerts').selectAll().where('subject_id', '=', subjectId).execute();

  // ---- Stripe (docs/cafe-payments.md §4–§5) -------------------------------------------------

  async function payByCard() {
    const table = cafe.tables[0]!;
    const order = await guestOrder(server, cafe, table);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[table]!,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(pay.status, JSON.stringify(pay.body)).toBe(201);
    return pay.body as { paymentId: string; orderId: string; amountMinor: number; currency: string };
  }

  function postStripe(event: Record<string, unknown>) {
    const payload = JSON.stringify(event);
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC });
    return server.request('POST', '/webhooks/stripe', {
      raw: payload,
      token: null,
      headers: { 'content-type': 'application/json', 'stripe-signature': header },
    });
  }

  const sessionCompleted = (checkoutId: string, paymentId: string, amountTotal: number, pi: string) => ({
    id: rid('evt'),
    object: 'event',
    type: 'checkout.session.completed',
    data: {
      object: {
        id: checkoutId,
        object: 'checkout.session',
        client_reference_id: paymentId,
        payment_status: 'paid',
        status: 'complete',
        amount_total: amountTotal,
        currency: 'eur',
        payment_intent: pi,
      },
    },
  });

  const chargeRefunded = (pi: string, amountRefunded: number) => ({
    id: rid('evt'),
    object: 'event',
    type: 'charge.refunded',
    data: {
      object: {
        id: rid('ch'),
        object: 'charge',
        payment_intent: pi,
        amount_refunded: amountRefunded,
        currency: 'eur',
        refunds: { object: 'list', data: [{ id: rid('re'), object: 'refund' }] },
      },
    },
  });

  it('card paid another amount, seen first by the status check: its webhook still records the money and alerts (not a duplicate)', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    // Stripe's side: the session was paid with another total (849 instead of 850).
    stripe.sessions.get(checkoutId)!['amount_total'] = 849;
    stripe.completeSession(checkoutId, pi);
    // The poll (or the last check at expiry) gets there before the webhook.
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
    });

    // cafe-payments.md §5: "paid another amount or currency → amount_mismatch: FAILED / AMOUNT_MISMATCH
    // with receivedMinor, a PAYMENT_MISMATCH alert; refund it".
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 849, pi));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, outcome: 'amount_mismatch' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
      providerPaymentId: pi,
    });
    expect((await alertsAbout(pay.paymentId)).map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    // The money taken can now be refunded to the card (it could not with receivedMinor 0).
    const refund = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'wrong amount charged', amountMinor: 849, to: 'original' },
    });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    // Stripe's retry of the same event, and the async twin, are duplicates.
    const again = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 849, pi));
    expect(again.body.outcome).toBe('duplicate');
    expect((await alertsAbout(pay.paymentId)).length).toBe(1);
  });

  it('card paid the exact amount, settled first by the status check: the webhook stays a duplicate', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(res.body).toEqual({ ok: true, outcome: 'duplicate' });
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    expect(await alertsAbout(pay.paymentId)).toEqual([]);
  });

  // BUG (not fixed here: needs a design choice in card-payments.ts): a `charge.refunded` that
  // arrives before the payment is known by its PaymentIntent id (its checkout event not yet
  // applied: Stripe delivers in any order) is answered 200 `unknown_payment` and its event id
  // is consumed, so neither Stripe's retries nor a resend from the Dashboard ever record the
  // refund; the payment stays SUCCEEDED with nothing refunded although the money went back.
  it.skip('a charge.refunded delivered before its checkout event is not lost', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    const refundEvent = chargeRefunded(pi, 300);
    const early = await postStripe(refundEvent);
    expect(early.status).toBeLessThan(300);
    const settled = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(settled.body.outcome).toBe('settled');
    // Stripe's retry (or a resend) of the refund event after the payment is known.
    const late = await postStripe(refundEvent);
    expect(late.body.outcome).toBe('refund_recorded');
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 300,
    });
  });

  // ---- Razorpay (docs/api.md §9) ------------------------------------------------------------

  const razorpayEvent = (qrCodeId: string, paymentId: string, status: string, event = 'qr_code.credited') => {
    const e = qrCreditedEvent({ qrCodeId, amountPaise: 2000, paymentId });
    Object.assign(e.payload.payment.entity, { status, captured: status === 'captured' });
    return { ...e, event };
  };
  const ordersOf = async (machineId: string) =>
    (await server.request('GET', `/v1/orders?machineId=${machineId}&limit=50`)).body.items as any[];

  it('Razorpay: a payment first delivered not captured takes effect once when it arrives captured', async () => {
    const m = await server.createVendingMachine(`RV${randomBytes(3).toString('hex')}`, 2000);
    const paymentId = rid('pay');
    const first = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'authorized'), {
      eventId: rid('evt'),
    });
    expect(first.body).toEqual({ ok: true, ignored: 'NOT_CAPTURED' });
    expect(await ordersOf(m.id)).toEqual([]);
    const captured = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(captured.body).toEqual({ ok: true, orderId: expect.any(String) });
    const again = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(again.body).toEqual({ ok: true, duplicate: true, orderId: captured.body.orderId });
    const orders = await ordersOf(m.id);
    expect(orders.map((o) => [o.id, o.status])).toEqual([[captured.body.orderId, 'PAID']]);
  });

  it('Razorpay: a failure or refund event after the success is acknowledged and changes nothing', async () => {
    const m = await server.createVendingMachine(`RV${randomBytes(3).toString('hex')}`, 2000);
    const paymentId = rid('pay');
    const paid = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(paid.body).toEqual({ ok: true, orderId: expect.any(String) });
    for (const [event, status] of [
      ['payment.failed', 'failed'],
      ['refund.processed', 'refunded'],
      ['payment.refunded', 'refunded'],
    ] as const) {
      const res = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, status, event), {
        eventId: rid('evt'),
      });
      expect(res.status, event).toBe(200);
      expect(res.body).toEqual({ ok: true, ignored: 'EVENT_NOT_HANDLED' });
    }
    const order = await server.request('GET', `/v1/orders/${paid.body.orderId}`);
    expect(order.body.status).toBe('PAID');
    expect((await server.request('GET', `/v1/payment-events/razorpay/${paymentId}`)).body).toMatchObject({
      status: 'PROCESSED',
      reason: null,
      orderId: paid.body.orderId,
    });
  });

  // ---- MTN MoMo (docs/water-payments.md, step 6) --------------------------------------------

  // MoMo's status API says SUCCESSFUL in another currency than asked: the money cannot be applied
  // nor kept in the payment's currency, so the payment fails and staff are told exactly what was
  // taken, to refund it (docs/water-payments.md, step 6); the customer is not told it "did not go
  // through".
  it('MoMo: money taken in another currency ends FAILED with an alert naming what was taken', async () => {
    const tenantId = 'default';
    await server.kioskhub.services.tenants.setDefaultCountryCode(tenantId, '256');
    const planId = rid('plan');
    const now = new Date().toISOString();
    await server.kioskhub.services.customers.repo.insertPlan({
      tenant_id: tenantId,
      id: planId,
      name: 'Review plan',
      kind: 'credit',
      price_minor: 5000,
      currency: 'UGX',
      days: null,
      credit_ml: 100_000,
      daily_limit_ml: null,
      active: 1,
      created_at: now,
      updated_at: now,
    });
    const phone = `+25677${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
    const { payment } = await server.kioskhub.db.transaction().execute(async (tx) => {
      const customer = await server.kioskhub.services.customers.findOrCreate(tenantId, phone, 'test', tx);
      const plan = (await server.kioskhub.services.customers.repo.plan(tenantId, planId, tx))!;
      return server.kioskhub.services.mobileMoney.startPlanPurchase(tx, { customer, plan, channel: 'test' });
    });
    server.kioskhub.services.outbox.flushSoon();
    const req = await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    req.status = 'SUCCESSFUL';
    req.body.currency = 'EUR';
    const cb = await fetch(`${server.url}/webhooks/momo/${payment.id}?key=${MOMO_KEY}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'SUCCESSFUL' }),
    });
    expect(cb.status).toBe(200);
    const failed = await eventually(
      async () => {
        const p = await paymentView(payment.id);
        return p.status === 'FAILED' ? p : undefined;
      },
      10_000,
      'the payment to fail',
    );
    expect(failed).toMatchObject({ failureCode: 'AMOUNT_MISMATCH' });
    const alerts = await alertsAbout(payment.id);
    expect(alerts.map((a) => a.kind)).toEqual(['PAYMENT_AMOUNT_MISMATCH']);
    expect(alerts[0]!.message).toContain('5000 EUR');
    expect(alerts[0]!.message).toContain('refund it');
    // Nothing applied: no plan credit, and nothing kept in UGX that it is not.
    expect(failed.receivedMinor).toBe(0);
  });
});
