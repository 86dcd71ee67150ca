import { Type, type TSchema } from '@sinclair/typebox';
import type { Executor } from '../../platform/db/database.js';
import { forbidden } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import {
  actingExistingTenant,
  actingTenant,
  requireAdmin,
  requireStaff,
  tenantFilter,
  type Authenticator,
} from '../../platform/http/auth.js';
import { Currency, EntityId, errors, OnePage, OrderNumber, Sku } from '../../platform/http/schemas.js';
import { OrderSchema } from '../orders/orders.routes.js';
import type { CatalogService } from './catalog.service.js';

const SiteSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  name: Type.String(),
  currency: Type.String(),
  printQueueOpen: Type.Boolean(),
  address: Type.Union([Type.String(), Type.Null()]),
  phone: Type.Union([Type.String(), Type.Null()]),
  taxRateBp: Type.Integer(),
  adHocCashOrders: Type.Boolean({
    description: 'cash sessions may open for order numbers the server has not seen',
  }),
  keylessCashCancel: Type.Boolean({
    description: 'the cash reader may cancel this site’s cash sessions without a key under /sites/<id>/',
  }),
  timeZone: Type.String({ description: 'IANA time zone; a water customer’s day here is this zone’s day' }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
const ProductSchema = Type.Object({
  sku: Type.String(),
  tenantId: Type.String(),
  siteId: Type.String(),
  name: Type.String(),
  priceMinor: Type.Integer(),
  stock: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
const Name = Type.String({ minLength: 1, maxLength: 200 });
const Price = Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'minor units' });
const Stock = Type.Integer({ minimum: 0, maximum: 10_000_000 });
const TaxRate = Type.Integer({
  minimum: 0,
  maximum: 5000,
  description: 'VAT included in prices, basis points (1200 = 12%)',
});
const siteFields = {
  name: Name,
  currency: Type.Optional(Currency),
  printQueueOpen: Type.Optional(Type.Boolean()),
  address: Type.Optional(Type.String({ maxLength: 300 })),
  phone: Type.Optional(Type.String({ maxLength: 50 })),
  taxRateBp: Type.Optional(TaxRate),
  adHocCashOrders: Type.Optional(
    Type.Boolean({
      description:
        'let /api/cash-payment/init open a session for an unknown order number ' +
        '(staff or a kiosk of this site); default false',
    }),
  ),
  timeZone: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 64,
      description:
        'IANA time zone of the site (default UTC): the day a water customer’s daily limit counts ' +
        'at this site’s kiosks',
    }),
  ),
  keylessCashCancel: Type.Optional(
    Type.Boolean({
      description:
        'accept POST /sites/<id>/api/cash-payment/cancel/<orderNumber> without credentials for this ' +
        'site’s own sessions (the legacy cash reader sends no key there); default false. ' +
        'Anyone who can reach the server and knows an open order number can then cancel its session.',
    }),
  ),
};

/**
 * Settings another module keeps on a site (the cafe's tips, bank account…): extra optional fields
 * of `PATCH /v1/sites/:id`, checked before anything is written and saved in the same transaction.
 */
export interface SiteExtension {
  /** The answer carries the module's settings under this key. */
  key: string;
  fields: Record<string, TSchema>;
  view: TSchema;
  check(values: Record<string, unknown>): Record<string, unknown>;
  apply(
    ex: Executor,
    tenantId: string,
    siteId: string,
    values: Record<string, unknown>,
    actor: string,
  ): Promise<unknown>;
}

