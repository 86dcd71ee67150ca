// POST /webhooks/razorpay (CONTRACTS.md §7): verify the raw bytes, apply once, answer fast.
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import type { Executor } from '../../platform/db/database.js';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { errors } from '../../platform/http/schemas.js';
import type { Metrics } from '../../platform/metrics.js';
import type { PaymentsService } from '../../modules/payments/payments.service.js';
import type { Refunds } from '../../modules/payments/refunds.js';
import { parseRazorpayEvent, verifyRazorpaySignature } from './razorpay.webhook.js';

export function razorpayWebhookRoutes(
  app: FastifyTypebox,
  deps: {
    secrets: readonly string[];
    payments: PaymentsService;
    /** Refund events (refund.processed, refund.failed, refund.created) settle refunds. */
    refunds: Pick<Refunds, 'settleProviderRefund'>;
    metrics: Metrics;
    afterCommit(): void;
    logger: Logger;
  },
): void {
  // The signature covers the exact bytes Razorpay sent, so this route keeps them unparsed.
  // Whatever the content type (JSON, text/plain, none): Fastify's own JSON and text parsers go.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1_048_576 }, (_req, body, done) =>
    done(null, body),
  );

  app.post(
    '/webhooks/razorpay',
    {
      schema: {
        tags: ['webhooks'],
        summary:
          'Razorpay webhook (qr_code.credited, payment.captured, refund.processed, refund.failed); signed with X-Razorpay-Signature',
        headers: Type.Object({
          'x-razorpay-signature': Type.Optional(Type.String()),
          'x-razorpay-event-id': Type.Optional(Type.String()),
        }),
        response: {
          200: Type.Object({
            ok: Type.Literal(true),
            orderId: Type.Optional(Type.String()),
            refundId: Type.Optional(Type.String()),
            duplicate: Type.Optional(Type.Boolean()),
            ignored: Type.Optional(Type.String()),
          }),
          ...errors(400, 401, 503),
        },
      },
    },
    async (request) => {
      const count = (outcome: string) => deps.metrics.webhooks.inc({ provider: 'razorpay', outcome });
      if (deps.secrets.length === 0) {
        count('not_configured');
        throw new AppError('PROVIDER_NOT_CONFIGURED', 'RAZORPAY_WEBHOOK_SECRET is not set on this server');
      }
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const signature = request.headers['x-razorpay-signature'];
      if (!verifyRazorpaySignature(raw, signature, deps.secrets)) {
        count('bad_signature');
        throw new AppError(
          'BAD_SIGNATURE',
          signature ? 'X-Razorpay-Signature does not match the body' : 'X-Razorpay-Signature is missing',
        );
      }
      const parsed = parseRazorpayEvent(raw, request.headers['x-razorpay-event-id']);
      if (parsed.kind === 'malformed') {
        count('malformed');
        throw new AppError('VALIDATION_FAILED', parsed.message);
      }
      if (parsed.kind === 'not-handled') {
        count('not_handled');
        return { ok: true as const, ignored: 'EVENT_NOT_HANDLED' };
      }
      if (parsed.kind === 'refund') {
        // Once per event id (the inbox, as for payments), in the transaction of its effect.
        const { eventId, news } = parsed;
        const claim = eventId
          ? (ex: Executor) =>
              deps.payments.claimDelivery(
                'razorpay',
                eventId,
                { providerRefundId: news.providerRefundId },
                ex,
              )
          : undefined;
        const settled = await deps.refunds.settleProviderRefund(news, claim);
        count(`refund_${settled.outcome}`);
        if (settled.outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'razorpay' });
        if (settled.ignored)
          deps.logger.warn(
            {
              eventId,
              eventType: parsed.eventType,
              providerRefundId: news.providerRefundId,
              ignored: settled.ignored,
            },
            settled.ignored === 'UNKNOWN_REFUND'
              ? 'Razorpay refund event for a refund this server does not know: ignored'
              : 'Razorpay refund event contrary to how the refund ended here: ignored',
          );
        deps.afterCommit();
        return {
          ok: true as const,
          ...(settled.refundId ? { refundId: settled.refundId } : {}),
          ...(settled.outcome === 'duplicate' ? { duplicate: true } : {}),
          ...(settled.ignored ? { ignored: settled.ignored } : {}),
        };
      }
      const { answer, outcome } = await deps.payments.applyPayment(parsed.notification);
      count(outcome);
      if (outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'razorpay' });
      deps.afterCommit();
      return answer;
    },
  );
}
