// Water plans bought over USSD and SMS with MTN MoMo and Airtel Money, against local fakes of
// the providers' documented APIs: callbacks never credit alone (the status API settles), repeated
// callbacks count once, polling settles without any callback, a provider that is down is retried,
// expiry, one application under concurrent callback + poll, USSD sessions across a restart,
// every screen within 182 characters, SMS de-duplication, secrets, PINs and tenants kept apart.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tx } from '../src/platform/db/database.js';
import {
  ADMIN_TOKEN,
  connected,
  dropSchema,
  engines,
  eventually,
  liveSocket,
  newSchemaName,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';
import {
  AIRTEL_KEY,
  AT_KEY,
  AT,
  MOMO_KEY,
  providerEnv,
  startProviderFakes,
  type ProviderFakes,
} from './fixtures/mobile-money-fakes.js';

const DAY_MS = 86_400_000;

const MTN_PHONE = () => `+25677${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
const AIRTEL_PHONE = () => `+25670${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;

/** Every USSD screen any test saw: each must fit in 182 characters. */
const screens: string[] = [];

async function form(server: TestServer, path: string, fields: Record<string, string>) {
  const res = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

async function ussd(
  server: TestServer,
  hop: {
    sessionId: string;
    phone: string;
    text: string;
    networkCode?: string;
    tenant?: string;
    key?: string;
  },
) {
  const query = new URLSearchParams({
    key: hop.key ?? AT_KEY,
    ...(hop.tenant ? { tenant: hop.tenant } : {}),
  });
  const res = await form(server, `/webhooks/africastalking/ussd?${query}`, {
    sessionId: hop.sessionId,
    serviceCode: '*384*7#',
    phoneNumber: hop.phone,
    text: hop.text,
    networkCode: hop.networkCode ?? '99999',
  });
  if (res.status === 200) {
    expect(res.type).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/^(CON|END) /);
    screens.push(res.text);
  }
  return res;
}

async function smsIn(
  server: TestServer,
  msg: { from: string; text: string; id?: string; tenant?: string; key?: string },
) {
  const query = new URLSearchParams({
    key: msg.key ?? AT_KEY,
    ...(msg.tenant ? { tenant: msg.tenant } : {}),
  });
  return form(server, `/webhooks/africastalking/sms?${query}`, {
    from: msg.from,
    to: '8899',
    text: msg.text,
    date: '2026-12-03 10:00:00',
    id: msg.id ?? uid('ATXid_'),
  });
}

async function addPlans(server: TestServer, tenantId = 'default') {
  const repo = server.kioskhub.services.customers.repo;
  const now = new Date().toISOString();
  const base = { tenant_id: tenantId, active: 1, created_at: now, updated_at: now, currency: 'UGX' };
  await repo.insertPlan({
    ...base,
    id: 'month',
    name: 'Monthly water',
    kind: 'subscription',
    price_minor: 15000,
    days: 30,
    credit_ml: null,
    daily_limit_ml: 20000,
  });
  await repo.insertPlan({
    ...base,
    id: 'jerry100',
    name: '100 litres',
    kind: 'credit',
    price_minor: 5000,
    days: null,
    credit_ml: 100_000,
    daily_limit_ml: null,
  });
}

/** Registers `phone` over USSD (menu, PIN twice, confirm); returns the END screen. */
async function register(server: TestServer, phone: string, pin = '2468', tenant?: string) {
  const sessionId = uid('ATUid_');
  const t = tenant ? { tenant } : {};
  for (const text of ['', '1', `1*${pin}`, `1*${pin}*${pin}`]) {
    expect((await ussd(server, { sessionId, phone, text, ...t })).text).toMatch(/^CON /);
  }
  return (await ussd(server, { sessionId, phone, text: `1*${pin}*${pin}*1`, ...t })).text;
}

async function payment(server: TestServer, id: string) {
  return server.kioskhub.db.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Waits (10 s at most) until the payment has the status; returns its row. */
function paymentReaching(server: TestServer, id: string, status: string) {
  return eventually(
    async () => {
      const row = await payment(server, id);
      return row.status === status ? row : undefined;
    },
    10_000,
    `payment ${status}`,
  );
}

async function latestPayment(server: TestServer, customerId: string) {
  return server.kioskhub.db
    .selectFrom('payments')
    .selectAll()
    .where('customer_id', '=', customerId)
    .orderBy('created_at', 'desc')
    .executeTakeFirstOrThrow();
}

async function customer(server: TestServer, phone: string, tenantId = 'default') {
  return (await server.kioskhub.services.customers.findByPhone(tenantId, phone))!;
}

async function creditMl(server: TestServer, c: { tenant_id: string; id: string }) {
  return server.kioskhub.db.transaction().execute(async (tx) => {
    return (await server.kioskhub.services.customers.waterCredit(tx, c.tenant_id, c.id)).balance;
  });
}

async function buyOverUssd(server: TestServer, phone: string, planIndex: string, networkCode?: string) {
  const sessionId = uid('ATUid_');
  const n = networkCode ? { networkCode } : {};
  await ussd(server, { sessionId, phone, text: '', ...n });
  const list = await ussd(server, { sessionId, phone, text: '3', ...n });
  expect(list.text).toMatch(/^CON Choose a plan:/);
  const confirm = await ussd(server, { sessionId, phone, text: `3*${planIndex}`, ...n });
  const done = await ussd(server, { sessionId, phone, text: `3*${planIndex}*1`, ...n });
  return { list: list.text, confirm: confirm.text, done: done.text };
}

const momoCallback = (
  server: TestServer,
  paymentId: string,
  body: unknown,
  opts: { key?: string; method?: string } = {},
) =>
  fetch(`${server.url}/webhooks/momo/${paymentId}?key=${encodeURIComponent(opts.key ?? MOMO_KEY)}`, {
    method: opts.method ?? 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

const airtelCallback = (server: TestServer, body: unknown, key = AIRTEL_KEY) =>
  fetch(`${server.url}/webhooks/airtel?key=${encodeURIComponent(key)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function noDrift(server: TestServer) {
  const inv = await ledgerInvariants(server.kioskhub.db);
  expect(inv.drift).toEqual([]);
  expect(inv.units).toEqual([]);
}

/**
 * PostgreSQL: runs `lock` in a transaction of its own and keeps that transaction open until
 * `release` (committed, or rolled back). `waitForWaiters(n)` returns once `n` backends wait behind
 * it, directly or behind another waiter: the deliveries under test are then all past their reads.
 */
async function holdRow(server: TestServer, lock: (tx: Tx) => Promise<unknown>) {
  let release!: (rollback: boolean) => void;
  const released = new Promise<boolean>((r) => (release = r));
  let locked!: (pid: number) => void;
  const holderPid = new Promise<number>((r) => (locked = r));
  const holder = server.kioskhub.db
    .transaction()
    .execute(async (tx) => {
      await lock(tx);
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx);
      locked(rows[0]!.pid);
      if (await released) throw new RolledBack();
    })
    .catch((err: unknown) => {
      if (!(err instanceof RolledBack)) throw err;
    });
  const pid = await Promise.race([
    holderPid,
    holder.then(() => Promise.reject(new Error('the holding transaction ended early'))),
  ]);
  return {
    async waitForWaiters(n: number) {
      await eventually(
        async () => {
          const { rows } = await sql<{ n: number }>`
            with recursive waiter(pid) as (
              select a.pid from pg_stat_activity a where ${pid}::int = any(pg_blocking_pids(a.pid))
              union
              select a.pid from pg_stat_activity a join waiter w on w.pid = any(pg_blocking_pids(a.pid))
            )
            select count(*)::int as n from waiter`.execute(server.kioskhub.db);
          return rows[0]!.n >= n;
        },
        10_000,
        `${n} transactions waiting for the held row`,
      ).catch(async (err: unknown) => {
        release(true); // never leave the row held behind a failed test
        await holder;
        throw err;
      });
    },
    async release(opts: { rollback?: boolean } = {}) {
      release(opts.rollback ?? false);
      await holder;
    },
  };
}
class RolledBack extends Error {}

for (const engine of engines()) {
  describe(`water plans by USSD/SMS and mobile money (${engine})`, () => {
    let fakes: ProviderFakes;
    let server: TestServer;
    const logs: string[] = [];

    beforeAll(async () => {
      fakes = await startProviderFakes();
      server = await startServer({
        engine,
        env: providerEnv(fakes, { LOG_LEVEL: 'info' }),
        logStream: { write: (line) => logs.push(line) },
      });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
      await addPlans(server);
    });
    afterAll(async () => {
      if (process.env['DEBUG_LOGS']) console.log(logs.filter((l) => /"level":(40|50)/.test(l)).join(''));
      await server?.close();
      await fakes?.close();
    });

    it('registers over USSD: PIN twice, confirm, account id; the PIN is never shown or logged', async () => {
      const phone = MTN_PHONE();
      const sessionId = uid('ATUid_');
      const menu = await ussd(server, { sessionId, phone, text: '' });
      expect(menu.text).toBe('CON Welcome to the water kiosk\n1. Register\n2. Status\n3. Purchase');
      expect((await ussd(server, { sessionId, phone, text: '1' })).text).toContain('Create a 4-digit PIN');
      expect((await ussd(server, { sessionId, phone, text: '1*12' })).text).toContain('exactly 4 digits');
      expect((await ussd(server, { sessionId, phone, text: '1*12*9157' })).text).toBe(
        'CON Enter the PIN again:',
      );
      expect((await ussd(server, { sessionId, phone, text: '1*12*9157*9158' })).text).toContain(
        'did not match',
      );
      await ussd(server, { sessionId, phone, text: '1*12*9157*9158*9157' });
      const confirm = await ussd(server, { sessionId, phone, text: '1*12*9157*9158*9157*9157' });
      expect(confirm.text).toContain('1. Confirm');
      expect((await ussd(server, { sessionId, phone, text: '1*12*9157*9158*9157*9157*7' })).text).toContain(
        'Invalid',
      );
      const done = await ussd(server, { sessionId, phone, text: '1*12*9157*9158*9157*9157*7*1' });
      const c = await customer(server, phone);
      expect(done.text).toBe(
        `END Registration complete!\nAccount ID: ${c.account_id}\nUse your phone number and PIN at the kiosk.`,
      );
      expect(c.pin_hash).not.toBeNull();
      expect((await server.kioskhub.services.customers.checkPin(c, '9157')).ok).toBe(true);
      // The same hop again (a gateway retry) answers the same and does nothing more.
      expect((await ussd(server, { sessionId, phone, text: '1*12*9157*9158*9157*9157*7*1' })).text).toBe(
        done.text,
      );
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.includes(c.account_id)),
        10_000,
        'registration SMS',
      );
      expect(fakes.state.sms.every((s) => s.username === AT.username && s.apiKey === AT.apiKey)).toBe(true);
      for (const s of screens) expect(s).not.toMatch(/\b9157\b/);
      for (const m of fakes.smsTo(phone)) expect(m).not.toMatch(/\b9157\b/);
      const logText = logs.join('');
      expect(logText).not.toContain('9157*');
      expect(logText).not.toContain('*9157');
      expect(logText).not.toContain(AT_KEY);
      const sessions = await server.kioskhub.db
        .selectFrom('ussd_sessions')
        .selectAll()
        .where('session_id', '=', sessionId)
        .execute();
      expect(JSON.stringify(sessions)).not.toContain('"9157"');
      // Registered already: option 1 says so.
      const again = await ussd(server, { sessionId: uid('s'), phone, text: '1' });
      expect(again.text).toContain(`already registered.\nAccount ID: ${c.account_id}`);
    });

    it('unknown input gets a helpful screen, never an error', async () => {
      const phone = MTN_PHONE();
      const sessionId = uid('ATUid_');
      await ussd(server, { sessionId, phone, text: '' });
      const bad = await ussd(server, { sessionId, phone, text: 'hello' });
      expect(bad.status).toBe(200);
      expect(bad.text).toBe('CON Invalid choice.\n1. Register\n2. Status\n3. Purchase');
      expect((await ussd(server, { sessionId, phone, text: 'hello*2' })).text).toContain(
        'No account for this number',
      );
      const weird = await ussd(server, { sessionId: uid('s'), phone: 'not-a-phone', text: '' });
      expect(weird.status).toBe(200);
      expect(weird.text).toMatch(/^END /);
      expect((await ussd(server, { sessionId: uid('s'), phone, text: '3' })).text).toBe(
        'END Please register first (option 1).',
      );
      // A session that starts with choices in the dialled code (*384*7*2#) is replayed from the menu.
      expect((await ussd(server, { sessionId: uid('s'), phone, text: '9*9' })).text).toMatch(
        /^CON Invalid choice/,
      );
    });

    it('buys a subscription over USSD with MoMo: a forged callback credits nothing, the status API settles once', async () => {
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      const { list, confirm, done } = await buyOverUssd(server, phone, '2');
      expect(list).toBe('CON Choose a plan:\n1. 100 litres UGX 5000\n2. Monthly water UGX 15000\n0. Back');
      expect(confirm).toBe(
        'CON Monthly water\n30 days, 20.0 L/day\nPrice: UGX 15000\nPay with MTN MoMo\n1. Confirm\n2. Cancel',
      );
      expect(done).toBe(
        'END Approve the payment of UGX 15000 on your phone (MTN MoMo prompt). We will SMS you when it is received.',
      );
      const p = await latestPayment(server, c.id);
      expect(p).toMatchObject({
        purpose: 'plan',
        method: 'momo',
        provider: 'momo',
        status: 'PENDING',
        plan_id: 'month',
      });
      expect(Number(p.amount_minor)).toBe(15000);
      const req = await eventually(() => fakes.state.momo.get(p.id), 10_000, 'RequestToPay');
      expect(req.body).toMatchObject({
        amount: '15000',
        currency: 'UGX',
        externalId: p.id,
        payer: { partyIdType: 'MSISDN', partyId: phone.slice(1) },
      });
      expect(req.headers['callback']).toBe(`https://kiosk.example.org/webhooks/momo/${p.id}?key=${MOMO_KEY}`);

      // Forged: the callback says SUCCESSFUL while MoMo's status API says PENDING.
      const forged = await momoCallback(server, p.id, {
        externalId: p.id,
        amount: '15000',
        currency: 'UGX',
        status: 'SUCCESSFUL',
      });
      expect(forged).toEqual({ status: 200, body: { ok: true, outcome: 'scheduled' } });
      await eventually(() => (fakes.state.momoStatusCalls.get(p.id) ?? 0) >= 1, 10_000, 'status check');
      await new Promise((r) => setTimeout(r, 300));
      expect((await payment(server, p.id)).status).toBe('PENDING');
      expect((await customer(server, phone)).subscription_expires_at).toBeNull();
      // The same callback again counts once (but still nudges a check while pending).
      expect(
        (await momoCallback(server, p.id, { status: 'SUCCESSFUL' }, { method: 'POST' })).body.outcome,
      ).toBe('duplicate');
      const deliveries = await server.kioskhub.db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('provider', '=', 'momo')
        .where('event_id', 'like', `${p.id}:%`)
        .execute();
      expect(deliveries).toHaveLength(1);

      // Now the payer approves: the real callback settles through the status API.
      fakes.state.momo.get(p.id)!.status = 'SUCCESSFUL';
      await momoCallback(server, p.id, { status: 'SUCCESSFUL' });
      const settled = await paymentReaching(server, p.id, 'SUCCEEDED');
      expect(settled.provider_payment_id).toBe(String(req.financialTransactionId));
      const after = await customer(server, phone);
      const expires = Date.parse(after.subscription_expires_at!);
      expect(Math.abs(expires - (Date.parse(settled.completed_at!) + 30 * DAY_MS))).toBeLessThan(5_000);
      expect(after.subscription_plan_id).toBe('month');
      expect(Number(after.daily_limit_ml)).toBe(20000);
      // A late callback changes nothing.
      expect((await momoCallback(server, p.id, { status: 'FAILED' })).body.outcome).toBe('not_pending');
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.startsWith('Payment received: UGX 15000 for Monthly water.')),
        10_000,
        'payment SMS',
      );
      const revenue = await server.kioskhub.db
        .selectFrom('ledger_entries')
        .selectAll()
        .where('cause_id', '=', p.id)
        .execute();
      expect(revenue.map((e) => Number(e.amount)).sort((a, b) => a - b)).toEqual([-15000, 15000]);
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .selectAll()
        .where('subject_id', '=', c.id)
        .where('action', '=', 'customer.plan_applied')
        .execute();
      expect(audit).toHaveLength(1);

      // Buying again extends from the current expiry, not from now.
      await buyOverUssd(server, phone, '2');
      const p2 = await latestPayment(server, c.id);
      await eventually(() => fakes.state.momo.get(p2.id), 10_000, 'second RequestToPay');
      fakes.state.momo.get(p2.id)!.status = 'SUCCESSFUL';
      await momoCallback(server, p2.id, { status: 'SUCCESSFUL' });
      await eventually(
        async () => (await payment(server, p2.id)).status === 'SUCCEEDED',
        10_000,
        'second payment',
      );
      expect(Date.parse((await customer(server, phone)).subscription_expires_at!)).toBe(
        expires + 30 * DAY_MS,
      );

      // Status shows the plan, the credit in litres and today's remaining water.
      const status = await ussd(server, { sessionId: uid('s'), phone, text: '2' });
      expect(status.text).toContain(`Account: ${c.account_id}\nRegistered: Yes\nPlan until: `);
      expect(status.text).toContain('Credit: 0.0 L\nToday left: 20.0 L of 20.0 L');
      await noDrift(server);
    });

    it('buys credit by SMS with Airtel: BUY lists plans, BUY <plan> pushes, the enquiry settles', async () => {
      const phone = AIRTEL_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      const live = liveSocket(server.url, { token: ADMIN_TOKEN });
      const updates: any[] = [];
      live.on('customer_updated', (data: unknown) => updates.push(data));
      await connected(live);
      expect(await live.emitWithAck('subscribe', { room: 'tenant:default' })).toMatchObject({ ok: true });
      expect((await smsIn(server, { from: phone, text: 'buy' })).status).toBe(200);
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.startsWith('Plans: jerry100: 100 litres UGX 5000')),
        10_000,
        'plan list',
      );
      await smsIn(server, { from: phone.replace('+256', '0'), text: 'BUY Jerry100' });
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.includes('(Airtel Money prompt)')),
        10_000,
        'approve SMS',
      );
      const p = await latestPayment(server, c.id);
      expect(p).toMatchObject({ method: 'airtel', provider: 'airtel', plan_id: 'jerry100' });
      const req = await eventually(() => fakes.state.airtel.get(p.id), 10_000, 'Airtel collection');
      expect(req.body).toEqual({
        reference: 'Water plan jerry100',
        subscriber: { country: 'UG', currency: 'UGX', msisdn: phone.slice(4) },
        transaction: { amount: 5000, country: 'UG', currency: 'UGX', id: p.id },
      });
      // A forged TS callback while Airtel says in progress credits nothing.
      expect(
        (
          await airtelCallback(server, {
            transaction: { id: p.id, message: 'Paid', status_code: 'TS', airtel_money_id: 'MPX' },
          })
        ).body.outcome,
      ).toBe('scheduled');
      await eventually(() => (fakes.state.airtelStatusCalls.get(p.id) ?? 0) >= 1, 10_000, 'enquiry');
      await new Promise((r) => setTimeout(r, 300));
      expect((await payment(server, p.id)).status).toBe('PENDING');
      expect(await creditMl(server, c)).toBe(0);
      fakes.state.airtel.get(p.id)!.status = 'TS';
      await airtelCallback(server, {
        transaction: { id: p.id, message: 'Paid', status_code: 'TS', airtel_money_id: 'MPX' },
      });
      await eventually(
        async () => (await payment(server, p.id)).status === 'SUCCEEDED',
        10_000,
        'Airtel settled',
      );
      expect(await creditMl(server, c)).toBe(100_000);
      await eventually(
        () => updates.some((u) => u.customerId === c.id && u.paymentId === p.id),
        10_000,
        'live',
      );
      live.close();
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.includes('Credit now 100.0 L.')),
        10_000,
        'credit SMS',
      );
      await smsIn(server, { from: phone, text: 'Balance' });
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.includes('Credit: 100.0 L')),
        10_000,
        'balance SMS',
      );
      await noDrift(server);
    });

    it('a Safaricom number is told only MTN and Airtel are taken; nothing is created', async () => {
      const phone = '+254712345678';
      await register(server, phone);
      const c = await customer(server, phone);
      const sessionId = uid('s');
      await ussd(server, { sessionId, phone, text: '', networkCode: '63902' });
      await ussd(server, { sessionId, phone, text: '3', networkCode: '63902' });
      const refused = await ussd(server, { sessionId, phone, text: '3*1', networkCode: '63902' });
      expect(refused.text).toBe('END Payment works with MTN MoMo or Airtel Money numbers only.');
      const rows = await server.kioskhub.db
        .selectFrom('payments')
        .select('id')
        .where('customer_id', '=', c.id)
        .execute();
      expect(rows).toEqual([]);
    });

    it('answers SMS commands once per message id, in any case', async () => {
      const phone = MTN_PHONE();
      const id = uid('ATXid_');
      expect((await smsIn(server, { from: phone, text: 'menu', id })).text).toContain('"outcome":"replied"');
      expect((await smsIn(server, { from: phone, text: 'menu', id })).text).toContain(
        '"outcome":"duplicate"',
      );
      await eventually(() => fakes.smsTo(phone).length === 1, 10_000, 'one reply');
      expect(fakes.smsTo(phone)[0]).toContain('Reply REGISTER');
      await smsIn(server, { from: phone, text: 'Register' });
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.includes('dial *384*7# and choose 1')),
        10_000,
        'register reply',
      );
      // Registered by SMS but no PIN yet: pointed at the USSD menu, not at REGISTER again (a loop).
      await smsIn(server, { from: phone, text: 'status' });
      await eventually(
        () =>
          fakes
            .smsTo(phone)
            .some((m) =>
              /^Your account \S+ has no PIN yet\. To set it, dial \*384\*7# and choose 1\. Register\.$/.test(
                m,
              ),
            ),
        10_000,
        'status reply',
      );
      await smsIn(server, { from: phone, text: 'gibberish' });
      await eventually(
        () => fakes.smsTo(phone).some((m) => m.startsWith('Sorry, we did not understand')),
        10_000,
        'help reply',
      );
      expect(fakes.smsTo(phone)).toHaveLength(4);
    });

    it('refuses wrong or missing keys with 403 (and bad bodies with 400), changing nothing', async () => {
      const phone = MTN_PHONE();
      const before = await server.kioskhub.db.selectFrom('ussd_sessions').select('session_id').execute();
      const wrong = await ussd(server, { sessionId: uid('s'), phone, text: '', key: `${AT_KEY}x` });
      expect(wrong.status).toBe(403);
      expect(JSON.parse(wrong.text).error.code).toBe('FORBIDDEN');
      const none = await form(server, '/webhooks/africastalking/ussd', {
        sessionId: 's',
        serviceCode: '*1#',
        phoneNumber: phone,
        text: '',
      });
      expect(none.status).toBe(403);
      expect((await smsIn(server, { from: phone, text: 'MENU', key: 'nope' })).status).toBe(403);
      expect(
        (await momoCallback(server, 'whatever', { status: 'SUCCESSFUL' }, { key: MOMO_KEY.slice(0, -1) }))
          .status,
      ).toBe(403);
      expect(
        (await airtelCallback(server, { transaction: { id: 'x', status_code: 'TS' } }, 'wrong-key')).status,
      ).toBe(403);
      expect(
        (await form(server, `/webhooks/africastalking/ussd?key=${AT_KEY}`, { serviceCode: '*1#', text: '' }))
          .status,
      ).toBe(400);
      expect(
        (await form(server, `/webhooks/africastalking/sms?key=${AT_KEY}`, { from: phone, text: 'MENU' }))
          .status,
      ).toBe(400);
      expect((await airtelCallback(server, { nothing: true })).status).toBe(400);
      expect(
        (await ussd(server, { sessionId: uid('s'), phone, text: '', tenant: 'no-such-tenant' })).status,
      ).toBe(404);
      expect((await momoCallback(server, 'unknown-payment', { status: 'SUCCESSFUL' })).body.outcome).toBe(
        'unknown_payment',
      );
      const after = await server.kioskhub.db.selectFrom('ussd_sessions').select('session_id').execute();
      expect(after).toHaveLength(before.length);
      expect(await customer(server, phone)).toBeUndefined();
    });

    it("keeps another tenant's customers and plans invisible", async () => {
      const tenant = uid('t');
      expect(
        (await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Other' } })).status,
      ).toBe(201);
      await server.kioskhub.services.tenants.setDefaultCountryCode(tenant, '256');
      const phone = MTN_PHONE();
      await register(server, phone); // in default
      const status = await ussd(server, { sessionId: uid('s'), phone, text: '2', tenant });
      expect(status.text).toBe('END No account for this number.\nDial again and choose 1 to register.');
      await register(server, phone, '1357', tenant);
      const plans = await ussd(server, { sessionId: uid('s'), phone, text: '3', tenant });
      expect(plans.text).toBe('END No plans are on sale right now.');
      const mine = await customer(server, phone, tenant);
      const theirs = await customer(server, phone);
      expect(mine.id).not.toBe(theirs.id);
      expect((await server.kioskhub.services.customers.checkPin(theirs, '1357')).ok).toBe(false);
    });

    it('an amount that is not the plan price applies nothing: FAILED AMOUNT_MISMATCH', async () => {
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      await buyOverUssd(server, phone, '1');
      const p = await latestPayment(server, c.id);
      const req = await eventually(() => fakes.state.momo.get(p.id), 10_000, 'RequestToPay');
      req.status = 'SUCCESSFUL';
      req.reportedAmount = '500';
      await momoCallback(server, p.id, { status: 'SUCCESSFUL' });
      const failed = await paymentReaching(server, p.id, 'FAILED');
      expect(failed.failure_code).toBe('AMOUNT_MISMATCH');
      expect(await creditMl(server, c)).toBe(0);
      const entries = await server.kioskhub.db
        .selectFrom('ledger_entries')
        .select('id')
        .where('cause_id', '=', p.id)
        .execute();
      expect(entries).toEqual([]);
      const alerts = await server.kioskhub.db
        .selectFrom('alerts')
        .selectAll()
        .where('subject_id', '=', p.id)
        .execute();
      expect(alerts.map((a) => a.kind)).toEqual(['PAYMENT_AMOUNT_MISMATCH']);
    });

    it('pages long plan lists and long names within one screen each', async () => {
      const tenant = uid('t');
      expect(
        (await server.request('POST', '/v1/tenants', { body: { id: tenant, name: 'Long' } })).status,
      ).toBe(201);
      await server.kioskhub.services.tenants.setDefaultCountryCode(tenant, '256');
      const now = new Date().toISOString();
      for (let i = 0; i < 7; i += 1) {
        await server.kioskhub.services.customers.repo.insertPlan({
          tenant_id: tenant,
          id: `p${i}`,
          name: `A very long plan name number ${i} for the whole family and friends`,
          kind: 'subscription',
          price_minor: 999_999_990 + i,
          currency: 'UGX',
          days: 365,
          credit_ml: 123_456_700,
          daily_limit_ml: 1_000_000,
          active: 1,
          created_at: now,
          updated_at: now,
        });
      }
      const phone = AIRTEL_PHONE();
      await register(server, phone, '2580', tenant);
      const sessionId = uid('s');
      const hop = (text: string) => ussd(server, { sessionId, phone, text, tenant });
      await hop('');
      const page1 = await hop('3');
      expect(page1.text).toContain('9. More');
      const page2 = await hop('3*9');
      expect(page2.text).toContain('1. A very long plan na. UGX 999999993');
      const page3 = await hop('3*9*9');
      expect(page3.text).not.toContain('9. More');
      expect((await hop('3*9*9*5')).text).toMatch(/^CON Invalid choice\. Choose a plan:/);
      const confirm = await hop('3*9*9*5*1');
      expect(confirm.text).toContain(
        '365 days, 1000.0 L/day, 123456.7 L of water\nPrice: UGX 999999996\nPay with Airtel Money',
      );
      for (const s of [page1, page2, page3, confirm]) expect(s.text.length).toBeLessThanOrEqual(182);
      expect((await hop('3*9*9*5*1*2')).text).toBe('END Purchase cancelled.');
    });

    it('every USSD screen seen fits in 182 characters', () => {
      expect(screens.length).toBeGreaterThan(30);
      for (const s of screens) expect(s.length, s).toBeLessThanOrEqual(182);
    });
  });

  describe(`mobile money without callbacks, with outages and expiry (${engine})`, () => {
    let fakes: ProviderFakes;
    let server: TestServer;

    beforeAll(async () => {
      fakes = await startProviderFakes();
      server = await startServer({
        engine,
        env: providerEnv(fakes, {
          PAYMENT_STATUS_POLL_MS: '150',
          PAYMENT_INTENT_TTL_MS: '7000',
          // Provider and SMS outages are retried after 100 ms, 200 ms, … rather than 1 s, 2 s, ….
          JOB_RETRY_BASE_MS: '100',
        }),
      });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
      await addPlans(server);
    });
    afterAll(async () => {
      await server?.close();
      await fakes?.close();
    });

    it('settles by polling alone, after MoMo was down for the first requests', async () => {
      fakes.state.momoRequestDown = 2;
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      const { done } = await buyOverUssd(server, phone, '1');
      expect(done).toMatch(/^END Approve the payment of UGX 5000/);
      const p = await latestPayment(server, c.id);
      const req = await eventually(() => fakes.state.momo.get(p.id), 15_000, 'RequestToPay after retries');
      expect(fakes.state.momoRequestDown).toBe(0);
      // The status API and the SMS API are down for a while too: their jobs retry.
      fakes.state.momoStatusDown = 2;
      fakes.state.smsDown = 1;
      req.status = 'SUCCESSFUL';
      await eventually(
        async () => (await payment(server, p.id)).status === 'SUCCEEDED',
        15_000,
        'settled by poll',
      );
      expect(fakes.state.momoStatusDown).toBe(0);
      await eventually(() => fakes.smsTo(phone).some((m) => m.startsWith('Payment received')), 15_000, 'SMS');
      expect(fakes.state.smsDown).toBe(0);
      expect(await creditMl(server, c)).toBe(100_000);
      expect(fakes.state.momoTokens).toBe(1); // the token is cached
      await noDrift(server);
    });

    it('a request MoMo refuses ends FAILED with its code, and the customer is told', async () => {
      fakes.state.momoRefuseNext = true;
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      await buyOverUssd(server, phone, '2');
      const p = await latestPayment(server, c.id);
      const failed = await paymentReaching(server, p.id, 'FAILED');
      expect(failed.failure_code).toBe('PAYER_NOT_FOUND');
      expect((await customer(server, phone)).subscription_expires_at).toBeNull();
      await eventually(
        () => fakes.smsTo(phone).includes('Your water plan payment did not go through. Please try again.'),
        10_000,
        'failure SMS',
      );
    });

    it('expires a request nobody approves; nothing is applied', async () => {
      const phone = AIRTEL_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      await buyOverUssd(server, phone, '1');
      const p = await latestPayment(server, c.id);
      await eventually(() => fakes.state.airtel.get(p.id), 10_000, 'collection');
      await eventually(async () => (await payment(server, p.id)).status === 'EXPIRED', 20_000, 'expired');
      expect(await creditMl(server, c)).toBe(0);
      await eventually(
        () =>
          fakes.smsTo(phone).some((m) => m.startsWith('Your water plan payment was not approved in time.')),
        10_000,
        'expiry SMS',
      );
      fakes.state.airtel.get(p.id)!.status = 'TS';
      await airtelCallback(server, { transaction: { id: p.id, status_code: 'TS' } });
      await new Promise((r) => setTimeout(r, 400));
      expect((await payment(server, p.id)).status).toBe('EXPIRED');
    });

    it('applies a plan once under concurrent callbacks and polling', async () => {
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      await buyOverUssd(server, phone, '1');
      const p = await latestPayment(server, c.id);
      const req = await eventually(() => fakes.state.momo.get(p.id), 10_000, 'RequestToPay');
      req.status = 'SUCCESSFUL';
      await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          momoCallback(server, p.id, { status: i % 2 ? 'SUCCESSFUL' : 'successful' }),
        ),
      );
      await eventually(async () => (await payment(server, p.id)).status === 'SUCCEEDED', 10_000, 'settled');
      await new Promise((r) => setTimeout(r, 500));
      expect(await creditMl(server, c)).toBe(100_000);
      const entries = await server.kioskhub.db
        .selectFrom('ledger_entries')
        .select('amount')
        .where('cause_id', '=', p.id)
        .execute();
      expect(entries).toHaveLength(4); // revenue pair + water pair
      await eventually(
        () => fakes.smsTo(phone).filter((m) => m.startsWith('Payment received')).length === 1,
        10_000,
        'one SMS',
      );
      await noDrift(server);
    });
  });

  // Two job runners (a multi-node deployment) or a provider's retries deliver the same kind of
  // event at the same moment: only PostgreSQL runs them truly at once. A transaction of the test
  // holds the contended row until both deliveries wait behind it, so the race is not left to luck.
  describe.runIf(engine === 'postgres')(`concurrent deliveries on PostgreSQL (${engine})`, () => {
    let fakes: ProviderFakes;
    let server: TestServer;

    beforeAll(async () => {
      fakes = await startProviderFakes();
      server = await startServer({ engine, env: providerEnv(fakes) });
      await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
      await addPlans(server);
    });
    afterAll(async () => {
      await server?.close();
      await fakes?.close();
    });

    it('two subscriptions of one customer settling at once both count: 60 days, not 30', async () => {
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      await buyOverUssd(server, phone, '2');
      await buyOverUssd(server, phone, '2');
      const pending = await server.kioskhub.db
        .selectFrom('payments')
        .selectAll()
        .where('customer_id', '=', c.id)
        .execute();
      expect(pending.map((p) => [p.plan_id, p.status])).toEqual([
        ['month', 'PENDING'],
        ['month', 'PENDING'],
      ]);
      for (const p of pending) {
        (await eventually(() => fakes.state.momo.get(p.id), 10_000, 'RequestToPay')).status = 'SUCCESSFUL';
      }
      // Both status checks (one per job runner) read the customer while the row is held.
      const row = await holdRow(server, (tx) =>
        sql`select id from customers where id = ${c.id} for no key update`.execute(tx),
      );
      const checks = pending.map((p) =>
        server.kioskhub.services.intents.check({ paymentId: p.id, poll: false }),
      );
      await row.waitForWaiters(2);
      await row.release();
      await Promise.all(checks);
      for (const p of pending) expect((await payment(server, p.id)).status).toBe('SUCCEEDED');
      const expires = Date.parse((await customer(server, phone)).subscription_expires_at!);
      expect(Math.abs(expires - (Date.now() + 60 * DAY_MS))).toBeLessThan(60_000);
      // The second application started from the first one's expiry.
      const audit = await server.kioskhub.db
        .selectFrom('audit_log')
        .selectAll()
        .where('subject_id', '=', c.id)
        .where('action', '=', 'customer.plan_applied')
        .execute();
      expect(audit).toHaveLength(2);
      const [first, second] = audit
        .map((a) => ({
          before: JSON.parse(a.before!) as { expiresAt: string | null },
          after: JSON.parse(a.after!) as { expiresAt: string },
        }))
        .sort((a, b) => (a.after.expiresAt < b.after.expiresAt ? -1 : 1));
      expect(second!.before.expiresAt).toBe(first!.after.expiresAt);
      expect(second!.after.expiresAt).toBe(new Date(expires).toISOString());
      await noDrift(server);
    });

    it('the same USSD confirm delivered twice at once starts one purchase, and both get its answer', async () => {
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      const sessionId = uid('ATUid_');
      for (const text of ['', '3', '3*2'])
        expect((await ussd(server, { sessionId, phone, text })).status).toBe(200);
      const row = await holdRow(server, (tx) =>
        sql`select session_id from ussd_sessions where tenant_id = 'default' and session_id = ${sessionId} for no key update`.execute(
          tx,
        ),
      );
      const both = [1, 2].map(() => ussd(server, { sessionId, phone, text: '3*2*1' }));
      await row.waitForWaiters(2);
      await row.release();
      const answers = (await Promise.all(both)).map((r) => r.text);
      const approve =
        'END Approve the payment of UGX 15000 on your phone (MTN MoMo prompt). We will SMS you when it is received.';
      expect(answers).toEqual([approve, approve]);
      const payments = await server.kioskhub.db
        .selectFrom('payments')
        .select(['id', 'plan_id'])
        .where('customer_id', '=', c.id)
        .execute();
      expect(payments.map((p) => p.plan_id)).toEqual(['month']);
      // A later repeat gets the same answer too, and starts nothing either.
      expect((await ussd(server, { sessionId, phone, text: '3*2*1' })).text).toBe(approve);
      expect(
        await server.kioskhub.db
          .selectFrom('payments')
          .select('id')
          .where('customer_id', '=', c.id)
          .execute(),
      ).toHaveLength(1);
    });

    it('a first hop that confirms a purchase, delivered twice at once, starts one purchase', async () => {
      // A dial with the choices in the code (*384*7*3*2*1#): the first hop the server sees confirms.
      const phone = MTN_PHONE();
      await register(server, phone);
      const c = await customer(server, phone);
      const sessionId = uid('ATUid_');
      // Another delivery is creating the session's row: both copies of the hop wait for it to end.
      const row = await holdRow(server, (tx) =>
        sql`insert into ussd_sessions (tenant_id, session_id, phone, state, data, created_at, updated_at)
              values ('default', ${sessionId}, ${phone}, 'menu', '{}', ${new Date().toISOString()}, ${new Date().toISOString()})`.execute(
          tx,
        ),
      );
      const both = [1, 2].map(() => ussd(server, { sessionId, phone, text: '3*2*1' }));
      await row.waitForWaiters(2);
      await row.release({ rollback: true });
      const answers = (await Promise.all(both)).map((r) => r.text);
      expect(answers[0]).toMatch(/^END Approve the payment of UGX 15000/);
      expect(answers[1]).toBe(answers[0]);
      const payments = await server.kioskhub.db
        .selectFrom('payments')
        .select('plan_id')
        .where('customer_id', '=', c.id)
        .execute();
      expect(payments.map((p) => p.plan_id)).toEqual(['month']);
    });
  });

  describe(`USSD session across a restart (${engine})`, () => {
    it('continues the session after the server restarts between hops', async () => {
      const fakes = await startProviderFakes();
      const dir = tempDir();
      const schema = engine === 'postgres' ? newSchemaName() : undefined;
      const opts = { engine, env: providerEnv(fakes), ...(schema ? { schema } : { dataDir: dir.path }) };
      const phone = MTN_PHONE();
      const sessionId = uid('ATUid_');
      let server = await startServer(opts);
      try {
        await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
        expect((await ussd(server, { sessionId, phone, text: '' })).text).toMatch(/^CON Welcome/);
        expect((await ussd(server, { sessionId, phone, text: '1' })).text).toMatch(/PIN/);
        expect((await ussd(server, { sessionId, phone, text: '1*4321' })).text).toBe(
          'CON Enter the PIN again:',
        );
        await server.close();
        server = await startServer(opts);
        expect((await ussd(server, { sessionId, phone, text: '1*4321*4321' })).text).toContain('1. Confirm');
        await server.close();
        server = await startServer(opts);
        const done = await ussd(server, { sessionId, phone, text: '1*4321*4321*1' });
        expect(done.text).toMatch(/^END Registration complete!\nAccount ID: TSF[A-Z0-9]{6}\n/);
        const c = await customer(server, phone);
        expect((await server.kioskhub.services.customers.checkPin(c, '4321')).ok).toBe(true);
      } finally {
        await server.close();
        if (schema) await dropSchema(schema);
        dir.remove();
        await fakes.close();
      }
    });
  });
}