export function catalogRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    catalog: CatalogService;
    warnOpenSite(siteId: string): void;
    /** A site now accepts the cash reader's key-less cancel (keylessCashCancel). */
    warnKeylessCashCancel(siteId: string): void;
    /** Whether a tenant exists (ADMIN_TOKEN creating a site in a tenant it names). */
    tenantExists(tenantId: string): Promise<boolean>;
    siteExtension?: SiteExtension;
  },
): void {
  const { auth, catalog } = deps;

  app.post(
    '/v1/sites',
    {
      schema: {
        tags: ['sites'],
        summary: 'Create a site',
        body: Type.Object(
          { id: EntityId, ...siteFields, tenantId: Type.Optional(EntityId) },
          { additionalProperties: false },
        ),
        response: { 201: SiteSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const { tenantId, ...input } = request.body;
      const acting = await actingExistingTenant(principal, tenantId, deps.tenantExists);
      const site = await catalog.createSite(acting, input, principal.actor);
      if (site.printQueueOpen) deps.warnOpenSite(site.id);
      if (site.keylessCashCancel) deps.warnKeylessCashCancel(site.id);
      return reply.code(201).send(site);
    },
  );

  app.get(
    '/v1/sites',
    {
      schema: {
        tags: ['sites'],
        summary: 'Sites of the caller’s tenant',
        response: {
          200: OnePage(SiteSchema),
          ...errors(401, 403),
        },
      },
    },
    async (request) => {
      const principal = await request.staff();
      return { items: await catalog.listSites(tenantFilter(principal)), nextCursor: null };
    },
  );

  app.patch(
    '/v1/sites/:id',
    {
      schema: {
        tags: ['sites'],
        summary: 'Change a site',
        params: Type.Object({ id: EntityId }),
        querystring: Type.Object({ tenantId: Type.Optional(EntityId) }, { additionalProperties: false }),
        body: Type.Object(
          {
            ...siteFields,
            name: Type.Optional(Name),
            address: Type.Optional(Type.Union([Type.String({ maxLength: 300 }), Type.Null()])),
            phone: Type.Optional(Type.Union([Type.String({ maxLength: 50 }), Type.Null()])),
            ...(deps.siteExtension?.fields ?? {}),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: {
          200: deps.siteExtension
            ? Type.Composite([
                SiteSchema,
                Type.Object({ [deps.siteExtension.key]: Type.Optional(deps.siteExtension.view) }),
              ])
            : SiteSchema,
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const ext = deps.siteExtension;
      const own: Record<string, unknown> = {};
      const extra: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(request.body)) (ext && k in ext.fields ? extra : own)[k] = v;
      const checked = ext && Object.keys(extra).length > 0 ? ext.check(extra) : undefined;
      const tenantId = actingTenant(principal, request.query.tenantId);
      let extView: unknown;
      const site = await catalog.updateSite(
        tenantId,
        request.params.id,
        own as typeof request.body,
        principal.actor,
        checked && ext
          ? async (tx) => {
              extView = await ext.apply(tx, tenantId, request.params.id, checked, principal.actor);
            }
          : undefined,
      );
      if (request.body.printQueueOpen) deps.warnOpenSite(site.id);
      if (request.body.keylessCashCancel) deps.warnKeylessCashCancel(site.id);
      if (ext && extView !== undefined) return { ...site, [ext.key]: extView };
      return site;
    },
  );

  app.post(
    '/v1/products',
    {
      schema: {
        tags: ['products'],
        summary: 'Add a product (stock absent: not tracked)',
        body: Type.Object(
          {
            sku: Sku,
            name: Name,
            priceMinor: Price,
            siteId: Type.Optional(EntityId),
            stock: Type.Optional(Stock),
            tenantId: Type.Optional(EntityId),
          },
          { additionalProperties: false },
        ),
        response: { 201: ProductSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const { tenantId, ...input } = request.body;
      return reply
        .code(201)
        .send(await catalog.createProduct(actingTenant(principal, tenantId), input, principal.actor));
    },
  );

  app.get(
    '/v1/products',
    {
      schema: {
        tags: ['products'],
        summary: 'The catalog (a kiosk key sees its own site’s products)',
        querystring: Type.Object({ siteId: Type.Optional(EntityId) }, { additionalProperties: false }),
        response: {
          200: OnePage(ProductSchema),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      if (principal.kind === 'machine')
        return { items: await catalog.listProducts(principal.tenantId, principal.siteId), nextCursor: null };
      requireStaff(principal);
      return {
        items: await catalog.listProducts(tenantFilter(principal), request.query.siteId),
        nextCursor: null,
      };
    },
  );

  app.patch(
    '/v1/products/:sku',
    {
      schema: {
        tags: ['products'],
        summary: 'Change price, name or stock (stock null: stop tracking)',
        params: Type.Object({ sku: Sku }),
        querystring: Type.Object({ tenantId: Type.Optional(EntityId) }, { additionalProperties: false }),
        body: Type.Object(
          {
            priceMinor: Type.Optional(Price),
            stock: Type.Optional(Type.Union([Stock, Type.Null()])),
            name: Type.Optional(Name),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: ProductSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      return catalog.updateProduct(
        actingTenant(principal, request.query.tenantId),
        request.params.sku,
        request.body,
        principal.actor,
      );
    },
  );

  app.post(
    '/v1/orders',
    {
      schema: {
        tags: ['orders'],
        summary: 'A kiosk order priced from the catalog (kiosk key, or staff)',
        body: Type.Object(
          {
            orderNumber: Type.Optional(OrderNumber),
            items: Type.Array(
              Type.Object(
                { sku: Sku, qty: Type.Integer({ minimum: 1, maximum: 1000 }) },
                { additionalProperties: false },
              ),
              { minItems: 1, maxItems: 100 },
            ),
            customerName: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
            siteId: Type.Optional(EntityId),
          },
          { additionalProperties: false },
        ),
        response: { 201: OrderSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = await auth.fromHeaders(request.headers);
      const b = request.body;
      let scope: { tenantId: string; siteId: string; machineId: string | null };
      if (principal.kind === 'machine') {
        // The contract's caller is a kiosk; a printer's or vending machine's key orders nothing.
        if (principal.machineKind !== 'kiosk')
          throw forbidden(
            `machine ${principal.machineId} is a ${principal.machineKind}: orders are made with a kiosk's key or by staff`,
          );
        if (b.siteId !== undefined && b.siteId !== principal.siteId)
          throw forbidden(`this key belongs to site ${principal.siteId}`);
        scope = { tenantId: principal.tenantId, siteId: principal.siteId, machineId: principal.machineId };
      } else {
        requireStaff(principal);
        scope = { tenantId: actingTenant(principal), siteId: b.siteId ?? 'default', machineId: null };
      }
      const order = await catalog.createKioskOrder({
        ...scope,
        items: b.items,
        ...(b.orderNumber ? { orderNumber: b.orderNumber } : {}),
        ...(b.customerName ? { customerName: b.customerName } : {}),
        actor: principal.actor,
      });
      return reply.code(201).send(order);
    },
  );
}
