// Issue 12, money (items 1-3): a payment first seen not captured still takes effect when it is
// captured (once); a repeated event id carrying another payment is refused cleanly and changes
// nothing; a correctly signed body is accepted whatever its content type.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRazorpayBody } from '../../src/providers/razorpay/razorpay.webhook.js';
import { engines, qrCredited, startServer, WEBHOOK_SECRET, type TestServer } from '../harness.js';

const payId = () => `pay_${randomBytes(6).toString('hex')}`;

/** The same event with the payment not captured yet (`authorized`), as Razorpay may deliver it. */
function authorized(event: ReturnType<typeof qrCredited>) {
  const copy = structuredClone(event);
  Object.assign(copy.payload.payment.entity, { status: 'authorized', captured: false });
  return copy;
}

describe.each(engines())('security: money (%s)', (engine) => {
  let server: TestServer;
  let machine: { id: string; key: string; qrCodeId: string };
  beforeAll(async () => {
    server = await startServer({ engine });
    machine = await server.createVendingMachine('SECPAY1', 2000);
  });
  afterAll(async () => {
    await server?.close();
  });

  const ordersOf = async () =>
    (await server.request('GET', `/v1/orders?machineId=${machine.id}&limit=100`)).body.items;

  it('item 1: a payment first seen authorized becomes one order when its captured event arrives', async () => {
    const paymentId = payId();
    const captured = qrCredited(machine.qrCodeId, 2000, paymentId);
    const first = await server.postWebhook(authorized(captured), { eventId: `evt_auth_${paymentId}` });
    expect(first.body).toEqual({ ok: true, ignored: 'NOT_CAPTURED' });
    const before = (await ordersOf()).length;

    // The captured event, twice concurrently and once more later: exactly one order.
    const deliveries = await Promise.all(
      [1, 2].map((i) => server.postWebhook(captured, { eventId: `evt_cap_${i}_${paymentId}` })),
    );
    const later = await server.postWebhook(captured, { eventId: `evt_cap_3_${paymentId}` });
    const orderIds = new Set([...deliveries, later].map((d) => d.body.orderId as string));
    expect(deliveries.every((d) => d.status === 200)).toBe(true);
    expect(orderIds.size).toBe(1);
    expect((await ordersOf()).length).toBe(before + 1);

    const event = await server.request('GET', `/v1/payment-events/razorpay/${paymentId}`);
    expect(event.body).toMatchObject({ status: 'PROCESSED', orderId: [...orderIds][0] });
    // A late retry of the authorized event is a duplicate of the processed payment.
    const retry = await server.postWebhook(authorized(captured), { eventId: `evt_auth_${paymentId}` });
    expect(retry.body).toMatchObject({ ok: true, duplicate: true, orderId: [...orderIds][0] });
  });

  it('item 2: a repeated event id carrying a different payment answers 409 and changes nothing', async () => {
    const eventId = `evt_${randomBytes(6).toString('hex')}`;
    const firstPayment = payId();
    const first = await server.postWebhook(qrCredited(machine.qrCodeId, 2000, firstPayment), { eventId });
    expect(first.status).toBe(200);
    const before = (await ordersOf()).length;

    const otherPayment = payId();
    const other = await server.postWebhook(qrCredited(machine.qrCodeId, 2000, otherPayment), { eventId });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe('CONFLICT');
    expect((await ordersOf()).length).toBe(before);
    expect((await server.request('GET', `/v1/payment-events/razorpay/${otherPayment}`)).status).toBe(404);

    // The same event again is still its plain duplicate.
    const again = await server.postWebhook(qrCredited(machine.qrCodeId, 2000, firstPayment), { eventId });
    expect(again.body).toMatchObject({ ok: true, duplicate: true, orderId: first.body.orderId });
  });

  it.each(['text/plain', 'application/octet-stream', 'application/json; charset=utf-8', undefined])(
    'item 3: a correctly signed body sent as %s is verified over its raw bytes',
    async (contentType) => {
      const paymentId = payId();
      const raw = JSON.stringify(qrCredited(machine.qrCodeId, 2000, paymentId));
      const headers: Record<string, string> = {
        'x-razorpay-signature': signRazorpayBody(raw, WEBHOOK_SECRET),
      };
      if (contentType) headers['content-type'] = contentType;
      const res = await fetch(`${server.url}/webhooks/razorpay`, {
        method: 'POST',
        headers,
        body: Buffer.from(raw),
      });
      const body = (await res.json()) as any;
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body.orderId).toEqual(expect.any(String));

      // And a wrong signature is still refused under that content type.
      const forged = await fetch(`${server.url}/webhooks/razorpay`, {
        method: 'POST',
        headers: { ...headers, 'x-razorpay-signature': signRazorpayBody(raw, 'another-secret') },
        body: Buffer.from(raw.replace(paymentId, payId())),
      });
      expect(forged.status).toBe(401);
    },
  );
});
