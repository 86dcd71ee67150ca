// The kitchen display: paid kiosk orders of a site, marking them ready, and taking off the
// queue one refunded in full before it was made.
import { LIVE_EVENTS } from '@kioskhub/protocol';
import { AppError, notFound } from '../../platform/errors.js';
import type { Db, Executor } from '../../platform/db/database.js';
import type { OrderRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { type Order, type OrdersService } from '../orders/orders.service.js';
import type { PrintingService } from '../printing/printing.service.js';

/** Why a kitchen order left the queue unmade (the timeline's `kitchen_cancelled`, the live event's `reason`). */
export const KITCHEN_REFUNDED = 'refunded before the kitchen made it';

/** A paid order the kitchen makes (a kiosk's; a cafe table order follows the cafe's own flow). */
const isKitchenOrder = (row: Pick<OrderRow, 'requires_dispense' | 'source'>) =>
  row.requires_dispense === 0 && row.source !== 'table';

/**
 * Whether an order is a kitchen order taken off the queue by a refund (the print queue's
 * `orderWithdrawn`: a failed attempt of its receipt is cancelled, not printed again). The order is
 * locked first (PostgreSQL): a refund being recorded holds it, so its outcome is what is read.
 */
export const kitchenOrderWithdrawn =
  (orders: Pick<OrdersService, 'findRow' | 'lock'>) =>
  async (ex: Executor, orderId: string): Promise<boolean> => {
    await orders.lock(ex, orderId);
    const row = await orders.findRow(orderId, ex);
    return row !== undefined && row.status === 'REFUNDED' && isKitchenOrder(row);
  };

export function createKitchenService(deps: {
  db: Db;
  orders: Pick<OrdersService, 'kitchenQueue' | 'findRow' | 'transition' | 'get'>;
  /**
   * A cafe table order shows here while it is paid and not started (docs/cafe.md §9): its ready
   * is the cafe's own READY (so staff can still serve it), never COMPLETED, which ends its flow.
   */
  tableOrderReady(orderId: string, tenantId: string | null, actor: string): Promise<unknown>;
  printing: Pick<PrintingService, 'cancelForOrder'>;
}) {
  const { db, orders } = deps;
  return {
    /**
     * A refund of the order's payment is being recorded, in its transaction (docs/api.md §16): a
     * full refund (nothing left to refund) of a paid kitchen order not yet completed takes it off
     * the queue: the order ends REFUNDED (timeline `kitchen_cancelled`), its receipts not yet
     * printed are cancelled, and the kitchen's room gets `kitchen_order_cancelled`. A partial
     * refund, an order the kitchen completed, a cafe table order and a vending order change nothing.
     */
    async withdrawForRefund(
      ex: Executor,
      orderId: string,
      refund: { full: boolean; actor: string; paymentId: string },
    ): Promise<void> {
      if (!refund.full) return;
      const row = await orders.findRow(orderId, ex);
      if (!row || row.status !== 'PAID' || !isKitchenOrder(row)) return;
      // Conditional on PAID: the kitchen marking it ready at this moment wins (it stays
      // COMPLETED, its receipt too), and the refund is recorded as for any completed order.
      const order = await orders.transition(ex, orderId, 'REFUNDED', {
        actor: refund.actor,
        event: 'kitchen_cancelled',
        detail: { paymentId: refund.paymentId, reason: KITCHEN_REFUNDED },
      });
      if (!order) return;
      await deps.printing.cancelForOrder(ex, orderId, `order ${KITCHEN_REFUNDED}`);
      await enqueueOutbox(ex, 'live', {
        tenantId: row.tenant_id,
        rooms: [...(row.site_id ? [`kitchen:${row.site_id}`] : []), `tenant:${row.tenant_id}`],
        event: LIVE_EVENTS.kitchenOrderCancelled,
        data: {
          tenantId: row.tenant_id,
          orderId: row.id,
          orderNumber: row.order_number,
          siteId: row.site_id,
          status: order.status,
          reason: 'refunded',
        },
      });
    },

    openOrders: (tenantId: string, siteId: string, page: { limit: number; cursor?: string }) =>
      orders.kitchenQueue(tenantId, siteId, page),

    async markReady(orderId: string, tenantId: string | null, actor: string): Promise<Order> {
      const found = await orders.findRow(orderId);
      if (found?.source === 'table' && (tenantId === null || found.tenant_id === tenantId)) {
        // The kitchen display's Mark ready is for paid orders; a pay-later order the kitchen was
        // sent moves on with the cafe's own kitchen status (staff), not here.
        if (found.paid_at === null)
          throw new AppError('INVALID_STATE', `order ${orderId} is not paid: Mark ready is for paid orders`);
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
