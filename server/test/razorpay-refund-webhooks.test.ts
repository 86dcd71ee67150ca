// Razorpay makes refunds asynchronously: its refund API answers `pending` or `processed`, and
// later sends `refund.processed` or `refund.failed` (docs/api.md §8, §9). A refund answered
// `pending` used to be SUCCEEDED at once, and a refund Razorpay later failed stayed counted as
// refunded for good. Now a `pending` answer leaves the refund PENDING (its Razorpay id stored)
// until `refund.processed` makes it SUCCEEDED, or `refund.failed` ends it FAILED (the payment
// keeps the money again, REFUND_FAILED alert, audited). The webhook is signed and deduplicated
// as the payment events are; an unknown refund id is answered 2xx and ignored.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv } from './fake-razorpay.js';
import { razorpayRefundReads } from './razorpay-refund-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;

/**
 * A local Razorpay refunds API whose refunds are `pending` (as Razorpay answers a refund the bank
 * has not confirmed yet); the same `X-Refund-Idempotency` key gets the same refund again. The
 * answers for a payment it was told to `hold` wait until released (the refund is made at once).
 */

/** A refund webhook as Razorpay sends it (refund and payment entities). */
function refundEvent(
  event: 'refund.created' | 'refund.processed' | 'refund.failed',
  refund: { id: string; paymentId: string; amount: number; notes?: unknown },
) {
  return {
    entity: 'event',
    account_id: 'acc_TEST0000000001',
    event,
    contains: ['refund', 'payment'],
    payload: {
      refund: {
        entity: {
          id: refund.id,
          entity: 'refund',
          amount: refund.amount,
          currency: 'INR',
          payment_id: refund.paymentId,
          notes: refund.notes ?? [],
          receipt: null,
          acquirer_data: { arn: null },
          created_at: 1764706238,
          batch_id: null,
          status:
            event === 'refund.processed' ? 'processed' : event === 'refund.failed' ? 'failed' : 'pending',
          speed_processed: 'normal',
          speed_requested: 'normal',
        },
      },
      payment: {
        entity: {
          id: refund.paymentId,
          entity: 'payment',
          amount: 2000,
          currency: 'INR',
          status: 'captured',
          method: 'upi',
          captured: true,
          amount_refunded: event === 'refund.failed' ? 0 : refund.amount,
        },
      },
    },
    created_at: 1764706300,
  };
}

