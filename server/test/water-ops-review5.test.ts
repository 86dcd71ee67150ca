// Review of water operations for staff (water-ops: the verification feed, the kiosks overview,
// the water alerts sweep; alerts.service.ts), fifth round, against the real server on both
// engines. Each test here fails on the code it was written against, because of a bug found in
// review:
// - a verification of another kiosk is taken as the cursor of one kiosk's feed (a page, not 400);
// - the overview's dispensedTodayMl counts offline water dated tomorrow;
// - stuck payments beyond the first 500 never get an alert, on any later sweep;
// - GET /v1/alerts answers nextCursor: null while alerts are left over, so they cannot be reached.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/platform/db/database.js';
import { dayStart } from '../src/modules/reporting/local-buckets.js';
import { engines, type Engine, type TestServer, startServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';
import { addWaterCustomer } from './water-fixtures.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

describe.each(engines())('water ops review 5 (%s)', (engine: Engine) => {
  let server: TestServer;

  beforeAll(async () => {
    // The scheduler's own sweep stays out of the way: the tests sweep themselves.
    server = await startServer({ engine, env: { WATER_ALERT_SWEEP_MS: '86400000' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const kioskCall = (k: { key: string }, method: string, path: string, body?: unknown) =>
    server.request(method, path, {
      ...(body !== undefined ? { body } : {}),
      token: null,
      headers: { 'x-api-key': k.key },
    });

  // docs/api.md §1: "On the lists of … water verifications, …, a `cursor` that is not a
  // `nextCursor` of that list for the same caller (a made-up text, another tenant's row, another
  // list's id) answers `400 VALIDATION_FAILED` (`details: {cursor}`), never a page."
  // What is wrong: GET /v1/water/verifications?kioskId=A takes the id of a verification of kiosk B
  // (same tenant) as its cursor and answers a page of A's verifications older than it, as if it
  // were a nextCursor of A's feed (which never names B's rows).
  // Cause: server/src/modules/water-ops/verifications.ts:72-76: knownCursor looks the id up by
  // tenant only, not by the list's kioskId filter.
  // Fix: in the lookup, `if (filter.kioskId) found = found.where('kiosk_id', '=', filter.kioskId)`
  // (as ledger entries check the cursor's account).
  it('a verification of another kiosk is no cursor of one kiosk’s feed: 400, not a page', async () => {
    const a = await server.createMachine(uid('WA'), { kind: 'water' });
    const b = await server.createMachine(uid('WB'), { kind: 'water' });
    const verify = (k: { id: string; key: string }) =>
      kioskCall(k, 'POST', '/dispense-verification', {
        kiosk_id: k.id,
        user_id: kenyan(), // nobody's number: UNKNOWN_CUSTOMER, recorded all the same
        pin: '4821',
        volume_ml: 1000,
      });
    expect((await verify(a)).status).toBe(200);
    expect((await verify(b)).status).toBe(200);
    const ofB = await server.request('GET', `/v1/water/verifications?kioskId=${b.id}`);
    expect(ofB.status).toBe(200);
    expect(ofB.body.items).toHaveLength(1);
    const bId = ofB.body.items[0].id as string;

    const res = await server.request('GET', `/v1/water/verifications?kioskId=${a.id}&cursor=${bId}`);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
  });

  // docs/api.md §22: "`dispensedTodayMl` …: "today" is the current day in `timeZone`, from its
  // local midnight (without `timeZone`: the UTC day)." docs/water.md: an offline item's `at` up to
  // a day in the future is trusted and the water is recorded at `at`.
  // What is wrong: the overview sums every dispense from today's midnight on, with no end, so
  // offline water dated tomorrow is counted in today's litres (the credential cache's
  // usedTodayMl had the same fault, fixed in review 4).
  // Cause: server/src/modules/reporting/water-stats.service.ts:113-118 (the `dispensed` query of
  // overview(), called by water-ops.routes.ts:112): `.where('at', '>=', day)` only.
  // Fix: also `.where('at', '<', <start of the next local day>)` (dayStart(day + 36 h, zone), or
  // the UTC day's end), and the same bound on the verifications' counts.
  it('the overview’s dispensedTodayMl counts today only, not offline water dated tomorrow', async () => {
    const now = Date.now();
    // A zone whose next midnight is at least a minute away and more than a minute inside the
    // trusted day ahead (UTC, unless it is just past midnight UTC).
    const zones = ['UTC', 'Asia/Kolkata'];
    const nextMidnight = (z: string) => dayStart(dayStart(now, z) + 36 * HOUR, z);
    const zone = zones.find((z) => {
      const next = nextMidnight(z);
      return next > now + 60_000 && next + 60_000 < now + DAY - 60_000;
    })!;
    const tomorrow = new Date(nextMidnight(zone) + 60_000).toISOString();

    const kiosk = await server.createMachine(uid('WT'), { kind: 'water' });
    const c = await addWaterCustomer(server, { phone: kenyan(), pin: '4821', creditMl: 20_000 });
    const batch = await kioskCall(kiosk, 'POST', '/v1/water/transactions:batch', {
      transactions: [
        {
          kioskTxnId: uid('today-'),
          userId: c.phone,
          dispensedMl: 1500,
          at: new Date(now).toISOString(),
          tap: 1,
        },
        { kioskTxnId: uid('tmrw-'), userId: c.phone, dispensedMl: 2000, at: tomorrow, tap: 1 },
      ],
    });
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    expect(batch.body.results.map((r: { status: string }) => r.status)).toEqual(['applied', 'applied']);
    // The second item is trusted: it is recorded at its own (tomorrow's) time.
    const rows = await server.kioskhub.db
      .selectFrom('water_dispenses')
      .select(['dispensed_ml', 'at'])
      .where('kiosk_id', '=', kiosk.id)
      .execute();
    expect(rows.map((r) => r.at).sort()).toContain(tomorrow);

    const overview = await server.request(
      'GET',
      `/v1/water/kiosks/overview?timeZone=${encodeURIComponent(zone)}`,
    );
    expect(overview.status).toBe(200);
    const item = overview.body.items.find((k: { kioskId: string }) => k.kioskId === kiosk.id);
    expect(item.dispensedTodayMl).toBe(1500);
  });

  // docs/water-dashboard.md (Alerts): "at most 500 conditions of each kind are raised per sweep
  // (the rest on later sweeps), and while a kind has more than that standing, none of its open
  // alerts is resolved in that sweep".
  // What is wrong: with 501 payments stuck PENDING, every sweep lists the same first 500 (by
  // payment id), which all have their alert already; the 501st is never listed, so it never gets
  // an alert, however many sweeps run, until one of the first 500 ends.
  // Cause: server/src/modules/reporting/water-stats.service.ts:287 (alertConditions:
  // `stuckPending(stuckBefore, CONDITIONS_PER_KIND)`, payment-queries.ts:168-191 ordered by id,
  // limit 500), consumed by server/src/modules/water-ops/water-alerts.ts:30-49, which skips the
  // listed conditions already open. The same holds for WATER_CREDIT_NEGATIVE (ordered by account
  // id, limit 500) and the kiosk kinds (add() keeps the first 500 by kiosk id).
  // Fix: list the conditions that have no open alert yet first (e.g. a `not exists` on alerts of
  // that kind and subject, or page past the subjects already alerted), keeping `capped` for the
  // resolution side.
  it('stuck payments beyond the first 500 get their alert on a later sweep', async () => {
    const { db } = server.kioskhub;
    const tenantId = uid('st');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: tenantId, name: tenantId } })).status,
    ).toBe(201);
    const created = new Date(Date.now() - 2 * HOUR).toISOString();
    const ids: string[] = [];
    for (let chunk = 0; chunk < 501; chunk += 100) {
      const values = [];
      for (let i = chunk; i < Math.min(chunk + 100, 501); i++) {
        const id = newId();
        ids.push(id);
        values.push({
          id,
          tenant_id: tenantId,
          site_id: null,
          purpose: 'plan',
          order_id: null,
          customer_id: null,
          plan_id: 'MONTH',
          machine_id: null,
          method: 'momo',
          provider: null,
          provider_payment_id: null,
          reference: null,
          amount_minor: 50_000,
          received_minor: 0,
          currency: 'KES',
          status: 'PENDING',
          failure_code: null,
          refunded_minor: 0,
          created_at: created,
          completed_at: null,
          updated_at: created,
          expires_at: null,
        });
      }
      await db.insertInto('payments').values(values).execute();
    }
    const sweep = () => server.kioskhub.services.waterOps.alerts.sweepOnce();
    await sweep();
    await sweep();
    await sweep();
    const alerted = await db
      .selectFrom('alerts')
      .select('subject_id')
      .where('kind', '=', 'PAYMENT_STUCK')
      .where('tenant_id', '=', tenantId)
      .where('resolved_at', 'is', null)
      .execute();
    const missing = ids.filter((id) => !alerted.some((a) => a.subject_id === id));
    // Three sweeps later, every stuck payment has its alert.
    expect(missing).toEqual([]);
  }, 60_000);

  // docs/api.md §1: "Lists answer `{items, nextCursor}`. Pass `cursor=<nextCursor>` for the next
  // page; `nextCursor` is `null` on the last page."; §16: "`GET /v1/alerts?open=true`".
  // What is wrong: GET /v1/alerts reads `limit` rows (at most 200) and always answers
  // `nextCursor: null`, so with more alerts than that the rest are out of reach: the older open
  // alerts can neither be seen nor acknowledged from the dashboard, and the answer says it is the
  // last page.
  // Cause: server/src/modules/alerts/alerts.service.ts:62-84 (list: `.limit(filter.limit)`, no
  // cursor) and server/src/modules/kitchen/restaurant-ops.routes.ts:257-282 (OnePage,
  // `nextCursor: null`, no `cursor` parameter).
  // Fix: page the list like the others: read `limit + 1` rows by id descending, pageOf(), accept
  // `cursor` (checked with knownCursor against the reader's tenants and the `open` filter).
  it('GET /v1/alerts gives a nextCursor while alerts are left over', async () => {
    const tenantId = uid('al');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: tenantId, name: tenantId } })).status,
    ).toBe(201);
    const token = await staffToken(server, `${tenantId}@alerts.test`, 'staff', tenantId);
    const { alerts } = server.kioskhub.services;
    for (let i = 0; i < 3; i++)
      await alerts.raise(server.kioskhub.db, {
        tenantId,
        kind: 'OVERSOLD',
        subjectType: 'product',
        subjectId: `sku-${i}`,
        message: `oversold ${i}`,
      });
    const page = await server.request('GET', '/v1/alerts?open=true&limit=2', { token });
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(2);
    // A third open alert remains: this is not the last page.
    expect(page.body.nextCursor).not.toBeNull();
  });
});
