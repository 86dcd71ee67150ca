// Staff users and sign-in: create, list, change role or disable, delete, login, ending this
// sign-in (DELETE /v1/auth/session) and logout (every sign-in of the user).
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import {
  actingTenant,
  requireAdmin,
  STAFF_ROLES,
  readTenant,
  tenantFilter,
  type Authenticator,
} from '../../platform/http/auth.js';
import type { LoginGuard } from '../../platform/http/login-guard.js';
import { Cursor, EntityId, errors, expectNoBody, Limit, Page } from '../../platform/http/schemas.js';
import { AppError, forbidden } from '../../platform/errors.js';
import type { UsersService } from './users.service.js';

const Role = Type.Union(STAFF_ROLES.map((r) => Type.Literal(r)));
const User = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: Type.String(),
  tenantId: Type.String(),
  createdAt: Type.String(),
  disabled: Type.Boolean(),
});
const UserParams = Type.Object({ id: EntityId });

export function usersRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; users: UsersService; loginGuard: LoginGuard },
): void {
  app.post(
    '/v1/users',
    {
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
    },
    async (request, reply) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const tenantId = actingTenant(principal, request.body.tenantId);
      const user = await deps.users.create({ ...request.body, tenantId }, principal.actor);
      return reply.code(201).send(user);
    },
  );

  app.get(
    '/v1/users',
    {
      schema: {
        tags: ['auth'],
        summary:
          'Staff users of your tenant by id, a page at a time (admin; ADMIN_TOKEN sees all, or the tenant it names)',
        querystring: Type.Object(
          { limit: Limit, cursor: Type.Optional(Cursor), tenantId: Type.Optional(EntityId) },
          { additionalProperties: false },
        ),
        response: { 200: Page(User), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const { limit, cursor, tenantId } = request.query;
      return deps.users.list({
        tenantId: readTenant(principal, tenantId),
        limit,
        ...(cursor !== undefined ? { cursor } : {}),
      });
    },
  );

  app.patch(
    '/v1/users/:id',
    {
      schema: {
        tags: ['auth'],
        summary:
          "Change a user's role, disable it or set a new password; its tokens stop working at once. " +
          "A tenant admin may not demote, disable or delete its tenant's last enabled admin (409)",
        params: UserParams,
        body: Type.Object(
          {
            role: Type.Optional(Role),
            disabled: Type.Optional(Type.Boolean()),
            password: Type.Optional(Type.String({ minLength: 8, maxLength: 200 })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: User, ...errors(400, 401, 403, 404, 409, 429) },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      return deps.users.update(request.params.id, tenantFilter(principal), request.body, principal.actor);
    },
  );

  app.delete(
    '/v1/users/:id',
    {
      schema: {
        tags: ['auth'],
        summary: 'Delete a user; its tokens stop working at once',
        params: UserParams,
        response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      expectNoBody(request.body);
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      await deps.users.remove(request.params.id, tenantFilter(principal), principal.actor);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: 'Staff login: email and password for a JWT (12 h)',
        body: Type.Object(
          {
            email: Type.String({ minLength: 1, maxLength: 254 }),
            password: Type.String({ minLength: 1, maxLength: 200 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ token: Type.String(), user: User }), ...errors(400, 401, 429, 503) },
      },
    },
    async (request) => {
      await deps.loginGuard.admit(request.ip, request.body.email);
      return deps.users.login(request.body.email, request.body.password, request.ip);
    },
  );

  app.post(
    '/v1/auth/logout',
    {
      schema: {
        tags: ['auth'],
        summary: 'End every session of the signed-in staff user (all of its tokens)',
        response: { 204: Type.Null(), ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => {
      expectNoBody(request.body);
      const principal = await request.staff();
      if (principal.kind !== 'user')
        throw forbidden('ADMIN_TOKEN has no session to end; change the variable to revoke it');
      await deps.users.logout(principal.userId, principal.actor);
      return reply.code(204).send(null);
    },
  );

  // The session is the one the credential names, so it needs no id; `logout` keeps its meaning.
  app.delete(
    '/v1/auth/session',
    {
      schema: {
        tags: ['auth'],
        summary:
          'Sign out: end this session only (the calling staff token); other sessions of the user keep working',
        response: { 204: Type.Null(), ...errors(400, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      expectNoBody(request.body);
      const principal = await request.staff();
      if (principal.kind !== 'user')
        throw forbidden('ADMIN_TOKEN has no session to end; change the variable to revoke it');
      if (!principal.session)
        throw new AppError(
          'INVALID_STATE',
          'this token was issued before sessions could be ended one by one: POST /v1/auth/logout ' +
            'ends it (with every other session of yours), or it expires 12 h after sign-in',
        );
      await deps.users.endSession(principal.userId, principal.session, principal.actor);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/auth/password',
    {
      schema: {
        tags: ['auth'],
        summary:
          'Change your own password (staff token and the current password): every other session ' +
          'ends, this one gets a new token',
        body: Type.Object(
          {
            currentPassword: Type.String({ minLength: 1, maxLength: 200 }),
            newPassword: Type.String({ minLength: 8, maxLength: 200 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ token: Type.String(), user: User }),
          ...errors(400, 401, 403, 429, 503),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      if (principal.kind !== 'user')
        throw forbidden('ADMIN_TOKEN has no password; change the variable to replace it');
      const { currentPassword, newPassword } = request.body;
      // Guessing the current password with a stolen token counts like sign-in attempts.
      const me = principal.actor.replace(/^user:/, '');
      await deps.loginGuard.admit(request.ip, me);
      return deps.users.changeOwnPassword(
        principal.userId,
        currentPassword,
        newPassword,
        principal.actor,
        request.ip,
      );
    },
  );

  app.get(
    '/v1/auth/me',
    {
      schema: {
        tags: ['auth'],
        summary: 'Who the presented credential is',
        response: {
          200: Type.Object({
            kind: Type.String(),
            tenantId: Type.Union([Type.String(), Type.Null()]),
            role: Type.Optional(Type.String()),
            actor: Type.String(),
          }),
          ...errors(401),
        },
      },
    },
    async (request) => {
      const p = await deps.auth.fromHeaders(request.headers);
      return {
        kind: p.kind,
        tenantId: p.tenantId,
        actor: p.actor,
        ...(p.kind === 'user' ? { role: p.role } : {}),
      };
    },
  );
}
