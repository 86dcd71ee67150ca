// Orders: creation from a payment, the status machine, timelines and the live events that
// follow each change (written to the outbox in the same transaction).
import { LIVE_EVENTS, type OrderStatus, type OrderView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { AppError, notFound } from '../../platform/errors.js';
import { newId, nowIso, type Executor } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import type { OrderRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { canTransition, sourcesOf } from './order-rules.js';
import type { OrderIds, OrdersRepo, ReviewListFilter } from './orders.repo.js';

export interface OrderItem {
  sku: string;
  qty: number;
  name?: string;
  unitPriceMinor?: number;
  /** The guest's note for the kitchen (cafe orders). */
  notes?: string;
}

/** The order view of protocol/, with the catalog details kept on each item. */
export interface Order extends Omit<OrderView, 'items'> {
  items?: OrderItem[];
}

export function toOrder(row: OrderRow): Order {
  const order: Order = {
    id: row.id,
    tenantId: row.tenant_id,
    machineId: row.machine_id,
    siteId: row.site_id,
    orderNumber: row.order_number,
    amount: Number(row.amount),
    currency: row.currency,
    source: row.source,
    provider: row.provider,
    providerPaymentId: row.provider_payment_id,
    providerQrCodeId: row.provider_qr_code_id,
    paidAt: row.paid_at,
    dispatchPending: row.status === 'PAID' && row.requires_dispense === 1,
    status: row.status as OrderStatus,
    failureCode: row.failure_code,
    customerName: row.customer_name,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.items) order.items = JSON.parse(row.items) as OrderItem[];
  return order;
}

export const orderRooms = (
  row: Pick<OrderRow, 'tenant_id' | 'id' | 'order_number' | 'machine_id' | 'site_id' | 'source'>,
): string[] => [
  `tenant:${row.tenant_id}`,
  `order:${row.id}`,
  // The order room is joined by id or by order number (a kiosk's customer screen knows the number).
  ...(row.order_number ? [`order:${row.order_number}`] : []),
  ...(row.machine_id ? [`machine:${row.machine_id}`] : []),
  ...(row.site_id ? [`site:${row.site_id}`] : []),
  // A cafe table is a machine; its guests' screens follow the table room (CONTRACTS §12).
  ...(row.source === 'table' && row.machine_id ? [`table:${row.machine_id}`] : []),
];

export interface NewOrderInput {
  /** Optional pre-generated id (the payment inbox links to it before the order exists). */
  id?: string;
  tenantId: string;
  machineId: string | null;
  siteId: string | null;
  amount: number;
  currency: string;
  source: string;
  status: Extract<OrderStatus, 'CREATED' | 'PAID' | 'FAILED'>;
  provider?: string;
  providerPaymentId?: string;
  providerQrCodeId?: string;
  failureCode?: string;
  orderNumber?: string;
  items?: OrderItem[];
  customerName?: string;
  /** A machine must execute it once paid (vending); kiosk and cafe orders go to a kitchen. */
  requiresDispense?: boolean;
  actor: string;
}

export function createOrdersService(deps: { repo: OrdersRepo; dialect: 'sqlite' | 'postgres' }) {
  const { repo } = deps;

  async function addEvent(
    ex: Executor,
    row: OrderRow,
    type: string,
    actor: string,
    detail?: Record<string, unknown>,
  ) {
    await repo.insertEvent(
      {
        id: newId(),
        tenant_id: row.tenant_id,
        order_id: row.id,
        type,
        actor,
        detail: detail ? JSON.stringify(detail) : null,
        at: nowIso(),
      },
      ex,
    );
  }

  /** An order the caller's tenant sees (`null`: every tenant), or undefined; a list's cursor names one. */
  async function visible(id: string, tenantId: string | null): Promise<OrderRow | undefined> {
    const row = await repo.findById(id);
    return row && (tenantId === null || row.tenant_id === tenantId) ? row : undefined;
  }
  async function getScoped(id: string, tenantId: string | null): Promise<OrderRow> {
    const row = await visible(id, tenantId);
    if (!row) throw notFound('order', id);
    return row;
  }

  return {
    /** Inserts an order inside the caller's transaction and queues its `order_created` event. */
    async create(ex: Executor, input: NewOrderInput): Promise<Order> {
      const now = nowIso();
      const row: OrderRow = {
        id: input.id ?? newId(),
        tenant_id: input.tenantId,
        site_id: input.siteId,
        machine_id: input.machineId,
        order_number: input.orderNumber ?? null,
        amount: input.amount,
        currency: input.currency,
        source: input.source,
        provider: input.provider ?? null,
        provider_payment_id: input.providerPaymentId ?? null,
        provider_qr_code_id: input.providerQrCodeId ?? null,
        paid_at: input.status === 'CREATED' ? null : now,
        status: input.status,
        failure_code: input.failureCode ?? null,
        items: input.items ? JSON.stringify(input.items) : null,
        customer_name: input.customerName ?? null,
        requires_dispense: input.requiresDispense ? 1 : 0,
        created_at: now,
        updated_at: now,
      };
      await repo.insert(row, ex);
      await addEvent(ex, row, input.status === 'CREATED' ? 'created' : 'payment_received', input.actor, {
        amount: row.amount,
        currency: row.currency,
        provider: row.provider,
        providerPaymentId: row.provider_payment_id,
        ...(row.failure_code ? { failureCode: row.failure_code } : {}),
      });
      const order = toOrder(row);
      await enqueueOutbox(ex, 'live', {
        tenantId: row.tenant_id,
        rooms: orderRooms(row),
        event: LIVE_EVENTS.orderCreated,
        data: {
          tenantId: row.tenant_id,
          orderId: row.id,
          ...(row.machine_id ? { machineId: row.machine_id } : {}),
          status: order.status,
          amount: order.amount,
          currency: order.currency,
          source: order.source,
          ...(row.order_number ? { orderNumber: row.order_number } : {}),
        },
      });
      return order;
    },

    /**
     * Moves an order to `to` if the state machine allows it from its current status.
     * Returns the updated order, or undefined when it was not in a status that may move there.
     */
    async transition(
      ex: Executor,
      orderId: string,
      to: OrderStatus,
      meta: { actor: string; failureCode?: string | null; detail?: Record<string, unknown>; event?: string },
    ): Promise<Order | undefined> {
      const now = nowIso();
      const row = await repo.updateIfStatus(
        orderId,
        sourcesOf(to),
        {
          status: to,
          updated_at: now,
          ...(meta.failureCode !== undefined ? { failure_code: meta.failureCode } : {}),
          ...(to === 'PAID' ? { paid_at: now } : {}),
        },
        ex,
      );
      if (!row) return undefined;
      await addEvent(ex, row, meta.event ?? to.toLowerCase(), meta.actor, {
        status: to,
        ...(meta.failureCode ? { failureCode: meta.failureCode } : {}),
        ...meta.detail,
      });
      await enqueueOutbox(ex, 'live', {
        tenantId: row.tenant_id,
        rooms: orderRooms(row),
        event: LIVE_EVENTS.orderStatusUpdated,
        data: {
          tenantId: row.tenant_id,
          orderId: row.id,
          ...(row.machine_id ? { machineId: row.machine_id } : {}),
          status: to,
          ...(row.failure_code ? { failureCode: row.failure_code } : {}),
        },
      });
      return toOrder(row);
    },

    /**
     * A pay-later cafe order already in the kitchen (PREPARING, READY, SERVED) was paid: it keeps
     * its kitchen status and gets its paid time. Undefined when it is not such an order.
     */
    async paidInKitchen(
      ex: Executor,
      orderId: string,
      meta: { actor: string; detail?: Record<string, unknown> },
    ): Promise<Order | undefined> {
      // One conditional statement, no read first: a read would see the status from before a
      // kitchen move committing now, and an update keyed on it would then miss the order.
      const updated = await repo.markPaidIn(orderId, ['PREPARING', 'READY', 'SERVED'], nowIso(), ex);
      if (!updated) return undefined;
      await addEvent(ex, updated, 'payment_received', meta.actor, meta.detail);
      return toOrder(updated);
    },

    /** Records a timeline entry without changing status (e.g. "command sent"). */
    async note(
      ex: Executor,
      orderId: string,
      type: string,
      actor: string,
      detail?: Record<string, unknown>,
    ): Promise<void> {
      const row = await repo.findById(orderId, ex);
      if (row) await addEvent(ex, row, type, actor, detail);
    },

    async get(id: string, tenantId: string | null): Promise<Order> {
      return toOrder(await getScoped(id, tenantId));
    },

    async timeline(id: string, tenantId: string | null) {
      await getScoped(id, tenantId);
      const rows = await repo.timeline(id);
      return rows.map((r) => ({
        type: r.type,
        actor: r.actor,
        at: r.at,
        detail: r.detail ? (JSON.parse(r.detail) as unknown) : null,
      }));
    },

    async list(filter: {
      tenantId: string | null;
      machineId?: string;
      status?: string;
      siteId?: string;
      from?: string;
      to?: string;
      cursor?: string;
      limit: number;
    }) {
      const { cursor, ...rest } = filter;
      await knownCursor(cursor, (id) => visible(id, filter.tenantId));
      const rows = await repo.list({
        ...rest,
        limit: filter.limit + 1,
        ...(cursor ? { before: cursor } : {}),
      });
      return pageOf(rows, filter.limit, toOrder);
    },

    /**
     * The stored row of a tenant's order by its kiosk order number (cash sessions find their order
     * this way). `lock`: on PostgreSQL, held until the caller's transaction ends.
     */
    async rowByNumber(
      ex: Executor,
      tenantId: string,
      orderNumber: string,
      options: { lock?: boolean } = {},
    ): Promise<OrderRow | undefined> {
      const row = await repo.findByNumber(tenantId, orderNumber, ex);
      if (!row || !options.lock || deps.dialect !== 'postgres') return row;
      await sql`select id from orders where id = ${row.id} for update`.execute(ex);
      // Read again under the lock: what was read before may have changed while the lock was
      // awaited (a session paid or cancelled meanwhile), and the caller decides on it.
      return repo.findByNumber(tenantId, orderNumber, ex);
    },

    /**
     * Paid kiosk orders of a site waiting in the kitchen, oldest paid first, a page at a time: the
     * cursor is the last order of the previous page (a paid kitchen order of this site, whether it
     * is still waiting or was marked ready since); anything else is refused, never a page.
     */
    async kitchenQueue(
      tenantId: string,
      siteId: string,
      page: { limit: number; cursor?: string },
    ): Promise<{ items: Order[]; nextCursor: string | null }> {
      let after: { paidAt: string; id: string } | undefined;
      await knownCursor(page.cursor, async (id) => {
        const row = await visible(id, tenantId);
        if (!row || row.site_id !== siteId || row.paid_at === null || row.requires_dispense !== 0)
          return undefined;
        after = { paidAt: row.paid_at, id: row.id };
        return row;
      });
      const rows = await repo.listKitchenQueue(tenantId, siteId, page.limit + 1, after);
      return pageOf(rows, page.limit, toOrder);
    },

    /** Paid orders an operator must decide on (NEEDS_REVIEW, or FAILED after payment), newest first. */
    async needingReview(filter: Omit<ReviewListFilter, 'before'> & { cursor?: string }) {
      const { cursor, ...rest } = filter;
      await knownCursor(cursor, (id) => visible(id, filter.tenantId));
      const before = cursor ? { before: cursor } : {};
      const rows = await repo.listNeedingReview({ ...rest, limit: filter.limit + 1, ...before });
      return pageOf(rows, filter.limit, toOrder);
    },

    /** The tenant of an order named by its id, or by its number within the tenant the caller hints. */
    async tenantOf(idOrNumber: string, tenantHint: string | null): Promise<string | undefined> {
      const byId = await repo.findById(idOrNumber);
      if (byId) return byId.tenant_id;
      if (tenantHint === null) return undefined;
      return (await repo.findTenantByNumber(tenantHint, idOrNumber))?.tenant_id;
    },

    findByPayment: (provider: string, providerPaymentId: string, ex?: Executor) =>
      repo.findByPayment(provider, providerPaymentId, ex),
    findRow: (id: string, ex?: Executor) => repo.findById(id, ex),
    /** Locks the order for the caller's transaction (PostgreSQL `FOR UPDATE`). */
    lock: (ex: Executor, id: string) => repo.lock(id, ex, deps.dialect),
    /**
     * Unpaid CREATED orders placed before `before`, among the caller's ids (a subquery of the
     * module that owns them) and not among `excluding`, oldest first.
     */
    unpaidCreatedBefore: (filter: { before: string; among: OrderIds; excluding: OrderIds; limit: number }) =>
      repo.listUnpaidCreatedBefore(filter),
    /** The caller's orders still open: not yet SERVED, or SERVED and not yet paid; oldest first. */
    unfinished: (among: OrderIds, limit: number) => repo.listUnfinished(among, limit),
    assertTransition(from: OrderStatus, to: OrderStatus): void {
      if (!canTransition(from, to))
        throw new AppError('INVALID_STATE', `an order that is ${from} cannot become ${to}`);
    },
  };
}

export type OrdersService = ReturnType<typeof createOrdersService>;
