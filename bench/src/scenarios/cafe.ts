// Scenario `cafe`: 50 cafes × 20 tables (1,000 tables) ordering and paying by card at once, on
// the embedded SQLite file, against a local fake of Stripe (server/test/fixtures/stripe-fake.ts).
// Measures (1) order → kitchen display: a guest's POST /api/orders sent → that cafe's kitchen
// display (/live, room kitchen:<site>) has the paid order, through the card checkout and
// Stripe's signed webhook with no human time in between; and (2) payment webhook → guest page:
// the signed `checkout.session.completed` sent → `payment_completed` on the guest's page (/live
// with its orderToken, room order:<id>) while all 1,000 guest pages are connected. Guests start at
// a fixed rate (open loop). Baseline in the same run: GET /healthz of the same server, same pacing.
import Database from 'better-sqlite3';
import { io, type Socket } from 'socket.io-client';
import { fakeStripe, type FakeStripe } from '../../../server/test/fixtures/stripe-fake.js';
import { ADMIN_TOKEN, startKioskhub } from '../lib/kioskhub.js';
import { mapLimit } from '../lib/pool.js';
import { summarize, type Summary } from '../lib/stats.js';
import { tempDir } from '../lib/temp.js';
import { int, ms, printTable, verdict } from '../lib/table.js';

const WHSEC = 'whsec_bench_cafe';
const TABLES_PER_CAFE = 20;
const TARGET_P99_MS = 50;

interface Table {
  siteId: string;
  tableId: string;
  token: string;
}

