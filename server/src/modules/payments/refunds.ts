// Refunds: rows against their payment, never more in total than the payment kept (what it cost,
// once taken) or received (never taken). A refund goes back through the provider's refund API
// (`original`, a durable job), is handed back by staff (`refund_due`: DUE until they confirm it),
// or credits the payer's wallet (`credit`).
// On the ledger the money comes out of the site's revenue when the payment was taken (its cost was
// booked there), else out of `external` (nothing of it was booked). Money on its way back waits in
// the site's `refunds_due`: until staff hand it over, or until the provider confirms its refund.
// A provider refund that gave nothing back (refused, or never answered) ends FAILED: its money
// goes back where it came from, the payment may be refunded again, and staff are alerted. Our
// refund id goes with it to the provider, so its news, even after the job gave up, finds it.
// A provider that makes refunds later (Razorpay answers `pending`) leaves the refund PENDING with
// its refund id until the provider's webhook, or its status API asked now and then
// (refund-polls.ts), says it was processed or failed.
import { sql } from 'kysely';
import { listAudit, recordAudit } from '../audit/audit.service.js';
import { AppError, notFound } from '../../platform/errors.js';
import { readableAmount } from '../../platform/money.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { PaymentRow, RefundRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import { decideRefund, refundableMinor, undoRefund, wasTaken, type PaymentStatus } from './payment-rules.js';

export const REFUND_DESTINATIONS = ['original', 'refund_due', 'credit'] as const;
export type RefundDestination = (typeof REFUND_DESTINATIONS)[number];

/**
 * A provider's refund API, as its adapter exposes it. It throws `RefundRefusedError` when the
 * provider refused the refund for good (asking again gets the same answer); any other error is
 * transient and the job asks again.
 */
export interface ProviderRefunds {
  refund(
    providerPaymentId: string,
    amountMinor: number,
    /** `refundId` is stable across retries of the job: an idempotency key for the provider. */
    ctx: { currency: string; refundId: string },
  ): Promise<{
    providerRefundId: string;
    /**
     * The provider accepted the refund but has not made it yet (Razorpay's `pending`): it stays
     * PENDING until the provider's news of it (`settleProviderRefund`), or an answer that says made.
     */
    pending?: boolean;
  }>;
}

/** A provider's news of one of its refunds (a webhook): made, failed, or still on its way. */
export interface ProviderRefundNews {
  provider: string;
  providerRefundId: string;
  /** The provider's payment id the refund is of. */
  providerPaymentId: string;
  amountMinor: number;
  outcome: 'processed' | 'failed' | 'pending';
  /** Why it failed, for a `failed` refund (the refund's error, the alert). */
  error: string;
  /**
   * Our refund id, as sent with the refund (`REFUND_ID_NOTE`: Razorpay's `notes`, Stripe's
   * `metadata`) and echoed on the provider's refund; absent on refunds made elsewhere.
   */
  refundId?: string;
}

/** The key our refund id goes under in the provider's refund (Razorpay `notes`, Stripe `metadata`). */
export const REFUND_ID_NOTE = 'kioskhub_refund_id';

/** Our refund id read back from a provider's refund notes / metadata: a plain id, else undefined. */
export function refundIdOfNotes(notes: unknown): string | undefined {
  if (notes === null || typeof notes !== 'object' || Array.isArray(notes)) return undefined;
  const id = (notes as Record<string, unknown>)[REFUND_ID_NOTE];
  return typeof id === 'string' && /^[0-9A-Za-z_-]{1,64}$/.test(id) ? id : undefined;
}

export type ProviderRefundNewsOutcome = 'processed' | 'failed' | 'pending' | 'duplicate' | 'ignored';

/** The provider refused this refund for good (its reason is the message): nothing was refunded. */
export class RefundRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefundRefusedError';
  }
}

/** The provider's status API cannot tell where a refund stands, for good (its reason is the message). */
export class RefundLookupFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefundLookupFailedError';
  }
}

/** The alert raised when a provider refund ends FAILED (subject: the refund). */
export const REFUND_FAILED = 'REFUND_FAILED';
/** A refusal saying the payment was refunded already (Stripe `charge_already_refunded`, Razorpay's "fully refunded"). */
const ALREADY_REFUNDED = /already[ _]refunded|refunded already|fully refunded/i;
/** The alert raised when the provider's news of a refund contradicts how it ended here. */
export const REFUND_PROVIDER_MISMATCH = 'REFUND_PROVIDER_MISMATCH';
/**
 * The alert raised when a PENDING provider refund's status could not be learned (still pending
 * when its checks ran out, or an answer that cannot be used); resolved when the refund ends.
 */
export const REFUND_STILL_PENDING = 'REFUND_STILL_PENDING';
/** The `refund.fail` audit actor of a refund whose job gave up with no answer (the provider may have made it). */
const GAVE_UP_ACTOR = 'system';
/** Audited when a provider's news says a FAILED refund was made, or is still on its way, after all. */
const PROVIDER_MISMATCH_ACTION = 'refund.provider_mismatch';

const providerName = (p: string | null) => (p ? p.charAt(0).toUpperCase() + p.slice(1) : 'the provider');

/** Told, in the transaction, of every refund recorded (a channel publishes `payment_refunded`). */
export type RefundRecordedListener = (ex: Executor, payment: PaymentRow, refund: RefundRow) => Promise<void>;

/**
 * Asked, in the transaction, before a refund is written: may refuse it (throw: nothing changes)
 * or end what the payment paid for (an order's dispense not yet sent). `full`: the refund leaves
 * nothing more to refund.
 */
export type RefundRecordingHook = (
  ex: Executor,
  payment: PaymentRow,
  refund: { amountMinor: number; full: boolean; actor: string },
) => Promise<void>;

