// One-off payment intents: a MoMo or Airtel request, a bank transfer with our RF reference, a
// card checkout. Each is a PENDING payment created before the customer pays, with our unique id
// (the provider's reference) and an expiry. A provider whose callbacks are unsigned is never
// trusted on the callback: the callback, or the poll every PAYMENT_STATUS_POLL_MS, runs a status
// check through the job table, and only the provider's status API answer settles the payment.
// A wallet may still take the money after the payment ended (a prompt approved after our expiry):
// such a payment is asked again for a while, and money taken then is recorded and alerted.
import type { Logger } from 'pino';
import { AppError } from '../../platform/errors.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { createLateChecks, mayBePaidAfterEnd } from './late-checks.js';
import { paymentSourcesOf } from './payment-rules.js';
import { pendingPayment, type PaymentsRepo } from './payments.repo.js';
import type { PaymentPurpose, Settlement, SettlementContext } from './settlement.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /**
     * Ask a pending payment's provider where it stands; `poll`: schedule the next check. `late`:
     * the n-th check of a payment that expired while its provider still said pending.
     */
    payment_status: { tenantId: string; paymentId: string; poll: boolean; late?: number };
    /** A one-off intent reached its expiry: EXPIRED unless paid meanwhile. */
    payment_expire: { tenantId: string; paymentId: string };
  }
}

/** What a provider's status API says about one payment. */
export type ProviderStatus =
  | { status: 'PENDING' }
  | { status: 'SUCCEEDED'; receivedMinor: number; providerPaymentId?: string }
  | {
      status: 'FAILED';
      failureCode: string;
      providerPaymentId?: string;
      /**
       * The provider took money that cannot be applied (another currency than asked, or an amount
       * not exact in the payment's currency), as it reported it: staff are alerted to refund it.
       */
      taken?: { amount: string | null; currency: string | null };
      /**
       * The provider took this much (minor units of `currency`), but not what was asked (a card
       * checkout paid another amount): its source's `checkFailed` tells staff.
       */
      paid?: { amountMinor: number; currency: string };
    };

/** A provider adapter's status API (MoMo, Airtel, a card gateway). */
export interface PaymentStatusSource {
  fetchStatus(payment: PaymentRow): Promise<ProviderStatus>;
  /**
   * The provider may take the money after the payment ended here (a wallet prompt approved after
   * our expiry, an ambiguous answer that resolves, a refusal that was not one), and tells us of it
   * only by its unsigned callback or its status API: such payments are asked again (`check`).
   */
  checksAfterEnd?: boolean;
  /** Told, in the transaction, when one of its answers ended the payment FAILED (once). */
  checkFailed?(
    ex: Executor,
    payment: PaymentRow,
    answer: Extract<ProviderStatus, { status: 'FAILED' }>,
  ): Promise<void>;
}

export { LATE_CHECK_WINDOW_MS, mayBePaidAfterEnd } from './late-checks.js';

export interface IntentInput {
  tenantId: string;
  siteId?: string | null;
  purpose: PaymentPurpose;
  method: string;
  provider?: string | null;
  orderId?: string | null;
  customerId?: string | null;
  planId?: string | null;
  machineId?: string | null;
  amountMinor: number;
  currency: string;
  /** Our reference for the payer (an RF reference); the payment id is used when absent. */
  reference?: string | null;
  /** Default: now + PAYMENT_INTENT_TTL_MS. */
  expiresAt?: string;
  /** The payment id, when the caller needs it before the row exists (a provider request id). */
  id?: string;
}

/**
 * Told, in the transaction, when a one-off payment ends without money (FAILED or EXPIRED), and
 * (`onPaidAfterEnd`) when its provider took the money after that (`received_minor` recorded).
 */
export type IntentEndedListener = (ex: Executor, payment: PaymentRow) => Promise<void>;

export interface IntentsDeps {
  db: Db;
  repo: PaymentsRepo;
  settlement: Settlement;
  logger: Logger;
  pollMs: number;
  ttlMs: number;
  dialect: 'sqlite' | 'postgres';
  /** Told of money a provider took that cannot be applied (`taken`). */
  alerts: Pick<AlertsService, 'raise'>;
}

