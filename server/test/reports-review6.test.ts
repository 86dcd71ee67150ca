// Reporting review 6: the time range of the orders list, its CSV export and the tips report. Each
// test shows a defect against the real server and database on both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, engines, newSchemaName, startServer, type TestServer } from './harness.js';
import { insertOrders, orderRow, reportRows } from './fixtures/report-rows.js';

describe.each(engines())('reports review 6 (%s)', (engine) => {
  let server: TestServer;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;

  beforeAll(async () => {
    const env = { WATER_ALERT_SWEEP_MS: '3600000', DASHBOARD_SWEEP_MS: '3600000' };
    server = await startServer({ engine, env, ...(schema ? { schema } : {}) });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const get = (path: string) => server.request('GET', path);
  const { tip } = reportRows(() => server);
  const csvIds = async (query: string): Promise<string[]> => {
    const res = await fetch(`${server.url}/v1/orders/export.csv${query}`, {
      headers: { authorization: `Bearer ${server.kioskhub.config.adminToken}` },
    });
    const body = await res.text();
    expect(res.status, body).toBe(200);
    return body
      .trimEnd()
      .split('\r\n')
      .slice(1)
      .map((l) => l.split(',')[0]!);
  };

  // Promise: docs/dashboard.md, "`GET /v1/orders` — new filters": "`from`, `to` (ISO 8601 times with
  // a zone; `from` inclusive, `to` exclusive, on `createdAt`)", and the export takes "The same
  // filters as the list"; docs/cafe.md §11: tips "per day of payment" for `from`/`to` "ISO times".
  // `to=9999-12-31T23:00:00-05:00` is a valid RFC 3339 time (the route's schema accepts it), later
  // than every order, so every order is before it.
  // Code at fault: server/src/modules/orders/orders.routes.ts:49 (orderListFilter's `iso`) and
  // server/src/modules/cafe/cafe.routes.ts:280 turn it into `new Date(t).toISOString()`, which for
  // an instant after 9999-12-31T23:59:59.999Z is the extended form `+010000-01-01T04:00:00.000Z`;
  // orders.repo.ts:82 / cafe-tips.ts:51 then compare it as text with the stored
  // `2026-…` times, and `'2026…' < '+010000…'` is false ('+' sorts before digits): no row is ever
  // "before" it, so the list, the CSV export (a complete-looking, header-only file) and the tips
  // report are silently empty.
  // Fix: refuse (400 VALIDATION_FAILED) or clamp times whose UTC year is outside 0000–9999 where the
  // date-time format is checked (platform/http/validation.ts), so every stored-text comparison
  // gets a 4-digit-year ISO time.
  it('a `to` later than year 9999 in UTC keeps every order before it (list, CSV, tips), or is 400', async () => {
    const created = '2026-05-04T10:00:00.000Z';
    const id = `rv6-far-to-${engine}`;
    await insertOrders(server, [orderRow(id, null, created, { customer_name: 'Far Future' })]);
    const site = `rv6cafe-${engine}`;
    await tip(site, created, 150);
    const to = encodeURIComponent('9999-12-31T23:00:00-05:00');
    const near = encodeURIComponent('9999-12-31T23:59:59Z');

    // A 4-digit UTC year works: the order is there.
    expect(await csvIds(`?to=${near}`)).toContain(id);

    const list = await get(`/v1/orders?to=${to}&limit=200`);
    const tips = await get(`/v1/cafe/tips?siteId=${site}&from=2026-01-01T00:00:00Z&to=${to}`);
    const res = await fetch(`${server.url}/v1/orders/export.csv?to=${to}`, {
      headers: { authorization: `Bearer ${server.kioskhub.config.adminToken}` },
    });
    const csv = await res.text();
    const outcome = {
      list: list.status === 400 ? 400 : list.body.items.some((o: { id: string }) => o.id === id),
      csv: res.status === 400 ? 400 : csv.includes(id),
      tips: tips.status === 400 ? 400 : tips.body.totals,
    };
    // Either answer is acceptable: the order counted, or a clear 400; never a silent nothing.
    const ok = (v: unknown, counted: unknown) => v === 400 || JSON.stringify(v) === JSON.stringify(counted);
    expect(
      {
        list: ok(outcome.list, true),
        csv: ok(outcome.csv, true),
        tips: ok(outcome.tips, [{ currency: 'INR', tipMinor: 150 }]),
      },
      JSON.stringify(outcome),
    ).toEqual({ list: true, csv: true, tips: true });
  });

  // Promise: docs/dashboard.md `GET /v1/stats`: "a range is at most 366 days and `from < to`, else
  // `400`"; docs/water-dashboard.md: "`from` must be before `to` (else `400 VALIDATION_FAILED`)";
  // docs/cafe.md §11: "`from` before `to`". The orders export (docs/dashboard.md) promises "A
  // download that completes is the whole export": an operator who swapped the dates gets a
  // complete, header-only CSV that reads as "no orders in this period" (and a link request for it
  // succeeds), where every other report answers the same mistake with a clear 400.
  // Code at fault: server/src/modules/dashboard/export.routes.ts:98 (the link) and :140 (the
  // export) call orderListFilter (orders/orders.routes.ts:48), which never compares `from` and
  // `to`; orders.repo.ts:81-82 then selects nothing.
  // Fix: in orderListFilter, throw validation('from must be before to') when both are given and
  // `from` is not before `to` (the list, the export and the link request share it).
  it('an export whose `from` is after its `to` is 400, as every other report, never an empty file', async () => {
    const id = `rv6-swapped-${engine}`;
    await insertOrders(server, [orderRow(id, null, '2026-06-15T12:00:00.000Z')]);
    const from = encodeURIComponent('2026-06-30T00:00:00Z');
    const to = encodeURIComponent('2026-06-01T00:00:00Z');
    // The same range the right way round holds the order.
    expect(await csvIds(`?from=${to}&to=${from}`)).toContain(id);
    // Other reports refuse swapped dates.
    expect((await get(`/v1/stats?from=${from}&to=${to}`)).status).toBe(400);

    const res = await fetch(`${server.url}/v1/orders/export.csv?from=${from}&to=${to}`, {
      headers: { authorization: `Bearer ${server.kioskhub.config.adminToken}` },
    });
    const body = await res.text();
    expect({ status: res.status, body }).toMatchObject({ status: 400 });
    const link = await server.request('POST', '/v1/orders/export-links', {
      body: { from: '2026-06-30T00:00:00Z', to: '2026-06-01T00:00:00Z' },
    });
    expect(link.status).toBe(400);
  });
});
