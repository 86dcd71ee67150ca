// Scenario `cash`: the restaurant kiosk path with 200 kiosks' cash sessions open. Measures
// (1) cash insert sent → `cash_session_updated` on that order's customer screen (/live with
// its orderToken) and (2) the paying insert sent → the receipt in the hands of a printer that is
// long-polling `?wait=`. Baseline in the same run: a bare route (`GET /healthz`) of the same
// server, sent the same way. Server on the embedded SQLite file, as a child process.
import { randomUUID } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import { ADMIN_TOKEN, startKioskhub } from '../lib/kioskhub.js';
import { mapLimit } from '../lib/pool.js';
import { summarize, type Summary } from '../lib/stats.js';
import { int, ms, printTable, verdict } from '../lib/table.js';

const SITE = 'benchsite';
const PRICE_MINOR = 25_000; // ₱250, paid with five ₱50 bills

async function call(
  url: string,
  method: string,
  path: string,
  key: string | null,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> =
    key === null ? { authorization: `Bearer ${ADMIN_TOKEN}` } : { 'x-api-key': key };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

interface Kiosk {
  id: string;
  key: string;
  orderNumber: string;
  screen: Socket;
}

function nextUpdate(screen: Socket, amountInserted: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no cash_session_updated within 30 s')), 30_000);
    const onUpdate = (e: { amountInserted: number }) => {
      if (e.amountInserted !== amountInserted) return;
      clearTimeout(timer);
      screen.off('cash_session_updated', onUpdate);
      resolve(performance.now());
    };
    screen.on('cash_session_updated', onUpdate);
  });
}

export async function cashScenario(options: { quick: boolean }): Promise<boolean> {
  const kioskCount = 200;
  const paidSamples = options.quick ? 20 : 60;
  const server = await startKioskhub({ engine: 'sqlite', name: 'kioskhub (cash)' });
  const kiosks: Kiosk[] = [];
  try {
    const url = server.url;
    await call(url, 'POST', '/v1/sites', null, { id: SITE, name: 'Bench Grill', currency: 'PHP' });
    await call(url, 'POST', '/v1/products', null, {
      sku: 'meal',
      name: 'Meal',
      priceMinor: PRICE_MINOR,
      siteId: SITE,
    });
    console.log(`[cash] opening ${kioskCount} kiosks' orders and cash sessions, one customer screen each…`);
    const opened = await mapLimit(
      Array.from({ length: kioskCount }, (_, i) => `BK${String(i + 1).padStart(4, '0')}`),
      20,
      async (id) => {
        const machine = await call(url, 'POST', '/v1/machines', null, { id, kind: 'kiosk', siteId: SITE });
        const key = String(machine.body.key);
        const order = await call(url, 'POST', '/v1/orders', key, { items: [{ sku: 'meal', qty: 1 }] });
        const init = await call(url, 'POST', '/api/cash-payment/init', key, {
          orderNumber: order.body.orderNumber,
          totalAmount: PRICE_MINOR / 100,
        });
        const screen = io(`${url}/live`, {
          auth: { orderToken: init.body.orderToken },
          transports: ['websocket'],
          reconnection: false,
          forceNew: true,
        });
        await new Promise<void>((resolve, reject) => {
          screen.once('connect', () =>
            screen.emit('subscribe', { room: `order:${order.body.orderNumber}` }, () => resolve()),
          );
          screen.once('connect_error', reject);
        });
        return { id, key, orderNumber: String(order.body.orderNumber), screen };
      },
    );
    kiosks.push(...opened);

    // (1) four ₱50 inserts per kiosk, round-robin, sent open-loop at RATE/s (a busy lunch hour:
    // every kiosk's acceptor taking a bill every few seconds): 800 samples.
    const RATE = 40;
    const paced = async <T>(items: readonly T[], fn: (item: T) => Promise<void>) => {
      const started = performance.now();
      await Promise.all(
        items.map(async (item, i) => {
          const due = started + (i * 1000) / RATE - performance.now();
          if (due > 0) await new Promise((r) => setTimeout(r, due));
          await fn(item);
        }),
      );
    };
    const insertLatencies: number[] = [];
    for (let round = 1; round <= 4; round++) {
      await paced(kiosks, async (k) => {
        const expected = nextUpdate(k.screen, 50 * round);
        const t0 = performance.now();
        const res = await call(url, 'POST', '/api/cash-payment/update', k.key, {
          orderNumber: k.orderNumber,
          amountAdded: 50,
          eventId: randomUUID(),
          kind: 'BILL',
        });
        if (res.status !== 200) throw new Error(`insert: ${res.status} ${JSON.stringify(res.body)}`);
        insertLatencies.push((await expected) - t0);
      });
    }
    // Baseline: the same server's bare route, same client, same pacing.
    const baseline: number[] = [];
    await paced(
      Array.from({ length: 800 }, (_, i) => i),
      async () => {
        const t0 = performance.now();
        await fetch(`${url}/healthz`).then((r) => r.text());
        baseline.push(performance.now() - t0);
      },
    );

    // (2) the paying insert while one printer of the site long-polls: sequential samples.
    const printLatencies: number[] = [];
    for (const k of kiosks.slice(0, paidSamples)) {
      const waiting = call(url, 'GET', '/api/receipt/queue/next?wait=25', k.key).then((r) => ({
        r,
        at: performance.now(),
      }));
      await new Promise((r) => setTimeout(r, 20)); // let the long-poll reach the server first
      const t0 = performance.now();
      const paid = await call(url, 'POST', '/api/cash-payment/update', k.key, {
        orderNumber: k.orderNumber,
        amountAdded: 50,
        eventId: randomUUID(),
        kind: 'BILL',
      });
      if (!paid.body?.isComplete) throw new Error(`paying insert did not complete ${k.orderNumber}`);
      const { r, at } = await waiting;
      if (r.status !== 200 || r.body.receipt.orderNumber !== k.orderNumber)
        throw new Error(`printer got ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      printLatencies.push(at - t0);
      await call(url, 'POST', `/api/receipt/queue/complete/${r.body.jobId}`, k.key);
    }

    const rows = (label: string, s: Summary) => [
      label,
      int(s.count),
      ms(s.p50),
      ms(s.p95),
      ms(s.p99),
      ms(s.max),
    ];
    const insert = summarize(insertLatencies);
    const print = summarize(printLatencies);
    const bare = summarize(baseline);
    printTable(
      `Cash kiosks — ${kioskCount} open sessions on SQLite (file, synchronous=FULL), inserts at ${RATE}/s`,
      ['path', 'samples', 'p50', 'p95', 'p99', 'max'],
      [
        rows('cash insert → customer screen event', insert),
        rows('paying insert → waiting printer has receipt', print),
        rows('baseline: GET /healthz, same server', bare),
      ],
    );
    verdict('cash insert → screen p99 ≤ 20 ms', insert.p99 <= 20, ms(insert.p99));
    verdict('paid → waiting printer p99 ≤ 50 ms', print.p99 <= 50, ms(print.p99));
    return true;
  } finally {
    for (const k of kiosks) k.screen.close();
    await server.stop();
  }
}
