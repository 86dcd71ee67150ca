// Reporting: the one module that reads other modules' tables (orders, commands, machines, and
// the dashboard's machine_online_samples), read-only, for aggregates no single owner answers.
// It writes nothing and owns no table; everything else goes through the owning service.
// Dashboard charts: revenue by hour or day, orders by status, dispense success rate and
// machines online over time, for a range and optionally one site or machine. Buckets are UTC.
import { ORDER_STATUSES, type OrderStatus, type StatsBucket, type StatsView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { validation } from '../../platform/errors.js';

export interface StatsQuery {
  tenantId: string | null;
  siteId?: string;
  machineId?: string;
  from?: string;
  to?: string;
  bucket?: StatsBucket;
}

/** Orders whose money was kept: revenue. */
const KEPT: OrderStatus[] = [
  'PAID',
  'DISPATCHED',
  'COMPLETED',
  'NEEDS_REVIEW',
  'PREPARING',
  'READY',
  'SERVED',
];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const MAX_RANGE_DAYS = 366;

// ISO UTC text sorts as time, so a prefix of it is a bucket: 10 chars a day, 13 an hour, 16 a minute.
const prefix = (column: string, chars: 10 | 13 | 16) =>
  sql<string>`substr(${sql.ref(column)}, 1, ${sql.lit(chars)})`;
const bucketStart = (key: string): string =>
  key.length === 10 ? `${key}T00:00:00.000Z` : key.length === 13 ? `${key}:00:00.000Z` : `${key}:00.000Z`;

export function resolveRange(
  q: Pick<StatsQuery, 'from' | 'to' | 'bucket'>,
  now = Date.now(),
): { from: string; to: string; bucket: StatsBucket } {
  const bucket = q.bucket ?? 'hour';
  const to = q.to ? Date.parse(q.to) : now;
  const from = q.from ? Date.parse(q.from) : to - (bucket === 'hour' ? DAY : 30 * DAY);
  if (!(from < to)) throw validation('from must be before to');
  if (to - from > MAX_RANGE_DAYS * DAY) throw validation(`a range is at most ${MAX_RANGE_DAYS} days`);
  return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket };
}

