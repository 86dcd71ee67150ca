// Cash payments of the restaurant kiosk (CONTRACTS.md §9) against the real server, real
// database and real sockets: session math, de-duplication under concurrency, unallocated
// money, cancellation, the customer screen's live events and a hard kill mid-session.
import { sql } from 'kysely';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  engines,
  eventually,
  liveSocket,
  tempDir,
  type Engine,
  type TestServer,
  startServer,
} from './harness.js';
import { freePort, startServerProcess, type ServerProcess } from './crash-kit.js';

const PASSWORD = 'correct horse battery';

type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, body: res.body }, JSON.stringify(res.body)).toMatchObject({
    status,
    body: { error: { code } },
  });
}

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

interface CashSite {
  siteId: string;
  kiosk: { id: string; key: string };
  cashUnit: { id: string; key: string };
  burger: string;
  cola: string;
}

describe.each(engines())('cash payments (%s)', (engine: Engine) => {
  let server: TestServer;
  let staffToken: string;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}${++seq}`;
  const sockets: Socket[] = [];

  /**
   * A PHP site with a kiosk, a cash unit, a tracked burger (₱150) and an untracked cola (₱50).
   * `adHoc`: the site takes cash for order numbers the server has not seen (adHocCashOrders).
   */
  async function cashSite(options: { adHoc?: boolean } = {}): Promise<CashSite> {
    const siteId = uid('cash');
    const body = {
      id: siteId,
      name: `Burger ${siteId}`,
      currency: 'PHP',
      taxRateBp: 1200,
      ...(options.adHoc ? { adHocCashOrders: true } : {}),
    };
    const res = await server.request('POST', '/v1/sites', { body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const burger = `${siteId}-burger`;
    const cola = `${siteId}-cola`;
    expect(
      (
        await server.request('POST', '/v1/products', {
          body: { sku: burger, name: 'Burger', priceMinor: 15_000, siteId, stock: 10 },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await server.request('POST', '/v1/products', {
          body: { sku: cola, name: 'Cola', priceMinor: 5_000, siteId },
        })
      ).status,
    ).toBe(201);
    const kiosk = await server.createMachine(uid('KIOSK'), { kind: 'kiosk', siteId });
    const cashUnit = await server.createMachine(uid('CASH'), { kind: 'cash', siteId });
    return { siteId, kiosk, cashUnit, burger, cola };
  }

  /** A ₱250 order (1 burger, 2 colas) made by the kiosk. */
  async function order250(site: CashSite): Promise<{ id: string; orderNumber: string }> {
    const res = await server.request('POST', '/v1/orders', {
      ...key(site.kiosk.key),
      body: {
        items: [
          { sku: site.burger, qty: 1 },
          { sku: site.cola, qty: 2 },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.amount).toBe(25_000);
    return { id: res.body.id as string, orderNumber: res.body.orderNumber as string };
  }

  const init = (k: string, orderNumber: string, totalAmount: number) =>
    server.request('POST', '/api/cash-payment/init', { ...key(k), body: { orderNumber, totalAmount } });
  const update = (k: string, body: Record<string, unknown>) =>
    server.request('POST', '/api/cash-payment/update', { ...key(k), body });
  const status = (k: string, orderNumber: string) =>
    server.request('GET', `/api/cash-payment/status/${orderNumber}`, key(k));
  const orderOf = async (id: string) => (await server.request('GET', `/v1/orders/${id}`)).body;
  const unallocatedFor = async (orderNumber: string): Promise<any[]> => {
    const res = await server.request('GET', '/v1/cash/unallocated?limit=200');
    expect(res.status).toBe(200);
    return res.body.items.filter((u: any) => u.orderNumber === orderNumber);
  };
  const jobsFor = async (siteId: string, orderId: string): Promise<any[]> =>
    (await server.request('GET', `/v1/print-jobs?siteId=${siteId}&limit=200`)).body.items.filter(
      (j: any) => j.orderId === orderId,
    );
  const stockOf = async (sku: string): Promise<number | null> =>
    (await server.request('GET', '/v1/products')).body.items.find(
      (p: any) => p.sku === sku && p.tenantId === 'default',
    ).stock;

  async function openLive(auth: Record<string, string>, room: string): Promise<Socket> {
    const socket = liveSocket(server.url, auth);
    sockets.push(socket);
    await connected(socket);
    const ack = await socket.timeout(5_000).emitWithAck('subscribe', { room });
    expect(ack).toMatchObject({ ok: true });
    return socket;
  }

  function record(socket: Socket, ...events: string[]): Record<string, any[]> {
    const seen: Record<string, any[]> = {};
    for (const event of events) {
      seen[event] = [];
      socket.on(event, (payload: unknown) => seen[event]!.push(payload));
    }
    return seen;
  }

  beforeAll(async () => {
    server = await startServer({ engine });
    const email = `${uid('cook')}@example.com`;
    expect(
      (await server.request('POST', '/v1/users', { body: { email, password: PASSWORD, role: 'staff' } }))
        .status,
    ).toBe(201);
    staffToken = (
      await server.request('POST', '/v1/auth/login', { body: { email, password: PASSWORD }, token: null })
    ).body.token as string;
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(async () => {
    await server?.close();
  });

  describe('init', () => {
    it('answers the session with an orderToken', async () => {
      const site = await cashSite();
      const o = await order250(site);
      const res = await init(site.kiosk.key, o.orderNumber, 250);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body).toEqual({
        success: true,
        sessionId: expect.any(String),
        orderNumber: o.orderNumber,
        totalRequired: 250,
        amountInserted: 0,
        remainingAmount: 250,
        status: 'PENDING',
        orderToken: expect.any(String),
      });
    });

    it('an order number with # (A#21) can be followed on /live with its orderToken', async () => {
      const site = await cashSite();
      const orderNumber = `A#${++seq}`;
      const made = await server.request('POST', '/v1/orders', {
        ...key(site.kiosk.key),
        body: { orderNumber, items: [{ sku: site.cola, qty: 1 }] },
      });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      const res = await init(site.kiosk.key, orderNumber, 50);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const socket = await openLive({ orderToken: res.body.orderToken }, `order:${orderNumber}`);
      const seen = record(socket, 'cash_session_updated');
      await update(site.cashUnit.key, { orderNumber, amountAdded: 20 });
      await eventually(() => seen['cash_session_updated']!.length > 0);
    });

    it('an unknown order number (a typo) → 404 NOT_FOUND and no order, whoever asks, unless the site takes ad-hoc orders', async () => {
      const site = await cashSite();
      const typo = uid('TYPO-');
      for (const caller of [key(site.kiosk.key), key(site.cashUnit.key), { token: staffToken }]) {
        const res = await server.request('POST', '/api/cash-payment/init', {
          ...caller,
          body: { orderNumber: typo, totalAmount: 250 },
        });
        expectError(res, 404, 'NOT_FOUND');
        expect(res.body.error.message).toContain(`order ${typo} does not exist`);
      }
      const orders = (await server.request('GET', '/v1/orders?limit=200')).body.items;
      expect(orders.find((x: any) => x.orderNumber === typo)).toBeUndefined();
      expectError(await status(site.kiosk.key, typo), 404, 'NOT_FOUND');
    });

    it('adHocCashOrders: a kiosk of the site or staff create an item-less order; a cash unit or another site’s kiosk → 404', async () => {
      const site = await cashSite();
      const other = await cashSite();
      const patched = await server.request('PATCH', `/v1/sites/${site.siteId}`, {
        body: { adHocCashOrders: true },
      });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body).toMatchObject({ id: site.siteId, adHocCashOrders: true });

      const fresh = uid('KX-');
      expectError(await init(site.cashUnit.key, fresh, 99.5), 404, 'NOT_FOUND');
      // Another site's kiosk asks about its own site, which takes no ad-hoc orders.
      expectError(await init(other.kiosk.key, fresh, 99.5), 404, 'NOT_FOUND');
      const created = await init(site.kiosk.key, fresh, 99.5);
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      expect(created.body).toMatchObject({
        orderNumber: fresh,
        totalRequired: 99.5,
        remainingAmount: 99.5,
        status: 'PENDING',
      });
      const orders = (await server.request('GET', '/v1/orders?limit=200')).body.items;
      expect(orders.find((x: any) => x.orderNumber === fresh)).toMatchObject({
        amount: 9_950,
        currency: 'PHP',
        siteId: site.siteId,
        status: 'CREATED',
      });

      // Staff open a session on the default site when no site is named: it must take ad-hoc orders too.
      const byStaff = () =>
        server.request('POST', '/api/cash-payment/init', {
          token: staffToken,
          body: { orderNumber: uid('ST-'), totalAmount: 10 },
        });
      expectError(await byStaff(), 404, 'NOT_FOUND');
      expect(
        (await server.request('PATCH', '/v1/sites/default', { body: { adHocCashOrders: true } })).status,
      ).toBe(200);
      try {
        const res = await byStaff();
        expect(res.status, JSON.stringify(res.body)).toBe(200);
      } finally {
        expect(
          (await server.request('PATCH', '/v1/sites/default', { body: { adHocCashOrders: false } })).status,
        ).toBe(200);
      }
    });

    it('an existing CREATED order with a different total → 409 CONFLICT, no session opened', async () => {
      const site = await cashSite();
      const o = await order250(site);
      expectError(await init(site.kiosk.key, o.orderNumber, 200), 409, 'CONFLICT');
      expectError(await init(site.kiosk.key, o.orderNumber, 250.01), 409, 'CONFLICT');
      expectError(await status(site.kiosk.key, o.orderNumber), 404, 'NOT_FOUND');
      const active = await server.request('GET', '/api/cash-payment/active-sessions', key(site.kiosk.key));
      expect(active.body).toEqual({ success: true, count: 0, sessions: [] });
    });

    it('init twice → the same session; from the cash unit of the site too', async () => {
      const site = await cashSite();
      const o = await order250(site);
      const first = await init(site.kiosk.key, o.orderNumber, 250);
      expect(first.status).toBe(200);
      expect((await update(site.kiosk.key, { orderNumber: o.orderNumber, amountAdded: 20 })).status).toBe(
        200,
      );
      const second = await init(site.kiosk.key, o.orderNumber, 250);
      expect(second.body).toMatchObject({
        sessionId: first.body.sessionId,
        amountInserted: 20,
        remainingAmount: 230,
        status: 'PENDING',
      });
      const third = await init(site.cashUnit.key, o.orderNumber, 250);
      expect(third.body.sessionId).toBe(first.body.sessionId);
      const concurrent = await Promise.all([1, 2, 3, 4].map(() => init(site.kiosk.key, o.orderNumber, 250)));
      expect(new Set(concurrent.map((r) => r.body.sessionId))).toEqual(new Set([first.body.sessionId]));
    });

    it('concurrent inits of a new order number → one order, one session', async () => {
      const site = await cashSite({ adHoc: true }); // opens sessions for order numbers the server has not seen
      const orderNumber = uid('RACE-');
      const results = await Promise.all([1, 2, 3, 4, 5].map(() => init(site.kiosk.key, orderNumber, 42)));
      for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(new Set(results.map((r) => r.body.sessionId)).size).toBe(1);
      const orders = (await server.request('GET', '/v1/orders?limit=200')).body.items.filter(
        (x: any) => x.orderNumber === orderNumber,
      );
      expect(orders).toHaveLength(1);
    });

    // The loser of the create race used to carry on with the winner's order whatever its total.
    it('concurrent inits of a new order number with different totals → one 200 at its total, the other 409 CONFLICT', async () => {
      const site = await cashSite({ adHoc: true }); // opens sessions for order numbers the server has not seen
      for (let round = 0; round < 10; round++) {
        const orderNumber = uid('RACE2-');
        const [a, b] = await Promise.all([
          init(site.kiosk.key, orderNumber, 100),
          init(site.kiosk.key, orderNumber, 250),
        ]);
        const [won, lost, asked] = a.status === 200 ? [a, b, 100] : [b, a, 250];
        expect(won.status, JSON.stringify(won.body)).toBe(200);
        expect(won.body.totalRequired).toBe(asked);
        expectError(lost, 409, 'CONFLICT');
        expect(lost.body.error.message).toContain(`totals ${asked}.00, not ${350 - asked}.00`);
        const active = await server.request('GET', '/api/cash-payment/active-sessions', key(site.kiosk.key));
        const sessions = active.body.sessions.filter((x: any) => x.orderNumber === orderNumber);
        expect(sessions).toEqual([expect.objectContaining({ totalRequired: asked })]);
      }
    });

    it('bad init bodies → 400; an order already paid → 409 INVALID_STATE; another site’s order → 404', async () => {
      const site = await cashSite();
      const other = await cashSite();
      for (const totalAmount of [0, -1, 10.005, '10', null]) {
        expectError(
          await server.request('POST', '/api/cash-payment/init', {
            ...key(site.kiosk.key),
            body: { orderNumber: uid('BAD-'), totalAmount },
          }),
          400,
          'VALIDATION_FAILED',
        );
      }
      expectError(
        await server.request('POST', '/api/cash-payment/init', {
          ...key(site.kiosk.key),
          body: { orderNumber: 'x y', totalAmount: 1 },
        }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await server.request('POST', '/api/cash-payment/init', {
          ...key(site.kiosk.key),
          body: { orderNumber: 'ok', totalAmount: 1, extra: 1 },
        }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await server.request('POST', '/api/cash-payment/init', {
          token: null,
          body: { orderNumber: 'ok', totalAmount: 1 },
        }),
        401,
        'UNAUTHORIZED',
      );

      const o = await order250(site);
      expectError(await init(other.kiosk.key, o.orderNumber, 250), 404, 'NOT_FOUND');
      await init(site.kiosk.key, o.orderNumber, 250);
      expect(
        (await update(site.kiosk.key, { orderNumber: o.orderNumber, amountAdded: 250 })).body.status,
      ).toBe('PAID');
      expectError(await init(site.kiosk.key, o.orderNumber, 250), 409, 'INVALID_STATE');
    });
  });

  it('active-sessions: the caller’s site only, oldest first, with what was inserted', async () => {
    const site = await cashSite();
    const other = await cashSite();
    const a = await order250(site);
    const b = await order250(site);
    const c = await order250(site);
    const elsewhere = await order250(other);
    for (const o of [a, b, c]) expect((await init(site.kiosk.key, o.orderNumber, 250)).status).toBe(200);
    expect((await init(other.kiosk.key, elsewhere.orderNumber, 250)).status).toBe(200);
    await update(site.cashUnit.key, { orderNumber: b.orderNumber, amountAdded: 100 });
    await update(site.kiosk.key, { orderNumber: c.orderNumber, amountAdded: 250 }); // paid: no longer active

    for (const k of [site.kiosk.key, site.cashUnit.key]) {
      const res = await server.request('GET', '/api/cash-payment/active-sessions', key(k));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        success: true,
        count: 2,
        sessions: [
          expect.objectContaining({
            orderNumber: a.orderNumber,
            totalRequired: 250,
            amountInserted: 0,
            remainingAmount: 250,
            startedAt: expect.any(String),
          }),
          expect.objectContaining({
            orderNumber: b.orderNumber,
            totalRequired: 250,
            amountInserted: 100,
            remainingAmount: 150,
            startedAt: expect.any(String),
          }),
        ],
      });
      expect(res.body.sessions[0].startedAt <= res.body.sessions[1].startedAt).toBe(true);
    }
    const theirs = await server.request('GET', '/api/cash-payment/active-sessions', key(other.kiosk.key));
    expect(theirs.body.sessions.map((s: any) => s.orderNumber)).toEqual([elsewhere.orderNumber]);
    expectError(
      await server.request('GET', '/api/cash-payment/active-sessions', { token: null }),
      401,
      'UNAUTHORIZED',
    );
  });

  describe('update', () => {
    it('remaining, change on overpayment, isComplete and status PAID', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      const r1 = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 100,
        kind: 'BILL',
        eventId: uid('ev'),
      });
      expect(r1.status, JSON.stringify(r1.body)).toBe(200);
      expect(r1.body).toEqual({
        success: true,
        orderNumber: o.orderNumber,
        amountInserted: 100,
        totalRequired: 250,
        remainingAmount: 150,
        isComplete: false,
        change: 0,
        status: 'PENDING',
      });
      const r2 = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 0.25,
        kind: 'COIN',
        eventId: uid('ev'),
      });
      expect(r2.body).toMatchObject({
        amountInserted: 100.25,
        remainingAmount: 149.75,
        isComplete: false,
        change: 0,
        status: 'PENDING',
      });
      const r3 = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 500,
        kind: 'BILL',
        eventId: uid('ev'),
      });
      expect(r3.body).toEqual({
        success: true,
        orderNumber: o.orderNumber,
        amountInserted: 600.25,
        totalRequired: 250,
        remainingAmount: 0,
        isComplete: true,
        change: 350.25,
        status: 'PAID',
      });
      const st = await status(site.kiosk.key, o.orderNumber);
      expect(st.body).toMatchObject({
        success: true,
        amountInserted: 600.25,
        totalRequired: 250,
        remainingAmount: 0,
        change: 350.25,
        status: 'PAID',
        completedAt: expect.any(String),
      });
    });

    it('exact payment in many coins: change 0', async () => {
      const site = await cashSite({ adHoc: true }); // opens sessions for order numbers the server has not seen
      const orderNumber = uid('EX-');
      await init(site.kiosk.key, orderNumber, 1.1);
      for (let i = 0; i < 10; i++) {
        const r = await update(site.cashUnit.key, { orderNumber, amountAdded: 0.1, kind: 'COIN' });
        expect(r.status).toBe(200);
        expect(r.body.status).toBe('PENDING');
      }
      const last = await update(site.cashUnit.key, { orderNumber, amountAdded: 0.1, kind: 'COIN' });
      expect(last.body).toMatchObject({
        amountInserted: 1.1,
        remainingAmount: 0,
        change: 0,
        isComplete: true,
        status: 'PAID',
      });
    });

    it('a retried insert with the same eventId counts once', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      const eventId = uid('bill-');
      const first = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 100,
        eventId,
        kind: 'BILL',
      });
      expect(first.body.amountInserted).toBe(100);
      for (let i = 0; i < 3; i++) {
        const again = await update(site.cashUnit.key, {
          orderNumber: o.orderNumber,
          amountAdded: 100,
          eventId,
          kind: 'BILL',
        });
        expect(again.status).toBe(200);
        expect(again.body).toMatchObject({ amountInserted: 100, remainingAmount: 150, status: 'PENDING' });
      }
      // The same eventId from the kiosk's key (same site) is the same bill.
      expect(
        (await update(site.kiosk.key, { orderNumber: o.orderNumber, amountAdded: 100, eventId })).body
          .amountInserted,
      ).toBe(100);
      expect((await status(site.kiosk.key, o.orderNumber)).body.amountInserted).toBe(100);
    });

    it('concurrent inserts with different eventIds → the total is exactly their sum', async () => {
      const site = await cashSite({ adHoc: true }); // opens sessions for order numbers the server has not seen
      const orderNumber = uid('CC-');
      await init(site.kiosk.key, orderNumber, 1000);
      const amounts = [20, 50, 100, 0.25, 1, 5, 10, 200, 0.5, 20, 50, 100];
      const results = await Promise.all(
        amounts.map((amountAdded, i) =>
          update(i % 2 ? site.kiosk.key : site.cashUnit.key, {
            orderNumber,
            amountAdded,
            eventId: `${orderNumber}-e${i}`,
          }),
        ),
      );
      for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(200);
      const sum = amounts.reduce((a, b) => a + b, 0);
      expect(Math.max(...results.map((r) => r.body.amountInserted as number))).toBe(sum);
      expect((await status(site.kiosk.key, orderNumber)).body).toMatchObject({
        amountInserted: sum,
        remainingAmount: 1000 - sum,
        status: 'PENDING',
      });
    });

    it.runIf(engine === 'postgres')(
      'an init that waited for the order while its last bill was paid sees it paid: no second session',
      async () => {
        const site = await cashSite();
        const o = await order250(site);
        await init(site.kiosk.key, o.orderNumber, 250);
        await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 200, eventId: uid('e') });
        // Hold the order's row, so that the last bill and a repeated init both wait for it, in that order.
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const holder = server.kioskhub.db.transaction().execute(async (tx) => {
          await sql`select id from orders where id = ${o.id} for update`.execute(tx);
          locked();
          await held;
        });
        await isLocked;
        const lastBill = update(site.cashUnit.key, {
          orderNumber: o.orderNumber,
          amountAdded: 50,
          eventId: uid('e'),
        });
        await new Promise((r) => setTimeout(r, 300));
        const again = init(site.kiosk.key, o.orderNumber, 250);
        await new Promise((r) => setTimeout(r, 300));
        release();
        await holder;
        expect((await lastBill).body).toMatchObject({ isComplete: true });
        expectError(await again, 409, 'INVALID_STATE');
        // Money after that is kept for staff, never a second settlement.
        const extra = await update(site.cashUnit.key, {
          orderNumber: o.orderNumber,
          amountAdded: 250,
          eventId: uid('e'),
        });
        expectError(extra, 409, 'INVALID_STATE');
        expect(await unallocatedFor(o.orderNumber)).toHaveLength(1);
        expect(await jobsFor(site.siteId, o.id)).toHaveLength(1);
      },
    );

    it('concurrent inserts across completion: paid once, the rest recorded as unallocated, nothing lost', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          update(site.cashUnit.key, {
            orderNumber: o.orderNumber,
            amountAdded: 50,
            eventId: `${o.orderNumber}-p${i}`,
          }),
        ),
      );
      const ok = results.filter((r) => r.status === 200);
      const late = results.filter((r) => r.status !== 200);
      expect(ok).toHaveLength(5);
      expect(ok.filter((r) => r.body.isComplete)).toHaveLength(1);
      expect(late).toHaveLength(3);
      for (const r of late) expectError(r, 409, 'INVALID_STATE');
      expect((await status(site.kiosk.key, o.orderNumber)).body).toMatchObject({
        amountInserted: 250,
        status: 'PAID',
        change: 0,
      });
      const parked = await unallocatedFor(o.orderNumber);
      expect(parked).toHaveLength(3);
      expect(parked.every((u) => u.reason === 'SESSION_PAID' && u.amount === 50)).toBe(true);
      expect((await orderOf(o.id)).status).toBe('PAID');
      expect(await stockOf(site.burger)).toBe(9);
      expect(await jobsFor(site.siteId, o.id)).toHaveLength(1);
    });

    it('concurrent duplicates of the same eventId → counted once', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      const eventId = uid('dup-');
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          update(i % 2 ? site.kiosk.key : site.cashUnit.key, {
            orderNumber: o.orderNumber,
            amountAdded: 100,
            eventId,
          }),
        ),
      );
      for (const r of results) {
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        expect(r.body.amountInserted).toBe(100);
      }
      expect((await status(site.kiosk.key, o.orderNumber)).body.amountInserted).toBe(100);
    });

    it('concurrent duplicates of the same eventId for an unknown order → recorded once', async () => {
      const site = await cashSite();
      const orderNumber = uid('GHOST-');
      const eventId = uid('ghost-ev-');
      const results = await Promise.all(
        Array.from({ length: 6 }, () => update(site.cashUnit.key, { orderNumber, amountAdded: 20, eventId })),
      );
      for (const r of results) expectError(r, 404, 'NOT_FOUND');
      expect(await unallocatedFor(orderNumber)).toHaveLength(1);
    });

    it('an eventId already used for another order is a new bill for this order: counted here, repeats count once', async () => {
      // A reader whose event counter restarted (firmware reset) sends ids it used for earlier orders.
      const site = await cashSite();
      const a = await order250(site);
      const b = await order250(site);
      await init(site.kiosk.key, a.orderNumber, 250);
      await init(site.kiosk.key, b.orderNumber, 250);
      const eventId = uid('reset-');
      const forA = await update(site.cashUnit.key, { orderNumber: a.orderNumber, amountAdded: 100, eventId });
      expect(forA.body).toMatchObject({ orderNumber: a.orderNumber, amountInserted: 100 });

      const forB = await update(site.cashUnit.key, { orderNumber: b.orderNumber, amountAdded: 50, eventId });
      expect(forB.status, JSON.stringify(forB.body)).toBe(200);
      expect(forB.body).toMatchObject({
        orderNumber: b.orderNumber,
        amountInserted: 50,
        remainingAmount: 200,
        status: 'PENDING',
      });
      // Each order's own retry of that eventId is a duplicate of its own bill, and only of it.
      for (const [o, inserted] of [
        [b, 50],
        [a, 100],
      ] as const) {
        const again = await update(site.cashUnit.key, {
          orderNumber: o.orderNumber,
          amountAdded: 999,
          eventId,
        });
        expect(again.body).toMatchObject({ orderNumber: o.orderNumber, amountInserted: inserted });
        expect((await status(site.kiosk.key, o.orderNumber)).body.amountInserted).toBe(inserted);
      }
      // The same reused id for two fresh orders at once: both bills count, each once.
      const [c, d] = [await order250(site), await order250(site)];
      await init(site.kiosk.key, c.orderNumber, 250);
      await init(site.kiosk.key, d.orderNumber, 250);
      const both = await Promise.all(
        [c, d, c, d].map((o) =>
          update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 20, eventId }),
        ),
      );
      for (const r of both) expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect((await status(site.kiosk.key, c.orderNumber)).body.amountInserted).toBe(20);
      expect((await status(site.kiosk.key, d.orderNumber)).body.amountInserted).toBe(20);
      for (const o of [a, b, c, d]) expect(await unallocatedFor(o.orderNumber)).toEqual([]);

      // Another site's reader with the same id for order A: its money, recorded there (WRONG_SITE);
      // never answered with A's session.
      const other = await cashSite();
      for (let i = 0; i < 2; i++) {
        const stray = await update(other.cashUnit.key, {
          orderNumber: a.orderNumber,
          amountAdded: 20,
          eventId,
        });
        expectError(stray, 404, 'NOT_FOUND');
        expect(stray.body.error.details).toMatchObject({ recordedAmount: 20, reason: 'WRONG_SITE' });
      }
      expect(await unallocatedFor(a.orderNumber)).toEqual([
        expect.objectContaining({ machineId: other.cashUnit.id, amount: 20, eventId, reason: 'WRONG_SITE' }),
      ]);
      expect((await status(site.kiosk.key, a.orderNumber)).body.amountInserted).toBe(100);
    });

    it('an eventId recorded as unallocated for one order is not a duplicate for another order', async () => {
      const site = await cashSite();
      const ghost = uid('GONE-');
      const eventId = uid('reused-');
      const parked = await update(site.cashUnit.key, { orderNumber: ghost, amountAdded: 20, eventId });
      expectError(parked, 404, 'NOT_FOUND');

      // The same id for a real order's open session: that order's money, counted there.
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      const counted = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 100,
        eventId,
      });
      expect(counted.status, JSON.stringify(counted.body)).toBe(200);
      expect(counted.body).toMatchObject({ orderNumber: o.orderNumber, amountInserted: 100 });

      // And for a second unknown order: recorded for that order, not answered with the first one's item.
      const ghost2 = uid('GONE-');
      const second = await update(site.cashUnit.key, { orderNumber: ghost2, amountAdded: 50, eventId });
      expectError(second, 404, 'NOT_FOUND');
      expect(second.body.error.details).toMatchObject({
        orderNumber: ghost2,
        recordedAmount: 50,
        reason: 'UNKNOWN_ORDER',
      });
      // Retries answer what was recorded for their own order, once each.
      const retried = await update(site.cashUnit.key, { orderNumber: ghost2, amountAdded: 50, eventId });
      expect(retried.body.error.details).toMatchObject({ orderNumber: ghost2, recordedAmount: 50 });
      expect(await unallocatedFor(ghost)).toEqual([expect.objectContaining({ amount: 20, eventId })]);
      expect(await unallocatedFor(ghost2)).toEqual([expect.objectContaining({ amount: 50, eventId })]);
      expect(await unallocatedFor(o.orderNumber)).toEqual([]);

      // An id counted in a session, reused for an unknown order: recorded as unallocated, not dropped.
      const ghost3 = uid('GONE-');
      const late = await update(site.cashUnit.key, { orderNumber: ghost3, amountAdded: 10, eventId });
      expectError(late, 404, 'NOT_FOUND');
      expect(late.body.error.details).toMatchObject({ orderNumber: ghost3, recordedAmount: 10 });
      expect(await unallocatedFor(ghost3)).toEqual([expect.objectContaining({ amount: 10, eventId })]);
      expect((await status(site.kiosk.key, o.orderNumber)).body.amountInserted).toBe(100);
    });

    it('after PAID and after CANCELLED → 409 INVALID_STATE with the recorded amount, listed as unallocated', async () => {
      const site = await cashSite();
      const paid = await order250(site);
      await init(site.kiosk.key, paid.orderNumber, 250);
      expect(
        (await update(site.cashUnit.key, { orderNumber: paid.orderNumber, amountAdded: 250 })).body.status,
      ).toBe('PAID');
      const lateEvent = uid('late-');
      const late = await update(site.cashUnit.key, {
        orderNumber: paid.orderNumber,
        amountAdded: 20,
        eventId: lateEvent,
        kind: 'BILL',
      });
      expectError(late, 409, 'INVALID_STATE');
      expect(late.body.error.details).toMatchObject({
        recordedAmount: 20,
        amountMinor: 2_000,
        currency: 'PHP',
        reason: 'SESSION_PAID',
        orderNumber: paid.orderNumber,
      });
      // A retry of that late bill answers the same and is not recorded twice.
      const retried = await update(site.cashUnit.key, {
        orderNumber: paid.orderNumber,
        amountAdded: 20,
        eventId: lateEvent,
        kind: 'BILL',
      });
      expectError(retried, 409, 'INVALID_STATE');
      expect(retried.body.error.details).toMatchObject({ recordedAmount: 20, reason: 'SESSION_PAID' });

      const cancelled = await order250(site);
      await init(site.kiosk.key, cancelled.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: cancelled.orderNumber, amountAdded: 100 });
      expect(
        (
          await server.request(
            'POST',
            `/api/cash-payment/cancel/${cancelled.orderNumber}`,
            key(site.kiosk.key),
          )
        ).status,
      ).toBe(200);
      const afterCancel = await update(site.cashUnit.key, {
        orderNumber: cancelled.orderNumber,
        amountAdded: 50,
      });
      expectError(afterCancel, 409, 'INVALID_STATE');
      expect(afterCancel.body.error.details).toMatchObject({
        recordedAmount: 50,
        amountMinor: 5_000,
        reason: 'SESSION_CANCELLED',
      });
      expect((await status(site.kiosk.key, cancelled.orderNumber)).body).toMatchObject({
        amountInserted: 100,
        status: 'CANCELLED',
      });

      expect(await unallocatedFor(paid.orderNumber)).toEqual([
        expect.objectContaining({
          id: expect.any(String),
          machineId: site.cashUnit.id,
          orderNumber: paid.orderNumber,
          amount: 20,
          amountMinor: 2_000,
          currency: 'PHP',
          reason: 'SESSION_PAID',
          recordedAt: expect.any(String),
        }),
      ]);
      expect(await unallocatedFor(cancelled.orderNumber)).toEqual([
        expect.objectContaining({
          machineId: site.cashUnit.id,
          amount: 50,
          amountMinor: 5_000,
          reason: 'SESSION_CANCELLED',
        }),
      ]);
      const alerts = (await server.request('GET', '/v1/alerts?limit=200')).body.items;
      expect(
        alerts.some((a: any) => a.kind === 'UNALLOCATED_CASH' && a.message.includes(paid.orderNumber)),
      ).toBe(true);
    });

    it('an unknown order → 404 NOT_FOUND, recorded as unallocated', async () => {
      const site = await cashSite();
      const orderNumber = uid('NOPE-');
      const res = await update(site.cashUnit.key, {
        orderNumber,
        amountAdded: 100,
        kind: 'BILL',
        eventId: uid('nope-'),
      });
      expectError(res, 404, 'NOT_FOUND');
      expect(res.body.error.details).toMatchObject({
        recordedAmount: 100,
        amountMinor: 10_000,
        reason: 'UNKNOWN_ORDER',
      });
      expect(await unallocatedFor(orderNumber)).toEqual([
        expect.objectContaining({
          machineId: site.cashUnit.id,
          amount: 100,
          amountMinor: 10_000,
          currency: 'PHP',
          reason: 'UNKNOWN_ORDER',
        }),
      ]);
      // An order that exists but has no open session: recorded too (409, the order is known).
      const o = await order250(site);
      const noSession = await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 20 });
      expectError(noSession, 409, 'INVALID_STATE');
      expect(noSession.body.error.details).toMatchObject({ recordedAmount: 20, reason: 'NO_OPEN_SESSION' });
      expect(await unallocatedFor(o.orderNumber)).toEqual([
        expect.objectContaining({ amount: 20, reason: 'NO_OPEN_SESSION' }),
      ]);
    });

    it('bad amounts → 400 and nothing is recorded', async () => {
      const site = await cashSite({ adHoc: true }); // opens sessions for order numbers the server has not seen
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 20 });
      const ghost = uid('GH-');
      const bad: unknown[] = [
        0,
        -0.01,
        -100,
        '100',
        'abc',
        'NaN',
        10.005,
        0.001,
        1e-7,
        100_000.01,
        100_001,
        1e21,
        Number.MAX_SAFE_INTEGER,
        null,
        true,
        [],
        {},
      ];
      for (const [i, amountAdded] of bad.entries()) {
        for (const orderNumber of [o.orderNumber, ghost]) {
          const res = await update(site.cashUnit.key, {
            orderNumber,
            amountAdded,
            eventId: `bad-${orderNumber}-${i}`,
          });
          expectError(res, 400, 'VALIDATION_FAILED');
        }
      }
      for (const raw of [
        `{"orderNumber":"${o.orderNumber}","amountAdded":NaN}`,
        `{"orderNumber":"${o.orderNumber}","amountAdded":1e400}`,
        `{"orderNumber":"${o.orderNumber}","amountAdded":-1e400}`,
        `{"orderNumber":"${o.orderNumber}","amountAdded":Infinity}`,
        `{"orderNumber":"${o.orderNumber}"}`,
      ]) {
        expectError(
          await server.request('POST', '/api/cash-payment/update', { ...key(site.cashUnit.key), raw }),
          400,
          'VALIDATION_FAILED',
        );
      }
      expectError(
        await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 10, kind: 'CARD' }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 10, tip: 1 }),
        400,
        'VALIDATION_FAILED',
      );
      expect((await status(site.kiosk.key, o.orderNumber)).body).toMatchObject({
        amountInserted: 20,
        remainingAmount: 230,
        status: 'PENDING',
      });
      expect(await unallocatedFor(o.orderNumber)).toEqual([]);
      expect(await unallocatedFor(ghost)).toEqual([]);
      // The rejected eventIds were not consumed: a valid bill under one of them counts.
      const valid = await update(site.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 100,
        eventId: `bad-${o.orderNumber}-0`,
      });
      expect(valid.body.amountInserted).toBe(120);
      // The limits themselves are accepted.
      const big = uid('BIG-');
      await init(site.kiosk.key, big, 200_000);
      expect(
        (await update(site.cashUnit.key, { orderNumber: big, amountAdded: 100_000 })).body.amountInserted,
      ).toBe(100_000);
      expect(
        (await update(site.cashUnit.key, { orderNumber: big, amountAdded: 0.01 })).body.amountInserted,
      ).toBe(100_000.01);
    });

    it('keys of another site are not applied to this site’s session (404, recorded as WRONG_SITE)', async () => {
      const site = await cashSite();
      const other = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 100 });
      const res = await update(other.cashUnit.key, {
        orderNumber: o.orderNumber,
        amountAdded: 200,
        eventId: uid('ws-'),
      });
      expectError(res, 404, 'NOT_FOUND');
      expect(res.body.error.details).toMatchObject({ recordedAmount: 200, reason: 'WRONG_SITE' });
      expect((await status(site.kiosk.key, o.orderNumber)).body).toMatchObject({
        amountInserted: 100,
        remainingAmount: 150,
        status: 'PENDING',
      });
      expect(await unallocatedFor(o.orderNumber)).toEqual([
        expect.objectContaining({ machineId: other.cashUnit.id, amount: 200, reason: 'WRONG_SITE' }),
      ]);
      // Nor can the other site read or cancel it.
      expectError(await status(other.kiosk.key, o.orderNumber), 404, 'NOT_FOUND');
      expectError(
        await server.request('POST', `/api/cash-payment/cancel/${o.orderNumber}`, key(other.kiosk.key)),
        404,
        'NOT_FOUND',
      );
      expect((await status(site.kiosk.key, o.orderNumber)).body.status).toBe('PENDING');
      expect((await orderOf(o.id)).status).toBe('CREATED');
    });

    it('only device keys may report cash (staff → 403, none → 401)', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      expectError(
        await server.request('POST', '/api/cash-payment/update', {
          token: staffToken,
          body: { orderNumber: o.orderNumber, amountAdded: 10 },
        }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/api/cash-payment/update', {
          token: null,
          body: { orderNumber: o.orderNumber, amountAdded: 10 },
        }),
        401,
        'UNAUTHORIZED',
      );
      expect((await status(site.kiosk.key, o.orderNumber)).body.amountInserted).toBe(0);
    });

    it('a printer’s, vending machine’s or water kiosk’s key of the same site may not touch cash (403, nothing recorded)', async () => {
      const site = await cashSite();
      const o = await order250(site);
      const fresh = uid('NEW');
      await init(site.kiosk.key, o.orderNumber, 250);
      for (const kind of ['printer', 'vending', 'water']) {
        const other = await server.createMachine(uid(kind.toUpperCase()), { kind, siteId: site.siteId });
        const refused = [
          await update(other.key, { orderNumber: o.orderNumber, amountAdded: 100, eventId: uid('ev') }),
          await update(other.key, { orderNumber: fresh, amountAdded: 100 }),
          await init(other.key, fresh, 10),
          await status(other.key, o.orderNumber),
          await server.request('GET', '/api/cash-payment/active-sessions', key(other.key)),
          await server.request('POST', `/api/cash-payment/cancel/${o.orderNumber}`, key(other.key)),
        ];
        for (const res of refused) {
          expectError(res, 403, 'FORBIDDEN');
          expect(res.body.error.message).toContain(
            `is a ${kind}: this route takes the key of a kiosk or cash`,
          );
        }
      }
      expect((await status(site.kiosk.key, o.orderNumber)).body).toMatchObject({
        amountInserted: 0,
        status: 'PENDING',
      });
      expect((await orderOf(o.id)).status).toBe('CREATED');
      expect(await unallocatedFor(o.orderNumber)).toEqual([]);
      expect(await unallocatedFor(fresh)).toEqual([]);
      // The site's own cash unit is still welcome.
      expect((await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 50 })).status).toBe(
        200,
      );
    });
  });

  describe('cancel', () => {
    it('POST /cancel/:orderNumber and POST /cancel {orderNumber} → CANCELLED, amountReturned = inserted, order CANCELLED', async () => {
      const site = await cashSite();
      const a = await order250(site);
      await init(site.kiosk.key, a.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: a.orderNumber, amountAdded: 100 });
      await update(site.cashUnit.key, { orderNumber: a.orderNumber, amountAdded: 20 });
      const byPath = await server.request(
        'POST',
        `/api/cash-payment/cancel/${a.orderNumber}`,
        key(site.kiosk.key),
      );
      expect(byPath.status, JSON.stringify(byPath.body)).toBe(200);
      expect(byPath.body).toEqual({
        success: true,
        orderNumber: a.orderNumber,
        amountReturned: 120,
        status: 'CANCELLED',
      });
      expect((await orderOf(a.id)).status).toBe('CANCELLED');
      expect((await status(site.kiosk.key, a.orderNumber)).body).toMatchObject({
        status: 'CANCELLED',
        amountInserted: 120,
      });
      // Cancelling again answers the same.
      expect(
        (await server.request('POST', `/api/cash-payment/cancel/${a.orderNumber}`, key(site.kiosk.key))).body,
      ).toEqual(byPath.body);

      const b = await order250(site);
      await init(site.kiosk.key, b.orderNumber, 250);
      const byBody = await server.request('POST', '/api/cash-payment/cancel', {
        ...key(site.cashUnit.key),
        body: { orderNumber: b.orderNumber },
      });
      expect(byBody.body).toEqual({
        success: true,
        orderNumber: b.orderNumber,
        amountReturned: 0,
        status: 'CANCELLED',
      });
      expect((await orderOf(b.id)).status).toBe('CANCELLED');

      const c = await order250(site);
      await init(site.kiosk.key, c.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: c.orderNumber, amountAdded: 50 });
      const byStaff = await server.request('POST', '/api/cash-payment/cancel', {
        token: staffToken,
        body: { orderNumber: c.orderNumber },
      });
      expect(byStaff.body).toMatchObject({ amountReturned: 50, status: 'CANCELLED' });
      expect(await stockOf(site.burger)).toBe(10);
      const active = await server.request('GET', '/api/cash-payment/active-sessions', key(site.kiosk.key));
      expect(active.body.count).toBe(0);
    });

    it('a paid session cannot be cancelled (409); an unknown one → 404', async () => {
      const site = await cashSite();
      const o = await order250(site);
      await init(site.kiosk.key, o.orderNumber, 250);
      await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 300 });
      expectError(
        await server.request('POST', `/api/cash-payment/cancel/${o.orderNumber}`, key(site.kiosk.key)),
        409,
        'INVALID_STATE',
      );
      expect((await orderOf(o.id)).status).toBe('PAID');
      expectError(
        await server.request('POST', `/api/cash-payment/cancel/${uid('NONE-')}`, key(site.kiosk.key)),
        404,
        'NOT_FOUND',
      );
      expectError(
        await server.request('POST', '/api/cash-payment/cancel', { ...key(site.kiosk.key), body: {} }),
        400,
        'VALIDATION_FAILED',
      );
    });
  });

  it('status: device key, staff token, or the orderToken from init; another order’s token → 403', async () => {
    const site = await cashSite();
    const o = await order250(site);
    const other = await order250(site);
    const opened = await init(site.kiosk.key, o.orderNumber, 250);
    const otherOpened = await init(site.kiosk.key, other.orderNumber, 250);
    await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 100 });
    const expected = {
      success: true,
      orderNumber: o.orderNumber,
      amountInserted: 100,
      totalRequired: 250,
      remainingAmount: 150,
      change: 0,
      status: 'PENDING',
      startedAt: expect.any(String),
      completedAt: null,
      currency: 'PHP',
    };
    expect((await status(site.kiosk.key, o.orderNumber)).body).toEqual(expected);
    expect((await status(site.cashUnit.key, o.orderNumber)).body).toEqual(expected);
    expect(
      (await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, { token: staffToken })).body,
    ).toEqual(expected);
    const viaToken = await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, {
      token: opened.body.orderToken,
    });
    expect(viaToken.status).toBe(200);
    expect(viaToken.body).toEqual(expected);
    expectError(
      await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, {
        token: otherOpened.body.orderToken,
      }),
      403,
      'FORBIDDEN',
    );
    expectError(
      await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, { token: null }),
      401,
      'UNAUTHORIZED',
    );
    expectError(
      await server.request('GET', `/api/cash-payment/status/${o.orderNumber}`, {
        token: `${opened.body.orderToken}x`,
      }),
      401,
      'UNAUTHORIZED',
    );
    // An order token is not a staff token.
    expectError(
      await server.request('GET', '/v1/orders', { token: opened.body.orderToken }),
      401,
      'UNAUTHORIZED',
    );
  });

  it('on PAID: order PAID, stock down, receipt queued; live events for the customer screen and the kitchen', async () => {
    const site = await cashSite();
    const o = await order250(site);
    const opened = await init(site.kiosk.key, o.orderNumber, 250);
    expect(opened.status).toBe(200);

    const customer = await openLive({ orderToken: opened.body.orderToken }, `order:${o.orderNumber}`);
    const customerSeen = record(customer, 'cash_session_updated', 'payment_completed', 'kitchen_order_ready');
    // The customer screen's token opens its own order room only.
    expect(
      await customer.timeout(5_000).emitWithAck('subscribe', { room: `kitchen:${site.siteId}` }),
    ).toMatchObject({ ok: false });
    const kitchen = await openLive({ token: staffToken }, `kitchen:${site.siteId}`);
    const kitchenSeen = record(kitchen, 'order_created', 'kitchen_order_ready');

    const r1 = await update(site.cashUnit.key, {
      orderNumber: o.orderNumber,
      amountAdded: 100,
      eventId: uid('lv-'),
      kind: 'BILL',
    });
    expect(r1.body.status).toBe('PENDING');
    const first = await eventually(
      () => customerSeen['cash_session_updated']!.find((e) => e.amountInserted === 100),
      10_000,
      'cash_session_updated after ₱100',
    );
    expect(first).toMatchObject({
      tenantId: 'default',
      orderId: o.id,
      orderNumber: o.orderNumber,
      status: 'PENDING',
      totalRequired: 250,
      remainingAmount: 150,
    });
    expect(await jobsFor(site.siteId, o.id)).toEqual([]);
    expect((await orderOf(o.id)).status).toBe('CREATED');

    const r2 = await update(site.cashUnit.key, {
      orderNumber: o.orderNumber,
      amountAdded: 200,
      eventId: uid('lv-'),
      kind: 'BILL',
    });
    expect(r2.body).toMatchObject({ status: 'PAID', change: 50, isComplete: true });
    const second = await eventually(
      () => customerSeen['cash_session_updated']!.find((e) => e.amountInserted === 300),
      10_000,
      'cash_session_updated after ₱300',
    );
    expect(second).toMatchObject({ status: 'PAID', change: 50, remainingAmount: 0 });
    const completed = await eventually(
      () => customerSeen['payment_completed']![0],
      10_000,
      'payment_completed',
    );
    expect(completed).toMatchObject({
      tenantId: 'default',
      orderId: o.id,
      orderNumber: o.orderNumber,
      method: 'cash',
      amountPaid: 300,
      change: 50,
    });
    const created = await eventually(
      () => kitchenSeen['order_created']!.find((e) => e.orderId === o.id),
      10_000,
      'order_created on the kitchen room',
    );
    expect(created).toMatchObject({
      tenantId: 'default',
      orderNumber: o.orderNumber,
      siteId: site.siteId,
      status: 'PAID',
      amount: 25_000,
      currency: 'PHP',
    });
    expect(created.items).toEqual([
      expect.objectContaining({ sku: site.burger, qty: 1 }),
      expect.objectContaining({ sku: site.cola, qty: 2 }),
    ]);

    expect(await orderOf(o.id)).toMatchObject({ status: 'PAID', paidAt: expect.any(String) });
    expect(await stockOf(site.burger)).toBe(9);
    expect(await stockOf(site.cola)).toBeNull();
    const jobs = await jobsFor(site.siteId, o.id);
    expect(jobs).toEqual([expect.objectContaining({ status: 'PENDING', siteId: site.siteId })]);
    const next = await server.request('GET', '/api/receipt/queue/next', key(site.kiosk.key));
    expect(next.body.receipt).toMatchObject({
      orderNumber: o.orderNumber,
      totalAmount: 250,
      amountPaid: 300,
      change: 50,
      paymentMethod: 'Cash',
    });
    const kitchenList = await server.request('GET', `/v1/kitchen/${site.siteId}/orders`, {
      token: staffToken,
    });
    expect(kitchenList.body.items.map((x: any) => x.id)).toEqual([o.id]);

    // The kitchen marks it ready: kitchen_order_ready to the kitchen and to the customer screen.
    const ready = await server.request('POST', `/v1/orders/${o.id}/ready`, { token: staffToken, body: {} });
    expect(ready.status, JSON.stringify(ready.body)).toBe(200);
    expect(ready.body.status).toBe('COMPLETED');
    const readyEvent = await eventually(
      () => kitchenSeen['kitchen_order_ready']!.find((e) => e.orderId === o.id),
      10_000,
      'kitchen_order_ready on the kitchen room',
    );
    expect(readyEvent).toMatchObject({
      tenantId: 'default',
      orderNumber: o.orderNumber,
      siteId: site.siteId,
      status: 'COMPLETED',
    });
    await eventually(
      () => customerSeen['kitchen_order_ready']!.length > 0,
      10_000,
      'kitchen_order_ready on the order room',
    );
    expect(
      (await server.request('GET', `/v1/kitchen/${site.siteId}/orders`, { token: staffToken })).body.items,
    ).toEqual([]);
    expectError(
      await server.request('POST', `/v1/orders/${o.id}/ready`, { token: staffToken, body: {} }),
      409,
      'INVALID_STATE',
    );
    // Exactly one payment_completed and one order_created for the order.
    expect(customerSeen['payment_completed']).toHaveLength(1);
    expect(kitchenSeen['order_created']!.filter((e) => e.orderId === o.id)).toHaveLength(1);
  });

  it('a cancelled session is announced to the customer screen', async () => {
    const site = await cashSite();
    const o = await order250(site);
    const opened = await init(site.kiosk.key, o.orderNumber, 250);
    const customer = await openLive({ orderToken: opened.body.orderToken }, `order:${o.orderNumber}`);
    const seen = record(customer, 'cash_session_updated');
    await update(site.cashUnit.key, { orderNumber: o.orderNumber, amountAdded: 100 });
    await server.request('POST', `/api/cash-payment/cancel/${o.orderNumber}`, key(site.kiosk.key));
    const cancelled = await eventually(
      () => seen['cash_session_updated']!.find((e) => e.status === 'CANCELLED'),
      10_000,
      'the CANCELLED update',
    );
    expect(cancelled).toMatchObject({ orderNumber: o.orderNumber, amountInserted: 100 });
    expect(customerSeenNothingFromElsewhere(seen, o.orderNumber)).toBe(true);
  });
});

