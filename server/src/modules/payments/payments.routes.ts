import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { Cursor, EntityId, errors, Limit, Page } from '../../platform/http/schemas.js';
import type { PaymentsService } from './payments.service.js';
import { PAYMENT_METHODS, PAYMENT_PURPOSES, PAYMENT_STATUSES } from './settlement.js';
import { REFUND_DESTINATIONS, type RefundDestination, type Refunds } from './refunds.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const Payment = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  siteId: Nullable(Type.String()),
  purpose: Type.String({ enum: [...PAYMENT_PURPOSES] }),
  orderId: Nullable(Type.String()),
  customerId: Nullable(Type.String()),
  planId: Nullable(Type.String()),
  machineId: Nullable(Type.String()),
  method: Type.String({ enum: [...PAYMENT_METHODS] }),
  provider: Nullable(Type.String()),
  providerPaymentId: Nullable(Type.String()),
  reference: Nullable(Type.String()),
  amountMinor: Type.Integer({ description: 'what is to be paid, in minor units of currency' }),
  receivedMinor: Type.Integer({ description: 'what has arrived so far' }),
  currency: Type.String(),
  status: Type.String({ enum: [...PAYMENT_STATUSES] }),
  failureCode: Nullable(Type.String()),
  refundedMinor: Type.Integer(),
  createdAt: Type.String(),
  completedAt: Nullable(Type.String()),
});

const Refund = Type.Object({
  id: Type.String(),
  paymentId: Type.String(),
  amountMinor: Type.Integer(),
  currency: Type.String(),
  reason: Type.String(),
  destination: Type.String({ enum: [...REFUND_DESTINATIONS] }),
  status: Type.String({ enum: ['PENDING', 'DUE', 'SUCCEEDED', 'FAILED'] }),
  actor: Type.String(),
  providerRefundId: Nullable(Type.String()),
  error: Nullable(Type.String()),
  createdAt: Type.String(),
  completedAt: Nullable(Type.String()),
});

const RefundBody = Type.Object(
  {
    amountMinor: Type.Optional(Type.Integer({ minimum: 1, description: 'default: all that remains' })),
    reason: Type.String({ minLength: 1, maxLength: 500 }),
    to: Type.Optional(Type.String({ enum: [...REFUND_DESTINATIONS], description: 'default original' })),
    customerId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'to: "credit" for a payment with no known payer: whose wallet gets the money',
      }),
    ),
  },
  { additionalProperties: false },
);

/** Who may give money back. */
const REFUNDERS = ['admin', 'customer_service'] as const;

export function paymentsRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; payments: PaymentsService; refunds: Refunds },
): void {
  const PaymentParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
  for (const path of ['/v1/payments/:id/refunds', '/api/payments/:id/refund']) {
    app.post(
      path,
      {
        schema: {
          tags: ['payments'],
          summary: 'Refund a payment in part or in full (admin, customer_service); never more than was paid',
          params: PaymentParams,
          body: RefundBody,
          response: { 201: Refund, ...errors(400, 401, 403, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        const principal = await request.staff(REFUNDERS);
        const { amountMinor, reason, to, customerId } = request.body;
        const refund = await deps.refunds.refund(request.params.id, tenantFilter(principal), {
          reason,
          actor: principal.actor,
          ...(customerId !== undefined ? { customerId } : {}),
          ...(amountMinor !== undefined ? { amountMinor } : {}),
          ...(to !== undefined ? { to: to as RefundDestination } : {}),
        });
        return reply.code(201).send(refund);
      },
    );
  }

  app.get(
    '/v1/payments/:id/refunds',
    {
      schema: {
        tags: ['payments'],
        summary: 'The refunds of one payment, oldest first (staff)',
        params: PaymentParams,
        response: { 200: Type.Object({ items: Type.Array(Refund) }), ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return { items: await deps.refunds.list(request.params.id, tenantFilter(principal)) };
    },
  );

  app.post(
    '/v1/refunds/:id/complete',
    {
      schema: {
        tags: ['payments'],
        summary: 'Staff handed a refund that was due back to the customer (admin, customer_service)',
        params: PaymentParams,
        body: Type.Optional(
          Type.Object(
            { note: Type.Optional(Type.String({ maxLength: 500 })) },
            { additionalProperties: false },
          ),
        ),
        response: { 200: Refund, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await request.staff(REFUNDERS);
      return deps.refunds.complete(
        request.params.id,
        tenantFilter(principal),
        principal.actor,
        request.body?.note,
      );
    },
  );

  app.post(
    '/v1/refunds/:id/settle',
    {
      schema: {
        tags: ['payments'],
        summary:
          'Staff settle a PENDING provider refund by what the provider’s dashboard shows (admin, customer_service)',
        params: PaymentParams,
        body: Type.Object(
          {
            outcome: Type.String({
              enum: ['succeeded', 'failed'],
              description: 'succeeded: the provider made it; failed: it gave nothing back',
            }),
            note: Type.String({
              minLength: 1,
              maxLength: 500,
              pattern: '\\S',
              description: 'what the dashboard shows',
            }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Refund, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await request.staff(REFUNDERS);
      const { outcome, note } = request.body;
      return deps.refunds.settleByStaff(request.params.id, tenantFilter(principal), {
        outcome: outcome as 'succeeded' | 'failed',
        note,
        actor: principal.actor,
      });
    },
  );

  app.get(
    '/v1/payments',
    {
      schema: {
        tags: ['payments'],
        summary: 'Payments of every channel, newest first (staff)',
        querystring: Type.Object(
          {
            purpose: Type.Optional(Type.String({ enum: [...PAYMENT_PURPOSES] })),
            status: Type.Optional(Type.String({ enum: [...PAYMENT_STATUSES] })),
            method: Type.Optional(Type.String({ enum: [...PAYMENT_METHODS] })),
            siteId: Type.Optional(EntityId),
            machineId: Type.Optional(EntityId),
            orderId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            cursor: Type.Optional(Cursor),
            limit: Type.Optional(Limit),
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(Payment), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      const { limit, ...filter } = request.query;
      return deps.payments.list({ ...filter, tenantId: tenantFilter(principal), limit: limit ?? 50 });
    },
  );

  app.get(
    '/v1/payments/:id',
    {
      schema: {
        tags: ['payments'],
        summary: 'One payment (staff)',
        params: PaymentParams,
        response: { 200: Payment, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return deps.payments.get(request.params.id, tenantFilter(principal));
    },
  );

  app.get(
    '/v1/payment-events/:provider/:providerPaymentId',
    {
      schema: {
        tags: ['payments'],
        summary: 'What Kioskhub did with one provider payment',
        params: Type.Object({
          provider: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_-]+$' }),
          providerPaymentId: Type.String({ minLength: 1, maxLength: 128 }),
        }),
        response: {
          200: Type.Object({
            status: Type.String({ enum: ['PROCESSED', 'IGNORED', 'REJECTED'] }),
            reason: Type.Union([Type.String(), Type.Null()]),
            machineId: Type.Union([Type.String(), Type.Null()]),
            orderId: Type.Union([Type.String(), Type.Null()]),
            dispatch: Type.String(),
            processedAt: Type.String(),
          }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return deps.payments.getEvent(
        request.params.provider,
        request.params.providerPaymentId,
        tenantFilter(principal),
      );
    },
  );
}
