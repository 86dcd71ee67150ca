// The receipt document of the print queue (CONTRACTS.md §10, major units), read from the
// server's JSON at this edge: anything that is not a receipt is refused with a reason.
import { isKnownCurrency, type Receipt } from '@kioskhub/protocol';

export type { Receipt };
export type ReceiptItem = Receipt['items'][number];

export class ReceiptError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function str(o: Record<string, unknown>, field: string, fallback?: string): string {
  const v = o[field];
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ReceiptError(`receipt has no ${field}`);
  }
  throw new ReceiptError(`receipt ${field} must be text`);
}

function amount(o: Record<string, unknown>, field: string, fallback?: number): number {
  const v = o[field];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  throw new ReceiptError(`receipt ${field} must be a number`);
}

function optionalAmount(o: Record<string, unknown>, field: string): number | undefined {
  return o[field] === undefined || o[field] === null ? undefined : amount(o, field);
}

export function parseReceipt(value: unknown): Receipt {
  if (!isObject(value)) throw new ReceiptError('receipt is not an object');
  if (!Array.isArray(value['items'])) throw new ReceiptError('receipt items must be a list');
  const items = value['items'].map((item, i): ReceiptItem => {
    if (!isObject(item)) throw new ReceiptError(`receipt item ${i + 1} is not an object`);
    return {
      productName: str(item, 'productName', '?'),
      quantity: amount(item, 'quantity'),
      lineTotal: amount(item, 'lineTotal'),
    };
  });
  const customerName = value['customerName'];
  const currency = value['currency'];
  // An unknown code prints with two decimals, as receipts without one do.
  const known = typeof currency === 'string' && isKnownCurrency(currency);
  const amountPaid = optionalAmount(value, 'amountPaid');
  const tip = optionalAmount(value, 'tip');
  const change = optionalAmount(value, 'change');
  return {
    restaurantName: str(value, 'restaurantName', ''),
    restaurantAddress: str(value, 'restaurantAddress', ''),
    restaurantPhone: str(value, 'restaurantPhone', ''),
    orderNumber: str(value, 'orderNumber'),
    orderDate: str(value, 'orderDate', ''),
    ...(typeof customerName === 'string' && customerName.trim() ? { customerName } : {}),
    items,
    subTotal: amount(value, 'subTotal', 0),
    tax: amount(value, 'tax', 0),
    ...(tip === undefined ? {} : { tip }),
    totalAmount: amount(value, 'totalAmount'),
    paymentMethod: str(value, 'paymentMethod', ''),
    ...(amountPaid === undefined ? {} : { amountPaid }),
    ...(change === undefined ? {} : { change }),
    ...(known ? { currency } : {}),
  };
}
