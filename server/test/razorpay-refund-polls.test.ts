// A Razorpay refund answered `pending` used to stay PENDING until Razorpay's refund.processed /
// refund.failed webhook arrived: with those events not enabled, or a delivery lost, for ever (the
// payment counted it refunded, the money sat in refunds_due, nobody was told). Now a durable job
// asks GET /v1/refunds/{id} now and then (docs/api.md §8): processed / failed settle the refund
// as the webhook does (once, whichever comes first), pending asks again later until a bound, and
// an answer that cannot be used (a 4xx) or the bound raises REFUND_STILL_PENDING.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv } from './fake-razorpay.js';
import { razorpayRefundReads } from './razorpay-refund-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Checks 100 ms, 400 ms, 1 s after the pending answer, then at the 1.5 s bound: the alert.
const FIRST_CHECK_MS = 100;
const CHECK_FOR_MS = 1_500;

/** A refund webhook as Razorpay sends it. */
function refundEvent(
  event: 'refund.processed' | 'refund.failed',
  refund: { id: string; paymentId: string; amount: number },
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
          notes: [],
          receipt: null,
          acquirer_data: { arn: null },
          created_at: 1764706238,
          batch_id: null,
          status: event === 'refund.processed' ? 'processed' : 'failed',
          speed_processed: 'normal',
          speed_requested: 'normal',
        },
      },
    },
    created_at: 1764706300,
  };
}

