// The audit log, read-only: who changed what money or access, and when. A tenant's admins read
// their tenant's rows; ADMIN_TOKEN reads every tenant's (and the rows of no tenant). There is no
// route that writes, changes or deletes an audit row.
import { Type } from '@sinclair/typebox';
import { forbidden, validation } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import type { Principal } from '../../platform/http/auth.js';
import type { Db } from '../../platform/db/database.js';
import { Cursor, EntityId, errors, IsoTime, Limit, Page } from '../../platform/http/schemas.js';
import { OPERATOR_TENANT, readableTenants, type SoleTenant } from '../../platform/operator-scope.js';
import { listAudit } from './audit.service.js';

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });

const AuditRecordSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.Union([Type.String(), Type.Null()]),
  actor: Type.String({
    description: '`user:<email>`, `admin-token`, `machine:<id>`, `provider:<name>`, `system`…',
  }),
  action: Type.String({ description: 'what was done: `user.update`, `payment.refund`, …' }),
  subjectType: Type.String(),
  subjectId: Type.String(),
  before: Type.Unknown({ description: 'the state before the change, where recorded (else null)' }),
  after: Type.Unknown({ description: 'the state after the change and its amounts, where recorded' }),
  at: Type.String(),
});

/**
 * The tenants whose rows a caller reads: ADMIN_TOKEN the one it names (`*`: the operator's), else
 * all; staff their own (and the operator's while theirs is the only tenant, operator-scope.ts).
 */
async function auditTenants(
  principal: Principal,
  requested: string | undefined,
  isSole: SoleTenant,
): Promise<readonly string[] | null> {
  if (principal.kind === 'admin') return requested !== undefined ? [requested] : null;
  if (requested !== undefined && requested !== principal.tenantId) {
    throw forbidden('that tenant is not yours: leave tenantId out to read your own');
  }
  return readableTenants(principal, isSole);
}

export function auditRoutes(app: FastifyTypebox, deps: { db: Db; isSoleTenant: SoleTenant }): void {
  app.get(
    '/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'The audit log of the caller’s tenant, newest first (admin; ADMIN_TOKEN sees every tenant)',
        querystring: Type.Object(
          {
            action: Type.Optional(
              Type.String({
                maxLength: 100,
                pattern: '^[A-Za-z0-9_.:-]+\\*?$',
                description: 'an exact action, or a prefix ending in * (`user.*`)',
              }),
            ),
            actor: Type.Optional(Text(320)),
            subjectType: Type.Optional(Text(64)),
            subjectId: Type.Optional(Text(200)),
            from: Type.Optional(IsoTime),
            to: Type.Optional(IsoTime),
            tenantId: Type.Optional(
              Type.Union([EntityId, Type.Literal(OPERATOR_TENANT)], {
                description: "ADMIN_TOKEN only: one tenant's rows, or `*` for the operator's",
              }),
            ),
            cursor: Type.Optional(Cursor),
            limit: Limit,
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(AuditRecordSchema), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = await request.staff(['admin']);
      const q = request.query;
      const iso = (t: string) => new Date(t).toISOString();
      const from = q.from !== undefined ? iso(q.from) : undefined;
      const to = q.to !== undefined ? iso(q.to) : undefined;
      if (from !== undefined && to !== undefined && from >= to) throw validation('from must be before to');
      return listAudit(deps.db, {
        tenants: await auditTenants(principal, q.tenantId, deps.isSoleTenant),
        limit: q.limit,
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(q.subjectType !== undefined ? { subjectType: q.subjectType } : {}),
        ...(q.subjectId !== undefined ? { subjectId: q.subjectId } : {}),
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      });
    },
  );
}
