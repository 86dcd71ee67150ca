// Found by following the water kiosk docs as an operator (docs/water.md, docs/customers.md), and
// fixed. A customer's water credit may go negative (water dispensed offline, or beyond a hold), and
// the ledger's floor check used to refuse every move *into* it that left it still negative, so:
// - settling an approval that poured less than its hold (the rest goes back to the credit) was
//   409 INVALID_STATE: water that left the tap was never recorded;
// - the hold's expiry job (`water_hold_expire`) failed on every attempt, then JOB_FAILED: the hold
//   was never released;
// - a staff credit top-up that did not bring the balance back to zero was 409 INVALID_STATE (and a
//   credit plan paid with mobile money could not be applied: the payment stayed PENDING).
// Also: a USSD registration left the typed PIN in clear in the database (docs/water-payments.md:
// "The PIN is never ... stored in the session"); the session now keeps a keyed digest.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';

const PIN = '2468';
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const engine of engines()) {
  describe(`water walkthrough: a customer whose credit went negative (${engine})`, () => {
    let server: TestServer;
    let kiosk: { id: string; key: string };

    const kioskCall = (path: string, body: unknown) =>
      server.request('POST', path, { body, token: null, headers: { 'x-api-key': kiosk.key } });

    const customer = async (creditMl: number) => {
      const phone = kenyan();
      const created = await server.request('POST', '/v1/customers', { body: { phone, pin: PIN } });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const credited = await server.request('POST', `/v1/customers/${id}/credits`, {
        body: { deltaMl: creditMl, reason: 'walkthrough' },
      });
      expect(credited.status).toBe(200);
      return { id, phone };
    };
    const creditsMl = async (id: string) =>
      (await server.request('GET', `/v1/customers/${id}`)).body.creditsMl as number;

    /** An approval of `holdMl`, then `offlineMl` of offline water that takes the credit below zero. */
    async function heldThenOverdrawn(holdMl: number, offlineMl: number) {
      const c = await customer(10_000);
      const v = await kioskCall('/dispense-verification', {
        kiosk_id: kiosk.id,
        user_id: c.phone,
        pin: PIN,
        volume_ml: holdMl,
        timestamp: new Date().toISOString(),
      });
      expect(v.body).toMatchObject({ approved: true, code: 'VERIFIED' });
      const batch = await kioskCall('/v1/water/transactions:batch', {
        transactions: [
          { kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: offlineMl, at: new Date().toISOString() },
        ],
      });
      expect(batch.body.results[0].status).toBe('applied');
      return { ...c, authorizationId: v.body.authorization_id as string };
    }

    beforeAll(async () => {
      server = await startServer({ engine, env: { WATER_HOLD_MS: '1500' } });
      kiosk = await server.createMachine(uid('W'), { kind: 'water' });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('settles a partial pour of a hold although offline water took the credit below zero', async () => {
      // 10 L credit, 2 L held (8 L left), then 20 L offline: credit -12 L.
      const c = await heldThenOverdrawn(2_000, 20_000);
      expect(await creditsMl(c.id)).toBe(-12_000);

      // The tap poured 0.5 L of the 2 L: 0.5 L is charged, 1.5 L goes back to the credit.
      const settled = await kioskCall('/v1/water/dispenses', {
        authorizationId: c.authorizationId,
        dispensedMl: 500,
        kioskTxnId: uid('t-'),
        tap: 1,
      });
      // It was 409 INVALID_STATE "water_credit of customer … holds less than 1500 ml; nothing moved".
      expect(settled.status).toBe(200);
      expect(settled.body).toMatchObject({ ok: true, creditsMl: -10_500 });
      expect(await creditsMl(c.id)).toBe(-10_500);
    });

    it('releases an expired hold although offline water took the credit below zero', async () => {
      const c = await heldThenOverdrawn(2_000, 20_000);
      expect(await creditsMl(c.id)).toBe(-12_000);
      // WATER_HOLD_MS is 1.5 s: the expiry job gives the 2 L back (credit -10 L).
      await sleep(6_000);
      const dispenses = await server.request('GET', `/v1/customers/${c.id}/dispenses`);
      const hold = (dispenses.body.items as { id: string; status: string }[]).find(
        (d) => d.id === c.authorizationId,
      );
      // It stayed HELD: the job failed on every attempt with INVALID_STATE and ended JOB_FAILED.
      expect(hold?.status).toBe('RELEASED');
      expect(await creditsMl(c.id)).toBe(-10_000);
    }, 20_000);

    it('a settlement sent again under its kioskTxnId with another amount is 409 CONFLICT with an alert; the first stands', async () => {
      const c = await customer(10_000);
      const v = await kioskCall('/dispense-verification', {
        kiosk_id: kiosk.id,
        user_id: c.phone,
        pin: PIN,
        volume_ml: 5_000,
        timestamp: new Date().toISOString(),
      });
      expect(v.body).toMatchObject({ approved: true });
      const kioskTxnId = uid('t-');
      const settle = (dispensedMl: number) =>
        kioskCall('/v1/water/dispenses', {
          authorizationId: v.body.authorization_id,
          dispensedMl,
          kioskTxnId,
        });
      expect((await settle(4_000)).body).toMatchObject({ ok: true, creditsMl: 6_000 });
      // It was answered as a duplicate: the 500 ml the kiosk now reports were never billed, and
      // nobody was told.
      const other = await settle(4_500);
      expect(other.status, JSON.stringify(other.body)).toBe(409);
      expect(other.body.error.code).toBe('CONFLICT');
      expect(other.body.error.message).toMatch(/with 4000 ml, not 4500 ml.*first amount stands/);
      expect(await creditsMl(c.id)).toBe(6_000);
      const alerts = (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
        kind: string;
        message: string;
      }[];
      expect(alerts.some((a) => a.kind === 'WATER_TXN_REUSED' && a.message.includes(kioskTxnId))).toBe(true);
      // The very same settlement again is still a duplicate.
      expect((await settle(4_000)).body).toMatchObject({ ok: true, duplicate: true, creditsMl: 6_000 });
    });

    it('takes a plan off sale and puts it back (PATCH /v1/water/plans/:id), audited; bad input changes nothing', async () => {
      const id = uid('p').slice(0, 12);
      const created = await server.request('POST', '/v1/water/plans', {
        body: { id, name: 'Typo plan', kind: 'subscription', priceMinor: 100, currency: 'UGX', days: 30 },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const planOf = async () =>
        (
          (await server.request('GET', '/v1/water/plans')).body.items as { id: string; active: boolean }[]
        ).find((p) => p.id === id);
      for (const bad of [{}, { active: 'no' }, { active: false, price: 1 }]) {
        const res = await server.request('PATCH', `/v1/water/plans/${id}`, { body: bad });
        expect(res.status, JSON.stringify(bad)).toBe(400);
      }
      expect(
        (await server.request('PATCH', '/v1/water/plans/nope', { body: { active: false } })).status,
      ).toBe(404);
      expect(await planOf()).toMatchObject({ active: true });
      const off = await server.request('PATCH', `/v1/water/plans/${id}`, { body: { active: false } });
      expect(off.status, JSON.stringify(off.body)).toBe(200);
      expect(off.body).toMatchObject({ id, active: false });
      expect(await planOf()).toMatchObject({ active: false });
      const on = await server.request('PATCH', `/v1/water/plans/${id}`, { body: { active: true } });
      expect(on.body).toMatchObject({ id, active: true });
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .select('action')
        .where('subject_type', '=', 'plan')
        .where('subject_id', '=', id)
        .orderBy('at')
        .execute();
      expect(audit.map((a) => a.action)).toEqual(['plan.created', 'plan.taken_off_sale', 'plan.put_on_sale']);
    });

    it('a credit adjustment sent again with its adjustmentId is made once; the id for another amount is 409', async () => {
      const c = await customer(7_000);
      const adjust = (body: Record<string, unknown>) =>
        server.request('POST', `/v1/customers/${c.id}/credits`, { body: { reason: 'top-up', ...body } });
      const entries = async () =>
        (
          await server.kioskhub.db
            .selectFrom('ledger_entries')
            .select('id')
            .where('cause_type', '=', 'staff_adjustment')
            .execute()
        ).length;
      const before = await entries();
      // A retried top-up (a lost answer, a second click) used to be counted twice: 7000 → 17000.
      const first = await adjust({ deltaMl: 5_000, adjustmentId: 'desk-1' });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expect((await adjust({ deltaMl: 5_000, adjustmentId: 'desk-1' })).body.creditsMl).toBe(12_000);
      expect(await creditsMl(c.id)).toBe(12_000);
      const other = await adjust({ deltaMl: 6_000, adjustmentId: 'desk-1' });
      expect(other.status).toBe(409);
      expect(other.body.error).toMatchObject({
        code: 'CONFLICT',
        message: expect.stringMatching(/5000 ml.*new adjustmentId/),
      });
      expect((await adjust({ deltaMl: 5_000, adjustmentId: 'bad id!' })).status).toBe(400);
      expect(await creditsMl(c.id)).toBe(12_000);
      expect(await entries()).toBe(before + 2);
      // Another customer may use the same id: ids are per customer.
      const d = await customer(0 + 1);
      expect(
        (
          await server.request('POST', `/v1/customers/${d.id}/credits`, {
            body: { reason: 'x', deltaMl: 1_000, adjustmentId: 'desk-1' },
          })
        ).status,
      ).toBe(200);
      expect(await creditsMl(d.id)).toBe(1_001);
    });

    it('a made-up cursor on the customers and verifications lists is 400, never a first page', async () => {
      await customer(1_000);
      for (const path of ['/v1/customers', '/v1/water/verifications']) {
        const res = await server.request('GET', `${path}?cursor=garbage`);
        expect(res.status, path).toBe(400);
        expect(res.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: { cursor: 'garbage' } });
        // A real nextCursor still pages.
        const first = await server.request('GET', `${path}?limit=1`);
        expect(first.status, path).toBe(200);
        if (first.body.nextCursor)
          expect(
            (await server.request('GET', `${path}?limit=1&cursor=${first.body.nextCursor}`)).status,
          ).toBe(200);
      }
    });

    it('takes a staff credit top-up for a customer whose credit is below zero', async () => {
      const c = await customer(1_000);
      const batch = await kioskCall('/v1/water/transactions:batch', {
        transactions: [
          { kioskTxnId: uid('sd-'), userId: c.phone, dispensedMl: 11_000, at: new Date().toISOString() },
        ],
      });
      expect(batch.body.results[0].status).toBe('applied');
      expect(await creditsMl(c.id)).toBe(-10_000);
      const topUp = await server.request('POST', `/v1/customers/${c.id}/credits`, {
        body: { deltaMl: 5_000, reason: 'goodwill' },
      });
      // It was 409 INVALID_STATE "water_credit of customer … holds less than 5000 ml; nothing moved".
      expect(topUp.status).toBe(200);
      expect(await creditsMl(c.id)).toBe(-5_000);
    });
  });
}

const AT_CALLBACK_KEY = 'walkthrough-at-callback-key-01';

for (const engine of engines()) {
  describe(`water walkthrough: USSD registration keeps no PIN at rest (${engine})`, () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startServer({ engine, env: { AT_CALLBACK_KEY } });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('stores no hop text holding the PIN in ussd_sessions', async () => {
      const phone = `+25677${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
      const sessionId = uid('ATUid_');
      const pin = '8352';
      for (const text of ['', '1', `1*${pin}`, `1*${pin}*${pin}`, `1*${pin}*${pin}*1`]) {
        const res = await fetch(`${server.url}/webhooks/africastalking/ussd?key=${AT_CALLBACK_KEY}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            sessionId,
            serviceCode: '*384*7#',
            phoneNumber: phone,
            text,
          }).toString(),
        });
        expect(res.status).toBe(200);
      }
      const customer = await server.request('GET', `/v1/customers?query=${encodeURIComponent(phone)}`);
      expect(customer.body.items[0]).toMatchObject({ phone, registered: true });
      const sessions = await server.kioskhub.db
        .selectFrom('ussd_sessions')
        .selectAll()
        .where('session_id', '=', sessionId)
        .execute();
      expect(sessions).toHaveLength(1);
      // It was "1*8352*8352*1", kept for a day (SESSION_RETENTION_MS) beside the phone; now a digest.
      const { last_text, data, last_response } = sessions[0]!;
      expect(`${last_text ?? ''} ${data} ${last_response ?? ''}`).not.toContain(pin);
    });
  });
}
