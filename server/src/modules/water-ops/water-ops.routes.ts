// Operator routes for water kiosks (docs/water-dashboard.md): the kiosks overview, the
// verification feed and the water charts. Staff credentials, tenant-scoped.
import type { Page, WaterKioskOverview, WaterStatsView, WaterVerificationView } from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { tenantFilter } from '../../platform/http/auth.js';
import {
  Cursor,
  EntityId,
  errors,
  IsoTime,
  Limit,
  OnePage,
  Page as PageSchema,
} from '../../platform/http/schemas.js';
import type { WaterStatsService } from '../reporting/water-stats.service.js';
import { TimeZoneParam } from '../reporting/local-buckets.js';
import type { Zoned } from '../reporting/stats.service.js';
import type { WaterVerifications } from './verifications.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);
const TapSchema = Type.Object({
  tap: Type.Integer(),
  status: Type.String(),
  fault: Type.Boolean(),
  totalMl: Nullable(Type.Number()),
});
const KioskOverviewSchema = Type.Object({
  kioskId: Type.String(),
  name: Type.String(),
  siteId: Type.String(),
  status: Type.Union([Type.Literal('ONLINE'), Type.Literal('OFFLINE')]),
  firmware: Nullable(Type.String()),
  lastHeartbeatAt: Nullable(Type.String()),
  cacheVersion: Nullable(Type.Number()),
  signalDbm: Nullable(Type.Number()),
  sdFreeMb: Nullable(Type.Number()),
  taps: Type.Array(TapSchema),
  dispensedTodayMl: Type.Number(),
  approvalsToday: Type.Integer(),
  denialsToday: Type.Integer(),
});
const VerificationSchema = Type.Object({
  id: Type.String(),
  kioskId: Type.String(),
  customerId: Nullable(Type.String()),
  customerAccountId: Nullable(Type.String()),
  customerName: Nullable(Type.String()),
  approved: Type.Boolean(),
  code: Type.String(),
  reason: Type.String(),
  volumeMl: Type.Number(),
  at: Type.String(),
});
const WaterStatsSchema = Type.Object({
  from: Type.String(),
  to: Type.String(),
  litresPerDay: Type.Array(
    Type.Object({ day: Type.String(), litres: Type.Number(), dispenses: Type.Integer() }),
  ),
  verificationsByCode: Type.Array(
    Type.Object({
      code: Type.String(),
      reason: Type.String(),
      approved: Type.Boolean(),
      count: Type.Integer(),
    }),
  ),
  revenueByPlan: Type.Array(
    Type.Object({
      planId: Type.String(),
      planName: Nullable(Type.String()),
      currency: Type.String(),
      exponent: Type.Integer(),
      amountMinor: Type.Integer(),
      payments: Type.Integer(),
    }),
  ),
  /** The zone of the days, when one was asked for. */
  timeZone: Type.Optional(Type.String()),
});

export function waterOpsRoutes(
  app: FastifyTypebox,
  deps: {
    stats: Pick<WaterStatsService, 'overview' | 'stats'>;
    verifications: Pick<WaterVerifications, 'list'>;
  },
): void {
  app.get(
    '/v1/water/kiosks/overview',
    {
      schema: {
        tags: ['water'],
        summary:
          'Every water kiosk: taps, firmware, last heartbeat, ONLINE/OFFLINE (5 min), cache version, litres and approvals/denials today (the day of `timeZone`, default UTC)',
        querystring: Type.Object({ timeZone: Type.Optional(TimeZoneParam) }, { additionalProperties: false }),
        response: {
          200: OnePage(KioskOverviewSchema),
          ...errors(400, 401, 403),
        },
      },
    },
    async (request): Promise<{ items: WaterKioskOverview[]; nextCursor: null }> => {
      const p = await request.staff();
      const { timeZone } = request.query;
      return { items: await deps.stats.overview(tenantFilter(p), Date.now(), timeZone), nextCursor: null };
    },
  );

  app.get(
    '/v1/water/verifications',
    {
      schema: {
        tags: ['water'],
        summary: 'Water verifications, newest first, with the denial reason (optionally of one kiosk)',
        querystring: Type.Object(
          { kioskId: Type.Optional(EntityId), cursor: Type.Optional(Cursor), limit: Limit },
          { additionalProperties: false },
        ),
        response: { 200: PageSchema(VerificationSchema), ...errors(400, 401, 403, 404) },
      },
    },
    async (request): Promise<Page<WaterVerificationView>> => {
      const p = await request.staff();
      const { kioskId, cursor, limit } = request.query;
      return deps.verifications.list(tenantFilter(p), {
        limit,
        ...(kioskId ? { kioskId } : {}),
        ...(cursor ? { cursor } : {}),
      });
    },
  );

  app.get(
    '/v1/stats/water',
    {
      schema: {
        tags: ['water'],
        summary:
          'Water charts for a range (default the last 30 days): litres per day (of `timeZone`, default UTC), verifications by code, plan revenue per plan and currency',
        querystring: Type.Object(
          {
            from: Type.Optional(IsoTime),
            to: Type.Optional(IsoTime),
            timeZone: Type.Optional(TimeZoneParam),
          },
          { additionalProperties: false },
        ),
        response: { 200: WaterStatsSchema, ...errors(400, 401, 403) },
      },
    },
    async (request): Promise<Zoned<WaterStatsView>> => {
      const p = await request.staff();
      return deps.stats.stats({
        tenantId: tenantFilter(p),
        ...(request.query.from ? { from: request.query.from } : {}),
        ...(request.query.to ? { to: request.query.to } : {}),
        ...(request.query.timeZone !== undefined ? { timeZone: request.query.timeZone } : {}),
      });
    },
  );
}
