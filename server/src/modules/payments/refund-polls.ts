// Status checks of provider refunds answered pending (Razorpay makes most refunds days later): a
// durable job asks the provider's status API now and then, and its answer settles the refund the
// same way the provider's webhook does (`settleProviderRefund`), so a refund whose webhook is off
// or lost does not stay PENDING unseen. Checks stop after a bound, with a REFUND_STILL_PENDING alert.
// A sweep (the scheduler's, at start-up and hourly) starts the checks of PENDING refunds that have none.
import { PostgresAdapter, sql } from 'kysely';
import { readableAmount } from '../../platform/money.js';
import { type Db, type Executor } from '../../platform/db/database.js';
import type { PaymentRow, RefundRow } from '../../platform/db/schema.js';
import { enqueueOutbox, queuedPayloads } from '../../platform/outbox.js';
import type { Logger } from 'pino';
import type { AlertsService } from '../alerts/alerts.service.js';
import {
  REFUND_STILL_PENDING,
  RefundLookupFailedError,
  type ProviderRefundNews,
  type Refunds,
} from './refunds.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /**
     * Ask the provider where a PENDING refund stands: the `check`-th check of checks that began at
     * `since` (when the provider answered pending).
     */
    refund_poll: { tenantId: string; refundId: string; check: number; since: string };
  }
}

/** A provider's refund status API, as its adapter exposes it. */
export interface ProviderRefundStatus {
  /**
   * Where one of its refunds stands now, as the news its webhook would bring. Throws
   * `RefundLookupFailedError` when the answer cannot be used and asking again gets the same (an
   * unknown refund, keys it does not take); any other error is transient (asked again).
   */
  fetchRefund(providerRefundId: string): Promise<ProviderRefundNews>;
}

type Job = { tenantId: string; refundId: string; check: number; since: string };

/** Gaps before each check, in units of the first: 10 min, 30 min, 1 h, then every 6 h by default. */
const GAP_STEPS = [1, 3, 6];
const LAST_GAP_STEP = 36;

/** The wait before check `n` (1 for the first) when the first waits `firstGapMs`. */
export const refundCheckGapMs = (n: number, firstGapMs: number): number =>
  firstGapMs * (GAP_STEPS[n - 1] ?? LAST_GAP_STEP);

const providerName = (p: string | null) => (p ? p.charAt(0).toUpperCase() + p.slice(1) : 'the provider');

/**
 * One page of the sweep: PENDING refunds to the original method that the provider has (its id
 * stored), of `providers`, after `after` in id order. Read through `refunds_pending_idx` (only the
 * pending refunds, however many have ended).
 */
export const pendingProviderRefunds = (ex: Executor, providers: string[], after: string, pageSize: number) =>
  ex
    .selectFrom('refunds')
    // CROSS JOIN: SQLite keeps the tables in this order (refunds, then each one's payment) rather
    // than walking every payment of these providers; PostgreSQL plans it as the inner join it is.
    .crossJoin('payments')
    .whereRef('payments.id', '=', 'refunds.payment_id')
    .selectAll('refunds')
    .select('payments.provider')
    .where('refunds.status', '=', 'PENDING')
    .where('refunds.destination', '=', 'original')
    .where('refunds.provider_refund_id', 'is not', null)
    .where('payments.provider', 'in', providers)
    .where('refunds.id', '>', after)
    .orderBy('refunds.id')
    .limit(pageSize);

