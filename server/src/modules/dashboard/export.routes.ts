// `GET /v1/orders/export.csv`: the orders list with the same filters as `GET /v1/orders`, as a
// CSV download, newest first. Streamed: read a page of orders at a time (the same tenant-scoped
// `list` and cursor as the list endpoint) and written out as read, so the download starts at
// once and the server holds about one page whatever the size of the export.
//
// The row cap (EXPORT_MAX_ROWS, default 1,000,000) only stops a runaway export. Its headers leave
// before the last rows are read, so an over-cap export cannot be flagged in a header the way the
// old buffered one was (X-Kioskhub-Truncated), and a marker row would corrupt the file for a
// spreadsheet. Counting first (to set the headers up front) would add a second scan of the filter
// to every export, and orders written between the count and the read would make it wrong. So an
// export that would go over the cap is cut off mid-body, like a database failure: every client
// (browser download, the dashboard's fetch, curl) sees a failed transfer, never a short file
// that looks complete. A download that completes is the whole export. (Fastify logs the cut as
// "response terminated with an error" with the reason.)
import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { OrderView } from '@kioskhub/protocol';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { EntityId, errors, IsoTime } from '../../platform/http/schemas.js';
import { orderListFilter } from '../orders/orders.routes.js';
import type { OrdersService } from '../orders/orders.service.js';
import { ORDER_STATUSES } from '@kioskhub/protocol';
import { orderCsvHeader, orderCsvRow } from './csv.js';

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
  deps: {
    auth: Authenticator;
    orders: Pick<OrdersService, 'list'>;
    /** EXPORT_MAX_ROWS: more matching rows than this and the download is cut off. */
    maxRows: number;
  },
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
      // Credentials and the query (schema, times) are settled here, before any byte is sent.
      const principal = await request.staff();
      const filter = {
        tenantId: tenantFilter(principal),
        ...orderListFilter({ ...request.query, limit: PAGE }),
      };
      const { maxRows } = deps;
      // The first page too: a database that fails at once is a plain error response, not a
      // broken download.
      const first = await deps.orders.list(filter);
      let gone = false;
      reply.raw.once('close', () => {
        gone = !reply.raw.writableFinished;
      });

      async function* csv(): AsyncGenerator<string> {
        let page: { items: OrderView[]; nextCursor: string | null } = first;
        let rows = 0;
        let out = `${orderCsvHeader()}\r\n`;
        for (;;) {
          const items = page.items.slice(0, maxRows - rows);
          rows += items.length;
          for (const order of items) out += `${orderCsvRow(order)}\r\n`;
          yield out;
          out = '';
          if (items.length === page.items.length && page.nextCursor === null) return;
          if (rows >= maxRows)
            throw new Error(
              `orders export over EXPORT_MAX_ROWS (${maxRows}): cut off; narrow it with from/to`,
            );
          // A client gone: read no further page (the stream is also torn down on close).
          if (gone || page.nextCursor === null) return;
          page = await deps.orders.list({ ...filter, cursor: page.nextCursor });
        }
      }

      // The body is documented as a string (text/csv); it is sent as the stream of one. A HEAD
      // gets an empty one: Fastify drains a HEAD's stream to nowhere after answering, which would
      // read every page of the export (its "client gone" check never trips on a finished reply).
      const rows = request.method === 'HEAD' ? [] : csv();
      const body = Readable.from(rows, { highWaterMark: 1 }) as unknown as string;
      const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '-');
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="orders-${stamp}.csv"`)
        .header('cache-control', 'no-store')
        .send(body);
    },
  );
}
