// Runtime checks for what arrives from the server: socket payloads are untrusted input.
import type { DispenseCommand } from '@kioskhub/protocol';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function parseItems(value: unknown): DispenseCommand['items'] | null {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) return null;
  const items: { sku: string; qty: number }[] = [];
  for (const item of value as unknown[]) {
    if (!isRecord(item) || !isNonEmptyString(item.sku) || typeof item.qty !== 'number') return null;
    items.push({ sku: item.sku, qty: item.qty });
  }
  return items;
}

/** The command if the payload has the required fields, otherwise null. */
export function parseDispenseCommand(raw: unknown): DispenseCommand | null {
  if (!isRecord(raw)) return null;
  const { commandId, orderId, amountMinor, currency, issuedAt } = raw;
  if (!isNonEmptyString(commandId) || !isNonEmptyString(orderId)) return null;
  const items = parseItems(raw.items);
  if (items === null) return null;
  return {
    commandId,
    orderId,
    // Lenient on the informational fields: the simulator only needs the two ids.
    amountMinor: typeof amountMinor === 'number' ? amountMinor : 0,
    currency: typeof currency === 'string' ? currency : '',
    issuedAt: typeof issuedAt === 'string' ? issuedAt : '',
    ...(items ? { items } : {}),
  };
}

/** True for an `{ok: true, …}` answer. */
export function isOkAck(ack: unknown): boolean {
  return isRecord(ack) && ack.ok === true;
}

/** A short human description of an ack, for log lines. */
export function describeAck(ack: unknown): string {
  if (isRecord(ack) && isRecord(ack.error)) {
    const { code, message } = ack.error;
    return `${String(code)}${typeof message === 'string' ? `: ${message}` : ''}`;
  }
  return JSON.stringify(ack) ?? String(ack);
}
