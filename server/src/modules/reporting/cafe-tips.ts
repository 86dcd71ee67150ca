// Cafe tips (read-only, like stats.service.ts): tips of paid table orders per day of payment,
// site, split (the pool, or the table's server) and currency, with a total per currency. The day
// is the order's paid_at (orders module) and the tip the table order's (cafe module): one query.
// Days are UTC days, or the local days of `timeZone` (an IANA zone) when one is given.
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { localDay } from './local-buckets.js';
import { checkTimeZone, cmp, isLocal, localBuckets, type Zoned } from './stats.service.js';

export interface TipsQuery {
  siteId?: string;
  from: string;
  to: string;
  /** IANA zone of the days; absent: UTC days, and the answer is as it always was. */
  timeZone?: string;
}

interface TipsItem {
  day: string;
  siteId: string;
  split: string;
  serverUserId: string | null;
  currency: string;
  tipMinor: number;
  orders: number;
}

export async function cafeTipsReport(
  db: Db,
  tenantId: string | null,
  q: TipsQuery,
): Promise<Zoned<{ items: TipsItem[]; totals: { currency: string; tipMinor: number }[] }>> {
  const timeZone = checkTimeZone(q.timeZone);
  const run = (day: RawBuilder<string>) => {
    let query = db
      .selectFrom('cafe_orders as c')
      .innerJoin('orders as o', 'o.id', 'c.order_id')
      .select([
        day.as('day'),
        'c.site_id',
        'c.tip_split',
        'c.server_user_id',
        'c.currency',
        (eb) => eb.fn.sum<number>('c.tip_minor').as('tip'),
        (eb) => eb.fn.countAll<number>().as('orders'),
        (eb) => eb.fn.min<string>('o.paid_at').as('lo'),
        (eb) => eb.fn.max<string>('o.paid_at').as('hi'),
      ])
      .where('o.paid_at', 'is not', null)
      .where('o.paid_at', '>=', q.from)
      .where('o.paid_at', '<', q.to)
      .where('c.tip_minor', '>', 0)
      .groupBy([day, 'c.site_id', 'c.tip_split', 'c.server_user_id', 'c.currency'])
      .orderBy(day)
      .orderBy('c.site_id')
      .orderBy('c.tip_split');
    if (tenantId !== null) query = query.where('c.tenant_id', '=', tenantId);
    if (q.siteId) query = query.where('c.site_id', '=', q.siteId);
    return query.execute();
  };
  const item = (r: Awaited<ReturnType<typeof run>>[number], day: string): TipsItem => ({
    day,
    siteId: r.site_id,
    split: r.tip_split,
    serverUserId: r.server_user_id,
    currency: r.currency,
    tipMinor: Number(r.tip),
    orders: Number(r.orders),
  });
  let items: TipsItem[];
  if (!isLocal(timeZone)) {
    items = (await run(sql<string>`substr(o.paid_at, 1, 10)`)).map((r) => item(r, r.day));
  } else {
    const zone = { timeZone, bucket: 'day' as const, from: q.from, to: q.to };
    const sums = new Map<string, TipsItem>();
    for (const r of await localBuckets('o.paid_at', zone, run)) {
      const i = item(r, localDay(r.start, timeZone));
      const key = JSON.stringify([i.day, i.siteId, i.split, i.serverUserId, i.currency]);
      const sum = sums.get(key);
      if (sum) {
        sum.tipMinor += i.tipMinor;
        sum.orders += i.orders;
      } else sums.set(key, i);
    }
    items = [...sums.values()].sort(
      (a, b) =>
        cmp(a.day, b.day) ||
        cmp(a.siteId, b.siteId) ||
        cmp(a.split, b.split) ||
        cmp(a.serverUserId, b.serverUserId) ||
        cmp(a.currency, b.currency),
    );
  }
  const totals = new Map<string, number>();
  for (const i of items) totals.set(i.currency, (totals.get(i.currency) ?? 0) + i.tipMinor);
  return {
    items,
    totals: [...totals].map(([currency, tipMinor]) => ({ currency, tipMinor })),
    ...(timeZone !== undefined ? { timeZone } : {}),
  };
}
