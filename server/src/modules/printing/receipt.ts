// Builds the receipt document printers receive (its type lives in protocol/).
import type { Receipt } from '@kioskhub/protocol';
import { minorToMajor } from '../../platform/money.js';
import type { Site } from '../catalog/catalog.service.js';
import type { Order } from '../orders/orders.service.js';

/**
 * Prices include VAT at the site's rate; the tax line shows the VAT part of the goods. A tip (a
 * cafe guest's, paid with the order: `tipMinor`) is its own line and part of the total, so
 * subTotal + tax + tip = totalAmount = amountPaid − change.
 */
export function buildReceipt(
  site: Omit<Site, 'adHocCashOrders'>,
  order: Order,
  payment: { method: string; paidMinor?: number; changeMinor?: number; tipMinor?: number },
): Receipt {
  const tipMinor = payment.tipMinor ?? 0;
  const major = (minor: number) => minorToMajor(minor, order.currency);
  const taxMinor =
    site.taxRateBp > 0 ? Math.round((order.amount * site.taxRateBp) / (10_000 + site.taxRateBp)) : 0;
  return {
    restaurantName: site.name,
    restaurantAddress: site.address ?? '',
    restaurantPhone: site.phone ?? '',
    orderNumber: order.orderNumber ?? order.id,
    orderDate: order.paidAt ?? order.createdAt,
    ...(order.customerName ? { customerName: order.customerName } : {}),
    items: (order.items ?? []).map((i) => ({
      productName: i.name ?? i.sku,
      quantity: i.qty,
      lineTotal: major(i.qty * (i.unitPriceMinor ?? 0)),
    })),
    subTotal: major(order.amount - taxMinor),
    tax: major(taxMinor),
    ...(tipMinor > 0 ? { tip: major(tipMinor) } : {}),
    totalAmount: major(order.amount + tipMinor),
    paymentMethod: payment.method,
    ...(payment.paidMinor !== undefined ? { amountPaid: major(payment.paidMinor) } : {}),
    ...(payment.changeMinor !== undefined ? { change: major(payment.changeMinor) } : {}),
    currency: order.currency,
  };
}

export type { Receipt };
