import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireStaff, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { errors } from '../../platform/http/schemas.js';
import type { PaymentsService } from './payments.service.js';

export function paymentsRoutes(app: FastifyTypebox, deps: { auth: Authenticator; payments: PaymentsService }): void {
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
