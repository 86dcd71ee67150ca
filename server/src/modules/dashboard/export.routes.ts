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
//
// `POST /v1/orders/export-links` makes a one-time link to the same export (export-links.ts): the
// dashboard lets the browser follow it, so the file streams to disk instead of into the page's
// memory. `GET …/export.csv?download=<token>` needs no Authorization header: the link carries the
// caller's scope and filters, and is spent by that request.
import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { OrderView } from '@kioskhub/protocol';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import {
  STAFF_ROLES,
  tenantFilter,
  type Authenticator,
  type StaffPrincipal,
} from '../../platform/http/auth.js';
import { EntityId, errors, IsoTime } from '../../platform/http/schemas.js';
import { validation } from '../../platform/errors.js';
import { orderListFilter } from '../orders/orders.routes.js';
import type { OrdersService } from '../orders/orders.service.js';
import { ORDER_STATUSES } from '@kioskhub/protocol';
import { orderCsvHeader, orderCsvRow } from './csv.js';
import type { ExportLinkFilters, ExportLinks } from './export-links.js';

const PAGE = 200;

/** Every staff role may export its tenant's orders (ADMIN_TOKEN: every tenant's). */
export const EXPORT_ROLES = STAFF_ROLES;

const filterFields = {
  machineId: Type.Optional(EntityId),
  siteId: Type.Optional(EntityId),
  status: Type.Optional(Type.String({ enum: [...ORDER_STATUSES] })),
  from: Type.Optional(IsoTime),
  to: Type.Optional(IsoTime),
};

/** The export's filters: its query string, and the body of a link request. */
const ExportFilters = Type.Object(filterFields, { additionalProperties: false });

const ExportQuery = Type.Object(
  {
    ...filterFields,
    download: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description:
          'a one-time link token from POST /v1/orders/export-links (then no Authorization header and no other field)',
      }),
    ),
  },
  { additionalProperties: false },
);

const ExportLink = Type.Object({
  url: Type.String({ description: 'relative: /v1/orders/export.csv?download=<token>' }),
  expiresAt: IsoTime,
});

export function exportRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    orders: Pick<OrdersService, 'list'>;
    links: ExportLinks;
    /** EXPORT_MAX_ROWS: more matching rows than this and the download is cut off. */
    maxRows: number;
  },
): void {
  app.post(
    '/v1/orders/export-links',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'A one-time link to GET /v1/orders/export.csv with these filters: works once, within 60 s, without a bearer header',
        body: ExportFilters,
        response: { 201: ExportLink, ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const principal = await request.staff(EXPORT_ROLES);
      // Settled now as the export would (times read), so a link never fails on its filters.
      orderListFilter({ ...request.body, limit: PAGE });
      const { token, expiresAt } = await deps.links.create(principal, request.body);
      return reply
        .code(201)
        .header('cache-control', 'no-store')
        .send({ url: `/v1/orders/export.csv?download=${token}`, expiresAt });
    },
  );

  app.get(
    '/v1/orders/export.csv',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'The filtered orders list as CSV (same filters as GET /v1/orders), or the export a one-time link names (download)',
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
      const { download, ...query } = request.query;
      let principal: StaffPrincipal;
      let filters: ExportLinkFilters = query;
      if (download !== undefined) {
        // The link is the credential and carries the filters: nothing else may come with it.
        if (Object.keys(query).length > 0)
          throw validation('download takes no other query field: the link carries its own filters');
        // A HEAD looks without spending the link.
        ({ principal, filters } = await deps.links.redeem(download, { spend: request.method !== 'HEAD' }));
      } else {
        principal = await request.staff(EXPORT_ROLES);
      }
      const filter = {
        tenantId: tenantFilter(principal),
        ...orderListFilter({ ...filters, limit: PAGE }),
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
