// Queries on orders and their timeline (owned by the orders module).
import { sql, type OperandExpression, type Updateable } from 'kysely';
import { insertRows } from '../../platform/db/compiled.js';
import type { Db, Executor } from '../../platform/db/database.js';
import type { NewOrder, OrderRow, OrdersTable } from '../../platform/db/schema.js';

export interface OrderListFilter {
  tenantId: string | null;
  machineId?: string;
  status?: string;
  siteId?: string;
  /** created_at >= from (ISO time) */
  from?: string;
  /** created_at < to (ISO time) */
  to?: string;
  before?: string;
  limit: number;
}

/** Paid orders an operator must decide on: no result (NEEDS_REVIEW), or FAILED after payment. */
export interface ReviewListFilter {
  tenantId: string | null;
  siteId?: string;
  machineId?: string;
  before?: string;
  limit: number;
}

/** A subquery of order ids another module owns (its `order_id` column), to filter orders by. */
export type OrderIds = OperandExpression<string>;

/** Orders still on a cafe table: not yet served, or served and not yet paid (pay-later). */
const UNFINISHED = ['CREATED', 'PAID', 'PREPARING', 'READY'];

// Every paid order writes these: compiled once per shape.
const insertOrder = insertRows('orders');
const insertOrderEvent = insertRows('order_events');

