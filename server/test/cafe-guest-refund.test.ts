// The guest's order read (`GET /api/orders/:id`, docs/cafe.md §5) carries the order's newest
// refund as the live `payment_refunded` / `refund_updated` carry it, so the guest page's refund
// line survives a reload: PENDING at Stripe, then SUCCEEDED or FAILED, DUE from staff, credited to
// the wallet; never the refund's reason, error or a staff note; not to another table's token.
import { beforeAll, describe, expect, it } from 'vitest';
import { connected, engines, eventually, liveSocket, nextEvent, type TestServer } from './harness.js';
import { guestOrder, stripeCafe, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { postStripe, rid } from './fixtures/stripe-events.js';

const WHSEC = 'whsec_cafe_guest_refund_tests';
const SHAPE = ['orderId', 'refundId', 'amountMinor', 'currency', 'destination', 'status'] as const;
const shapeOf = (e: Record<string, unknown>) => Object.fromEntries(SHAPE.map((k) => [k, e[k]]));

describe.each(engines())('the guest order read carries its newest refund (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;
  const started = stripeCafe(engine, WHSEC);
  beforeAll(() => void ({ server, stripe, cafe } = started));

  const webhook = (event: Record<string, unknown>) => postStripe(server, WHSEC, event);

  /** A guest's order at the first table, paid by card: its order token and Stripe PaymentIntent. */
  async function paidByCard() {
    const order = (await guestOrder(server, cafe)).body as { id: string; orderToken: string };
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { orderId: order.id, method: 'card' },
    });
    expect(pay.status, JSON.stringify(pay.body)).toBe(201);
    const pi = rid('pi');
    const completed = {
      id: rid('evt'),
      object: 'event',
      type: 'checkout.session.completed',
      data: {
        object: {
          id: rid('cs_test'),
          object: 'checkout.session',
          client_reference_id: pay.body.paymentId,
          payment_status: 'paid',
          status: 'complete',
          amount_total: pay.body.amountMinor,
          currency: 'eur',
          payment_intent: pi,
        },
      },
    };
    expect((await webhook(completed)).body.outcome).toBe('settled');
    return { order, paymentId: pay.body.paymentId as string, pi };
  }

  const refundTo = async (paymentId: string, body: Record<string, unknown>) => {
    const res = await server.request('POST', `/v1/payments/${paymentId}/refunds`, {
      body: { reason: 'cold soup from the chef', ...body },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; status: string };
  };

  /** Stripe's refund id of our refund, once the refund job asked Stripe. */
  const stripeIdOf = (paymentId: string, refundId: string) =>
    eventually(async () => {
      const list = (await server.request('GET', `/v1/payments/${paymentId}/refunds`)).body.items;
      return list.find((r: any) => r.id === refundId)?.providerRefundId as string | null;
    });

  it('PENDING at Stripe, SUCCEEDED, then a newer one FAILED: each as the live event said it', async () => {
    const { order, paymentId, pi } = await paidByCard();
    const read = async () => {
      const res = await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };
    expect((await read()).refund).toBeNull();
    const guest = liveSocket(server.url, { orderToken: order.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.id}` });
    stripe.refundStatus(pi, 'pending');

    let live = nextEvent(guest, 'payment_refunded');
    const first = await refundTo(paymentId, { amountMinor: 300 });
    const pending = {
      orderId: order.id,
      refundId: first.id,
      amountMinor: 300,
      currency: 'EUR',
      destination: 'original',
      status: 'PENDING',
    };
    expect((await read()).refund).toEqual(pending);
    expect(shapeOf(await live)).toEqual(pending);
    // Still PENDING once Stripe answered pending (the job stored its refund id).
    const firstAtStripe = await stripeIdOf(paymentId, first.id);
    expect((await read()).refund).toEqual(pending);

    live = nextEvent(guest, 'refund_updated');
    expect((await webhook(stripe.refundUpdated(firstAtStripe!, 'succeeded'))).body.outcome).toBe(
      'refund_processed',
    );
    const succeeded = { ...pending, status: 'SUCCEEDED' };
    expect(shapeOf(await live)).toEqual(succeeded);
    expect((await read()).refund).toEqual(succeeded);

    // A second refund is the newest: PENDING, then refused by Stripe.
    const second = await refundTo(paymentId, { amountMinor: 200 });
    expect((await read()).refund).toEqual({ ...pending, refundId: second.id, amountMinor: 200 });
    const secondAtStripe = await stripeIdOf(paymentId, second.id);
    live = nextEvent(guest, 'refund_updated');
    const refused = stripe.refundUpdated(secondAtStripe!, 'failed', { failureReason: 'lost_or_stolen_card' });
    expect((await webhook(refused)).body.outcome).toBe('refund_failed');
    const failed = { ...pending, refundId: second.id, amountMinor: 200, status: 'FAILED' };
    expect(shapeOf(await live)).toEqual(failed);
    const after = await read();
    expect(after.refund).toEqual(failed);
    // Not why it failed, nor the staff's reason for it.
    expect(JSON.stringify(after)).not.toMatch(/lost_or_stolen|cold soup/);
    guest.close();

    // The table's own token reads it too; another table's token, and another order's, do not.
    const byTable = await server.request('GET', `/api/orders/${order.id}`, {
      token: cafe.tokens[cafe.tables[0]!]!,
    });
    expect(byTable.body.refund).toEqual(failed);
    const otherTable = await server.request('GET', `/api/orders/${order.id}`, {
      token: cafe.tokens[cafe.tables[1]!]!,
    });
    expect(otherTable.status).toBe(404);
    expect(JSON.stringify(otherTable.body)).not.toContain(second.id);
    const other = (await guestOrder(server, cafe, cafe.tables[1])).body;
    const otherOrder = await server.request('GET', `/api/orders/${order.id}`, { token: other.orderToken });
    expect(otherOrder.status).toBe(404);
    // The other order has no refund of its own (not this order's).
    const own = await server.request('GET', `/api/orders/${other.id}`, { token: other.orderToken });
    expect(own.body.refund).toBeNull();
  });

  it('a staff settle FAILED shows without its note; DUE from staff; credited to the wallet', async () => {
    const { order, paymentId, pi } = await paidByCard();
    const read = async () =>
      (await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken })).body;
    stripe.refundStatus(pi, 'pending');
    const atStripe = await refundTo(paymentId, { amountMinor: 100 });
    await stripeIdOf(paymentId, atStripe.id);
    const settled = await server.request('POST', `/v1/refunds/${atStripe.id}/settle`, {
      body: { outcome: 'failed', note: 'Dashboard says refused, checked by Mariam Staffname' },
    });
    expect(settled.status, JSON.stringify(settled.body)).toBe(200);
    const base = { orderId: order.id, currency: 'EUR' };
    const failed = await read();
    expect(failed.refund).toEqual({
      ...base,
      refundId: atStripe.id,
      amountMinor: 100,
      destination: 'original',
      status: 'FAILED',
    });
    expect(JSON.stringify(failed)).not.toMatch(/Mariam|Staffname|refused/);

    const due = await refundTo(paymentId, { amountMinor: 150, to: 'refund_due' });
    expect(due.status).toBe('DUE');
    const dueRefund = { ...base, refundId: due.id, amountMinor: 150, destination: 'refund_due' };
    expect((await read()).refund).toEqual({ ...dueRefund, status: 'DUE' });
    expect((await server.request('POST', `/v1/refunds/${due.id}/complete`, { body: {} })).status).toBe(200);
    expect((await read()).refund).toEqual({ ...dueRefund, status: 'SUCCEEDED' });

    const { db, services } = server.kioskhub;
    const phone = `+25677${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`;
    const customer = await services.customers.create({ tenantId: 'default', phone, actor: 'test' }, db);
    const credit = await refundTo(paymentId, { amountMinor: 50, to: 'credit', customerId: customer.id });
    expect(credit.status).toBe('SUCCEEDED');
    expect((await read()).refund).toEqual({
      ...base,
      refundId: credit.id,
      amountMinor: 50,
      destination: 'credit',
      status: 'SUCCEEDED',
    });
  });
});
