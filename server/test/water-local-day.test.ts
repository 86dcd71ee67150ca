// A water customer's daily limit counts the local day of the kiosk's site (sites.time_zone), not
// the UTC day: a kiosk in Nairobi used to start a new day at 03:00 local time, so a customer with
// a 20 L limit could take 20 L at 02:00 and 20 L more at 04:00. The test picks a fixed-offset zone
// whose local midnight falls on a different instant than UTC midnight today, dates one offline
// item a minute before that local midnight and one a minute after, and checks that every place
// that counts "today" (the verification's remaining_today_ml, the staff view, the kiosk's
// credential cache) counts only the second. Before the site time zone, the UTC day counted
// either both items or neither.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localDayBounds } from '../src/modules/water/usage.js';
import { engines, startServer, type TestServer } from './harness.js';

const PIN = '2468';
const HOUR = 3_600_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

/**
 * A fixed-offset zone and its local midnight of today, chosen so that the local day and the UTC
 * day disagree about an item dated a minute after that midnight (or a minute before it).
 * `Etc/GMT+5` is UTC−5 (the sign is POSIX's).
 */
function zoneAgainstUtc(now: number): { zone: string; midnight: number } {
  const utcMidnight = now - (now % (24 * HOUR));
  const hour = Math.floor((now - utcMidnight) / HOUR);
  if (hour >= 2) {
    // West of UTC: local midnight is later today in UTC, and at least an hour before now.
    const h = Math.min(hour - 1, 12);
    return { zone: `etc/gmt+${h}`, midnight: utcMidnight + h * HOUR };
  }
  // Just after UTC midnight: UTC+12, whose local day began at 12:00 UTC yesterday.
  return { zone: 'etc/gmt-12', midnight: utcMidnight - 12 * HOUR };
}

describe('localDayBounds', () => {
  it('is the local calendar day, 23 or 25 hours long across a daylight-saving change', () => {
    const nairobi = localDayBounds(new Date('2026-12-05T01:30:00.000Z'), 'Africa/Nairobi');
    expect(nairobi).toEqual({ start: '2026-12-04T21:00:00.000Z', end: '2026-12-05T21:00:00.000Z' });
    const utc = localDayBounds(new Date('2026-12-05T23:59:59.999Z'), 'UTC');
    expect(utc).toEqual({ start: '2026-12-05T00:00:00.000Z', end: '2026-12-06T00:00:00.000Z' });
    // Europe/Berlin goes to summer time on 2026-03-29: that day has 23 hours.
    const spring = localDayBounds(new Date('2026-03-29T12:00:00.000Z'), 'Europe/Berlin');
    expect(spring).toEqual({ start: '2026-03-28T23:00:00.000Z', end: '2026-03-29T22:00:00.000Z' });
    const autumn = localDayBounds(new Date('2026-10-25T12:00:00.000Z'), 'Europe/Berlin');
    expect(autumn).toEqual({ start: '2026-10-24T22:00:00.000Z', end: '2026-10-25T23:00:00.000Z' });
  });
});