export function createIntents(deps: IntentsDeps) {
  const { db, repo, settlement } = deps;
  const sources = new Map<string, PaymentStatusSource>();
  const endedListeners = new Map<string, IntentEndedListener>();
  const paidAfterEndListeners = new Map<string, IntentEndedListener>();
  const { moneyNotApplied, checkAfterEnd, scheduleLateCheck } = createLateChecks({
    db,
    repo,
    pollMs: deps.pollMs,
    alerts: deps.alerts,
    paidAfterEndListener: (purpose) => paidAfterEndListeners.get(purpose),
  });

  async function create(ex: Executor, input: IntentInput): Promise<PaymentRow> {
    if (!Number.isSafeInteger(input.amountMinor) || input.amountMinor <= 0) {
      throw new AppError('VALIDATION_FAILED', 'a payment needs a positive whole amount in minor units');
    }
    const id = input.id ?? newId();
    const expiresAt = input.expiresAt ?? new Date(Date.now() + deps.ttlMs).toISOString();
    const row = pendingPayment({
      id,
      tenant_id: input.tenantId,
      site_id: input.siteId ?? null,
      purpose: input.purpose,
      order_id: input.orderId ?? null,
      customer_id: input.customerId ?? null,
      plan_id: input.planId ?? null,
      machine_id: input.machineId ?? null,
      method: input.method,
      provider: input.provider ?? null,
      reference: input.reference ?? id,
      amount_minor: input.amountMinor,
      currency: input.currency,
      expires_at: expiresAt,
    });
    await repo.insert(row, ex);
    await enqueueOutbox(
      ex,
      'payment_expire',
      { tenantId: input.tenantId, paymentId: id },
      { runAt: expiresAt },
    );
    if (row.provider !== null && sources.has(row.provider)) {
      const runAt = new Date(Date.now() + deps.pollMs).toISOString();
      await enqueueOutbox(
        ex,
        'payment_status',
        { tenantId: input.tenantId, paymentId: id, poll: true },
        { runAt },
      );
    }
    return row;
  }

  async function ended(ex: Executor, payment: PaymentRow): Promise<void> {
    await endedListeners.get(payment.purpose)?.(ex, payment);
  }

  /** Ends a pending payment without money (`FAILED` with a code); false if it was not pending. */
  async function fail(ex: Executor, paymentId: string, failureCode: string): Promise<boolean> {
    const now = nowIso();
    const row = await repo.updateIfStatus(
      paymentId,
      paymentSourcesOf('FAILED'),
      { status: 'FAILED', failure_code: failureCode, completed_at: now, updated_at: now },
      ex,
    );
    if (row) await ended(ex, row);
    return row !== undefined;
  }

  /** The job `payment_status`: one question to the provider, applied in one transaction. */
  async function check(job: { paymentId: string; poll: boolean; late?: number }): Promise<void> {
    await ask(job);
  }

  /** `check`, with the provider's answer about a payment that was pending (undefined otherwise). */
  async function ask(job: {
    paymentId: string;
    poll: boolean;
    late?: number;
  }): Promise<ProviderStatus | undefined> {
    const payment = await repo.findById(job.paymentId);
    if (!payment) return undefined;
    const source = payment.provider !== null ? sources.get(payment.provider) : undefined;
    if (!source) return undefined;
    if (payment.status !== 'PENDING') {
      if (source.checksAfterEnd && mayBePaidAfterEnd(payment)) await checkAfterEnd(payment, source, job.late);
      return undefined;
    }
    // A provider that does not answer throws: the job table retries with backoff.
    const answer = await source.fetchStatus(payment);
    const ctx: SettlementContext = { actor: `provider:${payment.provider}` };
    // The provider has answered (outside any transaction); applying it is one money event.
    await inGroup(
      db,
      async (tx) => {
        // The gateway's id's lock before the payment's row, in the order its webhook takes them
        // (settling or failing it takes that lock again to apply parked refunds): no deadlock.
        const knownAs = answer.status === 'PENDING' ? undefined : answer.providerPaymentId;
        if (knownAs !== undefined && payment.provider !== null)
          await repo.lockProviderPaymentId(payment.provider, knownAs, tx, deps.dialect);
        if (answer.status === 'SUCCEEDED') {
          await settlement.succeed(tx, payment.id, answer.receivedMinor, ctx, {
            ...(answer.providerPaymentId !== undefined
              ? { providerPaymentId: answer.providerPaymentId }
              : {}),
          });
        } else if (answer.status === 'FAILED') {
          if (answer.providerPaymentId !== undefined) {
            await repo.updateIfStatus(
              payment.id,
              ['PENDING'],
              { provider_payment_id: answer.providerPaymentId },
              tx,
            );
          }
          // Once, by the check that ended it (two checks racing both hear the same answer).
          const ended = await fail(tx, payment.id, answer.failureCode);
          if (ended && answer.taken) await moneyNotApplied(tx, payment, answer.taken);
          if (ended) await source.checkFailed?.(tx, payment, answer);
        } else if (job.poll) {
          const expired = payment.expires_at !== null && Date.parse(payment.expires_at) <= Date.now();
          if (!expired) {
            const runAt = new Date(Date.now() + deps.pollMs).toISOString();
            const next = { tenantId: payment.tenant_id, paymentId: payment.id, poll: true };
            await enqueueOutbox(tx, 'payment_status', next, { runAt });
          }
        }
      },
      { replayable: true },
    );
    return answer;
  }

  /**
   * The job `payment_expire`: a pending intent past its expiry ends EXPIRED. A provider with a
   * status API is asked one last time first, so a payment made at the last second still counts.
   */
  async function expire(job: { paymentId: string }): Promise<void> {
    const payment = await repo.findById(job.paymentId);
    if (!payment || payment.status !== 'PENDING') return;
    if (payment.expires_at === null || Date.parse(payment.expires_at) > Date.now()) return;
    const source = payment.provider !== null ? sources.get(payment.provider) : undefined;
    const last = source ? await ask({ paymentId: payment.id, poll: false }) : undefined;
    await endExpired(payment.id, source, last?.status === 'PENDING');
  }

  /**
   * Ends a pending payment EXPIRED; `undecided`: the provider had not said it was paid or failed,
   * so it may still take the money and is asked again after the end.
   */
  async function endExpired(
    paymentId: string,
    source: PaymentStatusSource | undefined,
    undecided: boolean,
  ): Promise<void> {
    await db.transaction().execute(async (tx) => {
      const now = nowIso();
      const row = await repo.updateIfStatus(
        paymentId,
        paymentSourcesOf('EXPIRED'),
        { status: 'EXPIRED', completed_at: now, updated_at: now },
        tx,
      );
      if (!row) return;
      await ended(tx, row);
      if (source?.checksAfterEnd && undecided) await scheduleLateCheck(tx, row, 1);
    });
  }

  /**
   * The job `payment_expire` failed for good: the provider's status API never answered its last
   * question. The payment ends EXPIRED all the same (the customer is told, as at any expiry), and,
   * the provider never having said, it is asked again after the end, as for an answer "pending":
   * money it took meanwhile is found then. True when the payment has ended (now or before); false
   * when it is unknown or not yet due (the job's JOB_FAILED alert then tells staff).
   */
  async function expireGaveUp(job: { paymentId: string }): Promise<boolean> {
    const payment = await repo.findById(job.paymentId);
    if (!payment) return false;
    if (payment.status !== 'PENDING') return true;
    if (payment.expires_at === null || Date.parse(payment.expires_at) > Date.now()) return false;
    const source = payment.provider !== null ? sources.get(payment.provider) : undefined;
    await endExpired(payment.id, source, true);
    return true;
  }

  /**
   * The job `payment_status` failed for good (the provider's status API did not answer through
   * all its retries). The checks go on, or a payment whose callback was lost (MoMo sends one and
   * never again) would wait for its expiry, and money taken after the end would never be found: a
   * poll of a payment still pending and not expired is asked again after `pollMs`, and a check of
   * an ended payment that may yet have been paid (after the end, or a callback's check) is
   * followed by the next check of its window. True when another check is queued, or none is
   * needed (the payment settled meanwhile); false raises the job's JOB_FAILED alert.
   */
  async function statusGaveUp(job: { paymentId: string; poll: boolean; late?: number }): Promise<boolean> {
    const payment = await repo.findById(job.paymentId);
    if (!payment) return false;
    if (payment.status !== 'PENDING') {
      const source = payment.provider !== null ? sources.get(payment.provider) : undefined;
      if (!source?.checksAfterEnd || !mayBePaidAfterEnd(payment)) return true;
      return scheduleLateCheck(db, payment, (job.late ?? 0) + 1);
    }
    // Pending: its expiry job ends it (and starts the checks after the end).
    if (job.late !== undefined || !job.poll) return false;
    if (payment.expires_at !== null && Date.parse(payment.expires_at) <= Date.now()) return false;
    const runAt = new Date(Date.now() + deps.pollMs).toISOString();
    const next = { tenantId: payment.tenant_id, paymentId: payment.id, poll: true };
    await enqueueOutbox(db, 'payment_status', next, { runAt });
    return true;
  }

  return {
    create,
    fail,
    check,
    expire,
    expireGaveUp,
    statusGaveUp,

    /** A provider adapter's status API; its pending payments are polled and confirmed with it. */
    registerStatusSource(provider: string, source: PaymentStatusSource): void {
      if (sources.has(provider)) throw new Error(`provider "${provider}" already has a status source`);
      sources.set(provider, source);
    },

    /** Called when a payment of `purpose` ends FAILED or EXPIRED (in its transaction). */
    onEnded(purpose: PaymentPurpose, listener: IntentEndedListener): void {
      if (endedListeners.has(purpose)) throw new Error(`purpose "${purpose}" already has an ended listener`);
      endedListeners.set(purpose, listener);
    },

    /** Called when the provider took the money of a payment of `purpose` after it had ended. */
    onPaidAfterEnd(purpose: PaymentPurpose, listener: IntentEndedListener): void {
      if (paidAfterEndListeners.has(purpose))
        throw new Error(`purpose "${purpose}" already has a paid-after-end listener`);
      paidAfterEndListeners.set(purpose, listener);
    },

    /**
     * An unsigned callback (or a staff "check now") arrived: ask the provider's status API as soon
     * as the job table runs, in the caller's transaction (the callback's inbox row commits with it).
     */
    async scheduleCheck(ex: Executor, payment: { id: string; tenant_id: string }): Promise<void> {
      await enqueueOutbox(ex, 'payment_status', {
        tenantId: payment.tenant_id,
        paymentId: payment.id,
        poll: false,
      });
    },

    /** A pending intent by our reference (a bank transfer's RF reference). */
    byReference: (tenantId: string | null, reference: string, ex: Executor = db) =>
      repo.byReference(tenantId, reference, ex),
  };
}

export type Intents = ReturnType<typeof createIntents>;
