// Reporting: the one module that reads other modules' tables (orders, commands, machines, and
// the dashboard's machine_online_samples), read-only, for aggregates no single owner answers.
// It writes nothing and owns no table; everything else goes through the owning service.
// Dashboard charts: revenue by hour or day, orders by status, dispense success rate and
// machines online over time, for a range and optionally one site or machine. Buckets are UTC
// days and hours, or those of the zone asked for (`timeZone`, see localBuckets below).
// Revenue is the ledger's: money order payments took less refunds of them, each in the bucket
// the money moved, asked of the payments module (payment-queries.ts), never read from orders.
import { ORDER_STATUSES, type StatsBucket, type StatsView } from '@kioskhub/protocol';
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { validation } from '../../platform/errors.js';
import type { GroupKey, KeptMoneyGroup, PaymentQueries } from '../payments/payment-queries.js';
import { bucketStart as localBucketStart, isTimeZone, offsetMs } from './local-buckets.js';

export interface StatsQuery {
  tenantId: string | null;
  siteId?: string;
  machineId?: string;
  from?: string;
  to?: string;
  bucket?: StatsBucket;
  /** IANA zone of the buckets; absent: UTC, and the answer is as it always was. */
  timeZone?: string;
}

/** A report's answer with the zone it was asked in (only when one was asked for). */
export type Zoned<T> = T & { timeZone?: string };

/** The zone asked for, checked: one Intl does not know is a 400 naming the parameter. */
export function checkTimeZone(timeZone: string | undefined): string | undefined {
  if (timeZone !== undefined && !isTimeZone(timeZone))
    throw validation(
      `timeZone: ${JSON.stringify(timeZone)} is not a time zone (an IANA name such as Asia/Kolkata)`,
    );
  return timeZone;
}

/** Whether buckets in the zone differ from the UTC ones the prefixes give (UTC or none: no). */
export const isLocal = (timeZone: string | undefined): timeZone is string =>
  timeZone !== undefined && timeZone !== 'UTC';

// Local buckets, on both engines alike: rows are grouped by a piece of their UTC text fine enough
// that no local bucket boundary falls inside a group (an hour for Berlin, a quarter hour for India
// and Nepal, a minute or a second for odd historic offsets), with the first and last instant of
// each group; each group is then put in its local bucket in TypeScript (local-buckets.ts). A group
// whose first and last instants fall in different buckets means the piece was too coarse: the
// query runs again one step finer, down to the whole timestamp. Groups are bounded by the rows
// there are, never by the length of the range.
const LEVELS = ['hour', 'quarter', 'minute', 'second', 'exact'] as const;
type Level = (typeof LEVELS)[number];

function fineKey(column: string, level: Level): RawBuilder<string> {
  const col = sql.ref(column);
  switch (level) {
    case 'hour':
      return sql<string>`substr(${col}, 1, 13)`;
    case 'quarter':
      return sql<string>`(substr(${col}, 1, 13) || case when substr(${col}, 15, 2) < '15' then ':00' when substr(${col}, 15, 2) < '30' then ':15' when substr(${col}, 15, 2) < '45' then ':30' else ':45' end)`;
    case 'minute':
      return sql<string>`substr(${col}, 1, 16)`;
    case 'second':
      return sql<string>`substr(${col}, 1, 19)`;
    case 'exact':
      return sql<string>`${col}`;
  }
}

/** The coarsest piece the zone's offsets at both ends of the range allow. */
function firstLevel(from: string, to: string, timeZone: string): Level {
  const offsets = [offsetMs(Date.parse(from), timeZone), offsetMs(Date.parse(to), timeZone)];
  const all = (unit: number) => offsets.every((o) => o % unit === 0);
  return all(3_600_000) ? 'hour' : all(900_000) ? 'quarter' : all(60_000) ? 'minute' : 'second';
}

/**
 * Rows of a grouped query, each with the start (UTC ms) of its local bucket. `run` groups by the
 * key it is given (and whatever else it likes) and selects `lo` and `hi`: min and max of `column`.
 */
export async function localBuckets<R extends { lo: string; hi: string }>(
  column: string,
  z: { timeZone: string; bucket: StatsBucket; from: string; to: string },
  run: (key: RawBuilder<string>) => Promise<R[]>,
): Promise<(R & { start: number })[]> {
  return localBucketsBy(z, (key) => run(key(column)));
}

