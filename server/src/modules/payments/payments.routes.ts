import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireStaff, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { Cursor, EntityId, errors, Limit, Page } from '../../platform/http/schemas.js';
import type { PaymentsService } from './payments.service.js';
import { PAYMENT_METHODS, PAYMENT_PURPOSES, PAYMENT_STATUSES } from './settlement.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const Payment = Type.Object(
  {
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
  },
);

export function paymentsRoutes(app: FastifyTypebox, deps: { auth: Authenticator; payments: PaymentsService }): void {
  app.get('/v1/payments', {
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
  }, async (request) => {
    const principal = await deps.auth.fromHeaders(request.headers);
    requireStaff(principal);
    const { limit, ...filter } = request.query;
    return deps.payments.list({ ...filter, tenantId: tenantFilter(principal), limit: limit ?? 50 });
  });

  app.get('/v1/payments/:id', {
    schema: {
      tags: ['payments'],
      summary: 'One payment (staff)',
      params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
      response: { 200: Payment, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => {
    const principal = await deps.auth.fromHeaders(request.headers);
    requireStaff(principal);
    return deps.payments.get(request.params.id, tenantFilter(principal));
  });

  app.get('/v1/payment-events/:provider/:providerPaymentId', {
    schema: {
      tags: ['payments'],
      summary: 'What Kioskhub did with one provider payment',
      params: Type.Object({ provider: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_-]+$' }), providerPaymentId: Type.String({ minLength: 1, maxLength: 128 }) }),
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
  }, async (request) => {
    const principal = await deps.auth.fromHeaders(request.headers);
    requireStaff(principal);
    return deps.payments.getEvent(request.params.provider, request.params.providerPaymentId, tenantFilter(principal));
  });
}