for (const engine of engines()) {
  describe(`water: the daily limit counts the local day of the kiosk's site (${engine})`, () => {
    let server: TestServer;

    beforeAll(async () => {
      server = await startServer({ engine });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('a site takes an IANA timeZone; an unknown one is 400 and changes nothing', async () => {
      const id = uid('tz');
      const bad = await server.request('POST', '/v1/sites', {
        body: { id, name: 'Mars', currency: 'KES', timeZone: 'Mars/Base' },
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(/timeZone "Mars\/Base" is not an IANA time zone/);
      const sites = async () => (await server.request('GET', '/v1/sites')).body.items as { id: string }[];
      expect((await sites()).some((s) => s.id === id)).toBe(false);

      const made = await server.request('POST', '/v1/sites', {
        body: { id, name: 'Karen', currency: 'KES', timeZone: 'Africa/Nairobi' },
      });
      expect(made.status).toBe(201);
      expect(made.body.timeZone).toBe('Africa/Nairobi');
      const plain = await server.request('POST', '/v1/sites', {
        body: { id: uid('tz'), name: 'Plain', currency: 'KES' },
      });
      expect(plain.body.timeZone).toBe('UTC');

      for (const timeZone of ['Mars/Base', '', 'UTC+3', 42]) {
        const patched = await server.request('PATCH', `/v1/sites/${id}`, { body: { timeZone } });
        expect(patched.status, String(timeZone)).toBe(400);
      }
      const after = (await server.request('GET', '/v1/sites')).body.items.find(
        (s: { id: string }) => s.id === id,
      );
      expect(after.timeZone).toBe('Africa/Nairobi');

      const changed = await server.request('PATCH', `/v1/sites/${id}`, {
        body: { timeZone: 'Asia/Kolkata' },
      });
      expect(changed.status).toBe(200);
      expect(changed.body.timeZone).toBe('Asia/Kolkata');
      const audit = await server.request('GET', `/v1/audit?subjectType=site&subjectId=${id}`);
      const update = (audit.body.items as { action: string; before: any; after: any }[]).find(
        (a) => a.action === 'site.update',
      );
      expect(update?.before.timeZone).toBe('Africa/Nairobi');
      expect(update?.after.timeZone).toBe('Asia/Kolkata');
    });

    it('water a minute before local midnight is yesterday; a minute after is today', async () => {
      const { zone, midnight } = zoneAgainstUtc(Date.now());
      const siteId = uid('tz');
      const site = await server.request('POST', '/v1/sites', {
        body: { id: siteId, name: 'Offset', currency: 'KES', timeZone: zone },
      });
      expect(site.status).toBe(201);
      const kiosk = await server.createMachine(uid('W'), { kind: 'water', siteId });
      const kioskCall = (method: 'GET' | 'POST', path: string, body?: unknown) =>
        server.request(method, path, {
          ...(body ? { body } : {}),
          token: null,
          headers: { 'x-api-key': kiosk.key },
        });

      const phone = kenyan();
      const created = await server.request('POST', '/v1/customers', {
        body: { phone, pin: PIN, siteIds: [siteId] },
      });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      expect(
        (
          await server.request('POST', `/v1/customers/${id}/credits`, {
            body: { deltaMl: 50_000, reason: 'test' },
          })
        ).status,
      ).toBe(200);
      expect(
        (await server.request('PATCH', `/v1/customers/${id}`, { body: { dailyLimitMl: 20_000 } })).status,
      ).toBe(200);

      const at = (t: number) => new Date(t).toISOString();
      const batch = await kioskCall('POST', '/v1/water/transactions:batch', {
        transactions: [
          { kioskTxnId: uid('y-'), userId: phone, dispensedMl: 4_000, at: at(midnight - 60_000) },
          { kioskTxnId: uid('t-'), userId: phone, dispensedMl: 2_000, at: at(midnight + 60_000) },
        ],
      });
      expect(batch.status, JSON.stringify(batch.body)).toBe(200);
      expect(batch.body.results.map((r: { status: string }) => r.status)).toEqual(['applied', 'applied']);

      // The staff view (the customer's home site is the kiosk's site).
      const view = await server.request('GET', `/v1/customers/${id}`);
      expect(view.body.usedTodayMl).toBe(2_000);

      // A verification at the kiosk holds 1 L: 17 L of the 20 L are left today (the UTC day
      // would have counted 4 L more, or 2 L less).
      const v = await kioskCall('POST', '/dispense-verification', {
        kiosk_id: kiosk.id,
        user_id: phone,
        pin: PIN,
        volume_ml: 1_000,
        timestamp: new Date().toISOString(),
      });
      expect(v.body.approved, JSON.stringify(v.body)).toBe(true);
      expect(v.body.user_data.remaining_today_ml).toBe(17_000);

      // The kiosk's credential cache: today's water plus the 1 L now held.
      const cache = await kioskCall('GET', '/v1/water/credential-cache');
      expect(cache.status).toBe(200);
      const entry = (cache.body.customers as { phone: string; usedTodayMl: number }[]).find(
        (c) => c.phone === phone,
      );
      expect(entry?.usedTodayMl).toBe(3_000);
    });
  });
}
