// `GET /v1/orders/export.csv` streamed: read page by page (200 orders) and written as read, so the
// operator's download starts at once and the server holds one page, whatever the export's size.
// Shown against the real server and database on both engines: every row exactly once and
// byte-identical to orderCsvHeader/orderCsvRow, filters and tenants kept, the first bytes out
// while later pages are still unread, a client that goes away stops the reading, a database
// failure mid-export breaks the download, and the row cap (EXPORT_MAX_ROWS) breaks it too.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderView } from '@kioskhub/protocol';
import { orderCsvHeader, orderCsvRow } from '../src/modules/dashboard/csv.js';
import { dropSchema, engines, newSchemaName, startServer, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';
import { insertOrders, orderRow } from './fixtures/report-rows.js';

const SEEDED = 650; // more than three pages of 200
const T0 = Date.UTC(2026, 2, 1);
const at = (i: number) => new Date(T0 + i * 60_000).toISOString();
const seededId = (i: number) => `exs-${String(i).padStart(6, '0')}`;
/** Seeded order `i`: every fifth CANCELLED, every seventh in KWD, and names that need quoting. */
const statusOf = (i: number) => (i % 5 === 0 ? 'CANCELLED' : 'PAID');

type Orders = TestServer['kioskhub']['services']['orders'];
type ListFilter = Parameters<Orders['list']>[0];

/**
 * Holds `GET /v1/orders/export.csv`'s reading of orders at its second page until released, and
 * counts the pages read: the export reads through this very service object (its `list`).
 */
function holdAtSecondPage(server: TestServer) {
  const orders = server.kioskhub.services.orders;
  const real = orders.list;
  const state = { pagesAsked: 0, released: false };
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let heldNow!: () => void;
  const held = new Promise<void>((resolve) => (heldNow = resolve));
  orders.list = (async (filter: ListFilter) => {
    state.pagesAsked += 1;
    if (state.pagesAsked >= 2) {
      heldNow();
      await gate;
    }
    return real(filter);
  }) as Orders['list'];
  return {
    state,
    /** Resolves once the second page has been asked for (and is being held). */
    held,
    release() {
      state.released = true;
      release();
    },
    restore() {
      orders.list = real;
      release();
    },
  };
}

const decoder = () => new TextDecoder();

async function readRest(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  text: ReturnType<typeof decoder>,
): Promise<string> {
  let out = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return out + text.decode();
    out += text.decode(value, { stream: true });
  }
}

