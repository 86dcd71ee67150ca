import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { actingTenant, requireAdmin, STAFF_ROLES, type Authenticator } from '../../platform/http/auth.js';
import { loginRateLimit } from '../../platform/http/rate-limit.js';
import { EntityId, errors } from '../../platform/http/schemas.js';
import type { UsersService } from './users.service.js';

const Role = Type.Union(STAFF_ROLES.map((r) => Type.Literal(r)));
const User = Type.Object({ id: Type.String(), email: Type.String(), role: Type.String(), tenantId: Type.String(), createdAt: Type.String() });

export function usersRoutes(app: FastifyTypebox, deps: { auth: Authenticator; users: UsersService }): void {
  app.post('/v1/users', {
    schema: {
      tags: ['auth'],
      summary: 'Create a staff user (an admin of that tenant, or ADMIN_TOKEN)',
      body: Type.Object(
        {
          email: Type.String({ format: 'email', maxLength: 254 }),
          password: Type.String({ minLength: 8, maxLength: 200 }),
          role: Role,
          tenantId: Type.Optional(EntityId),
        },
        { additionalProperties: false },
      ),
      response: { 201: User, ...errors(400, 401, 403, 404, 409) },
    },
  }, async (request, reply) => {
    const principal = await deps.auth.fromHeaders(request.headers);
    requireAdmin(principal);
    const tenantId = actingTenant(principal, request.body.tenantId);
    const user = await deps.users.create({ ...request.body, tenantId }, principal.actor);
    return reply.code(201).send(user);
  });

  app.post('/v1/auth/login', {
    config: { rateLimit: loginRateLimit },
    schema: {
      tags: ['auth'],
      summary: 'Staff login: email and password for a JWT',
      body: Type.Object({ email: Type.String({ minLength: 1, maxLength: 254 }), password: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ token: Type.String(), user: User }), ...errors(400, 401, 429) },
    },
  }, async (request) => deps.users.login(request.body.email, request.body.password));

  app.get('/v1/auth/me', {
    schema: { tags: ['auth'], summary: 'Who the presented credential is', response: { 200: Type.Object({ kind: Type.String(), tenantId: Type.Union([Type.String(), Type.Null()]), role: Type.Optional(Type.String()), actor: Type.String() }), ...errors(401) } },
  }, async (request) => {
    const p = await deps.auth.fromHeaders(request.headers);
    return { kind: p.kind, tenantId: p.tenantId, actor: p.actor, ...(p.kind === 'user' ? { role: p.role } : {}) };
  });
}
