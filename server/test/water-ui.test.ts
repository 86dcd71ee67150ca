// Water kiosks for operators (docs/water-dashboard.md): the overview, the verification feed, the
// water charts and the water alerts, driven through the real firmware API, on both engines.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newId } from '../src/platform/db/database.js';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';

const PIN = '4821';
const DAY = 86_400_000;

describe.each(engines())('water dashboard API and alerts (%s)', (engine) => {
  let server: TestServer;
  let staff: string;
  let otherStaff: string;
  const keys: Record<string, string> = {};
  const customers: Record<string, string> = {};

  const kiosk = (id: string, method: string, path: string, body?: unknown) =>
    server.request(method, path, { token: null, headers: { 'x-api-key': keys[id]! }, body });
  const heartbeat = (id: string, taps: { tap: number; status: string; totalMl?: number }[], extra = {}) =>
    kiosk(id, 'POST', '/v1/water/heartbeat', { firmware: '2.1.0', taps, ...extra });
  const verify = (id: string, phone: string, pin: string, volumeMl: number, timestamp = Date.now()) =>
    kiosk(id, 'POST', '/dispense-verification', {
      kiosk_id: id,
      user_id: phone,
      pin,
      volume_ml: volumeMl,
      timestamp,
    });
  const insertPayment = (p: {
    tenantId?: string;
    planId: string | null;
    amountMinor: number;
    currency: string;
    status: string;
    refundedMinor?: number;
    createdAt?: string;
    expiresAt?: string | null;
    purpose?: string;
    method?: string;
  }) => {
    const id = newId();
    const now = new Date().toISOString();
    return server.kioskhub.db
      .insertInto('payments')
      .values({
        id,
        tenant_id: p.tenantId ?? 'default',
        site_id: null,
        purpose: p.purpose ?? 'plan',
        order_id: null,
        customer_id: customers['A'] ?? null,
        plan_id: p.planId,
        machine_id: null,
        method: p.method ?? 'momo',
        provider: null,
        provider_payment_id: null,
        reference: null,
        amount_minor: p.amountMinor,
        received_minor: p.status === 'PENDING' ? 0 : p.amountMinor,
        currency: p.currency,
        status: p.status,
        failure_code: null,
        refunded_minor: p.refundedMinor ?? 0,
        created_at: p.createdAt ?? now,
        // A second ago: a stats range ends at the request's own millisecond, exclusive, and the
        // inserts and the request can all fall within one millisecond.
        completed_at: p.status === 'PENDING' ? null : new Date(Date.now() - 1_000).toISOString(),
        updated_at: now,
        expires_at: p.expiresAt ?? null,
      })
      .execute()
      .then(() => id);
  };
  const openAlerts = async (token?: string) =>
    (await server.request('GET', '/v1/alerts?open=true&limit=200', token ? { token } : {})).body.items as {
      kind: string;
      subjectId: string;
      id: string;
      resolvedAt: string | null;
    }[];

  beforeAll(async () => {
    // The scheduler's sweep is slow here: the test runs sweeps itself, at chosen instants.
    server = await startServer({ engine, env: { WATER_ALERT_SWEEP_MS: '86400000' } });
    for (const id of ['W1', 'W2']) keys[id] = (await server.createMachine(id, { kind: 'water' })).key;
    await server.createMachine('V1');
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other' } })).status,
    ).toBe(201);
    keys['OW1'] = (await server.createMachine('OW1', { kind: 'water', tenantId: 'other' })).key;
    staff = await staffToken(server, 'staff@water.test', 'staff');
    otherStaff = await staffToken(server, 'staff@other-water.test', 'staff', 'other');
    for (const [name, phone, credit] of [
      ['A', '+254700000001', 20_000],
      ['B', '+254700000002', 0],
    ] as const) {
      const c = await server.request('POST', '/v1/customers', { body: { phone, pin: PIN } });
      expect(c.status, JSON.stringify(c.body)).toBe(201);
      customers[name] = c.body.id as string;
      if (credit > 0) {
        const r = await server.request('POST', `/v1/customers/${c.body.id}/credits`, {
          body: { deltaMl: credit, reason: 'test credit' },
        });
        expect(r.status, JSON.stringify(r.body)).toBe(200);
      }
    }
  });
  afterAll(async () => {
    await server?.close();
  });

  it('overview: heartbeat state, taps, litres and verifications today, per tenant', async () => {
    const hb = await heartbeat(
      'W1',
      [
        { tap: 1, status: 'OK', totalMl: 12_000 },
        { tap: 2, status: 'VALVE_FAULT', totalMl: 500 },
      ],
      { signalDbm: -71, sdFreeMb: 900, cacheVersion: 3 },
    );
    expect(hb.status, JSON.stringify(hb.body)).toBe(200);
    expect((await heartbeat('OW1', [{ tap: 1, status: 'OK' }])).status).toBe(200);

    const ok = await verify('W1', '254700000001', PIN, 1000);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ approved: true, code: 'VERIFIED' });
    expect(ok.body).not.toHaveProperty('pin');
    const wrong = await verify('W1', '+254700000001', '0000', 1000);
    expect(wrong.body).toMatchObject({ approved: false, code: 'INVALID_PIN' });
    const unknown = await verify('W1', '+254799999999', PIN, 1000);
    expect(unknown.body).toMatchObject({ approved: false, code: 'UNKNOWN_CUSTOMER' });
    const settled = await kiosk('W1', 'POST', '/v1/water/dispenses', {
      authorizationId: ok.body.authorization_id,
      dispensedMl: 900,
      kioskTxnId: 'w1-t1',
      tap: 1,
    });
    expect(settled.status, JSON.stringify(settled.body)).toBe(200);

    const res = await server.request('GET', '/v1/water/kiosks/overview', { token: staff });
    expect(res.status).toBe(200);
    const ids = (res.body.items as { kioskId: string }[]).map((k) => k.kioskId);
    expect(ids).toEqual(['W1', 'W2']); // not the vending machine, not the other tenant's kiosk
    const [w1, w2] = res.body.items;
    expect(w1).toMatchObject({
      kioskId: 'W1',
      status: 'ONLINE',
      firmware: '2.1.0',
      cacheVersion: 3,
      signalDbm: -71,
      sdFreeMb: 900,
      dispensedTodayMl: 900,
      approvalsToday: 1,
      denialsToday: 2,
      taps: [
        { tap: 1, status: 'OK', fault: false, totalMl: 12_000 },
        { tap: 2, status: 'VALVE_FAULT', fault: true, totalMl: 500 },
      ],
    });
    expect(Date.parse(w1.lastHeartbeatAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(w2).toMatchObject({ status: 'OFFLINE', lastHeartbeatAt: null, taps: [], dispensedTodayMl: 0 });

    const other = await server.request('GET', '/v1/water/kiosks/overview', { token: otherStaff });
    expect((other.body.items as { kioskId: string }[]).map((k) => k.kioskId)).toEqual(['OW1']);
    expect((await server.request('GET', '/v1/water/kiosks/overview', { token: null })).status).toBe(401);
  });

  it('verification feed: newest first with denial reasons, pages, one kiosk, one tenant', async () => {
    const first = await server.request('GET', '/v1/water/verifications?kioskId=W1&limit=2', { token: staff });
    expect(first.status).toBe(200);
    expect(first.body.items.map((v: { code: string }) => v.code)).toEqual([
      'UNKNOWN_CUSTOMER',
      'INVALID_PIN',
    ]);
    expect(first.body.items[1]).toMatchObject({
      kioskId: 'W1',
      customerId: customers['A'],
      customerAccountId: expect.stringMatching(/^TSF/),
      approved: false,
      reason: 'Wrong PIN',
      volumeMl: 1000,
    });
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const second = await server.request(
      'GET',
      `/v1/water/verifications?kioskId=W1&limit=2&cursor=${first.body.nextCursor}`,
      { token: staff },
    );
    expect(second.body.items.map((v: { code: string }) => v.code)).toEqual(['VERIFIED']);
    expect(second.body.nextCursor).toBeNull();

    // Another tenant's staff: the kiosk does not exist for them, and their feed is their own.
    const foreign = await server.request('GET', '/v1/water/verifications?kioskId=W1', { token: otherStaff });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('NOT_FOUND');
    const theirs = await server.request('GET', '/v1/water/verifications', { token: otherStaff });
    expect(theirs.body.items).toEqual([]);
    // A vending machine is not a water kiosk.
    expect((await server.request('GET', '/v1/water/verifications?kioskId=V1', { token: staff })).status).toBe(
      404,
    );
  });

  it('bad input: a clear error, and nothing recorded', async () => {
    const count = async () =>
      Number(
        (
          await server.kioskhub.db
            .selectFrom('water_verifications')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await count();
    for (const path of [
      '/v1/water/verifications?kioskId=bad%20id!',
      '/v1/water/verifications?limit=0',
      '/v1/water/verifications?color=blue',
      '/v1/stats/water?from=yesterday',
      '/v1/stats/water?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z',
      '/v1/stats/water?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z',
    ]) {
      const res = await server.request('GET', path, { token: staff });
      expect(res.status, path).toBe(400);
      expect(res.body.error.code, path).toBe('VALIDATION_FAILED');
      expect(res.body.error.message, path).toEqual(expect.any(String));
    }
    // A malformed verification is refused by the firmware route and leaves no record.
    const malformed = await kiosk('W1', 'POST', '/dispense-verification', {
      kiosk_id: 'W1',
      user_id: '+254700000001',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.approved).toBe(false);
    expect(await count()).toBe(before);
  });

  it('water stats: litres per day, verifications by code, plan revenue per currency with its exponent', async () => {
    await insertPayment({ planId: 'MONTH', amountMinor: 50_000, currency: 'KES', status: 'SUCCEEDED' });
    const refundedInPart = await insertPayment({
      planId: 'MONTH',
      amountMinor: 50_000,
      currency: 'KES',
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 10_000,
    });
    // Revenue moves as the ledger's: the refund counts when it was recorded.
    await server.kioskhub.db
      .insertInto('refunds')
      .values({
        id: newId(),
        tenant_id: 'default',
        payment_id: refundedInPart,
        amount_minor: 10_000,
        currency: 'KES',
        reason: 'plan refunded in part',
        destination: 'refund_due',
        status: 'DUE',
        actor: 'test',
        provider_refund_id: null,
        error: null,
        created_at: new Date(Date.now() - 1_000).toISOString(),
        completed_at: null,
      })
      .execute();
    await insertPayment({ planId: 'MONTH', amountMinor: 5_000, currency: 'UGX', status: 'SUCCEEDED' });
    await insertPayment({ planId: 'MONTH', amountMinor: 99_999, currency: 'KES', status: 'FAILED' });
    await insertPayment({
      planId: 'MONTH',
      amountMinor: 77_777,
      currency: 'KES',
      status: 'SUCCEEDED',
      tenantId: 'other',
    });
    await insertPayment({
      planId: null,
      amountMinor: 1_000,
      currency: 'KES',
      status: 'SUCCEEDED',
      purpose: 'wallet_topup',
    });

    const res = await server.request('GET', '/v1/stats/water', { token: staff });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const today = new Date().toISOString().slice(0, 10);
    expect(res.body.litresPerDay).toEqual([{ day: today, litres: 0.9, dispenses: 1 }]);
    expect(res.body.verificationsByCode).toEqual([
      { code: 'INVALID_PIN', reason: 'Wrong PIN', approved: false, count: 1 },
      { code: 'UNKNOWN_CUSTOMER', reason: 'No customer with this phone number', approved: false, count: 1 },
      { code: 'VERIFIED', reason: 'Approved', approved: true, count: 1 },
    ]);
    expect(res.body.revenueByPlan).toEqual(
      expect.arrayContaining([
        { planId: 'MONTH', planName: null, currency: 'KES', exponent: 2, amountMinor: 90_000, payments: 2 },
        { planId: 'MONTH', planName: null, currency: 'UGX', exponent: 0, amountMinor: 5_000, payments: 1 },
      ]),
    );
    expect(res.body.revenueByPlan).toHaveLength(2);

    const past = await server.request(
      'GET',
      `/v1/stats/water?from=${new Date(Date.now() - 10 * DAY).toISOString()}&to=${new Date(Date.now() - 5 * DAY).toISOString()}`,
      { token: staff },
    );
    expect(past.body).toMatchObject({ litresPerDay: [], verificationsByCode: [], revenueByPlan: [] });

    const other = await server.request('GET', '/v1/stats/water', { token: otherStaff });
    expect(other.body.litresPerDay).toEqual([]);
    expect(other.body.verificationsByCode).toEqual([]);
    expect(other.body.revenueByPlan).toEqual([
      { planId: 'MONTH', planName: null, currency: 'KES', exponent: 2, amountMinor: 77_777, payments: 1 },
    ]);
  });

  it('alerts: raised once per condition by the sweep, resolved when the condition clears', async () => {
    const sweep = (now?: number) => server.kioskhub.services.waterOps.alerts.sweepOnce(now);
    // A one-off payment past its expiry by more than the grace, one inside it, and a cash session.
    const stuck = await insertPayment({
      planId: 'MONTH',
      amountMinor: 50_000,
      currency: 'KES',
      status: 'PENDING',
      expiresAt: new Date(Date.now() - 31 * 60_000).toISOString(),
    });
    await insertPayment({
      planId: 'MONTH',
      amountMinor: 50_000,
      currency: 'KES',
      status: 'PENDING',
      expiresAt: new Date(Date.now() - 5 * 60_000).toISOString(),
    });
    const oldStuck = await insertPayment({
      planId: 'MONTH',
      amountMinor: 50_000,
      currency: 'KES',
      status: 'PENDING',
      createdAt: new Date(Date.now() - 2 * 3_600_000).toISOString(),
    });
    // Water dispensed offline by a customer without credit: the balance goes below zero.
    const batch = await kiosk('W1', 'POST', '/v1/water/transactions:batch', {
      transactions: [
        {
          kioskTxnId: 'w1-off-1',
          userId: '+254700000002',
          dispensedMl: 2000,
          at: new Date().toISOString(),
          tap: 1,
        },
      ],
    });
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    expect(batch.body.results[0].status).toBe('applied');

    const first = await sweep();
    const open = await openAlerts(staff);
    const water = open.filter((a) =>
      ['WATER_KIOSK_SILENT', 'WATER_TAP_FAULT', 'PAYMENT_STUCK', 'WATER_CREDIT_NEGATIVE'].includes(a.kind),
    );
    expect(water.map((a) => `${a.kind} ${a.subjectId}`).sort()).toEqual(
      [
        `PAYMENT_STUCK ${stuck}`,
        `PAYMENT_STUCK ${oldStuck}`,
        `WATER_CREDIT_NEGATIVE ${customers['B']}`,
        'WATER_TAP_FAULT W1/2',
      ].sort(),
    );
    expect(first.raised).toBe(4);
    // The other tenant sees none of them.
    expect(
      (await openAlerts(otherStaff)).filter((a) => a.kind.startsWith('WATER_') || a.kind === 'PAYMENT_STUCK'),
    ).toEqual([]);

    // Seen again: nothing new. Six minutes later without a heartbeat, W1 (and OW1) are silent.
    expect((await sweep()).raised).toBe(0);
    const later = await sweep(Date.now() + 6 * 60_000);
    expect(later.raised).toBe(2);
    expect((await openAlerts(staff)).map((a) => `${a.kind} ${a.subjectId}`)).toContain(
      'WATER_KIOSK_SILENT W1',
    );
    expect((await openAlerts(otherStaff)).map((a) => `${a.kind} ${a.subjectId}`)).toEqual([
      'WATER_KIOSK_SILENT OW1',
    ]);

    // Everything clears: a heartbeat with every tap OK, credit topped up, the payments ended.
    expect(
      (
        await heartbeat('W1', [
          { tap: 1, status: 'OK' },
          { tap: 2, status: 'IDLE' },
        ])
      ).status,
    ).toBe(200);
    expect(
      (
        await server.request('POST', `/v1/customers/${customers['B']}/credits`, {
          body: { deltaMl: 5000, reason: 'top up after offline use' },
        })
      ).status,
    ).toBe(200);
    await server.kioskhub.db
      .updateTable('payments')
      .set({ status: 'EXPIRED' })
      .where('id', 'in', [stuck, oldStuck])
      .execute();
    const cleared = await sweep();
    expect(cleared.raised).toBe(0);
    // Six: W1 and OW1 (both spoke within 5 minutes of now: only the future sweep saw them silent)
    // besides the tap, the two payments and the credit.
    expect(cleared.resolved).toBe(6);
    expect(
      (await openAlerts(staff)).filter((a) => a.kind.startsWith('WATER_') || a.kind === 'PAYMENT_STUCK'),
    ).toEqual([]);
    const all = (await server.request('GET', '/v1/alerts?limit=200', { token: staff })).body.items as {
      kind: string;
      resolvedAt: string | null;
    }[];
    const tap = all.find((a) => a.kind === 'WATER_TAP_FAULT');
    expect(tap?.resolvedAt).toEqual(expect.any(String));
  });

  it('the scheduler queues one sweep job at a time and the job table runs it', async () => {
    const { waterOps, outbox } = server.kioskhub.services;
    await waterOps.alerts.queueSweep();
    await waterOps.alerts.queueSweep();
    const queued = await server.kioskhub.db
      .selectFrom('outbox')
      .select('id')
      .where('topic', '=', 'water_alerts')
      .execute();
    expect(queued).toHaveLength(1);
    // Only the job queued here: the server's own scheduler may queue the next sweep meanwhile,
    // and the server's relay may hold this one (leased) while our drain passes it by.
    await vi.waitFor(
      async () => {
        await outbox.drain();
        const left = await server.kioskhub.db
          .selectFrom('outbox')
          .select(['id', 'status'])
          .where('id', '=', queued[0]!.id)
          .execute();
        expect(left).toEqual([]);
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});

describe.each(engines())('water alerts on their own schedule (%s)', (engine) => {
  let server: TestServer;
  afterAll(async () => {
    await server?.close();
  });

  it('the scheduler queues the sweep every WATER_ALERT_SWEEP_MS: a tap fault is raised, then resolved', async () => {
    server = await startServer({ engine, env: { WATER_ALERT_SWEEP_MS: '200' } });
    const { key } = await server.createMachine('WS1', { kind: 'water' });
    const heartbeat = (status: string) =>
      server.request('POST', '/v1/water/heartbeat', {
        token: null,
        headers: { 'x-api-key': key },
        body: { firmware: '1.0.0', taps: [{ tap: 4, status }] },
      });
    const tapAlert = async () =>
      (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
          resolvedAt: string | null;
        }[]
      ).find((a) => a.kind === 'WATER_TAP_FAULT' && a.subjectId === 'WS1/4');

    expect((await heartbeat('LEAK')).status).toBe(200);
    const raised = await eventually(async () => await tapAlert(), 10_000, 'tap fault alert raised');
    expect(raised.resolvedAt).toBeNull();
    expect((await heartbeat('OK')).status).toBe(200);
    await eventually(
      async () => (await tapAlert())?.resolvedAt ?? undefined,
      10_000,
      'tap fault alert resolved',
    );
  });
});
