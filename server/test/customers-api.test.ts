// The staff API of water customers and plans (CONTRACTS.md §11), on both engines: every endpoint,
// roles (admin and customer_service only), bad input on each (a clear error, nothing changed),
// search by every phone form, pagination, audit rows, the PIN never in an answer, an audit row or
// a log line (except the one pin-reset answer without SMS), and another tenant's customers unseen.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connected, engines, liveSocket, startServer, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';
import { AT, startProviderFakes, type ProviderFakes } from './fixtures/mobile-money-fakes.js';

type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body)).toEqual({
    status,
    code,
  });
  expect(typeof res.body.error.message).toBe('string');
  expect(res.body.error.message.length).toBeGreaterThan(0);
}

const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
/** A Kenyan mobile number in its local form (07xx xxx xxx). */
const localPhone = () => `07${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;
const e164 = (local: string) => `+254${local.slice(1)}`;

const CUSTOMER_KEYS = [
  'accountId',
  'active',
  'createdAt',
  'creditsMl',
  'dailyLimitMl',
  'fullName',
  'id',
  'phone',
  'pinLocked',
  'registered',
  'siteIds',
  'subscription',
  'usedTodayMl',
];

describe.each(engines())('customers staff API (%s)', (engine) => {
  let server: TestServer;
  let cs: string; // customer_service of tenant default
  let tech: string;
  let plainStaff: string;
  let otherAdmin: string;
  const logLines: string[] = [];
  /** Every PIN any test chose or was given: none may appear where it should not. */
  const pins: string[] = [];

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { LOG_LEVEL: 'info' },
      logStream: { write: (line: string) => void logLines.push(line) },
    });
    await server.kioskhub.services.tenants.setDefaultCountryCode('default', '254');
    cs = await staffToken(server, `${uid('cs')}@example.com`, 'customer_service');
    tech = await staffToken(server, `${uid('tech')}@example.com`, 'technician');
    plainStaff = await staffToken(server, `${uid('staff')}@example.com`, 'staff');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'rival', name: 'Rival' } })).status,
    ).toBe(201);
    otherAdmin = await staffToken(server, `${uid('adm')}@example.com`, 'admin', 'rival');
    for (const id of ['kibera', 'mathare']) {
      const s = await server.request('POST', '/v1/sites', { body: { id, name: id, currency: 'KES' } });
      expect(s.status, JSON.stringify(s.body)).toBe(201);
    }
  });

  afterAll(async () => {
    await server?.close();
  });

  async function create(body: Record<string, unknown>, token = cs): Promise<any> {
    const res = await server.request('POST', '/v1/customers', { body, token });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async function audit(customerId: string) {
    return server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', customerId)
      .orderBy('id')
      .execute();
  }

  async function row(customerId: string) {
    return server.kioskhub.db
      .selectFrom('customers')
      .selectAll()
      .where('id', '=', customerId)
      .executeTakeFirstOrThrow();
  }

  it('registers a customer with a PIN and answers exactly the contract shape, never the PIN', async () => {
    const phone = localPhone();
    pins.push('4821');
    const c = await create({
      phone,
      fullName: 'Amina Wanjiru',
      pin: '4821',
      siteIds: ['kibera'],
      reason: 'walk-in',
    });
    expect(Object.keys(c).sort()).toEqual(CUSTOMER_KEYS);
    expect(c).toMatchObject({
      phone: e164(phone),
      fullName: 'Amina Wanjiru',
      registered: true,
      active: true,
      subscription: null,
      dailyLimitMl: null,
      creditsMl: 0,
      usedTodayMl: 0,
      pinLocked: false,
      siteIds: ['kibera'],
    });
    expect(c.accountId).toMatch(/^TSF[A-Z2-9]{6}$/);
    expect(JSON.stringify(c)).not.toContain('4821');
    const rows = await audit(c.id);
    expect(rows.map((r) => r.action)).toEqual(
      expect.arrayContaining(['customer.created', 'customer.pin_set', 'customer.registered_by_staff']),
    );
    expect(rows.every((r) => r.actor.startsWith('user:'))).toBe(true);
    expect(rows.some((r) => (r.after ?? '').includes('walk-in'))).toBe(true);

    const got = await server.request('GET', `/v1/customers/${c.id}`, { token: cs });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(c);
  });

  it('refuses bad registrations with a clear error and creates nothing', async () => {
    const before = await server.kioskhub.db
      .selectFrom('customers')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    const taken = await create({ phone: localPhone() });
    const bad: [Record<string, unknown>, number, string][] = [
      [{}, 400, 'VALIDATION_FAILED'],
      [{ phone: 'not a phone' }, 400, 'VALIDATION_FAILED'],
      [{ phone: localPhone(), pin: '12345' }, 400, 'VALIDATION_FAILED'],
      [{ phone: localPhone(), pin: 'abcd' }, 400, 'VALIDATION_FAILED'],
      [{ phone: localPhone(), siteIds: ['nowhere'] }, 400, 'VALIDATION_FAILED'],
      [{ phone: localPhone(), color: 'red' }, 400, 'VALIDATION_FAILED'],
      [{ phone: localPhone(), fullName: '' }, 400, 'VALIDATION_FAILED'],
      [{ phone: taken.phone.replace('+254', '0') }, 409, 'CONFLICT'],
    ];
    for (const [body, status, code] of bad) {
      expectError(await server.request('POST', '/v1/customers', { body, token: cs }), status, code);
    }
    const after = await server.kioskhub.db
      .selectFrom('customers')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n) + 1);
  });

  it('finds a customer by phone in every form, by account id and by name', async () => {
    const phone = localPhone();
    const name = `Otieno ${uid('Z')}`;
    const c = await create({ phone, fullName: name });
    const digits = phone.slice(1);
    const forms = [
      phone,
      `254${digits}`,
      `+254${digits}`,
      `+254 ${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}`,
      `00254${digits}`,
      c.accountId,
      c.accountId.toLowerCase(),
      name.toUpperCase(),
      name.split(' ')[1]!.slice(2, 8),
    ];
    for (const query of forms) {
      const res = await server.request('GET', `/v1/customers?query=${encodeURIComponent(query)}`, {
        token: cs,
      });
      expect(res.status).toBe(200);
      expect(
        res.body.items.map((x: any) => x.id),
        query,
      ).toEqual([c.id]);
    }
    const none = await server.request('GET', `/v1/customers?query=${encodeURIComponent('0799 000 000 x')}`, {
      token: cs,
    });
    expect(none.status).toBe(200);
    expect(none.body.items).toEqual([]);
  });

  it('pages 25 at a time by default, newest first, with a cursor', async () => {
    const tag = uid('Page');
    const ids: string[] = [];
    for (let i = 0; i < 27; i += 1)
      ids.push((await create({ phone: localPhone(), fullName: `${tag} ${i}` })).id);
    const first = await server.request('GET', `/v1/customers?query=${tag}`, { token: cs });
    expect(first.body.items).toHaveLength(25);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await server.request('GET', `/v1/customers?query=${tag}&cursor=${first.body.nextCursor}`, {
      token: cs,
    });
    expect(second.body.items).toHaveLength(2);
    expect(second.body.nextCursor).toBeNull();
    const seen = [...first.body.items, ...second.body.items].map((x: any) => x.id);
    expect(seen).toEqual([...ids].reverse());
    const small = await server.request('GET', `/v1/customers?query=${tag}&limit=10`, { token: cs });
    expect(small.body.items).toHaveLength(10);
    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'cursor=', 'extra=1']) {
      expectError(await server.request('GET', `/v1/customers?${q}`, { token: cs }), 400, 'VALIDATION_FAILED');
    }
  });

  it('changes name, active, daily limit and sites with the reason in the audit; refuses bad changes', async () => {
    const c = await create({ phone: localPhone(), fullName: 'Before' });
    const res = await server.request('PATCH', `/v1/customers/${c.id}`, {
      token: cs,
      body: {
        fullName: 'After',
        active: false,
        dailyLimitMl: 20_000,
        siteIds: ['kibera', 'mathare'],
        reason: 'moved',
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      fullName: 'After',
      active: false,
      dailyLimitMl: 20_000,
      siteIds: ['kibera', 'mathare'],
    });
    const updated = (await audit(c.id)).find((r) => r.action === 'customer.updated')!;
    expect(JSON.parse(updated.before!)).toEqual({
      fullName: 'Before',
      active: true,
      dailyLimitMl: null,
      siteIds: [],
    });
    expect(JSON.parse(updated.after!)).toMatchObject({ fullName: 'After', active: false, reason: 'moved' });

    const snapshot = await row(c.id);
    const bad: [Record<string, unknown>, number, string][] = [
      [{}, 400, 'VALIDATION_FAILED'],
      [{ reason: 'only a reason' }, 400, 'VALIDATION_FAILED'],
      [{ dailyLimitMl: -1 }, 400, 'VALIDATION_FAILED'],
      [{ dailyLimitMl: 1.5 }, 400, 'VALIDATION_FAILED'],
      [{ active: 'yes' }, 400, 'VALIDATION_FAILED'],
      [{ siteIds: ['nowhere'], fullName: 'Not this' }, 400, 'VALIDATION_FAILED'],
      [{ phone: '0700000000' }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code] of bad) {
      expectError(await server.request('PATCH', `/v1/customers/${c.id}`, { body, token: cs }), status, code);
    }
    expect(await row(c.id)).toEqual(snapshot);
    expectError(
      await server.request('PATCH', '/v1/customers/NOPE', { body: { active: true }, token: cs }),
      404,
      'NOT_FOUND',
    );
    const cleared = await server.request('PATCH', `/v1/customers/${c.id}`, {
      token: cs,
      body: { dailyLimitMl: null, fullName: null, active: true },
    });
    expect(cleared.body).toMatchObject({ dailyLimitMl: null, fullName: null, active: true });
  });

  it('adjusts credit with a signed ledger entry pair and a reason; refuses taking more than there is', async () => {
    const c = await create({ phone: localPhone() });
    const add = await server.request('POST', `/v1/customers/${c.id}/credits`, {
      token: cs,
      body: { deltaMl: 50_000, reason: 'goodwill after outage' },
    });
    expect(add.status, JSON.stringify(add.body)).toBe(200);
    expect(add.body.creditsMl).toBe(50_000);
    const take = await server.request('POST', `/v1/customers/${c.id}/credits`, {
      token: cs,
      body: { deltaMl: -20_000, reason: 'entered twice' },
    });
    expect(take.body.creditsMl).toBe(30_000);

    const ledger = await server.request('GET', `/v1/customers/${c.id}/ledger`, { token: cs });
    expect(ledger.status).toBe(200);
    expect(ledger.body.items).toHaveLength(2);
    expect(ledger.body.items[0]).toMatchObject({
      amount: -20_000,
      unit: 'ml',
      cause: { type: 'staff_adjustment', id: expect.any(String) },
      memo: 'entered twice',
    });
    expect(ledger.body.items[1]).toMatchObject({ amount: 50_000, memo: 'goodwill after outage' });
    expect(Object.keys(ledger.body.items[0]).sort()).toEqual([
      'accountId',
      'amount',
      'cause',
      'createdAt',
      'id',
      'memo',
      'unit',
    ]);
    // Each adjustment is a pair summing to zero (the other side is the tenant's water_issued).
    for (const entry of ledger.body.items) {
      const pair = await server.kioskhub.db
        .selectFrom('ledger_entries')
        .select('amount')
        .where('cause_id', '=', entry.cause.id)
        .execute();
      expect(pair.map((p) => Number(p.amount)).reduce((a, b) => a + b, 0)).toBe(0);
      expect(pair).toHaveLength(2);
    }
    const paged = await server.request('GET', `/v1/customers/${c.id}/ledger?limit=1`, { token: cs });
    expect(paged.body.items).toHaveLength(1);
    const rest = await server.request(
      'GET',
      `/v1/customers/${c.id}/ledger?limit=1&cursor=${paged.body.nextCursor}`,
      {
        token: cs,
      },
    );
    expect(rest.body.items[0].amount).toBe(50_000);

    const rows = (await audit(c.id)).filter((r) => r.action === 'customer.credit_adjusted');
    expect(rows).toHaveLength(2);
    expect(JSON.parse(rows[1]!.after!)).toMatchObject({
      creditsMl: 30_000,
      deltaMl: -20_000,
      reason: 'entered twice',
    });

    const bad: [Record<string, unknown>, number, string][] = [
      [{ deltaMl: -30_001, reason: 'too much' }, 409, 'INSUFFICIENT_CREDIT'],
      [{ deltaMl: 0, reason: 'nothing' }, 400, 'VALIDATION_FAILED'],
      [{ deltaMl: 100 }, 400, 'VALIDATION_FAILED'],
      [{ deltaMl: 100, reason: '' }, 400, 'VALIDATION_FAILED'],
      [{ deltaMl: 1.5, reason: 'half' }, 400, 'VALIDATION_FAILED'],
      [{ deltaMl: '100', reason: 'text' }, 400, 'VALIDATION_FAILED'],
      [{ deltaMl: 100, reason: 'x', extra: 1 }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code] of bad) {
      expectError(
        await server.request('POST', `/v1/customers/${c.id}/credits`, { body, token: cs }),
        status,
        code,
      );
    }
    const after = await server.request('GET', `/v1/customers/${c.id}`, { token: cs });
    expect(after.body.creditsMl).toBe(30_000);
    expect(
      (await server.request('GET', `/v1/customers/${c.id}/ledger`, { token: cs })).body.items,
    ).toHaveLength(2);
  });

  it('creates and lists plans; refuses bad plans', async () => {
    const month = {
      id: 'month',
      name: 'Monthly water',
      kind: 'subscription',
      priceMinor: 150_000,
      currency: 'KES',
      days: 30,
      dailyLimitMl: 20_000,
    };
    const res = await server.request('POST', '/v1/water/plans', { token: cs, body: month });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toEqual({ ...month, creditMl: null, active: true, createdAt: expect.any(String) });
    const credit = {
      id: 'jerry100',
      name: '100 litres',
      kind: 'credit',
      priceMinor: 50_000,
      currency: 'KES',
      creditMl: 100_000,
    };
    expect((await server.request('POST', '/v1/water/plans', { body: credit })).status).toBe(201);
    const list = await server.request('GET', '/v1/water/plans', { token: cs });
    expect(list.body.items.map((p: any) => p.id)).toEqual(['jerry100', 'month']);
    expect(list.body.nextCursor).toBeNull();
    const planAudit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'plan.created')
      .execute();
    expect(planAudit.map((a) => a.subject_id).sort()).toEqual(['jerry100', 'month']);

    const bad: [Record<string, unknown>, number, string][] = [
      [{ ...month }, 409, 'CONFLICT'],
      [{ ...month, id: 'p1', days: undefined }, 400, 'VALIDATION_FAILED'],
      [{ ...credit, id: 'p2', creditMl: undefined }, 400, 'VALIDATION_FAILED'],
      [{ ...credit, id: 'p3', days: 3 }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p4', priceMinor: 10.5 }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p5', priceMinor: 0 }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p6', currency: 'kes' }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p7', currency: 'XYZ' }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p8', kind: 'forever' }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'has space' }, 400, 'VALIDATION_FAILED'],
      [{ ...month, id: 'p9', colour: 'blue' }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code] of bad) {
      expectError(await server.request('POST', '/v1/water/plans', { body, token: cs }), status, code);
    }
    expect((await server.request('GET', '/v1/water/plans', { token: cs })).body.items).toHaveLength(2);
    // The rival tenant has no plans, and may make its own "month".
    expect((await server.request('GET', '/v1/water/plans', { token: otherAdmin })).body.items).toEqual([]);
    expect((await server.request('POST', '/v1/water/plans', { token: otherAdmin, body: month })).status).toBe(
      201,
    );
  });

  it('sets, extends and ends subscriptions; refuses bad ones', async () => {
    const c = await create({ phone: localPhone() });
    const t0 = Date.now();
    const ext = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'month', reason: 'paid cash at the kiosk' },
    });
    expect(ext.status, JSON.stringify(ext.body)).toBe(200);
    expect(ext.body.subscription.planId).toBe('month');
    const exp1 = Date.parse(ext.body.subscription.expiresAt);
    expect(exp1 - t0).toBeGreaterThanOrEqual(30 * 86_400_000 - 1000);
    expect(exp1 - t0).toBeLessThan(30 * 86_400_000 + 60_000);
    expect(ext.body.dailyLimitMl).toBe(20_000);
    const again = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'month' },
    });
    expect(Date.parse(again.body.subscription.expiresAt) - exp1).toBe(30 * 86_400_000);
    const exact = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { expiresAt: '2027-01-31T00:00:00.000Z' },
    });
    expect(exact.body.subscription).toEqual({ planId: 'month', expiresAt: '2027-01-31T00:00:00.000Z' });

    const snapshot = await row(c.id);
    const bad: [Record<string, unknown>, number, string][] = [
      [{}, 400, 'VALIDATION_FAILED'],
      [{ planId: 'nope' }, 400, 'VALIDATION_FAILED'],
      [{ planId: 'jerry100' }, 400, 'VALIDATION_FAILED'],
      [{ expiresAt: 'tomorrow' }, 400, 'VALIDATION_FAILED'],
      [{ expiresAt: 5 }, 400, 'VALIDATION_FAILED'],
      [{ planId: 'month', more: 1 }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code] of bad) {
      expectError(
        await server.request('POST', `/v1/customers/${c.id}/subscription`, { body, token: cs }),
        status,
        code,
      );
    }
    expect(await row(c.id)).toEqual(snapshot);
    const end = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { expiresAt: null, reason: 'refunded' },
    });
    expect(end.body.subscription).toBeNull();
    const rows = (await audit(c.id)).filter((r) => r.action === 'customer.subscription_set');
    expect(rows).toHaveLength(4);
    expect(JSON.parse(rows[0]!.after!)).toMatchObject({ planId: 'month', reason: 'paid cash at the kiosk' });
  });

  it('resets a PIN without an SMS provider: the new PIN once in the answer, nowhere else', async () => {
    pins.push('1357');
    const c = await create({ phone: localPhone(), pin: '1357' });
    const res = await server.request('POST', `/v1/customers/${c.id}/pin-reset`, {
      token: cs,
      body: { reason: 'forgot it' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ sent: false, pin: expect.stringMatching(/^\d{4}$/) });
    const pin: string = res.body.pin;
    const customers = server.kioskhub.services.customers;
    const fresh = await customers.get('default', c.id);
    expect(await customers.checkPin(fresh, pin)).toEqual({ ok: true });
    expect((await audit(c.id)).map((r) => r.action)).toContain('customer.pin_reset');
    const auditText = JSON.stringify(await audit(c.id));
    expect(auditText).not.toContain(`"${pin}"`);
    expect(auditText).not.toContain('1357');
    // Without a body too.
    expect((await server.request('POST', `/v1/customers/${c.id}/pin-reset`, { token: cs })).status).toBe(200);
    expectError(
      await server.request('POST', `/v1/customers/${c.id}/pin-reset`, { token: cs, body: { pin: '1111' } }),
      400,
      'VALIDATION_FAILED',
    );
    expectError(
      await server.request('POST', '/v1/customers/NOPE/pin-reset', { token: cs }),
      404,
      'NOT_FOUND',
    );
  });

  it('unlocks a PIN locked by five wrong tries', async () => {
    pins.push('9753');
    const c = await create({ phone: localPhone(), pin: '9753' });
    const customers = server.kioskhub.services.customers;
    for (let i = 0; i < 5; i += 1) await customers.checkPin(await customers.get('default', c.id), '0000');
    const locked = await server.request('GET', `/v1/customers/${c.id}`, { token: cs });
    expect(locked.body.pinLocked).toBe(true);
    const res = await server.request('POST', `/v1/customers/${c.id}/unlock`, {
      token: cs,
      body: { reason: 'verified by ID' },
    });
    expect(res.status).toBe(200);
    expect(res.body.pinLocked).toBe(false);
    expect(await customers.checkPin(await customers.get('default', c.id), '9753')).toEqual({ ok: true });
    const unlocked = (await audit(c.id)).find((r) => r.action === 'customer.unlocked')!;
    expect(JSON.parse(unlocked.after!)).toEqual({ reason: 'verified by ID' });
    expectError(
      await server.request('POST', `/v1/customers/${c.id}/unlock`, { token: cs, body: { reason: 7 } }),
      400,
      'VALIDATION_FAILED',
    );
    expectError(await server.request('POST', '/v1/customers/NOPE/unlock', { token: cs }), 404, 'NOT_FOUND');
  });

  it('lists payments and dispenses of a customer', async () => {
    const c = await create({ phone: localPhone() });
    const db = server.kioskhub.db;
    const now = new Date().toISOString();
    await db
      .insertInto('water_dispenses')
      .values({
        id: uid('WD'),
        tenant_id: 'default',
        kiosk_id: 'K1',
        customer_id: c.id,
        tap: 2,
        held_ml: 5000,
        dispensed_ml: 4800,
        status: 'SETTLED',
        request_key: null,
        kiosk_txn_id: uid('tx'),
        flagged: 0,
        at: now,
        hold_expires_at: null,
        settled_at: now,
      })
      .execute();
    const d = await server.request('GET', `/v1/customers/${c.id}/dispenses`, { token: cs });
    expect(d.status, JSON.stringify(d.body)).toBe(200);
    expect(d.body.items).toEqual([
      expect.objectContaining({
        kioskId: 'K1',
        tap: 2,
        heldMl: 5000,
        dispensedMl: 4800,
        status: 'SETTLED',
        flagged: false,
      }),
    ]);
    const used = await server.request('GET', `/v1/customers/${c.id}`, { token: cs });
    expect(used.body.usedTodayMl).toBe(4800);
    const p = await server.request('GET', `/v1/customers/${c.id}/payments`, { token: cs });
    expect(p.status).toBe(200);
    expect(p.body).toEqual({ items: [], nextCursor: null });
    expectError(
      await server.request('GET', `/v1/customers/${c.id}/dispenses?limit=0`, { token: cs }),
      400,
      'VALIDATION_FAILED',
    );
    expectError(await server.request('GET', '/v1/customers/NOPE/payments', { token: cs }), 404, 'NOT_FOUND');
  });

  it('sends customer_updated to the tenant room on a change', async () => {
    const c = await create({ phone: localPhone() });
    const socket = liveSocket(server.url, { token: cs });
    try {
      await connected(socket);
      expect(await socket.timeout(5_000).emitWithAck('subscribe', { room: 'tenant:default' })).toMatchObject({
        ok: true,
      });
      // The registration's own event may still be on its way: wait for the one of the change.
      const event = new Promise((resolve) => {
        socket.on('customer_updated', (data: { reason?: string }) => {
          if (data.reason === 'updated') resolve(data);
        });
      });
      await server.request('PATCH', `/v1/customers/${c.id}`, { token: cs, body: { fullName: 'Live' } });
      expect(
        await Promise.race([event, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]),
      ).toMatchObject({
        customerId: c.id,
        reason: 'updated',
      });
    } finally {
      socket.close();
    }
  });

  it('lets only admin and customer_service in (403 for the others, 401 without a token)', async () => {
    const c = await create({ phone: localPhone() });
    const calls: [string, string, unknown?][] = [
      ['POST', '/v1/customers', { phone: localPhone() }],
      ['GET', '/v1/customers'],
      ['GET', `/v1/customers/${c.id}`],
      ['PATCH', `/v1/customers/${c.id}`, { active: false }],
      ['POST', `/v1/customers/${c.id}/pin-reset`, {}],
      ['POST', `/v1/customers/${c.id}/unlock`, {}],
      ['POST', `/v1/customers/${c.id}/credits`, { deltaMl: 1000, reason: 'r' }],
      ['POST', `/v1/customers/${c.id}/subscription`, { planId: 'month' }],
      ['GET', `/v1/customers/${c.id}/ledger`],
      ['GET', `/v1/customers/${c.id}/payments`],
      ['GET', `/v1/customers/${c.id}/dispenses`],
      [
        'POST',
        '/v1/water/plans',
        { id: 'x1', name: 'x', kind: 'credit', priceMinor: 1, currency: 'KES', creditMl: 1 },
      ],
      ['GET', '/v1/water/plans'],
    ];
    const snapshot = await row(c.id);
    for (const [method, path, body] of calls) {
      for (const token of [tech, plainStaff]) {
        const res = await server.request(method, path, { token, ...(body !== undefined ? { body } : {}) });
        expectError(res, 403, 'FORBIDDEN');
      }
      const anon = await server.request(method, path, {
        token: null,
        ...(body !== undefined ? { body } : {}),
      });
      expectError(anon, 401, 'UNAUTHORIZED');
    }
    expect(await row(c.id)).toEqual(snapshot);
    expect(
      (await server.request('GET', '/v1/water/plans', { token: cs })).body.items.map((p: any) => p.id),
    ).not.toContain('x1');
  });

  it('keeps tenants apart: another tenant’s customers are not found, and never listed', async () => {
    const c = await create({ phone: localPhone(), fullName: 'Only Default' });
    const calls: [string, string, unknown?][] = [
      ['GET', `/v1/customers/${c.id}`],
      ['PATCH', `/v1/customers/${c.id}`, { active: false }],
      ['POST', `/v1/customers/${c.id}/pin-reset`, {}],
      ['POST', `/v1/customers/${c.id}/unlock`, {}],
      ['POST', `/v1/customers/${c.id}/credits`, { deltaMl: 1000, reason: 'r' }],
      ['POST', `/v1/customers/${c.id}/subscription`, { expiresAt: '2030-01-01T00:00:00Z' }],
      ['GET', `/v1/customers/${c.id}/ledger`],
      ['GET', `/v1/customers/${c.id}/payments`],
      ['GET', `/v1/customers/${c.id}/dispenses`],
    ];
    const snapshot = await row(c.id);
    for (const [method, path, body] of calls) {
      const res = await server.request(method, path, {
        token: otherAdmin,
        ...(body !== undefined ? { body } : {}),
      });
      expectError(res, 404, 'NOT_FOUND');
    }
    expect(await row(c.id)).toEqual(snapshot);
    for (const query of [c.phone, c.accountId, 'Only Default', '']) {
      const res = await server.request('GET', `/v1/customers?query=${encodeURIComponent(query)}`, {
        token: otherAdmin,
      });
      expect(res.body.items.map((x: any) => x.id)).not.toContain(c.id);
    }
    // The same phone is a different customer in the rival tenant (its numbers are international).
    const rival = await server.request('POST', '/v1/customers', {
      token: otherAdmin,
      body: { phone: c.phone },
    });
    expect(rival.status).toBe(201);
    expect(rival.body.id).not.toBe(c.id);
    expectError(
      await server.request('POST', '/v1/customers?tenantId=default', {
        token: otherAdmin,
        body: { phone: localPhone() },
      }),
      403,
      'FORBIDDEN',
    );
    // ADMIN_TOKEN sees every tenant.
    expect((await server.request('GET', `/v1/customers/${c.id}`)).status).toBe(200);
  });

  it('never wrote a PIN to a log line or an audit row', async () => {
    expect(logLines.length).toBeGreaterThan(0);
    const logs = logLines.join('\n');
    const audits = JSON.stringify(await server.kioskhub.db.selectFrom('audit_log').selectAll().execute());
    for (const pin of pins) {
      expect(logs).not.toMatch(new RegExp(`"(pin|PIN)"\\s*:\\s*"${pin}"`));
      expect(logs).not.toContain(`PIN is ${pin}`);
      expect(audits).not.toMatch(new RegExp(`"pin"`));
    }
    expect(logs).not.toMatch(/"pin"\s*:/);
  });
});

describe.each(engines())('PIN reset with an SMS provider (%s)', (engine) => {
  let server: TestServer;
  let fakes: ProviderFakes;
  const logLines: string[] = [];

  beforeAll(async () => {
    fakes = await startProviderFakes();
    server = await startServer({
      engine,
      env: { LOG_LEVEL: 'info', AT_USERNAME: AT.username, AT_API_KEY: AT.apiKey, AT_API_BASE: fakes.url },
      logStream: { write: (line: string) => void logLines.push(line) },
    });
  });

  afterAll(async () => {
    await server?.close();
    await fakes?.close();
  });

  it('sends the new PIN by SMS and answers only {sent: true}', async () => {
    const phone = '+254711000111';
    const created = await server.request('POST', '/v1/customers', { body: { phone, pin: '8642' } });
    expect(created.status).toBe(201);
    const res = await server.request('POST', `/v1/customers/${created.body.id}/pin-reset`, {
      body: { reason: 'lost phone' },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sent: true });
    await expect.poll(() => fakes.smsTo(phone).length, { timeout: 10_000 }).toBe(1);
    const pin = /PIN is (\d{4})/.exec(fakes.smsTo(phone)[0]!)?.[1];
    expect(pin).toMatch(/^\d{4}$/);
    const customers = server.kioskhub.services.customers;
    expect(await customers.checkPin(await customers.get(null, created.body.id), pin!)).toEqual({ ok: true });
    // Without pino's own numbers (a responseTime of 3.600816999998642 holds "8642" by chance).
    const logs = logLines.join('\n').replace(/"(time|pid|responseTime|remotePort)":[\d.]+/g, '"$1":#');
    expect(logs).toContain('pin_reset');
    expect(logs).not.toContain(`PIN is ${pin}`);
    expect(logs).not.toContain('8642');
  });
});