export function createRefundPolls(deps: {
  db: Db;
  providers: Record<string, ProviderRefundStatus>;
  refunds: Pick<Refunds, 'settleProviderRefund'>;
  alerts: Pick<AlertsService, 'raiseUnlessOpen' | 'unresolved'>;
  logger: Logger;
  /** The wait before the first check; later ones wait longer (`refundCheckGapMs`). */
  firstGapMs: number;
  /** How long after the pending answer the provider is asked; then the alert. */
  checkForMs: number;
}) {
  const { db } = deps;

  async function scheduleCheck(ex: Executor, job: Job): Promise<void> {
    const deadline = Date.parse(job.since) + deps.checkForMs;
    const runAt = Math.min(Date.now() + refundCheckGapMs(job.check, deps.firstGapMs), deadline);
    await enqueueOutbox(ex, 'refund_poll', job, { runAt: new Date(runAt).toISOString() });
  }

  /**
   * The refund is left PENDING, and staff are told why its status is not known here (once while
   * the alert is open; it resolves when the refund ends).
   */
  async function leftPending(refund: RefundRow, payment: PaymentRow | undefined, why: string): Promise<void> {
    const provider = providerName(payment?.provider ?? null);
    const message =
      `Refund ${refund.id} of ${readableAmount(Number(refund.amount_minor), refund.currency)} ` +
      `(payment ${refund.payment_id}, ${provider} refund ${refund.provider_refund_id ?? 'unknown'}) to the ` +
      `original method is still PENDING: ${why}. The payment counts it refunded and the money waits in ` +
      `refunds due. Look the refund up in the ${provider} Dashboard; the ${provider} webhook of its ` +
      `outcome still settles it here, or settle it as the Dashboard shows (POST /v1/refunds/${refund.id}/settle).`;
    const raised = await db.transaction().execute(async (tx) => {
      // Still PENDING, under the refund's row lock (a write that changes nothing): one its news
      // ended while the provider was asked needs no alert, and one raised now would never resolve.
      const still = await tx
        .updateTable('refunds')
        .set({ status: 'PENDING' })
        .where('id', '=', refund.id)
        .where('status', '=', 'PENDING')
        .executeTakeFirst();
      if (Number(still.numUpdatedRows) === 0) return false;
      await deps.alerts.raiseUnlessOpen(tx, {
        tenantId: refund.tenant_id,
        kind: REFUND_STILL_PENDING,
        subjectType: 'refund',
        subjectId: refund.id,
        message,
      });
      return true;
    });
    if (raised) deps.logger.warn({ refundId: refund.id, why }, 'provider refund left PENDING: staff alerted');
  }

  /** What in the provider's answer is not about this refund (undefined when all of it is). */
  function notAbout(news: ProviderRefundNews, refund: RefundRow, payment: PaymentRow): string | undefined {
    if (news.providerRefundId !== refund.provider_refund_id) return `refund ${news.providerRefundId}`;
    if (news.providerPaymentId !== payment.provider_payment_id) return `payment ${news.providerPaymentId}`;
    if (news.amountMinor !== Number(refund.amount_minor)) return `an amount of ${news.amountMinor}`;
    return undefined;
  }

  async function pendingRefund(refundId: string) {
    const refund = await db.selectFrom('refunds').selectAll().where('id', '=', refundId).executeTakeFirst();
    // Ended meanwhile (its webhook, or another check): nothing left to ask.
    if (!refund || refund.status !== 'PENDING' || refund.provider_refund_id === null) return undefined;
    const payment = await db
      .selectFrom('payments')
      .selectAll()
      .where('id', '=', refund.payment_id)
      .executeTakeFirst();
    return { refund, providerRefundId: refund.provider_refund_id, payment };
  }

  const lasting = (ms: number) =>
    ms >= 86_400_000
      ? `${Math.round((ms / 86_400_000) * 10) / 10} days`
      : ms >= 3_600_000
        ? `${Math.round((ms / 3_600_000) * 10) / 10} h`
        : `${Math.round(ms / 1000)} s`;

  /**
   * Schedules the first check of a refund of a provider with a status API; the bound counts from
   * `since`. False when its provider has none (nothing scheduled).
   */
  async function start(
    ex: Executor,
    refund: RefundRow,
    payment: Pick<PaymentRow, 'provider'>,
    since = new Date().toISOString(),
  ): Promise<boolean> {
    if (!payment.provider || !deps.providers[payment.provider]) return false;
    await scheduleCheck(ex, { tenantId: refund.tenant_id, refundId: refund.id, check: 1, since });
    return true;
  }

  return {
    /** Schedules the first check of a refund the provider just answered pending (in its transaction). */
    async start(ex: Executor, refund: RefundRow, payment: PaymentRow): Promise<void> {
      await start(ex, refund, payment);
    },

    /**
     * The scheduler's safety net: PENDING provider refunds whose checks never began (PENDING
     * before the checks existed) or were lost (a job row deleted, a backup restored) get them now,
     * `start` as the pending answer does, but with the bound counted from the refund's creation: a
     * refund older than REFUND_STATUS_POLL_FOR_MS is asked once at once, then alerted. One with an
     * unresolved REFUND_STILL_PENDING alert is left alone: its checks ended and staff were told (its
     * webhook or POST /v1/refunds/:id/settle ends it). Pages by refund id, each page one
     * transaction under one lock (PostgreSQL), so sweeps of several processes at once start one
     * chain per refund. Returns the refunds whose checks it started.
     */
    async sweep(pageSize = 200): Promise<string[]> {
      const providers = Object.keys(deps.providers);
      if (providers.length === 0) return [];
      const alerted = new Set((await deps.alerts.unresolved([REFUND_STILL_PENDING])).map((a) => a.subjectId));
      const started: string[] = [];
      let after = '';
      for (;;) {
        const page = await db.transaction().execute(async (tx) => {
          if (tx.getExecutor().adapter instanceof PostgresAdapter)
            await sql`select pg_advisory_xact_lock(hashtext('refund-poll-sweep'))`.execute(tx);
          const rows = await pendingProviderRefunds(tx, providers, after, pageSize).execute();
          // Read after the refunds: a refund given its provider id since has its first check too
          // (both are written in one transaction), and a chain writes its next check before its
          // current one goes.
          const chained = new Set((await queuedPayloads(tx, 'refund_poll')).map((p) => p.refundId));
          for (const row of rows) {
            if (chained.has(row.id) || alerted.has(row.id)) continue;
            if (await start(tx, row, row, row.created_at)) started.push(row.id);
          }
          return rows;
        });
        if (page.length < pageSize) break;
        after = page[page.length - 1]!.id;
      }
      if (started.length > 0)
        deps.logger.warn(
          { refundIds: started },
          'pending provider refunds with no status checks: checks started',
        );
      return started;
    },

    /**
     * The `refund_poll` job: processed or failed settles the refund as its webhook would (news the
     * refund already shows changes nothing); pending asks again later, until the bound; an answer
     * that cannot be used alerts. Transient errors throw: the job table retries.
     */
    async check(job: Job): Promise<void> {
      const found = await pendingRefund(job.refundId);
      if (!found) return;
      const { refund, providerRefundId, payment } = found;
      const source = payment?.provider ? deps.providers[payment.provider] : undefined;
      if (!payment || !source)
        return leftPending(
          refund,
          payment,
          `no status API is configured for its provider, so it cannot be asked`,
        );
      let news: ProviderRefundNews;
      try {
        news = await source.fetchRefund(providerRefundId);
      } catch (err) {
        if (!(err instanceof RefundLookupFailedError)) throw err;
        return leftPending(refund, payment, `asking where it stands was answered: ${err.message}`);
      }
      const other = notAbout(news, refund, payment);
      if (other)
        return leftPending(
          refund,
          payment,
          `asking where it stands was answered about ${other}, not this refund`,
        );
      if (news.outcome !== 'pending') {
        await deps.refunds.settleProviderRefund(news);
        return;
      }
      const since = Date.parse(job.since);
      if (Date.now() >= since + deps.checkForMs)
        return leftPending(
          refund,
          payment,
          `${providerName(payment.provider)} still said pending after ${lasting(deps.checkForMs)} of checks`,
        );
      await scheduleCheck(db, { ...job, check: job.check + 1 });
    },

    /**
     * A check whose job ran out of attempts (the provider did not answer): the checks go on at their
     * next time while the bound lasts, else the alert. True: no JOB_FAILED alert.
     */
    async gaveUp(job: Job, error: string): Promise<boolean> {
      const found = await pendingRefund(job.refundId);
      if (!found) return true;
      if (Date.now() < Date.parse(job.since) + deps.checkForMs) {
        await scheduleCheck(db, { ...job, check: job.check + 1 });
        return true;
      }
      await leftPending(found.refund, found.payment, `its last checks got no answer (${error})`);
      return true;
    },
  };
}

export type RefundPolls = ReturnType<typeof createRefundPolls>;
