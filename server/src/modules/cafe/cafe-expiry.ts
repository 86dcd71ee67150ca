// Abandoned table orders: a guest's order still unpaid CAFE_ORDER_TTL_MS after it was placed ends
// CANCELLED (failureCode UNPAID_EXPIRED), audited, through one durable job per order written in the
// order's own transaction. A payment still payable (a bank transfer's 24 h, cash waiting for staff)
// keeps the order open until it ends; one past its expiry is expired first (the gateway is asked
// one last time, so money taken at the last second still pays the order). Nothing is held for an
// unpaid order (stock is taken when it is paid, tables are never reserved), so nothing is released.
import type { Logger } from 'pino';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import type { Intents } from '../payments/intents.js';
import { MONEY_RECEIVED, type PaymentQueries } from '../payments/payment-queries.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** A table order reached its unpaid deadline: CANCELLED unless paid, paying or in the kitchen. */
    cafe_order_expire: { tenantId: string; orderId: string };
  }
}

export const UNPAID_EXPIRED = 'UNPAID_EXPIRED';
const ACTOR = 'system:order-expiry';
/** After a payment's own expiry, its `payment_expire` job goes first. */
const AFTER_PAYMENT_MS = 5_000;
/**
 * A pending payment with no expiry of its own (a cash session open at the counter, which ends when
 * paid, cancelled, or idle for CASH_SESSION_IDLE_MS) is looked at again this much later, not every
 * few seconds.
 */
const OPEN_ENDED_RECHECK_MS = 10 * 60_000;
const payableUntil = (p: { expires_at: string | null }) =>
  p.expires_at === null ? Date.now() + OPEN_ENDED_RECHECK_MS : Date.parse(p.expires_at);

export type ExpiryOutcome = 'cancelled' | 'not_open' | 'paying' | 'gone';

export function createCafeExpiry(deps: {
  db: Db;
  logger: Logger;
  ttlMs: number;
  orders: Pick<OrdersService, 'findRow' | 'transition' | 'lock' | 'unpaidCreatedBefore'>;
  payments: Pick<PaymentQueries, 'ofOrder' | 'ordersWithPendingPayment'>;
  intents: Pick<Intents, 'expire'>;
}) {
  const { db } = deps;

  const schedule = (ex: Executor, tenantId: string, orderId: string, runAt: string) =>
    enqueueOutbox(ex, 'cafe_order_expire', { tenantId, orderId }, { runAt });

  /** Is the order still an unpaid table order outside the kitchen (the only kind that expires)? */
  async function open(ex: Executor, orderId: string) {
    const row = await deps.orders.findRow(orderId, ex);
    if (!row || row.status !== 'CREATED' || row.paid_at !== null) return undefined;
    const cafe = await ex
      .selectFrom('cafe_orders')
      .select(['sent_to_kitchen_at', 'created_at'])
      .where('order_id', '=', orderId)
      .executeTakeFirst();
    // A pay-later order the kitchen took is food owed for: staff collect it, it never expires.
    if (!cafe || cafe.sent_to_kitchen_at !== null) return undefined;
    return row;
  }

  const paymentsOf = (ex: Executor, orderId: string) =>
    deps.payments.ofOrder(ex, orderId, ['PENDING', ...MONEY_RECEIVED]);

  /** The job: cancels the order if it is still unpaid, else leaves it (or looks again later). */
  async function expire(job: { orderId: string }): Promise<ExpiryOutcome> {
    const row = await open(db, job.orderId);
    if (!row) return 'not_open';
    const deadline = Date.parse(row.created_at) + deps.ttlMs;
    if (deadline > Date.now()) {
      // Enqueued early (a sweep, a clock change): look again at the deadline.
      await schedule(db, row.tenant_id, row.id, new Date(deadline).toISOString());
      return 'paying';
    }
    const pending = (await paymentsOf(db, row.id)).filter((p) => p.status === 'PENDING');
    const payable = pending.filter((p) => p.expires_at === null || Date.parse(p.expires_at) > Date.now());
    if (payable.length > 0) {
      // The guest is still paying (a transfer on its way, cash asked for): wait for that to end.
      const until = Math.max(...payable.map(payableUntil));
      await schedule(db, row.tenant_id, row.id, new Date(until + AFTER_PAYMENT_MS).toISOString());
      return 'paying';
    }
    // Past their expiry but not yet expired by their own job: that job's work, now (it may settle).
    for (const p of pending) await deps.intents.expire({ paymentId: p.id });

    return db.transaction().execute(async (tx): Promise<ExpiryOutcome> => {
      await deps.orders.lock(tx, row.id);
      const current = await open(tx, row.id);
      if (!current) return 'not_open';
      // Paid, or a new attempt started since (initiate locks the same row): not abandoned.
      const now = await paymentsOf(tx, row.id);
      if (now.some((p) => p.status !== 'PENDING')) return 'not_open';
      if (now.length > 0) {
        const until = Math.max(...now.map(payableUntil));
        await schedule(tx, row.tenant_id, row.id, new Date(until + AFTER_PAYMENT_MS).toISOString());
        return 'paying';
      }
      const moved = await deps.orders.transition(tx, row.id, 'CANCELLED', {
        actor: ACTOR,
        failureCode: UNPAID_EXPIRED,
        event: 'expired',
        detail: { ttlMs: deps.ttlMs },
      });
      if (!moved) return 'not_open';
      await recordAudit(tx, {
        tenantId: row.tenant_id,
        actor: ACTOR,
        action: 'order.expire',
        subjectType: 'order',
        subjectId: row.id,
        before: { status: current.status, paidAt: null },
        after: { status: 'CANCELLED', failureCode: UNPAID_EXPIRED, ttlMs: deps.ttlMs },
      });
      return 'cancelled';
    });
  }

  return {
    expire,

    /** In the transaction that creates a table order: its unpaid deadline, as a job. */
    async scheduleFor(ex: Executor, order: { tenantId: string; id: string; createdAt: string }) {
      await schedule(
        ex,
        order.tenantId,
        order.id,
        new Date(Date.parse(order.createdAt) + deps.ttlMs).toISOString(),
      );
    },

    /**
     * The scheduler's safety net: table orders past their deadline with nothing in flight (orders
     * placed before expiry existed, a job that ended FAILED) get their job again. The job is
     * idempotent, so a second one for the same order changes nothing.
     */
    async sweep(limit = 500): Promise<number> {
      const before = new Date(Date.now() - deps.ttlMs).toISOString();
      // Table orders the kitchen has not taken, with no payment under way.
      const stale = await deps.orders.unpaidCreatedBefore({
        before,
        among: db.selectFrom('cafe_orders').select('order_id').where('sent_to_kitchen_at', 'is', null),
        excluding: deps.payments.ordersWithPendingPayment(),
        limit,
      });
      if (stale.length === 0) return 0;
      await db.transaction().execute(async (tx) => {
        for (const o of stale) await schedule(tx, o.tenant_id, o.id, nowIso());
      });
      deps.logger.info({ orders: stale.length }, 'unpaid table orders past their deadline queued for expiry');
      return stale.length;
    },
  };
}

export type CafeExpiry = ReturnType<typeof createCafeExpiry>;
