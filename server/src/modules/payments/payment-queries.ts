// What other modules ask the payments module about payments and refunds (the cafe's payment
// screens and order expiry, the dashboard's and water charts' revenue, the water alerts): lookups,
// never writes, plus the row lock a caller's transaction takes before it changes a payment through
// intents or settlement.
import { sql, type RawBuilder, type SelectQueryBuilder } from 'kysely';
import type { Db, Executor } from '../../platform/db/database.js';
import type { Database, PaymentRow, RefundRow } from '../../platform/db/schema.js';
import type { PaymentStatus } from './payment-rules.js';
import type { PaymentsRepo } from './payments.repo.js';

/** Statuses of a payment whose money came in (refunds, if any, taken out later). */
export const MONEY_RECEIVED: readonly PaymentStatus[] = ['SUCCEEDED', 'PARTIALLY_REFUNDED', 'REFUNDED'];

/**
 * Which payments a revenue query reads: a tenant's (null: every tenant's) of one purpose, in
 * [from, to), optionally only those of some orders (a subquery of order ids, e.g. one site's).
 */
export interface KeptMoneyScope {
  tenantId: string | null;
  purpose: 'order' | 'plan';
  from: string;
  to: string;
  orderIds?: SelectQueryBuilder<Database, keyof Database, { id: string }>;
}

/**
 * A group of money movements: `b` the group's key (built by the caller on the time column it is
 * given), `lo` and `hi` the first and last instant in it.
 */
export interface KeptMoneyGroup {
  b: string;
  currency: string;
  amount: number;
  n: number;
  lo: string;
  hi: string;
}

/** An order's refund as its guest may see it (`payment_refunded`, `refund_updated`). */
export interface OrderRefund {
  orderId: string;
  refundId: string;
  amountMinor: number;
  currency: string;
  destination: 'original' | 'refund_due' | 'credit';
  status: 'PENDING' | 'DUE' | 'SUCCEEDED' | 'FAILED';
}

