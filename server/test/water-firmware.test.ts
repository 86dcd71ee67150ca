// The water kiosk firmware API (CONTRACTS §11, docs/water.md) against the real server on both
// engines: every verification code, holds (once per request, released after WATER_HOLD_MS),
// settlement by actual millilitres counted once per kioskTxnId, the SD-card batch (applied once,
// offline water never dropped), the signed per-kiosk credential cache (incremental, verifiers
// not invertible without the kiosk's secret), heartbeats, live events, tenants kept apart, bad
// input changing nothing, the PIN never in an answer or a log line, and 503 when the database
// goes away (PostgreSQL, through a TCP proxy this test cuts, so nobody else's runs are touched).
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import argon2 from 'argon2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalCache } from '../src/modules/water/credential-cache.js';
import {
  ADMIN_TOKEN,
  connected,
  dropSchema,
  engines,
  eventually,
  liveSocket,
  newSchemaName,
  nextEvent,
  startServer,
  type TestServer,
} from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';
import { addWaterCredit, addWaterCustomer } from './water-fixtures.js';

const PIN = '7391';
/** Known to the test so it can write a PIN the way it was kept before seals (an argon2id hash). */
const PIN_SECRET = 'water-firmware-test-pin-secret-0123456789';
/** The PIN as a value of its own (not inside a longer number: phone numbers, times, ids may hold 7391). */
const PIN_ALONE = new RegExp(`(?<![0-9A-Za-z])${PIN}(?![0-9A-Za-z])`);
const DAY_MS = 86_400_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

interface Customer {
  id: string;
  accountId: string;
  phone: string;
}

function addCustomer(
  server: TestServer,
  o: Omit<Parameters<typeof addWaterCustomer>[1], 'phone' | 'pin'> & { pin?: string | null } = {},
): Promise<Customer> {
  return addWaterCustomer(server, {
    fullName: 'Wanjiru Test',
    ...o,
    phone: kenyan(),
    pin: o.pin === undefined ? PIN : o.pin,
  });
}

/** A registered customer whose PIN is the argon2id hash every PIN was before seals (no seal). */
async function addLegacyCustomer(server: TestServer, o: { creditMl?: number } = {}): Promise<Customer> {
  const c = await addCustomer(server, { pin: null, ...o });
  const hash = await argon2.hash(PIN, {
    type: argon2.argon2id,
    memoryCost: 8192,
    timeCost: 2,
    parallelism: 1,
    secret: Buffer.from(PIN_SECRET),
  });
  await server.kioskhub.services.customers.repo.update(c.id, { pin_hash: hash });
  return c;
}

const addCredit = addWaterCredit;

const creditOf = async (server: TestServer, customerId: string, tenantId = 'default') =>
  (await server.kioskhub.services.customers.waterCredit(server.kioskhub.db, tenantId, customerId)).balance;

const dispenseRows = (server: TestServer) =>
  server.kioskhub.db.selectFrom('water_dispenses').selectAll().orderBy('id').execute();

let tsSeq = 0;
function verification(kioskId: string, c: { phone: string }, extra: Record<string, unknown> = {}) {
  return {
    kiosk_id: kioskId,
    user_id: c.phone,
    pin: PIN,
    volume_ml: 5000,
    timestamp: new Date(Date.UTC(2026, 11, 3, 10, 0, 0) + (tsSeq += 1) * 1000).toISOString(),
    ...extra,
  };
}

