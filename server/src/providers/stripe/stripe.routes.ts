// POST /webhooks/stripe: Stripe Checkout events, verified by the official SDK over the raw bytes
// (Stripe-Signature, STRIPE_WEBHOOK_SECRET), then applied once each.
import { Type } from '@sinclair/typebox';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { errors } from '../../platform/http/schemas.js';
import type { Metrics } from '../../platform/metrics.js';
import { CardSignatureError, type CardGateway } from '../../modules/payments/card-gateway.js';
import type { CardPayments } from '../../modules/payments/card-payments.js';

export function stripeWebhookRoutes(
  app: FastifyTypebox,
  deps: {
    gateway: Pick<CardGateway, 'readEvent'> | undefined;
    cardPayments: Pick<CardPayments, 'apply'> | undefined;
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
          'Stripe Checkout events (checkout.session.completed, async_payment_succeeded|failed, charge.refunded); Stripe-Signature',
        headers: Type.Object({ 'stripe-signature': Type.Optional(Type.String()) }),
        response: {
          200: Type.Object({ ok: Type.Literal(true), outcome: Type.String() }),
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
        if (!(err instanceof CardSignatureError))
          throw new AppError('VALIDATION_FAILED', 'the body is not a Stripe event');
        count('bad_signature');
        throw new AppError('BAD_SIGNATURE', `Stripe-Signature: ${err.message}`);
      }
      const outcome = await deps.cardPayments.apply(event, raw.toString('utf8'));
      count(outcome);
      if (outcome === 'duplicate') deps.metrics.duplicates.inc({ provider: 'stripe' });
      deps.afterCommit();
      return { ok: true as const, outcome };
    },
  );
}
