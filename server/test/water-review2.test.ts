// Water review, second round (docs/water.md), against the real server on both engines with local
// fakes of the SMS and mobile-money APIs: one low-credit SMS per crossing of the threshold however
// many holds or offline items take the credit down (concurrently too), and an offline item dated
// before a subscription was bought is not paid by it (charged from credit), while water dated
// inside the subscription, or inside the one it renewed, still is.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOW_CREDIT_ML } from '../src/modules/water-messaging/notices.js';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { addWaterCustomer } from './water-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';
import {
  AT_KEY,
  MOMO_KEY,
  providerEnv,
  startProviderFakes,
  type ProviderFakes,
} from './fixtures/mobile-money-fakes.js';

const PIN = '5820';
const DAY_MS = 86_400_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const MTN_PHONE = () => `+25677${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
const LOW = /^Your water credit is low/;

for (const engine of engines()) {
  describe(`water review 2 (${engine})`, () => {
    let fakes: ProviderFakes;
    let server: TestServer;
    let kiosk: { id: string; key: string };

    const kioskCall = (path: string, body: unknown) =>
      server.request('POST', path, { body, token: null, headers: { 'x-api-key': kiosk.key } });
    let tsSeq = 0;
    const verify = (phone: string, volumeMl: number) =>
      kioskCall('/dispense-verification', {
        kiosk_id: kiosk.id,
        user_id: phone,
        pin: PIN,
        volume_ml: volumeMl,
        timestamp: new Date(Date.UTC(2026, 11, 4, 9, 0, 0) + (tsSeq += 1) * 1000).toISOString(),
      });
    const upload = (phone: string, dispensedMl: number, at: number) =>
      kioskCall('/v1/water/transactions:batch', {
        transactions: [
          { kioskTxnId: uid('sd-'), userId: phone, dispensedMl, at: new Date(at).toISOString() },
        ],
      });

    const addCustomer = (creditMl: number) =>
      addWaterCustomer(server, { phone: MTN_PHONE(), pin: PIN, creditMl });

    const creditOf = async (customerId: string) =>
      (await server.kioskhub.services.customers.waterCredit(server.kioskhub.db, 'default', customerId))
        .balance;

    /** The SMS sent to `phone` once none is still queued for it. */
    async function smsSentTo(phone: string): Promise<string[]> {
      await eventually(
        async () => {
          const queued = await server.kioskhub.db
            .selectFrom('outbox')
            .select('id')
            .where('topic', '=', 'sms')
            .where('payload', 'like', `%${phone}%`)
            .execute();
          return queued.length === 0;
        },
        10_000,
        'SMS queue drained',
      );
      return fakes.smsTo(phone);
    }

    beforeAll(async () => {
      fakes = await startProviderFakes();
      server = await startServer({
        engine,
        env: providerEnv(fakes),
      });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
      const now = new Date().toISOString();
      await server.kioskhub.services.customers.repo.insertPlan({
        tenant_id: 'default',
        id: 'month',
        name: 'Monthly water',
        kind: 'subscription',
        price_minor: 15000,
        currency: 'UGX',
        days: 30,
        credit_ml: null,
        daily_limit_ml: null,
        active: 1,
        created_at: now,
        updated_at: now,
      });
      kiosk = await server.createMachine(uid('W'), { kind: 'water' });
    });
    afterAll(async () => {
      await server?.close();
      await fakes?.close();
    });

    it('two holds settled in full (at once) send one low-credit SMS for the one crossing', async () => {
      expect(LOW_CREDIT_ML).toBe(20_000);
      const c = await addCustomer(26_000);
      const a = (await verify(c.phone, 5_000)).body.authorization_id as string;
      const b = (await verify(c.phone, 5_000)).body.authorization_id as string;
      expect(await creditOf(c.id)).toBe(16_000);
      const answers = await Promise.all(
        [a, b].map((authorizationId) =>
          kioskCall('/v1/water/dispenses', { authorizationId, dispensedMl: 5_000, kioskTxnId: uid('txn-') }),
        ),
      );
      expect(answers.map((r) => r.status)).toEqual([200, 200]);
      expect(await creditOf(c.id)).toBe(16_000);
      // 26 L → 16 L crosses 20 L once: one SMS, saying what is left.
      expect((await smsSentTo(c.phone)).filter((m) => LOW.test(m))).toEqual([
        'Your water credit is low: 16.0 L left. Reply BUY to top up.',
      ]);
    });

    it('a hold and an offline item taking the credit under the threshold once send one low-credit SMS', async () => {
      const c = await addCustomer(26_000);
      const a = (await verify(c.phone, 5_000)).body.authorization_id as string;
      expect((await upload(c.phone, 3_000, Date.now() - 60_000)).body.results[0].status).toBe('applied');
      const settled = await kioskCall('/v1/water/dispenses', {
        authorizationId: a,
        dispensedMl: 5_000,
        kioskTxnId: uid('txn-'),
      });
      expect(settled.body).toEqual({ ok: true, creditsMl: 18_000 });
      expect((await smsSentTo(c.phone)).filter((m) => LOW.test(m))).toHaveLength(1);
      // Below the threshold already: more water sends nothing more.
      expect((await upload(c.phone, 1_000, Date.now() - 30_000)).body.results[0].status).toBe('applied');
      expect((await smsSentTo(c.phone)).filter((m) => LOW.test(m))).toHaveLength(1);
    });

    it('an offline item dated before a subscription was bought is charged from credit; one after it is not', async () => {
      const c = await addCustomer(10_000);
      const before = Date.now() - 60_000;
      // Bought by SMS and MTN MoMo: the status API settles the payment.
      await fetch(`${server.url}/webhooks/africastalking/sms?key=${AT_KEY}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          from: c.phone,
          to: '8899',
          text: 'BUY month',
          date: '2026-12-04 10:00:00',
          id: uid('ATXid_'),
        }).toString(),
      });
      const payment = () =>
        server.kioskhub.db
          .selectFrom('payments')
          .selectAll()
          .where('customer_id', '=', c.id)
          .orderBy('created_at', 'desc')
          .executeTakeFirstOrThrow();
      const p = await eventually(async () => (await payment().catch(() => undefined))?.id, 10_000, 'payment');
      await eventually(() => fakes.state.momo.get(p), 10_000, 'RequestToPay');
      fakes.state.momo.get(p)!.status = 'SUCCESSFUL';
      await fetch(`${server.url}/webhooks/momo/${p}?key=${MOMO_KEY}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'SUCCESSFUL' }),
      });
      const paid = await eventually(
        async () => ((await payment()).status === 'SUCCEEDED' ? await payment() : undefined),
        10_000,
        'payment SUCCEEDED',
      );
      const boughtAt = Date.parse(paid.completed_at!);
      expect(boughtAt).toBeGreaterThan(before);

      // Water dispensed offline a minute before the purchase: the subscription does not pay for it.
      expect((await upload(c.phone, 2_000, before)).body.results[0].status).toBe('applied');
      // Water after the purchase: the subscription pays.
      expect((await upload(c.phone, 1_500, boughtAt + 1_000)).body.results[0].status).toBe('applied');
      const rows = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .select(['dispensed_ml', 'funding', 'flagged'])
        .where('customer_id', '=', c.id)
        .orderBy('at')
        .execute();
      expect(rows.map((r) => [Number(r.dispensed_ml), r.funding, r.flagged])).toEqual([
        [2_000, 'credit', 0],
        [1_500, 'subscription', 0],
      ]);
      expect(await creditOf(c.id)).toBe(8_000);
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .select(['action', 'after'])
        .where('subject_id', '=', c.id)
        .where('action', '=', 'water.offline_dispense')
        .execute();
      expect(audit.map((r) => (JSON.parse(r.after!) as { funding: string }).funding).sort()).toEqual([
        'credit',
        'subscription',
      ]);
      const inv = await ledgerInvariants(server.kioskhub.db);
      expect(inv.drift).toEqual([]);
    });

    it('staff: a subscription extended keeps its start; one renewed after it lapsed still pays for water dated inside the old one', async () => {
      const c = await addCustomer(10_000);
      const lapsedAt = new Date(Date.now() - 3_600_000).toISOString();
      // A subscription that ran from three days ago until an hour ago.
      await server.kioskhub.services.customers.repo.update(c.id, {
        subscription_plan_id: 'month',
        subscription_started_at: new Date(Date.now() - 3 * DAY_MS).toISOString(),
        subscription_expires_at: lapsedAt,
      });
      const subscribe = (body: unknown) =>
        server.request('POST', `/v1/customers/${c.id}/subscription`, { body });
      const renewedAt = Date.now();
      expect((await subscribe({ planId: 'month' })).status).toBe(200);
      // Extended again (still running): the start stays where it was.
      expect((await subscribe({ planId: 'month' })).status).toBe(200);
      const row = await server.kioskhub.services.customers.get('default', c.id);
      expect(Math.abs(Date.parse(row.subscription_expires_at!) - (renewedAt + 60 * DAY_MS))).toBeLessThan(
        10_000,
      );
      expect(Math.abs(Date.parse(row.subscription_started_at!) - renewedAt)).toBeLessThan(10_000);
      expect(row.subscription_prior_expires_at).toBe(lapsedAt);

      const items: [number, number][] = [
        [1_100, renewedAt - 2 * 3_600_000], // inside the subscription that lapsed: paid by it
        [1_200, renewedAt - 30 * 60_000], // between the lapse and the renewal: credit
        [1_300, renewedAt + 2_000], // inside the renewed one: paid by it
      ];
      for (const [ml, at] of items) {
        expect((await upload(c.phone, ml, at)).body.results[0].status).toBe('applied');
      }
      const rows = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .select(['dispensed_ml', 'funding'])
        .where('customer_id', '=', c.id)
        .orderBy('at')
        .execute();
      expect(rows.map((r) => [Number(r.dispensed_ml), r.funding])).toEqual([
        [1_100, 'subscription'],
        [1_200, 'credit'],
        [1_300, 'subscription'],
      ]);
      expect(await creditOf(c.id)).toBe(8_800);
    });

    it('a subscription whose start is unknown (kept before starts were) pays for offline water before its expiry, as before', async () => {
      const c = await addCustomer(10_000);
      await server.kioskhub.services.customers.repo.update(c.id, {
        subscription_plan_id: 'month',
        subscription_expires_at: new Date(Date.now() + 10 * DAY_MS).toISOString(),
      });
      expect(
        (await server.request('POST', `/v1/customers/${c.id}/subscription`, { body: { planId: 'month' } }))
          .status,
      ).toBe(200);
      expect(
        (await server.kioskhub.services.customers.get('default', c.id)).subscription_started_at,
      ).toBeNull();
      expect((await upload(c.phone, 1_000, Date.now() - 3_600_000)).body.results[0].status).toBe('applied');
      const rows = await server.kioskhub.db
        .selectFrom('water_dispenses')
        .select('funding')
        .where('customer_id', '=', c.id)
        .execute();
      expect(rows).toEqual([{ funding: 'subscription' }]);
      expect(await creditOf(c.id)).toBe(10_000);
    });
  });
}
