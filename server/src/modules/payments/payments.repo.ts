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
/**
 * Where a provider's events about a payment it names by its own id, but that no payment carries
 * yet, wait (parked): rows of the inbox table under a provider key of their own, so the event id
 * itself stays unclaimed until the event is applied, and all parked for one payment are found by
 * one key.
 */
const parkedKey = (provider: string, providerPaymentId: string) => `${provider}:parked:${providerPaymentId}`;

/** An event kept until its payment is known (`park`). */
export interface ParkedEvent {
  eventId: string;
  /** What the caller parked, as it parked it. */
  event: unknown;
  receivedAt: string;
}

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
    /**
     * Serialises, on PostgreSQL, the transactions that ask whether a payment is known by this
     * provider id with those that make it known (until the caller's transaction ends): an event
     * parked for it is then never missed by the one settling it. SQLite has one writer anyway.
     * Taken before the payment's row lock by the gateway's events and by the status check that
     * names this id (no deadlock between them).
     */
    async lockProviderPaymentId(
      provider: string,
      providerPaymentId: string,
      ex: Executor,
      dialect: 'sqlite' | 'postgres',
    ): Promise<void> {
      if (dialect !== 'postgres') return;
      const key = `${provider}:${providerPaymentId}`;
      await sql`select pg_advisory_xact_lock(hashtext(${key}))`.execute(ex);
    },
    /**
     * Keeps an event about a payment not known yet by `providerPaymentId`, without claiming its
     * event id; false when it was parked already.
     */
    park(
      provider: string,
      providerPaymentId: string,
      eventId: string,
      event: unknown,
      ex: Executor,
    ): Promise<boolean> {
      const row = {
        provider: parkedKey(provider, providerPaymentId),
        event_id: eventId,
        response: JSON.stringify(event),
        received_at: nowIso(),
      };
      return claimDeliveryRow(ex, [row]);
    },
    /** The events parked for `providerPaymentId`, in the order they arrived. */
    async parked(provider: string, providerPaymentId: string, ex: Executor): Promise<ParkedEvent[]> {
      const rows = await ex
        .selectFrom('webhook_deliveries')
        .select(['event_id', 'response', 'received_at'])
        .where('provider', '=', parkedKey(provider, providerPaymentId))
        .orderBy('received_at')
        .orderBy('event_id')
        .execute();
      return rows.map((r) => ({
        eventId: r.event_id,
        event: JSON.parse(r.response) as unknown,
        receivedAt: r.received_at,
      }));
    },
    /** Removes a parked event (it is being applied, or was applied as it arrived again); true if it was. */
    async unpark(
      provider: string,
      providerPaymentId: string,
      eventId: string,
      ex: Executor,
    ): Promise<boolean> {
      const res = await ex
        .deleteFrom('webhook_deliveries')
        .where('provider', '=', parkedKey(provider, providerPaymentId))
        .where('event_id', '=', eventId)
        .executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
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
