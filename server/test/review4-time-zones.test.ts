// Review of the reports' `timeZone`: odd but valid zone names (lower-case utc, Etc/GMT+5, a
// three-part name) answer correctly, malformed ones are 400 on every route; machinesOnline
// averages over distinct sampling instants when several fine groups merge into one local bucket;
// tips merge per day, site, split and server only. Both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, engines, newSchemaName, startServer, type TestServer } from './harness.js';
import { reportRows } from './fixtures/report-rows.js';

describe.each(engines())('report time zones, second review (%s)', (engine) => {
  let server: TestServer;
  const schema = engine === 'postgres' ? newSchemaName() : undefined;

  beforeAll(async () => {
    server = await startServer({ engine, ...(schema ? { schema } : {}) });
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
  });

  const get = (path: string) => server.request('GET', path);
  const db = () => server.kioskhub.db;

  const { paidOrder, tip } = reportRows(() => server);
  const sample = (siteId: string, at: string, online: number, total: number) =>
    db()
      .insertInto('machine_online_samples')
      .values({ tenant_id: 'default', site_id: siteId, at, online, total, online_ids: '[]' })
      .execute();
  const revenue = (body: { revenue: { start: string; amountMinor: number }[] }) =>
    body.revenue.map((r) => [r.start, r.amountMinor]);

  it('odd but valid zone names: utc, Etc/UTC, Etc/GMT+5 (as %2B), a three-part name', async () => {
    const m = `tzodd-${engine}`;
    await server.createMachine(m);
    await paidOrder(m, '2026-11-09T02:59:59.999Z', 1); // 8 Nov in Buenos Aires (−03:00)
    await paidOrder(m, '2026-11-09T03:00:00.000Z', 2); // 9 Nov there, 8 Nov at −05:00
    await paidOrder(m, '2026-11-09T05:00:00.000Z', 4); // 9 Nov at −05:00
    const range = `from=2026-11-08T00:00:00Z&to=2026-11-11T00:00:00Z&bucket=day&machineId=${m}`;
    const utc = await get(`/v1/stats?${range}`);
    expect(utc.status).toBe(200);
    expect(revenue(utc.body)).toEqual([['2026-11-09T00:00:00.000Z', 7]]);
    for (const z of ['utc', 'Etc/UTC']) {
      const res = await get(`/v1/stats?${range}&timeZone=${z}`);
      expect(res.status, z).toBe(200);
      expect(revenue(res.body), z).toEqual(revenue(utc.body));
      expect(res.body.timeZone).toBe(z);
    }
    const gmt5 = await get(`/v1/stats?${range}&timeZone=Etc/GMT%2B5`);
    expect(gmt5.status, JSON.stringify(gmt5.body)).toBe(200);
    expect(revenue(gmt5.body)).toEqual([
      ['2026-11-08T05:00:00.000Z', 3],
      ['2026-11-09T05:00:00.000Z', 4],
    ]);
    // A bare + in a URL is a space: not a zone name.
    expect((await get(`/v1/stats?${range}&timeZone=Etc/GMT+5`)).status).toBe(400);
    const ba = await get(`/v1/stats?${range}&timeZone=America/Argentina/Buenos_Aires`);
    expect(ba.status, JSON.stringify(ba.body)).toBe(200);
    expect(revenue(ba.body)).toEqual([
      ['2026-11-08T03:00:00.000Z', 1],
      ['2026-11-09T03:00:00.000Z', 6],
    ]);
  });

  it('malformed zones are 400 naming timeZone on every route, and change nothing', async () => {
    const count = async () =>
      Number(
        (
          await db()
            .selectFrom('orders')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    const range = 'from=2026-11-08T00:00:00Z&to=2026-11-11T00:00:00Z';
    for (const zone of ['%2B05%3A30', '..%2F..%2Fx', 'Asia%2F..%2FKolkata', '%20UTC', 'Asia/Kolkata%00'])
      for (const path of [
        `/v1/stats?${range}&timeZone=${zone}`,
        `/v1/stats/water?${range}&timeZone=${zone}`,
        `/v1/water/kiosks/overview?timeZone=${zone}`,
        `/v1/cafe/tips?${range}&timeZone=${zone}`,
      ]) {
        const res = await get(path);
        expect(res.status, path).toBe(400);
        expect(res.body.error.code, path).toBe('VALIDATION_FAILED');
        expect(res.body.error.message, path).toContain('timeZone');
      }
    expect(await count()).toBe(before);
  });

  it('machinesOnline: a local bucket averages over its distinct sampling instants', async () => {
    // Two sites sampled at the same instants; Kolkata hours start at :30 UTC, so 19:00 and 19:15
    // (two quarter-hour groups) are one local hour, 19:45 the next.
    for (const site of ['tzs-a', 'tzs-b']) {
      await sample(site, '2026-11-09T19:00:00.000Z', 1, 2);
      await sample(site, '2026-11-09T19:15:00.000Z', 2, 2);
      await sample(site, '2026-11-09T19:45:00.000Z', 0, 2);
    }
    const hours = await get(
      '/v1/stats?from=2026-11-08T00:00:00Z&to=2026-11-11T00:00:00Z&bucket=hour&timeZone=Asia/Kolkata',
    );
    expect(hours.status, JSON.stringify(hours.body)).toBe(200);
    expect(hours.body.machinesOnline).toEqual([
      { at: '2026-11-09T18:30:00.000Z', online: 3, total: 4 },
      { at: '2026-11-09T19:30:00.000Z', online: 0, total: 4 },
    ]);
    // Over 31 days: local days; the three instants are one Kolkata day (10 November).
    const days = await get(
      '/v1/stats?from=2026-10-15T00:00:00Z&to=2026-11-20T00:00:00Z&bucket=day&timeZone=Asia/Kolkata',
    );
    expect(days.status).toBe(200);
    expect(days.body.machinesOnline).toEqual([{ at: '2026-11-09T18:30:00.000Z', online: 2, total: 4 }]);
  });

  it('tips merge per local day, site, split and server, never across servers', async () => {
    const site = `tztips-${engine}`;
    // All on 10 November in India (18:30 UTC on the 9th to 18:30 on the 10th), two UTC days.
    await tip(site, '2026-11-09T19:00:00.000Z', 10, 'u1');
    await tip(site, '2026-11-10T01:00:00.000Z', 20, 'u1');
    await tip(site, '2026-11-10T02:00:00.000Z', 40, 'u2');
    await tip(site, '2026-11-09T20:00:00.000Z', 80, null);
    const res = await get(
      `/v1/cafe/tips?siteId=${site}&from=2026-11-08T00:00:00Z&to=2026-11-12T00:00:00Z&timeZone=Asia/Kolkata`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(
      res.body.items.map(
        (i: {
          day: string;
          split: string;
          serverUserId: string | null;
          tipMinor: number;
          orders: number;
        }) => [i.day, i.split, i.serverUserId, i.tipMinor, i.orders],
      ),
    ).toEqual([
      ['2026-11-10', 'pool', null, 80, 1],
      ['2026-11-10', 'server', 'u1', 30, 2],
      ['2026-11-10', 'server', 'u2', 40, 1],
    ]);
    expect(res.body.totals).toEqual([{ currency: 'INR', tipMinor: 150 }]);
  });
});
