// Routes the operator dashboard needs beyond the core API (docs/dashboard.md): the fleet with
// queue counts, a machine's commands and payment QR, QR provisioning, the Needs review list
// and its decisions, charts and print queue counts. Staff credentials, tenant-scoped.
import {
  MACHINE_KINDS,
  type CommandView,
  type FleetMachineView,
  type FleetSummaryView,
  type Page,
  type PrintSummaryView,
  type ProvisionQrView,
  type ReviewOrderView,
  type StatsView,
} from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { requireAdmin, tenantFilter, type Authenticator, type StaffRole } from '../../platform/http/auth.js';
import {
  Cursor,
  EntityId,
  errors,
  IsoTime,
  Limit,
  OnePage,
  Page as PageSchema,
} from '../../platform/http/schemas.js';
import { MachineSchema } from '../machines/machines.routes.js';
import { OrderSchema } from '../orders/orders.routes.js';
import type { FleetService } from './fleet.service.js';
import type { QrService } from './qr.service.js';
import type { ReviewService } from './review.service.js';
import type { StatsService, Zoned } from '../reporting/stats.service.js';
import { TimeZoneParam } from '../reporting/local-buckets.js';

/** Who may settle a review: a refund is a money decision, a dispense can be checked on site. */
export const MARK_DISPENSED_ROLES: readonly StaffRole[] = ['admin', 'customer_service', 'technician'];
export const REFUND_DUE_ROLES: readonly StaffRole[] = ['admin', 'customer_service'];