/**
 * Told, in the transaction that stores its provider id, of a refund the provider accepted but has
 * not made yet (e.g. to ask its status later).
 */
export type RefundPendingListener = (ex: Executor, refund: RefundRow, payment: PaymentRow) => Promise<void>;

/**
 * Told, in the transaction, of every refund that waited (PENDING for its provider, DUE for staff)
 * and ended SUCCEEDED or FAILED; `payment` as it is after (a FAILED refund no longer counted). A
 * refund recorded SUCCEEDED at once is only told to the recorded listeners.
 */
export type RefundEndedListener = (ex: Executor, payment: PaymentRow, refund: RefundRow) => Promise<void>;

/** Staff who settle a provider refund by what its dashboard shows, and what they saw. */
type StaffWord = { actor: string; note: string };

/** The figures of a payment row that decide what may be refunded. */
export function refundFigures(p: PaymentRow) {
  return {
    status: p.status as PaymentStatus,
    amountMinor: Number(p.amount_minor),
    receivedMinor: Number(p.received_minor),
    refundedMinor: Number(p.refunded_minor),
  };
}

export function toRefund(r: RefundRow) {
  return {
    id: r.id,
    paymentId: r.payment_id,
    amountMinor: Number(r.amount_minor),
    currency: r.currency,
    reason: r.reason,
    destination: r.destination,
    status: r.status,
    actor: r.actor,
    providerRefundId: r.provider_refund_id,
    error: r.error,
    createdAt: r.created_at,
    completedAt: r.completed_at,
  };
}

