// What the tests of Razorpay refunds share: a paid and dispensed ₹20.00 QR payment, the reads a
// refund is checked by (its row, the default site's ledger, its alerts), and what a refund that
// ended FAILED as a refusal must have left behind.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { dispensed, qrCredited, type TestServer } from './harness.js';

type Alert = { kind: string; subjectId: string; message: string; resolvedAt: string | null };
type Refund = { id: string; status: string; providerRefundId: string | null; error: string | null };

/** `server()`: the test's server, started in its beforeAll. */
export function razorpayRefundReads(server: () => TestServer) {
  const get = (path: string) => server().request('GET', path);
  const post = (path: string, body: unknown) => server().request('POST', path, { body });
  const balance = async (kind: string) => {
    const res = await get(`/v1/ledger/accounts?ownerType=site&ownerId=default&kind=${kind}&unit=INR`);
    return (res.body.items[0]?.balance as number | undefined) ?? 0;
  };
  const alertsOf = async (subjectId: string) =>
    ((await get('/v1/alerts')).body.items as Alert[]).filter((a) => a.subjectId === subjectId);
  const refundOf = async (paymentId: string, refundId: string) =>
    ((await get(`/v1/payments/${paymentId}/refunds`)).body.items as Refund[]).find((r) => r.id === refundId)!;

  /** A QR payment of ₹20.00 by a new vending machine, its item dispensed. */
  async function paidPayment() {
    const m = await server().createVendingMachine(`RF${randomBytes(4).toString('hex')}`, 2000);
    const paid = await server().postWebhook(qrCredited(m.qrCodeId, 2000));
    expect(paid.status).toBe(200);
    const payment = (await get(`/v1/payments?orderId=${paid.body.orderId}`)).body.items[0];
    expect(payment).toMatchObject({ status: 'SUCCEEDED', provider: 'razorpay', refundedMinor: 0 });
    await dispensed(server(), m.id, paid.body.orderId);
    return payment as { id: string; providerPaymentId: string };
  }

  /**
   * A refund of a whole payment that Razorpay refused: the payment keeps the money again, the
   * ledger is where it was before the refund (`revenue`, `due`), one REFUND_FAILED alert (returned,
   * for its message) and one `refund.fail` audit row by Razorpay.
   */
  async function expectRefusedRefund(r: {
    paymentId: string;
    refundId: string;
    amountMinor: number;
    revenue: number;
    due: number;
  }): Promise<Alert> {
    expect((await get(`/v1/payments/${r.paymentId}`)).body).toMatchObject({
      status: 'SUCCEEDED',
      refundedMinor: 0,
    });
    expect(await balance('revenue')).toBe(r.revenue);
    expect(await balance('refunds_due')).toBe(r.due);
    const alerts = await alertsOf(r.refundId);
    expect(alerts.map((a) => a.kind)).toEqual(['REFUND_FAILED']);
    expect((await get(`/v1/audit?subjectId=${r.refundId}`)).body.items).toEqual([
      expect.objectContaining({
        action: 'refund.fail',
        actor: 'provider:razorpay',
        before: expect.objectContaining({ status: 'PENDING' }),
        after: expect.objectContaining({
          status: 'FAILED',
          paymentId: r.paymentId,
          amountMinor: r.amountMinor,
        }),
      }),
    ]);
    return alerts[0]!;
  }

  return { get, post, balance, alertsOf, refundOf, paidPayment, expectRefusedRefund };
}

/** A Razorpay refund webhook carrying `entity`, the refund as Razorpay shows it (its notes too). */
export const razorpayRefundEvent = (
  event: 'refund.created' | 'refund.processed' | 'refund.failed',
  entity: Record<string, unknown>,
) => ({
  entity: 'event',
  account_id: 'acc_TEST0000000001',
  event,
  contains: ['refund', 'payment'],
  payload: {
    refund: { entity },
    payment: {
      entity: {
        id: entity['payment_id'],
        entity: 'payment',
        amount: 2000,
        currency: 'INR',
        status: 'captured',
      },
    },
  },
  created_at: 1764706300,
});

/** Fast job retries: a refund job runs through its 8 attempts in a second or two. */
export const FAST_JOBS = { JOB_RETRY_BASE_MS: '10', JOB_POLL_MS: '50' };