const MachineStatus = Type.Union(['OFFLINE', 'IDLE', 'BUSY', 'ERROR'].map((s) => Type.Literal(s)));
const FleetMachineSchema = Type.Intersect([
  MachineSchema,
  Type.Object({
    queuedOrders: Type.Integer({
      description: 'paid orders waiting for this machine (commands not yet done)',
    }),
  }),
]);
const ReviewOrderSchema = Type.Intersect([
  OrderSchema,
  Type.Object({
    reviewReason: Type.Union([
      Type.Literal('NO_RESULT'),
      Type.Literal('AMOUNT_MISMATCH'),
      Type.Literal('DISPENSE_FAILED'),
    ]),
  }),
]);
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const CommandSchema = Type.Object({
  id: Type.String(),
  orderId: Type.String(),
  status: Type.String(),
  protocol: Nullable(Type.String()),
  attempts: Type.Integer(),
  queuedAt: Type.String(),
  sentAt: Nullable(Type.String()),
  acceptedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  result: Nullable(Type.String()),
  failureCode: Nullable(Type.String()),
});
const StatsSchema = Type.Object({
  from: Type.String(),
  to: Type.String(),
  bucket: Type.String(),
  revenue: Type.Array(
    Type.Object({
      start: Type.String(),
      currency: Type.String(),
      amountMinor: Type.Integer(),
      orders: Type.Integer(),
      paidMinor: Type.Integer(),
      refundedMinor: Type.Integer(),
    }),
  ),
  ordersByStatus: Type.Array(Type.Object({ status: Type.String(), count: Type.Integer() })),
  dispense: Type.Object({
    success: Type.Integer(),
    failed: Type.Integer(),
    noResult: Type.Integer(),
    rate: Nullable(Type.Number()),
  }),
  machinesOnline: Type.Array(Type.Object({ at: Type.String(), online: Type.Number(), total: Type.Number() })),
  /** The zone of the buckets, when one was asked for. */
  timeZone: Type.Optional(Type.String()),
});
const PrintSummarySchema = Type.Object({
  tenantId: Type.String(),
  siteId: Type.String(),
  pending: Type.Integer(),
  leased: Type.Integer(),
  printed: Type.Integer(),
  failed: Type.Integer(),
});
const ProvisionSchema = Type.Object({
  machineId: Type.String(),
  status: Type.String({ enum: ['provisioned', 'skipped', 'failed'] }),
  qrCodeId: Nullable(Type.String()),
  notes: Type.Array(Type.String()),
  error: Nullable(Type.String()),
});
const ReviewBody = Type.Object(
  { note: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);
/** The body of a review decision is optional: no body counts as `{}`. */
const emptyBodyIsObject = async (request: { body: unknown }) => {
  request.body ??= {};
};
const MachineParams = Type.Object({ id: EntityId });
const OrderParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export interface DashboardRouteDeps {
  auth: Authenticator;
  fleet: FleetService;
  stats: StatsService;
  review: ReviewService;
  qr: QrService;
}

/** The fleet's filters: those of GET /v1/machines, plus `q` (part of the id or name). */
const FleetFilters = Type.Object(
  {
    siteId: Type.Optional(EntityId),
    status: Type.Optional(MachineStatus),
    kind: Type.Optional(Type.Union(MACHINE_KINDS.map((k) => Type.Literal(k)))),
    q: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

export function dashboardRoutes(app: FastifyTypebox, deps: DashboardRouteDeps): void {
  const { auth } = deps;

  app.get(
    '/v1/fleet',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'Machines with their queued orders (filters as GET /v1/machines, plus q: part of the id or name)',
        querystring: Type.Object(
          { ...FleetFilters.properties, limit: Limit, cursor: Type.Optional(Cursor) },
          { additionalProperties: false },
        ),
        response: { 200: PageSchema(FleetMachineSchema), ...errors(400, 401, 403) },
      },
    },
    async (request): Promise<Page<FleetMachineView>> => {
      const p = await request.staff();
      const { siteId, status, kind, q, cursor, limit } = request.query;
      return deps.fleet.list({
        tenantId: tenantFilter(p),
        limit,
        ...(siteId ? { siteId } : {}),
        ...(status ? { status } : {}),
        ...(kind ? { kind } : {}),
        ...(q ? { q } : {}),
        ...(cursor ? { cursor } : {}),
      });
    },
  );

  app.get(
    '/v1/fleet/summary',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'Every machine the fleet filters match, counted: machines, online, queued orders',
        querystring: FleetFilters,
        response: {
          200: Type.Object({
            machines: Type.Integer(),
            online: Type.Integer(),
            queuedOrders: Type.Integer(),
          }),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request): Promise<FleetSummaryView> => {
      const p = await request.staff();
      const { siteId, status, kind, q } = request.query;
      return deps.fleet.summary({
        tenantId: tenantFilter(p),
        ...(siteId ? { siteId } : {}),
        ...(status ? { status } : {}),
        ...(kind ? { kind } : {}),
        ...(q ? { q } : {}),
      });
    },
  );

  app.get(
    '/v1/machines/:id/commands',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'A machine’s most recent commands, newest first',
        params: MachineParams,
        querystring: Type.Object(
          { limit: Type.Integer({ minimum: 1, maximum: 200, default: 20 }) },
          { additionalProperties: false },
        ),
        response: {
          200: OnePage(CommandSchema),
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request): Promise<{ items: CommandView[]; nextCursor: null }> => {
      const p = await request.staff();
      return {
        items: await deps.fleet.recentCommands(request.params.id, tenantFilter(p), request.query.limit),
        nextCursor: null,
      };
    },
  );

  app.get(
    '/v1/machines/:id/qr.png',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'The machine’s payment QR as a PNG: its UPI string when stored, else its short URL or image URL (X-Kioskhub-Qr-Source says which)',
        params: MachineParams,
        response: {
          200: {
            description: 'image/png',
            content: { 'image/png': { schema: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }) } },
          },
          ...errors(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const p = await request.staff();
      const { png, source } = await deps.qr.png(request.params.id, tenantFilter(p));
      return reply
        .header('content-type', 'image/png')
        .header('cache-control', 'private, no-cache')
        .header('x-kioskhub-qr-source', source)
        .send(png);
    },
  );

  app.post(
    '/v1/machines/:id/provision-qr',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'Give the machine a fixed-amount UPI QR (Razorpay, or a local UPI link), as `npm run qr:provision` does',
        params: MachineParams,
        body: Type.Object(
          {
            amountPaise: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
            force: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: ProvisionSchema, ...errors(400, 401, 403, 404, 503) },
      },
    },
    async (request): Promise<ProvisionQrView> => {
      const p = await auth.fromHeaders(request.headers);
      requireAdmin(p);
      return deps.qr.provision(
        request.params.id,
        tenantFilter(p),
        { amountPaise: request.body.amountPaise, force: request.body.force ?? false },
        p.actor,
      );
    },
  );

  app.get(
    '/v1/orders/needs-review',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'Paid orders an operator must decide on: NEEDS_REVIEW (no result), FAILED after payment (amount mismatch, failed dispense)',
        querystring: Type.Object(
          {
            siteId: Type.Optional(EntityId),
            machineId: Type.Optional(EntityId),
            limit: Limit,
            cursor: Type.Optional(Cursor),
          },
          { additionalProperties: false },
        ),
        response: { 200: PageSchema(ReviewOrderSchema), ...errors(400, 401, 403) },
      },
    },
    async (request): Promise<Page<ReviewOrderView>> => {
      const p = await request.staff();
      const { siteId, machineId, cursor, limit } = request.query;
      return deps.review.list({
        tenantId: tenantFilter(p),
        limit,
        ...(siteId ? { siteId } : {}),
        ...(machineId ? { machineId } : {}),
        ...(cursor ? { cursor } : {}),
      });
    },
  );

  app.post(
    '/v1/orders/:id/mark-dispensed',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['dashboard'],
        summary: 'Review decision: the machine did dispense (NEEDS_REVIEW → COMPLETED), audited',
        params: OrderParams,
        body: ReviewBody,
        response: { 200: ReviewOrderSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request): Promise<ReviewOrderView> => {
      const p = await request.staff(MARK_DISPENSED_ROLES);
      return deps.review.markDispensed(request.params.id, tenantFilter(p), p.actor, request.body.note);
    },
  );

  app.post(
    '/v1/orders/:id/refund-due',
    {
      preValidation: emptyBodyIsObject,
      schema: {
        tags: ['dashboard'],
        summary:
          'Review decision: the customer is owed a refund (NEEDS_REVIEW or FAILED → REFUNDED), audited',
        params: OrderParams,
        body: ReviewBody,
        response: { 200: ReviewOrderSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request): Promise<ReviewOrderView> => {
      const p = await request.staff(REFUND_DUE_ROLES);
      return deps.review.refundDue(request.params.id, tenantFilter(p), p.actor, request.body.note);
    },
  );

  app.get(
    '/v1/stats',
    {
      schema: {
        tags: ['dashboard'],
        summary:
          'Charts: revenue by hour or day, orders by status, dispense success rate, machines online (buckets in `timeZone`, default UTC)',
        querystring: Type.Object(
          {
            from: Type.Optional(IsoTime),
            to: Type.Optional(IsoTime),
            bucket: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')])),
            siteId: Type.Optional(EntityId),
            machineId: Type.Optional(EntityId),
            timeZone: Type.Optional(TimeZoneParam),
          },
          { additionalProperties: false },
        ),
        response: { 200: StatsSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request): Promise<Zoned<StatsView>> => {
      const p = await request.staff();
      const { from, to, bucket, siteId, machineId, timeZone } = request.query;
      return deps.stats.stats({
        tenantId: tenantFilter(p),
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
        ...(bucket ? { bucket } : {}),
        ...(siteId ? { siteId } : {}),
        ...(machineId ? { machineId } : {}),
        ...(timeZone !== undefined ? { timeZone } : {}),
      });
    },
  );

  app.get(
    '/v1/print-jobs/summary',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'Print jobs by status for each site',
        response: {
          200: OnePage(PrintSummarySchema),
          ...errors(401, 403),
        },
      },
    },
    async (request): Promise<{ items: PrintSummaryView[]; nextCursor: null }> => {
      const p = await request.staff();
      return { items: await deps.fleet.printSummary(tenantFilter(p)), nextCursor: null };
    },
  );
}
