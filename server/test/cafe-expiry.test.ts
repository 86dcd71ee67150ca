// Abandoned cafe orders (docs/cafe-payments.md §9): a table order still unpaid CAFE_ORDER_TTL_MS
// after it was placed ends CANCELLED / UNPAID_EXPIRED through its own job in the job table,
// audited and told to the guest live; a payment still payable keeps it open; a card paid at the
// last second still pays it; money that arrives after the order expired is never applied to it and
// never lost: a card goes back to the card through Stripe's Refunds API, a bank transfer to the
// payer's wallet or to staff review.
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';
import { guestOrder, makeCafe, uid, type Cafe } from './cafe-fixtures.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';
import {
  connected,
  engines,
  eventually,
  liveSocket,
  nextEvent,
  startServer,
  type TestServer,
} from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';

const WHSEC = 'whsec_cafe_expiry_tests';
const BANK = 'bank-webhook-secret-for-expiry';
const TTL_MS = 1_200;

describe.each(engines())('abandoned cafe orders (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;
  beforeAll(async () => {
    stripe = await fakeStripe({ webhookSecret: WHSEC });
    server = await startServer({
      engine,
      env: {
        CAFE_ORDER_TTL_MS: String(TTL_MS),
        STRIPE_SECRET_KEY: 'sk_test_expiry',
        STRIPE_WEBHOOK_SECRET: WHSEC,
        STRIPE_API_BASE: stripe.url,
        BANK_WEBHOOK_SECRET: BANK,
      },
    });
    stripe.deliverTo(`${server.url}/webhooks/stripe`);
    cafe = await makeCafe(server);
    const site = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: {
        cardGateway: 'stripe',
        bankAccount: { name: 'Corner Cafe', iban: 'DE89370400440532013000' },
      },
    });
    expect(site.status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
    await stripe?.close();
  });

  const token = (i = 0) => cafe.tokens[cafe.tables[i]!]!;
  const order = async (id: string) => (await server.request('GET', `/v1/orders/${id}`)).body;
  const payment = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const initiate = (orderId: string, method: string, i = 0) =>
    server.request('POST', '/api/payments/initiate', { token: token(i), body: { orderId, method } });
  const expire = (orderId: string) => server.kioskhub.services.cafe.expiry.expire({ orderId });
  /** The clock moved past a payment's expiry (its own `payment_expire` job not run yet). */
  const pastExpiry = (paymentId: string) =>
    server.kioskhub.db
      .updateTable('payments')
      .set({ expires_at: new Date(Date.now() - 1_000).toISOString() })
      .where('id', '=', paymentId)
      .execute();
  const afterDeadline = () => new Promise((r) => setTimeout(r, TTL_MS + 100));
  const jobsFor = async (orderId: string) =>
    (
      await server.kioskhub.db
        .selectFrom('outbox')
        .selectAll()
        .where('topic', '=', 'cafe_order_expire')
        .execute()
    ).filter((j) => JSON.parse(j.payload).orderId === orderId);

  it('an order never paid ends CANCELLED / UNPAID_EXPIRED by its own job, audited and live; paying it later is refused', async () => {
    const placed = await guestOrder(server, cafe, cafe.tables[0], {
      items: [{ sku: cafe.sku.cake, qty: 2 }],
    });
    expect(placed.status).toBe(201);
    const id = placed.body.id as string;
    // The deadline is a row of the job table, written with the order.
    const [job] = await jobsFor(id);
    expect(Date.parse(job!.run_at!) - Date.parse(placed.body.createdAt)).toBe(TTL_MS);

    const guest = liveSocket(server.url, { orderToken: placed.body.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${id}` });
    const cancelled = nextEvent(guest, 'order_status_updated', 10_000);
    expect(await cancelled).toMatchObject({
      orderId: id,
      status: 'CANCELLED',
      failureCode: 'UNPAID_EXPIRED',
    });
    guest.close();
    expect(await order(id)).toMatchObject({
      status: 'CANCELLED',
      failureCode: 'UNPAID_EXPIRED',
      paidAt: null,
    });
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', id)
      .where('action', '=', 'order.expire')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor).toBe('system:order-expiry');
    expect(JSON.parse(audit[0]!.after!)).toMatchObject({
      status: 'CANCELLED',
      failureCode: 'UNPAID_EXPIRED',
    });
    // Stock is only taken when an order is paid: both cakes are still there for the next guest.
    const cake = (await server.request('GET', '/v1/products')).body.items.find(
      (p: any) => p.sku === cafe.sku.cake,
    );
    expect(cake.stock).toBe(2);

    // The guest comes back to pay: refused, nothing written; the job again changes nothing.
    const payments = await server.request('GET', `/v1/payments?orderId=${id}`);
    const late = await initiate(id, 'cash');
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: 'INVALID_STATE' });
    expect(late.body.error.message).toContain('not paid in time');
    expect((await server.request('GET', `/v1/payments?orderId=${id}`)).body).toEqual(payments.body);
    expect(await expire(id)).toBe('not_open');
    const timeline = (await server.request('GET', `/v1/orders/${id}/timeline`)).body.items;
    expect(timeline.filter((e: any) => e.type === 'expired')).toEqual([
      expect.objectContaining({ actor: 'system:order-expiry' }),
    ]);
  });

  it('a transfer still payable keeps the order open; when it expires the order does; the late transfer goes to review', async () => {
    const placed = await guestOrder(server, cafe, cafe.tables[1]);
    const id = placed.body.id as string;
    const pay = await initiate(id, 'bank_transfer', 1);
    expect(pay.status).toBe(201);
    await afterDeadline();
    // The order's job ran at the deadline, saw the transfer still payable and looks again after it.
    await eventually(async () => {
      const jobs = await jobsFor(id);
      return jobs.length === 1 && Date.parse(jobs[0]!.run_at!) > Date.parse(pay.body.expiresAt)
        ? jobs
        : undefined;
    });
    expect(await expire(id)).toBe('paying');
    expect((await order(id)).status).toBe('CREATED');

    await pastExpiry(pay.body.paymentId);
    expect(await expire(id)).toBe('cancelled');
    expect(await payment(pay.body.paymentId)).toMatchObject({ status: 'EXPIRED' });
    expect(await order(id)).toMatchObject({ status: 'CANCELLED', failureCode: 'UNPAID_EXPIRED' });

    // The bank books the transfer a day later: not applied to the cancelled order, not lost.
    const raw = JSON.stringify({
      eventId: uid('bank-late-'),
      reference: pay.body.epc.reference,
      amountMinor: 850,
      currency: 'EUR',
    });
    const res = await server.request('POST', '/webhooks/bank', {
      raw,
      token: null,
      headers: {
        'content-type': 'application/json',
        'kioskhub-signature': signatureHeader(raw, BANK, Math.floor(Date.now() / 1000)),
      },
    });
    expect(res.body).toMatchObject({ ok: true, outcome: 'not_pending', surplusTo: 'review' });
    expect((await order(id)).status).toBe('CANCELLED');
    const parked = (await server.request('GET', '/v1/cash/unallocated')).body.items;
    expect(parked.find((i: any) => i.orderNumber === placed.body.orderNumber)).toMatchObject({
      amountMinor: 850,
      reason: 'PAYMENT_NOT_PENDING',
    });
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a card paid at the last second (webhook lost): the expiry asks Stripe first and the order is paid, not cancelled', async () => {
    const placed = await guestOrder(server, cafe, cafe.tables[0]);
    const id = placed.body.id as string;
    const pay = await initiate(id, 'card');
    expect(pay.status).toBe(201);
    const checkoutId = (await payment(pay.body.paymentId)).providerPaymentId as string;
    stripe.completeSession(checkoutId, `pi_${uid('last')}`);
    await afterDeadline();
    await pastExpiry(pay.body.paymentId);
    expect(await expire(id)).toBe('not_open');
    expect(await payment(pay.body.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    const paid = await order(id);
    expect(paid.status).toBe('PAID');
    expect(paid.paidAt).not.toBeNull();
  });

  it('a card paid after its order expired goes back to the card through the Refunds API, once', async () => {
    const placed = await guestOrder(server, cafe, cafe.tables[1]);
    const id = placed.body.id as string;
    const pay = await initiate(id, 'card', 1);
    const checkoutId = (await payment(pay.body.paymentId)).providerPaymentId as string;
    await afterDeadline();
    await pastExpiry(pay.body.paymentId);
    expect(await expire(id)).toBe('cancelled');
    expect((await payment(pay.body.paymentId)).status).toBe('EXPIRED');

    // Stripe's webhook for money taken anyway (a delayed method, a clock apart).
    const pi = `pi_${uid('late')}`;
    const event = {
      id: `evt_${uid('late')}`,
      object: 'event',
      type: 'checkout.session.completed',
      data: {
        object: {
          id: checkoutId,
          object: 'checkout.session',
          client_reference_id: pay.body.paymentId,
          status: 'complete',
          payment_status: 'paid',
          amount_total: 850,
          currency: 'eur',
          payment_intent: pi,
        },
      },
    };
    const send = () => {
      const payload = JSON.stringify(event);
      return server.request('POST', '/webhooks/stripe', {
        raw: payload,
        token: null,
        headers: {
          'content-type': 'application/json',
          'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC }),
        },
      });
    };
    expect((await send()).body).toEqual({ ok: true, outcome: 'not_pending' });
    expect((await order(id)).status).toBe('CANCELLED');
    const refund = await eventually(async () => {
      const list = (await server.request('GET', `/v1/payments/${pay.body.paymentId}/refunds`)).body.items;
      return list.length === 1 && list[0].status === 'SUCCEEDED' ? list[0] : undefined;
    });
    expect(refund).toMatchObject({ destination: 'original', amountMinor: 850 });
    expect(refund.providerRefundId).toMatch(/^re_/);
    const calls = stripe.requests.filter(
      (r) => r.path === '/v1/refunds' && r.form.get('payment_intent') === pi,
    );
    expect(calls.map((c) => Object.fromEntries(c.form))).toEqual([
      { payment_intent: pi, amount: '850', 'metadata[kioskhub_refund_id]': refund.id },
    ]);
    expect(await payment(pay.body.paymentId)).toMatchObject({
      status: 'EXPIRED',
      receivedMinor: 850,
      refundedMinor: 850,
    });
    const alerts = JSON.stringify((await server.request('GET', '/v1/alerts')).body);
    expect(alerts).toContain('refunded to the card');
    // Stripe retries the same event: nothing more.
    expect((await send()).body.outcome).toBe('duplicate');
    expect(
      (await server.request('GET', `/v1/payments/${pay.body.paymentId}/refunds`)).body.items,
    ).toHaveLength(1);
  });

  it('the sweep re-queues only table orders past their deadline with no payment under way', async () => {
    // Two orders whose jobs are lost (placed before expiry existed, or a job that ended FAILED).
    // Each job is dropped right after its order is placed, well inside the TTL even on a busy box.
    const forget = async (orderId: string) => {
      const ids = (await jobsFor(orderId)).map((j) => j.id);
      expect(ids).toHaveLength(1);
      await server.kioskhub.db.deleteFrom('outbox').where('id', 'in', ids).execute();
    };
    const lost = await guestOrder(server, cafe, cafe.tables[0]);
    await forget(lost.body.id);
    const paying = await guestOrder(server, cafe, cafe.tables[1]);
    await forget(paying.body.id);
    expect((await initiate(paying.body.id, 'cash', 1)).status).toBe(201);
    expect(await jobsFor(paying.body.id)).toEqual([]);
    await afterDeadline();

    // The scheduler sweeps every CAFE_ORDER_TTL_MS too (1.2 s here) and may have come first: then
    // this sweep finds nothing left, and the lost order is cancelled all the same.
    await server.kioskhub.services.cafe.expiry.sweep();
    // Queued in the sweep's transaction: none for the order being paid.
    expect(await jobsFor(paying.body.id)).toEqual([]);
    await eventually(async () => ((await order(lost.body.id)).status === 'CANCELLED' ? true : undefined));
    expect(await order(lost.body.id)).toMatchObject({ failureCode: 'UNPAID_EXPIRED', paidAt: null });
    expect((await order(paying.body.id)).status).toBe('CREATED');
  });

  it('a pay-later order the kitchen took never expires; an attempt started during the expiry is never left on a cancelled order', async () => {
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: true } });
    const placed = await guestOrder(server, cafe, cafe.tables[1]);
    const cash = await initiate(placed.body.id, 'cash', 1);
    expect(cash.body.payLater).toBe(true);
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: false } });
    await afterDeadline();
    await pastExpiry(cash.body.paymentId);
    expect(await expire(placed.body.id)).toBe('not_open');
    expect((await order(placed.body.id)).status).toBe('CREATED');

    // Ten orders, each expired and paid for at the same moment: exactly one of the two wins.
    const orders = await Promise.all(
      Array.from({ length: 10 }, () =>
        guestOrder(server, cafe, cafe.tables[0]).then((r) => r.body.id as string),
      ),
    );
    // Past their deadline, their own jobs not yet run (the clock moved; the race is ours to run).
    await server.kioskhub.db
      .updateTable('orders')
      .set({ created_at: new Date(Date.now() - 3_600_000).toISOString() })
      .where('id', 'in', orders)
      .execute();
    for (const id of orders)
      for (const job of await jobsFor(id))
        await server.kioskhub.db
          .updateTable('outbox')
          .set({ run_at: new Date(Date.now() + 3_600_000).toISOString() })
          .where('id', '=', job.id)
          .execute();
    // The expiry starts a little later for each order, so some land before the payment and some after.
    const later = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const raced = await Promise.all(
      orders.map((id, i) => Promise.all([later(i * 40).then(() => expire(id)), initiate(id, 'cash')])),
    );
    for (const [i, id] of orders.entries()) {
      const [outcome, pay] = raced[i]!;
      const o = await order(id);
      const list = (await server.request('GET', `/v1/payments?orderId=${id}`)).body.items;
      if (o.status === 'CANCELLED') {
        expect(pay.status).toBe(409);
        expect(list).toEqual([]);
      } else {
        expect(o.status).toBe('CREATED');
        expect(pay.status).toBe(201);
        expect(outcome).not.toBe('cancelled');
        expect(list.map((p: any) => p.status)).toEqual(['PENDING']);
      }
    }
  });
});
