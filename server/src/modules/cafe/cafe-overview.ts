// The staff view of a cafe (`/staff`): tables with their open orders, cash to collect, bank
// transfers to confirm (or underpaid), refunds owed. Reporting reads across orders, payments and
// refunds in this one named place; every write goes through the owning module.
import type { Db } from '../../platform/db/database.js';
import { toOrder } from '../orders/orders.service.js';
import type { CafeTables } from './cafe-tables.js';
import { paymentStatusView } from './cafe-payments.js';

/** Orders still on a table: not yet served, or served and not yet paid (pay-later). */
const OPEN = ['CREATED', 'PAID', 'PREPARING', 'READY'];

export function createCafeOverview(deps: { db: Db; tables: Pick<CafeTables, 'siteTables' | 'settings'> }) {
  const { db } = deps;
  return {
    async site(tenantId: string, siteId: string) {
      const tables = await deps.tables.siteTables(tenantId, siteId);
      const orderRows = await db
        .selectFrom('cafe_orders as c')
        .innerJoin('orders as o', 'o.id', 'c.order_id')
        .selectAll('o')
        .select(['c.table_id', 'c.subtotal_minor', 'c.tip_minor'])
        .where('c.tenant_id', '=', tenantId)
        .where('c.site_id', '=', siteId)
        .where((eb) =>
          eb.or([
            eb('o.status', 'in', OPEN),
            eb.and([eb('o.status', '=', 'SERVED'), eb('o.paid_at', 'is', null)]),
          ]),
        )
        .orderBy('o.created_at')
        .limit(500)
        .execute();
      const open = orderRows.map((r) => ({
        ...toOrder(r),
        tableId: r.table_id,
        subtotalMinor: Number(r.subtotal_minor),
        tipMinor: Number(r.tip_minor),
        totalMinor: Number(r.subtotal_minor) + Number(r.tip_minor),
        paid: r.paid_at !== null,
      }));
      const pending = await db
        .selectFrom('payments')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .where('purpose', '=', 'order')
        .where('status', '=', 'PENDING')
        .where('method', 'in', ['cash', 'bank_transfer'])
        .orderBy('created_at')
        .limit(500)
        .execute();
      const tableOf = new Map(open.map((o) => [o.id, o.tableId]));
      const withTable = (p: (typeof pending)[number]) => ({
        ...paymentStatusView(p),
        tableId: p.machine_id ?? (p.order_id ? tableOf.get(p.order_id) : undefined) ?? null,
        reference: p.reference,
        createdAt: p.created_at,
      });
      const refundRows = await db
        .selectFrom('refunds as r')
        .innerJoin('payments as p', 'p.id', 'r.payment_id')
        .selectAll('r')
        .select(['p.order_id', 'p.method'])
        .where('r.tenant_id', '=', tenantId)
        .where('p.site_id', '=', siteId)
        .orderBy('r.id', 'desc')
        .limit(50)
        .execute();
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
        cashToCollect: pending.filter((p) => p.method === 'cash').map(withTable),
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
