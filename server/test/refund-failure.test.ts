// A refund "to the original method" of a Razorpay payment is a background job that calls
// Razorpay's refund API (docs/api.md §8). When Razorpay refused it for good (a 4xx: "fully refunded
// already", "amount exceeds"…), or the job ran out of attempts, the refund stayed PENDING for ever:
// the payment showed REFUNDED, the money sat in the site's refunds_due, and staff could neither
// complete it (only DUE) nor refund again. Now the refund ends FAILED with the provider's reason,
// its money goes back where it came from (the payment may be refunded again), staff get a
// REFUND_FAILED alert, and it is audited. Transient errors (network, 5xx, 429) are retried as before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv } from './fake-razorpay.js';
import { razorpayRefundReads } from './razorpay-refund-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

/**
 * A local Razorpay refunds API. A request carrying an `X-Refund-Idempotency` key it has made a
 * refund for gets that refund again; otherwise it answers what the test scripted for the payment
 * (an error, nothing refunded), and once the script is spent it makes the refund.
 */

for (const engine of engines()) {
  describe(`a Razorpay refund the provider refuses or never answers (${engine})`, () => {
    let server: TestServer;
    let razorpay: Awaited<ReturnType<typeof fakeRazorpay>>;

    const { get, post, balance, alertsOf, refundOf, paidPayment, expectRefusedRefund } = razorpayRefundReads(
      () => server,
    );

    const settled = (paymentId: string, refundId: string, what: string) =>
      eventually(
        async () => {
          const r = await refundOf(paymentId, refundId);
          return r && r.status !== 'PENDING' ? r : undefined;
        },
        20_000,
        what,
      );

    beforeAll(async () => {
      razorpay = await fakeRazorpay();
      server = await startServer({
        engine,
        env: {
          ...razorpayEnv(razorpay),
          JOB_RETRY_BASE_MS: '20',
          JOB_POLL_MS: '50',
        },
      });
    });
    afterAll(async () => {
      await server?.close();
      await razorpay?.close();
    });

    it('a refusal (400) ends the refund FAILED with the reason, gives the money back to the payment, alerts, and a second refund works', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      // Razorpay gives the same answer however often it is asked.
      razorpay.script(
        payment.providerPaymentId,
        Array.from({ length: 20 }, () => ({
          status: 400,
          code: 'BAD_REQUEST_ERROR',
          description: 'The payment has been fully refunded already',
        })),
      );

      const res = await post(`/v1/payments/${payment.id}/refunds`, { reason: 'item jammed' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ status: 'PENDING', destination: 'original', amountMinor: 2000 });
      const refundId = res.body.id as string;

      const failed = await settled(payment.id, refundId, 'the refused refund');
      expect(failed).toMatchObject({ status: 'FAILED', providerRefundId: null });
      expect((failed as unknown as { error: string }).error).toMatch(
        /400 BAD_REQUEST_ERROR: The payment has been fully refunded already/,
      );
      expect((failed as unknown as { completedAt: string | null }).completedAt).toEqual(expect.any(String));
      // A refusal is Razorpay's answer on this refund: asked once, not again.
      await new Promise((r) => setTimeout(r, 300));
      expect(razorpay.calls.filter((c) => c.paymentId === payment.providerPaymentId)).toHaveLength(1);

      // Nothing was refunded: the payment kept its money, all of it refundable again; staff are told.
      const alert = await expectRefusedRefund({
        paymentId: payment.id,
        refundId,
        amountMinor: 2000,
        revenue,
        due,
      });
      expect(alert.message).toMatch(/fully refunded already/);
      // The job did not fail (its refund did).
      const jobFailed = ((await get('/v1/alerts')).body.items as { kind: string; message: string }[]).filter(
        (a) => a.kind === 'JOB_FAILED' && a.message.includes('(refund)'),
      );
      expect(jobFailed).toEqual([]);

      // The failed refund is final; staff refund again, here by hand.
      expect((await post(`/v1/refunds/${refundId}/complete`, {})).status).toBe(409);
      const again = await post(`/v1/payments/${payment.id}/refunds`, {
        reason: 'item jammed',
        to: 'refund_due',
      });
      expect(again.status).toBe(201);
      expect(again.body).toMatchObject({ status: 'DUE', amountMinor: 2000 });
      expect(
        (await post(`/v1/refunds/${again.body.id}/complete`, { note: 'cash from the till' })).status,
      ).toBe(200);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'REFUNDED',
        refundedMinor: 2000,
      });
      expect(await balance('revenue')).toBe(revenue - 2000);
      expect(await balance('refunds_due')).toBe(due);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('a transient 500 is retried: one refund at Razorpay, SUCCEEDED', async () => {
      const payment = await paidPayment();
      razorpay.script(payment.providerPaymentId, [{ status: 500 }]);
      const res = await post(`/v1/payments/${payment.id}/refunds`, {
        amountMinor: 700,
        reason: 'warm drink',
      });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const done = await settled(payment.id, refundId, 'the retried refund');
      expect(done).toMatchObject({ status: 'SUCCEEDED' });
      const calls = razorpay.calls.filter((c) => c.paymentId === payment.providerPaymentId);
      expect(calls.map((c) => c.key)).toEqual([refundId, refundId]);
      const atRazorpay = razorpay.refunds.filter((r) => r.paymentId === payment.providerPaymentId);
      expect(atRazorpay.map((r) => r.amount)).toEqual([700]);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'PARTIALLY_REFUNDED',
        refundedMinor: 700,
      });
      expect(await alertsOf(refundId)).toEqual([]);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('a refund whose job runs out of attempts on transient errors ends FAILED the same way', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      razorpay.script(
        payment.providerPaymentId,
        Array.from({ length: 20 }, () => ({ status: 503, code: 'SERVER_ERROR', description: 'down' })),
      );
      const res = await post(`/v1/payments/${payment.id}/refunds`, {
        amountMinor: 500,
        reason: 'short pour',
      });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const failed = await settled(payment.id, refundId, 'the refund that ran out of attempts');
      expect(failed).toMatchObject({ status: 'FAILED' });
      expect((failed as unknown as { error: string }).error).toMatch(/503/);
      expect(razorpay.calls.filter((c) => c.paymentId === payment.providerPaymentId)).toHaveLength(8);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'SUCCEEDED',
        refundedMinor: 0,
      });
      expect(await balance('revenue')).toBe(revenue);
      expect(await balance('refunds_due')).toBe(due);
      const alerts = await alertsOf(refundId);
      expect(alerts.map((a) => a.kind)).toEqual(['REFUND_FAILED']);
      // No answer is not a refusal: staff check Razorpay before refunding again.
      expect(alerts[0]!.message).toMatch(/Razorpay dashboard/);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 30_000);
  });
}
