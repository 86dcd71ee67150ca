// A refund of a restaurant kiosk order the kitchen has not made yet (docs/api.md §16): a full
// refund (nothing left to refund) takes it off the kitchen's queue in the refund's transaction:
// the order ends REFUNDED (timeline `kitchen_cancelled`), `kitchen_order_cancelled` goes to the
// kitchen's room, and its receipt not yet printed is CANCELLED (never handed out; one a printer
// holds is cancelled instead of queued again when its attempt fails). A partial refund, an order
// the kitchen completed and a cafe table order change nothing in the kitchen.
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  engines,
  eventually,
  liveSocket,
  startServer,
  type TestServer,
} from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';
import { guestOrder, makeCafe } from './cafe-fixtures.js';

const SITE = 'refundkitchen';
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('a refund of a kitchen order not yet made (%s)', (engine) => {
  let server: TestServer;
  let keys: Record<string, string>;
  let kitchen: Socket;
  const events: { event: string; data: any }[] = [];

  beforeAll(async () => {
    server = await startServer({ engine });
    keys = await createBurgerSite(server, {
      siteId: SITE,
      skuPrefix: `${SITE}-`,
      machines: { RKIOSK: 'kiosk', RCASH: 'cash', RPRINTER: 'printer' },
    });
    kitchen = liveSocket(server.url, { token: ADMIN_TOKEN });
    kitchen.onAny((event: string, data: unknown) => events.push({ event, data }));
    await connected(kitchen);
    const ack = await kitchen
      .timeout(5_000)
      .emitWithAck('subscribe', { room: `kitchen:${SITE}`, tenantId: 'default' });
    expect(ack).toMatchObject({ ok: true });
  });
  afterAll(async () => {
    kitchen?.disconnect();
    await server?.close();
  });

  /** A burger order of the kiosk, paid in cash (₱150 inserted), on the kitchen list. */
  async function paidKioskOrder() {
    const { orderId, orderNumber } = await openCashSession(
      server,
      { siteId: SITE, kiosk: keys['RKIOSK']!, cash: keys['RCASH']! },
      150,
    );
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
    expect(await kitchenList()).toContain(orderId);
    const payments = await server.request('GET', `/v1/payments?orderId=${orderId}`);
    expect(payments.body.items).toHaveLength(1);
    const payment = payments.body.items[0];
    expect(payment).toMatchObject({ method: 'cash', status: 'SUCCEEDED', amountMinor: 15_000 });
    return { orderId, orderNumber, paymentId: payment.id as string };
  }

  async function kitchenList(): Promise<string[]> {
    const res = await server.request('GET', `/v1/kitchen/${SITE}/orders`);
    expect(res.status).toBe(200);
    return res.body.items.map((o: { id: string }) => o.id);
  }

  async function printJobOf(orderId: string) {
    const res = await server.request('GET', `/v1/print-jobs?siteId=${SITE}&limit=200`);
    expect(res.status).toBe(200);
    const jobs = res.body.items.filter((j: { orderId: string }) => j.orderId === orderId);
    expect(jobs).toHaveLength(1);
    return jobs[0] as { jobId: string; status: string };
  }

  const refund = (paymentId: string, body: Record<string, unknown>) =>
    server.request('POST', `/v1/payments/${paymentId}/refunds`, {
      body: { reason: 'customer left', ...body },
    });

  const nextReceipt = () => server.request('GET', '/api/receipt/queue/next', key(keys['RPRINTER']!));

  /** Hands out every receipt waiting (as printed), so each test starts with an empty queue. */
  async function drainQueue(): Promise<void> {
    for (let n = 0; n < 50; n++) {
      const next = await nextReceipt();
      if (next.status === 204) return;
      const done = await server.request(
        'POST',
        `/api/receipt/queue/complete/${next.body.jobId}`,
        key(keys['RPRINTER']!),
      );
      expect(done.status).toBe(200);
    }
  }

  it('a full refund takes the order off the kitchen list, ends it REFUNDED, cancels its receipt and tells the kitchen live', async () => {
    await drainQueue();
    const { orderId, orderNumber, paymentId } = await paidKioskOrder();
    expect((await printJobOf(orderId)).status).toBe('PENDING');

    const res = await refund(paymentId, { to: 'refund_due' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ amountMinor: 15_000, status: 'DUE', destination: 'refund_due' });

    expect(await kitchenList()).not.toContain(orderId);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
    const timeline = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items;
    expect(timeline.at(-1)).toMatchObject({
      type: 'kitchen_cancelled',
      actor: 'admin-token',
      detail: { status: 'REFUNDED', paymentId },
    });
    // Its receipt is never printed: CANCELLED, and no printer is handed it.
    expect((await printJobOf(orderId)).status).toBe('CANCELLED');
    expect((await nextReceipt()).status).toBe(204);
    const cancelled = await server.request('GET', `/v1/print-jobs?siteId=${SITE}&status=CANCELLED`);
    expect(cancelled.body.items.map((j: { orderId: string }) => j.orderId)).toContain(orderId);
    // The kitchen's room is told at once.
    const live = await eventually(
      () => events.find((e) => e.event === 'kitchen_order_cancelled' && e.data.orderId === orderId),
      10_000,
      'kitchen_order_cancelled on the kitchen room',
    );
    expect(live.data).toEqual({
      tenantId: 'default',
      orderId,
      orderNumber,
      siteId: SITE,
      status: 'REFUNDED',
      reason: 'refunded',
    });
    // The payment and the refund are as for any refund, audited once.
    const payment = (await server.request('GET', `/v1/payments/${paymentId}`)).body;
    expect(payment).toMatchObject({ status: 'REFUNDED', refundedMinor: 15_000 });
    const audit = await server.request('GET', `/v1/audit?subjectType=payment&subjectId=${paymentId}`);
    expect(audit.body.items.filter((a: { action: string }) => a.action === 'payment.refund')).toHaveLength(1);
  });

  it('a partial refund changes nothing in the kitchen; the refund of the rest takes it off', async () => {
    await drainQueue();
    const { orderId, paymentId } = await paidKioskOrder();
    const part = await refund(paymentId, { amountMinor: 5_000, to: 'refund_due' });
    expect(part.status, JSON.stringify(part.body)).toBe(201);
    expect(await kitchenList()).toContain(orderId);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
    expect((await printJobOf(orderId)).status).toBe('PENDING');
    expect(events.some((e) => e.event === 'kitchen_order_cancelled' && e.data.orderId === orderId)).toBe(
      false,
    );

    // "To the original method" is staff handing cash back: all that remains now.
    const rest = await refund(paymentId, { to: 'original' });
    expect(rest.status, JSON.stringify(rest.body)).toBe(201);
    expect(rest.body).toMatchObject({ amountMinor: 10_000, destination: 'refund_due' });
    expect(await kitchenList()).not.toContain(orderId);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
    expect((await printJobOf(orderId)).status).toBe('CANCELLED');
    expect((await nextReceipt()).status).toBe(204);
    await eventually(
      () => events.some((e) => e.event === 'kitchen_order_cancelled' && e.data.orderId === orderId),
      10_000,
      'kitchen_order_cancelled',
    );
  });

  it('a receipt a printer holds stays its own; a failed attempt then cancels it instead of printing it again', async () => {
    await drainQueue();
    const { orderId, paymentId } = await paidKioskOrder();
    const leased = await nextReceipt();
    expect(leased.status).toBe(200);
    const job = await printJobOf(orderId);
    expect(leased.body.jobId).toBe(job.jobId);
    expect(job.status).toBe('LEASED');

    expect((await refund(paymentId, { to: 'refund_due' })).status).toBe(201);
    expect(await kitchenList()).not.toContain(orderId);
    expect((await printJobOf(orderId)).status).toBe('LEASED');
    const failed = await server.request('POST', `/api/receipt/queue/failed/${job.jobId}`, {
      ...key(keys['RPRINTER']!),
      body: { error: 'paper jam' },
    });
    expect(failed.body).toEqual({ success: true, status: 'CANCELLED' });
    expect((await printJobOf(orderId)).status).toBe('CANCELLED');
    expect((await nextReceipt()).status).toBe(204);
    const alerts = await server.request('GET', '/v1/alerts?open=true');
    expect(alerts.body.items.filter((a: { subjectId: string }) => a.subjectId === job.jobId)).toEqual([]);
  });

  it('a receipt that had FAILED is cancelled by the full refund too: a retry cannot print it any more', async () => {
    await drainQueue();
    const { orderId, paymentId } = await paidKioskOrder();
    const { jobId } = await printJobOf(orderId);
    // The printer fails it until it is FAILED (5 attempts).
    for (let n = 0; n < 5; n++) {
      const leased = await nextReceipt();
      expect(leased.body.jobId).toBe(jobId);
      const failed = await server.request('POST', `/api/receipt/queue/failed/${jobId}`, {
        ...key(keys['RPRINTER']!),
        body: { error: 'paper jam' },
      });
      expect(failed.status).toBe(200);
    }
    expect((await printJobOf(orderId)).status).toBe('FAILED');
    const failedAlert = async () =>
      (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
          resolvedAt: string | null;
        }[]
      ).find((a) => a.kind === 'PRINT_JOB_FAILED' && a.subjectId === jobId);
    expect((await failedAlert())?.resolvedAt).toBeNull();

    expect((await refund(paymentId, { to: 'refund_due' })).status).toBe(201);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
    expect((await printJobOf(orderId)).status).toBe('CANCELLED');
    // Nobody needs to act on that failed receipt any more: its alert is resolved.
    expect((await failedAlert())?.resolvedAt).toEqual(expect.any(String));
    const retry = await server.request('POST', `/v1/print-jobs/${jobId}/retry`);
    expect(retry.status).toBe(409);
    expect((await nextReceipt()).status).toBe(204);
  });

  it('an order the kitchen completed is unchanged by a full refund', async () => {
    await drainQueue();
    const { orderId, paymentId } = await paidKioskOrder();
    expect((await server.request('POST', `/v1/orders/${orderId}/ready`, { body: {} })).status).toBe(200);
    const res = await refund(paymentId, { to: 'refund_due' });
    expect(res.status).toBe(201);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('COMPLETED');
    expect((await printJobOf(orderId)).status).toBe('PENDING');
    const timeline = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items;
    expect(timeline.map((t: { type: string }) => t.type)).not.toContain('kitchen_cancelled');
    expect(events.some((e) => e.event === 'kitchen_order_cancelled' && e.data.orderId === orderId)).toBe(
      false,
    );
    await drainQueue();
  });

  it('a cafe table order keeps its status and its place in the kitchen when refunded in full', async () => {
    const cafe = await makeCafe(server);
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    expect(order.status).toBe(201);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(pay.status).toBe(201);
    expect(
      (await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} })).status,
    ).toBe(200);
    const orderId = order.body.id as string;
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
    const listed = async () =>
      (await server.request('GET', `/v1/kitchen/${cafe.siteId}/orders`)).body.items.map(
        (o: { id: string }) => o.id,
      );
    expect(await listed()).toContain(orderId);

    const res = await refund(pay.body.paymentId as string, { to: 'refund_due' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
    expect(await listed()).toContain(orderId);
    const timeline = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items;
    expect(timeline.map((t: { type: string }) => t.type)).not.toContain('kitchen_cancelled');
  });
});
