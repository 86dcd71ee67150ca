// Resolving unallocated cash (returned, applied to an order, kept, void): once only, audited, on
// the ledger, tenant-scoped; bad requests change nothing. Reports without an eventId that repeat
// one moments earlier are flagged, never dropped. Real server and database, both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type Engine, type TestServer, startServer } from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';

const PASSWORD = 'correct horse battery';
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('unallocated cash resolution (%s)', (engine: Engine) => {
  let server: TestServer;
  let staff: string;
  let technician: string;
  let stranger: string;
  let kiosk: { id: string; key: string };
  let seq = 0;
  const SITE = 'ua-site';

  async function login(email: string, role: string, tenantId = 'default'): Promise<string> {
    const user = { email, password: PASSWORD, role, tenantId };
    expect((await server.request('POST', '/v1/users', { body: user })).status).toBe(201);
    const res = await server.request('POST', '/v1/auth/login', {
      body: { email, password: PASSWORD },
      token: null,
    });
    return res.body.token as string;
  }

  beforeAll(async () => {
    server = await startServer({ engine });
    const site = { id: SITE, name: 'Unallocated', currency: 'PHP' };
    expect((await server.request('POST', '/v1/sites', { body: site })).status).toBe(201);
    const product = { sku: 'ua-meal', name: 'Meal', priceMinor: 25_000, siteId: SITE };
    expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
    kiosk = await server.createMachine('UA-KIOSK', { kind: 'kiosk', siteId: SITE });
    staff = await login('cashier@ua.example', 'staff');
    technician = await login('tech@ua.example', 'technician');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'uaother', name: 'Other' } })).status,
    ).toBe(201);
    stranger = await login('clerk@uaother.example', 'admin', 'uaother');
  });
  afterAll(async () => {
    await server?.close();
  });

  /** ₱`amount` for an order number nobody knows: recorded as unallocated; answers its item. */
  async function parked(amount: number): Promise<{ id: string; amountMinor: number; status: string }> {
    const orderNumber = `GHOST-${++seq}`;
    const res = await server.request('POST', '/api/cash-payment/update', {
      ...key(kiosk.key),
      body: { orderNumber, amountAdded: amount, eventId: `ev-${seq}` },
    });
    expect(res.status).toBe(404);
    const list = await server.request('GET', '/v1/cash/unallocated?limit=200', { token: staff });
    return list.body.items.find((u: { orderNumber: string }) => u.orderNumber === orderNumber);
  }

  const balance = async (kind: string, ownerType = 'site', ownerId = SITE): Promise<number> => {
    const q = `/v1/ledger/accounts?ownerType=${ownerType}&ownerId=${ownerId}&kind=${kind}&unit=PHP`;
    const res = await server.request('GET', q, { token: staff });
    return res.body.items[0]?.balance ?? 0;
  };
  const external = () => balance('external', 'tenant', 'default');
  const resolve = (id: string, body: unknown, token = staff) =>
    server.request('POST', `/v1/cash/unallocated/${id}/resolve`, { body, token });
  const item = async (id: string) =>
    (await server.request('GET', '/v1/cash/unallocated?limit=200', { token: staff })).body.items.find(
      (u: { id: string }) => u.id === id,
    );
  const snapshot = async (id: string) => ({
    item: await item(id),
    ledger: [await balance('unallocated_cash'), await balance('revenue'), await external()],
    entries: Number(
      (
        await server.kioskhub.db
          .selectFrom('ledger_entries')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    ),
    unallocated: (await server.request('GET', '/v1/cash/unallocated?limit=200', { token: staff })).body.items
      .length,
  });

  it('money parked as unallocated goes external → unallocated_cash of the site, OPEN', async () => {
    const [cash0, ext0] = [await balance('unallocated_cash'), await external()];
    const u = await parked(20);
    expect(u).toMatchObject({
      amountMinor: 2000,
      status: 'OPEN',
      resolvedAt: null,
      resolvedBy: null,
      resolutionNote: null,
      appliedOrderNumber: null,
    });
    expect(await balance('unallocated_cash')).toBe(cash0 + 2000);
    expect(await external()).toBe(ext0 - 2000);
  });

  it('returned: handed back (→ external), audited with before and after', async () => {
    const u = await parked(50);
    const [cash0, ext0] = [await balance('unallocated_cash'), await external()];
    const res = await resolve(u.id, { action: 'returned', note: 'Customer came back for it' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      id: u.id,
      status: 'RETURNED',
      resolvedAt: expect.any(String),
      resolvedBy: expect.stringContaining('cashier@ua.example'),
      resolutionNote: 'Customer came back for it',
      appliedOrderNumber: null,
    });
    expect(await item(u.id)).toMatchObject({
      status: 'RETURNED',
      resolutionNote: 'Customer came back for it',
    });
    expect(await balance('unallocated_cash')).toBe(cash0 - 5000);
    expect(await external()).toBe(ext0 + 5000);
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', u.id)
      .where('action', '!=', 'unallocated_cash.recorded')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      action: 'unallocated_cash.returned',
      subject_type: 'unallocated_cash',
      tenant_id: 'default',
    });
    expect(JSON.parse(audit[0]!.before!)).toMatchObject({ status: 'OPEN' });
    expect(JSON.parse(audit[0]!.after!)).toMatchObject({ status: 'RETURNED' });
  });

  it('kept: unallocated_cash → revenue of the site', async () => {
    const u = await parked(10);
    const [cash0, rev0] = [await balance('unallocated_cash'), await balance('revenue')];
    const res = await resolve(u.id, { action: 'kept', note: 'Nobody claimed it in 30 days' });
    expect(res.body).toMatchObject({ status: 'KEPT' });
    expect(await balance('unallocated_cash')).toBe(cash0 - 1000);
    expect(await balance('revenue')).toBe(rev0 + 1000);
  });

  it('void: a repeated report reversed (unallocated_cash → external), audited', async () => {
    const u = await parked(15);
    const [cash0, ext0] = [await balance('unallocated_cash'), await external()];
    const res = await resolve(u.id, { action: 'void', note: 'not in the cash box' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'VOID', resolutionNote: 'not in the cash box' });
    expect(await balance('unallocated_cash')).toBe(cash0 - 1500);
    expect(await external()).toBe(ext0 + 1500);
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject_id', '=', u.id)
      .orderBy('id')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['unallocated_cash.recorded', 'unallocated_cash.void']);
  });

  it('a report without an eventId that repeats one moments earlier names it; others are not flagged', async () => {
    const orderNumber = `REPEAT-${++seq}`;
    const report = (amount: number, machineKey: string, eventId?: string) =>
      server.request('POST', '/api/cash-payment/update', {
        ...key(machineKey),
        body: { orderNumber, amountAdded: amount, ...(eventId ? { eventId } : {}) },
      });
    const other = await server.createMachine(`UA-CASH-${seq}`, { kind: 'cash', siteId: SITE });
    for (const [amount, machineKey, eventId] of [
      [20, kiosk.key], // the first report
      [20, kiosk.key], // a repeat
      [20, kiosk.key, 'ev-a'], // with an eventId: never a repeat
      [50, kiosk.key], // another amount
      [20, other.key], // another machine
      [20, kiosk.key], // a repeat again: names the first
    ] as const) {
      expect((await report(amount, machineKey, eventId)).status).toBe(404);
    }
    const items = async () =>
      (
        (await server.request('GET', '/v1/cash/unallocated?limit=200', { token: staff })).body.items as {
          id: string;
          orderNumber: string;
          possibleRepeatOf: string | null;
        }[]
      )
        .filter((u) => u.orderNumber === orderNumber)
        .reverse();
    const rows = await items();
    const first = rows[0]!.id;
    expect(rows.map((u) => u.possibleRepeatOf)).toEqual([null, first, null, null, null, first]);

    // Long after the run (the first reports moved back past the window): a new coin, not a repeat.
    const old = new Date(Date.now() - 5 * 60_000).toISOString();
    await server.kioskhub.db
      .updateTable('unallocated_cash')
      .set({ recorded_at: old })
      .where('order_number', '=', orderNumber)
      .execute();
    expect((await report(20, kiosk.key)).status).toBe(404);
    expect((await items()).at(-1)!.possibleRepeatOf).toBeNull();
  });

  it('applied: counts once in the order’s open session and completes the payment', async () => {
    const order = await server.request('POST', '/v1/orders', {
      ...key(kiosk.key),
      body: { items: [{ sku: 'ua-meal', qty: 1 }] },
    });
    const orderNumber = order.body.orderNumber as string;
    expect(
      (
        await server.request('POST', '/api/cash-payment/init', {
          ...key(kiosk.key),
          body: { orderNumber, totalAmount: 250 },
        })
      ).status,
    ).toBe(200);
    const bill = { orderNumber, amountAdded: 100, eventId: `bill-${orderNumber}` };
    expect(
      (await server.request('POST', '/api/cash-payment/update', { ...key(kiosk.key), body: bill })).body,
    ).toMatchObject({ remainingAmount: 150 });
    const u = await parked(150);
    const [cash0, rev0] = [await balance('unallocated_cash'), await balance('revenue')];

    const res = await resolve(u.id, { action: 'applied', orderNumber, note: 'Typed the wrong order number' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ status: 'APPLIED', appliedOrderNumber: orderNumber });
    const status = await server.request('GET', `/api/cash-payment/status/${orderNumber}`, key(kiosk.key));
    expect(status.body).toMatchObject({ status: 'PAID', amountInserted: 250, remainingAmount: 0, change: 0 });
    expect((await server.request('GET', `/v1/orders/${order.body.id}`)).body).toMatchObject({
      status: 'PAID',
    });
    const jobs = (await server.request('GET', `/v1/print-jobs?siteId=${SITE}&limit=200`)).body.items;
    expect(jobs.filter((j: { orderId: string }) => j.orderId === order.body.id)).toHaveLength(1);
    expect(await balance('unallocated_cash')).toBe(cash0 - 15_000);
    // The order's whole 250.00 is revenue once its payment settles: 100 inserted, 150 applied.
    expect(await balance('revenue')).toBe(rev0 + 25_000);

    // The device repeating its own bill still counts once; the applied amount is not re-counted.
    const again = await server.request('POST', '/api/cash-payment/update', { ...key(kiosk.key), body: bill });
    expect(again.body).toMatchObject({ amountInserted: 250, status: 'PAID' });
  });

  it('applied to an order that is not waiting for cash → 409, nothing changes', async () => {
    const u = await parked(30);
    const before = await snapshot(u.id);
    const res = await resolve(u.id, { action: 'applied', orderNumber: 'NO-SUCH-ORDER', note: 'try' });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('INVALID_STATE');
    expect(await snapshot(u.id)).toEqual(before);
  });

  // Its minor units used to go into the session as they were: ₱100.00 became UGX 10000.
  it('applied to a session in another currency (the site changed it) → 409 CONFLICT, nothing changes', async () => {
    const siteId = `ua-fx-${++seq}`;
    const site = { id: siteId, name: 'Currency change', currency: 'PHP' };
    expect((await server.request('POST', '/v1/sites', { body: site })).status).toBe(201);
    const sku = `${siteId}-meal`;
    const product = { sku, name: 'Meal', priceMinor: 15_000, siteId };
    expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
    const fxKiosk = await server.createMachine(`UA-FX-${seq}`, { kind: 'kiosk', siteId });
    const ghost = { orderNumber: `TYPO-${seq}`, amountAdded: 100, eventId: `fx-${seq}` };
    expect(
      (await server.request('POST', '/api/cash-payment/update', { ...key(fxKiosk.key), body: ghost })).status,
    ).toBe(404);
    const list = await server.request('GET', '/v1/cash/unallocated?limit=200', { token: staff });
    const u = list.body.items.find((x: { orderNumber: string }) => x.orderNumber === ghost.orderNumber);
    expect(u).toMatchObject({ amountMinor: 10_000, currency: 'PHP', status: 'OPEN' });

    const patched = await server.request('PATCH', `/v1/sites/${siteId}`, { body: { currency: 'UGX' } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const order = await server.request('POST', '/v1/orders', {
      ...key(fxKiosk.key),
      body: { items: [{ sku, qty: 1 }] },
    });
    expect(order.body).toMatchObject({ currency: 'UGX' });
    const orderNumber = order.body.orderNumber as string;
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(fxKiosk.key),
      body: { orderNumber, totalAmount: 15_000 },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);

    const before = await snapshot(u.id);
    const res = await resolve(u.id, { action: 'applied', orderNumber, note: 'Typed the wrong order number' });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatchObject({
      code: 'CONFLICT',
      details: { itemCurrency: 'PHP', sessionCurrency: 'UGX' },
    });
    expect(await snapshot(u.id)).toEqual(before);
    const status = await server.request('GET', `/api/cash-payment/status/${orderNumber}`, key(fxKiosk.key));
    expect(status.body).toMatchObject({ status: 'PENDING', amountInserted: 0, remainingAmount: 15_000 });
  });

  it('a second resolution is refused (409 INVALID_STATE) and changes nothing', async () => {
    const u = await parked(40);
    expect((await resolve(u.id, { action: 'kept', note: 'first' })).status).toBe(200);
    const before = await snapshot(u.id);
    for (const body of [
      { action: 'returned', note: 'second' },
      { action: 'kept', note: 'third' },
    ]) {
      const res = await resolve(u.id, body);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('INVALID_STATE');
    }
    expect(await snapshot(u.id)).toEqual(before);
    // Two at once: exactly one wins.
    const v = await parked(60);
    const both = await Promise.all([
      resolve(v.id, { action: 'kept', note: 'a' }),
      resolve(v.id, { action: 'returned', note: 'b' }),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
  });

  it('another tenant’s item → 404; a technician → 403; bad bodies → 400; nothing changes', async () => {
    const u = await parked(70);
    const before = await snapshot(u.id);
    const foreign = await resolve(u.id, { action: 'kept', note: 'mine now' }, stranger);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('NOT_FOUND');
    expect((await resolve(u.id, { action: 'kept', note: 'x' }, technician)).status).toBe(403);
    const bad: unknown[] = [
      {},
      { action: 'kept' },
      { action: 'kept', note: '' },
      { action: 'kept', note: '   ' },
      { action: 'lost', note: 'x' },
      { action: 'void' },
      { action: 'void', note: 'x', orderNumber: 'A1' },
      { action: 'applied', note: 'no order' },
      { action: 'kept', note: 'x', orderNumber: 'A1' },
      { action: 'kept', note: 'x', extra: 1 },
      { action: 'applied', note: 'x', orderNumber: 'bad number!' },
    ];
    for (const body of bad) {
      const res = await resolve(u.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect((await resolve('no-such-item', { action: 'kept', note: 'x' })).status).toBe(404);
    expect(await snapshot(u.id)).toEqual(before);
  });

  it('every cached balance equals the sum of its entries; each unit sums to zero', async () => {
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });
});
