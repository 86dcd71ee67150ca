import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireAdminToken, type Authenticator } from '../../platform/http/auth.js';
import { EntityId, errors, OnePage } from '../../platform/http/schemas.js';
import type { TenantsService } from './tenants.service.js';

const Tenant = Type.Object({ id: Type.String(), name: Type.String(), createdAt: Type.String() });

export function tenantsRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; tenants: TenantsService },
): void {
  app.post(
    '/v1/tenants',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Create a tenant (ADMIN_TOKEN only)',
        body: Type.Object(
          { id: EntityId, name: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 201: Tenant, ...errors(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdminToken(principal);
      return reply.code(201).send(await deps.tenants.create(request.body, principal.actor));
    },
  );

  app.get(
    '/v1/tenants',
    {
      schema: {
        tags: ['tenants'],
        summary: 'List tenants (ADMIN_TOKEN only)',
        response: {
          200: OnePage(Tenant),
          ...errors(401, 403),
        },
      },
    },
    async (request) => {
      requireAdminToken(await deps.auth.fromHeaders(request.headers));
      return { items: await deps.tenants.list(), nextCursor: null };
    },
  );
}
