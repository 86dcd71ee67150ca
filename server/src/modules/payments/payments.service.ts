// The payment inbox and the payments table: each provider event and each provider payment is
// stored once, in the same transaction as the payment row and the settlement it causes, so
// retries and concurrent deliveries have exactly one effect.
import { AppError, notFound } from '../../platform/errors.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { afterCommit, inGroup } from '../../platform/db/group-commit.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { DeferredConflict } from '../../platform/db/write-behind.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import { recordAudit } from '../audit/audit.service.js';
import type { PaymentView } from '@kioskhub/protocol';
import type { PaymentRow } from '../../platform/db/schema.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import type { PaymentNotification } from './payment-notification.js';
import { pendingPayment, type PaymentListFilter, type PaymentsRepo } from './payments.repo.js';
import type { Settlement } from './settlement.js';

export type WebhookAnswer =
  { ok: true; orderId: string; duplicate?: true } | { ok: true; ignored: string; duplicate?: true };

export type PaymentOutcome = 'processed' | 'duplicate' | 'ignored' | 'amount_mismatch';

export interface PaymentsDeps {
  db: Db;
  repo: PaymentsRepo;
  settlement: Pick<Settlement, 'apply'>;
  orders: Pick<OrdersService, 'create' | 'findRow'>;
  machines: Pick<MachinesService, 'findByQrCodeId'>;
  /**
   * Right after the commit of a payment that queued a command: start its dispatch now rather
   * than when the outbox relay gets to the row (the row stays, for a crash in between).
   */
  onCommandQueued?(machineId: string, commandId: string): void;
}