describe.each(engines())('orders CSV export, streamed (%s)', (engine) => {
  let server: TestServer;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  let staff = '';
  let otherStaff = '';

  beforeAll(async () => {
    const env = { WATER_ALERT_SWEEP_MS: '3600000', DASHBOARD_SWEEP_MS: '3600000' };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    staff = await staffToken(server, 'exporter@default.test', 'staff');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other Co' } })).status,
    ).toBe(201);
    otherStaff = await staffToken(server, 'exporter@other.test', 'staff', 'other');
    await server.createMachine('EXS1');
    await server.createMachine('EXS2');
    const row = (id: string, i: number, tenant: string, machine: string | null) => {
      const paid = statusOf(i) === 'PAID';
      return orderRow(id, machine, at(i), {
        tenant_id: tenant,
        order_number: i % 3 === 0 ? `N-${id}` : null,
        amount: 2000 + i,
        currency: i % 7 === 0 ? 'KWD' : 'INR',
        provider: paid ? 'razorpay' : null,
        provider_payment_id: paid ? `pay_${id}` : null,
        paid_at: paid ? at(i) : null,
        status: statusOf(i),
        customer_name: i % 11 === 0 ? `=cmd|' /C calc'!A${i}` : i % 4 === 0 ? `Ravi, "R" ${i}` : null,
      });
    };
    const rows = [];
    for (let i = 0; i < SEEDED; i++) rows.push(row(seededId(i), i, 'default', 'EXS1'));
    // The same tenant on another machine, and another tenant at the very same times.
    for (let i = 0; i < 30; i++) rows.push(row(`exs2-${String(i).padStart(6, '0')}`, i, 'default', 'EXS2'));
    for (let i = 0; i < 250; i++) rows.push(row(`exo-${String(i).padStart(6, '0')}`, i, 'other', null));
    await insertOrders(server, rows);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const exportUrl = (query: string) => `${server.url}/v1/orders/export.csv${query}`;
  const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

  /** The CSV today's format gives for these orders: header, rows, CRLF after each. */
  const csvOf = (orders: readonly OrderView[]) =>
    [orderCsvHeader(), ...orders.map((o) => orderCsvRow(o))].map((l) => `${l}\r\n`).join('');

  /** Every order the list service gives for a filter, page by page (what the export showed). */
  const listed = async (filter: Omit<ListFilter, 'limit' | 'cursor'>) => {
    const all: OrderView[] = [];
    let cursor: string | undefined;
    do {
      const page = await server.kioskhub.services.orders.list({
        ...filter,
        limit: 200,
        ...(cursor ? { cursor } : {}),
      });
      all.push(...(page.items as OrderView[]));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return all;
  };

  it('exports every matching row exactly once, newest first, in today’s exact format', async () => {
    const res = await fetch(exportUrl('?machineId=EXS1'), auth(staff));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="orders-[0-9T-]+\.csv"$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await res.text();
    const ids = body
      .trimEnd()
      .split('\r\n')
      .slice(1)
      .map((l) => l.split(',')[0]);
    expect(ids).toEqual(Array.from({ length: SEEDED }, (_, i) => seededId(SEEDED - 1 - i)));
    expect(body).toBe(csvOf(await listed({ tenantId: 'default', machineId: 'EXS1' })));
    // The quoting and the formula guard reached the file.
    expect(body).toContain(`\r\n${seededId(645)},N-${seededId(645)},`);
    expect(body).toContain(`,"Ravi, ""R"" 644",`);
    expect(body).toContain(`,'=cmd|' /C calc'!A638,`);
  });

  it('applies status, from and to, and never shows another tenant’s orders', async () => {
    const q = `?status=PAID&from=${encodeURIComponent(at(100))}&to=${encodeURIComponent(at(600))}`;
    const body = await (await fetch(exportUrl(q), auth(staff))).text();
    const expected = [];
    for (let i = 599; i >= 100; i--)
      if (statusOf(i) === 'PAID') {
        expected.push(seededId(i));
        if (i < 30) expected.push(`exs2-${String(i).padStart(6, '0')}`);
      }
    const ids = body
      .trimEnd()
      .split('\r\n')
      .slice(1)
      .map((l) => l.split(',')[0]);
    expect(ids).toEqual(expected);
    expect(body).toBe(
      csvOf(await listed({ tenantId: 'default', status: 'PAID', from: at(100), to: at(600) })),
    );

    // Unfiltered: the caller's tenant only, on both sides.
    const mine = (await (await fetch(exportUrl(''), auth(staff))).text()).trimEnd().split('\r\n').slice(1);
    expect(mine).toHaveLength(SEEDED + 30);
    expect(mine.filter((l) => l.startsWith('exo-'))).toEqual([]);
    const theirs = (await (await fetch(exportUrl(''), auth(otherStaff))).text())
      .trimEnd()
      .split('\r\n')
      .slice(1);
    expect(theirs.map((l) => l.split(',')[0])).toEqual(
      Array.from({ length: 250 }, (_, i) => `exo-${String(249 - i).padStart(6, '0')}`),
    );
  });

  it('answers bad input and a missing credential before any CSV, changing nothing', async () => {
    const before = await server.kioskhub.db
      .selectFrom('orders')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    for (const query of ['?from=2026-12-31T23:59:60Z', '?status=EATEN', '?limit=5', '?to=yesterday']) {
      const res = await fetch(exportUrl(query), auth(staff));
      expect({ query, status: res.status, type: res.headers.get('content-type') }).toEqual({
        query,
        status: 400,
        type: 'application/json; charset=utf-8',
      });
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED');
    }
    const anonymous = await fetch(exportUrl('?machineId=EXS1'));
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('content-type')).toMatch(/^application\/json/);
    const after = await server.kioskhub.db
      .selectFrom('orders')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  // Structural, not timed: the server is held before its second page; whatever arrives by then
  // can only have come from the first page.
  it('sends the first rows while later pages are still unread, and reads each page once', async () => {
    const hold = holdAtSecondPage(server);
    try {
      const text = decoder();
      const first = (async () => {
        const res = await fetch(exportUrl('?machineId=EXS1'), auth(staff));
        const reader = res.body!.getReader();
        const chunk = await reader.read();
        return {
          status: res.status,
          reader,
          text: text.decode(chunk.value, { stream: true }),
          pagesAsked: hold.state.pagesAsked,
          secondPageReleased: hold.state.released,
        };
      })();
      // Bounds the failing case only (a server that sends nothing until it has read everything).
      const stuck = hold.held.then(
        () => new Promise<'nothing sent'>((r) => setTimeout(() => r('nothing sent'), 15_000)),
      );
      const got = await Promise.race([first, stuck]);
      if (got === 'nothing sent') {
        hold.release();
        expect.fail('no byte of the export arrived while the server was held at its second page');
      }
      expect(got).toMatchObject({ status: 200, secondPageReleased: false });
      expect(got.pagesAsked).toBeLessThanOrEqual(2);
      expect(got.text.startsWith(`${orderCsvHeader()}\r\n${seededId(SEEDED - 1)},`)).toBe(true);
      hold.release();
      const body = got.text + (await readRest(got.reader, text));
      // 650 orders: pages of 200, 200, 200 and 50, each read once.
      expect(hold.state.pagesAsked).toBe(4);
      hold.restore();
      expect(body).toBe(csvOf(await listed({ tenantId: 'default', machineId: 'EXS1' })));
    } finally {
      hold.restore();
    }
  }, 60_000);

  it('stops reading when the client goes away mid-export', async () => {
    const hold = holdAtSecondPage(server);
    try {
      // The server's side of the export request, to see it closed.
      let closed!: Promise<void>;
      const seen = new Promise<void>((resolve) => {
        const onRequest = (req: { url?: string }, res: NodeJS.EventEmitter) => {
          if (!req.url?.startsWith('/v1/orders/export.csv')) return;
          server.kioskhub.app.server.off('request', onRequest);
          closed = new Promise<void>((r) => res.once('close', () => r()));
          resolve();
        };
        server.kioskhub.app.server.on('request', onRequest);
      });
      const abort = new AbortController();
      const res = await fetch(exportUrl('?machineId=EXS1'), { ...auth(staff), signal: abort.signal });
      await seen;
      const reader = res.body!.getReader();
      expect((await reader.read()).done).toBe(false);
      await hold.held;
      abort.abort();
      await closed;
      const asked = hold.state.pagesAsked;
      expect(asked).toBe(2);
      hold.release();
      // Give the held page its time to come back; nothing may ask for a third.
      await new Promise((r) => setTimeout(r, 300));
      expect(hold.state.pagesAsked).toBe(asked);
    } finally {
      hold.restore();
    }
  }, 60_000);

  it('breaks the download when the database fails mid-export (never a short file that looks whole)', async () => {
    const hold = holdAtSecondPage(server);
    let renamed = false;
    try {
      const res = await fetch(exportUrl('?machineId=EXS1'), auth(staff));
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const text = decoder();
      const first = await reader.read();
      await hold.held;
      // The orders table goes away under the export: its next page fails in the database.
      await sql`alter table orders rename to orders_gone`.execute(server.kioskhub.db);
      renamed = true;
      hold.release();
      let received = text.decode(first.value, { stream: true });
      const rest = readRest(reader, text).then((t) => (received += t));
      await expect(rest).rejects.toThrow();
      expect(received.startsWith(orderCsvHeader())).toBe(true);
    } finally {
      hold.restore();
      if (renamed) await sql`alter table orders_gone rename to orders`.execute(server.kioskhub.db);
    }
    // The server goes on answering.
    expect((await fetch(exportUrl('?machineId=EXS2'), auth(staff))).status).toBe(200);
  }, 60_000);
});

// EXPORT_MAX_ROWS reaches the route through installDashboard (config.exportMaxRows → maxRows).
describe.each(engines())('orders CSV export at its row cap (%s)', (engine) => {
  let server: TestServer;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;
  let staff = '';
  const CAP = 450;

  beforeAll(async () => {
    const env = {
      EXPORT_MAX_ROWS: String(CAP),
      WATER_ALERT_SWEEP_MS: '3600000',
      DASHBOARD_SWEEP_MS: '3600000',
    };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
    staff = await staffToken(server, 'capped@default.test', 'staff');
    await server.createMachine('CAP1');
    const rows = [];
    for (let i = 0; i < CAP + 1; i++) rows.push(orderRow(seededId(i), 'CAP1', at(i)));
    await insertOrders(server, rows);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const get = (query: string) =>
    fetch(`${server.url}/v1/orders/export.csv${query}`, { headers: { authorization: `Bearer ${staff}` } });

  it('gives exactly the cap in full, and breaks the download rather than cut it silently', async () => {
    // Exactly CAP matching rows (the oldest left out by `from`): the whole file.
    const whole = await get(`?machineId=CAP1&from=${encodeURIComponent(at(1))}`);
    expect(whole.status).toBe(200);
    const lines = (await whole.text()).trimEnd().split('\r\n');
    expect(lines).toHaveLength(CAP + 1);
    expect(lines.at(-1)?.split(',')[0]).toBe(seededId(1));

    // One more: the download fails instead of ending as a file that looks complete.
    const over = await get('?machineId=CAP1');
    expect(over.status).toBe(200);
    await expect(over.text()).rejects.toThrow();
  });
});
