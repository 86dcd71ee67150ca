// Cafe card payments through Stripe Checkout (docs/cafe-payments.md), against a local fake of the
// Stripe API that follows its documented shapes: the checkout for the exact amount in the
// currency's minor units, the signed webhook events verified by the official SDK and applied once,
// refunds through the Refunds API never more than was paid, bad input refused with nothing changed.
import Stripe from 'stripe';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  engines,
  eventually,
  liveSocket,
  nextEvent,
  startServer,
  type TestServer,
} from './harness.js';
import { countRows, guestOrder, makeCafe, stripeCafe, uid, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { chargeRefunded, rid } from './fixtures/stripe-events.js';

const WHSEC = 'whsec_cafe_card_tests';

describe.each(engines())('cafe card payments through Stripe (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;
  const started = stripeCafe(engine, WHSEC);
  beforeAll(() => void ({ server, stripe, cafe } = started));

  async function payByCard(c = cafe, table = c.tables[0]!) {
    const order = await guestOrder(server, c, table);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: c.tokens[table]!,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(pay.status, JSON.stringify(pay.body)).toBe(201);
    return { order: order.body, pay: pay.body };
  }

  function post(
    event: Record<string, unknown>,
    opts: { secret?: string; timestamp?: number; header?: string | null } = {},
  ) {
    const payload = JSON.stringify(event);
    const header =
      opts.header === undefined
        ? Stripe.webhooks.generateTestHeaderString({
            payload,
            secret: opts.secret ?? WHSEC,
            ...(opts.timestamp ? { timestamp: opts.timestamp } : {}),
          })
        : opts.header;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (header !== null) headers['stripe-signature'] = header;
    return server.request('POST', '/webhooks/stripe', { raw: payload, token: null, headers });
  }

  const sessionEvent = (
    type: string,
    pay: { paymentId: string; amountMinor: number; currency: string },
    extra: Record<string, unknown> = {},
  ) => ({
    id: rid('evt'),
    object: 'event',
    type,
    data: {
      object: {
        id: rid('cs_test'),
        object: 'checkout.session',
        client_reference_id: pay.paymentId,
        payment_status: 'paid',
        status: 'complete',
        amount_total: pay.amountMinor,
        currency: pay.currency.toLowerCase(),
        payment_intent: rid('pi'),
        ...extra,
      },
    },
  });

  const status = async (paymentId: string) => (await server.request('GET', `/v1/payments/${paymentId}`)).body;

  it('opens a Stripe Checkout Session for the exact amount and answers with its URL', async () => {
    const { pay } = await payByCard();
    expect(pay).toMatchObject({ status: 'PENDING', method: 'card', amountMinor: 850, currency: 'EUR' });
    expect(pay.checkoutUrl).toBe(`${stripe.url}/c/pay/${(await status(pay.paymentId)).providerPaymentId}`);
    const sent = stripe.requests.filter((r) => r.path === '/v1/checkout/sessions').at(-1)!;
    expect(sent.auth).toBe('Bearer sk_test_cafe');
    expect(sent.idempotencyKey).toBe(`checkout-${pay.paymentId}`);
    expect(Object.fromEntries(sent.form)).toMatchObject({
      mode: 'payment',
      client_reference_id: pay.paymentId,
      'line_items[0][price_data][unit_amount]': '850',
      'line_items[0][price_data][currency]': 'eur',
      'line_items[0][quantity]': '1',
    });
    expect(Number(sent.form.get('expires_at')) * 1000 - Date.now()).toBeGreaterThan(30 * 60_000);
    expect(sent.form.get('success_url')).toContain(`/t/order/${pay.orderId}`);
    const row = await status(pay.paymentId);
    expect(row).toMatchObject({ provider: 'stripe', status: 'PENDING' });
    expect(row.providerPaymentId).toMatch(/^cs_test_/);
  });

  it('checkout.session.completed settles the order once; duplicates, forgeries and old signatures change nothing', async () => {
    const { order, pay } = await payByCard();
    const guest = liveSocket(server.url, { orderToken: order.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.id}` });
    const completed = nextEvent(guest, 'payment_completed');
    const event = sessionEvent('checkout.session.completed', pay);
    const pi = (event.data.object as { payment_intent: string }).payment_intent;

    const forged = await post(event, { secret: 'whsec_someone_else' });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('BAD_SIGNATURE');
    const old = await post(event, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    expect(old.status).toBe(401);
    expect(old.body.error.message).toMatch(/tolerance/);
    expect((await post(event, { header: null })).status).toBe(401);
    const tampered = await server.request('POST', '/webhooks/stripe', {
      raw: JSON.stringify({ ...event, type: 'checkout.session.async_payment_failed' }),
      token: null,
      headers: {
        'content-type': 'application/json',
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({
          payload: JSON.stringify(event),
          secret: WHSEC,
        }),
      },
    });
    expect(tampered.status).toBe(401);
    expect(await status(pay.paymentId)).toMatchObject({ status: 'PENDING', receivedMinor: 0 });

    const res = await post(event);
    expect(res.body).toEqual({ ok: true, outcome: 'settled' });
    expect(await completed).toMatchObject({ paymentId: pay.paymentId, method: 'card', amountMinor: 850 });
    guest.close();
    expect(await status(pay.paymentId)).toMatchObject({
      status: 'SUCCEEDED',
      receivedMinor: 850,
      providerPaymentId: pi,
    });
    const paid = await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken });
    expect(paid.body.paidAt).not.toBeNull();

    const entries = await countRows(server, 'ledger_entries');
    expect((await post(event)).body.outcome).toBe('duplicate');
    const same = await Promise.all([1, 2, 3].map(() => post(event)));
    expect(same.map((r) => r.body.outcome)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    // The async "succeeded" of the same checkout names the same money: counted once.
    const async = sessionEvent('checkout.session.async_payment_succeeded', pay, { payment_intent: pi });
    expect((await post(async)).body.outcome).toBe('duplicate');
    expect(await countRows(server, 'ledger_entries')).toBe(entries);
  });

  it('a delayed payment method waits, then fails or succeeds by its async event', async () => {
    const a = await payByCard();
    const waiting = await post(
      sessionEvent('checkout.session.completed', a.pay, { payment_status: 'unpaid', payment_intent: null }),
    );
    expect(waiting.body.outcome).toBe('awaiting');
    expect((await status(a.pay.paymentId)).status).toBe('PENDING');
    const failed = await post(
      sessionEvent('checkout.session.async_payment_failed', a.pay, { payment_status: 'unpaid' }),
    );
    expect(failed.body.outcome).toBe('failed');
    expect(await status(a.pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'CARD_PAYMENT_FAILED',
    });

    const b = await payByCard();
    const ok = await post(sessionEvent('checkout.session.async_payment_succeeded', b.pay));
    expect(ok.body.outcome).toBe('settled');
    expect((await status(b.pay.paymentId)).status).toBe('SUCCEEDED');
  });

  it('a lost webhook: the status check asks Stripe and settles; the late event is then a duplicate', async () => {
    const { pay } = await payByCard();
    const checkoutId = (await status(pay.paymentId)).providerPaymentId;
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect((await status(pay.paymentId)).status).toBe('PENDING');
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await status(pay.paymentId)).toMatchObject({
      status: 'SUCCEEDED',
      receivedMinor: 850,
      providerPaymentId: pi,
    });
    const alerts = JSON.stringify((await server.request('GET', '/v1/alerts')).body);
    const late = await post(
      sessionEvent('checkout.session.completed', pay, { id: checkoutId, payment_intent: pi }),
    );
    expect(late.body.outcome).toBe('duplicate');
    expect(JSON.stringify((await server.request('GET', '/v1/alerts')).body)).toBe(alerts);
  });

  it('another amount or currency is never applied: FAILED with an alert to refund it', async () => {
    const { pay } = await payByCard();
    const res = await post(sessionEvent('checkout.session.completed', { ...pay, amountMinor: 849 }));
    expect(res.body.outcome).toBe('amount_mismatch');
    expect(await status(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
    });
    const alerts = await server.request('GET', '/v1/alerts');
    expect(JSON.stringify(alerts.body)).toContain(pay.paymentId);
    const order = await server.request('GET', `/v1/orders/${pay.orderId}`);
    expect(order.body.paidAt ?? null).toBeNull();
  });

  it('refunds go through the Refunds API, never more than was paid; gateway refunds are recorded', async () => {
    const { order, pay } = await payByCard();
    const event = sessionEvent('checkout.session.completed', pay);
    const pi = (event.data.object as { payment_intent: string }).payment_intent;
    await post(event);
    const guest = liveSocket(server.url, { orderToken: order.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.id}` });
    const refundedLive = nextEvent(guest, 'payment_refunded');

    const too = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold', amountMinor: 851, to: 'original' },
    });
    expect(too.status).toBe(409);
    const refund = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold soup', amountMinor: 300, to: 'original' },
    });
    expect(refund.status).toBe(201);
    expect(refund.body).toMatchObject({ status: 'PENDING', destination: 'original', amountMinor: 300 });
    expect(await refundedLive).toMatchObject({
      paymentId: pay.paymentId,
      amountMinor: 300,
      refundedMinor: 300,
    });
    guest.close();
    const done = await eventually(async () => {
      const list = await server.request('GET', `/v1/payments/${pay.paymentId}/refunds`);
      return list.body.items.find((r: any) => r.id === refund.body.id && r.status === 'SUCCEEDED');
    });
    expect(done.providerRefundId).toMatch(/^re_/);
    const call = stripe.requests.filter((r) => r.path === '/v1/refunds').at(-1)!;
    expect(Object.fromEntries(call.form)).toEqual({
      payment_intent: pi,
      amount: '300',
      'metadata[kioskhub_refund_id]': refund.body.id,
    });
    expect(call.idempotencyKey).toBe(`refund-${refund.body.id}`);

    // Stripe tells us of our own refund: in step, nothing new.
    expect((await post(chargeRefunded(pi, 300))).body.outcome).toBe('refund_in_step');
    // 200 more refunded in the Stripe Dashboard: recorded, not asked for again.
    const calls = stripe.requests.length;
    expect((await post(chargeRefunded(pi, 500))).body.outcome).toBe('refund_recorded');
    expect(await status(pay.paymentId)).toMatchObject({ status: 'PARTIALLY_REFUNDED', refundedMinor: 500 });
    // A report beyond what was paid is capped at what remains.
    expect((await post(chargeRefunded(pi, 5000))).body.outcome).toBe('refund_recorded');
    expect(await status(pay.paymentId)).toMatchObject({ status: 'REFUNDED', refundedMinor: 850 });
    expect(stripe.requests.length).toBe(calls);
    const more = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'again', amountMinor: 1, to: 'original' },
    });
    expect(more.status).toBe(409);
  });

  it('a refund that waited ends live on its order’s rooms (refund_updated), once; not for other payments or tenants', async () => {
    const { order, pay } = await payByCard();
    const paid = sessionEvent('checkout.session.completed', pay);
    const pi = (paid.data.object as { payment_intent: string }).payment_intent;
    expect((await post(paid)).body.outcome).toBe('settled');
    const otherTenant = uid('tnt');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: otherTenant, name: 'Other' } })).status,
    ).toBe(201);
    const elsewhere = (await guestOrder(server, await makeCafe(server, otherTenant))).body;
    // The guest's phone, staff on the tenant room, and another tenant's guest and staff.
    const follow = async (auth: Record<string, string>, room: string) => {
      const socket = liveSocket(server.url, auth);
      await connected(socket);
      expect(await socket.emitWithAck('subscribe', { room })).toMatchObject({ ok: true });
      const heard: any[] = [];
      socket.on('refund_updated', (e) => heard.push(e));
      return { socket, heard };
    };
    const guest = await follow({ orderToken: order.orderToken }, `order:${order.id}`);
    const staff = await follow({ token: ADMIN_TOKEN }, 'tenant:default');
    const otherGuest = await follow({ orderToken: elsewhere.orderToken }, `order:${elsewhere.id}`);
    const otherStaff = await follow({ token: ADMIN_TOKEN }, `tenant:${otherTenant}`);
    expect(await otherGuest.socket.emitWithAck('subscribe', { room: `order:${order.id}` })).toMatchObject({
      ok: false,
    });
    const refundTo = async (paymentId: string, body: Record<string, unknown>) => {
      const res = await server.request('POST', `/v1/payments/${paymentId}/refunds`, {
        body: { reason: 'cold soup', ...body },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body as { id: string; status: string };
    };
    /** A refund to the card that Stripe answered pending: its `re_…` id. */
    const pendingAtStripe = async (paymentId: string, amountMinor: number) => {
      const refund = await refundTo(paymentId, { amountMinor });
      expect(refund.status).toBe('PENDING');
      const reId = await eventually(async () => {
        const list = (await server.request('GET', `/v1/payments/${paymentId}/refunds`)).body.items;
        return list.find((r: any) => r.id === refund.id)?.providerRefundId as string | null;
      });
      return { refundId: refund.id, reId };
    };
    const about = {
      tenantId: 'default',
      orderId: order.id,
      paymentId: pay.paymentId,
      currency: 'EUR',
      destination: 'original',
    };
    stripe.refundStatus(pi, 'pending');

    // Pending at Stripe, then its webhook says made: SUCCEEDED; the same news again changes nothing.
    const first = await pendingAtStripe(pay.paymentId, 300);
    const made = stripe.refundUpdated(first.reId, 'succeeded');
    let next = nextEvent(guest.socket, 'refund_updated');
    expect((await post(made)).body.outcome).toBe('refund_processed');
    expect(await next).toEqual({
      ...about,
      refundId: first.refundId,
      amountMinor: 300,
      refundedMinor: 300,
      status: 'SUCCEEDED',
    });
    expect((await post(made)).body.outcome).toBe('refund_duplicate');

    // Refused by Stripe after pending: FAILED with why, the payment no longer counting it.
    const second = await pendingAtStripe(pay.paymentId, 200);
    next = nextEvent(guest.socket, 'refund_updated');
    const refused = stripe.refundUpdated(second.reId, 'failed', { failureReason: 'lost_or_stolen_card' });
    expect((await post(refused)).body.outcome).toBe('refund_failed');
    expect(await next).toEqual({
      ...about,
      refundId: second.refundId,
      amountMinor: 200,
      refundedMinor: 300,
      status: 'FAILED',
    });

    // Due from staff, then handed back.
    const due = await refundTo(pay.paymentId, { amountMinor: 100, to: 'refund_due' });
    expect(due.status).toBe('DUE');
    next = nextEvent(guest.socket, 'refund_updated');
    expect((await server.request('POST', `/v1/refunds/${due.id}/complete`, { body: {} })).status).toBe(200);
    expect(await next).toEqual({
      ...about,
      refundId: due.id,
      destination: 'refund_due',
      amountMinor: 100,
      refundedMinor: 400,
      status: 'SUCCEEDED',
    });

    // Credited at once: payment_refunded says so already, no refund_updated.
    const { db, services } = server.kioskhub;
    const phone = `+25677${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    const customer = await services.customers.create({ tenantId: 'default', phone, actor: 'test' }, db);
    const credited = nextEvent(guest.socket, 'payment_refunded');
    const credit = await refundTo(pay.paymentId, { amountMinor: 50, to: 'credit', customerId: customer.id });
    expect(credit.status).toBe('SUCCEEDED');
    expect(await credited).toMatchObject({ refundId: credit.id, status: 'SUCCEEDED' });

    // A card payment that is not an order's (a wallet top-up): its refund ends with no live event.
    const topupPi = rid('pi');
    const topup = await db.transaction().execute(async (tx) => {
      const p = await services.intents.create(tx, {
        tenantId: 'default',
        siteId: cafe.siteId,
        purpose: 'wallet_topup',
        method: 'card',
        provider: 'stripe',
        customerId: customer.id,
        amountMinor: 1000,
        currency: 'EUR',
      });
      await services.settlement.succeed(tx, p.id, 1000, { actor: 'test' }, { providerPaymentId: topupPi });
      return p;
    });
    stripe.refundStatus(topupPi, 'pending');
    const topupRefund = await pendingAtStripe(topup.id, 400);
    expect((await post(stripe.refundUpdated(topupRefund.reId, 'succeeded'))).body.outcome).toBe(
      'refund_processed',
    );
    await new Promise((r) => setTimeout(r, 500));

    const ended = [first.refundId, second.refundId, due.id];
    expect(guest.heard.map((e) => e.refundId)).toEqual(ended);
    expect(staff.heard.map((e) => e.refundId)).toEqual(ended);
    expect(otherGuest.heard).toEqual([]);
    expect(otherStaff.heard).toEqual([]);
    for (const s of [guest, staff, otherGuest, otherStaff]) s.socket.close();
  });

  it('charges in the currency exponent: yen have no decimals', async () => {
    const siteId = uid('jpy');
    await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Kissaten', currency: 'JPY' } });
    await server.request('PATCH', `/v1/sites/${siteId}`, { body: { cardGateway: 'stripe' } });
    const sku = uid('matcha');
    await server.request('POST', '/v1/products', { body: { sku, name: 'Matcha', priceMinor: 550, siteId } });
    const table = uid('T');
    await server.createMachine(table, { kind: 'table', siteId, name: 'Table' });
    const token = (await server.request('GET', `/v1/machines/${table}/table-link`)).body.token;
    const order = await server.request('POST', '/api/orders', {
      token,
      body: { siteId, tableId: table, items: [{ sku, qty: 2 }] },
    });
    const pay = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(pay.body).toMatchObject({ amountMinor: 1100, currency: 'JPY' });
    const sent = stripe.requests.filter((r) => r.path === '/v1/checkout/sessions').at(-1)!;
    expect(sent.form.get('line_items[0][price_data][unit_amount]')).toBe('1100');
    expect(sent.form.get('line_items[0][price_data][currency]')).toBe('jpy');
    expect((await post(sessionEvent('checkout.session.completed', pay.body))).body.outcome).toBe('settled');
  });

  it('bad input and a failing gateway change nothing the guest cannot retry', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const token = cafe.tokens[cafe.tables[1]!]!;
    const bad = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'card', extra: 1 },
    });
    expect(bad.status).toBe(400);
    stripe.failOnce();
    const failed = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBe('UNAVAILABLE');
    const list = await server.request('GET', `/v1/payments?orderId=${order.body.id}`);
    expect(list.body.items.map((p: any) => [p.status, p.failureCode])).toEqual([
      ['FAILED', 'PRESENT_FAILED'],
    ]);
    const retry = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(retry.status).toBe(201);
    // A body that is not JSON but correctly signed, and an event we do not handle.
    const payload = 'not json';
    const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC });
    const notJson = await server.request('POST', '/webhooks/stripe', {
      raw: payload,
      token: null,
      headers: { 'content-type': 'application/json', 'stripe-signature': header },
    });
    expect(notJson.status).toBe(400);
    const other = await post({
      id: rid('evt'),
      object: 'event',
      type: 'customer.created',
      data: { object: {} },
    });
    expect(other.body).toEqual({ ok: true, outcome: 'ignored' });
    // A cafe that takes no cards.
    const plain = await makeCafe(server);
    const o2 = await guestOrder(server, plain, plain.tables[0]);
    const no = await server.request('POST', '/api/payments/initiate', {
      token: plain.tokens[plain.tables[0]!]!,
      body: { orderId: o2.body.id, method: 'card' },
    });
    expect(no.status).toBe(503);
    expect(no.body.error.message).toBe('this cafe takes no card payments');
  });
});

describe('stripe webhook without STRIPE_* configuration', () => {
  it('answers 503 PROVIDER_NOT_CONFIGURED', async () => {
    const server = await startServer();
    try {
      const res = await server.request('POST', '/webhooks/stripe', { raw: '{}', token: null });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
    } finally {
      await server.close();
    }
  });
});
