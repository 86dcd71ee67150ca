// Staff routes of the cafe (`/v1/…`): table QR codes and their rotation, the printable QR sheet,
// table servers, menu settings, the kitchen's statuses, the tips report and the staff overview.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import { actingTenant, requireAdmin, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { EntityId, errors, expectNoBody, IsoTime, Sku } from '../../platform/http/schemas.js';
import { validation } from '../../platform/errors.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import type { CafeOrders } from './cafe-orders.js';
import { TimeZoneParam } from '../reporting/local-buckets.js';
import type { TipsQuery } from '../reporting/cafe-tips.js';
import type { CafeTables } from './cafe-tables.js';
import type { createCafeOverview } from './cafe-overview.js';
import { CafeOrderSchema, CafeSettingsSchema, KitchenBody, Nullable, Open } from './cafe.schema.js';

const KITCHEN = ['admin', 'customer_service', 'staff'] as const;
const TenantQuery = Type.Object({ tenantId: Type.Optional(EntityId) }, { additionalProperties: false });
const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function cafeStaffRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    tables: CafeTables;
    cafeOrders: CafeOrders;
    overview: ReturnType<typeof createCafeOverview>;
    catalog: Pick<CatalogService, 'getSite'>;
    publicUrl: (request: FastifyRequest) => string;
  },
): void {
  const { tables, cafeOrders } = deps;

  app.get(
    '/v1/machines/:id/table-qr',
    {
      schema: {
        tags: ['cafe'],
        summary: 'A table’s QR code (PNG) opening the guest page at /t/<tableToken>',
        params: Type.Object({ id: EntityId }),
        response: { 200: Type.Any({ description: 'image/png' }), ...errors(401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = await request.staff();
      const png = await tables.qrPng(request.params.id, tenantFilter(principal), deps.publicUrl(request));
      return reply.header('cache-control', 'no-store').type('image/png').send(png);
    },
  );

  app.get(
    '/v1/machines/:id/table-link',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The link (and table token) a table’s QR code encodes',
        params: Type.Object({ id: EntityId }),
        response: {
          200: Type.Object({ tableId: Type.String(), url: Type.String(), token: Type.String() }),
          ...errors(401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      const url = await tables.link(request.params.id, tenantFilter(principal), deps.publicUrl(request));
      return { tableId: request.params.id, url, token: url.slice(url.lastIndexOf('/') + 1) };
    },
  );

  app.post(
    '/v1/machines/:id/table-qr/rotate',
    {
      schema: {
        tags: ['cafe'],
        summary: 'New QR for a table: every earlier link of that table stops working (audited)',
        params: Type.Object({ id: EntityId }),
        response: {
          200: Type.Object({ tableId: Type.String(), version: Type.Integer(), url: Type.String() }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      expectNoBody(request.body);
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const tenant = tenantFilter(principal);
      const { version } = await tables.rotate(request.params.id, tenant, principal.actor);
      return {
        tableId: request.params.id,
        version,
        url: await tables.link(request.params.id, tenant, deps.publicUrl(request)),
      };
    },
  );

  app.get(
    '/v1/sites/:id/table-qr-sheet',
    {
      schema: {
        tags: ['cafe'],
        summary: 'A printable page with the QR code of every table of a site (HTML)',
        params: Type.Object({ id: EntityId }),
        querystring: TenantQuery,
        response: { 200: Type.String({ description: 'text/html' }), ...errors(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const principal = await request.staff();
      const tenantId = actingTenant(principal, request.query.tenantId);
      const site = await deps.catalog.getSite(tenantId, request.params.id);
      const list = await tables.siteTables(tenantId, site.id, deps.publicUrl(request));
      const cards = await Promise.all(
        list.map(async (t) => {
          const img = await QRCode.toDataURL(t.link!, { errorCorrectionLevel: 'M', margin: 1, width: 360 });
          return `<figure><img src="${img}" alt="QR code of table ${escapeHtml(t.name)}"><figcaption><strong>${escapeHtml(t.name)}</strong><span>Scan to see the menu and order</span></figcaption></figure>`;
        }),
      );
      const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Table QR codes: ${escapeHtml(site.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:0}h1{font-size:1.2rem;margin:1rem}main{display:grid;grid-template-columns:repeat(3,1fr);gap:8mm;padding:8mm}
figure{margin:0;border:1px dashed #999;padding:6mm;text-align:center;break-inside:avoid}img{width:100%;max-width:60mm}figcaption{display:flex;flex-direction:column;gap:2mm}
@media print{h1{display:none}@page{size:A4;margin:10mm}}</style></head><body><h1>${escapeHtml(site.name)}: ${list.length} table${list.length === 1 ? '' : 's'}</h1>
<main>${cards.join('\n') || '<p>No tables yet: add machines of kind "table" to this site.</p>'}</main></body></html>`;
      return reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
    },
  );

  app.patch(
    '/v1/cafe/tables/:id',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Assign a table’s server (tips go to them when the site splits tips by server)',
        params: Type.Object({ id: EntityId }),
        body: Type.Object({ serverUserId: Nullable(EntityId) }, { additionalProperties: false }),
        response: {
          200: Open({ id: Type.String(), serverUserId: Nullable(Type.String()) }),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireAdmin(principal);
      return tables.setServer(
        request.params.id,
        tenantFilter(principal),
        request.body.serverUserId,
        principal.actor,
      );
    },
  );

  app.get(
    '/v1/cafe/sites/:id/settings',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The cafe settings of a site (change them with PATCH /v1/sites/:id)',
        params: Type.Object({ id: EntityId }),
        querystring: TenantQuery,
        response: { 200: CafeSettingsSchema, ...errors(401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      const tenantId = actingTenant(principal, request.query.tenantId);
      await deps.catalog.getSite(tenantId, request.params.id);
      return tables.settings(tenantId, request.params.id);
    },
  );

  app.patch(
    '/v1/cafe/menu/:sku',
    {
      schema: {
        tags: ['cafe'],
        summary: 'How a product shows on the cafe menu: category, description, available (audited)',
        params: Type.Object({ sku: Sku }),
        querystring: TenantQuery,
        body: Type.Object(
          {
            category: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 80 }))),
            description: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
            available: Type.Optional(Type.Boolean()),
            sort: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: {
          200: Open({ sku: Type.String(), available: Type.Boolean() }),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const principal = await request.staff(KITCHEN);
      return tables.setMenuItem(
        actingTenant(principal, request.query.tenantId),
        request.params.sku,
        request.body,
        principal.actor,
      );
    },
  );

  app.post(
    '/v1/orders/:id/kitchen-status',
    {
      schema: {
        tags: ['cafe'],
        summary: 'Move a table order through the kitchen: PREPARING, READY, SERVED',
        params: Type.Object({ id: EntityId }),
        body: KitchenBody,
        response: { 200: CafeOrderSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await request.staff(KITCHEN);
      const status = request.body.status as 'PREPARING' | 'READY' | 'SERVED';
      return {
        ...(await cafeOrders.kitchenStatus(
          request.params.id,
          tenantFilter(principal),
          status,
          principal.actor,
        )),
      };
    },
  );

  app.get(
    '/v1/cafe/tips',
    {
      schema: {
        tags: ['cafe'],
        summary:
          'Tips of paid table orders per day (of `timeZone`, default UTC) and split (pool, or the table’s server)',
        querystring: Type.Object(
          {
            siteId: Type.Optional(EntityId),
            from: IsoTime,
            to: IsoTime,
            tenantId: Type.Optional(EntityId),
            timeZone: Type.Optional(TimeZoneParam),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                day: Type.String(),
                siteId: Type.String(),
                split: Type.String(),
                serverUserId: Nullable(Type.String()),
                currency: Type.String(),
                tipMinor: Type.Integer(),
                orders: Type.Integer(),
              }),
            ),
            totals: Type.Array(Type.Object({ currency: Type.String(), tipMinor: Type.Integer() })),
            timeZone: Type.Optional(Type.String()),
          }),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const principal = await request.staff(['admin', 'customer_service']);
      const { from, to, siteId, timeZone } = request.query;
      if (Date.parse(from) >= Date.parse(to)) throw validation('from must be before to');
      const tenant =
        principal.kind === 'admin' && request.query.tenantId
          ? request.query.tenantId
          : tenantFilter(principal);
      const iso = (t: string) => new Date(t).toISOString();
      const q: TipsQuery = {
        from: iso(from),
        to: iso(to),
        ...(siteId ? { siteId } : {}),
        ...(timeZone !== undefined ? { timeZone } : {}),
      };
      return cafeOrders.tips(tenant, q);
    },
  );

  app.get(
    '/v1/cafe/sites/:id/overview',
    {
      schema: {
        tags: ['cafe'],
        summary: 'The staff view: tables with open orders, cash to collect, transfers to confirm, refunds',
        params: Type.Object({ id: EntityId }),
        querystring: TenantQuery,
        response: {
          200: Open({ siteId: Type.String(), tables: Type.Array(Open({})) }),
          ...errors(401, 403, 404),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      const tenantId = actingTenant(principal, request.query.tenantId);
      await deps.catalog.getSite(tenantId, request.params.id);
      return deps.overview.site(tenantId, request.params.id);
    },
  );
}
