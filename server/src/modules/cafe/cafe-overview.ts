// The staff view of a cafe (`/staff`): tables with their open orders, cash to collect, bank
// transfers to confirm (or underpaid), refunds owed. Orders, payments and refunds are read through
// the orders and payments modules; this file reads only the cafe's own tables.
import type { Db } from '../../platform/db/database.js';
import { toOrder, type OrdersService } from '../orders/orders.service.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import type { CafeTables } from './cafe-tables.js';
import { paymentStatusView } from './cafe-payments.js';

export function createCafeOverview(deps: {
  db: Db;
  tables: Pick<CafeTables, 'siteTables' | 'settings'>;
  orders: Pick<OrdersService, 'unfinished'>;
  payments: Pick<PaymentQueries, 'pendingAtSite' | 'refundsAtSite'>;
}) {
  const { db } = deps;
  return {
    async site(tenantId: string, siteId: string) {
      const tables = await deps.tables.siteTables(tenantId, siteId);
      // Orders still on a table: not yet served, or served and not yet paid (pay-later).
      const orderRows = await deps.orders.unfinished(
        db
          .selectFrom('cafe_orders')
          .select('order_id')
          .where('tenant_id', '=', tenantId)
          .where('site_id', '=', siteId),
        500,
      );
      const cafeRows =
        orderRows.length === 0
          ? []
          : await db
              .selectFrom('cafe_orders')
              .select(['order_id', 'table_id', 'subtotal_minor', 'tip_minor'])
              .where(
                'order_id',
                'in',
                orderRows.map((o) => o.id),
              )
              .execute();
      const cafeOf = new Map(cafeRows.map((c) => [c.order_id, c]));
      const open = orderRows.map((r) => {
        const c = cafeOf.get(r.id)!;
        return {
          ...toOrder(r),
          tableId: c.table_id,
          subtotalMinor: Number(c.subtotal_minor),
          tipMinor: Number(c.tip_minor),
          totalMinor: Number(c.subtotal_minor) + Number(c.tip_minor),
          paid: r.paid_at !== null,
        };
      });
      const pending = await deps.payments.pendingAtSite(tenantId, siteId, ['cash', 'bank_transfer'], 500);
      const tableOf = new Map(open.map((o) => [o.id, o.tableId]));
      const withTable = (p: (typeof pending)[number]) => ({
        ...paymentStatusView(p),
        tableId: p.machine_id ?? (p.order_id ? tableOf.get(p.order_id) : undefined) ?? null,
        reference: p.reference,
        createdAt: p.created_at,
      });
      const refundRows = await deps.payments.refundsAtSite(tenantId, siteId, 50);
      const refunds = refundRows.map((r) => ({
        id: r.id,
        paymentId: r.payment_id,
        orderId: r.order_id,
        method: r.method,
        amountMinor: Number(r.amount_minor),
        currency: r.currency,
        reason: r.reason,
        destination: r.destination,
        status: r.status,
        createdAt: r.created_at,
      }));
      return {
        siteId,
        settings: await deps.tables.settings(tenantId, siteId),
        tables: tables.map((t) => ({ ...t, openOrders: open.filter((o) => o.tableId === t.id) })),
        // Only a table's own attempts (they name the table): a cash unit's session is paid at it.
        cashToCollect: pending
          .filter(
            (p) => p.method === 'cash' && p.order_id !== null && p.machine_id === tableOf.get(p.order_id),
          )
          .map(withTable),
        transfersToConfirm: pending
          .filter((p) => p.method === 'bank_transfer')
          .map((p) => ({
            ...withTable(p),
            mismatched: Number(p.received_minor) > 0 && Number(p.received_minor) < Number(p.amount_minor),
          })),
        refundsDue: refunds.filter((r) => r.status === 'DUE'),
        recentRefunds: refunds,
      };
    },
  };
}
