import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireAdmin, requireAdminToken, type Authenticator } from '../../platform/http/auth.js';
import { notFound } from '../../platform/errors.js';
import { EntityId, errors, OnePage } from '../../platform/http/schemas.js';
import type { TenantsService } from './tenants.service.js';

const Tenant = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.String(),
  defaultCountryCode: Type.Union([Type.String(), Type.Null()]),
});

/** A calling code as digits ("254", "1"): 1–3 of them, not starting with 0. */
const CallingCode = Type.String({ pattern: '^[1-9][0-9]{0,2}$' });

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

  app.patch(
    '/v1/tenants/:id',
    {
      schema: {
        tags: ['tenants'],
        summary:
          "Change a tenant's calling code for local phone numbers (ADMIN_TOKEN, or an admin of that tenant)",
        params: Type.Object({ id: EntityId }),
        body: Type.Object(
          {
            defaultCountryCode: Type.Union([CallingCode, Type.Null()], {
              description:
                'digits of the calling code local phone numbers are read with ("254": 0712 345 678 is +254712345678); null: numbers must be international',
            }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Tenant, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      // A tenant admin sees no other tenant: another one is "not found", as everywhere.
      if (principal.kind === 'user' && principal.tenantId !== request.params.id) {
        throw notFound('tenant', request.params.id);
      }
      return deps.tenants.update(request.params.id, request.body, principal.actor);
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