/** Builds a group key on a time column the query names (a bucket of it, or a finer piece). */
export type GroupKey = (column: string) => RawBuilder<string>;

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

    /**
     * The newest refund of an order's payments, in the shape `payment_refunded` and
     * `refund_updated` carry (null: none). Not its reason, error or actor: guests read it, and a
     * staff settle's note names staff.
     */
    async latestOrderRefund(orderId: string, ex: Executor = db): Promise<OrderRefund | null> {
      const r = await ex
        .selectFrom('refunds as r')
        .innerJoin('payments as p', 'p.id', 'r.payment_id')
        .select(['r.id', 'r.amount_minor', 'r.currency', 'r.destination', 'r.status'])
        .where('p.order_id', '=', orderId)
        .where('p.purpose', '=', 'order')
        .orderBy('r.id', 'desc') // ids grow with time (as the guest page compares them)
        .limit(1)
        .executeTakeFirst();
      if (!r) return null;
      return {
        orderId,
        refundId: r.id,
        amountMinor: Number(r.amount_minor),
        currency: r.currency,
        destination: r.destination as OrderRefund['destination'],
        status: r.status as OrderRefund['status'],
      };
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
     * none), cash excepted: a cash session is open while a customer stands at the machine. By
     * id, after `after` when given.
     */
    stuckPending(stuckBefore: string, limit: number, after?: string) {
      let q = db
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
        .limit(limit);
      if (after !== undefined) q = q.where('id', '>', after);
      return q.execute();
    },

    /**
     * Money that came into revenue (the ledger's `external → revenue` or `wallet → revenue` of the
     * payment's settlement): each taken payment's `min(received, amount)` (change and a transfer's
     * surplus were never revenue), at its `completed_at`, grouped by `key(completed_at)` and
     * currency; `n` counts the payments. Payments never taken (another amount, a cancelled cash
     * session, an expired intent) are not in it.
     */
    async takenByGroup(q: KeptMoneyScope, key: GroupKey): Promise<KeptMoneyGroup[]> {
      const b = key('completed_at');
      let query = db
        .selectFrom('payments')
        .select([
          b.as('b'),
          'currency',
          sql<
            string | number
          >`sum(case when ${sql.ref('received_minor')} < ${sql.ref('amount_minor')} then ${sql.ref('received_minor')} else ${sql.ref('amount_minor')} end)`.as(
            'amount',
          ),
          (eb) => eb.fn.countAll<string | number>().as('n'),
          (eb) => eb.fn.min<string>('completed_at').as('lo'),
          (eb) => eb.fn.max<string>('completed_at').as('hi'),
        ])
        .where('purpose', '=', q.purpose)
        .where('status', 'in', MONEY_RECEIVED)
        .where('completed_at', '>=', q.from)
        .where('completed_at', '<', q.to)
        .groupBy([b, 'currency'])
        .orderBy(b);
      if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
      if (q.orderIds) query = query.where('order_id', 'in', q.orderIds);
      return (await query.execute()).map((r) => ({
        b: r.b,
        currency: r.currency,
        amount: Number(r.amount ?? 0),
        n: Number(r.n),
        lo: r.lo,
        hi: r.hi,
      }));
    },

    /**
     * Money that left revenue: refunds of taken payments (the ledger's `revenue → refunds_due` or
     * `revenue → wallet`), each at its `created_at`, when it was recorded and the ledger moved it,
     * whether it has reached the customer yet or not; grouped by `key(r.created_at)` and currency,
     * `n` counting the refunds. A refund that later ended `FAILED` gave its money back to revenue
     * then (`refunds_due → revenue`): it is a group of its own at its `completed_at`, with a
     * negative amount and no count. A refund of a payment never taken (its money was never
     * revenue) is not in it.
     */
    async refundedByGroup(q: KeptMoneyScope, key: GroupKey): Promise<KeptMoneyGroup[]> {
      const moves = async (column: 'r.created_at' | 'r.completed_at', failed: boolean) => {
        const b = key(column);
        let query = db
          .selectFrom('refunds as r')
          .innerJoin('payments as p', 'p.id', 'r.payment_id')
          .select([
            b.as('b'),
            'r.currency',
            (eb) => eb.fn.sum<string | number>('r.amount_minor').as('amount'),
            (eb) => eb.fn.countAll<string | number>().as('n'),
            (eb) => eb.fn.min<string>(column).as('lo'),
            (eb) => eb.fn.max<string>(column).as('hi'),
          ])
          .where('p.purpose', '=', q.purpose)
          .where('p.status', 'in', MONEY_RECEIVED)
          .where(column, '>=', q.from)
          .where(column, '<', q.to)
          .groupBy([b, 'r.currency'])
          .orderBy(b);
        if (failed) query = query.where('r.status', '=', 'FAILED');
        if (q.tenantId !== null) query = query.where('r.tenant_id', '=', q.tenantId);
        if (q.orderIds) query = query.where('p.order_id', 'in', q.orderIds);
        return (await query.execute()).map((r) => ({
          b: r.b,
          currency: r.currency,
          amount: (failed ? -1 : 1) * Number(r.amount ?? 0),
          n: failed ? 0 : Number(r.n),
          lo: r.lo as string,
          hi: r.hi as string,
        }));
      };
      const [recorded, failed] = await Promise.all([
        moves('r.created_at', false),
        moves('r.completed_at', true),
      ]);
      return [...recorded, ...failed];
    },

    /**
     * Money kept from plan payments in [from, to), per tenant, plan and currency, as the ledger's
     * revenue moves: what plan payments took when they completed, less refunds of them when each
     * was recorded (a refund in the range of a payment before it counts here; a later refund of a
     * payment in the range does not), plus refunds that ended FAILED in the range (their money
     * came back). `payments` counts the payments completed in the range. The
     * plan's name is the customers module's.
     */
    async planRevenue(q: { tenantId: string | null; from: string; to: string }) {
      let taken = db
        .selectFrom('payments')
        .select([
          'tenant_id',
          'plan_id',
          'currency',
          sql<
            string | number
          >`sum(case when ${sql.ref('received_minor')} < ${sql.ref('amount_minor')} then ${sql.ref('received_minor')} else ${sql.ref('amount_minor')} end)`.as(
            'amount',
          ),
          (eb) => eb.fn.countAll<string | number>().as('n'),
        ])
        .where('purpose', '=', 'plan')
        .where('status', 'in', MONEY_RECEIVED)
        .where('completed_at', '>=', q.from)
        .where('completed_at', '<', q.to)
        .groupBy(['tenant_id', 'plan_id', 'currency']);
      if (q.tenantId !== null) taken = taken.where('tenant_id', '=', q.tenantId);
      // Refunds of plan payments by the day they were recorded; those that ended FAILED also by the
      // day they failed (their money came back to revenue then).
      const planRefunds = (failed: boolean) => {
        const at = failed ? 'r.completed_at' : 'r.created_at';
        let refunds = db
          .selectFrom('refunds as r')
          .innerJoin('payments as p', 'p.id', 'r.payment_id')
          .select([
            'r.tenant_id',
            'p.plan_id',
            'r.currency',
            (eb) => eb.fn.sum<string | number>('r.amount_minor').as('amount'),
          ])
          .where('p.purpose', '=', 'plan')
          .where('p.status', 'in', MONEY_RECEIVED)
          .where(at, '>=', q.from)
          .where(at, '<', q.to)
          .groupBy(['r.tenant_id', 'p.plan_id', 'r.currency']);
        if (failed) refunds = refunds.where('r.status', '=', 'FAILED');
        if (q.tenantId !== null) refunds = refunds.where('r.tenant_id', '=', q.tenantId);
        return refunds.execute();
      };
      const [paid, back, again] = await Promise.all([taken.execute(), planRefunds(false), planRefunds(true)]);
      const rows = new Map<
        string,
        { tenantId: string; planId: string | null; currency: string; amountMinor: number; payments: number }
      >();
      const row = (tenantId: string, planId: string | null, currency: string) => {
        const key = JSON.stringify([tenantId, planId, currency]);
        const found = rows.get(key) ?? { tenantId, planId, currency, amountMinor: 0, payments: 0 };
        rows.set(key, found);
        return found;
      };
      for (const r of paid) {
        const sum = row(r.tenant_id, r.plan_id, r.currency);
        sum.amountMinor += Number(r.amount ?? 0);
        sum.payments += Number(r.n);
      }
      for (const r of back) row(r.tenant_id, r.plan_id, r.currency).amountMinor -= Number(r.amount ?? 0);
      for (const r of again) row(r.tenant_id, r.plan_id, r.currency).amountMinor += Number(r.amount ?? 0);
      return [...rows.values()];
    },
  };
}

export type PaymentQueries = ReturnType<typeof createPaymentQueries>;
