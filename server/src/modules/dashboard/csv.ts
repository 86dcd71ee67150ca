// Orders as CSV (RFC 4180): one header row, CRLF line ends, fields quoted when needed. A cell
// that a spreadsheet would run as a formula (= + - @ tab CR) is prefixed with an apostrophe.
import type { OrderView } from '@kioskhub/protocol';
import { formatMinor } from '../../platform/money.js';

export const ORDER_CSV_COLUMNS = [
  'id',
  'orderNumber',
  'createdAt',
  'paidAt',
  'status',
  'failureCode',
  'machineId',
  'siteId',
  'source',
  'provider',
  'providerPaymentId',
  'amount',
  'amountMinor',
  'currency',
  'customerName',
  'updatedAt',
] as const;

export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function orderCsvRow(o: OrderView): string {
  const values: Record<(typeof ORDER_CSV_COLUMNS)[number], unknown> = {
    id: o.id,
    orderNumber: o.orderNumber,
    createdAt: o.createdAt,
    paidAt: o.paidAt,
    status: o.status,
    failureCode: o.failureCode,
    machineId: o.machineId,
    siteId: o.siteId,
    source: o.source,
    provider: o.provider,
    providerPaymentId: o.providerPaymentId,
    amount: formatMinor(o.amount, o.currency),
    amountMinor: o.amount,
    currency: o.currency,
    customerName: o.customerName,
    updatedAt: o.updatedAt,
  };
  return ORDER_CSV_COLUMNS.map((c) => csvCell(values[c])).join(',');
}

export const orderCsvHeader = (): string => ORDER_CSV_COLUMNS.join(',');
