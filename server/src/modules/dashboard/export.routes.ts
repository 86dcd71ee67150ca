// `GET /v1/orders/export.csv`: the orders list with the same filters as `GET /v1/orders`, as a
// CSV download (newest first, at most EXPORT_MAX_ROWS rows; X-Kioskhub-Truncated says when cut).
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { EntityId, errors, IsoTime } from '../../platform/http/schemas.js';
import { orderListFilter } from '../orders/orders.routes.js';
import type { OrdersService } from '../orders/orders.service.js';
import { ORDER_STATUSES } from '@kioskhub/protocol';
import { orderCsvHeader, orderCsvRow } from './csv.js';

export const EXPORT_MAX_ROWS = 50_000;
const PAGE = 200;

const ExportQuery = Type.Object(
  {
    machineId: Type.Optional(EntityId),
    siteId: Type.Optional(EntityId),
    status: Type.Optional(Type.String({ enum: [...ORDER_STATUSES] })),
    from: Type.Optional(IsoTime),
    to: Type.Optional(IsoTime),
  },
  { additionalProperties: false },
);

export function exportRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; orders: Pick<OrdersService, 'list'> },
): void {
  app.get(
    '/v1/orders/export.csv',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'The filtered orders list as CSV (same filters as GET /v1/orders)',
        querystring: ExportQuery,
        response: {
          200: {
            description: 'text/csv, one row per order, newest first',
            content: { 'text/csv': { schema: Type.String() } },
          },
          ...errors(400, 401, 403),
        },
      },
    },
    async (request, reply) => {
      const principal = await request.staff();
      const filter = {
        tenantId: tenantFilter(principal),
        ...orderListFilter({ ...request.query, limit: PAGE }),
      };
      const lines = [orderCsvHeader()];
      let cursor: string | undefined;
      let truncated = false;
      for (;;) {
        const page = await deps.orders.list({ ...filter, ...(cursor ? { cursor } : {}) });
        for (const order of page.items) lines.push(orderCsvRow(order));
        if (lines.length - 1 >= EXPORT_MAX_ROWS) {
          truncated = page.nextCursor !== null || lines.length - 1 > EXPORT_MAX_ROWS;
          lines.length = EXPORT_MAX_ROWS + 1;
          break;
        }
        if (!page.nextCursor) break;
        cursor = page.nextCursor;
      }
      const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '-');
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="orders-${stamp}.csv"`)
        .header('cache-control', 'no-store')
        .header('x-kioskhub-rows', String(lines.length - 1))
        .header('x-kioskhub-truncated', String(truncated))
        .send(`${lines.join('\r\n')}\r\n`);
    },
  );
}
