// The kitchen display: paid kiosk orders of a site, and marking them ready.
import { LIVE_EVENTS } from '@kioskhub/protocol';
import { AppError, notFound } from '../../platform/errors.js';
import type { Db } from '../../platform/db/database.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { type Order, type OrdersService } from '../orders/orders.service.js';

export function createKitchenService(deps: {
  db: Db;
  orders: Pick<OrdersService, 'kitchenQueue' | 'findRow' | 'transition' | 'get'>;
  /**
   * A cafe table order shows here while it is paid and not started (docs/cafe.md §9): its ready
   * is the cafe's own READY (so staff can still serve it), never COMPLETED, which ends its flow.
   */
  tableOrderReady(orderId: string, tenantId: string | null, actor: string): Promise<unknown>;
}) {
  const { db, orders } = deps;
  return {
    openOrders: (tenantId: string, siteId: string, page: { limit: number; cursor?: string }) =>
      orders.kitchenQueue(tenantId, siteId, page),

    async markReady(orderId: string, tenantId: string | null, actor: string): Promise<Order> {
      const found = await orders.findRow(orderId);
      if (found?.source === 'table' && (tenantId === null || found.tenant_id === tenantId)) {
        await deps.tableOrderReady(orderId, tenantId, actor);
        return orders.get(orderId, tenantId);
      }
      return db.transaction().execute(async (tx) => {
        const row = await orders.findRow(orderId, tx);
        if (!row || (tenantId !== null && row.tenant_id !== tenantId)) throw notFound('order', orderId);
        if (row.requires_dispense === 1)
          throw new AppError('INVALID_STATE', 'a vending order is completed by its machine, not the kitchen');
        const order = await orders.transition(tx, orderId, 'COMPLETED', { actor, event: 'kitchen_ready' });
        if (!order) throw new AppError('INVALID_STATE', `order ${orderId} is ${row.status}, not PAID`);
        await enqueueOutbox(tx, 'live', {
          tenantId: row.tenant_id,
          rooms: [
            `order:${row.id}`,
            ...(row.order_number ? [`order:${row.order_number}`] : []),
            ...(row.site_id ? [`kitchen:${row.site_id}`] : []),
            `tenant:${row.tenant_id}`,
          ],
          event: LIVE_EVENTS.kitchenOrderReady,
          data: {
            tenantId: row.tenant_id,
            orderId: row.id,
            orderNumber: row.order_number,
            siteId: row.site_id,
            status: order.status,
          },
        });
        return order;
      });
    },
  };
}

export type KitchenService = ReturnType<typeof createKitchenService>;