for (const engine of engines()) {
  describe(`Razorpay refund webhooks: pending, processed, failed (${engine})`, () => {
    let server: TestServer;
    let razorpay: Awaited<ReturnType<typeof fakeRazorpay>>;

    const { get, post, balance, alertsOf, refundOf, paidPayment, expectRefusedRefund } = razorpayRefundReads(
      () => server,
    );

    /** A refund to the original method that Razorpay answered `pending`. */
    async function pendingRefund(paymentId: string, amountMinor: number) {
      const res = await post(`/v1/payments/${paymentId}/refunds`, { amountMinor, reason: 'item jammed' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ status: 'PENDING', destination: 'original' });
      const refundId = res.body.id as string;
      const atRazorpay = await eventually(
        async () => {
          const r = razorpay.refunds.find((x) => x.key === refundId);
          if (!r) return undefined;
          const row = await refundOf(paymentId, refundId);
          return row.providerRefundId ? r : undefined;
        },
        20_000,
        'the refund answered pending',
      );
      // Razorpay has not refunded it yet: it waits, with Razorpay's id.
      const row = await refundOf(paymentId, refundId);
      expect(row).toMatchObject({ status: 'PENDING', providerRefundId: atRazorpay.id, error: null });
      return { refundId, atRazorpay };
    }

    beforeAll(async () => {
      razorpay = await fakeRazorpay({ refundStatus: 'pending' });
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

    it('a refund answered pending stays PENDING until refund.processed makes it SUCCEEDED, once', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment.id, 2000);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'REFUNDED',
        refundedMinor: 2000,
      });
      // Owed back until Razorpay says it was paid.
      expect(await balance('refunds_due')).toBe(due + 2000);
      expect(await balance('revenue')).toBe(revenue - 2000);

      // refund.created (still pending) changes nothing.
      const created = await server.postWebhook(
        refundEvent('refund.created', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 2000,
        }),
        { eventId: uid('evt_') },
      );
      expect(created.status).toBe(200);
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');

      // A bad signature is refused and changes nothing.
      const processed = refundEvent('refund.processed', {
        id: atRazorpay.id,
        paymentId: payment.providerPaymentId,
        amount: 2000,
      });
      const eventId = uid('evt_');
      const forged = await server.postWebhook(processed, { eventId, signature: 'ab'.repeat(32) });
      expect(forged.status).toBe(401);
      expect(forged.body.error.code).toBe('BAD_SIGNATURE');
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');
      expect(await balance('refunds_due')).toBe(due + 2000);

      const res = await server.postWebhook(processed, { eventId });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true, refundId });
      const done = await refundOf(payment.id, refundId);
      expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: atRazorpay.id, error: null });
      expect((done as unknown as { completedAt: string | null }).completedAt).toEqual(expect.any(String));
      expect(await balance('refunds_due')).toBe(due);
      expect(await balance('revenue')).toBe(revenue - 2000);
      const audit = (await get(`/v1/audit?subjectId=${refundId}`)).body.items;
      expect(audit).toEqual([
        expect.objectContaining({
          action: 'refund.complete',
          actor: 'provider:razorpay',
          after: expect.objectContaining({ status: 'SUCCEEDED', providerRefundId: atRazorpay.id }),
        }),
      ]);

      // The same delivery again, and the same news under another event id: nothing changes.
      const again = await server.postWebhook(processed, { eventId });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ ok: true, duplicate: true });
      const twin = await server.postWebhook(processed, { eventId: uid('evt_') });
      expect(twin.status).toBe(200);
      expect(twin.body).toMatchObject({ ok: true, duplicate: true, refundId });
      expect(await refundOf(payment.id, refundId)).toEqual(done);
      expect(await balance('refunds_due')).toBe(due);
      expect((await get(`/v1/audit?subjectId=${refundId}`)).body.items).toHaveLength(1);
      expect(await alertsOf(refundId)).toEqual([]);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('refund.failed ends a pending refund FAILED: the payment keeps the money and may be refunded again', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment.id, 1500);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'PARTIALLY_REFUNDED',
        refundedMinor: 1500,
      });

      const res = await server.postWebhook(
        refundEvent('refund.failed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 1500,
        }),
        { eventId: uid('evt_') },
      );
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true, refundId });
      const failed = await refundOf(payment.id, refundId);
      expect(failed).toMatchObject({ status: 'FAILED', providerRefundId: atRazorpay.id });
      expect(failed.error).toMatch(new RegExp(`Razorpay failed refund ${atRazorpay.id}`));
      // Nothing was refunded: the payment keeps the money, the ledger is back, staff are told.
      const alert = await expectRefusedRefund({
        paymentId: payment.id,
        refundId,
        amountMinor: 1500,
        revenue,
        due,
      });
      expect(alert.message).toMatch(/refused by Razorpay/);

      // A late refund.processed for a failed refund moves no money, but the books and the payer's
      // money now disagree: staff are told (REFUND_PROVIDER_MISMATCH).
      const late = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 1500,
        }),
        { eventId: uid('evt_') },
      );
      expect(late.status).toBe(200);
      expect((await refundOf(payment.id, refundId)).status).toBe('FAILED');
      expect(await balance('refunds_due')).toBe(due);
      const told = await alertsOf(refundId);
      expect(told.map((a) => a.kind).sort()).toEqual(['REFUND_FAILED', 'REFUND_PROVIDER_MISMATCH']);
      expect(told.find((a) => a.kind === 'REFUND_PROVIDER_MISMATCH')!.message).toMatch(
        /Razorpay says refund .* was processed, but it is FAILED here: the payer has this money back/,
      );

      // All of it may be refunded again.
      const again = await post(`/v1/payments/${payment.id}/refunds`, {
        reason: 'item jammed',
        to: 'refund_due',
      });
      expect(again.status).toBe(201);
      expect(again.body).toMatchObject({ status: 'DUE', amountMinor: 2000 });
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('news that comes before the refund API answered is matched by payment and amount; an unknown refund id is answered 2xx and changes nothing', async () => {
      const payment = await paidPayment();
      const other = await paidPayment();
      const release = razorpay.hold(payment.providerPaymentId);
      const res = await post(`/v1/payments/${payment.id}/refunds`, {
        amountMinor: 500,
        reason: 'short pour',
      });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      // Razorpay made the refund; its answer has not arrived yet.
      const atRazorpay = await eventually(
        async () => razorpay.refunds.find((x) => x.key === refundId),
        20_000,
        'the refund at Razorpay',
      );
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'PENDING',
        providerRefundId: null,
      });
      const due = await balance('refunds_due');

      // Refunds nobody here knows: another payment's (which has none), another amount.
      for (const [paymentId, amount] of [
        [other.providerPaymentId, 500],
        [payment.providerPaymentId, 400],
      ] as const) {
        const unknown = await server.postWebhook(
          refundEvent('refund.failed', { id: `rfnd_${randomBytes(5).toString('hex')}`, paymentId, amount }),
          { eventId: uid('evt_') },
        );
        expect(unknown.status).toBe(200);
        expect(unknown.body).toEqual({ ok: true, ignored: 'UNKNOWN_REFUND' });
      }
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'PENDING',
        providerRefundId: null,
      });
      expect(await balance('refunds_due')).toBe(due);
      expect((await get(`/v1/payments/${other.id}`)).body).toMatchObject({
        status: 'SUCCEEDED',
        refundedMinor: 0,
      });

      const early = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 500,
        }),
        { eventId: uid('evt_') },
      );
      expect(early.status).toBe(200);
      expect(early.body).toEqual({ ok: true, refundId });
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'SUCCEEDED',
        providerRefundId: atRazorpay.id,
      });
      expect(await balance('refunds_due')).toBe(due - 500);

      // The late `pending` answer changes nothing.
      release();
      await new Promise((r) => setTimeout(r, 400));
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'SUCCEEDED',
        providerRefundId: atRazorpay.id,
      });
      expect((await get(`/v1/audit?subjectId=${refundId}`)).body.items).toHaveLength(1);
      expect(await balance('refunds_due')).toBe(due - 500);

      // Signed but malformed: 400, as for payment events.
      const malformed = await server.postWebhook(
        { event: 'refund.processed', payload: {} },
        { eventId: uid('evt_') },
      );
      expect(malformed.status).toBe(400);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('early news that fits two pending refunds of the same payment and amount is not claimed: answered 503, it settles its own refund when delivered again', async () => {
      const payment = await paidPayment();
      const due = await balance('refunds_due');
      const release = razorpay.hold(payment.providerPaymentId);
      const refunds: string[] = [];
      for (let i = 0; i < 2; i += 1) {
        const res = await post(`/v1/payments/${payment.id}/refunds`, {
          amountMinor: 500,
          reason: 'short pour',
        });
        expect(res.status).toBe(201);
        refunds.push(res.body.id as string);
      }
      const [first, second] = refunds as [string, string];
      // Razorpay made the first refund; its answer has not arrived, and the second is not asked yet.
      const atRazorpay = await eventually(
        async () => razorpay.refunds.find((x) => x.key === first),
        20_000,
        'the first refund at Razorpay',
      );
      const processed = refundEvent('refund.processed', {
        id: atRazorpay.id,
        paymentId: payment.providerPaymentId,
        amount: 500,
      });
      const eventId = uid('evt_');
      const early = await server.postWebhook(processed, { eventId });
      // Either refund could be the one: neither is guessed, and the delivery is not kept.
      expect(early.status).toBe(503);
      expect(early.body.error.code).toBe('UNAVAILABLE');
      for (const id of refunds)
        expect(await refundOf(payment.id, id)).toMatchObject({ status: 'PENDING', providerRefundId: null });
      expect(await balance('refunds_due')).toBe(due + 1000);

      // The answers arrive (pending); Razorpay delivers the same event again.
      release();
      await eventually(
        async () => ((await refundOf(payment.id, second)).providerRefundId ? true : undefined),
        20_000,
        'both refunds answered',
      );
      const again = await server.postWebhook(processed, { eventId });
      expect(again.status).toBe(200);
      expect(again.body).toEqual({ ok: true, refundId: first });
      expect(await refundOf(payment.id, first)).toMatchObject({
        status: 'SUCCEEDED',
        providerRefundId: atRazorpay.id,
      });
      expect((await refundOf(payment.id, second)).status).toBe('PENDING');
      expect(await balance('refunds_due')).toBe(due + 500);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });
  });
}