export function createPaymentsService(deps: PaymentsDeps) {
  const { db, repo, settlement, orders, machines } = deps;

  /** The payment's inbox row; false when (provider, provider payment id) was recorded before. */
  function recordEvent(
    ex: Executor,
    n: PaymentNotification,
    fields: {
      status: 'PROCESSED' | 'IGNORED' | 'REJECTED';
      reason: string | null;
      tenantId: string | null;
      machineId: string | null;
      orderId: string | null;
      receivedAt: string;
    },
    options: { optimistic?: boolean } = {},
  ): Promise<boolean> {
    return repo.insertEvent(
      {
        provider: n.provider,
        provider_payment_id: n.providerPaymentId,
        event_id: n.eventId,
        event_type: n.eventType,
        tenant_id: fields.tenantId,
        status: fields.status,
        reason: fields.reason,
        machine_id: fields.machineId,
        order_id: fields.orderId,
        amount_minor: n.amountMinor,
        currency: n.currency,
        raw: n.raw,
        received_at: fields.receivedAt,
      },
      ex,
      options,
    );
  }

  async function answerForExistingPayment(ex: Executor, n: PaymentNotification): Promise<WebhookAnswer> {
    const existing = await ex
      .selectFrom('payment_events')
      .select(['order_id', 'reason'])
      .where('provider', '=', n.provider)
      .where('provider_payment_id', '=', n.providerPaymentId)
      .executeTakeFirst();
    if (!existing) return { ok: true, duplicate: true, ignored: 'DUPLICATE_EVENT' };
    return existing.order_id
      ? { ok: true, duplicate: true, orderId: existing.order_id }
      : { ok: true, duplicate: true, ignored: existing.reason ?? 'IGNORED' };
  }

  /**
   * A delivery whose event id was seen before. The same event again is a duplicate; the same id
   * carrying another payment, or first delivered with a refund's news, is refused and changes
   * nothing (the first delivery stands), never answered as a duplicate of a payment not recorded.
   */
  async function answerForRepeatedEvent(
    ex: Executor,
    n: PaymentNotification,
    eventId: string,
  ): Promise<WebhookAnswer> {
    const first = ((await repo.delivery(n.provider, eventId, ex)) ?? {}) as {
      providerPaymentId?: string;
      providerRefundId?: string;
    };
    if (first.providerRefundId !== undefined)
      throw new AppError(
        'CONFLICT',
        `event ${eventId} was already delivered for refund ${first.providerRefundId}, not payment ${n.providerPaymentId}`,
      );
    if (first.providerPaymentId !== undefined && first.providerPaymentId !== n.providerPaymentId) {
      throw new AppError(
        'CONFLICT',
        `event ${eventId} was already delivered for payment ${first.providerPaymentId}, not ${n.providerPaymentId}`,
      );
    }
    return answerForExistingPayment(ex, n);
  }

  /**
   * A payment first recorded as not captured (e.g. `authorized`) takes effect when it arrives
   * captured: its inbox row moves on from IGNORED/NOT_CAPTURED, once (the update is conditional).
   */
  async function claimUncaptured(
    ex: Executor,
    n: PaymentNotification,
    fields: { reason: string | null; tenantId: string; machineId: string; orderId: string },
  ): Promise<boolean> {
    const moved = await ex
      .updateTable('payment_events')
      .set({
        status: 'PROCESSED',
        reason: fields.reason,
        tenant_id: fields.tenantId,
        machine_id: fields.machineId,
        order_id: fields.orderId,
        event_id: n.eventId,
        event_type: n.eventType,
        amount_minor: n.amountMinor,
        currency: n.currency,
        raw: n.raw,
        processed_at: nowIso(),
      })
      .where('provider', '=', n.provider)
      .where('provider_payment_id', '=', n.providerPaymentId)
      .where('status', '=', 'IGNORED')
      .where('reason', '=', 'NOT_CAPTURED')
      .returning('id')
      .executeTakeFirst();
    return moved !== undefined;
  }

  /** Applies one verified payment notification. Safe to call any number of times, concurrently. */
  async function applyPayment(
    n: PaymentNotification,
  ): Promise<{ answer: WebhookAnswer; outcome: PaymentOutcome }> {
    let queued: { machineId: string; commandId: string } | undefined;
    const result = await record(n, (q) => (queued = q));
    if (queued) deps.onCommandQueued?.(queued.machineId, queued.commandId);
    return result;
  }

  /**
   * A delivery is almost always new: on PostgreSQL the first attempt sends its inbox claims with
   * its other writes (four round trips in all). A claim taken meanwhile fails that attempt, and the
   * second one claims first and answers the repeat as such.
   */
  async function record(
    n: PaymentNotification,
    onQueued: (q: { machineId: string; commandId: string }) => void,
  ): Promise<{ answer: WebhookAnswer; outcome: PaymentOutcome }> {
    try {
      // `onQueued` hears only of a committed command: a failed attempt's is rolled back unheard.
      return await recordOnce(n, onQueued, { optimistic: true });
    } catch (err) {
      // A repeat raced past the held claims: its writes met the first delivery's keys.
      if (!(err instanceof DeferredConflict) && !isUniqueViolation(err)) throw err;
    }
    return recordOnce(n, onQueued, { optimistic: false });
  }

  function recordOnce(
    n: PaymentNotification,
    onQueued: (q: { machineId: string; commandId: string }) => void,
    claims: { optimistic: boolean },
  ): Promise<{ answer: WebhookAnswer; outcome: PaymentOutcome }> {
    const receivedAt = nowIso();
    // Webhooks that arrive together share one commit (SQLite); each is answered after it.
    return inGroup(
      db,
      async (tx) => {
        // The one read first: the claims after it can then travel with the writes.
        const machine = n.reference ? await machines.findByQrCodeId(n.reference, tx) : undefined;
        if (n.eventId) {
          const response = { providerPaymentId: n.providerPaymentId };
          const fresh = await repo.claimDelivery(n.provider, n.eventId, response, tx, claims);
          if (!fresh)
            return { answer: await answerForRepeatedEvent(tx, n, n.eventId), outcome: 'duplicate' as const };
        }
        const ignore = async (reason: string) => {
          const fresh = await recordEvent(
            tx,
            n,
            {
              status: 'IGNORED',
              reason,
              tenantId: machine?.tenant_id ?? null,
              machineId: machine?.id ?? null,
              orderId: null,
              receivedAt,
            },
            claims,
          );
          if (!fresh) return { answer: await answerForExistingPayment(tx, n), outcome: 'duplicate' as const };
          return { answer: { ok: true, ignored: reason } as WebhookAnswer, outcome: 'ignored' as const };
        };
        if (!machine) return ignore('UNKNOWN_QR');
        if (!n.captured) return ignore('NOT_CAPTURED');

        const expected = machine.payment_fixed_amount_minor;
        const mismatch = (expected !== null && expected !== n.amountMinor) || n.currency !== machine.currency;
        const orderId = newId();
        const reason = mismatch ? 'AMOUNT_MISMATCH' : null;
        const fresh =
          (await recordEvent(
            tx,
            n,
            {
              status: 'PROCESSED',
              reason,
              tenantId: machine.tenant_id,
              machineId: machine.id,
              orderId,
              receivedAt,
            },
            claims,
          )) ||
          (await claimUncaptured(tx, n, {
            reason,
            tenantId: machine.tenant_id,
            machineId: machine.id,
            orderId,
          }));
        if (!fresh) return { answer: await answerForExistingPayment(tx, n), outcome: 'duplicate' as const };

        const order = await orders.create(tx, {
          id: orderId,
          tenantId: machine.tenant_id,
          machineId: machine.id,
          siteId: machine.site_id,
          amount: n.amountMinor,
          currency: n.currency,
          source: 'upi_qr',
          requiresDispense: true,
          provider: n.provider,
          providerPaymentId: n.providerPaymentId,
          providerQrCodeId: n.reference ?? undefined,
          status: mismatch ? 'FAILED' : 'PAID',
          ...(mismatch ? { failureCode: 'AMOUNT_MISMATCH' } : {}),
          actor: `provider:${n.provider}`,
        });
        const payment: PaymentRow = {
          id: newId(),
          tenant_id: machine.tenant_id,
          site_id: machine.site_id,
          purpose: 'order',
          order_id: order.id,
          customer_id: null,
          plan_id: null,
          machine_id: machine.id,
          method: 'upi_qr',
          provider: n.provider,
          provider_payment_id: n.providerPaymentId,
          reference: n.reference,
          amount_minor: expected ?? n.amountMinor,
          received_minor: n.amountMinor,
          currency: n.currency,
          status: mismatch ? 'FAILED' : 'SUCCEEDED',
          failure_code: reason,
          refunded_minor: 0,
          created_at: receivedAt,
          completed_at: mismatch ? null : receivedAt,
          updated_at: receivedAt,
          expires_at: null,
        };
        await repo.insert(payment, tx);
        // A standing intent (the machine's fixed-amount QR) paid another amount: kept, not applied.
        if (mismatch) {
          // Money taken and not applied is a change of money: audited with what was due and paid.
          await recordAudit(tx, {
            tenantId: machine.tenant_id,
            actor: `provider:${n.provider}`,
            action: 'payment.amount_mismatch',
            subjectType: 'payment',
            subjectId: payment.id,
            after: {
              orderId: order.id,
              method: payment.method,
              provider: n.provider,
              amountMinor: Number(payment.amount_minor),
              receivedMinor: n.amountMinor,
              currency: n.currency,
              ...(n.currency !== machine.currency ? { expectedCurrency: machine.currency } : {}),
            },
          });
        } else {
          await settlement.apply(tx, payment, {
            actor: `provider:${n.provider}`,
            order,
            machine,
            // Told once the command is on disk: a run rolled back (and run again) tells nothing.
            onCommandQueued: (machineId, commandId) =>
              afterCommit(tx, () => onQueued({ machineId, commandId })),
          });
        }
        return {
          answer: { ok: true, orderId: order.id } as WebhookAnswer,
          outcome: mismatch ? ('amount_mismatch' as const) : ('processed' as const),
        };
      },
      { replayable: true },
    );
  }

  /** A payment the caller's tenant sees (`null`: every tenant), or undefined; a list's cursor names one. */
  async function visible(id: string, tenantId: string | null): Promise<PaymentRow | undefined> {
    const row = await repo.findById(id);
    return row && (tenantId === null || row.tenant_id === tenantId) ? row : undefined;
  }

  return {
    applyPayment,

    /**
     * A one-off intent: a PENDING payment that its channel completes (a cash session's payment,
     * whose id is the session's). Settled through the settlement's `succeed`.
     */
    async open(
      ex: Executor,
      input: {
        id: string;
        tenantId: string;
        siteId: string | null;
        purpose: 'order';
        orderId: string;
        machineId: string | null;
        method: string;
        amountMinor: number;
        currency: string;
      },
    ) {
      await repo.insert(
        pendingPayment({
          id: input.id,
          tenant_id: input.tenantId,
          site_id: input.siteId,
          purpose: input.purpose,
          order_id: input.orderId,
          machine_id: input.machineId,
          method: input.method,
          amount_minor: input.amountMinor,
          currency: input.currency,
        }),
        ex,
      );
    },

    /** Money arrived towards a pending payment that it does not cover yet (underpaid stays pending). */
    async received(ex: Executor, id: string, receivedMinor: number): Promise<void> {
      await repo.updateIfStatus(id, ['PENDING'], { received_minor: receivedMinor, updated_at: nowIso() }, ex);
    },

    /** The payment row itself, for a module that refunds it in its own transaction. */
    row: (ex: Executor, id: string) => repo.findById(id, ex),

    /** A pending payment that will not complete (a cancelled cash session). */
    async fail(ex: Executor, id: string, failureCode: string): Promise<void> {
      const now = nowIso();
      await repo.updateIfStatus(
        id,
        ['PENDING'],
        { status: 'FAILED', failure_code: failureCode, completed_at: now, updated_at: now },
        ex,
      );
    },

    /**
     * The inbox, in the caller's transaction: true when (provider, eventId) is new and now stored
     * with `response`, false when it was delivered before (an unsigned callback, an inbound SMS).
     */
    claimDelivery: (provider: string, eventId: string, response: unknown, ex: Executor) =>
      repo.claimDelivery(provider, eventId, response, ex),

    async list(filter: Omit<PaymentListFilter, 'before'> & { cursor?: string }) {
      const { cursor, ...rest } = filter;
      await knownCursor(cursor, (id) => visible(id, filter.tenantId));
      const rows = await repo.list({
        ...rest,
        limit: filter.limit + 1,
        ...(cursor ? { before: cursor } : {}),
      });
      return pageOf(rows, filter.limit, toPayment);
    },

    async get(id: string, tenantId: string | null) {
      const row = await visible(id, tenantId);
      if (!row) throw notFound('payment', id);
      return toPayment(row);
    },

    async getEvent(provider: string, providerPaymentId: string, tenantId: string | null) {
      const row = await db
        .selectFrom('payment_events')
        .select(['status', 'reason', 'machine_id', 'order_id', 'processed_at', 'tenant_id'])
        .where('provider', '=', provider)
        .where('provider_payment_id', '=', providerPaymentId)
        .executeTakeFirst();
      if (!row || (tenantId !== null && row.tenant_id !== tenantId))
        throw notFound('payment event', `${provider}/${providerPaymentId}`);
      const order = row.order_id ? await orders.findRow(row.order_id) : undefined;
      return {
        status: row.status,
        reason: row.reason,
        machineId: row.machine_id,
        orderId: row.order_id,
        dispatch: dispatchState(order),
        processedAt: row.processed_at,
      };
    },
  };
}

