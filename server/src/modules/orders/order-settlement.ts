// The `order` purpose's settlement: everything that follows the payment of an order, the same
// for every channel — the order becomes PAID, stock is taken, then a vending order queues its
// machine command while a kitchen order gets its receipt and kitchen ticket, and the customer's
// screen hears `payment_completed`.
import { LIVE_EVENTS } from '@kioskhub/protocol';
import type { Executor } from '../../platform/db/database.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { minorToMajor } from '../../platform/money.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import { toSite } from '../catalog/catalog.service.js';
import type { CommandsService } from '../commands/commands.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { SettlementContext } from '../payments/settlement.js';
import { buildReceipt } from '../printing/receipt.js';
import type { PrintingService } from '../printing/printing.service.js';
import { toOrder, type Order, type OrdersService } from './orders.service.js';

const METHOD_LABELS: Record<string, string> = {
  cash: 'Cash',
  upi_qr: 'UPI',
  card: 'Card',
  bank_transfer: 'Bank transfer',
  credit: 'Wallet',
  momo: 'MTN MoMo',
  airtel: 'Airtel Money',
};

export function createOrderSettlement(deps: {
  orders: Pick<OrdersService, 'transition' | 'findRow' | 'paidInKitchen'>;
  catalog: Pick<CatalogService, 'takeStock' | 'siteRow'>;
  commands: Pick<CommandsService, 'enqueue'>;
  printing: Pick<PrintingService, 'enqueue'>;
  alerts: Pick<AlertsService, 'raise'>;
  ledger: Pick<LedgerService, 'external' | 'siteAccount' | 'transfer'>;
}) {
  const { orders, catalog, commands, printing, alerts, ledger } = deps;

  /**
   * The money of the order enters the site's revenue account. A wallet payment (`credit`) moves
   * it from the customer's wallet, which its channel does; change handed back is not revenue.
   */
  async function postRevenue(ex: Executor, payment: PaymentRow, order: Order): Promise<void> {
    const amount = Math.min(Number(payment.received_minor), Number(payment.amount_minor));
    const siteId = payment.site_id ?? order.siteId;
    if (payment.method === 'credit' || amount <= 0 || !siteId) return;
    const from = await ledger.external(ex, payment.tenant_id, payment.currency);
    const to = await ledger.siteAccount(ex, payment.tenant_id, siteId, 'revenue', payment.currency);
    await ledger.transfer(ex, {
      tenantId: payment.tenant_id,
      from: from.id,
      to: to.id,
      amount,
      unit: payment.currency,
      cause: { type: 'payment', id: payment.id },
      memo: `order ${order.orderNumber ?? order.id}`,
    });
  }

  /** The order, PAID: moved there from CREATED, or already created PAID by its channel. */
  async function paidOrder(
    ex: Executor,
    payment: PaymentRow,
    ctx: SettlementContext,
  ): Promise<Order | undefined> {
    if (ctx.order?.id === payment.order_id && ctx.order.status === 'PAID') return ctx.order;
    const orderId = payment.order_id!;
    const moved = await orders.transition(ex, orderId, 'PAID', {
      actor: ctx.actor,
      event: 'payment_received',
      detail: { method: payment.method, amountMinor: payment.received_minor, paymentId: payment.id },
    });
    if (moved) return moved;
    // A pay-later cafe order cooked before it was paid keeps its kitchen status.
    const inKitchen = await orders.paidInKitchen(ex, orderId, {
      actor: ctx.actor,
      detail: { method: payment.method, amountMinor: payment.received_minor, paymentId: payment.id },
    });
    if (inKitchen) return inKitchen;
    const row = await orders.findRow(orderId, ex);
    return row?.status === 'PAID' ? toOrder(row) : undefined;
  }

  return async function settleOrder(
    ex: Executor,
    payment: PaymentRow,
    ctx: SettlementContext,
  ): Promise<void> {
    const order = await paidOrder(ex, payment, ctx);
    if (!order) return;
    await postRevenue(ex, payment, order);
    const received = Number(payment.received_minor);
    // Only cash gives change; a transfer's surplus went to the payer's wallet or to review.
    const changeMinor = payment.method === 'cash' ? Math.max(0, received - Number(payment.amount_minor)) : 0;
    const oversold = await catalog.takeStock(ex, order.tenantId, order.items ?? []);
    if (oversold.length > 0) {
      await alerts.raise(ex, {
        tenantId: order.tenantId,
        kind: 'OVERSOLD',
        subjectType: 'order',
        subjectId: order.id,
        message: `Order ${order.orderNumber ?? order.id} was paid with more than the stock of ${oversold.join(', ')}`,
      });
    }
    // A just-paid order is "dispatch pending" exactly when a machine must execute it (vending).
    if (order.dispatchPending && order.machineId) {
      const command = await commands.enqueue(
        ex,
        {
          tenantId: order.tenantId,
          machineId: order.machineId,
          orderId: order.id,
          amountMinor: order.amount,
          currency: order.currency,
          queuedAt: order.paidAt ?? payment.completed_at ?? payment.created_at,
        },
        ctx.machine,
      );
      ctx.onCommandQueued?.(order.machineId, command.id);
    } else if (order.siteId) {
      const site = toSite(await catalog.siteRow(order.tenantId, order.siteId, ex));
      const receipt = buildReceipt(site, order, {
        method: METHOD_LABELS[payment.method] ?? payment.method,
        // Cash: all that went in, less the change; otherwise what the order kept (a transfer's
        // surplus went to the payer's wallet or to review, not to this order).
        paidMinor: payment.method === 'cash' ? received : Math.min(received, Number(payment.amount_minor)),
        changeMinor,
        // What the payment asked beyond the order's goods: a cafe guest's tip.
        tipMinor: Math.max(0, Number(payment.amount_minor) - order.amount),
      });
      await printing.enqueue(ex, {
        tenantId: order.tenantId,
        siteId: order.siteId,
        orderId: order.id,
        receipt,
      });
      await enqueueOutbox(ex, 'live', {
        tenantId: order.tenantId,
        rooms: [`kitchen:${order.siteId}`],
        event: LIVE_EVENTS.orderCreated,
        data: {
          tenantId: order.tenantId,
          orderId: order.id,
          orderNumber: order.orderNumber,
          siteId: order.siteId,
          status: order.status,
          amount: order.amount,
          currency: order.currency,
          items: order.items ?? [],
          customerName: order.customerName,
          paidAt: order.paidAt,
        },
      });
    }
    await enqueueOutbox(ex, 'live', {
      tenantId: order.tenantId,
      rooms: [
        `order:${order.id}`,
        ...(order.orderNumber ? [`order:${order.orderNumber}`] : []),
        ...(order.siteId ? [`site:${order.siteId}`] : []),
        ...(order.source === 'table' && order.machineId ? [`table:${order.machineId}`] : []),
      ],
      event: LIVE_EVENTS.paymentCompleted,
      data: {
        tenantId: order.tenantId,
        orderId: order.id,
        ...(order.orderNumber ? { orderNumber: order.orderNumber } : {}),
        paymentId: payment.id,
        method: payment.method,
        amountMinor: received,
        currency: payment.currency,
        amountPaid: minorToMajor(received, payment.currency),
        change: minorToMajor(changeMinor, payment.currency),
      },
    });
  };
}