for (const engine of engines()) {
  describe(`Razorpay refunds answered pending are checked with GET /v1/refunds/{id} (${engine})`, () => {
    let server: TestServer;
    let razorpay: Awaited<ReturnType<typeof fakeRazorpay>>;

    const { get, post, balance, alertsOf, refundOf, paidPayment, expectRefusedRefund } = razorpayRefundReads(
      () => server,
    );
    const statusCalls = (rzpRefundId: string) =>
      razorpay.statusCalls.filter((c) => c.refundId === rzpRefundId).length;
    /** Ledger entries caused by the refund (two per transfer). */
    const entriesOf = async (refundId: string) =>
      (
        await server.kioskhub.db
          .selectFrom('ledger_entries')
          .select('id')
          .where('cause_type', '=', 'refund')
          .where('cause_id', '=', refundId)
          .execute()
      ).length;
    /** True once no status check of the refund is waiting in the job table. */
    const noCheckQueued = async (refundId: string) => {
      const rows = await server.kioskhub.db
        .selectFrom('outbox')
        .select(['payload', 'status'])
        .where('topic', '=', 'refund_poll')
        .execute();
      return !rows.some((r) => r.status === 'QUEUED' && r.payload.includes(refundId));
    };

    /**
     * A refund Razorpay answers `pending`. `before`: run once Razorpay made the refund and before
     * its answer arrives (so before any check), e.g. to script its status answers.
     */
    async function pendingRefund(
      payment: { id: string; providerPaymentId: string },
      amountMinor: number,
      before?: (rzpRefundId: string) => void,
    ) {
      const release = razorpay.hold(payment.providerPaymentId);
      const res = await post(`/v1/payments/${payment.id}/refunds`, { amountMinor, reason: 'item jammed' });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const atRazorpay = await eventually(
        async () => razorpay.refunds.find((x) => x.key === refundId),
        20_000,
        'the refund at Razorpay',
      );
      before?.(atRazorpay.id);
      release();
      await eventually(
        async () => (await refundOf(payment.id, refundId)).providerRefundId,
        20_000,
        'the pending answer stored',
      );
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'PENDING',
        providerRefundId: atRazorpay.id,
      });
      return { refundId, atRazorpay };
    }

    const ended = (paymentId: string, refundId: string) =>
      eventually(
        async () => {
          const r = await refundOf(paymentId, refundId);
          return r.status !== 'PENDING' ? r : undefined;
        },
        20_000,
        'the refund settled',
      );

    beforeAll(async () => {
      razorpay = await fakeRazorpay({ refundStatus: 'pending' });
      server = await startServer({
        engine,
        env: {
          ...razorpayEnv(razorpay),
          JOB_RETRY_BASE_MS: '20',
          JOB_POLL_MS: '50',
          REFUND_STATUS_POLL_MS: String(FIRST_CHECK_MS),
          REFUND_STATUS_POLL_FOR_MS: String(CHECK_FOR_MS),
        },
      });
    });
    afterAll(async () => {
      await server?.close();
      await razorpay?.close();
    });

    it('pending, a 502 (retried), pending again, then processed: SUCCEEDED out of refunds_due, as the webhook does; the later webhook is a duplicate', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000, (id) =>
        razorpay.script(id, [{ status: 502, code: 'SERVER_ERROR' }]),
      );
      expect(await balance('refunds_due')).toBe(due + 2000);
      // The first check got a 502, its retry `pending`: Razorpay makes the refund, the next check sees it.
      await eventually(async () => statusCalls(atRazorpay.id) >= 2, 20_000, 'two status requests');
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');
      atRazorpay.status = 'processed';
      const done = await ended(payment.id, refundId);
      expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: atRazorpay.id, error: null });
      expect(razorpay.statusCalls.at(-1)!.auth).toBe(
        `Basic ${Buffer.from('rzp_test_key:rzp_test_secret').toString('base64')}`,
      );
      expect(await balance('refunds_due')).toBe(due);
      expect(await balance('revenue')).toBe(revenue - 2000);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({ status: 'REFUNDED' });
      const audit = (await get(`/v1/audit?subjectId=${refundId}`)).body.items;
      expect(audit).toEqual([
        expect.objectContaining({
          action: 'refund.complete',
          actor: 'provider:razorpay',
          after: expect.objectContaining({ status: 'SUCCEEDED', providerRefundId: atRazorpay.id }),
        }),
      ]);
      await eventually(() => noCheckQueued(refundId), 5_000, 'no check left');

      // Razorpay's webhook after the check settled it: answered as news the refund already shows.
      const late = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 2000,
        }),
        { eventId: uid('evt_') },
      );
      expect(late.status).toBe(200);
      expect(late.body).toEqual({ ok: true, duplicate: true, refundId });
      expect(await alertsOf(refundId)).toEqual([]);
      expect(await entriesOf(refundId)).toBe(4);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('pending, then failed: FAILED as refund.failed does (payment keeps the money, REFUND_FAILED, audited)', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment, 1500);
      await eventually(async () => statusCalls(atRazorpay.id) >= 1, 20_000, 'the first status request');
      atRazorpay.status = 'failed';
      const failed = await ended(payment.id, refundId);
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
      const late = await server.postWebhook(
        refundEvent('refund.failed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 1500,
        }),
        { eventId: uid('evt_') },
      );
      expect(late.body).toEqual({ ok: true, duplicate: true, refundId });
      expect((await alertsOf(refundId)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('the webhook first: the checks that follow ask Razorpay nothing more and change nothing', async () => {
      const payment = await paidPayment();
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000);
      // Razorpay still says pending to a check until the webhook is in, so no check settles it first.
      const res = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 2000,
        }),
        { eventId: uid('evt_') },
      );
      expect(res.body).toEqual({ ok: true, refundId });
      atRazorpay.status = 'processed';
      const asked = statusCalls(atRazorpay.id);
      // The check that was scheduled runs, finds the refund ended, and schedules no other.
      await eventually(() => noCheckQueued(refundId), 5_000, 'the pending check ran');
      await sleep(FIRST_CHECK_MS);
      expect(statusCalls(atRazorpay.id)).toBe(asked);
      expect((await refundOf(payment.id, refundId)).status).toBe('SUCCEEDED');
      expect((await get(`/v1/audit?subjectId=${refundId}`)).body.items).toHaveLength(1);
      expect(await entriesOf(refundId)).toBe(4);
      expect(await balance('refunds_due')).toBe(due);
      expect(await alertsOf(refundId)).toEqual([]);
    });

    it('still pending when the checks run out: stays PENDING with a REFUND_STILL_PENDING alert, resolved when its webhook ends it', async () => {
      const payment = await paidPayment();
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000);
      const [alert] = await eventually(
        async () => {
          const a = await alertsOf(refundId);
          return a.length > 0 ? a : undefined;
        },
        20_000,
        'the alert',
      );
      expect(alert).toMatchObject({ kind: 'REFUND_STILL_PENDING', resolvedAt: null });
      expect(alert!.message).toMatch(
        new RegExp(
          `Refund ${refundId} .*${atRazorpay.id}.* still PENDING: Razorpay still said pending .*Razorpay Dashboard`,
        ),
      );
      // 100 ms, 400 ms, 1 s, and the last at the bound.
      expect(statusCalls(atRazorpay.id)).toBe(4);
      expect(await noCheckQueued(refundId)).toBe(true);
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');
      expect(await balance('refunds_due')).toBe(due + 2000);

      const res = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 2000,
        }),
        { eventId: uid('evt_') },
      );
      expect(res.body).toEqual({ ok: true, refundId });
      expect(await balance('refunds_due')).toBe(due);
      const [resolved] = await alertsOf(refundId);
      expect(resolved).toMatchObject({ kind: 'REFUND_STILL_PENDING', resolvedAt: expect.any(String) });
    });

    it('an answer it cannot use (404): an alert at once, nothing changes, no more checks', async () => {
      const payment = await paidPayment();
      const due = await balance('refunds_due');
      const audits = (await get(`/v1/audit?subjectId=${payment.id}`)).body.items.length;
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000, (id) =>
        razorpay.script(id, [
          {
            status: 404,
            code: 'BAD_REQUEST_ERROR',
            description: 'The requested URL was not found on the server.',
          },
        ]),
      );
      const [alert] = await eventually(
        async () => {
          const a = await alertsOf(refundId);
          return a.length > 0 ? a : undefined;
        },
        20_000,
        'the alert',
      );
      expect(alert).toMatchObject({ kind: 'REFUND_STILL_PENDING', resolvedAt: null });
      expect(alert!.message).toMatch(/Razorpay answered 404 BAD_REQUEST_ERROR/);
      await sleep(3 * FIRST_CHECK_MS);
      expect(statusCalls(atRazorpay.id)).toBe(1);
      expect(await noCheckQueued(refundId)).toBe(true);
      expect(await refundOf(payment.id, refundId)).toMatchObject({ status: 'PENDING', error: null });
      expect(await balance('refunds_due')).toBe(due + 2000);
      expect((await get(`/v1/audit?subjectId=${refundId}`)).body.items).toEqual([]);
      expect((await get(`/v1/audit?subjectId=${payment.id}`)).body.items).toHaveLength(audits + 1);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    });

    it('its webhook settles it while a check waits for an answer it cannot use: no alert is left open for an ended refund', async () => {
      const payment = await paidPayment();
      let releaseCheck: (() => void) | undefined;
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000, (id) => {
        razorpay.script(id, [{ status: 404, code: 'BAD_REQUEST_ERROR', description: 'not found' }]);
        releaseCheck = razorpay.hold(id);
      });
      // The first check has read the refund PENDING and waits for Razorpay's answer.
      await eventually(async () => statusCalls(atRazorpay.id) >= 1, 20_000, 'the first status request');
      const res = await server.postWebhook(
        refundEvent('refund.processed', {
          id: atRazorpay.id,
          paymentId: payment.providerPaymentId,
          amount: 2000,
        }),
        { eventId: uid('evt_') },
      );
      expect(res.body).toEqual({ ok: true, refundId });
      releaseCheck!();
      await eventually(() => noCheckQueued(refundId), 5_000, 'the check ended');
      await sleep(FIRST_CHECK_MS);
      expect((await refundOf(payment.id, refundId)).status).toBe('SUCCEEDED');
      expect((await alertsOf(refundId)).filter((a) => a.resolvedAt === null)).toEqual([]);
    });

    // The scheduler's sweep (start-up, then hourly) starts the checks of PENDING refunds that have
    // none: PENDING before the checks existed, or their job rows lost.
    const sweep = () => server.kioskhub.services.refundPolls.sweep();
    const chainRows = async (refundId: string) =>
      (
        await server.kioskhub.db
          .selectFrom('outbox')
          .select(['payload', 'status'])
          .where('topic', '=', 'refund_poll')
          .execute()
      ).filter((r) => r.status === 'QUEUED' && r.payload.includes(refundId)).length;
    /** Its checks lost: the job rows deleted (again, should a check in flight have written its next). */
    async function dropChecks(refundId: string) {
      for (let i = 0; i < 3; i++) {
        await server.kioskhub.db
          .deleteFrom('outbox')
          .where('topic', '=', 'refund_poll')
          .where('payload', 'like', `%${refundId}%`)
          .execute();
        await sleep(50);
      }
      expect(await chainRows(refundId)).toBe(0);
    }

    it('a PENDING refund whose checks were lost is asked about again after the sweep, and settled', async () => {
      const payment = await paidPayment();
      const due = await balance('refunds_due');
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000);
      await dropChecks(refundId);
      atRazorpay.status = 'processed';
      const asked = statusCalls(atRazorpay.id);
      await sleep(3 * FIRST_CHECK_MS);
      expect(statusCalls(atRazorpay.id)).toBe(asked);
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');

      expect(await sweep()).toContain(refundId);
      const done = await ended(payment.id, refundId);
      expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: atRazorpay.id });
      expect(statusCalls(atRazorpay.id)).toBe(asked + 1);
      expect(await balance('refunds_due')).toBe(due);
      expect(await alertsOf(refundId)).toEqual([]);
      await eventually(() => noCheckQueued(refundId), 5_000, 'no check left');
    });

    it('a PENDING refund older than the bound: the first sweep asks once and alerts at once; the next leaves it', async () => {
      const payment = await paidPayment();
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000);
      await dropChecks(refundId);
      await server.kioskhub.db
        .updateTable('refunds')
        .set({ created_at: new Date(Date.now() - 90 * 86_400_000).toISOString() })
        .where('id', '=', refundId)
        .execute();
      const asked = statusCalls(atRazorpay.id);
      expect(await sweep()).toContain(refundId);
      const [alert] = await eventually(
        async () => {
          const a = await alertsOf(refundId);
          return a.length > 0 ? a : undefined;
        },
        20_000,
        'the alert',
      );
      expect(alert).toMatchObject({ kind: 'REFUND_STILL_PENDING', resolvedAt: null });
      expect(alert!.message).toMatch(/still PENDING: Razorpay still said pending/);
      // One last look, not a new 1.5 s of checks (four).
      expect(statusCalls(atRazorpay.id)).toBe(asked + 1);
      await eventually(() => noCheckQueued(refundId), 5_000, 'no check left');
      // Staff were told: later sweeps leave it to its webhook or POST /v1/refunds/:id/settle.
      expect(await sweep()).not.toContain(refundId);
      await sleep(3 * FIRST_CHECK_MS);
      expect(statusCalls(atRazorpay.id)).toBe(asked + 1);
      expect(await alertsOf(refundId)).toHaveLength(1);
      expect((await refundOf(payment.id, refundId)).status).toBe('PENDING');
    });

    it('a refund whose checks are under way gets no second chain; two sweeps at once start one', async () => {
      const payment = await paidPayment();
      const { refundId, atRazorpay } = await pendingRefund(payment, 2000);
      const oneChain = () =>
        eventually(async () => (await chainRows(refundId)) === 1, 5_000, 'one check queued');
      await oneChain();
      expect(await sweep()).not.toContain(refundId);
      await oneChain();

      await dropChecks(refundId);
      const runs = await Promise.all([sweep(), sweep()]);
      expect(runs.flat().filter((id) => id === refundId)).toHaveLength(1);
      // Two chains would keep two checks or more queued.
      await sleep(3 * FIRST_CHECK_MS);
      await oneChain();
      atRazorpay.status = 'processed';
      expect(await ended(payment.id, refundId)).toMatchObject({ status: 'SUCCEEDED' });
      await eventually(() => noCheckQueued(refundId), 5_000, 'no check left');
      const asked = statusCalls(atRazorpay.id);
      await sleep(3 * FIRST_CHECK_MS);
      expect(statusCalls(atRazorpay.id)).toBe(asked);
    });
  });
}
