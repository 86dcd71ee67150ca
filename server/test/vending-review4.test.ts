// Review of the vending money path (Razorpay QR webhooks, payment profiles): each test is a
// behaviour docs/api.md promises.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, qrCredited, startServer, type TestServer } from './harness.js';
import { razorpayRefundEvent } from './razorpay-refund-fixtures.js';

const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

describe.each(engines())('vending money path review 4 (%s)', (engine) => {
  let server: TestServer;
  let seq = 0;
  const nextId = () => `VR4${engine[0]}${String(++seq).padStart(3, '0')}`;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  const ordersOf = async (machineId: string): Promise<any[]> => {
    const res = await server.request('GET', `/v1/orders?machineId=${machineId}&limit=200`);
    expect(res.status).toBe(200);
    return res.body.items as any[];
  };

  // docs/api.md §9: "an event id already delivered, now carrying another payment | `409 CONFLICT`;
  // nothing changes" and "The signature and the event id are checked as for payments."
  it('an event id first delivered as a refund event, then carrying a payment, is not answered as a duplicate of nothing', async () => {
    const m = await server.createVendingMachine(nextId(), 2000);
    const eventId = `evt_${randomBytes(6).toString('hex')}`;
    const refund = await server.postWebhook(
      razorpayRefundEvent('refund.processed', {
        id: `rfnd_${randomBytes(6).toString('hex')}`,
        entity: 'refund',
        amount: 500,
        currency: 'INR',
        payment_id: newPaymentId(),
        notes: [],
        status: 'processed',
      }),
      { eventId },
    );
    expect(refund.status).toBe(200);
    const paymentId = newPaymentId();
    const pay = await server.postWebhook(qrCredited(m.qrCodeId, 2000, paymentId), { eventId });
    // Refused, as an event id carrying another payment is: Razorpay keeps the delivery visible
    // and failing. A 200 "duplicate" of a payment never recorded lost the customer's money silently.
    expect({ status: pay.status, code: pay.body.error?.code }).toEqual({ status: 409, code: 'CONFLICT' });
    expect(pay.body.error.message).toMatch(/already delivered for refund rfnd_/);
    expect(await ordersOf(m.id)).toHaveLength(0);
  });
});
