// Queries on the payments table (owned by the payments module): one row per payment of every
// channel, written in the transaction that applies it.
import { sql, type Insertable, type Updateable } from 'kysely';
import { claimRows, insertRows } from '../../platform/db/compiled.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { PaymentEventsTable, PaymentRow, PaymentsTable } from '../../platform/db/schema.js';

export interface PaymentListFilter {
  tenantId: string | null;
  purpose?: string;
  status?: string;
  method?: string;
  siteId?: string;
  orderId?: string;
  machineId?: string;
  customerId?: string;
  before?: string;
  limit: number;
}

/** A new PENDING payment: nothing received, refunded or failed yet; the caller names the rest. */
// The inserts every payment makes, compiled once per shape.
const insertPayment = insertRows('payments');
const claimDeliveryRow = claimRows('webhook_deliveries', ['provider', 'event_id']);
const claimEventRow = claimRows('payment_events', ['provider', 'provider_payment_id']);

export function pendingPayment(
  fields: Pick<PaymentRow, 'id' | 'tenant_id' | 'purpose' | 'method' | 'amount_minor' | 'currency'> &
    Partial<
      Pick<
        PaymentRow,
        | 'site_id'
        | 'order_id'
        | 'customer_id'
        | 'plan_id'
        | 'machine_id'
        | 'provider'
        | 'reference'
        | 'expires_at'
      >
    >,
): PaymentRow {
  const now = nowIso();
  return {
    site_id: null,
    order_id: null,
    customer_id: null,
    plan_id: null,
    machine_id: null,
    provider: null,
    reference: null,
    expires_at: null,
    ...fields,
    provider_payment_id: null,
    received_minor: 0,
    status: 'PENDING',
    failure_code: null,
    refunded_minor: 0,
    created_at: now,
    completed_at: null,
    updated_at: now,
  };
}

export function createPaymentsRepo(db: Db) {
  return {
    async insert(row: Insertable<PaymentsTable>, ex: Executor = db): Promise<void> {
      await insertPayment(ex, [row]);
    },
    findById(id: string, ex: Executor = db): Promise<PaymentRow | undefined> {
      return ex.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The newest payment carrying our reference (a bank transfer's RF reference). */
    byReference(
      tenantId: string | null,
      reference: string,
      ex: Executor = db,
    ): Promise<PaymentRow | undefined> {
      let q = ex.selectFrom('payments').selectAll().where('reference', '=', reference);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return q.orderBy('id', 'desc').limit(1).executeTakeFirst();
    },
    /** The newest payment of an order by one method (a cash session's payment). */
    findOpenForOrder(orderId: string, method: string, ex: Executor = db): Promise<PaymentRow | undefined> {
      return ex
        .selectFrom('payments')
        .selectAll()
        .where('order_id', '=', orderId)
        .where('method', '=', method)
        .where('status', '=', 'PENDING')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
    },
    /** Locks the payment row for the transaction (PostgreSQL; SQLite has one writer anyway). */
    async lock(id: string, ex: Executor, dialect: 'sqlite' | 'postgres'): Promise<PaymentRow | undefined> {
      let q = ex.selectFrom('payments').selectAll().where('id', '=', id);
      if (dialect === 'postgres') q = q.modifyEnd(sql`for update`);
      return q.executeTakeFirst();
    },
    /** The payment a provider knows by its own id (a card payment's PaymentIntent). */
    byProviderPaymentId(provider: string, providerPaymentId: string, ex: Executor = db) {
      return ex
        .selectFrom('payments')
        .selectAll()
        .where('provider', '=', provider)
        .where('provider_payment_id', '=', providerPaymentId)
        .executeTakeFirst();
    },
    /**
     * The inbox: true when this provider event id is new (stored), false when seen before.
     * `optimistic`: see `claimRows` (the caller runs again on `DeferredConflict`).
     */
    claimDelivery(
      provider: string,
      eventId: string,
      response: unknown,
      ex: Executor,
      options: { optimistic?: boolean } = {},
    ): Promise<boolean> {
      const row = { provider, event_id: eventId, response: JSON.stringify(response), received_at: nowIso() };
      return claimDeliveryRow(ex, [row], options);
    },
    /** What was stored with a delivery's event id (by `claimDelivery`). */
    async delivery(provider: string, eventId: string, ex: Executor): Promise<unknown> {
      const row = await ex
        .selectFrom('webhook_deliveries')
        .select('response')
        .where('provider', '=', provider)
        .where('event_id', '=', eventId)
        .executeTakeFirst();
      return row ? (JSON.parse(row.response) as unknown) : undefined;
    },
    /** One provider payment in the inbox; false when (provider, providerPaymentId) was there already. */
    insertEvent(
      row: Omit<Insertable<PaymentEventsTable>, 'id' | 'processed_at'>,
      ex: Executor,
      options: { optimistic?: boolean } = {},
    ): Promise<boolean> {
      return claimEventRow(ex, [{ id: newId(), processed_at: nowIso(), ...row }], options);
    },
    /** Conditional update: only applies while the payment is in one of `from`. */
    updateIfStatus(
      id: string,
      from: readonly string[],
      changes: Updateable<PaymentsTable>,
      ex: Executor = db,
    ) {
      return ex
        .updateTable('payments')
        .set(changes)
        .where('id', '=', id)
        .where('status', 'in', from)
        .returningAll()
        .executeTakeFirst();
    },
    list(filter: PaymentListFilter): Promise<PaymentRow[]> {
      let q = db.selectFrom('payments').selectAll().orderBy('id', 'desc').limit(filter.limit);
      if (filter.tenantId !== null) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.purpose !== undefined) q = q.where('purpose', '=', filter.purpose);
      if (filter.status !== undefined) q = q.where('status', '=', filter.status);
      if (filter.method !== undefined) q = q.where('method', '=', filter.method);
      if (filter.siteId !== undefined) q = q.where('site_id', '=', filter.siteId);
      if (filter.orderId !== undefined) q = q.where('order_id', '=', filter.orderId);
      if (filter.machineId !== undefined) q = q.where('machine_id', '=', filter.machineId);
      if (filter.customerId !== undefined) q = q.where('customer_id', '=', filter.customerId);
      if (filter.before !== undefined) q = q.where('id', '<', filter.before);
      return q.execute();
    },
  };
}

export type PaymentsRepo = ReturnType<typeof createPaymentsRepo>;
