// Operator routes for restaurant sites: the kitchen, open cash sessions, unallocated cash,
// print jobs and alerts (all tenant-scoped, staff credentials).
import { Type, type TString } from '@sinclair/typebox';
import { validation } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { actingTenant, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { readableTenants, type SoleTenant } from '../../platform/operator-scope.js';
import {
  Cursor,
  EntityId,
  errors,
  expectNoBody,
  Limit,
  OnePage,
  OpenObject,
  OrderNumber,
  Page,
} from '../../platform/http/schemas.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CashService } from '../cash/cash.service.js';
import type { UnallocatedService } from '../cash/unallocated.js';
import { OrderSchema } from '../orders/orders.routes.js';
import type { PrintingService } from '../printing/printing.service.js';
import type { KitchenService } from './kitchen.service.js';

export function restaurantOpsRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    kitchen: KitchenService;
    cash: CashService;
    unallocated: UnallocatedService;
    printing: PrintingService;
    alerts: AlertsService;
    isSoleTenant: SoleTenant;
  },
): void {
  const Nullable = (t: TString) => Type.Union([t, Type.Null()]);
  const UnallocatedSchema = Type.Object(
    {
      id: Type.String(),
      tenantId: Type.String(),
      siteId: Nullable(Type.String()),
      machineId: Nullable(Type.String()),
      orderNumber: Type.String(),
      amount: Type.Number({ description: 'major units of currency' }),
      amountMinor: Type.Integer(),
      currency: Type.String(),
      reason: Type.String(),
      recordedAt: Type.String(),
      possibleRepeatOf: Nullable(Type.String()),
      status: Type.Union(['OPEN', 'RETURNED', 'APPLIED', 'KEPT', 'VOID'].map((v) => Type.Literal(v))),
      resolvedAt: Nullable(Type.String()),
      resolvedBy: Nullable(Type.String()),
      resolutionNote: Nullable(Type.String()),
      appliedOrderNumber: Nullable(Type.String()),
    },
    { additionalProperties: true },
  );

  app.get(
    '/v1/kitchen/:siteId/orders',
    {
      schema: {
        tags: ['kitchen'],
        summary: 'Paid orders waiting in the kitchen, oldest first, a page at a time',
        description:
          'limit 1–200 (default 200); follow nextCursor until it is null: every waiting order is on a page.',
        params: Type.Object({ siteId: EntityId }),
        querystring: Type.Object(
          {
            tenantId: Type.Optional(EntityId),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 200 })),
            cursor: Type.Optional(Cursor),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Page(OrderSchema),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await request.staff();
      const { limit, cursor } = request.query;
      return deps.kitchen.openOrders(actingTenant(p, request.query.tenantId), request.params.siteId, {
        limit: limit ?? 200,
        ...(cursor !== undefined ? { cursor } : {}),
      });
    },
  );

  app.post(
    '/v1/orders/:id/ready',
    {
      schema: {
        tags: ['kitchen'],
        summary: 'The kitchen finished an order (kitchen_order_ready to its rooms)',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: OrderSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      expectNoBody(request.body);
      const p = await request.staff();
      return deps.kitchen.markReady(request.params.id, tenantFilter(p), p.actor);
    },
  );

  app.get(
    '/v1/cash/sessions',
    {
      schema: {
        tags: ['cash'],
        summary: 'Open cash sessions of a site',
        querystring: Type.Object(
          { siteId: Type.Optional(EntityId), tenantId: Type.Optional(EntityId) },
          { additionalProperties: false },
        ),
        response: {
          200: OnePage(OpenObject),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await request.staff();
      return {
        items: await deps.cash.activeSessions(
          actingTenant(p, request.query.tenantId),
          request.query.siteId ?? 'default',
        ),
        nextCursor: null,
      };
    },
  );

  app.get(
    '/v1/cash/unallocated',
    {
      schema: {
        tags: ['cash'],
        summary: 'Cash that could not be applied to an order (late, unknown order, wrong site)',
        querystring: Type.Object(
          { cursor: Type.Optional(Cursor), limit: Limit },
          { additionalProperties: false },
        ),
        response: {
          200: Page(UnallocatedSchema),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await request.staff();
      const { cursor, limit } = request.query;
      return deps.cash.listUnallocated(tenantFilter(p), { limit, ...(cursor ? { cursor } : {}) });
    },
  );

  app.post(
    '/v1/cash/unallocated/:id/resolve',
    {
      schema: {
        tags: ['cash'],
        summary:
          'Resolve unallocated cash once: returned to the customer, applied to an order, kept, or void',
        description:
          'Roles admin, customer_service and staff. applied needs orderNumber: the amount goes into that ' +
          'order’s open cash session like a bill (it may complete the payment). void: the report was a ' +
          'repeat and the money is not in the machine (see possibleRepeatOf). Audited; on the ledger.',
        params: Type.Object({ id: EntityId }),
        body: Type.Object(
          {
            action: Type.Union([
              Type.Literal('returned'),
              Type.Literal('applied'),
              Type.Literal('kept'),
              Type.Literal('void'),
            ]),
            orderNumber: Type.Optional(OrderNumber),
            note: Type.String({ minLength: 1, maxLength: 500 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: UnallocatedSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const p = await request.staff(['admin', 'customer_service', 'staff']);
      const { action, orderNumber, note } = request.body;
      if (action === 'applied' && orderNumber === undefined)
        throw validation('applied needs the orderNumber');
      if (action !== 'applied' && orderNumber !== undefined) {
        throw validation('orderNumber is only for applied');
      }
      const input = { action, note: note.trim(), ...(orderNumber !== undefined ? { orderNumber } : {}) };
      if (input.note === '') throw validation('note must say what happened');
      return deps.unallocated.resolve(tenantFilter(p), request.params.id, input, p.actor);
    },
  );

  app.get(
    '/v1/print-jobs',
    {
      schema: {
        tags: ['printing'],
        summary: 'Print jobs, newest first',
        querystring: Type.Object(
          {
            status: Type.Optional(
              Type.String({ enum: ['PENDING', 'LEASED', 'PRINTED', 'FAILED', 'CANCELLED'] }),
            ),
            siteId: Type.Optional(EntityId),
            cursor: Type.Optional(Cursor),
            limit: Limit,
          },
          { additionalProperties: false },
        ),
        response: {
          200: Page(OpenObject),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await request.staff();
      const q = request.query;
      return deps.printing.listJobs(tenantFilter(p), {
        limit: q.limit,
        ...(q.status ? { status: q.status } : {}),
        ...(q.siteId ? { siteId: q.siteId } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
    },
  );

  app.post(
    '/v1/print-jobs/:jobId/retry',
    {
      schema: {
        tags: ['printing'],
        summary: 'Queue a FAILED job again',
        params: Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ ok: Type.Literal(true) }), ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      expectNoBody(request.body);
      const p = await request.staff();
      await deps.printing.retry(request.params.jobId, tenantFilter(p));
      return { ok: true as const };
    },
  );

  app.get(
    '/v1/alerts',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Alerts, newest first (?open=true: neither acknowledged nor resolved)',
        querystring: Type.Object(
          { open: Type.Optional(Type.Boolean()), cursor: Type.Optional(Cursor), limit: Limit },
          { additionalProperties: false },
        ),
        response: {
          200: Page(OpenObject),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const p = await request.staff();
      const { open, cursor, limit } = request.query;
      return deps.alerts.list(await readableTenants(p, deps.isSoleTenant), {
        limit,
        ...(open !== undefined ? { open } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
    },
  );

  app.post(
    '/v1/alerts/:id/ack',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Acknowledge an alert',
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ ok: Type.Literal(true) }), ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      expectNoBody(request.body);
      const p = await request.staff();
      await deps.alerts.acknowledge(request.params.id, await readableTenants(p, deps.isSoleTenant), p.actor);
      return { ok: true as const };
    },
  );
}
