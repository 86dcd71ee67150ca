// A provider refund's job that failed for good ends its refund FAILED (no answer: `gave_up`), and
// only when it could not did the job raise a JOB_FAILED alert. But a refund may end while the
// job's last attempt waits for the provider: its webhook says it was processed (or failed), then
// the answer is lost (a 5xx). The refund's own state and alerts told staff everything, and a
// JOB_FAILED alert on top sent them looking for a problem that was not there. Now a refund that
// ended meanwhile (SUCCEEDED or FAILED) is the job's end: no JOB_FAILED alert. A refund that is
// gone still gives one.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv, type FakeRazorpay } from './fake-razorpay.js';
import { FAST_JOBS, razorpayRefundEvent, razorpayRefundReads } from './razorpay-refund-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

type Alert = { kind: string; subjectId: string; message: string };

const ATTEMPTS = 8;

for (const engine of engines()) {
  describe(`a refund that ends while its job's last attempt waits (${engine})`, () => {
    let server: TestServer;
    let razorpay: FakeRazorpay;
    const { get, post, balance, alertsOf, refundOf, paidPayment } = razorpayRefundReads(() => server);

    /** The refund job's row (it stays, FAILED, once it failed for good). */
    const jobOf = (refundId: string) =>
      server.kioskhub.db
        .selectFrom('outbox')
        .select(['id', 'status', 'attempts', 'last_error'])
        .where('topic', '=', 'refund')
        .where('payload', 'like', `%"${refundId}"%`)
        .executeTakeFirst();

    /**
     * A refund of the whole payment whose first 7 requests Razorpay answers 503 and whose 8th (the
     * job's last attempt) it makes, holding the answer: returns the refund, Razorpay's refund and
     * the release of the answer.
     */
    async function lastAttemptWaiting(payment: { id: string; providerPaymentId: string }) {
      razorpay.script(
        payment.providerPaymentId,
        Array.from({ length: ATTEMPTS - 1 }, () => ({
          status: 503,
          code: 'SERVER_ERROR',
          description: 'down',
        })),
      );
      const release = razorpay.hold(payment.providerPaymentId);
      const res = await post(`/v1/payments/${payment.id}/refunds`, { reason: 'item jammed' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ status: 'PENDING', destination: 'original', amountMinor: 2000 });
      const refundId = res.body.id as string;
      const atRazorpay = await eventually(
        async () => razorpay.refunds.find((r) => r.key === refundId),
        20_000,
        "the job's last attempt",
      );
      expect(razorpay.calls.filter((c) => c.key === refundId)).toHaveLength(ATTEMPTS);
      // Our refund id goes with it: the webhook finds the refund before Razorpay's id is stored.
      expect(atRazorpay.notes).toEqual({ kioskhub_refund_id: refundId });
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'PENDING',
        providerRefundId: null,
      });
      expect(await jobOf(refundId)).toMatchObject({ status: 'QUEUED', attempts: ATTEMPTS - 1 });
      return { refundId, atRazorpay, release };
    }

    /** The answer is lost (a 502): the job fails for good, its row FAILED with that error. */
    async function answerLost(refundId: string, release: ReturnType<FakeRazorpay['hold']>) {
      release({ status: 502, code: 'GATEWAY_ERROR', description: 'bad gateway' });
      const job = await eventually(
        async () => {
          const j = await jobOf(refundId);
          return j?.status === 'FAILED' ? j : undefined;
        },
        20_000,
        'the job failed for good',
      );
      expect(job).toMatchObject({ attempts: ATTEMPTS });
      expect(job.last_error).toMatch(/502/);
      // The alert comes right after the row is marked FAILED: give it time to show.
      await new Promise((r) => setTimeout(r, 300));
      return job;
    }

    /** The payment keeps its money: no refund on it, the ledger where it was before the refund. */
    async function expectKept(paymentId: string, revenue: number, due: number) {
      expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
        status: 'SUCCEEDED',
        refundedMinor: 0,
      });
      expect(await balance('revenue')).toBe(revenue);
      expect(await balance('refunds_due')).toBe(due);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }

    const jobFailedAlerts = async (jobId: number) =>
      ((await get('/v1/alerts')).body.items as Alert[]).filter(
        (a) => a.kind === 'JOB_FAILED' && a.subjectId === String(jobId),
      );

    beforeAll(async () => {
      razorpay = await fakeRazorpay();
      server = await startServer({ engine, env: { ...razorpayEnv(razorpay), ...FAST_JOBS } });
    });
    afterAll(async () => {
      await server?.close();
      await razorpay?.close();
    });

    it('refund.processed while the last attempt waits, then its answer lost: SUCCEEDED, no JOB_FAILED, no REFUND_FAILED', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay, release } = await lastAttemptWaiting(payment);

      const news = await server.postWebhook(
        razorpayRefundEvent('refund.processed', razorpay.entityOf(atRazorpay.id)),
        {
          eventId: `evt_${randomBytes(4).toString('hex')}`,
        },
      );
      expect(news.status).toBe(200);
      expect(news.body).toMatchObject({ ok: true, refundId });
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'SUCCEEDED',
        providerRefundId: atRazorpay.id,
      });

      const job = await answerLost(refundId, release);
      // The refund says it all: made, once; nothing for staff to look into.
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'SUCCEEDED',
        providerRefundId: atRazorpay.id,
        error: null,
      });
      expect(await jobFailedAlerts(job.id)).toEqual([]);
      expect(await alertsOf(refundId)).toEqual([]);
      expect((await get(`/v1/payments/${payment.id}`)).body).toMatchObject({
        status: 'REFUNDED',
        refundedMinor: 2000,
      });
      expect(await balance('revenue')).toBe(revenue - 2000);
      expect(await balance('refunds_due')).toBe(due);
      expect(razorpay.refunds.filter((r) => r.paymentId === payment.providerPaymentId)).toHaveLength(1);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 30_000);

    it('refund.failed while the last attempt waits, then its answer lost: FAILED as Razorpay said, one REFUND_FAILED, no JOB_FAILED', async () => {
      const payment = await paidPayment();
      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const { refundId, atRazorpay, release } = await lastAttemptWaiting(payment);

      atRazorpay.status = 'failed';
      const news = await server.postWebhook(
        razorpayRefundEvent('refund.failed', razorpay.entityOf(atRazorpay.id)),
        {
          eventId: `evt_${randomBytes(4).toString('hex')}`,
        },
      );
      expect(news.status).toBe(200);
      expect(await refundOf(payment.id, refundId)).toMatchObject({ status: 'FAILED' });

      const job = await answerLost(refundId, release);
      // Ended by Razorpay's news, not by the job giving up: its error and one alert stand.
      const refund = await refundOf(payment.id, refundId);
      expect(refund).toMatchObject({ status: 'FAILED', providerRefundId: atRazorpay.id });
      expect(refund.error).not.toMatch(/502/);
      expect(await jobFailedAlerts(job.id)).toEqual([]);
      expect((await alertsOf(refundId)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
      await expectKept(payment.id, revenue, due);
    }, 30_000);

    // On PostgreSQL the news and the give-up are two transactions that meet on the payment's row
    // lock. The news read the refund PENDING; the give-up, ahead of it on the lock, ended it FAILED;
    // then the news found it ended "meanwhile" and answered ignored, with no alert and no Razorpay
    // id stored: the payer had the money back and the books counted it as kept, and nobody was
    // told. (On SQLite transactions run one at a time, so the news comes wholly before or after.)
    it.runIf(engine === 'postgres')(
      'refund.processed in the same instant as the give-up: the mismatch is told as when the news comes after',
      async () => {
        const payment = await paidPayment();
        const revenue = await balance('revenue');
        const due = await balance('refunds_due');
        const { refundId, atRazorpay, release } = await lastAttemptWaiting(payment);
        const db = server.kioskhub.db;
        /** Backends waiting, directly or behind another waiter, for the lock `holder` holds. */
        const waitingBehind = async (holder: number) => {
          const { rows } = await sql<{ pid: number; by: number[] }>`
            select pid, pg_blocking_pids(pid) as by from pg_stat_activity
            where cardinality(pg_blocking_pids(pid)) > 0`.execute(db);
          const behind = new Set([holder]);
          for (let grew = true; grew;) {
            grew = false;
            for (const r of rows)
              if (!behind.has(r.pid) && r.by.some((b) => behind.has(b))) {
                behind.add(r.pid);
                grew = true;
              }
          }
          return behind.size - 1;
        };

        let news: Promise<Awaited<ReturnType<TestServer['postWebhook']>>> | undefined;
        await db.transaction().execute(async (tx) => {
          // Hold the payment's row so the two line up on it: the give-up first, then the news.
          await sql`select id from payments where id = ${payment.id} for update`.execute(tx);
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx);
          const holder = rows[0]!.pid;
          release({ status: 502, code: 'GATEWAY_ERROR', description: 'bad gateway' });
          await eventually(async () => (await waitingBehind(holder)) === 1, 20_000, 'the give-up waiting');
          atRazorpay.status = 'processed';
          news = server.postWebhook(
            razorpayRefundEvent('refund.processed', razorpay.entityOf(atRazorpay.id)),
            {
              eventId: `evt_${randomBytes(4).toString('hex')}`,
            },
          );
          await eventually(async () => (await waitingBehind(holder)) === 2, 20_000, 'the news waiting');
        });

        const res = await news!;
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ ok: true, refundId, ignored: 'REFUND_FAILED' });
        expect(await refundOf(payment.id, refundId)).toMatchObject({
          status: 'FAILED',
          providerRefundId: atRazorpay.id,
        });
        const alerts = await alertsOf(refundId);
        expect(alerts.map((a) => a.kind).sort()).toEqual(['REFUND_FAILED', 'REFUND_PROVIDER_MISMATCH']);
        expect(alerts.find((a) => a.kind === 'REFUND_PROVIDER_MISMATCH')!.message).toMatch(
          /was processed, but it is FAILED here: the payer has this money back/,
        );
        const audit = (await get(`/v1/audit?subjectId=${refundId}`)).body.items as { action: string }[];
        expect(audit.map((a) => a.action).sort()).toEqual(['refund.fail', 'refund.provider_mismatch']);
        // No money moved by the news: the payment keeps it, as the give-up left it.
        await expectKept(payment.id, revenue, due);
      },
      60_000,
    );

    it('a refund that is gone when its job fails for good still gives a JOB_FAILED alert', async () => {
      const payment = await paidPayment();
      const { refundId, release } = await lastAttemptWaiting(payment);
      await server.kioskhub.db.deleteFrom('refunds').where('id', '=', refundId).execute();

      const job = await answerLost(refundId, release);
      const alerts = await eventually(
        async () => {
          const a = await jobFailedAlerts(job.id);
          return a.length > 0 ? a : undefined;
        },
        5_000,
        'the JOB_FAILED alert',
      );
      expect(alerts).toHaveLength(1);
      expect(alerts[0]!.message).toMatch(/\(refund\) failed for good: .*502/);
    }, 30_000);
  });
}