for (const engine of engines()) {
  describe(`water kiosk firmware API (${engine})`, () => {
    let server: TestServer;
    const logs: string[] = [];
    let kiosk: { id: string; key: string };
    let vending: { id: string; key: string };

    const verify = (body: unknown, key = kiosk.key) =>
      server.request('POST', '/dispense-verification', { body, token: null, headers: { 'x-api-key': key } });
    const kioskCall = (method: string, path: string, body?: unknown, key = kiosk.key) =>
      server.request(method, path, {
        ...(body !== undefined ? { body } : {}),
        token: null,
        headers: { 'x-api-key': key },
      });

    beforeAll(async () => {
      server = await startServer({
        engine,
        env: { WATER_HOLD_MS: '1500', LOG_LEVEL: 'info', PIN_SECRET },
        logStream: { write: (line: string) => void logs.push(line) },
      });
      await server.kioskhub.db
        .updateTable('tenants')
        .set({ default_country_code: '254' })
        .where('id', '=', 'default')
        .execute();
      kiosk = await server.createMachine(uid('W'), { kind: 'water' });
      vending = await server.createMachine(uid('V'));
    });
    afterAll(async () => {
      await server?.close();
    });

    it('approves a registered customer with credit, holds the water once per request, answers the earlier firmware’s shape', async () => {
      const c = await addCustomer(server, { creditMl: 50_000 });
      const local = `0${c.phone.slice(4)}`; // 07… form, with the tenant's calling code 254
      const body = verification(kiosk.id, c, { user_id: local });
      const res = await verify(body);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        type: 'dispense_response',
        user_id: local,
        volume_ml: 5000,
        approved: true,
        code: 'VERIFIED',
        kiosk_id: kiosk.id,
        user_data: {
          phone_number: c.phone,
          account_id: c.accountId,
          active: true,
          credits_ml: 45_000,
          credits: 45,
        },
      });
      expect(res.body.authorization_id).toMatch(/^[0-9A-Z]{26}$/);
      expect(res.body).not.toHaveProperty('pin');
      expect(JSON.stringify(res.body)).not.toMatch(PIN_ALONE);
      expect(await creditOf(server, c.id)).toBe(45_000);

      // The same request again (another phone form, Unix seconds for the same instant): same authorization.
      const again = await verify({
        ...body,
        user_id: c.phone.slice(1),
        timestamp: Date.parse(body.timestamp) / 1000,
      });
      expect(again.body.authorization_id).toBe(res.body.authorization_id);
      expect(await creditOf(server, c.id)).toBe(45_000);
      const rows = (await dispenseRows(server)).filter((r) => r.customer_id === c.id);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'HELD', held_ml: 5000, funding: 'credit' });
    });

    it('answers a repeated timestamp with the earlier authorization only for the very same request still held', async () => {
      const c = await addCustomer(server, { creditMl: 50_000 });
      const body = verification(kiosk.id, c, { volume_ml: 5_000 });
      const first = await verify(body);
      expect(first.body).toMatchObject({ approved: true, code: 'VERIFIED' });
      const auth = first.body.authorization_id as string;

      // The same timestamp asking for more: no approval for water nobody holds, nothing more held.
      const larger = await verify({ ...body, volume_ml: 20_000 });
      expect(larger.status).toBe(409);
      expect(larger.body).toMatchObject({ type: 'dispense_response', approved: false, code: 'CONFLICT' });
      expect(larger.body.authorization_id).toBeUndefined();
      expect(larger.body.reason).toContain(auth);
      expect(await creditOf(server, c.id)).toBe(45_000);

      // Settled: asking again must not let the kiosk pour water that is never charged.
      const settled = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth,
        dispensedMl: 5_000,
        kioskTxnId: uid('txn-'),
      });
      expect(settled.status).toBe(200);
      const afterSettle = await verify(body);
      expect(afterSettle.status).toBe(409);
      expect(afterSettle.body).toMatchObject({ approved: false, code: 'CONFLICT' });
      expect(await creditOf(server, c.id)).toBe(45_000);
      const rows = (await dispenseRows(server)).filter((r) => r.customer_id === c.id);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'SETTLED', held_ml: 5_000, dispensed_ml: 5_000 });
    });

    it('answers each refusal code, with nothing held', async () => {
      const before = (await dispenseRows(server)).length;
      const code = async (body: unknown) => {
        const res = await verify(body);
        expect(res.status).toBe(200);
        expect(res.body.approved).toBe(false);
        expect(res.body.authorization_id).toBeUndefined();
        expect(JSON.stringify(res.body)).not.toMatch(PIN_ALONE);
        return res.body.code as string;
      };
      expect(await code(verification(kiosk.id, { phone: kenyan() }))).toBe('UNKNOWN_CUSTOMER');
      expect(await code(verification(kiosk.id, { phone: 'not-a-phone' }))).toBe('UNKNOWN_CUSTOMER');
      const unregistered = await addCustomer(server, { pin: null, creditMl: 10_000 });
      expect(await code(verification(kiosk.id, unregistered))).toBe('NOT_REGISTERED');
      const rich = await addCustomer(server, { creditMl: 100_000 });
      const wrong = await verify(verification(kiosk.id, rich, { pin: '0000' }));
      expect(wrong.body).toMatchObject({ approved: false, code: 'INVALID_PIN' });
      expect(wrong.body.user_data).toBeUndefined(); // nothing about the account before the PIN is right
      const inactive = await addCustomer(server, { creditMl: 10_000, active: false });
      expect(await code(verification(kiosk.id, inactive))).toBe('INACTIVE');
      const expired = await addCustomer(server, { subscriptionDays: -1 });
      expect(await code(verification(kiosk.id, expired))).toBe('SUBSCRIPTION_EXPIRED');
      const poor = await addCustomer(server, { creditMl: 4_999 });
      expect(await code(verification(kiosk.id, poor))).toBe('INSUFFICIENT_CREDIT');
      const limited = await addCustomer(server, { subscriptionDays: 30, dailyLimitMl: 8_000 });
      expect((await verify(verification(kiosk.id, limited))).body.code).toBe('VERIFIED');
      expect(await code(verification(kiosk.id, limited))).toBe('DAILY_LIMIT'); // 5 L held + 5 L > 8 L
      const elsewhere = await addCustomer(server, { creditMl: 10_000, siteIds: ['another-site'] });
      expect(await code(verification(kiosk.id, elsewhere))).toBe('KIOSK_NOT_ALLOWED');
      expect((await dispenseRows(server)).length).toBe(before + 1); // only the limited customer's hold
      expect(await creditOf(server, poor.id)).toBe(4_999);
    });

    it('locks the PIN after 5 wrong tries (PIN_LOCKED, even with the right PIN)', async () => {
      const c = await addCustomer(server, { creditMl: 20_000 });
      const codes: string[] = [];
      for (let i = 0; i < 5; i += 1)
        codes.push((await verify(verification(kiosk.id, c, { pin: `000${i}` }))).body.code);
      expect(codes).toEqual(['INVALID_PIN', 'INVALID_PIN', 'INVALID_PIN', 'INVALID_PIN', 'PIN_LOCKED']);
      expect((await verify(verification(kiosk.id, c))).body).toMatchObject({
        approved: false,
        code: 'PIN_LOCKED',
      });
      expect(await creditOf(server, c.id)).toBe(20_000);
    });

    it('counts wrong PINs sent all at once exactly: four INVALID_PIN, then PIN_LOCKED, one lock', async () => {
      const sealed = await addCustomer(server, { creditMl: 20_000 });
      const legacy = await addLegacyCustomer(server, { creditMl: 20_000 });
      for (const c of [sealed, legacy]) {
        const answers = await Promise.all(
          Array.from({ length: 8 }, (_, i) => verify(verification(kiosk.id, c, { pin: `100${i}` }))),
        );
        const codes = answers.map((r) => r.body.code as string).sort();
        expect(codes).toEqual([...Array(4).fill('INVALID_PIN'), ...Array(4).fill('PIN_LOCKED')]);
        const locks = await server.kioskhub.db
          .selectFrom('audit_log')
          .select('action')
          .where('subject_id', '=', c.id)
          .where('action', '=', 'customer.pin_locked')
          .execute();
        expect(locks).toHaveLength(1);
        expect((await verify(verification(kiosk.id, c))).body.code).toBe('PIN_LOCKED');
        expect(await creditOf(server, c.id)).toBe(20_000);
      }
    });

    it('checks a PIN kept as an argon2 hash (set before seals), then seals it on its first right use', async () => {
      const c = await addLegacyCustomer(server, { creditMl: 20_000 });
      const row = () => server.kioskhub.services.customers.get('default', c.id);
      const legacyHash = (await row()).pin_hash!;
      const seals = () =>
        server.kioskhub.db
          .selectFrom('water_pin_seals')
          .selectAll()
          .where('customer_id', '=', c.id)
          .execute();
      expect(await seals()).toEqual([]);

      expect((await verify(verification(kiosk.id, c, { pin: '0000' }))).body.code).toBe('INVALID_PIN');
      expect(await row()).toMatchObject({ pin_hash: legacyHash, pin_failures: 1 }); // still argon2, counted

      expect((await verify(verification(kiosk.id, c))).body).toMatchObject({
        approved: true,
        code: 'VERIFIED',
      });
      const upgraded = await row();
      expect(upgraded.pin_failures).toBe(0);
      expect(upgraded.pin_hash).toMatch(/^pinseal1\./);
      expect(upgraded.pin_hash).not.toMatch(PIN_ALONE);
      expect(await seals()).toHaveLength(1); // now in the kiosks' credential caches too

      // From now on the seal answers: right, wrong, right.
      expect((await verify(verification(kiosk.id, c))).body.code).toBe('VERIFIED');
      expect((await verify(verification(kiosk.id, c, { pin: '7392' }))).body.code).toBe('INVALID_PIN');
      expect((await verify(verification(kiosk.id, c))).body.code).toBe('VERIFIED');
      expect((await row()).pin_hash).toBe(upgraded.pin_hash);
      expect(await creditOf(server, c.id)).toBe(5_000);
    });

    it('refuses malformed bodies (400), missing keys (401), other kiosks and non-water keys (403) with approved:false, changing nothing', async () => {
      const c = await addCustomer(server, { creditMl: 20_000 });
      const before = (await dispenseRows(server)).length;
      const good = verification(kiosk.id, c);
      const bad: unknown[] = [
        {},
        { ...good, volume_ml: -5 },
        { ...good, volume_ml: 'lots' },
        { ...good, volume_ml: 0 },
        { ...good, timestamp: 'yesterday' },
        { ...good, timestamp: null },
        { ...good, pin: { $ne: 1 } },
        { ...good, pin: 'abcd' },
        { ...good, pin: '12345' },
        { ...good, pin: '739' },
        { ...good, extra: 1 },
        (({ pin: _p, ...rest }) => rest)(good),
      ];
      for (const body of bad) {
        const res = await verify(body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body).toMatchObject({
          type: 'dispense_response',
          approved: false,
          code: 'VALIDATION_FAILED',
        });
        expect(JSON.stringify(res.body)).not.toMatch(PIN_ALONE);
      }
      const notJson = await server.request('POST', '/dispense-verification', {
        raw: '{"kiosk_id": ',
        token: null,
        headers: { 'x-api-key': kiosk.key },
      });
      expect(notJson.status).toBe(400);
      expect(notJson.body.approved).toBe(false);
      const keyless = await server.request('POST', '/dispense-verification', { body: good, token: null });
      expect(keyless.status).toBe(401);
      expect(keyless.body.approved).toBe(false);
      const other = await verify({ ...good, kiosk_id: 'SOMEONE-ELSE' });
      expect(other.status).toBe(403);
      expect(other.body.approved).toBe(false);
      const notWater = await verify({ ...good, kiosk_id: vending.id }, vending.key);
      expect(notWater.status).toBe(403);
      const staff = await server.request('POST', '/dispense-verification', { body: good });
      expect(staff.status).toBe(403);
      expect((await dispenseRows(server)).length).toBe(before);
      expect(await creditOf(server, c.id)).toBe(20_000);
      // A malformed PIN is not a wrong one: nothing counts toward the lockout.
      const pinRow = await server.kioskhub.db
        .selectFrom('customers')
        .select(['pin_failures', 'pin_locked_until'])
        .where('id', '=', c.id)
        .executeTakeFirstOrThrow();
      expect(pinRow).toEqual({ pin_failures: 0, pin_locked_until: null });
      expect((await verify(verification(kiosk.id, c))).body.code).toBe('VERIFIED');
    });

    it('a settlement sent again while the first is still being applied is a duplicate, applied once', async () => {
      const c = await addCustomer(server, { creditMl: 30_000 });
      const auth = (await verify(verification(kiosk.id, c))).body.authorization_id as string;
      const settle = { authorizationId: auth, dispensedMl: 4_000, kioskTxnId: uid('txn-'), tap: 1 };
      const answers = await Promise.all(
        [1, 2, 3].map(() => kioskCall('POST', '/v1/water/dispenses', settle)),
      );
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      expect(answers.filter((a) => a.body.duplicate === true)).toHaveLength(2);
      for (const a of answers) expect(a.body).toMatchObject({ ok: true, creditsMl: 26_000 });
      expect(await creditOf(server, c.id)).toBe(26_000);
    });

    it('settles by what was dispensed (rest released), counts a kioskTxnId once, flags water beyond the hold', async () => {
      const c = await addCustomer(server, { creditMl: 30_000 });
      const auth = (await verify(verification(kiosk.id, c))).body.authorization_id as string;
      expect(await creditOf(server, c.id)).toBe(25_000);
      const txn = uid('txn-');
      const settle = { authorizationId: auth, dispensedMl: 3_200, kioskTxnId: txn, tap: 2 };
      const res = await kioskCall('POST', '/v1/water/dispenses', settle);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true, creditsMl: 26_800 });
      const again = await kioskCall('POST', '/v1/water/dispenses', settle);
      expect(again.body).toEqual({ ok: true, duplicate: true, creditsMl: 26_800 });
      // Another settlement of a settled authorization is refused.
      const other = await kioskCall('POST', '/v1/water/dispenses', { ...settle, kioskTxnId: uid('txn-') });
      expect(other.status).toBe(409);
      expect(await creditOf(server, c.id)).toBe(26_800);

      // More than held: the hold and the extra are taken, the dispense is flagged.
      const auth2 = (await verify(verification(kiosk.id, c, { volume_ml: 2_000 }))).body
        .authorization_id as string;
      const over = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth2,
        dispensedMl: 2_500,
        kioskTxnId: uid('txn-'),
      });
      expect(over.body).toEqual({ ok: true, creditsMl: 24_300 });
      const row = (await dispenseRows(server)).find((r) => r.id === auth2)!;
      expect(row).toMatchObject({ status: 'SETTLED', dispensed_ml: 2_500, flagged: 1 });

      // Bad settlements change nothing.
      for (const body of [
        { ...settle, kioskTxnId: uid('t'), dispensedMl: -1 },
        { ...settle, kioskTxnId: uid('t'), extra: true },
        { authorizationId: auth, kioskTxnId: uid('t') },
        { ...settle, kioskTxnId: 'has spaces' },
      ]) {
        expect((await kioskCall('POST', '/v1/water/dispenses', body)).status).toBe(400);
      }
      expect(
        (
          await kioskCall('POST', '/v1/water/dispenses', {
            ...settle,
            authorizationId: 'NOPE',
            kioskTxnId: uid('t'),
          })
        ).status,
      ).toBe(404);
      expect(
        (await kioskCall('POST', '/v1/water/dispenses', { ...settle, kioskTxnId: uid('t') }, vending.key))
          .status,
      ).toBe(403);
      expect(await creditOf(server, c.id)).toBe(24_300);
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .select('action')
        .where('subject_id', '=', c.id)
        .execute();
      expect(audit.map((a) => a.action)).toEqual(
        expect.arrayContaining(['water.hold_placed', 'water.dispensed', 'water.dispensed_flagged']),
      );
    });

    it('sends one low-credit notice when a settlement takes the credit under the threshold', async () => {
      const c = await addCustomer(server, { creditMl: 21_000 });
      const auth = (await verify(verification(kiosk.id, c))).body.authorization_id as string;
      const mark = logs.length;
      await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth,
        dispensedMl: 5_000,
        kioskTxnId: uid('txn-'),
      });
      // No SMS API configured in this test: the queued notice is logged by kind (never its text).
      expect(logs.slice(mark).some((l) => l.includes('"kind":"low_credit"'))).toBe(true);
    });

    it('releases a hold nobody settled after WATER_HOLD_MS (a job), and a late settlement still records the water', async () => {
      const c = await addCustomer(server, { creditMl: 10_000 });
      const auth = (await verify(verification(kiosk.id, c, { volume_ml: 4_000 }))).body
        .authorization_id as string;
      expect(await creditOf(server, c.id)).toBe(6_000);
      await eventually(async () => (await creditOf(server, c.id)) === 10_000, 15_000, 'hold released');
      const row = (await dispenseRows(server)).find((r) => r.id === auth)!;
      expect(row.status).toBe('RELEASED');
      const late = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth,
        dispensedMl: 1_000,
        kioskTxnId: uid('txn-'),
      });
      expect(late.body).toEqual({ ok: true, creditsMl: 9_000 });
    });

    it('an offline item of an earlier day is measured against that day’s limit, not today’s use', async () => {
      const c = await addCustomer(server, { creditMl: 20_000, dailyLimitMl: 5_000 });
      // Registered a week ago, so an item of three days ago is on a trusted clock.
      await server.kioskhub.services.customers.repo.update(c.id, {
        created_at: new Date(Date.now() - 7 * DAY_MS).toISOString(),
      });
      const upload = (dispensedMl: number, at: number) =>
        kioskCall('POST', '/v1/water/transactions:batch', {
          transactions: [{ kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl, at }],
        });
      expect((await upload(4_000, Date.now())).body.results[0].status).toBe('applied');
      expect((await upload(2_000, Date.now() - 3 * DAY_MS + 60_000)).body.results[0].status).toBe('applied');
      expect((await upload(1_500, Date.now())).body.results[0].status).toBe('applied');
      const rows = (await dispenseRows(server))
        .filter((r) => r.customer_id === c.id)
        .sort((a, b) => Number(a.dispensed_ml) - Number(b.dispensed_ml));
      // 2,000 on its own day: within 5,000; 1,500 today on top of 4,000: over it.
      expect(rows.map((r) => [Number(r.dispensed_ml), r.flagged])).toEqual([
        [1_500, 1],
        [2_000, 0],
        [4_000, 0],
      ]);
    });

    it('an offline item dated by a clock never set (1970) is recorded now and flagged: a long-ended subscription does not pay for it', async () => {
      const c = await addCustomer(server, { creditMl: 10_000, subscriptionDays: -30 });
      const res = await kioskCall('POST', '/v1/water/transactions:batch', {
        transactions: [{ kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: 2_000, at: 5_000 }],
      });
      expect(res.body.results).toEqual([expect.objectContaining({ status: 'applied' })]);
      expect(await creditOf(server, c.id)).toBe(8_000);
      const [row] = (await dispenseRows(server)).filter((r) => r.customer_id === c.id);
      expect(row).toMatchObject({ status: 'OFFLINE', funding: 'credit', flagged: 1 });
      expect(Date.now() - Date.parse(String(row!.at))).toBeLessThan(60_000);
    });

    it('applies the SD-card batch once: offline water always recorded (overdraw flagged), unknown customers rejected', async () => {
      const c = await addCustomer(server, { creditMl: 3_000 });
      const sub = await addCustomer(server, { subscriptionDays: 10 });
      const auth = (await verify(verification(kiosk.id, c, { volume_ml: 1_000 }))).body
        .authorization_id as string;
      const settledTxn = uid('txn-');
      await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth,
        dispensedMl: 1_000,
        kioskTxnId: settledTxn,
      });
      const items = [
        {
          kioskTxnId: uid('sd-'),
          userId: c.phone,
          dispensedMl: 1_500,
          at: Math.floor(Date.now() / 1000) - 3600,
        },
        {
          kioskTxnId: uid('sd-'),
          userId: `0${c.phone.slice(4)}`,
          dispensedMl: 2_000,
          at: new Date(Date.now() - 1800_000).toISOString(),
          tap: 3,
        },
        { kioskTxnId: uid('sd-'), userId: sub.phone, dispensedMl: 5_000, at: Date.now() - 60_000 },
        { kioskTxnId: settledTxn, userId: c.phone, dispensedMl: 1_000, at: Date.now() },
        { kioskTxnId: uid('sd-'), userId: kenyan(), dispensedMl: 700, at: Date.now() },
      ];
      const res = await kioskCall('POST', '/v1/water/transactions:batch', { transactions: items });
      expect(res.status).toBe(200);
      expect(res.body.results.map((r: { status: string }) => r.status)).toEqual([
        'applied',
        'applied',
        'applied',
        'duplicate',
        'rejected',
      ]);
      expect(res.body.results[4].code).toBe('UNKNOWN_CUSTOMER');
      expect(await creditOf(server, c.id)).toBe(-1_500); // 3000 − 1000 − 1500 − 2000: recorded, flagged
      const rows = (await dispenseRows(server)).filter(
        (r) => r.customer_id === c.id && r.status === 'OFFLINE',
      );
      expect(rows.map((r) => r.flagged).sort()).toEqual([0, 1]);
      expect(await creditOf(server, sub.id)).toBe(0);

      const again = await kioskCall('POST', '/v1/water/transactions:batch', { transactions: items });
      expect(again.body.results.map((r: { status: string }) => r.status)).toEqual([
        'duplicate',
        'duplicate',
        'duplicate',
        'duplicate',
        'rejected',
      ]);
      expect(await creditOf(server, c.id)).toBe(-1_500);

      const before = (await dispenseRows(server)).length;
      const tooMany = Array.from({ length: 501 }, (_, i) => ({ ...items[0]!, kioskTxnId: `x${i}` }));
      for (const body of [
        { transactions: tooMany },
        { transactions: [] },
        { transactions: [{ ...items[0], dispensedMl: -3 }] },
        { transactions: [{ ...items[0], kioskTxnId: uid('n'), extra: 1 }] },
      ]) {
        expect((await kioskCall('POST', '/v1/water/transactions:batch', body)).status).toBe(400);
      }
      expect((await dispenseRows(server)).length).toBe(before);
      const alerts = await server.kioskhub.db
        .selectFrom('alerts')
        .selectAll()
        .where('kind', '=', 'WATER_UNKNOWN_CUSTOMER')
        .execute();
      expect(alerts.length).toBeGreaterThanOrEqual(1);
    });

    it('a batch item naming an authorization settled already is never charged again: duplicate if it matches, else ALREADY_SETTLED', async () => {
      const c = await addCustomer(server, { creditMl: 20_000 });
      const auth = (await verify(verification(kiosk.id, c))).body.authorization_id as string;
      const settled = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: auth,
        dispensedMl: 5_000,
        kioskTxnId: uid('on-'),
      });
      expect(settled.status).toBe(200);
      expect(await creditOf(server, c.id)).toBe(15_000);
      const at = Math.floor(Date.now() / 1000);
      const same = { kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: 5_000, at, authorizationId: auth };
      const other = { ...same, kioskTxnId: uid('sd-'), dispensedMl: 4_000 };
      const res = await kioskCall('POST', '/v1/water/transactions:batch', { transactions: [same, other] });
      expect(res.status).toBe(200);
      expect(res.body.results).toEqual([
        { kioskTxnId: same.kioskTxnId, status: 'duplicate' },
        { kioskTxnId: other.kioskTxnId, status: 'rejected', code: 'ALREADY_SETTLED' },
      ]);
      expect(await creditOf(server, c.id)).toBe(15_000);
      const rows = (await dispenseRows(server)).filter((r) => r.customer_id === c.id);
      expect(rows.map((r) => r.status)).toEqual(['SETTLED']);
      const alerts = await server.kioskhub.db
        .selectFrom('alerts')
        .selectAll()
        .where('kind', '=', 'WATER_ALREADY_SETTLED')
        .execute();
      expect(alerts.some((a) => a.message.includes(other.kioskTxnId))).toBe(true);
    });

    it('a kioskTxnId reused for another authorization or customer is 409 CONFLICT (batch: rejected), nothing charged or released wrongly', async () => {
      const a = await addCustomer(server, { creditMl: 50_000 });
      const b = await addCustomer(server, { creditMl: 20_000 });
      const authA = (await verify(verification(kiosk.id, a))).body.authorization_id as string;
      const authB = (await verify(verification(kiosk.id, b))).body.authorization_id as string;
      const txn = uid('t-');
      const first = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: authA,
        dispensedMl: 5_000,
        kioskTxnId: txn,
      });
      expect(first.body).toEqual({ ok: true, creditsMl: 45_000 });
      const reused = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: authB,
        dispensedMl: 5_000,
        kioskTxnId: txn,
      });
      expect(reused.status).toBe(409);
      expect(reused.body.error.code).toBe('CONFLICT');
      expect(JSON.stringify(reused.body)).not.toContain('45000');
      // B's hold stands, to be settled under a fresh id.
      expect((await dispenseRows(server)).find((r) => r.id === authB)?.status).toBe('HELD');
      expect(await creditOf(server, b.id)).toBe(15_000);
      const items = [
        { kioskTxnId: txn, userId: b.phone, dispensedMl: 7_000, at: Math.floor(Date.now() / 1000) },
        { kioskTxnId: txn, userId: a.phone, dispensedMl: 6_000, at: Math.floor(Date.now() / 1000) },
        { kioskTxnId: txn, userId: a.phone, dispensedMl: 5_000, at: Math.floor(Date.now() / 1000) },
      ];
      const batch = await kioskCall('POST', '/v1/water/transactions:batch', { transactions: items });
      expect(batch.body.results).toEqual([
        { kioskTxnId: txn, status: 'rejected', code: 'KIOSK_TXN_REUSED' },
        { kioskTxnId: txn, status: 'rejected', code: 'KIOSK_TXN_REUSED' },
        { kioskTxnId: txn, status: 'duplicate' },
      ]);
      expect(await creditOf(server, a.id)).toBe(45_000);
      expect(await creditOf(server, b.id)).toBe(15_000);
      const fresh = await kioskCall('POST', '/v1/water/dispenses', {
        authorizationId: authB,
        dispensedMl: 5_000,
        kioskTxnId: uid('t-'),
      });
      expect(fresh.body).toEqual({ ok: true, creditsMl: 15_000 });
      const alerts = await server.kioskhub.db
        .selectFrom('alerts')
        .selectAll()
        .where('kind', '=', 'WATER_TXN_REUSED')
        .execute();
      expect(alerts.some((x) => x.message.includes(txn))).toBe(true);
    });

    it('one kioskTxnId sent at once for two customers’ water charges one of them; the other is refused', async () => {
      const a = await addCustomer(server, { creditMl: 20_000 });
      const b = await addCustomer(server, { creditMl: 20_000 });
      const txn = uid('dup-');
      const at = Math.floor(Date.now() / 1000);
      const [ra, rb] = await Promise.all(
        [a, b].map((c) =>
          kioskCall('POST', '/v1/water/transactions:batch', {
            transactions: [{ kioskTxnId: txn, userId: c.phone, dispensedMl: 3_000, at }],
          }),
        ),
      );
      const statuses = [ra!.body.results[0], rb!.body.results[0]].map(
        (r: { status: string; code?: string }) => `${r.status}${r.code ? `:${r.code}` : ''}`,
      );
      expect(statuses.sort()).toEqual(['applied', 'rejected:KIOSK_TXN_REUSED']);
      expect([await creditOf(server, a.id), await creditOf(server, b.id)].sort()).toEqual([17_000, 20_000]);

      const authA = (await verify(verification(kiosk.id, a))).body.authorization_id as string;
      const authB = (await verify(verification(kiosk.id, b))).body.authorization_id as string;
      const txn2 = uid('dup-');
      const answers = await Promise.all(
        [authA, authB].map((auth) =>
          kioskCall('POST', '/v1/water/dispenses', {
            authorizationId: auth,
            dispensedMl: 1_000,
            kioskTxnId: txn2,
          }),
        ),
      );
      expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
      const settled = (await dispenseRows(server)).filter((r) => r.kiosk_txn_id === txn2);
      expect(settled).toHaveLength(1);
    });

    it('serves a signed, incremental credential cache whose verifiers need this kiosk’s secret', async () => {
      const cacheKiosk = await server.createMachine(uid('W'), { kind: 'water' });
      const c = await addCustomer(server, { creditMl: 12_000 });
      const secretRes = await server.request('POST', `/v1/water/kiosks/${cacheKiosk.id}/secret`, {
        body: { reason: 'provisioning' },
      });
      expect(secretRes.status).toBe(200);
      const secret = Buffer.from(secretRes.body.kioskSecret as string, 'hex');
      expect(secret).toHaveLength(32);
      expect(
        (await kioskCall('POST', `/v1/water/kiosks/${cacheKiosk.id}/secret`, {}, cacheKiosk.key)).status,
      ).toBe(403);

      const full = await kioskCall('GET', '/v1/water/credential-cache', undefined, cacheKiosk.key);
      expect(full.status).toBe(200);
      const { signature, ...unsigned } = full.body;
      expect(signature).toBe(createHmac('sha256', secret).update(canonicalCache(unsigned)).digest('hex'));
      expect(full.body.full).toBe(true);
      expect(full.body.customers.length).toBeLessThanOrEqual(1500);
      const entry = full.body.customers.find((x: { accountId: string }) => x.accountId === c.accountId);
      expect(entry).toMatchObject({ phone: c.phone, status: 'active', creditsMl: 12_000 });
      expect(entry.verifier).toBe(createHmac('sha256', secret).update(`${c.accountId}:${PIN}`).digest('hex'));
      // Another kiosk's secret gives another verifier: one kiosk's cache says nothing to another.
      const otherCache = await kioskCall('GET', '/v1/water/credential-cache');
      const elsewhere = otherCache.body.customers.find(
        (x: { accountId: string }) => x.accountId === c.accountId,
      );
      expect(elsewhere.verifier).not.toBe(entry.verifier);
      expect(JSON.stringify(full.body)).not.toContain(`"${PIN}"`);
      // Most recently active first: the customer who just took water leads.
      expect(full.body.customers[0].accountId).not.toBe(undefined);

      const v = full.body.version as number;
      const same = await kioskCall('GET', `/v1/water/credential-cache?since=${v}`, undefined, cacheKiosk.key);
      expect(same.body).toMatchObject({ version: v, full: false, customers: [], removed: [] });

      await addCredit(server, 'default', c.id, 1_000);
      const moved = await addCustomer(server, { creditMl: 1_000 });
      const step = await kioskCall('GET', `/v1/water/credential-cache?since=${v}`, undefined, cacheKiosk.key);
      expect(step.body.version).toBe(v + 1);
      expect(step.body.customers.map((x: { accountId: string }) => x.accountId).sort()).toEqual(
        [c.accountId, moved.accountId].sort(),
      );
      await server.kioskhub.services.customers.repo.update(moved.id, {
        site_ids: JSON.stringify(['another-site']),
      });
      const gone = await kioskCall(
        'GET',
        `/v1/water/credential-cache?since=${v + 1}`,
        undefined,
        cacheKiosk.key,
      );
      expect(gone.body).toMatchObject({ version: v + 2, customers: [], removed: [moved.accountId] });
      const { signature: s2, ...u2 } = gone.body;
      expect(s2).toBe(createHmac('sha256', secret).update(canonicalCache(u2)).digest('hex'));
      expect(
        (await kioskCall('GET', '/v1/water/credential-cache?since=-1', undefined, cacheKiosk.key)).status,
      ).toBe(400);
      expect((await kioskCall('GET', '/v1/water/credential-cache', undefined, vending.key)).status).toBe(403);
    });

    it('orders the credential cache most recently active first', async () => {
      const first = await addCustomer(server, { creditMl: 5_000 });
      const second = await addCustomer(server, { creditMl: 5_000 });
      const ids = async () =>
        (await kioskCall('GET', '/v1/water/credential-cache')).body.customers.map(
          (x: { accountId: string }) => x.accountId,
        ) as string[];
      expect((await ids()).indexOf(second.accountId)).toBeLessThan((await ids()).indexOf(first.accountId));
      await verify(verification(kiosk.id, first, { volume_ml: 1_000 }));
      expect((await ids())[0]).toBe(first.accountId);
    });

    it('stores heartbeats; a kiosk is OFFLINE after 5 minutes of silence', async () => {
      const hbKiosk = await server.createMachine(uid('W'), { kind: 'water' });
      const hb = {
        firmware: 'esp32s3-2.4.1',
        taps: [
          { tap: 1, status: 'ok', totalMl: 123_456 },
          { tap: 2, status: 'fault' },
        ],
        signalDbm: -71,
        sdFreeMb: 3_100,
        cacheVersion: 4,
      };
      const res = await kioskCall('POST', '/v1/water/heartbeat', hb, hbKiosk.key);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        machineId: hbKiosk.id,
        status: 'ONLINE',
        firmware: hb.firmware,
        taps: hb.taps,
        signalDbm: -71,
        sdFreeMb: 3_100,
        cacheVersion: 4,
      });
      for (const bad of [{ ...hb, signalDbm: 'weak' }, { ...hb, extra: 1 }, { taps: [] }]) {
        expect((await kioskCall('POST', '/v1/water/heartbeat', bad, hbKiosk.key)).status).toBe(400);
      }
      await server.kioskhub.db
        .updateTable('water_kiosks')
        .set({ last_heartbeat_at: new Date(Date.now() - 5 * 60_000 - 1_000).toISOString() })
        .where('machine_id', '=', hbKiosk.id)
        .execute();
      const list = await server.request('GET', '/v1/water/kiosks');
      expect(list.body.items.find((k: { machineId: string }) => k.machineId === hbKiosk.id)).toMatchObject({
        status: 'OFFLINE',
        firmware: hb.firmware,
      });
      expect((await kioskCall('GET', '/v1/water/kiosks', undefined, hbKiosk.key)).status).toBe(403);
    });

    it('emits water_verification, water_dispensed and customer_updated to the tenant and site rooms', async () => {
      const socket = liveSocket(server.url, { token: ADMIN_TOKEN });
      try {
        await connected(socket);
        expect(await socket.timeout(5_000).emitWithAck('subscribe', { room: 'site:default' })).toMatchObject({
          ok: true,
        });
        const c = await addCustomer(server, { creditMl: 9_000 });
        const verified = nextEvent(socket, 'water_verification');
        const auth = (await verify(verification(kiosk.id, c, { volume_ml: 1_000 }))).body
          .authorization_id as string;
        expect(await verified).toMatchObject({
          kioskId: kiosk.id,
          customerId: c.id,
          approved: true,
          code: 'VERIFIED',
          volumeMl: 1_000,
        });
        const dispensed = nextEvent(socket, 'water_dispensed');
        const updated = nextEvent(socket, 'customer_updated');
        await kioskCall('POST', '/v1/water/dispenses', {
          authorizationId: auth,
          dispensedMl: 800,
          kioskTxnId: uid('txn-'),
          tap: 1,
        });
        expect(await dispensed).toMatchObject({
          kioskId: kiosk.id,
          customerId: c.id,
          dispensedMl: 800,
          tap: 1,
        });
        expect(await updated).toMatchObject({ customerId: c.id });
      } finally {
        socket.disconnect();
      }
    });

    it('keeps tenants apart: another tenant’s kiosk sees neither the customers nor the authorizations', async () => {
      const tenantB = uid('tb');
      expect((await server.request('POST', '/v1/tenants', { body: { id: tenantB, name: 'B' } })).status).toBe(
        201,
      );
      const kioskB = await server.createMachine(uid('WB'), { kind: 'water', tenantId: tenantB });
      const c = await addCustomer(server, { creditMl: 9_000 });
      const res = await verify(verification(kioskB.id, c), kioskB.key);
      expect(res.body).toMatchObject({ approved: false, code: 'UNKNOWN_CUSTOMER' });
      const auth = (await verify(verification(kiosk.id, c))).body.authorization_id as string;
      const settle = await kioskCall(
        'POST',
        '/v1/water/dispenses',
        { authorizationId: auth, dispensedMl: 100, kioskTxnId: uid('t') },
        kioskB.key,
      );
      expect(settle.status).toBe(404);
      const cache = await kioskCall('GET', '/v1/water/credential-cache', undefined, kioskB.key);
      expect(cache.body.customers.some((x: { accountId: string }) => x.accountId === c.accountId)).toBe(
        false,
      );
      expect(await creditOf(server, c.id)).toBe(4_000);
    });

    it('places one hold for the same request sent twice at once, and never lets parallel requests pass the daily limit', async () => {
      const c = await addCustomer(server, { creditMl: 40_000 });
      const body = verification(kiosk.id, c);
      const [a, b] = await Promise.all([verify(body), verify(body)]);
      expect(a.body.authorization_id).toBe(b.body.authorization_id);
      expect(await creditOf(server, c.id)).toBe(35_000);
      const limited = await addCustomer(server, { subscriptionDays: 5, dailyLimitMl: 10_000 });
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => verify(verification(kiosk.id, limited, { volume_ml: 4_000 }))),
      );
      expect(answers.filter((r) => r.body.approved).length).toBe(2);
    });

    it('a verification racing an offline upload that takes the same credit answers as documented, and is in the feed', async () => {
      const codes = new Set<string>();
      for (let i = 0; i < 12; i += 1) {
        const c = await addCustomer(server, { creditMl: 5_000 });
        const [v, b] = await Promise.all([
          verify(verification(kiosk.id, c)),
          kioskCall('POST', '/v1/water/transactions:batch', {
            transactions: [{ kioskTxnId: uid('race-'), userId: c.phone, dispensedMl: 5_000, at: Date.now() }],
          }),
        ]);
        expect(v.status, JSON.stringify(v.body)).toBe(200);
        expect(['VERIFIED', 'INSUFFICIENT_CREDIT']).toContain(v.body.code);
        expect(b.body.results[0].status).toBe('applied');
        codes.add(v.body.code as string);
        const feed = await server.kioskhub.db
          .selectFrom('water_verifications')
          .select('code')
          .where('customer_id', '=', c.id)
          .execute();
        expect(feed.map((f) => f.code)).toEqual([v.body.code]);
        expect(await creditOf(server, c.id)).toBe(v.body.code === 'VERIFIED' ? -5_000 : 0);
      }
      expect(codes.size).toBeGreaterThan(0);
    });

    it('keeps the ledger whole and the PIN out of every log line', async () => {
      const { drift, units } = await ledgerInvariants(server.kioskhub.db);
      expect(drift).toEqual([]);
      expect(units).toEqual([]);
      expect(logs.length).toBeGreaterThan(0);
      expect(logs.filter((l) => PIN_ALONE.test(l) || /"pin"/i.test(l))).toEqual([]);
    });
  });
}

