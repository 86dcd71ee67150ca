// What other modules ask the payments module about payments and refunds (the cafe's payment
// screens and order expiry, the water charts and alerts): lookups, never writes, plus the row
// lock a caller's transaction takes before it changes a payment through intents or settlement.
import { sql } from 'kysely';
import type { Db, Executor } from '../../platform/db/database.js';
import type { PaymentRow, RefundRow } from '../../platform/db/schema.js';
import type { PaymentStatus } from './payment-rules.js';
import type { PaymentsRepo } from './payments.repo.js';

/** Statuses of a payment whose money came in (refunds, if any, taken out later). */
export const MONEY_RECEIVED: readonly PaymentStatus[] = ['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'];

export function createPaymentQueries(deps: { db: Db; dialect: 'sqlite' | 'postgres'; repo: PaymentsRepo }) {
  const { db, repo } = deps;
  return {
    /** The payment, locked until the caller's transaction ends (PostgreSQL `FOR UPDATE`). */
    lock: (ex: Executor, id: string): Promise<PaymentRow | undefined> => repo.lock(id, ex, deps.dialect),

    find: (id: string, ex: Executor = db): Promise<PaymentRow | undefined> => repo.findById(id, ex),

    /** An order's payments in one of `statuses`. */
    ofOrder(
      ex: Executor,
      orderId: string,
      statuses: readonly PaymentStatus[],
    ): Promise<Pick<PaymentRow, 'id' | 'status' | 'expires_at'>[]> {
      return ex
        .selectFrom('payments')
        .select(['id', 'status', 'expires_at'])
        .where('order_id', '=', orderId)
        .where('status', 'in', statuses)
        .execute();
    },

    /** What refunds gave back of an order's payments so far, in minor units (0: nothing). */
    async refundedForOrder(ex: Executor, orderId: string): Promise<number> {
      const row = await ex
        .selectFrom('payments')
        .select((eb) => eb.fn.sum<number | string>('refunded_minor').as('refunded'))
        .where('order_id', '=', orderId)
        .executeTakeFirst();
      return Number(row?.refunded ?? 0);
    },

    /** True when this customer paid (or is paying) the order. */
    async isPayer(orderId: string, customerId: string): Promise<boolean> {
      const row = await db
        .selectFrom('payments')
        .select('id')
        .where('order_id', '=', orderId)
        .where('customer_id', '=', customerId)
        .executeTakeFirst();
      return row !== undefined;
    },

    /** The ids of orders with a PENDING payment, as a subquery for the orders module's filters. */
    ordersWithPendingPayment() {
      return db
        .selectFrom('payments')
        .select('order_id')
        .where('status', '=', 'PENDING')
        .where('order_id', 'is not', null)
        .$narrowType<{ order_id: string }>();
    },

    /** PENDING order payments of a site by these methods, oldest first. */
    pendingAtSite(tenantId: string, siteId: string, methods: readonly string[], limit: number) {
      return db
        .selectFrom('payments')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .where('purpose', '=', 'order')
        .where('status', '=', 'PENDING')
        .where('method', 'in', methods)
        .orderBy('created_at')
        .limit(limit)
        .execute();
    },

    /** The newest refunds of a site's payments, with the order and method of each payment. */
    refundsAtSite(
      tenantId: string,
      siteId: string,
      limit: number,
    ): Promise<(RefundRow & Pick<PaymentRow, 'order_id' | 'method'>)[]> {
      return db
        .selectFrom('refunds as r')
        .innerJoin('payments as p', 'p.id', 'r.payment_id')
        .selectAll('r')
        .select(['p.order_id', 'p.method'])
        .where('r.tenant_id', '=', tenantId)
        .where('p.site_id', '=', siteId)
        .orderBy('r.id', 'desc')
        .limit(limit)
        .execute();
    },

    /**
     * Payments still PENDING past `stuckBefore` (their expiry, or their creation when they have
     * none), cash excepted: a cash session is open while a customer stands at the machine.
     */
    stuckPending(stuckBefore: string, limit: number) {
      return db
        .selectFrom('payments')
        .select([
          'id',
          'tenant_id',
          'purpose',
          'method',
          'amount_minor',
          'currency',
          'created_at',
          'expires_at',
        ])
        .where('status', '=', 'PENDING')
        .where('method', '!=', 'cash')
        .where((w) =>
          w.or([
            w.and([w('expires_at', 'is not', null), w('expires_at', '<', stuckBefore)]),
            w.and([w('expires_at', 'is', null), w('created_at', '<', stuckBefore)]),
          ]),
        )
        .orderBy('id')
        .limit(limit)
        .execute();
    },

    /**
     * Money kept from plan payments completed in [from, to) (amount less refunds), per tenant, plan
     * and currency: the plan's name is the customers module's.
     */
    async planRevenue(q: { tenantId: string | null; from: string; to: string }) {
      let revenue = db
        .selectFrom('payments')
        .select([
          'tenant_id',
          'plan_id',
          'currency',
          sql<string | number>`sum(${sql.ref('amount_minor')} - ${sql.ref('refunded_minor')})`.as('amount'),
          (eb) => eb.fn.countAll<string | number>().as('n'),
        ])
        .where('purpose', '=', 'plan')
        .where('status', 'in', MONEY_RECEIVED)
        .where('completed_at', '>=', q.from)
        .where('completed_at', '<', q.to)
        .groupBy(['tenant_id', 'plan_id', 'currency']);
      if (q.tenantId !== null) revenue = revenue.where('tenant_id', '=', q.tenantId);
      const rows = await revenue.execute();
      return rows.map((r) => ({
        tenantId: r.tenant_id,
        planId: r.plan_id,
        currency: r.currency,
        amountMinor: Number(r.amount ?? 0),
        payments: Number(r.n),
      }));
    },
  };
}

export type PaymentQueries = ReturnType<typeof createPaymentQueries>;
