// Razorpay webhooks (PROVIDERS.md §1.2–§2): signature over the raw bytes, then a lenient
// parse into the provider-neutral PaymentNotification.
import { createHmac, timingSafeEqual } from 'node:crypto';

import type { PaymentNotification } from '../../modules/payments/payment-notification.js';
import { refundIdOfNotes, type ProviderRefundNews } from '../../modules/payments/refunds.js';

export type { PaymentNotification };

export type ParsedRazorpayEvent =
  | { kind: 'payment'; notification: PaymentNotification }
  | { kind: 'refund'; eventId: string | null; eventType: string; news: ProviderRefundNews }
  | { kind: 'not-handled'; eventType: string }
  | { kind: 'malformed'; message: string };

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

/** True when `signature` is the HMAC-SHA256 of `rawBody` under any of `secrets` (rotation). */
export function verifyRazorpaySignature(
  rawBody: Buffer,
  signature: string | undefined,
  secrets: readonly string[],
): boolean {
  if (!signature || !HEX_SHA256.test(signature)) return false;
  const given = Buffer.from(signature, 'hex');
  let ok = false;
  // Check every secret so the time taken does not reveal which one matched.
  for (const secret of secrets) {
    const expected = createHmac('sha256', secret).update(rawBody).digest();
    ok = timingSafeEqual(expected, given) || ok;
  }
  return ok;
}

export const signRazorpayBody = (rawBody: string | Buffer, secret: string): string =>
  createHmac('sha256', secret).update(rawBody).digest('hex');

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

export function parseRazorpayEvent(rawBody: Buffer, eventIdHeader: string | undefined): ParsedRazorpayEvent {
  let body: Json | undefined;
  try {
    body = obj(JSON.parse(rawBody.toString('utf8')));
  } catch {
    return { kind: 'malformed', message: 'body is not JSON' };
  }
  if (!body) return { kind: 'malformed', message: 'body is not a JSON object' };
  const eventType = str(body['event']);
  if (!eventType) return { kind: 'malformed', message: 'field "event" is missing' };
  if (REFUND_EVENTS.has(eventType)) return parseRefundEvent(body, eventType, eventIdHeader);
  if (eventType !== 'qr_code.credited' && eventType !== 'payment.captured')
    return { kind: 'not-handled', eventType };

  const payload = obj(body['payload']);
  const payment = obj(obj(payload?.['payment'])?.['entity']);
  if (!payment) return { kind: 'malformed', message: 'payload.payment.entity is missing' };
  const paymentId = str(payment['id']);
  const amount = payment['amount'];
  const currency = str(payment['currency']);
  if (!paymentId) return { kind: 'malformed', message: 'payload.payment.entity.id is missing' };
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < 0) {
    return {
      kind: 'malformed',
      message: 'payload.payment.entity.amount must be a non-negative integer (paise)',
    };
  }
  if (!currency || !/^[A-Z]{3}$/.test(currency))
    return { kind: 'malformed', message: 'payload.payment.entity.currency is missing' };

  const qrEntity = obj(obj(payload?.['qr_code'])?.['entity']);
  const notes = obj(payment['notes']);
  const reference = eventType === 'qr_code.credited' ? str(qrEntity?.['id']) : str(notes?.['qr_code_id']);
  if (eventType === 'qr_code.credited' && !reference)
    return { kind: 'malformed', message: 'payload.qr_code.entity.id is missing' };
  // A captured payment that did not come through one of our QR codes is not ours to handle.
  if (!reference) return { kind: 'not-handled', eventType };
  // Stored as text, which PostgreSQL refuses with a NUL in it (and Razorpay's ids never hold one).
  if (paymentId.includes('\u0000') || reference.includes('\u0000'))
    return {
      kind: 'malformed',
      message: 'payment and QR code ids must not contain NUL characters (\\u0000)',
    };

  return {
    kind: 'payment',
    notification: {
      provider: 'razorpay',
      eventId: eventIdHeader && eventIdHeader.length <= 200 ? eventIdHeader : null,
      eventType,
      providerPaymentId: paymentId,
      amountMinor: amount,
      currency,
      reference: reference ?? null,
      captured: payment['status'] === 'captured' || payment['captured'] === true,
      raw: rawBody.toString('utf8'),
    },
  };
}

/** Razorpay's refund events that settle a refund (refund.speed_changed does not). */
const REFUND_EVENTS = new Set(['refund.created', 'refund.processed', 'refund.failed']);

/**
 * `refund.processed` / `refund.failed` (and `refund.created`, by its refund's status): the news
 * of a refund, found by its `payload.refund.entity` (id, payment_id, amount).
 */
function parseRefundEvent(
  body: Json,
  eventType: string,
  eventIdHeader: string | undefined,
): ParsedRazorpayEvent {
  const refund = obj(obj(obj(body['payload'])?.['refund'])?.['entity']);
  if (!refund) return { kind: 'malformed', message: 'payload.refund.entity is missing' };
  const id = str(refund['id']);
  const paymentId = str(refund['payment_id']);
  const amount = refund['amount'];
  if (!id) return { kind: 'malformed', message: 'payload.refund.entity.id is missing' };
  if (!paymentId) return { kind: 'malformed', message: 'payload.refund.entity.payment_id is missing' };
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount <= 0)
    return { kind: 'malformed', message: 'payload.refund.entity.amount must be a positive integer (paise)' };
  if (id.includes('\u0000') || paymentId.includes('\u0000'))
    return { kind: 'malformed', message: 'refund and payment ids must not contain NUL characters (\\u0000)' };
  const status = str(refund['status']);
  const refundId = refundIdOfNotes(refund['notes']);
  const outcome =
    eventType === 'refund.processed'
      ? 'processed'
      : eventType === 'refund.failed'
        ? 'failed'
        : status === 'processed' || status === 'failed'
          ? status
          : 'pending';
  return {
    kind: 'refund',
    eventId: eventIdHeader && eventIdHeader.length <= 200 ? eventIdHeader : null,
    eventType,
    news: {
      provider: 'razorpay',
      providerRefundId: id,
      providerPaymentId: paymentId,
      amountMinor: amount,
      outcome,
      error: `Razorpay failed refund ${id} (${eventType}, status ${status ?? 'unknown'})`,
      // Our refund id from its notes: finds a refund whose answer never came (its job gave up).
      ...(refundId !== undefined ? { refundId } : {}),
    },
  };
}
