import { ORDER_STATUSES } from '@kioskhub/protocol';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { Cursor, EntityId, errors, IsoTime, Limit, OnePage, Page } from '../../platform/http/schemas.js';
import { validation } from '../../platform/errors.js';
import type { OrdersService } from './orders.service.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
export const OrderSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  machineId: Nullable(Type.String()),
  siteId: Nullable(Type.String()),
  orderNumber: Nullable(Type.String()),
  amount: Type.Integer({ description: 'minor units' }),
  currency: Type.String(),
  source: Type.String(),
  provider: Nullable(Type.String()),
  providerPaymentId: Nullable(Type.String()),
  providerQrCodeId: Nullable(Type.String()),
  paidAt: Nullable(Type.String()),
  dispatchPending: Type.Boolean(),
  status: Type.String({ enum: [...ORDER_STATUSES] }),
  failureCode: Nullable(Type.String()),
  customerName: Nullable(Type.String()),
  items: Type.Optional(
    Type.Array(Type.Object({ sku: Type.String(), qty: Type.Integer() }, { additionalProperties: true })),
  ),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

/** Filters of `GET /v1/orders`, shared with the CSV export. `from` inclusive, `to` exclusive (createdAt). */
export const OrderListQuery = Type.Object(
  {
    machineId: Type.Optional(EntityId),
    siteId: Type.Optional(EntityId),
    status: Type.Optional(Type.String({ enum: [...ORDER_STATUSES] })),
    from: Type.Optional(IsoTime),
    to: Type.Optional(IsoTime),
    limit: Limit,
    cursor: Type.Optional(Cursor),
  },
  { additionalProperties: false },
);

/**
 * Drops absent filters and normalises times to UTC ISO text (the stored form). `from` must come
 * before `to`: a range the other way round is an error, never an empty list or export.
 */
export function orderListFilter(q: Static<typeof OrderListQuery>) {
  const iso = (t: string) => new Date(t).toISOString();
  if (q.from !== undefined && q.to !== undefined && Date.parse(q.from) >= Date.parse(q.to))
    throw validation('from must be before to', { from: q.from, to: q.to });
  return {
    limit: q.limit,
    ...(q.machineId ? { machineId: q.machineId } : {}),
    ...(q.siteId ? { siteId: q.siteId } : {}),
    ...(q.status ? { status: q.status } : {}),
    ...(q.from ? { from: iso(q.from) } : {}),
    ...(q.to ? { to: iso(q.to) } : {}),
    ...(q.cursor ? { cursor: q.cursor } : {}),
  };
}

export function ordersRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; orders: OrdersService },
): void {
  const { orders } = deps;
  const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

  app.get(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'Orders of the caller’s tenant, newest first',
        querystring: OrderListQuery,
        response: { 200: Page(OrderSchema), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return orders.list({ tenantId: tenantFilter(principal), ...orderListFilter(request.query) });
    },
  );

  app.get(
    '/v1/orders/:id',
    {
      schema: {
        tags: ['orders'],
        summary: 'One order',
        params: IdParams,
        response: { 200: OrderSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return orders.get(request.params.id, tenantFilter(principal));
    },
  );

  app.get(
    '/v1/orders/:id/timeline',
    {
      schema: {
        tags: ['orders'],
        summary: 'What happened to an order, oldest first (payment received, command sent, accepted, done…)',
        params: IdParams,
        response: {
          200: OnePage(
            Type.Object({
              type: Type.String(),
              actor: Type.String(),
              at: Type.String(),
              detail: Type.Unknown(),
            }),
          ),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return { items: await orders.timeline(request.params.id, tenantFilter(principal)), nextCursor: null };
    },
  );
}
