// POST /webhooks/stripe: Stripe Checkout and refund events, verified by the official SDK over the
// raw bytes (Stripe-Signature, STRIPE_WEBHOOK_SECRET), then applied once each.
import { Type } from '@sinclair/typebox';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { errors } from '../../platform/http/schemas.js';
import type { Metrics } from '../../platform/metrics.js';
import { CardEventError, CardSignatureError, type CardGateway } from '../../modules/payments/card-gateway.js';
import type { CardPayments } from '../../modules/payments/card-payments.js';

export function stripeWebhookRoutes(
  app: FastifyTypebox,
  deps: {
    gateway: Pick<CardGateway, 'readEvent'> | undefined;
    cardPayments: Pick<CardPayments, 'apply' | 'applyRefundNews'> | undefined;
    metrics: Metrics;
    afterCommit(): void;
  },
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1_048_576 }, (_req, body, done) =>
    done(null, body),
  );

  app.post(
    '/webhooks/stripe',
    {
      schema: {
        tags: ['webhooks'],
        summary:
          'Stripe events (checkout.session.completed, async_payment_succeeded|failed, charge.refunded, refund.updated, refund.failed, charge.refund.updated); Stripe-Signature',
        headers: Type.Object({ 'stripe-signature': Type.Optional(Type.String()) }),
        response: {
          200: Type.Object({
            ok: Type.Literal(true),
            outcome: Type.String(),
            /** The refund a refund event was about. */
            refundId: Type.Optional(Type.String()),
            /** Why a refund event changed nothing: UNKNOWN_REFUND, REFUND_SUCCEEDED, REFUND_FAILED… */
            ignored: Type.Optional(Type.String()),
          }),
          ...errors(400, 401, 503),
        },
      },
    },
    async (request) => {
      const count = (outcome: string) => deps.metrics.webhooks.inc({ provider: 'stripe', outcome });
      if (!deps.gateway || !deps.cardPayments) {
        count('not_configured');
        throw new AppError(
          'PROVIDER_NOT_CONFIGURED',
          'STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are not set on this server',
        );
      }
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      let event;
      try {
        event = deps.gateway.readEvent(raw, request.headers['stripe-signature']);
      } catch (err) {
        if (err instanceof CardSignatureError) {
          count('bad_signature');
          throw new AppError('BAD_SIGNATURE', `Stripe-Signature: ${err.message}`);
        }
        count('malformed');
        throw new AppError(
          'VALIDATION_FAILED',
          err instanceof CardEventError ? err.message : 'the body is not a Stripe event',
        );
      }
      if (event.kind === 'refund_news') {
        const settled = await deps.cardPayments.applyRefundNews(event);
        const outcome = `refund_${settled.outcome}`;
        count(outcome);
        if (settled.outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'stripe' });
        if (settled.ignored)
          request.log.warn(
            {
              eventId: event.eventId,
              eventType: event.eventType,
              providerRefundId: event.news.providerRefundId,
              ignored: settled.ignored,
            },
            settled.ignored === 'UNKNOWN_REFUND'
              ? 'Stripe refund event for a refund this server did not ask for: ignored'
              : 'Stripe refund event contrary to how the refund ended here: ignored',
          );
        deps.afterCommit();
        return {
          ok: true as const,
          outcome,
          ...(settled.refundId ? { refundId: settled.refundId } : {}),
          ...(settled.ignored ? { ignored: settled.ignored } : {}),
        };
      }
      const outcome = await deps.cardPayments.apply(event, raw.toString('utf8'));
      count(outcome);
      if (outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'stripe' });
      deps.afterCommit();
      return { ok: true as const, outcome };
    },
  );
}