export function createStatsService(deps: {
  db: Db;
  machineSite(machineId: string, tenantId: string | null): Promise<string>;
}) {
  const { db } = deps;

  async function revenue(
    q: StatsQuery,
    from: string,
    to: string,
    bucket: StatsBucket,
  ): Promise<StatsView['revenue']> {
    const b = prefix('paid_at', bucket === 'hour' ? 13 : 10);
    let query = db
      .selectFrom('orders')
      .select([
        b.as('b'),
        'currency',
        (eb) => eb.fn.sum<number>('amount').as('amount'),
        (eb) => eb.fn.countAll<number>().as('n'),
      ])
      .where('paid_at', '>=', from)
      .where('paid_at', '<', to)
      .where('status', 'in', KEPT)
      .groupBy([b, 'currency'])
      .orderBy(b);
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.siteId) query = query.where('site_id', '=', q.siteId);
    if (q.machineId) query = query.where('machine_id', '=', q.machineId);
    const rows = await query.execute();
    return rows.map((r) => ({
      start: bucketStart(r.b),
      currency: r.currency,
      amountMinor: Number(r.amount),
      orders: Number(r.n),
    }));
  }

  async function ordersByStatus(
    q: StatsQuery,
    from: string,
    to: string,
  ): Promise<StatsView['ordersByStatus']> {
    let query = db
      .selectFrom('orders')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('created_at', '>=', from)
      .where('created_at', '<', to)
      .groupBy('status');
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.siteId) query = query.where('site_id', '=', q.siteId);
    if (q.machineId) query = query.where('machine_id', '=', q.machineId);
    const counts = new Map((await query.execute()).map((r) => [r.status, Number(r.n)]));
    return ORDER_STATUSES.map((status) => ({ status, count: counts.get(status) ?? 0 }));
  }

  async function dispense(q: StatsQuery, from: string, to: string): Promise<StatsView['dispense']> {
    let query = db
      .selectFrom('commands')
      .select(['status', 'result', (eb) => eb.fn.countAll<number>().as('n')])
      .where('finished_at', '>=', from)
      .where('finished_at', '<', to)
      .where('status', 'in', ['DONE', 'NEEDS_REVIEW'])
      .groupBy(['status', 'result']);
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.machineId) query = query.where('machine_id', '=', q.machineId);
    if (q.siteId) {
      const site = q.siteId;
      query = query.where('machine_id', 'in', (eb) => {
        let sub = eb.selectFrom('machines').select('id').where('site_id', '=', site);
        if (q.tenantId !== null) sub = sub.where('tenant_id', '=', q.tenantId);
        return sub;
      });
    }
    let success = 0;
    let failed = 0;
    let noResult = 0;
    for (const r of await query.execute()) {
      const n = Number(r.n);
      if (r.status === 'NEEDS_REVIEW') noResult += n;
      else if (r.result === 'SUCCESS') success += n;
      // DONE with no result: cancelled by a refund before it was sent, never a dispense.
      else if (r.result !== null) failed += n;
    }
    const total = success + failed + noResult;
    return { success, failed, noResult, rate: total === 0 ? null : success / total };
  }

  async function machinesOnline(
    q: StatsQuery,
    from: string,
    to: string,
  ): Promise<StatsView['machinesOnline']> {
    const span = Date.parse(to) - Date.parse(from);
    const b = prefix('at', span <= 2 * DAY ? 16 : span <= 31 * DAY ? 13 : 10);
    const site = q.machineId ? await deps.machineSite(q.machineId, q.tenantId) : q.siteId;
    const online = q.machineId
      ? // The quoted id as a whole element, exactly (LIKE ignores case on SQLite): ids never hold
        // characters JSON escapes, so the quoted text only ever matches one element.
        sql<number>`sum(case when replace(online_ids, ${`"${q.machineId}"`}, '') <> online_ids then 1 else 0 end)`
      : sql<number>`sum(online)`;
    const total = q.machineId ? sql<number>`count(distinct at)` : sql<number>`sum(total)`;
    let query = db
      .selectFrom('machine_online_samples')
      .select([
        b.as('b'),
        online.as('online'),
        total.as('total'),
        sql<number>`count(distinct at)`.as('instants'),
      ])
      .where('at', '>=', from)
      .where('at', '<', to)
      .groupBy(b)
      .orderBy(b);
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (site) query = query.where('site_id', '=', site);
    const rows = await query.execute();
    // Several sites share each sampling instant: sum per instant, then average over the bucket.
    const points = rows.map((r) => {
      const n = Math.max(1, Number(r.instants));
      return { at: bucketStart(r.b), online: round(Number(r.online) / n), total: round(Number(r.total) / n) };
    });
    if (Date.parse(to) >= Date.now() - 60_000)
      points.push({ at: new Date().toISOString(), ...(await currentOnline(q, site)) });
    return points;
  }

  /** The live point at the end of the series, from the machines table itself. */
  async function currentOnline(
    q: StatsQuery,
    site: string | undefined,
  ): Promise<{ online: number; total: number }> {
    let query = db
      .selectFrom('machines')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('status');
    if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
    if (q.machineId) query = query.where('id', '=', q.machineId);
    else if (site) query = query.where('site_id', '=', site);
    let online = 0;
    let total = 0;
    for (const r of await query.execute()) {
      total += Number(r.n);
      if (r.status !== 'OFFLINE') online += Number(r.n);
    }
    return { online, total };
  }

  return {
    async stats(q: StatsQuery): Promise<StatsView> {
      if (q.machineId) await deps.machineSite(q.machineId, q.tenantId); // 404 for another tenant's machine
      const { from, to, bucket } = resolveRange(q);
      const [rev, byStatus, disp, online] = await Promise.all([
        revenue(q, from, to, bucket),
        ordersByStatus(q, from, to),
        dispense(q, from, to),
        machinesOnline(q, from, to),
      ]);
      return {
        from,
        to,
        bucket,
        revenue: rev,
        ordersByStatus: byStatus,
        dispense: disp,
        machinesOnline: online,
      };
    },
  };
}

const round = (n: number): number => Math.round(n * 100) / 100;

export type StatsService = ReturnType<typeof createStatsService>;
