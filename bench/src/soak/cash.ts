// Restaurant cash kiosks: each kiosk opens an order and a cash session, its acceptor reports ₱50
// bills (one report in ten sent twice with the same eventId, as a reader that lost the answer
// does). The paid order's receipt goes to the site's printer (print.ts). Exactly once: each
// session received exactly its distinct inserts.
import { randomUUID } from 'node:crypto';
import { sleep } from '../lib/wait.js';
import { ok } from './client.js';
import { loop, type AuditLine, type Flow } from './flow.js';

export const CASH_SITE = 'soak-grill';
const SITE = CASH_SITE;
const PRICE_MINOR = 25_000; // ₱250: five ₱50 bills

export function cashFlow(options: { kiosks: number; gapMs: number }): Flow {
  const kiosks: { id: string; key: string }[] = [];
  const insertsAcked = new Map<string, Set<string>>(); // order number → event ids acknowledged
  const paidOrders = new Set<string>();

  const insert = async (url: string, key: string, orderNumber: string, eventId: string) =>
    ok(
      url,
      'POST',
      '/api/cash-payment/update',
      { key },
      { orderNumber, amountAdded: 50, eventId, kind: 'BILL' },
    );

  return {
    name: 'cash kiosks',
    async setup(ctx) {
      await ok(
        ctx.url,
        'POST',
        '/v1/sites',
        { admin: true },
        { id: SITE, name: 'Soak Grill', currency: 'PHP' },
      );
      await ok(
        ctx.url,
        'POST',
        '/v1/products',
        { admin: true },
        { sku: 'meal', name: 'Meal', priceMinor: PRICE_MINOR, siteId: SITE },
      );
      for (let i = 1; i <= options.kiosks; i++) {
        const m = await ok(
          ctx.url,
          'POST',
          '/v1/machines',
          { admin: true },
          { id: `SK${i}`, kind: 'kiosk', siteId: SITE },
        );
        kiosks.push({ id: `SK${i}`, key: String(m.key) });
      }
    },
    async run(ctx) {
      await Promise.all(
        kiosks.map((k) =>
          loop(ctx, options.gapMs, async () => {
            const order = await ok(
              ctx.url,
              'POST',
              '/v1/orders',
              { key: k.key },
              { items: [{ sku: 'meal', qty: 1 }] },
            );
            const orderNumber = String(order.orderNumber);
            await ok(
              ctx.url,
              'POST',
              '/api/cash-payment/init',
              { key: k.key },
              { orderNumber, totalAmount: PRICE_MINOR / 100 },
            );
            const events = new Set<string>();
            insertsAcked.set(orderNumber, events);
            for (let bill = 0; bill < 5; bill++) {
              const eventId = randomUUID();
              const answer = await insert(ctx.url, k.key, orderNumber, eventId);
              events.add(eventId);
              if (Math.random() < 0.1) await insert(ctx.url, k.key, orderNumber, eventId);
              if (answer.isComplete) paidOrders.add(orderNumber);
              await sleep(50 + Math.random() * 200);
            }
          }),
        ),
      );
    },
    count: () => paidOrders.size,
    async drain() {},
    async audit(db) {
      const lines: AuditLine[] = [];
      const sessions = await db
        .selectFrom('cash_sessions as s')
        .leftJoin('cash_inserts as i', 'i.session_id', 's.id')
        .select(['s.order_number', 's.status', (eb) => eb.fn.count<number>('i.id').as('inserts')])
        .where('s.site_id', '=', SITE)
        .groupBy(['s.order_number', 's.status'])
        .execute();
      const wrong = sessions.filter(
        (s) => Number(s.inserts) !== (insertsAcked.get(s.order_number)?.size ?? -1),
      );
      lines.push({
        check: 'cash: every session holds exactly its distinct acknowledged inserts',
        ok: wrong.length === 0 && sessions.length === insertsAcked.size,
        detail: `${sessions.length} sessions, ${[...insertsAcked.values()].reduce((a, s) => a + s.size, 0)} inserts, ${wrong.length} wrong`,
      });
      return lines;
    },
    async close() {},
  };
}