// Database loss: the test server reaches PostgreSQL through a TCP proxy that this test cuts, so
// PostgreSQL itself (shared with other test runs) is never stopped.
const pgUrl = process.env['TEST_DATABASE_URL'];
describe.runIf(pgUrl !== undefined)(
  'water verification when the database is unreachable (postgres, via a proxy)',
  () => {
    const target = pgUrl ? new URL(pgUrl) : undefined;
    const sockets = new Set<net.Socket>();
    let proxy: net.Server | undefined;
    let port = 0;
    let server: TestServer | undefined;
    const schema = newSchemaName();

    function openProxy(listenPort: number): Promise<number> {
      return new Promise((resolve, reject) => {
        const p = net.createServer((client) => {
          const upstream = net.connect(Number(target!.port || 5432), target!.hostname);
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('close', () => sockets.delete(s));
            s.on('error', () => s.destroy());
          }
          client.pipe(upstream).pipe(client);
        });
        p.once('error', reject);
        p.listen(listenPort, '127.0.0.1', () => {
          proxy = p;
          resolve((p.address() as net.AddressInfo).port);
        });
      });
    }
    function cutProxy(): Promise<void> {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
    }

    beforeAll(async () => {
      port = await openProxy(0);
      const url = new URL(pgUrl!);
      url.host = `127.0.0.1:${port}`;
      // Its warnings about the lost connection are expected: keep them out of the test output.
      server = await startServer({
        engine: 'postgres',
        schema,
        env: { DATABASE_URL: url.toString() },
        logStream: { write: () => undefined },
      });
    });
    afterAll(async () => {
      if (!proxy?.listening) await openProxy(port).catch(() => undefined);
      await server?.close().catch(() => undefined);
      await cutProxy();
      await dropSchema(schema);
    });

    it('answers 503 approved:false while PostgreSQL cannot be reached, never a guess, and recovers', async () => {
      const s = server!;
      const k = await s.createMachine(uid('W'), { kind: 'water' });
      const c = await addCustomer(s, { creditMl: 10_000 });
      const ask = () =>
        s.request('POST', '/dispense-verification', {
          body: verification(k.id, c),
          token: null,
          headers: { 'x-api-key': k.key },
        });
      expect((await ask()).body.approved).toBe(true);
      await cutProxy();
      const down = await ask();
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ type: 'dispense_response', approved: false, code: 'UNAVAILABLE' });
      expect(JSON.stringify(down.body)).not.toMatch(PIN_ALONE);
      await openProxy(port);
      const back = await eventually(
        async () => {
          const r = await ask();
          return r.status === 200 ? r : undefined;
        },
        15_000,
        'database back',
      );
      expect(back.body.approved).toBe(true);
    });
  },
);
