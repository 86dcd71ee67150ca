// Reports by the operator's local day: GET /v1/stats, /v1/stats/water, /v1/water/kiosks/overview
// and /v1/cafe/tips take `timeZone` (an IANA zone, default UTC). Rows just before and after a
// local midnight land in their local day with the zone and in their UTC day without it; a zone
// Intl does not know is 400; Berlin's 25-hour day has its own boundaries. Both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/platform/db/database.js';
import { dropSchema, engines, newSchemaName, startServer, type TestServer } from './harness.js';
import { reportRows } from './fixtures/report-rows.js';

const KOLKATA = 'Asia/Kolkata';
const BERLIN = 'Europe/Berlin';
const DAY = 86_400_000;
const IST = 5.5 * 3_600_000;

describe.each(engines())('report time zones (%s)', (engine) => {
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
  const dispense = (kioskId: string, at: string, ml: number) =>
    db()
      .insertInto('water_dispenses')
      .values({
        id: newId(),
        tenant_id: 'default',
        kiosk_id: kioskId,
        customer_id: 'tz-customer',
        tap: 1,
        held_ml: ml,
        dispensed_ml: ml,
        status: 'SETTLED',
        request_key: null,
        kiosk_txn_id: newId(),
        flagged: 0,
        at,
        hold_expires_at: null,
        settled_at: at,
      })
      .execute();

  // Midnight in India on 10 November 2026 is 18:30 UTC on the 9th.
  const beforeMidnight = '2026-11-09T18:29:59.999Z';
  const atMidnight = '2026-11-09T18:30:00.000Z';
  const range = 'from=2026-11-08T00:00:00Z&to=2026-11-11T00:00:00Z';

  it('GET /v1/stats: revenue by Kolkata day and hour with the zone, by UTC day and hour without', async () => {
    const m = `tzstats-${engine}`;
    await server.createMachine(m);
    await paidOrder(m, beforeMidnight, 100);
    await paidOrder(m, atMidnight, 200);

    const local = await get(`/v1/stats?${range}&bucket=day&machineId=${m}&timeZone=${KOLKATA}`);
    expect(local.status, JSON.stringify(local.body)).toBe(200);
    expect(local.body.timeZone).toBe(KOLKATA);
    expect(local.body.revenue).toEqual([
      {
        start: '2026-11-08T18:30:00.000Z',
        currency: 'INR',
        amountMinor: 100,
        orders: 1,
        paidMinor: 100,
        refundedMinor: 0,
      },
      {
        start: '2026-11-09T18:30:00.000Z',
        currency: 'INR',
        amountMinor: 200,
        orders: 1,
        paidMinor: 200,
        refundedMinor: 0,
      },
    ]);
    const utc = await get(`/v1/stats?${range}&bucket=day&machineId=${m}`);
    expect(utc.status).toBe(200);
    expect(utc.body).not.toHaveProperty('timeZone');
    expect(utc.body.revenue).toEqual([
      {
        start: '2026-11-09T00:00:00.000Z',
        currency: 'INR',
        amountMinor: 300,
        orders: 2,
        paidMinor: 300,
        refundedMinor: 0,
      },
    ]);
    // The other figures do not depend on the zone.
    expect(local.body.ordersByStatus).toEqual(utc.body.ordersByStatus);
    expect(local.body.dispense).toEqual(utc.body.dispense);

    // Hours in India start at :30 UTC.
    const hours = 'from=2026-11-09T17:00:00Z&to=2026-11-09T20:00:00Z&bucket=hour';
    const localHours = await get(`/v1/stats?${hours}&machineId=${m}&timeZone=${KOLKATA}`);
    expect(localHours.body.revenue).toEqual([
      {
        start: '2026-11-09T17:30:00.000Z',
        currency: 'INR',
        amountMinor: 100,
        orders: 1,
        paidMinor: 100,
        refundedMinor: 0,
      },
      {
        start: '2026-11-09T18:30:00.000Z',
        currency: 'INR',
        amountMinor: 200,
        orders: 1,
        paidMinor: 200,
        refundedMinor: 0,
      },
    ]);
    const utcHours = await get(`/v1/stats?${hours}&machineId=${m}`);
    expect(utcHours.body.revenue).toEqual([
      {
        start: '2026-11-09T18:00:00.000Z',
        currency: 'INR',
        amountMinor: 300,
        orders: 2,
        paidMinor: 300,
        refundedMinor: 0,
      },
    ]);
    // UTC named is the default, and says so.
    const named = await get(`/v1/stats?${range}&bucket=day&machineId=${m}&timeZone=UTC`);
    expect({ ...named.body, timeZone: undefined, machinesOnline: [] }).toEqual({
      ...utc.body,
      timeZone: undefined,
      machinesOnline: [],
    });
    expect(named.body.timeZone).toBe('UTC');
  });

  it('GET /v1/stats: Berlin’s 25-hour day in October and its repeated 02:00 hour', async () => {
    const m = `tzberlin-${engine}`;
    await server.createMachine(m);
    // 25 October 2026 in Berlin runs from 22:00 UTC on the 24th to 23:00 UTC on the 25th.
    await paidOrder(m, '2026-10-24T21:59:59.999Z', 1); // 24 Oct, 23:59:59 CEST
    await paidOrder(m, '2026-10-24T22:00:00.000Z', 10); // 25 Oct, 00:00 CEST
    await paidOrder(m, '2026-10-25T00:30:00.000Z', 100); // 02:30 CEST
    await paidOrder(m, '2026-10-25T01:30:00.000Z', 1000); // 02:30 CET
    await paidOrder(m, '2026-10-25T22:59:59.999Z', 10_000); // 25 Oct, 23:59:59 CET
    await paidOrder(m, '2026-10-25T23:00:00.000Z', 100_000); // 26 Oct, 00:00 CET
    const days = await get(
      `/v1/stats?from=2026-10-24T00:00:00Z&to=2026-10-27T00:00:00Z&bucket=day&machineId=${m}&timeZone=${BERLIN}`,
    );
    expect(days.status, JSON.stringify(days.body)).toBe(200);
    expect(
      days.body.revenue.map((r: { start: string; amountMinor: number }) => [r.start, r.amountMinor]),
    ).toEqual([
      ['2026-10-23T22:00:00.000Z', 1],
      ['2026-10-24T22:00:00.000Z', 11_110],
      ['2026-10-25T23:00:00.000Z', 100_000],
    ]);
    const hours = await get(
      `/v1/stats?from=2026-10-24T23:00:00Z&to=2026-10-25T03:00:00Z&bucket=hour&machineId=${m}&timeZone=${BERLIN}`,
    );
    expect(
      hours.body.revenue.map((r: { start: string; amountMinor: number }) => [r.start, r.amountMinor]),
    ).toEqual([
      ['2026-10-25T00:00:00.000Z', 100],
      ['2026-10-25T01:00:00.000Z', 1000],
    ]);
  });

  it('GET /v1/stats: a zone whose offset moves by half an hour (Lord Howe) over a year of hours', async () => {
    const m = `tzlordhowe-${engine}`;
    await server.createMachine(m);
    // +11:00 in January and December, +10:30 in July: local hours start at :30 UTC then.
    await paidOrder(m, '2026-07-10T01:29:59.999Z', 1); // 11:59:59
    await paidOrder(m, '2026-07-10T01:30:00.000Z', 2); // 12:00:00
    await paidOrder(m, '2026-01-10T01:59:59.999Z', 4); // 12:59:59
    await paidOrder(m, '2026-01-10T02:00:00.000Z', 8); // 13:00:00
    const res = await get(
      `/v1/stats?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z&bucket=hour&machineId=${m}&timeZone=Australia/Lord_Howe`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(
      res.body.revenue.map((r: { start: string; amountMinor: number }) => [r.start, r.amountMinor]),
    ).toEqual([
      ['2026-01-10T01:00:00.000Z', 4],
      ['2026-01-10T02:00:00.000Z', 8],
      ['2026-07-10T00:30:00.000Z', 1],
      ['2026-07-10T01:30:00.000Z', 2],
    ]);
  });

  it('GET /v1/stats/water: litres per Kolkata day with the zone, per UTC day without', async () => {
    const k = `tzwater-${engine}`;
    await dispense(k, beforeMidnight, 1000);
    await dispense(k, atMidnight, 2000);
    const local = await get(`/v1/stats/water?${range}&timeZone=${KOLKATA}`);
    expect(local.status, JSON.stringify(local.body)).toBe(200);
    expect(local.body.timeZone).toBe(KOLKATA);
    expect(local.body.litresPerDay).toEqual([
      { day: '2026-11-09', litres: 1, dispenses: 1 },
      { day: '2026-11-10', litres: 2, dispenses: 1 },
    ]);
    const utc = await get(`/v1/stats/water?${range}`);
    expect(utc.status).toBe(200);
    expect(utc.body).not.toHaveProperty('timeZone');
    expect(utc.body.litresPerDay).toEqual([{ day: '2026-11-09', litres: 3, dispenses: 2 }]);
  });

  it('GET /v1/water/kiosks/overview: today is the local day of the zone given', async () => {
    const k = `tzkiosk-${engine}`;
    await server.createMachine(k, { kind: 'water' });
    const now = Date.now();
    const localToday = Math.floor((now + IST) / DAY) * DAY - IST; // India has no DST
    const utcToday = Math.floor(now / DAY) * DAY;
    const rows = [
      [localToday - 1, 1000],
      [localToday, 2000],
      [utcToday - 1, 4000],
      [utcToday, 8000],
    ] as const;
    for (const [at, ml] of rows) await dispense(k, new Date(at).toISOString(), ml);
    const sum = (since: number) => rows.filter(([at]) => at >= since).reduce((s, [, ml]) => s + ml, 0);
    const todayOf = async (query: string) => {
      const res = await get(`/v1/water/kiosks/overview${query}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.items.find((i: { kioskId: string }) => i.kioskId === k).dispensedTodayMl;
    };
    expect(await todayOf(`?timeZone=${KOLKATA}`)).toBe(sum(localToday));
    expect(await todayOf('')).toBe(sum(utcToday));
  });

  it('GET /v1/cafe/tips: tips per Kolkata day with the zone, per UTC day without', async () => {
    const site = `tzcafe-${engine}`;
    await tip(site, beforeMidnight, 50);
    await tip(site, atMidnight, 70);
    const local = await get(`/v1/cafe/tips?siteId=${site}&${range}&timeZone=${KOLKATA}`);
    expect(local.status, JSON.stringify(local.body)).toBe(200);
    expect(local.body.timeZone).toBe(KOLKATA);
    expect(local.body.items.map((i: { day: string; tipMinor: number }) => [i.day, i.tipMinor])).toEqual([
      ['2026-11-09', 50],
      ['2026-11-10', 70],
    ]);
    expect(local.body.totals).toEqual([{ currency: 'INR', tipMinor: 120 }]);
    const utc = await get(`/v1/cafe/tips?siteId=${site}&${range}`);
    expect(utc.status).toBe(200);
    expect(utc.body).not.toHaveProperty('timeZone');
    expect(utc.body.items.map((i: { day: string; tipMinor: number }) => [i.day, i.tipMinor])).toEqual([
      ['2026-11-09', 120],
    ]);
  });

  it('refuses a zone Intl does not know, or that is no zone name, with 400 naming timeZone', async () => {
    const orders = async () =>
      Number(
        (
          await db()
            .selectFrom('orders')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await orders();
    for (const zone of ['Mars/Olympus_Mons', 'Asia%2FNowhere', 'Asia/Kolkata%27--', '', 'x'.repeat(65)])
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
    expect(await orders()).toBe(before);
  });
});
