// Display helpers: money from minor units, times, and labels for statuses and timeline events.
import { currencyExponent, formatMinor, minorToMajor } from '@kioskhub/protocol';

/** Minor units in the currency's ISO 4217 decimals (¥1,500; KWD 1.250; ₱250.00). */
export function money(minor: number, currency: string): string {
  try {
    const digits = currencyExponent(currency);
    const format = {
      style: 'currency',
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    } as const;
    return new Intl.NumberFormat(undefined, format).format(minorToMajor(minor, currency));
  } catch {
    return `${minor} ${currency} (minor units)`;
  }
}

/** Major units (the cash routes' amounts) with the currency's decimals: "250.00", "5000", "1.250". */
export function majorAmount(major: number, currency: string): string {
  try {
    return major.toFixed(currencyExponent(currency));
  } catch {
    return String(major);
  }
}

/** Minor units as plain major digits for an input field ("150.00" → "150.00", UGX "5000"). */
export function minorToInput(minor: number, currency: string): string {
  try {
    return formatMinor(minor, currency);
  } catch {
    return String(minor);
  }
}

export const dateTime = (iso: string | null | undefined): string =>
  iso ? new Date(iso).toLocaleString() : '—';
export const time = (iso: string | null | undefined): string =>
  iso ? new Date(iso).toLocaleTimeString() : '—';
export const sameDay = (iso: string, now = new Date()): boolean =>
  new Date(iso).toDateString() === now.toDateString();

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

const EVENT_LABELS: Record<string, string> = {
  created: 'Order created',
  payment_received: 'Payment received',
  paid: 'Paid',
  command_sent: 'Command sent',
  command_accepted: 'Accepted by machine',
  command_declined: 'Declined by machine',
  dispatched: 'Dispatched',
  dispensed: 'Done: dispensed',
  dispense_failed: 'Done: dispense failed',
  completed: 'Completed',
  failed: 'Failed',
  needs_review: 'Needs review',
  marked_dispensed: 'Marked dispensed',
  refund_due: 'Refund due',
  refunded: 'Refunded',
  cancelled: 'Cancelled',
  ready: 'Ready',
};
export const eventLabel = (type: string): string => EVENT_LABELS[type] ?? type.replaceAll('_', ' ');

export const titleCase = (s: string): string => s.charAt(0) + s.slice(1).toLowerCase().replaceAll('_', ' ');

/** `datetime-local` input value ↔ ISO UTC. */
export const localInputToIso = (value: string): string | undefined =>
  value ? new Date(value).toISOString() : undefined;
export function isoToLocalInput(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Millilitres as litres for people: "12.5 L" (integers in, one decimal out). */
export const litres = (ml: number): string =>
  `${(ml / 1000).toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} L`;