/** A payment as staff see it (the §13 view). */
export function toPayment(r: PaymentRow): PaymentView {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    siteId: r.site_id,
    purpose: r.purpose,
    orderId: r.order_id,
    customerId: r.customer_id,
    planId: r.plan_id,
    machineId: r.machine_id,
    method: r.method,
    provider: r.provider,
    providerPaymentId: r.provider_payment_id,
    reference: r.reference,
    amountMinor: Number(r.amount_minor),
    receivedMinor: Number(r.received_minor),
    currency: r.currency,
    status: r.status,
    failureCode: r.failure_code,
    refundedMinor: Number(r.refunded_minor),
    createdAt: r.created_at,
    completedAt: r.completed_at,
  };
}

/**
 * Where the dispense of a payment's order stands, in one word. Only a vending order is dispensed
 * by its machine; a kitchen order (a restaurant kiosk's, a cafe table's) has no dispense: `NONE`.
 */
function dispatchState(order: { status: string; source: string | null } | undefined): string {
  if (!order || order.source === 'kiosk' || order.source === 'table') return 'NONE';
  switch (order.status) {
    case 'PAID':
      return 'PENDING';
    case 'DISPATCHED':
      return 'SENT';
    case 'COMPLETED':
      return 'DONE';
    case 'FAILED':
      return 'FAILED';
    case 'NEEDS_REVIEW':
      return 'NEEDS_REVIEW';
    default:
      // Not paid (CREATED), or ended without a dispense (CANCELLED, REFUNDED).
      return 'NONE';
  }
}

export type PaymentsService = ReturnType<typeof createPaymentsService>;