export function createRefunds(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  providers: Record<string, ProviderRefunds>;
  ledger: Pick<LedgerService, 'external' | 'siteAccount' | 'transfer' | 'account'>;
  /** The customer of a tenant, or NOT_FOUND (the wallet a `credit` refund goes to). */
  customers: Pick<CustomersService, 'get'>;
  alerts: Pick<AlertsService, 'raise' | 'resolveSubject'>;
}) {
  const { db } = deps;
  const recordedListeners: RefundRecordedListener[] = [];
  const recordingHooks: RefundRecordingHook[] = [];
  const pendingListeners: RefundPendingListener[] = [];
  const endedListeners: RefundEndedListener[] = [];

  /** Tells the ended listeners of `refund`, ended in `tx`, with its payment as it is now. */
  async function tellEnded(tx: Executor, refund: RefundRow): Promise<void> {
    if (endedListeners.length === 0) return;
    const payment = await tx
      .selectFrom('payments')
      .selectAll()
      .where('id', '=', refund.payment_id)
      .executeTakeFirstOrThrow();
    for (const listener of endedListeners) await listener(tx, payment, refund);
  }

  async function lockedPayment(ex: Executor, paymentId: string): Promise<PaymentRow | undefined> {
    let q = ex.selectFrom('payments').selectAll().where('id', '=', paymentId);
    if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update`);
    return q.executeTakeFirst();
  }

  /**
   * Where a refund of `payment` comes from: the site's revenue when the payment was taken (its
   * status before the refund), else `external`: money that never counted as kept.
   */
  async function refundSource(ex: Executor, payment: PaymentRow, siteId: string) {
    const unit = payment.currency;
    if (!wasTaken(payment.status as PaymentStatus)) return deps.ledger.external(ex, payment.tenant_id, unit);
    // A plan bought with no site (by USSD or SMS): its settlement took the money into the tenant's
    // revenue, so its refund comes out of that, not out of the default site's.
    if (payment.site_id === null && payment.purpose === 'plan') {
      const tenant = payment.tenant_id;
      return deps.ledger.account(ex, {
        tenantId: tenant,
        ownerType: 'tenant',
        ownerId: tenant,
        kind: 'revenue',
        unit,
      });
    }
    return deps.ledger.siteAccount(ex, payment.tenant_id, siteId, 'revenue', unit);
  }

  /**
   * Refunds due on the ledger: source → refunds_due when owed (see `refundSource`), refunds_due →
   * external when paid (handed back by staff, or refunded by the provider).
   */
  async function owe(
    ex: Executor,
    refund: RefundRow,
    siteId: string,
    step: { owed: { id: string } } | { paid: string },
  ): Promise<void> {
    const unit = refund.currency;
    const due = await deps.ledger.siteAccount(ex, refund.tenant_id, siteId, 'refunds_due', unit);
    const owed = 'owed' in step;
    const other = owed ? step.owed : await deps.ledger.external(ex, refund.tenant_id, unit);
    await deps.ledger.transfer(ex, {
      tenantId: refund.tenant_id,
      from: owed ? other.id : due.id,
      to: owed ? due.id : other.id,
      amount: Number(refund.amount_minor),
      unit,
      cause: { type: 'refund', id: refund.id },
      memo: owed ? refund.reason : step.paid,
    });
  }

  /** Records a refund inside the caller's transaction; the payment row is locked first. */
  async function record(
    ex: Executor,
    payment: PaymentRow,
    input: {
      amountMinor: number;
      reason: string;
      destination: RefundDestination;
      actor: string;
      /** The wallet a `credit` refund goes to when the payment names no payer. */
      customerId?: string;
      /** A refund the provider already made (from its dashboard): recorded, not asked for again. */
      doneAtProvider?: { providerRefundId: string | null };
    },
  ): Promise<RefundRow> {
    // What arrived still counts towards a pending payment: refunding it would under-pay the order or pay back twice.
    if (payment.status === 'PENDING') {
      throw new AppError(
        'INVALID_STATE',
        `payment ${payment.id} is PENDING: what arrived counts towards it; refund once it succeeded, or when it ends the part that arrived goes to the payer's wallet or to review`,
        { paymentId: payment.id, status: payment.status, receivedMinor: Number(payment.received_minor) },
      );
    }
    if (!Number.isSafeInteger(input.amountMinor) || input.amountMinor <= 0) {
      throw new AppError('VALIDATION_FAILED', 'amountMinor must be a positive integer');
    }
    const decision = decideRefund(refundFigures(payment), input.amountMinor);
    if (!decision.ok) {
      const remaining = decision.remainingMinor;
      throw new AppError(
        'INVALID_STATE',
        `payment ${payment.id} has ${remaining} ${payment.currency} (minor units) left to refund, not ${input.amountMinor}`,
        { remainingMinor: remaining },
      );
    }
    let destination = input.destination;
    // Cash goes back by hand: "to the original method" is staff handing it back.
    if (destination === 'original' && payment.method === 'cash') destination = 'refund_due';
    // A wallet payment goes back to the wallet it came from.
    if (destination === 'original' && payment.method === 'credit') destination = 'credit';
    if (
      destination === 'original' &&
      !(payment.provider && deps.providers[payment.provider] && payment.provider_payment_id)
    ) {
      throw new AppError(
        'PROVIDER_NOT_CONFIGURED',
        `no refund API is configured for ${payment.provider ?? payment.method} payments; refund with to: "refund_due" and hand the money back`,
      );
    }
    const creditTo = payment.customer_id ?? input.customerId ?? null;
    if (destination === 'credit' && creditTo === null) {
      throw new AppError(
        'INVALID_STATE',
        `payment ${payment.id} has no known payer, so there is no wallet to credit; name a customerId`,
      );
    }
    if (destination === 'credit' && creditTo !== null) {
      await deps.customers.get(payment.tenant_id, creditTo, ex);
    }
    const full = input.amountMinor === refundableMinor(refundFigures(payment));
    for (const hook of recordingHooks)
      await hook(ex, payment, { amountMinor: input.amountMinor, full, actor: input.actor });
    const now = nowIso();
    const row: RefundRow = {
      id: newId(),
      tenant_id: payment.tenant_id,
      payment_id: payment.id,
      amount_minor: input.amountMinor,
      currency: payment.currency,
      reason: input.reason,
      destination,
      status:
        destination === 'original'
          ? input.doneAtProvider
            ? 'SUCCEEDED'
            : 'PENDING'
          : destination === 'refund_due'
            ? 'DUE'
            : 'SUCCEEDED',
      actor: input.actor,
      provider_refund_id: input.doneAtProvider?.providerRefundId ?? null,
      error: null,
      created_at: now,
      completed_at: destination === 'credit' || input.doneAtProvider ? now : null,
    };
    await ex.insertInto('refunds').values(row).execute();
    await ex
      .updateTable('payments')
      .set({ refunded_minor: decision.refundedMinor, status: decision.status, updated_at: now })
      .where('id', '=', payment.id)
      .execute();
    await recordAudit(ex, {
      tenantId: payment.tenant_id,
      actor: input.actor,
      action: 'payment.refund',
      subjectType: 'payment',
      subjectId: payment.id,
      before: { status: payment.status, refundedMinor: Number(payment.refunded_minor) },
      after: {
        refundId: row.id,
        amountMinor: input.amountMinor,
        destination,
        reason: input.reason,
        refundedMinor: decision.refundedMinor,
        ...(destination === 'credit' ? { customerId: creditTo } : {}),
      },
    });
    if (destination === 'original' && !input.doneAtProvider)
      await enqueueOutbox(ex, 'refund', { tenantId: payment.tenant_id, refundId: row.id });
    const siteId = payment.site_id ?? 'default';
    const source = await refundSource(ex, payment, siteId);
    // Money owed back is a balance: the site's refunds due, until staff hand it over or the
    // provider confirms its refund (at once when the provider reported a refund it made).
    if (destination === 'refund_due' || destination === 'original')
      await owe(ex, row, siteId, { owed: source });
    if (destination === 'original' && input.doneAtProvider) {
      await owe(ex, row, siteId, { paid: 'refunded by the provider' });
      await settleMismatchOf(ex, payment.id, input.doneAtProvider.providerRefundId);
    }
    // Store credit: back into the payer's wallet.
    if (destination === 'credit') {
      const unit = payment.currency;
      const wallet = await deps.ledger.account(ex, {
        tenantId: payment.tenant_id,
        ownerType: 'customer',
        ownerId: creditTo!,
        kind: 'wallet',
        unit,
      });
      await deps.ledger.transfer(ex, {
        tenantId: payment.tenant_id,
        from: source.id,
        to: wallet.id,
        amount: input.amountMinor,
        unit,
        cause: { type: 'refund', id: row.id },
        memo: input.reason,
      });
    }
    for (const listener of recordedListeners) await listener(ex, payment, row);
    return row;
  }

  /**
   * A PENDING provider refund that gave nothing back ends FAILED with `error`: the payment counts
   * the money as kept again (refundable again), `refunds_due` gives it back to where it came from,
   * and staff get a REFUND_FAILED alert. `refused`: the provider's answer on it; `gave_up`: no
   * answer after the job's last attempt (the provider may yet have made it: staff check first).
   * False when the refund is not PENDING (it succeeded or failed meanwhile): nothing changes.
   */
  function failProviderRefund(
    refundId: string,
    outcome: { kind: 'refused' | 'gave_up'; error: string },
  ): Promise<boolean> {
    return db.transaction().execute((tx) => failInTx(tx, refundId, outcome));
  }

  /** `failProviderRefund` in the caller's transaction; `staff`: staff read it failed at the provider. */
  async function failInTx(
    tx: Executor,
    refundId: string,
    outcome: { kind: 'refused' | 'gave_up'; error: string } | ({ kind: 'staff'; error: string } & StaffWord),
  ): Promise<boolean> {
    const known = await tx
      .selectFrom('refunds')
      .select(['payment_id'])
      .where('id', '=', refundId)
      .executeTakeFirst();
    if (!known) return false;
    // The payment first, as every refund locks it: its figures change with this one's.
    const payment = await lockedPayment(tx, known.payment_id);
    if (!payment) return false;
    const error = outcome.error.slice(0, 1000);
    const now = nowIso();
    const failed = await tx
      .updateTable('refunds')
      .set({ status: 'FAILED', error, completed_at: now })
      .where('id', '=', refundId)
      .where('status', '=', 'PENDING')
      .returningAll()
      .executeTakeFirst();
    if (!failed) return false;
    await deps.alerts.resolveSubject(tx, REFUND_STILL_PENDING, failed.id);
    const amountMinor = Number(failed.amount_minor);
    const undone = undoRefund(refundFigures(payment), amountMinor);
    await tx
      .updateTable('payments')
      .set({ refunded_minor: undone.refundedMinor, status: undone.status, updated_at: now })
      .where('id', '=', payment.id)
      .execute();
    // The money owed back was never paid: refunds_due → where the refund took it from.
    const siteId = payment.site_id ?? 'default';
    const source = await refundSource(tx, payment, siteId);
    const due = await deps.ledger.siteAccount(tx, failed.tenant_id, siteId, 'refunds_due', failed.currency);
    await deps.ledger.transfer(tx, {
      tenantId: failed.tenant_id,
      from: due.id,
      to: source.id,
      amount: amountMinor,
      unit: failed.currency,
      cause: { type: 'refund', id: failed.id },
      memo: `refund failed: ${error}`.slice(0, 500),
    });
    const provider = providerName(payment.provider);
    await recordAudit(tx, {
      tenantId: failed.tenant_id,
      actor:
        outcome.kind === 'staff'
          ? outcome.actor
          : outcome.kind === 'refused'
            ? `provider:${payment.provider}`
            : GAVE_UP_ACTOR,
      action: 'refund.fail',
      subjectType: 'refund',
      subjectId: failed.id,
      before: {
        status: 'PENDING',
        paymentStatus: payment.status,
        refundedMinor: Number(payment.refunded_minor),
      },
      after: {
        status: 'FAILED',
        paymentId: payment.id,
        amountMinor,
        currency: failed.currency,
        error,
        paymentStatus: undone.status,
        refundedMinor: undone.refundedMinor,
        ...(outcome.kind === 'staff' ? { note: outcome.note } : {}),
      },
    });
    const what = `Refund ${failed.id} of ${readableAmount(amountMinor, failed.currency)} (payment ${payment.id}) to the original method`;
    await deps.alerts.raise(tx, {
      tenantId: failed.tenant_id,
      kind: REFUND_FAILED,
      subjectType: 'refund',
      subjectId: failed.id,
      message:
        outcome.kind === 'staff'
          ? `${what} was marked failed by ${outcome.actor}, as the ${provider} Dashboard shows (${outcome.note}). Nothing was refunded and the payment keeps the money: refund the payer again, e.g. to: "refund_due".`
          : outcome.kind === 'refused'
            ? ALREADY_REFUNDED.test(error)
              ? `${what} was refused by ${provider}: ${error}. It is FAILED and the payment keeps the money, but ${provider} says the payment was refunded already (from its Dashboard, say): check there before refunding the payer again, so they are not refunded twice.`
              : `${what} was refused by ${provider}: ${error}. Nothing was refunded and the payment keeps the money: refund the payer again, e.g. to: "refund_due".`
            : `${what} was never confirmed by ${provider}: its job gave up after the last attempt (${error}). It is FAILED and the payment keeps the money; look for refund ${failed.id} in the ${provider} dashboard before refunding the payer again, so they are not refunded twice.`,
    });
    await tellEnded(tx, failed);
    return true;
  }

  /**
   * A PENDING provider refund the provider made: SUCCEEDED with its id, out of refunds due
   * (once: false when it is not PENDING any more).
   */
  async function succeedInTx(
    tx: Executor,
    refundId: string,
    payment: PaymentRow,
    providerRefundId: string,
    /** Staff read it made in the provider's dashboard (else the provider's own news). */
    by?: StaffWord,
  ): Promise<boolean> {
    const done = await tx
      .updateTable('refunds')
      .set({ status: 'SUCCEEDED', provider_refund_id: providerRefundId, completed_at: nowIso() })
      .where('id', '=', refundId)
      .where('status', '=', 'PENDING')
      .returningAll()
      .executeTakeFirst();
    if (!done) return false;
    await deps.alerts.resolveSubject(tx, REFUND_STILL_PENDING, refundId);
    await owe(tx, done, payment.site_id ?? 'default', { paid: 'refunded by the provider' });
    await recordAudit(tx, {
      tenantId: done.tenant_id,
      actor: by?.actor ?? `provider:${payment.provider}`,
      action: 'refund.complete',
      subjectType: 'refund',
      subjectId: refundId,
      before: { status: 'PENDING' },
      after: {
        status: 'SUCCEEDED',
        paymentId: payment.id,
        amountMinor: Number(done.amount_minor),
        currency: done.currency,
        providerRefundId,
        ...(by ? { note: by.note } : {}),
      },
    });
    await tellEnded(tx, done);
    return true;
  }

  /**
   * A refund the provider made is now on the books (Stripe's `charge.refunded` recorded it) under
   * `providerRefundId`: a FAILED refund of the payment whose news said that refund was made
   * (REFUND_PROVIDER_MISMATCH: "the payment counts it as kept") is no longer contrary to the books,
   * so that alert is resolved. The FAILED refund stays FAILED; the recorded one holds the money.
   */
  async function settleMismatchOf(ex: Executor, paymentId: string, providerRefundId: string | null) {
    if (providerRefundId === null) return;
    const failed = await ex
      .selectFrom('refunds')
      .select('id')
      .where('payment_id', '=', paymentId)
      .where('provider_refund_id', '=', providerRefundId)
      .where('status', '=', 'FAILED')
      .execute();
    for (const r of failed) await deps.alerts.resolveSubject(ex, REFUND_PROVIDER_MISMATCH, r.id);
  }

  /** True when the refund ended FAILED because its job gave up with no answer (`failProviderRefund`). */
  async function gaveUp(ex: Executor, refundId: string): Promise<boolean> {
    const { items } = await listAudit(ex, {
      tenants: null,
      action: 'refund.fail',
      actor: GAVE_UP_ACTOR,
      subjectType: 'refund',
      subjectId: refundId,
      limit: 1,
    });
    return items.length > 0;
  }

  /**
   * A provider's news that FAILED `refund` was made (`processed`) or is still on its way (`pending`):
   * no money moves, but its provider id is stored (later news finds it by id) and the news audited
   * (`refund.provider_mismatch`, with what the provider says). False when that was told already
   * (`processed` once; `pending` once, and not after `processed`): a duplicate, no second alert.
   */
  async function toldFailedMade(tx: Executor, refund: RefundRow, news: ProviderRefundNews): Promise<boolean> {
    // Twin deliveries take turns on the payment's lock, as every change of its refunds does.
    const payment = await lockedPayment(tx, refund.payment_id);
    // At most two rows: `pending` once, then `processed` once.
    const told = await listAudit(tx, {
      tenants: null,
      action: PROVIDER_MISMATCH_ACTION,
      subjectType: 'refund',
      subjectId: refund.id,
      limit: 10,
    });
    const said = told.items.map((a) => (a.after as { providerSays?: unknown } | null)?.providerSays);
    if (said.includes('processed') || said.includes(news.outcome)) return false;
    const now = await tx
      .selectFrom('refunds')
      .select('provider_refund_id')
      .where('id', '=', refund.id)
      .executeTakeFirstOrThrow();
    if (now.provider_refund_id === null)
      await tx
        .updateTable('refunds')
        .set({ provider_refund_id: news.providerRefundId })
        .where('id', '=', refund.id)
        .where('provider_refund_id', 'is', null)
        .execute();
    await recordAudit(tx, {
      tenantId: refund.tenant_id,
      actor: `provider:${news.provider}`,
      action: PROVIDER_MISMATCH_ACTION,
      subjectType: 'refund',
      subjectId: refund.id,
      before: { status: refund.status, providerRefundId: now.provider_refund_id },
      after: {
        status: refund.status,
        providerRefundId: now.provider_refund_id ?? news.providerRefundId,
        providerSays: news.outcome,
        paymentId: refund.payment_id,
        paymentStatus: payment?.status ?? null,
        amountMinor: Number(refund.amount_minor),
        currency: refund.currency,
      },
    });
    return true;
  }

  /**
   * The refund to the original method that a provider's news is about: by the provider's refund
   * id; else by our refund id the provider echoes (`news.refundId`, of that provider's payment),
   * when its provider id is not stored yet; else (news that came before the refund API's answer
   * was stored) the one PENDING refund of that payment and amount with no provider id yet; else
   * the one FAILED refund of that payment and amount with no provider id whose job gave up (the
   * provider may have made it all the same). Undefined when none is; 'ambiguous' when several
   * PENDING ones are (which one it is shows once the API's answer is stored).
   */
  async function refundOfNews(
    ex: Executor,
    news: ProviderRefundNews,
  ): Promise<RefundRow | 'ambiguous' | undefined> {
    const ofProvider = () =>
      ex
        .selectFrom('refunds as r')
        .innerJoin('payments as p', 'p.id', 'r.payment_id')
        .selectAll('r')
        .where('p.provider', '=', news.provider)
        .where('r.destination', '=', 'original');
    // One id on two refunds: a FAILED one its news named, and the refund the gateway then reported
    // made (Stripe's charge.refunded): the news is of the one that stands.
    const known = await ofProvider()
      .where('r.provider_refund_id', '=', news.providerRefundId)
      .orderBy(sql`case when r.status = 'FAILED' then 1 else 0 end`)
      .orderBy('r.id')
      .executeTakeFirst();
    if (known) return known;
    if (news.refundId !== undefined) {
      let named = ofProvider().where('r.id', '=', news.refundId).where('r.provider_refund_id', 'is', null);
      if (news.providerPaymentId) named = named.where('p.provider_payment_id', '=', news.providerPaymentId);
      const ours = await named.executeTakeFirst();
      if (ours) return ours;
    }
    const unnamed = () =>
      ofProvider()
        .where('p.provider_payment_id', '=', news.providerPaymentId)
        .where('r.provider_refund_id', 'is', null)
        .where('r.amount_minor', '=', news.amountMinor);
    const candidates = await unnamed().where('r.status', '=', 'PENDING').limit(2).execute();
    if (candidates.length > 1) return 'ambiguous';
    if (candidates[0]) return candidates[0];
    // Several that gave up are not guessed between: staff find the refund in the provider's dashboard.
    const failed = await unnamed().where('r.status', '=', 'FAILED').orderBy('r.id').execute();
    const gaveUpOnes: RefundRow[] = [];
    for (const r of failed) if (await gaveUp(ex, r.id)) gaveUpOnes.push(r);
    return gaveUpOnes.length === 1 ? gaveUpOnes[0] : undefined;
  }

  /**
   * A provider's news of a refund (its webhook), once: `processed` makes a PENDING refund
   * SUCCEEDED, `failed` ends it FAILED as a refusal (`failProviderRefund`), `pending` only notes
   * the provider's id. News of a refund already so is a duplicate; news of a refund unknown here,
   * or contrary to how it ended (processed after FAILED, failed after SUCCEEDED), moves no money
   * and is answered as ignored (a mismatch alert). News that a FAILED refund was made, or (its job
   * gave up) is still pending, stores the provider's id and is told once (`toldFailedMade`); its
   * later deliveries are duplicates. `claim`, in the same transaction: false when this delivery was
   * seen before (the inbox): a duplicate. News that fits several refunds (see `refundOfNews`) is
   * refused UNAVAILABLE, not claimed: its next delivery finds its refund by id.
   */
  async function settleProviderRefund(
    news: ProviderRefundNews,
    claim?: (ex: Executor) => Promise<boolean>,
  ): Promise<{
    refundId: string | null;
    outcome: ProviderRefundNewsOutcome;
    /** Why it was ignored: UNKNOWN_REFUND, or REFUND_SUCCEEDED / REFUND_FAILED (how it ended). */
    ignored?: string;
  }> {
    return db.transaction().execute(async (tx) => {
      const found = await refundOfNews(tx, news);
      // Several refunds it may be about (news before the API's answers were stored): not claimed,
      // so the provider delivers it again, by when its refund is known by id.
      if (found === 'ambiguous')
        throw new AppError(
          'UNAVAILABLE',
          `${providerName(news.provider)} refund ${news.providerRefundId} fits several pending refunds of that payment and amount whose ${providerName(news.provider)} ids are not stored yet: deliver it again later`,
        );
      const refund = found;
      const refundId = refund?.id ?? null;
      if (claim && !(await claim(tx))) return { refundId, outcome: 'duplicate' as const };
      if (!refund) return { refundId, outcome: 'ignored' as const, ignored: 'UNKNOWN_REFUND' };
      const ended = (status: string) =>
        status === 'SUCCEEDED' || status === 'FAILED'
          ? { refundId, outcome: 'ignored' as const, ignored: `REFUND_${status}` }
          : { refundId, outcome: 'ignored' as const, ignored: 'REFUND_NOT_PENDING' };
      // A PENDING refund whose API answer was not stored yet learns its provider id from the news.
      const noteProviderId = async () => {
        if (refund.provider_refund_id !== null) return;
        await tx
          .updateTable('refunds')
          .set({ provider_refund_id: news.providerRefundId })
          .where('id', '=', refund.id)
          .where('status', '=', 'PENDING')
          .execute();
      };
      // The provider says the opposite of how the refund ended here: the books and the payer's
      // money disagree, and only staff can tell which is right (no money is moved by this news).
      const contrary = async (said: string, meaning: string, now: RefundRow = refund) => {
        await deps.alerts.raise(tx, {
          tenantId: now.tenant_id,
          kind: REFUND_PROVIDER_MISMATCH,
          subjectType: 'refund',
          subjectId: now.id,
          message:
            `${providerName(news.provider)} says refund ${now.id} of ` +
            `${readableAmount(Number(now.amount_minor), now.currency)} (payment ${now.payment_id}, ` +
            `${news.providerRefundId}) ${said}, but it is ${now.status} here: ${meaning}`,
        });
        return ended(now.status);
      };
      // The provider made a refund that is FAILED here: the payer has the money the payment
      // counts as kept. Told once (a later delivery is a duplicate).
      const failedButMade = async (now: RefundRow) => {
        if (!(await toldFailedMade(tx, now, news))) return { refundId, outcome: 'duplicate' as const };
        return contrary(
          'was processed',
          'the payer has this money back although the payment counts it as kept; do not refund it again ' +
            '(if it was refunded again meanwhile, the payer got it twice)',
          now,
        );
      };
      // The provider has a refund that ended FAILED here: made, or, for one whose job gave up,
      // still pending (it may yet be made).
      if (
        refund.status === 'FAILED' &&
        (news.outcome === 'processed' || (news.outcome === 'pending' && (await gaveUp(tx, refund.id))))
      ) {
        if (news.outcome === 'processed') return failedButMade(refund);
        if (!(await toldFailedMade(tx, refund, news))) return { refundId, outcome: 'duplicate' as const };
        return contrary(
          'is still pending',
          `its refund request got no answer here (its job gave up), so the payment counts the money as kept, but ${providerName(news.provider)} may still make it: ` +
            `check refund ${news.providerRefundId} in the ${providerName(news.provider)} dashboard before refunding the payer again ` +
            '(if it was refunded again meanwhile and this one is made, the payer gets it twice)',
        );
      }
      if (news.outcome === 'pending') {
        if (refund.status === 'PENDING') await noteProviderId();
        return { refundId, outcome: 'pending' as const };
      }
      // Read PENDING, then ended by a delivery that raced this one (a twin event, a status check)
      // before the payment's lock was ours: the same news is a duplicate, as if it came second.
      const endedMeanwhile = async (same: 'SUCCEEDED' | 'FAILED') => {
        const now = await tx
          .selectFrom('refunds')
          .select('status')
          .where('id', '=', refund.id)
          .executeTakeFirst();
        const status = now?.status ?? refund.status;
        return status === same ? { refundId, outcome: 'duplicate' as const } : ended(status);
      };
      if (news.outcome === 'processed') {
        if (refund.status === 'SUCCEEDED') return { refundId, outcome: 'duplicate' as const };
        if (refund.status !== 'PENDING') return ended(refund.status);
        const payment = await lockedPayment(tx, refund.payment_id);
        if (!payment || !(await succeedInTx(tx, refund.id, payment, news.providerRefundId))) {
          // Ended meanwhile. FAILED (its job gave up, or staff or a twin delivery failed it) while
          // the provider made it: the same mismatch as when this news comes after.
          const now = await tx
            .selectFrom('refunds')
            .selectAll()
            .where('id', '=', refund.id)
            .executeTakeFirst();
          if (now?.status === 'FAILED') return failedButMade(now);
          return endedMeanwhile('SUCCEEDED');
        }
        return { refundId, outcome: 'processed' as const };
      }
      if (refund.status === 'FAILED') return { refundId, outcome: 'duplicate' as const };
      if (refund.status === 'SUCCEEDED')
        return contrary(
          'failed',
          'the payer did not get this money back although the payment counts it as refunded; refund them another way',
        );
      if (refund.status !== 'PENDING') return ended(refund.status);
      await noteProviderId();
      if (!(await failInTx(tx, refund.id, { kind: 'refused', error: news.error })))
        return endedMeanwhile('FAILED');
      return { refundId, outcome: 'failed' as const };
    });
  }

  return {
    record,
    failProviderRefund,
    settleProviderRefund,

    /**
     * What the provider has been (or is being) asked to give back on a payment: its refunds to the
     * original method that have not failed. Cash handed back and wallet credits never reach it.
     */
    async refundedThroughProvider(ex: Executor, paymentId: string): Promise<number> {
      const row = await ex
        .selectFrom('refunds')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('amount_minor'), eb.lit(0)).as('total'))
        .where('payment_id', '=', paymentId)
        .where('destination', '=', 'original')
        .where('status', '!=', 'FAILED')
        .executeTakeFirstOrThrow();
      return Number(row.total);
    },

    /**
     * The `refund` job failed for good: its refund ends FAILED as `gave_up` (`failProviderRefund`).
     * True when the refund has ended, now or meanwhile (its news made it SUCCEEDED while the last
     * attempt waited, a twin run ended it): its own state and alerts tell staff. False when unknown.
     */
    async refundJobGaveUp(refundId: string, error: string): Promise<boolean> {
      if (await failProviderRefund(refundId, { kind: 'gave_up', error })) return true;
      const now = await db
        .selectFrom('refunds')
        .select('status')
        .where('id', '=', refundId)
        .executeTakeFirst();
      return now?.status === 'SUCCEEDED' || now?.status === 'FAILED';
    },

    /** Asked before every refund is written, in its transaction (may refuse it). */
    onRecording(hook: RefundRecordingHook): void {
      recordingHooks.push(hook);
    },

    /** Called with every refund recorded, in its transaction. */
    onRecorded(listener: RefundRecordedListener): void {
      recordedListeners.push(listener);
    },

    /** Called with every refund the provider answered pending, in the transaction storing its id. */
    onProviderPending(listener: RefundPendingListener): void {
      pendingListeners.push(listener);
    },

    /** Called with every refund that waited and ended SUCCEEDED or FAILED, in its transaction. */
    onEnded(listener: RefundEndedListener): void {
      endedListeners.push(listener);
    },

    /** A staff refund of a payment (all that remains when no amount is given). */
    async refund(
      paymentId: string,
      tenantId: string | null,
      input: {
        amountMinor?: number;
        reason: string;
        to?: RefundDestination;
        actor: string;
        customerId?: string;
        /** Refuses unless the payment is of this purpose (a channel refunds only its own). */
        purpose?: string;
      },
    ) {
      const row = await db.transaction().execute(async (tx) => {
        const payment = await lockedPayment(tx, paymentId);
        if (!payment || (tenantId !== null && payment.tenant_id !== tenantId))
          throw notFound('payment', paymentId);
        if (input.purpose !== undefined && payment.purpose !== input.purpose)
          throw notFound('payment', paymentId);
        const remaining = refundableMinor(refundFigures(payment));
        // "All that remains" of a payment with nothing left (refunded already, by another staff
        // member a moment ago, or nothing kept) is the state's fault, not a field the caller sent.
        if (input.amountMinor === undefined && remaining === 0 && payment.status !== 'PENDING')
          throw new AppError('INVALID_STATE', `payment ${payment.id} has nothing left to refund`, {
            remainingMinor: 0,
          });
        return record(tx, payment, {
          amountMinor: input.amountMinor ?? remaining,
          reason: input.reason,
          destination: input.to ?? 'original',
          actor: input.actor,
          ...(input.customerId !== undefined ? { customerId: input.customerId } : {}),
        });
      });
      return toRefund(row);
    },

    /** The refund owed on an order's payments: everything kept or received and not yet refunded. */
    async refundDueForOrder(
      ex: Executor,
      orderId: string,
      input: { reason: string; actor: string },
    ): Promise<void> {
      const payments = await ex.selectFrom('payments').select('id').where('order_id', '=', orderId).execute();
      for (const { id } of payments) {
        const payment = await lockedPayment(ex, id);
        if (!payment) continue;
        const remaining = refundableMinor(refundFigures(payment));
        if (remaining > 0)
          await record(ex, payment, {
            amountMinor: remaining,
            reason: input.reason,
            destination: 'refund_due',
            actor: input.actor,
          });
      }
    },

    async list(paymentId: string, tenantId: string | null) {
      const payment = await db
        .selectFrom('payments')
        .select('tenant_id')
        .where('id', '=', paymentId)
        .executeTakeFirst();
      if (!payment || (tenantId !== null && payment.tenant_id !== tenantId))
        throw notFound('payment', paymentId);
      const rows = await db
        .selectFrom('refunds')
        .selectAll()
        .where('payment_id', '=', paymentId)
        .orderBy('id')
        .execute();
      return rows.map(toRefund);
    },

    /** Staff handed a DUE refund back to the customer. */
    async complete(refundId: string, tenantId: string | null, actor: string, note?: string) {
      const row = await db.transaction().execute(async (tx) => {
        const before = await tx
          .selectFrom('refunds')
          .selectAll()
          .where('id', '=', refundId)
          .executeTakeFirst();
        if (!before || (tenantId !== null && before.tenant_id !== tenantId))
          throw notFound('refund', refundId);
        const now = nowIso();
        const done = await tx
          .updateTable('refunds')
          .set({ status: 'SUCCEEDED', completed_at: now })
          .where('id', '=', refundId)
          .where('status', '=', 'DUE')
          .returningAll()
          .executeTakeFirst();
        if (!done) throw new AppError('INVALID_STATE', `refund ${refundId} is ${before.status}, not DUE`);
        const payment = await tx
          .selectFrom('payments')
          .select('site_id')
          .where('id', '=', before.payment_id)
          .executeTakeFirstOrThrow();
        await owe(tx, done, payment.site_id ?? 'default', { paid: 'handed back' });
        await recordAudit(tx, {
          tenantId: before.tenant_id,
          actor,
          action: 'refund.complete',
          subjectType: 'refund',
          subjectId: refundId,
          before: { status: before.status },
          after: { status: 'SUCCEEDED', ...(note ? { note } : {}) },
        });
        await tellEnded(tx, done);
        return done;
      });
      return toRefund(row);
    },

    /**
     * Staff settle a PENDING provider refund by what the provider's dashboard shows (its news never
     * came: a REFUND_STILL_PENDING alert): `succeeded` as the provider's news would (SUCCEEDED, out
     * of refunds due), `failed` as a refusal (FAILED, the money back on the payment, REFUND_FAILED),
     * audited as the staff member with their note. Its status checks find it ended and stop; news
     * the provider sends later is a duplicate, or REFUND_PROVIDER_MISMATCH when it disagrees.
     */
    async settleByStaff(
      refundId: string,
      tenantId: string | null,
      input: { outcome: 'succeeded' | 'failed' } & StaffWord,
    ) {
      const row = await db.transaction().execute(async (tx) => {
        const read = () => tx.selectFrom('refunds').selectAll().where('id', '=', refundId).executeTakeFirst();
        const before = await read();
        if (!before || (tenantId !== null && before.tenant_id !== tenantId))
          throw notFound('refund', refundId);
        const refused = (r: RefundRow, why: string) =>
          new AppError('INVALID_STATE', `refund ${refundId} ${why}`, {
            status: r.status,
            destination: r.destination,
            providerRefundId: r.provider_refund_id,
          });
        if (before.destination !== 'original')
          throw refused(
            before,
            `is a ${before.destination} refund: only a refund to the original method waits for its provider` +
              (before.destination === 'refund_due' ? '; complete it with POST /v1/refunds/:id/complete' : ''),
          );
        if (before.status !== 'PENDING') throw refused(before, `is ${before.status}, not PENDING`);
        const providerRefundId = before.provider_refund_id;
        // Its refund request not answered yet: the job may still make it, so only its answer tells.
        if (providerRefundId === null)
          throw refused(
            before,
            'has no answer from its provider yet: wait for the refund request to be answered',
          );
        const payment = await lockedPayment(tx, before.payment_id);
        if (!payment) throw notFound('refund', refundId);
        const by = { actor: input.actor, note: input.note };
        const provider = providerName(payment.provider);
        const settled =
          input.outcome === 'succeeded'
            ? await succeedInTx(tx, refundId, payment, providerRefundId, by)
            : await failInTx(tx, refundId, {
                kind: 'staff',
                error: `${provider} refund ${providerRefundId} failed, as ${input.actor} read in the ${provider} Dashboard: ${input.note}`,
                ...by,
              });
        const after = await read();
        // Ended meanwhile (its news, a check, another staff member): nothing changed here.
        if (!settled || !after)
          throw refused(after ?? before, `is ${after?.status ?? before.status}, not PENDING`);
        return after;
      });
      return toRefund(row);
    },

    /** The `refund` job: calls the provider's refund API once per refund (idempotent by status). */
    async runProviderRefund(refundId: string): Promise<void> {
      const refund = await db.selectFrom('refunds').selectAll().where('id', '=', refundId).executeTakeFirst();
      if (!refund || refund.status !== 'PENDING') return;
      const payment = await db
        .selectFrom('payments')
        .selectAll()
        .where('id', '=', refund.payment_id)
        .executeTakeFirstOrThrow();
      const provider = payment.provider ? deps.providers[payment.provider] : undefined;
      if (!provider || !payment.provider_payment_id)
        throw new Error(`no refund API for provider ${payment.provider ?? 'none'}`);
      let providerRefundId: string;
      let pending: boolean | undefined;
      try {
        const ctx = { currency: refund.currency, refundId: refund.id };
        ({ providerRefundId, pending } = await provider.refund(
          payment.provider_payment_id,
          Number(refund.amount_minor),
          ctx,
        ));
      } catch (err) {
        // Refused for good: asking again gets the same answer. The refund ends FAILED (the job is done).
        if (!(err instanceof RefundRefusedError)) throw err;
        await failProviderRefund(refundId, { kind: 'refused', error: err.message });
        return;
      }
      // Accepted, not made yet: the refund waits, with the provider's id, for its news (the job is
      // done; asked again, e.g. after a crash, the same refund's answer may say it was made).
      // Listeners (its status checks) start then, unless its news came first and ended it.
      if (pending) {
        await db.transaction().execute(async (tx) => {
          const waiting = await tx
            .updateTable('refunds')
            .set({ provider_refund_id: providerRefundId })
            .where('id', '=', refundId)
            .where('status', '=', 'PENDING')
            .returningAll()
            .executeTakeFirst();
          if (waiting) for (const listener of pendingListeners) await listener(tx, waiting, payment);
        });
        return;
      }
      // The money has left: out of refunds due, with the refund's SUCCEEDED (once, however often
      // the job runs).
      await db.transaction().execute((tx) => succeedInTx(tx, refundId, payment, providerRefundId));
    },
  };
}

export type Refunds = ReturnType<typeof createRefunds>;
