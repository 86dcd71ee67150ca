// Found by following the vending docs as a new operator would (README walkthrough, docs/provisioning.md,
// docs/api.md §5, §7–§12): a UPI QR machine paid through Razorpay, refunds, reviews. Fixed:
// - a refund "to the original method" is a background job that retries Razorpay's refund API, but
//   the call carried no idempotency key: a call Razorpay carried out whose answer was lost (a
//   timeout, a 5xx after the refund, a crash before the commit) was sent again as a new refund, so
//   the customer was refunded twice. Each call now carries `X-Refund-Idempotency: <refund id>`.
// - `PUT /v1/machines/:id/payment-profile` refused the `qrContent` docs/api.md §5 lists (400
//   unknown field), so a profile set by hand could not carry the UPI string the dashboard draws.
// - a machine's late SUCCESS for an order in review whose payment staff had already refunded
//   (`POST /v1/payments/:id/refunds`, e.g. back to the customer's UPI app) turned the order
//   COMPLETED without a word: the customer had the item and the money. It now raises
//   DISPENSED_AFTER_REFUND, as it does for an order marked refund due.
// - a machine that declined a paid dispense for good (OUT_OF_STOCK) was offered it again at every
//   IDLE heartbeat, with every order paid after it waiting behind it, and nobody was told: the QR
//   kept taking money. The order now raises DISPENSE_DECLINED (once while open); a full refund
//   cancels the dispense.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderStatus, silentV1Machine } from './dashboard-fixtures.js';
import {
  connected,
  dispensed,
  engines,
  eventually,
  machineSocket,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';
import { fakeRazorpay, razorpayEnv } from './fake-razorpay.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

/**
 * A local Razorpay refunds API that behaves as Razorpay documents it: a request carrying an
 * `X-Refund-Idempotency` key it has seen gets the refund it made then; any other request makes a
 * new refund. The first request is carried out but its answer is lost (504), as on a timeout.
 */

for (const engine of engines()) {
  describe(`vending walkthrough: UPI QR payments, refunds and reviews (${engine})`, () => {
    let server: TestServer;
    let razorpay: Awaited<ReturnType<typeof fakeRazorpay>>;

    const get = (path: string) => server.request('GET', path);
    const post = (path: string, body: unknown) => server.request('POST', path, { body });
    const paymentOf = async (orderId: string) => (await get(`/v1/payments?orderId=${orderId}`)).body.items[0];

    beforeAll(async () => {
      razorpay = await fakeRazorpay({ loseFirst: 1 });
      server = await startServer({
        engine,
        env: {
          ...razorpayEnv(razorpay),
          JOB_RETRY_BASE_MS: '50',
          DISPATCH_RESULT_TIMEOUT_MS: '300',
        },
      });
    });
    afterAll(async () => {
      await server?.close();
      await razorpay?.close();
    });

    it('a refund to the customer’s UPI app is made once at Razorpay, also when an answer was lost and the job retried', async () => {
      const m = await server.createVendingMachine(uid('RF'), 2000);
      const paid = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
      const payment = await paymentOf(paid.body.orderId);
      expect(payment).toMatchObject({ status: 'SUCCEEDED', provider: 'razorpay' });
      await dispensed(server, m.id, paid.body.orderId);

      const res = await post(`/v1/payments/${payment.id}/refunds`, {
        amountMinor: 700,
        reason: 'warm drink',
      });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const done = await eventually(
        async () => {
          const items = (await get(`/v1/payments/${payment.id}/refunds`)).body.items;
          return items[0]?.status === 'SUCCEEDED' ? items[0] : undefined;
        },
        15_000,
        'the provider refund',
      );

      const calls = razorpay.calls.filter(
        (c) => c.path === `/v1/payments/${payment.providerPaymentId}/refund`,
      );
      expect(calls.length).toBe(2); // the first answer was lost, and the job asked again
      // Both calls are the same refund to Razorpay: the customer gets ₹7.00 back, once.
      const atRazorpay = razorpay.refunds.filter((r) => r.paymentId === payment.providerPaymentId);
      expect(atRazorpay.map((r) => r.amount)).toEqual([700]);
      expect(calls.map((c) => c.key)).toEqual([refundId, refundId]);
      expect(done.providerRefundId).toBe(atRazorpay[0]!.id);
    });

    it('PUT payment-profile keeps the qrContent docs/api.md §5 lists, and a bad one changes nothing', async () => {
      const m = await server.createMachine(uid('PP'));
      const qrCodeId = uid('qr_');
      const upi = 'upi://pay?pa=shop@okaxis&pn=Kiosk%20Hub&am=20.00&cu=INR';
      const put = (body: unknown) => server.request('PUT', `/v1/machines/${m.id}/payment-profile`, { body });
      const res = await put({ provider: 'razorpay', qrCodeId, fixedAmountPaise: 2000, qrContent: upi });
      expect(res.status).toBe(200);
      expect(res.body.paymentProfile).toMatchObject({ qrCodeId, fixedAmountPaise: 2000, qrContent: upi });
      expect((await get(`/v1/machines/${m.id}`)).body.paymentProfile.qrContent).toBe(upi);

      const bad = await put({ provider: 'razorpay', qrCodeId: uid('qr_'), qrContent: 'x'.repeat(5000) });
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe('VALIDATION_FAILED');
      expect((await get(`/v1/machines/${m.id}`)).body.paymentProfile).toMatchObject({
        qrCodeId,
        qrContent: upi,
      });
    });

    it('a late SUCCESS for an order in review whose payment was refunded raises DISPENSED_AFTER_REFUND', async () => {
      const m = await server.createVendingMachine(uid('LATE'), 2000);
      const socket: Socket = await silentV1Machine(server.url, m.id, m.key);
      try {
        const orderId = (await server.postWebhook(qrCredited(m.qrCodeId, 2000))).body.orderId as string;
        await orderStatus(server, orderId, 'NEEDS_REVIEW');
        // Staff refund the customer's payment (here by hand) rather than through the review.
        const payment = await paymentOf(orderId);
        const refunded = await post(`/v1/payments/${payment.id}/refunds`, {
          reason: 'nothing came out',
          to: 'refund_due',
        });
        expect(refunded.status).toBe(201);

        // Then the machine reports that it did dispense after all.
        const ack = await socket.timeout(5_000).emitWithAck('machine:done', { orderId, result: 'SUCCESS' });
        expect(ack).toEqual({ ok: true, orderId });
        const order = (await get(`/v1/orders/${orderId}`)).body;
        expect(order.status).toBe('COMPLETED');
        const timeline = (await get(`/v1/orders/${orderId}/timeline`)).body.items as { type: string }[];
        expect(timeline.map((e) => e.type)).toContain('dispensed_after_review');
        const alerts = (await get('/v1/alerts')).body.items.filter(
          (a: { kind: string; subjectId: string }) =>
            a.kind === 'DISPENSED_AFTER_REFUND' && a.subjectId === orderId,
        );
        expect(alerts).toHaveLength(1);
        // The refund stands until staff decide; a repeat of the result raises nothing more.
        expect(
          await socket.timeout(5_000).emitWithAck('machine:done', { orderId, result: 'SUCCESS' }),
        ).toEqual({
          ok: true,
          orderId,
        });
        expect(
          (await get('/v1/alerts')).body.items.filter(
            (a: { kind: string; subjectId: string }) =>
              a.kind === 'DISPENSED_AFTER_REFUND' && a.subjectId === orderId,
          ),
        ).toHaveLength(1);
        expect((await paymentOf(orderId)).status).toBe('REFUNDED');
      } finally {
        socket.close();
      }
    });

    it('a machine that declines a paid dispense (OUT_OF_STOCK) raises DISPENSE_DECLINED, once per order', async () => {
      const m = await server.createVendingMachine(uid('OOS'), 2000);
      const socket = machineSocket(server.url, m.id, m.key);
      const offered: string[] = [];
      socket.on('machine:dispense', (cmd: { orderId: string }, ack: (a: unknown) => void) => {
        offered.push(cmd.orderId);
        ack({ accepted: false, reason: 'OUT_OF_STOCK' });
      });
      try {
        await connected(socket);
        const heartbeat = () => socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'IDLE' });
        await heartbeat();
        const orderId = (await server.postWebhook(qrCredited(m.qrCodeId, 2000))).body.orderId as string;
        await eventually(() => offered.includes(orderId), 5_000, 'the dispense offered');
        // The machine says IDLE again: the same order is offered (and declined) again.
        const declines = async () =>
          ((await get(`/v1/orders/${orderId}/timeline`)).body.items as { type: string }[]).filter(
            (e) => e.type === 'command_declined',
          ).length;
        await eventually(async () => (await declines()) >= 1, 5_000, 'the first decline');
        await heartbeat();
        await eventually(async () => (await declines()) >= 2, 5_000, 'the second decline');
        expect((await get(`/v1/orders/${orderId}`)).body).toMatchObject({
          status: 'PAID',
          dispatchPending: true,
        });

        // The customer paid and nothing comes out: staff hear of it, once for the order.
        const declined = (await get('/v1/alerts')).body.items.filter(
          (a: { kind: string; subjectId: string }) =>
            a.kind === 'DISPENSE_DECLINED' && a.subjectId === orderId,
        );
        expect(declined).toHaveLength(1);
        expect(declined[0]).toMatchObject({ subjectType: 'order', tenantId: 'default' });
        expect(declined[0].message).toContain('OUT_OF_STOCK');

        // A full refund ends the dispense not sent: the machine is never offered it again.
        const payment = await paymentOf(orderId);
        const refunded = await post(`/v1/payments/${payment.id}/refunds`, {
          reason: 'sold out',
          to: 'refund_due',
        });
        expect(refunded.status).toBe(201);
        expect((await get(`/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
      } finally {
        socket.close();
      }
    });
  });
}
