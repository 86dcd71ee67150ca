// Lays a receipt out for a fixed-width thermal printer (32 columns on 58 mm paper, 42–48 on
// 80 mm) and writes it as ESC/POS. Amounts arrive in major units and are printed exactly.
import { currencyExponent } from '@kioskhub/protocol';
import { COMMANDS, escpos, printable } from './escpos.js';
import type { Receipt } from './receipt.js';

export interface LayoutOptions {
  columns: number;
  /** Printed before amounts: "PHP" for ₱. */
  currencyLabel: string;
  /** IANA zone for the order date, e.g. Asia/Manila; undefined: the system's. */
  timeZone?: string;
}

/**
 * 1250.5 → "1,250.50" with two decimals (the default), "1,251" with none (UGX), "1,250.500" with
 * three (KWD): computed on integer minor units.
 */
export function formatAmount(major: number, decimals = 2): string {
  const scale = 10 ** decimals;
  const minor = Math.round(major * scale);
  const abs = Math.abs(minor);
  const whole = Math.trunc(abs / scale)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = decimals > 0 ? `.${String(abs % scale).padStart(decimals, '0')}` : '';
  return `${minor < 0 ? '-' : ''}${whole}${fraction}`;
}

/** "2026-03-01T04:05:00Z" → "2026-03-01 12:05" in the zone; unreadable dates print as given. */
export function formatDate(iso: string, timeZone?: string): string {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return iso;
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(date);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}`;
}

/** Word-wraps to `width` columns; words longer than a line are split. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of printable(text).split(/\s+/).filter(Boolean)) {
    let rest = word;
    while (rest.length > width) {
      if (current) lines.push(current);
      current = '';
      lines.push(rest.slice(0, width));
      rest = rest.slice(width);
    }
    if (!rest) continue;
    if (!current) current = rest;
    else if (current.length + 1 + rest.length <= width) current += ` ${rest}`;
    else {
      lines.push(current);
      current = rest;
    }
  }
  if (current) lines.push(current);
  return lines.length ? lines : [''];
}

/** Label on the left, value on the right; the value moves to its own line when both do not fit. */
function row(label: string, value: string, width: number): string[] {
  const l = printable(label);
  const v = printable(value);
  if (l.length + 1 + v.length <= width) return [l + v.padStart(width - l.length)];
  return [...wrap(l, width), v.padStart(width)];
}

export function renderReceipt(receipt: Receipt, options: LayoutOptions): Buffer {
  const width = options.columns;
  // The receipt's currency sets the decimals; receipts without one (the earlier kiosk's) have two.
  const decimals = receipt.currency !== undefined ? currencyExponent(receipt.currency) : 2;
  const amount = (major: number) => formatAmount(major, decimals);
  const money = (major: number) => `${options.currencyLabel} ${amount(major)}`.trim();
  const qtyWidth = 4;
  const amountWidth = 10;
  const nameWidth = width - qtyWidth - amountWidth - 2;
  const rule = (ch: string) => ch.repeat(width);
  const out = escpos().raw(COMMANDS.init).raw(COMMANDS.codePage437);

  out.raw(COMMANDS.align('center')).raw(COMMANDS.bold(true)).raw(COMMANDS.size(2, 2));
  for (const line of wrap(receipt.restaurantName || 'Receipt', Math.floor(width / 2))) out.line(line);
  out.raw(COMMANDS.size(1, 1)).raw(COMMANDS.bold(false));
  for (const text of [receipt.restaurantAddress, receipt.restaurantPhone])
    if (text.trim()) for (const line of wrap(text, width)) out.line(line);
  out.line(rule('='));

  out.raw(COMMANDS.align('left')).raw(COMMANDS.bold(true));
  for (const line of wrap(`Order #: ${receipt.orderNumber}`, width)) out.line(line);
  out.raw(COMMANDS.bold(false));
  if (receipt.orderDate) out.line(`Date: ${formatDate(receipt.orderDate, options.timeZone)}`);
  if (receipt.customerName)
    for (const line of wrap(`Customer: ${receipt.customerName}`, width)) out.line(line);
  out.line(rule('-'));

  out.line(`${'Item'.padEnd(nameWidth)} ${'Qty'.padStart(qtyWidth)} ${'Amount'.padStart(amountWidth)}`);
  for (const item of receipt.items) {
    const [first = '', ...more] = wrap(item.productName, nameWidth);
    out.line(
      `${first.padEnd(nameWidth)} ${String(item.quantity).padStart(qtyWidth)} ${amount(item.lineTotal).padStart(amountWidth)}`,
    );
    for (const line of more) out.line(line);
  }
  out.line(rule('-'));

  for (const line of row('Subtotal', amount(receipt.subTotal), width)) out.line(line);
  if (receipt.tax > 0) for (const line of row('VAT (incl.)', amount(receipt.tax), width)) out.line(line);
  if (receipt.tip !== undefined && receipt.tip > 0)
    for (const line of row('Tip', amount(receipt.tip), width)) out.line(line);
  out.raw(COMMANDS.bold(true)).raw(COMMANDS.size(1, 2));
  for (const line of row('TOTAL', money(receipt.totalAmount), width)) out.line(line);
  out.raw(COMMANDS.size(1, 1)).raw(COMMANDS.bold(false));
  out.line(rule('-'));

  if (receipt.paymentMethod) for (const line of row('Payment', receipt.paymentMethod, width)) out.line(line);
  if (receipt.amountPaid !== undefined)
    for (const line of row('Paid', money(receipt.amountPaid), width)) out.line(line);
  if (receipt.change !== undefined && receipt.change > 0) {
    out.raw(COMMANDS.bold(true));
    for (const line of row('Change', money(receipt.change), width)) out.line(line);
    out.raw(COMMANDS.bold(false));
  }

  out.raw(COMMANDS.align('center')).line().line('Thank you!').line('Please come again');
  return out.raw(COMMANDS.feed(3)).raw(COMMANDS.cut).toBuffer();
}