/** localBuckets for a query that names its time column itself (another module's query). */
export async function localBucketsBy<R extends { lo: string; hi: string }>(
  z: { timeZone: string; bucket: StatsBucket; from: string; to: string },
  run: (key: GroupKey) => Promise<R[]>,
): Promise<(R & { start: number })[]> {
  for (let i = LEVELS.indexOf(firstLevel(z.from, z.to, z.timeZone)); ; i++) {
    const level = LEVELS[i]!;
    const rows = await run((column) => fineKey(column, level));
    const out: (R & { start: number })[] = [];
    for (const r of rows) {
      const start = localBucketStart(Date.parse(r.lo), z.bucket, z.timeZone);
      if (level !== 'exact' && localBucketStart(Date.parse(r.hi), z.bucket, z.timeZone) !== start) break;
      out.push({ ...r, start });
    }
    if (out.length === rows.length) return out;
  }
}

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
  /** Revenue: what order payments took and what refunds gave back, per bucket. */
  payments: Pick<PaymentQueries, 'takenByGroup' | 'refundedByGroup'>;
}) {
  const { db } = deps;

  /**
   * Revenue per bucket and currency, as the site's `revenue` ledger account moves: what order
   * payments took (in the bucket they completed) less what refunds of them gave back (in the
   * bucket each refund was recorded). `orders` counts the payments taken in the bucket.
   */
  async function revenue(
    q: StatsQuery,
    from: string,
    to: string,
    bucket: StatsBucket,
  ): Promise<StatsView['revenue']> {
    // One site or machine: the orders of it (the order's site and machine, as before).
    let orderIds;
    if (q.siteId || q.machineId) {
      let ids = db.selectFrom('orders').select('id');
      if (q.tenantId !== null) ids = ids.where('tenant_id', '=', q.tenantId);
      if (q.siteId) ids = ids.where('site_id', '=', q.siteId);
      if (q.machineId) ids = ids.where('machine_id', '=', q.machineId);
      orderIds = ids;
    }
    const scope = {
      tenantId: q.tenantId,
      purpose: 'order' as const,
      from,
      to,
      ...(orderIds ? { orderIds } : {}),
    };
    const sums = new Map<string, StatsView['revenue'][number]>();
    const add = (start: string, r: KeptMoneyGroup, refunds: boolean) => {
      const key = `${start} ${r.currency}`;
      const sum = sums.get(key) ?? {
        start,
        currency: r.currency,
        amountMinor: 0,
        orders: 0,
        paidMinor: 0,
        refundedMinor: 0,
      };
      if (refunds) sum.refundedMinor += r.amount;
      else {
        sum.paidMinor += r.amount;
        sum.orders += r.n;
      }
      sum.amountMinor = sum.paidMinor - sum.refundedMinor;
      sums.set(key, sum);
    };
    if (!isLocal(q.timeZone)) {
      const key: GroupKey = (column) => prefix(column, bucket === 'hour' ? 13 : 10);
      const [taken, refunded] = await Promise.all([
        deps.payments.takenByGroup(scope, key),
        deps.payments.refundedByGroup(scope, key),
      ]);
      for (const r of taken) add(bucketStart(r.b), r, false);
      for (const r of refunded) add(bucketStart(r.b), r, true);
    } else {
      const z = { timeZone: q.timeZone, bucket, from, to };
      const [taken, refunded] = await Promise.all([
        localBucketsBy(z, (key) => deps.payments.takenByGroup(scope, key)),
        localBucketsBy(z, (key) => deps.payments.refundedByGroup(scope, key)),
      ]);
      for (const r of taken) add(new Date(r.start).toISOString(), r, false);
      for (const r of refunded) add(new Date(r.start).toISOString(), r, true);
    }
    return [...sums.values()].sort((a, b) => cmp(a.start, b.start) || cmp(a.currency, b.currency));
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
    const chars = span <= 2 * DAY ? 16 : span <= 31 * DAY ? 13 : 10;
    const site = q.machineId ? await deps.machineSite(q.machineId, q.tenantId) : q.siteId;
    const online = q.machineId
      ? // The quoted id as a whole element, exactly (LIKE ignores case on SQLite): ids never hold
        // characters JSON escapes, so the quoted text only ever matches one element.
        sql<number>`sum(case when replace(online_ids, ${`"${q.machineId}"`}, '') <> online_ids then 1 else 0 end)`
      : sql<number>`sum(online)`;
    const total = q.machineId ? sql<number>`count(distinct at)` : sql<number>`sum(total)`;
    const query = (b: RawBuilder<string>) => {
      let query = db
        .selectFrom('machine_online_samples')
        .select([
          b.as('b'),
          online.as('online'),
          total.as('total'),
          sql<number>`count(distinct at)`.as('instants'),
          (eb) => eb.fn.min<string>('at').as('lo'),
          (eb) => eb.fn.max<string>('at').as('hi'),
        ])
        .where('at', '>=', from)
        .where('at', '<', to)
        .groupBy(b)
        .orderBy(b);
      if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
      if (site) query = query.where('site_id', '=', site);
      return query.execute();
    };
    // Minutes are the same in every zone of whole-minute offsets: only hours and days move.
    let rows: { at: string; online: number; total: number; instants: number }[];
    if (!isLocal(q.timeZone) || chars === 16) {
      rows = (await query(prefix('at', chars))).map((r) => ({
        at: bucketStart(r.b),
        online: Number(r.online),
        total: Number(r.total),
        instants: Number(r.instants),
      }));
    } else {
      const bucket = chars === 13 ? 'hour' : 'day';
      const sums = new Map<string, { at: string; online: number; total: number; instants: number }>();
      for (const r of await localBuckets('at', { timeZone: q.timeZone, bucket, from, to }, query)) {
        const at = new Date(r.start).toISOString();
        const sum = sums.get(at) ?? { at, online: 0, total: 0, instants: 0 };
        sum.online += Number(r.online);
        sum.total += Number(r.total);
        sum.instants += Number(r.instants);
        sums.set(at, sum);
      }
      rows = [...sums.values()].sort((a, b) => cmp(a.at, b.at));
    }
    // Several sites share each sampling instant: sum per instant, then average over the bucket.
    const points = rows.map((r) => {
      const n = Math.max(1, r.instants);
      return { at: r.at, online: round(r.online / n), total: round(r.total / n) };
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
    async stats(q: StatsQuery): Promise<Zoned<StatsView>> {
      const timeZone = checkTimeZone(q.timeZone);
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
        ...(timeZone !== undefined ? { timeZone } : {}),
      };
    },
  };
}

const round = (n: number): number => Math.round(n * 100) / 100;
/** Orders text as the database orders ISO times and ids; null first. */
export const cmp = (a: string | null, b: string | null): number =>
  (a ?? '') < (b ?? '') ? -1 : (a ?? '') > (b ?? '') ? 1 : 0;

export type StatsService = ReturnType<typeof createStatsService>;