const customerSeenNothingFromElsewhere = (seen: Record<string, any[]>, orderNumber: string): boolean =>
  Object.values(seen).every((list) => list.every((e) => e.orderNumber === orderNumber));

// ---- hard kill mid-session (SQLite: the embedded database file) ---------------------------------

describe('cash session survives a hard kill (sqlite)', () => {
  it(
    '₱100 inserted, SIGKILL, restart: the status shows ₱100 and a further insert completes it',
    { timeout: 180_000 },
    async () => {
      const dir = tempDir('kioskhub-cash-kill-');
      const env = {
        HOST: '127.0.0.1',
        PORT: String(await freePort()),
        DATA_DIR: dir.path,
        ADMIN_TOKEN,
        LOG_LEVEL: 'warn',
      };
      let proc: ServerProcess | undefined;
      const call = async (
        method: string,
        path: string,
        body?: unknown,
        headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` },
      ) => {
        const res = await fetch(proc!.url + path, {
          method,
          headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : undefined };
      };
      try {
        proc = await startServerProcess(env);
        expect(
          (await call('POST', '/v1/sites', { id: 'killsite', name: 'Kill Site', currency: 'PHP' })).status,
        ).toBe(201);
        expect(
          (
            await call('POST', '/v1/products', {
              sku: 'k-burger',
              name: 'Burger',
              priceMinor: 25_000,
              siteId: 'killsite',
              stock: 5,
            })
          ).status,
        ).toBe(201);
        const kiosk = await call('POST', '/v1/machines', {
          id: 'KILLKIOSK',
          kind: 'kiosk',
          siteId: 'killsite',
        });
        expect(kiosk.status).toBe(201);
        const device = { 'x-api-key': kiosk.body.key as string };
        const order = await call('POST', '/v1/orders', { items: [{ sku: 'k-burger', qty: 1 }] }, device);
        expect(order.status).toBe(201);
        const orderNumber = order.body.orderNumber as string;
        expect(
          (await call('POST', '/api/cash-payment/init', { orderNumber, totalAmount: 250 }, device)).status,
        ).toBe(200);
        const first = await call(
          'POST',
          '/api/cash-payment/update',
          { orderNumber, amountAdded: 100, eventId: 'kill-bill-1', kind: 'BILL' },
          device,
        );
        expect(first.body).toMatchObject({ amountInserted: 100, status: 'PENDING' });

        await proc.hardKill();
        proc = await startServerProcess(env);

        const after = await call('GET', `/api/cash-payment/status/${orderNumber}`, undefined, device);
        expect(after.status).toBe(200);
        expect(after.body).toMatchObject({
          orderNumber,
          amountInserted: 100,
          remainingAmount: 150,
          totalRequired: 250,
          status: 'PENDING',
        });
        // The reader retrying the bill it sent before the crash does not count it twice.
        expect(
          (
            await call(
              'POST',
              '/api/cash-payment/update',
              { orderNumber, amountAdded: 100, eventId: 'kill-bill-1', kind: 'BILL' },
              device,
            )
          ).body.amountInserted,
        ).toBe(100);
        const done = await call(
          'POST',
          '/api/cash-payment/update',
          { orderNumber, amountAdded: 200, eventId: 'kill-bill-2', kind: 'BILL' },
          device,
        );
        expect(done.body).toMatchObject({
          amountInserted: 300,
          isComplete: true,
          change: 50,
          status: 'PAID',
        });
        expect((await call('GET', `/v1/orders/${order.body.id}`)).body.status).toBe('PAID');
        const products = await call('GET', '/v1/products');
        expect(products.body.items.find((p: any) => p.sku === 'k-burger').stock).toBe(4);
      } finally {
        await proc?.hardKill();
        dir.remove();
      }
    },
  );
});
