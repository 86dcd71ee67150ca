// POST /webhooks/bank: a bank's (or aggregator's) credit notification `{eventId, reference,
// amountMinor, currency, bookedAt}`, signed with BANK_WEBHOOK_SECRET. Verified over the raw bytes
// before anything is read, applied once per event id, matched by our RF reference.
import { Type } from '@sinclair/typebox';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { errors } from '../../platform/http/schemas.js';
import type { Metrics } from '../../platform/metrics.js';
import type { Arrivals, CreditNotice } from '../../modules/payments/arrivals.js';
import { checkSignature } from './bank.signature.js';
import { findRfReference } from './rf-reference.js';

const REFUSALS = {
  missing: 'Kioskhub-Signature is missing',
  malformed: 'Kioskhub-Signature must be t=<unix seconds>,v1=<hex HMAC-SHA256>',
  expired: 'Kioskhub-Signature is older (or newer) than 5 minutes',
  mismatch: 'Kioskhub-Signature does not match the body',
} as const;

// A booking date as banks give it: a day, or a moment with its offset (seconds optional).
const BOOKING_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;
const isBookingTime = (value: unknown): boolean =>
  typeof value === 'string' && BOOKING_TIME.test(value) && !Number.isNaN(Date.parse(value));

/** The notification, or a message naming what is wrong with it. */
export function parseBankCredit(raw: Buffer): CreditNotice | string {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'the body is not a JSON object';
  const b = body as Record<string, unknown>;
  const { eventId, reference, amountMinor, currency, bookedAt } = b;
  if (typeof eventId !== 'string' || eventId.length < 1 || eventId.length > 200)
    return 'eventId must be a string of 1 to 200 characters';
  if (typeof reference !== 'string' || reference.length < 1 || reference.length > 140)
    return 'reference must be a string of 1 to 140 characters';
  if (typeof amountMinor !== 'number' || !Number.isSafeInteger(amountMinor) || amountMinor <= 0)
    return 'amountMinor must be a positive whole number of minor units';
  if (typeof currency !== 'string' || !/^[A-Z]{3}$/.test(currency))
    return 'currency must be an ISO 4217 code such as EUR';
  if (bookedAt !== undefined && !isBookingTime(bookedAt))
    return 'bookedAt must be an ISO 8601 date-time such as 2026-12-03T10:15:00Z (or a date, 2026-12-03)';
  return {
    provider: 'bank',
    eventId,
    eventType: 'credit',
    // Banks may group the reference in fours, change its case, or carry it inside the payer's own
    // words (typed by hand in the unstructured line); an invalid one matches nothing.
    reference: findRfReference(reference) ?? reference.trim(),
    amountMinor,
    currency,
    raw: raw.toString('utf8'),
  };
}

export function bankWebhookRoutes(
  app: FastifyTypebox,
  deps: {
    secrets: readonly string[];
    arrivals: Pick<Arrivals, 'credit'>;
    metrics: Metrics;
    afterCommit(): void;
  },
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 65_536 }, (_req, body, done) =>
    done(null, body),
  );

  app.post(
    '/webhooks/bank',
    {
      schema: {
        tags: ['webhooks'],
        summary:
          'A bank credit notification {eventId, reference, amountMinor, currency, bookedAt}, signed with Kioskhub-Signature',
        headers: Type.Object({ 'kioskhub-signature': Type.Optional(Type.String()) }),
        response: {
          200: Type.Object(
            { ok: Type.Literal(true), outcome: Type.String(), paymentId: Type.Optional(Type.String()) },
            { additionalProperties: true },
          ),
          ...errors(400, 401, 409, 503),
        },
      },
    },
    async (request) => {
      const count = (outcome: string) => deps.metrics.webhooks.inc({ provider: 'bank', outcome });
      if (deps.secrets.length === 0) {
        count('not_configured');
        throw new AppError('PROVIDER_NOT_CONFIGURED', 'BANK_WEBHOOK_SECRET is not set on this server');
      }
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const check = checkSignature(raw, request.headers['kioskhub-signature'], deps.secrets);
      if (check !== 'ok') {
        count('bad_signature');
        throw new AppError('BAD_SIGNATURE', REFUSALS[check]);
      }
      const notice = parseBankCredit(raw);
      if (typeof notice === 'string') {
        count('malformed');
        throw new AppError('VALIDATION_FAILED', notice);
      }
      const result = await deps.arrivals.credit(notice);
      count(result.outcome);
      if (result.outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'bank' });
      deps.afterCommit();
      return { ok: true as const, ...result };
    },
  );
}