async function call(
  url: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function must(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const res = await p;
  if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
  return res.body;
}

/** A /live socket that resolves waiters by the orderId of one event. */
function liveWaiter(url: string, auth: Record<string, string>, room: string, event: string) {
  const socket: Socket = io(`${url}/live`, {
    auth,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const waiting = new Map<string, (at: number) => void>();
  const seen = new Map<string, number>();
  socket.on(event, (e: { orderId: string }) => {
    const at = performance.now();
    seen.set(e.orderId, (seen.get(e.orderId) ?? 0) + 1);
    waiting.get(e.orderId)?.(at);
    waiting.delete(e.orderId);
  });
  const ready = new Promise<void>((resolve, reject) => {
    socket.once('connect', () =>
      socket.emit('subscribe', { room }, (ack: { ok: boolean }) =>
        ack?.ok ? resolve() : reject(new Error(`subscribe ${room}: ${JSON.stringify(ack)}`)),
      ),
    );
    socket.once('connect_error', reject);
  });
  return {
    ready,
    seen,
    /** Call before the action: resolves with the arrival time of the event for `orderId`. */
    next(orderId: string): Promise<number> {
      const arrival = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${event} for ${orderId} within 120 s`)), 120_000);
        waiting.set(orderId, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
      // Awaited by the caller unless its request failed first: never an unhandled rejection.
      arrival.catch(() => undefined);
      return arrival;
    },
    close: () => socket.close(),
  };
}

/**
 * What one fsynced commit costs on this disk right now (WAL, synchronous=FULL, as the server):
 * the floor under every write the server makes, shared with whatever else runs on the machine.
 */
function commitBaseline(samples: number): number[] {
  const dir = tempDir('commit');
  const db = new Database(`${dir.path}/commit.db`);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('create table t (id integer primary key, v text)');
    const insert = db.prepare('insert into t (v) values (?)');
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      insert.run('x');
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    db.close();
    void dir.remove();
  }
}

/** Starts fn for each item at RATE per second, whether or not earlier ones finished. */
async function paced<T>(items: readonly T[], rate: number, fn: (item: T) => Promise<void>): Promise<void> {
  const started = performance.now();
  await Promise.all(
    items.map(async (item, i) => {
      const due = started + (i * 1000) / rate - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      await fn(item);
    }),
  );
}

export async function cafeScenario(options: { quick: boolean }): Promise<boolean> {
  const cafes = options.quick ? 10 : 50;
  // Guests per second: 1,000 tables' lunch rush within 50 s (BENCH_CAFE_RATE to explore).
  const RATE = Number(process.env['BENCH_CAFE_RATE'] ?? 20);
  let stripe: FakeStripe | undefined;
  const sockets: { close(): void }[] = [];
  stripe = await fakeStripe({ webhookSecret: WHSEC });
  const server = await startKioskhub({
    engine: 'sqlite',
    name: 'kioskhub (cafe)',
    env: {
      STRIPE_SECRET_KEY: 'sk_test_bench',
      STRIPE_WEBHOOK_SECRET: WHSEC,
      STRIPE_API_BASE: stripe.url,
      // No webhook is lost here: the status poll (the safety net for lost ones) would only race
      // the webhook for sessions the fake already marked paid.
      PAYMENT_STATUS_POLL_MS: '3600000',
    },
  });
  try {
    const url = server.url;
    const admin = (method: string, path: string, body?: unknown) =>
      must(call(url, method, path, ADMIN_TOKEN, body), `${method} ${path}`);
    console.log(`[cafe] setting up ${cafes} cafes × ${TABLES_PER_CAFE} tables…`);
    const siteIds = Array.from({ length: cafes }, (_, i) => `bcafe${String(i + 1).padStart(3, '0')}`);
    await mapLimit(siteIds, 10, async (siteId) => {
      await admin('POST', '/v1/sites', { id: siteId, name: `Cafe ${siteId}`, currency: 'EUR' });
      await admin('PATCH', `/v1/sites/${siteId}`, { cardGateway: 'stripe' });
      await admin('POST', '/v1/products', { sku: `${siteId}-latte`, name: 'Latte', priceMinor: 350, siteId });
      await admin('POST', '/v1/products', { sku: `${siteId}-cake`, name: 'Cake', priceMinor: 400, siteId });
    });
    const tableIds = siteIds.flatMap((siteId) =>
      Array.from({ length: TABLES_PER_CAFE }, (_, t) => ({ siteId, tableId: `${siteId}-t${t + 1}` })),
    );
    const tables: Table[] = await mapLimit(tableIds, 20, async ({ siteId, tableId }) => {
      await admin('POST', '/v1/machines', { id: tableId, name: `Table ${tableId}`, kind: 'table', siteId });
      const link = await admin('GET', `/v1/machines/${tableId}/table-link`);
      return { siteId, tableId, token: String(link.token) };
    });
    const kitchens = new Map(
      siteIds.map((siteId) => [
        siteId,
        liveWaiter(url, { token: ADMIN_TOKEN }, `kitchen:${siteId}`, 'order_created'),
      ]),
    );
    for (const k of kitchens.values()) sockets.push(k);
    await Promise.all([...kitchens.values()].map((k) => k.ready));

    const orderBody = (t: Table) => ({
      siteId: t.siteId,
      tableId: t.tableId,
      items: [
        { sku: `${t.siteId}-latte`, qty: 1 },
        { sku: `${t.siteId}-cake`, qty: 1 },
      ],
    });
    const order = (t: Table) => must(call(url, 'POST', '/api/orders', t.token, orderBody(t)), 'order');
    const payByCard = async (t: Table, orderId: string) => {
      const pay = await must(
        call(url, 'POST', '/api/payments/initiate', t.token, { orderId, method: 'card' }),
        'initiate card',
      );
      return decodeURIComponent(new URL(String(pay.checkoutUrl)).pathname.split('/').pop()!);
    };
    /** Stripe's webhook for a checkout the guest paid; resolves with the time it was sent. */
    const webhook = async (sessionId: string) => {
      const { payload, signature } = stripe!.checkoutPaid(sessionId);
      const t = performance.now();
      const res = await must(
        call(url, 'POST', '/webhooks/stripe', '', payload, { 'stripe-signature': signature }),
        'webhook',
      );
      if (res.outcome !== 'settled') throw new Error(`webhook outcome ${JSON.stringify(res)}`);
      return t;
    };

    // (1) every table orders, opens a card checkout and pays at once (paced): order → kitchen.
    console.log(`[cafe] round 1: ${tables.length} guests order and pay by card at ${RATE}/s…`);
    const orderToKitchen: number[] = [];
    const orderCalls: number[] = [];
    const initiateCalls: number[] = [];
    const hookToKitchen: number[] = [];
    await paced(tables, RATE, async (t) => {
      const t0 = performance.now();
      const placed = await order(t);
      const t1 = performance.now();
      const sessionId = await payByCard(t, String(placed.id));
      const t2 = performance.now();
      const onDisplay = kitchens.get(t.siteId)!.next(String(placed.id));
      const sent = await webhook(sessionId);
      const shown = await onDisplay;
      orderCalls.push(t1 - t0);
      initiateCalls.push(t2 - t1);
      hookToKitchen.push(shown - sent);
      orderToKitchen.push(shown - t0);
    });

    // (2) a second order per table, each guest's page connected; the webhooks arrive paced.
    console.log(`[cafe] round 2: ${tables.length} guest pages connected, webhooks at ${RATE}/s…`);
    const ready = await mapLimit(tables, 20, async (t) => {
      const placed = await order(t);
      const page = liveWaiter(
        url,
        { orderToken: String(placed.orderToken) },
        `order:${placed.id}`,
        'payment_completed',
      );
      sockets.push(page);
      await page.ready;
      return { t, orderId: String(placed.id), sessionId: await payByCard(t, String(placed.id)), page };
    });
    const hookToGuest: number[] = [];
    await paced(ready, RATE, async (r) => {
      const onPage = r.page.next(r.orderId);
      const onDisplay = kitchens.get(r.t.siteId)!.next(r.orderId);
      const sent = await webhook(r.sessionId);
      hookToGuest.push((await onPage) - sent);
      await onDisplay;
    });

    // Baselines: the same server's bare route, same client, same pacing; one commit on this disk.
    const baseline: number[] = [];
    await paced(tables.slice(0, 300), RATE, async () => {
      const t0 = performance.now();
      await fetch(`${url}/healthz`).then((r) => r.text());
      baseline.push(performance.now() - t0);
    });

    // Each paid order reached its kitchen exactly once.
    const shownTwice = [...kitchens.values()].reduce(
      (n, k) => n + [...k.seen.values()].filter((c) => c > 1).length,
      0,
    );
    const shown = [...kitchens.values()].reduce((n, k) => n + k.seen.size, 0);

    const rows = (label: string, s: Summary) => [
      label,
      int(s.count),
      ms(s.p50),
      ms(s.p95),
      ms(s.p99),
      ms(s.max),
    ];
    const kitchen = summarize(orderToKitchen);
    const guest = summarize(hookToGuest);
    const bare = summarize(baseline);
    const commit = summarize(commitBaseline(300));
    printTable(
      `Cafes — ${cafes} × ${TABLES_PER_CAFE} tables on SQLite (file, synchronous=FULL), card payments, guests at ${RATE}/s`,
      ['path', 'samples', 'p50', 'p95', 'p99', 'max'],
      [
        rows('order → kitchen display (order, checkout, webhook)', kitchen),
        rows('  of which POST /api/orders', summarize(orderCalls)),
        rows('  of which POST /api/payments/initiate (card)', summarize(initiateCalls)),
        rows('  of which webhook → kitchen display', summarize(hookToKitchen)),
        rows(`payment webhook → guest page (${int(tables.length)} pages open)`, guest),
        rows('baseline: GET /healthz, same server', bare),
        rows('baseline: one fsynced SQLite commit, same disk', commit),
      ],
    );
    console.log(
      `[cafe] kitchen displays got ${shown} paid orders for ${tables.length * 2} paid (${shownTwice} twice)`,
    );
    verdict(
      'every paid order on its kitchen display once',
      shown === tables.length * 2 && shownTwice === 0,
      `${shown}/${tables.length * 2}`,
    );
    verdict(
      `order → kitchen display p99 ≤ ${TARGET_P99_MS} ms`,
      kitchen.p99 <= TARGET_P99_MS,
      ms(kitchen.p99),
    );
    verdict(
      `payment webhook → guest page p99 ≤ ${TARGET_P99_MS} ms`,
      guest.p99 <= TARGET_P99_MS,
      ms(guest.p99),
    );
    if (server.warnings.length > 0)
      console.log(
        `[cafe] the server logged ${server.warnings.length} warnings; first: ${server.warnings[0]}`,
      );
    return shown === tables.length * 2 && shownTwice === 0;
  } finally {
    for (const s of sockets) s.close();
    await server.stop();
    await stripe?.close();
    stripe = undefined;
  }
}
