// The receipt document printers receive (CONTRACTS.md §10): major units, the earlier
// kiosk's field names.
import { minorToMajor } from '../../platform/money.js';
import type { Site } from '../catalog/catalog.service.js';
import type { Order } from '../orders/orders.service.js';

export interface Receipt {
  restaurantName: string;
  restaurantAddress: string;
  restaurantPhone: string;
  orderNumber: string;
  orderDate: string;
  customerName?: string;
  items: { productName: string; quantity: number; lineTotal: number }[];
  subTotal: number;
  tax: number;
  totalAmount: number;
  paymentMethod: string;
  amountPaid?: number;
  change?: number;
}

/** Prices include VAT at the site's rate; the tax line shows the VAT part of the total. */
export function buildReceipt(site: Site, order: Order, payment: { method: string; paidMinor?: number; changeMinor?: number }): Receipt {
  const taxMinor = site.taxRateBp > 0 ? Math.round((order.amount * site.taxRateBp) / (10_000 + site.taxRateBp)) : 0;
  return {
    restaurantName: site.name,
    restaurantAddress: site.address ?? '',
    restaurantPhone: site.phone ?? '',
    orderNumber: order.orderNumber ?? order.id,
    orderDate: order.paidAt ?? order.createdAt,
    ...(order.customerName ? { customerName: order.customerName } : {}),
    items: (order.items ?? []).map((i) => ({ productName: i.name ?? i.sku, quantity: i.qty, lineTotal: minorToMajor(i.qty * (i.unitPriceMinor ?? 0)) })),
    subTotal: minorToMajor(order.amount - taxMinor),
    tax: minorToMajor(taxMinor),
    totalAmount: minorToMajor(order.amount),
    paymentMethod: payment.method,
    ...(payment.paidMinor !== undefined ? { amountPaid: minorToMajor(payment.paidMinor) } : {}),
    ...(payment.changeMinor !== undefined ? { change: minorToMajor(payment.changeMinor) } : {}),
  };
}