export function createOrdersRepo(db: Db) {
  return {
    async insert(row: NewOrder, ex: Executor = db): Promise<void> {
      await insertOrder(ex, [row]);
    },
    findById(id: string, ex: Executor = db): Promise<OrderRow | undefined> {
      return ex.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst();
    },
    findByPayment(
      provider: string,
      providerPaymentId: string,
      ex: Executor = db,
    ): Promise<OrderRow | undefined> {
      return ex
        .selectFrom('orders')
        .selectAll()
        .where('provider', '=', provider)
        .where('provider_payment_id', '=', providerPaymentId)
        .executeTakeFirst();
    },
    findByNumber(tenantId: string, orderNumber: string, ex: Executor = db): Promise<OrderRow | undefined> {
      return ex
        .selectFrom('orders')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('order_number', '=', orderNumber)
        .executeTakeFirst();
    },
    findTenantByNumber(tenantId: string, orderNumber: string): Promise<{ tenant_id: string } | undefined> {
      return db
        .selectFrom('orders')
        .select('tenant_id')
        .where('tenant_id', '=', tenantId)
        .where('order_number', '=', orderNumber)
        .executeTakeFirst();
    },
    list(filter: OrderListFilter): Promise<OrderRow[]> {
      let q = db.selectFrom('orders').selectAll().orderBy('id', 'desc').limit(filter.limit);
      if (filter.tenantId !== null) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.machineId !== undefined) q = q.where('machine_id', '=', filter.machineId);
      if (filter.status !== undefined) q = q.where('status', '=', filter.status);
      if (filter.siteId !== undefined) q = q.where('site_id', '=', filter.siteId);
      if (filter.from !== undefined) q = q.where('created_at', '>=', filter.from);
      if (filter.to !== undefined) q = q.where('created_at', '<', filter.to);
      if (filter.before !== undefined) q = q.where('id', '<', filter.before);
      return q.execute();
    },
    /**
     * Paid orders of a site that no machine dispenses (the kitchen's), oldest paid first; `after`:
     * those that come after that position (a page's last order, ready since or not).
     */
    listKitchenQueue(
      tenantId: string,
      siteId: string,
      limit: number,
      after?: { paidAt: string; id: string },
    ): Promise<OrderRow[]> {
      let q = db
        .selectFrom('orders')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .where('status', '=', 'PAID')
        .where('requires_dispense', '=', 0);
      if (after)
        q = q.where((eb) =>
          eb.or([
            eb('paid_at', '>', after.paidAt),
            eb.and([eb('paid_at', '=', after.paidAt), eb('id', '>', after.id)]),
          ]),
        );
      return q.orderBy('paid_at').orderBy('id').limit(limit).execute();
    },
    listNeedingReview(filter: ReviewListFilter): Promise<OrderRow[]> {
      let q = db
        .selectFrom('orders')
        .selectAll()
        .where((eb) =>
          eb.or([
            eb('status', '=', 'NEEDS_REVIEW'),
            eb.and([eb('status', '=', 'FAILED'), eb('paid_at', 'is not', null)]),
          ]),
        )
        .orderBy('id', 'desc')
        .limit(filter.limit);
      if (filter.tenantId !== null) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.siteId) q = q.where('site_id', '=', filter.siteId);
      if (filter.machineId) q = q.where('machine_id', '=', filter.machineId);
      if (filter.before) q = q.where('id', '<', filter.before);
      return q.execute();
    },
    /** Locks the order row until the transaction ends (PostgreSQL; SQLite has one writer anyway). */
    async lock(id: string, ex: Executor, dialect: 'sqlite' | 'postgres'): Promise<void> {
      let q = ex.selectFrom('orders').select('id').where('id', '=', id);
      if (dialect === 'postgres') q = q.modifyEnd(sql`for update`);
      await q.executeTakeFirst();
    },
    /** CREATED, unpaid orders created before `before`, among `among` and not among `excluding`. */
    listUnpaidCreatedBefore(filter: {
      before: string;
      among: OrderIds;
      excluding: OrderIds;
      limit: number;
    }): Promise<Pick<OrderRow, 'id' | 'tenant_id'>[]> {
      return db
        .selectFrom('orders')
        .select(['id', 'tenant_id'])
        .where('status', '=', 'CREATED')
        .where('paid_at', 'is', null)
        .where('created_at', '<', filter.before)
        .where('id', 'in', filter.among)
        .where('id', 'not in', filter.excluding)
        .orderBy('created_at')
        .limit(filter.limit)
        .execute();
    },
    /** Orders among `among` not yet finished: before SERVED, or SERVED and unpaid; oldest first. */
    listUnfinished(among: OrderIds, limit: number): Promise<OrderRow[]> {
      return db
        .selectFrom('orders')
        .selectAll()
        .where('id', 'in', among)
        .where((eb) =>
          eb.or([
            eb('status', 'in', UNFINISHED),
            eb.and([eb('status', '=', 'SERVED'), eb('paid_at', 'is', null)]),
          ]),
        )
        .orderBy('created_at')
        .limit(limit)
        .execute();
    },
    /** Conditional update: only applies when the order is still in one of `from`. */
    /**
     * Marks an order paid that is in one of `statuses` and not paid yet, as one statement: on
     * PostgreSQL a status change committing meanwhile is waited for and the condition checked
     * again on its result, so a kitchen moving the order on cannot make the payment miss it.
     */
    markPaidIn(id: string, statuses: readonly string[], at: string, ex: Executor = db) {
      return ex
        .updateTable('orders')
        .set({ paid_at: at, updated_at: at })
        .where('id', '=', id)
        .where('paid_at', 'is', null)
        .where('status', 'in', statuses)
        .returningAll()
        .executeTakeFirst();
    },
    updateIfStatus(id: string, from: readonly string[], changes: Updateable<OrdersTable>, ex: Executor = db) {
      return ex
        .updateTable('orders')
        .set(changes)
        .where('id', '=', id)
        .where('status', 'in', from)
        .returningAll()
        .executeTakeFirst();
    },
    insertEvent(
      row: {
        id: string;
        tenant_id: string;
        order_id: string;
        type: string;
        actor: string;
        detail: string | null;
        at: string;
      },
      ex: Executor = db,
    ) {
      return insertOrderEvent(ex, [row]);
    },
    timeline(orderId: string) {
      return db
        .selectFrom('order_events')
        .selectAll()
        .where('order_id', '=', orderId)
        .orderBy('id')
        .execute();
    },
  };
}

export type OrdersRepo = ReturnType<typeof createOrdersRepo>;
