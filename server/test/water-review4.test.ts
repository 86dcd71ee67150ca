// Water review, fourth round (docs/water.md), against the real server on both engines. Each test
// here failed on the code it was written against, because of a bug found in review:
// - a kioskTxnId reused to settle another authorization of the same customer for the same amount
//   is answered `duplicate` and that authorization's water is never charged (its hold lapses);
// - a batch item re-sending a settlement's kioskTxnId for its authorization with another amount
//   is answered `duplicate` silently, where the settle route says 409 and alerts staff;
// - a batch item naming another authorization under a kioskTxnId used already is answered
//   `duplicate` when customer and amount match, and the authorization it names is never settled;
// - the credential cache counts offline water dated tomorrow in today's use.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { addWaterCustomer } from './water-fixtures.js';

const PIN = '4826';
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

for (const engine of engines()) {
  describe(`water review 4 (${engine})`, () => {
    let server: TestServer;
    let kiosk: { id: string; key: string };

    const kioskCall = (method: string, path: string, body?: unknown) =>
      server.request(method, path, {
        ...(body !== undefined ? { body } : {}),
        token: null,
        headers: { 'x-api-key': kiosk.key },
      });
    let tsSeq = 0;
    const verify = (phone: string, volumeMl: number) =>
      kioskCall('POST', '/dispense-verification', {
        kiosk_id: kiosk.id,
        user_id: phone,
        pin: PIN,
        volume_ml: volumeMl,
        timestamp: new Date(Date.UTC(2026, 11, 5, 9, 0, 0) + (tsSeq += 1) * 1000).toISOString(),
      });

    const settle = (authorizationId: string, dispensedMl: number, kioskTxnId: string) =>
      kioskCall('POST', '/v1/water/dispenses', { authorizationId, dispensedMl, kioskTxnId });
    const addCustomer = (o: { creditMl?: number; dailyLimitMl?: number } = {}) =>
      addWaterCustomer(server, { ...o, phone: kenyan(), pin: PIN });

    const creditOf = async (customerId: string) =>
      (await server.kioskhub.services.customers.waterCredit(server.kioskhub.db, 'default', customerId))
        .balance;
    const dispense = (id: string) =>
      server.kioskhub.db.selectFrom('water_dispenses').selectAll().where('id', '=', id).executeTakeFirst();
    const alertsMentioning = async (text: string) =>
      (await server.kioskhub.db.selectFrom('alerts').select(['kind', 'message']).execute()).filter((a) =>
        a.message.includes(text),
      );

    beforeAll(async () => {
      server = await startServer({ engine });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '254');
      kiosk = await server.createMachine(uid('W'), { kind: 'water' });
    });
    afterAll(async () => {
      await server?.close();
    });

    // docs/water.md, POST /v1/water/dispenses: "the same one again for the same water (this
    // authorization, or a batch item of the same customer and dispensedMl) answers duplicate ...
    // Used already for other water (another customer's authorization, another amount), it is 409
    // CONFLICT: nothing is charged or released, a WATER_TXN_REUSED alert tells staff, and the
    // authorization stays open for a settlement under a fresh kioskTxnId."
    it('a kioskTxnId reused to settle another authorization of the same customer, same amount, is a 409, not a duplicate that leaves that water unbilled', async () => {
      const c = await addCustomer({ creditMl: 50_000 });
      const a = (await verify(c.phone, 5_000)).body.authorization_id as string;
      const b = (await verify(c.phone, 5_000)).body.authorization_id as string;
      expect(a).toBeTruthy();
      expect(b).toBeTruthy();
      expect(a).not.toBe(b);
      const txn = uid('txn-');
      const first = await settle(a, 5_000, txn);
      expect(first.body).toEqual({ ok: true, creditsMl: 40_000 });

      // The kiosk's txn counter was reset (SD card swapped): B's 5 L goes out under the same id.
      const reused = await settle(b, 5_000, txn);
      // Answered {ok, duplicate}: the kiosk considers B settled, B stays HELD and is released when
      // its hold lapses, so 5 L poured is never charged and nobody is told.
      expect({ status: reused.status, body: reused.body }).toMatchObject({
        status: 409,
        body: { error: { code: 'CONFLICT' } },
      });
      expect((await dispense(b))?.status).toBe('HELD');
      expect((await alertsMentioning(txn)).map((x) => x.kind)).toContain('WATER_TXN_REUSED');
      // A settlement under a fresh id then charges B.
      const fresh = await settle(b, 5_000, uid('txn-'));
      expect(fresh.body).toEqual({ ok: true, creditsMl: 40_000 });
    });

    // docs/water.md, batch: "rejected with code ALREADY_SETTLED: the item names an authorization of
    // this kiosk settled already (online or by an earlier upload) with another dispensedMl ...
    // nothing changes, and a WATER_ALREADY_SETTLED alert tells staff"; and the settle route, for
    // the very same thing sent online: "Sent again for the authorization it settled but with another
    // dispensedMl, it is 409 CONFLICT too ... a WATER_TXN_REUSED alert asks staff to put the
    // difference right". dispenses.ts otherAmount(): "not a duplicate (the difference would go
    // unbilled, or be billed twice)".
    it('a batch item re-sending a settlement’s kioskTxnId for its authorization with another amount is rejected and alerted, not a silent duplicate', async () => {
      const c = await addCustomer({ creditMl: 30_000 });
      const a = (await verify(c.phone, 5_000)).body.authorization_id as string;
      const txn = uid('txn-');
      const online = await settle(a, 4_000, txn);
      expect(online.body).toEqual({ ok: true, creditsMl: 26_000 });
      // The same id sent online with the other amount: 409 and an alert (as documented).
      const onlineAgain = await settle(a, 4_500, txn);
      expect(onlineAgain.status).toBe(409);
      const alertsBefore = (await alertsMentioning(txn)).length;
      expect(alertsBefore).toBeGreaterThanOrEqual(1);

      // The SD-card log of the same tap, with the meter's final 4,500 ml, uploaded after an outage.
      const res = await kioskCall('POST', '/v1/water/transactions:batch', {
        transactions: [
          {
            kioskTxnId: txn,
            userId: c.phone,
            dispensedMl: 4_500,
            at: Math.floor(Date.now() / 1000),
            authorizationId: a,
          },
        ],
      });
      expect(res.status).toBe(200);
      expect(await creditOf(c.id)).toBe(26_000);
      // Answered `duplicate` with no alert: the 500 ml difference goes unbilled and nobody is told.
      expect(res.body.results[0].status).toBe('rejected');
      expect((await alertsMentioning(txn)).length).toBeGreaterThan(alertsBefore);
    });

    // docs/water.md, batch: an item naming an authorization is that authorization's water; under a
    // kioskTxnId used already for another one it is other water (KIOSK_TXN_REUSED), even of the same
    // customer and amount, and the authorization it names stays open.
    it('a batch item naming another authorization under a kioskTxnId used already is rejected, and that authorization stays open', async () => {
      const c = await addCustomer({ creditMl: 30_000 });
      const a = (await verify(c.phone, 2_000)).body.authorization_id as string;
      const b = (await verify(c.phone, 2_000)).body.authorization_id as string;
      const txn = uid('txn-');
      expect((await settle(a, 2_000, txn)).body).toEqual({ ok: true, creditsMl: 26_000 });
      const res = await kioskCall('POST', '/v1/water/transactions:batch', {
        transactions: [
          {
            kioskTxnId: txn,
            userId: c.phone,
            dispensedMl: 2_000,
            at: Math.floor(Date.now() / 1000),
            authorizationId: b,
          },
        ],
      });
      expect(res.body.results).toEqual([{ kioskTxnId: txn, status: 'rejected', code: 'KIOSK_TXN_REUSED' }]);
      expect((await dispense(b))?.status).toBe('HELD');
      expect((await alertsMentioning(txn)).map((x) => x.kind)).toContain('WATER_TXN_REUSED');
      // B's 2 L stay held, for a settlement under a fresh kioskTxnId.
      expect(await creditOf(c.id)).toBe(26_000);
    });

    // docs/water.md, credential cache: "usedTodayMl counts the local day of generatedAt in the time
    // zone of the kiosk's site"; usage.ts: "Only that day: a back-dated offline item is not
    // measured against the days after it". The verification counts the same day and says so.
    it('the credential cache’s usedTodayMl counts today only, not offline water dated tomorrow', async () => {
      const now = Date.now();
      const todayEnd = Date.UTC(
        new Date(now).getUTCFullYear(),
        new Date(now).getUTCMonth(),
        new Date(now).getUTCDate() + 1,
      );
      const at = todayEnd + 60_000; // 00:01 tomorrow (UTC, the default site's zone)
      // Trusted by the server (no more than a day ahead): recorded at `at`, unflagged.
      if (at > now + 86_400_000 - 5_000) return; // the first minute of a UTC day: cannot be set up
      const c = await addCustomer({ creditMl: 30_000, dailyLimitMl: 10_000 });
      const up = await kioskCall('POST', '/v1/water/transactions:batch', {
        transactions: [{ kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: 8_000, at }],
      });
      expect(up.body.results[0].status).toBe('applied');
      const row = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .selectAll()
        .where('customer_id', '=', c.id)
        .executeTakeFirstOrThrow();
      expect(Date.parse(String(row.at))).toBe(at);

      // Online, today's limit is untouched by tomorrow's water.
      const v = await verify(c.phone, 1_000);
      expect(v.body.approved).toBe(true);
      expect(v.body.user_data.remaining_today_ml).toBe(9_000);

      // Offline, the kiosk's cache must say the same: 1,000 used today (the hold), not 9,000.
      const cache = await kioskCall('GET', '/v1/water/credential-cache');
      expect(cache.status).toBe(200);
      const entry = (cache.body.customers as { accountId: string; usedTodayMl: number }[]).find(
        (x) => x.accountId === c.accountId,
      );
      expect(entry?.usedTodayMl).toBe(1_000);
    });
  });
}
