// Cafe tips (read-only, like stats.service.ts): tips of paid table orders per UTC day of payment,
// site, split (the pool, or the table's server) and currency, with a total per currency. The day
// is the order's paid_at (orders module) and the tip the table order's (cafe module): one query.
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';

export async function cafeTipsReport(
  db: Db,
  tenantId: string | null,
  q: { siteId?: string; from: string; to: string },
) {
  let query = db
    .selectFrom('cafe_orders as c')
    .innerJoin('orders as o', 'o.id', 'c.order_id')
    .select([
      sql<string>`substr(o.paid_at, 1, 10)`.as('day'),
      'c.site_id',
      'c.tip_split',
      'c.server_user_id',
      'c.currency',
      (eb) => eb.fn.sum<number>('c.tip_minor').as('tip'),
      (eb) => eb.fn.countAll<number>().as('orders'),
    ])
    .where('o.paid_at', 'is not', null)
    .where('o.paid_at', '>=', q.from)
    .where('o.paid_at', '<', q.to)
    .where('c.tip_minor', '>', 0)
    .groupBy([sql`substr(o.paid_at, 1, 10)`, 'c.site_id', 'c.tip_split', 'c.server_user_id', 'c.currency'])
    .orderBy(sql`substr(o.paid_at, 1, 10)`)
    .orderBy('c.site_id')
    .orderBy('c.tip_split');
  if (tenantId !== null) query = query.where('c.tenant_id', '=', tenantId);
  if (q.siteId) query = query.where('c.site_id', '=', q.siteId);
  const rows = await query.execute();
  const items = rows.map((r) => ({
    day: r.day,
    siteId: r.site_id,
    split: r.tip_split,
    serverUserId: r.server_user_id,
    currency: r.currency,
    tipMinor: Number(r.tip),
    orders: Number(r.orders),
  }));
  const totals = new Map<string, number>();
  for (const i of items) totals.set(i.currency, (totals.get(i.currency) ?? 0) + i.tipMinor);
  return { items, totals: [...totals].map(([currency, tipMinor]) => ({ currency, tipMinor })) };
}
