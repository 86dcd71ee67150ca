// Water review, sixth round (docs/water.md, docs/api.md), against the real server on both engines.
// Each test here fails on the code it was written against, because of a bug found in review:
// - `POST /dispense-verification` takes a `timestamp` no date can hold (30 February) and places a
//   hold on it, where every other route answers 400 for it;
// - an SD-card item whose `at` carries no UTC offset is dated by the server process's own time
//   zone (Date.parse reads it as host-local time), so the same upload is dated, and counted against
//   a day, differently depending on where the server runs, and is not flagged.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { addWaterCustomer } from './water-fixtures.js';

const PIN = '5917';
const HOUR = 3_600_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

/** The wall-clock text of `t` in `timeZone`, without an offset: `2026-12-05T23:30:00`. */
function wallText(t: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(t);
  const p = (type: string) => parts.find((x) => x.type === type)!.value;
  return `${p('year')}-${p('month')}-${p('day')}T${p('hour')}:${p('minute')}:${p('second')}`;
}

for (const engine of engines()) {
  describe(`water review 6 (${engine})`, () => {
    let server: TestServer;
    let kiosk: { id: string; key: string };

    const kioskCall = (method: string, path: string, body?: unknown, key = kiosk.key) =>
      server.request(method, path, {
        ...(body !== undefined ? { body } : {}),
        token: null,
        headers: { 'x-api-key': key },
      });
    const creditOf = async (customerId: string) =>
      (await server.kioskhub.services.customers.waterCredit(server.kioskhub.db, 'default', customerId))
        .balance;
    const rowsOf = (customerId: string) =>
      server.kioskhub.db
        .selectFrom('water_dispenses')
        .selectAll()
        .where('customer_id', '=', customerId)
        .execute();

    beforeAll(async () => {
      server = await startServer({ engine });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '254');
      kiosk = await server.createMachine(uid('W'), { kind: 'water' });
    });
    afterAll(async () => {
      await server?.close();
    });

    // docs/api.md §1: "A time a request sends must be one a date can hold, in years 0000–9999 once
    // turned to UTC: a leap second (`23:59:60Z`), 30 February or `9999-12-31T23:00:00-05:00` (year
    // 10000 in UTC) is `400 VALIDATION_FAILED`." docs/water.md: "`400 VALIDATION_FAILED` for a
    // malformed body (nothing changes)". The verification's `timestamp` is read by parseKioskTime
    // (server/src/modules/water/dispenses.ts:65-69), which checks only `^\d{4}-\d{2}-\d{2}` and then
    // trusts Date.parse, which rolls 2026-02-30 over to 2026-03-02 (and takes year 10000); the schema
    // (water.schema.ts:8-11, KioskTime) is a bare string. So a hold is placed, and the timestamp
    // even collides with 2026-03-02T10:00:00Z as "the same request".
    // Fix: check the ISO text as the shared `date-time` format does (a real calendar day, an hour
    // that exists, years 0000–9999 in UTC) before Date.parse, and answer 400 otherwise.
    it('a verification timestamp of 30 February (or year 10000 in UTC) is 400 with nothing held, as every time a request sends', async () => {
      const c = await addWaterCustomer(server, { phone: kenyan(), pin: PIN, creditMl: 20_000 });
      for (const timestamp of ['2026-02-30T10:00:00Z', '9999-12-31T23:00:00-05:00']) {
        const r = await kioskCall('POST', '/dispense-verification', {
          kiosk_id: kiosk.id,
          user_id: c.phone,
          pin: PIN,
          volume_ml: 5_000,
          timestamp,
        });
        expect(r.status, `${timestamp}: ${JSON.stringify(r.body)}`).toBe(400);
        expect(r.body.approved).toBe(false);
        expect(r.body.code).toBe('VALIDATION_FAILED');
      }
      expect(await rowsOf(c.id)).toHaveLength(0);
      expect(await creditOf(c.id)).toBe(20_000);
    });

    // docs/api.md §1: "Times are UTC ISO-8601 strings"; docs/customers.md "Which day today is": at a
    // kiosk (an offline item) the day is the kiosk's site's day, and "An offline item counts
    // against the day it is dated". docs/water.md, offline batch: a time not to be trusted "is
    // recorded at the time of the upload, and flagged". An `at` without an offset
    // (`2026-12-05T23:30:00`, how a kiosk that keeps local wall-clock time, like the earlier
    // hardware server's `datetime.now().isoformat()`, writes it) goes through Date.parse in
    // parseKioskTime (server/src/modules/water/dispenses.ts:68), which reads it in the *server
    // process's* time zone, and recordOffline (dispenses.ts:203-212) trusts it unflagged. The
    // same SD card is then dated (and counted against a day, and judged against a subscription's
    // run) differently by a server running in UTC and one running in any other zone.
    // Fix: never let the host's zone decide: read a time without an offset in the kiosk's site
    // time zone (siteTimeZone), or treat it as untrusted (recorded at the upload, flagged).
    it('an SD-card item dated without a UTC offset is not dated by the server host’s own time zone', async () => {
      const savedTz = process.env['TZ'];
      const siteId = uid('ist');
      const site = await server.request('POST', '/v1/sites', {
        body: { id: siteId, name: 'Kolkata kiosk', currency: 'INR', timeZone: 'Asia/Kolkata' },
      });
      expect(site.status, JSON.stringify(site.body)).toBe(201);
      const local = await server.createMachine(uid('W'), { kind: 'water', siteId });
      const c = await addWaterCustomer(server, {
        phone: kenyan(),
        pin: PIN,
        creditMl: 50_000,
        siteIds: [siteId],
      });
      // The kiosk poured 2 hours ago and logged its own wall clock (India, UTC+05:30).
      const pouredAt = Date.now() - 2 * HOUR;
      const at = wallText(pouredAt, 'Asia/Kolkata');
      try {
        // A server host set to New York (any zone other than the site's shows it).
        process.env['TZ'] = 'America/New_York';
        const r = await kioskCall(
          'POST',
          '/v1/water/transactions:batch',
          { transactions: [{ kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: 3_000, at }] },
          local.key,
        );
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(r.body.results[0].status).toBe('applied');
      } finally {
        if (savedTz === undefined) delete process.env['TZ'];
        else process.env['TZ'] = savedTz;
      }
      const [row] = await rowsOf(c.id);
      expect(row).toBeDefined();
      const recorded = Date.parse(row!.at);
      const readInSiteZone = Math.abs(recorded - pouredAt) < 5_000;
      // Either dated as the kiosk's clock meant it, or not trusted (recorded now, flagged); never
      // dated 9.5 hours off by the host's zone and kept unflagged.
      expect(
        readInSiteZone || row!.flagged === 1,
        `at ${at} recorded as ${row!.at} (flagged ${row!.flagged}); poured ${new Date(pouredAt).toISOString()}`,
      ).toBe(true);
    });
  });
}
