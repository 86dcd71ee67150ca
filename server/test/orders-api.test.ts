// Orders and payment events over HTTP (CONTRACTS.md §6): listing and paging, query
// validation, timelines, payment events, tenant isolation and who may read them.
import { randomBytes } from 'node:crypto';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';

const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

describe.each(engines())('orders API (%s)', (engine) => {
  let server: TestServer;
  const machines: SimulatedMachine[] = [];

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    for (const m of machines) m.stop();
    await server?.close();
  });

  /** Pays a machine's QR and returns the new order id. */
  async function pay(qrCodeId: string, amount = 2000, paymentId = newPaymentId()): Promise<string> {
    const res = await server.postWebhook(qrCredited(qrCodeId, amount, paymentId));
    expect(res.status).toBe(200);
    expect(typeof res.body.orderId).toBe('string');
    return res.body.orderId as string;
  }

  /** Follows nextCursor to the end; returns every page. */
  async function allPages(
    query: string,
    token?: string,
  ): Promise<{ items: any[]; nextCursor: string | null }[]> {
    const pages: { items: any[]; nextCursor: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const res = await server.request(
        'GET',
        `/v1/orders?${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        token === undefined ? {} : { token },
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'nextCursor']);
      pages.push(res.body);
      cursor = res.body.nextCursor as string | null;
      expect(pages.length).toBeLessThan(50);
    } while (cursor !== null);
    return pages;
  }

  describe('listing', () => {
    let paging: { id: string; qrCodeId: string };
    let other: { id: string; qrCodeId: string };
    const created: string[] = []; // oldest first
    let failedId: string;

    beforeAll(async () => {
      paging = await server.createVendingMachine('PAGE1', 2000);
      other = await server.createVendingMachine('PAGE2', 2000);
      for (let i = 0; i < 7; i++) {
        created.push(await pay(paging.qrCodeId));
        // Interleave another machine's orders: the machine filter must leave them out.
        if (i % 3 === 0) await pay(other.qrCodeId);
      }
      failedId = await pay(paging.qrCodeId, 1234); // AMOUNT_MISMATCH → FAILED
      created.push(failedId);
    });

    it('machineId filter, newest first, pages of `limit` that do not overlap, last page nextCursor null', async () => {
      const pages = await allPages(`machineId=${paging.id}&limit=3`);
      expect(pages.map((p) => p.items.length)).toEqual([3, 3, 2]);
      expect(pages.slice(0, -1).every((p) => typeof p.nextCursor === 'string')).toBe(true);
      expect(pages.at(-1)?.nextCursor).toBeNull();
      const ids = pages.flatMap((p) => p.items.map((o) => o.id as string));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual([...created].reverse());
      for (const o of pages.flatMap((p) => p.items)) expect(o.machineId).toBe(paging.id);
      // createdAt never increases down the list.
      const times = pages.flatMap((p) => p.items.map((o) => Date.parse(o.createdAt as string)));
      expect([...times].sort((a, b) => b - a)).toEqual(times);
    });

    it('a limit that divides the total exactly ends with nextCursor null, not an empty page', async () => {
      const pages = await allPages(`machineId=${paging.id}&limit=4`);
      expect(pages.map((p) => p.items.length)).toEqual([4, 4]);
      expect(pages[1]?.nextCursor).toBeNull();
      const one = await allPages(`machineId=${paging.id}&limit=200`);
      expect(one).toHaveLength(1);
      expect(one[0]?.items).toHaveLength(8);
      expect(one[0]?.nextCursor).toBeNull();
    });

    it('the default limit applies when none is given', async () => {
      const res = await server.request('GET', `/v1/orders?machineId=${paging.id}`);
      expect(res.status).toBe(200);
      expect(res.body.items).toHaveLength(8);
      expect(res.body.nextCursor).toBeNull();
    });

    it('status filter, alone and with paging', async () => {
      const failed = await server.request('GET', `/v1/orders?machineId=${paging.id}&status=FAILED`);
      expect(failed.status).toBe(200);
      expect(failed.body.items.map((o: any) => o.id)).toEqual([failedId]);
      expect(failed.body.items[0]).toMatchObject({ status: 'FAILED', failureCode: 'AMOUNT_MISMATCH' });
      const paid = await allPages(`machineId=${paging.id}&status=PAID&limit=2`);
      expect(paid.map((p) => p.items.length)).toEqual([2, 2, 2, 1]);
      const paidIds = paid.flatMap((p) => p.items.map((o) => o.id));
      expect(paidIds).toEqual(created.filter((id) => id !== failedId).reverse());
      for (const o of paid.flatMap((p) => p.items))
        expect(o).toMatchObject({ status: 'PAID', dispatchPending: true });
      const none = await server.request('GET', `/v1/orders?machineId=${paging.id}&status=COMPLETED`);
      expect(none.body).toEqual({ items: [], nextCursor: null });
    });

    it('without a machine filter the admin sees every machine’s orders', async () => {
      const pages = await allPages('limit=5');
      const ids = pages.flatMap((p) => p.items.map((o) => o.id as string));
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of created) expect(ids).toContain(id);
      expect(ids.filter((id) => !created.includes(id)).length).toBeGreaterThanOrEqual(3);
      const unknownMachine = await server.request('GET', '/v1/orders?machineId=NO_SUCH_MACHINE');
      expect(unknownMachine.body).toEqual({ items: [], nextCursor: null });
    });

    it.each([
      ['limit=0'],
      ['limit=1000'],
      ['limit=201'],
      ['limit=abc'],
      ['limit=-1'],
      ['limit=1.5'],
      ['limit='],
      ['status=BOGUS'],
      ['status=paid'],
      ['foo=bar'],
      ['machineId=has%20space'],
      ['machineId='],
      [`cursor=${'x'.repeat(65)}`],
      ['cursor='],
    ])('bad query %s → 400 VALIDATION_FAILED', async (query) => {
      const res = await server.request('GET', `/v1/orders?${query}`);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    });
  });

  it('GET /v1/orders/:id of an unknown order → 404 NOT_FOUND (and its timeline too)', async () => {
    const res = await server.request('GET', '/v1/orders/01HZZZZZZZZZZZZZZZZZZZZZZZ');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('NOT_FOUND');
    const timeline = await server.request('GET', '/v1/orders/01HZZZZZZZZZZZZZZZZZZZZZZZ/timeline');
    expect(timeline.status).toBe(404);
    expect(timeline.body.error.code).toBe('NOT_FOUND');
  });

  it('a completed order: timeline payment_received → command_sent → command_accepted → dispensed, and its payment event', async () => {
    const m = await server.createVendingMachine('TL1', 2000);
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: m.id,
      key: m.key,
      dispenseDelayMs: 10,
      heartbeatMs: 1000,
    });
    machines.push(machine);
    await machine.start();
    const rounds: { orderId: string; paymentId: string }[] = [];
    // Several rounds: the steps of one order often land within the same millisecond.
    for (let i = 0; i < 5; i++) {
      const paymentId = newPaymentId();
      const orderId = await pay(m.qrCodeId, 2000, paymentId);
      await eventually(
        async () => (await server.request('GET', `/v1/orders/${orderId}`)).body.status === 'COMPLETED',
        10_000,
        `order ${orderId} COMPLETED`,
      );
      rounds.push({ orderId, paymentId });
    }
    expect(machine.dispensed.map((d) => d.orderId)).toEqual(rounds.map((r) => r.orderId));

    for (const { orderId, paymentId } of rounds) {
      const res = await server.request('GET', `/v1/orders/${orderId}/timeline`);
      expect(res.status).toBe(200);
      expect(res.body.nextCursor).toBeNull();
      const items = res.body.items as { type: string; actor: string; at: string; detail: any }[];
      expect(items.map((e) => e.type)).toEqual([
        'payment_received',
        'command_sent',
        'command_accepted',
        'dispensed',
      ]);
      const times = items.map((e) => Date.parse(e.at));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(items[0]?.actor).toBe('provider:razorpay');
      expect(items[0]?.detail).toMatchObject({
        amount: 2000,
        currency: 'INR',
        provider: 'razorpay',
        providerPaymentId: paymentId,
      });
      const commandId = items[1]?.detail.commandId as string;
      expect(typeof commandId).toBe('string');
      expect(items[2]?.detail.commandId).toBe(commandId);
      expect(items[3]?.detail.commandId).toBe(commandId);
      expect(machine.dispensed.find((d) => d.orderId === orderId)?.commandId).toBe(commandId);
      for (const e of items.slice(1)) expect(e.actor).toBe(`machine:${m.id}`);

      const ev = await server.request('GET', `/v1/payment-events/razorpay/${paymentId}`);
      expect(ev.status).toBe(200);
      expect(Object.keys(ev.body).sort()).toEqual([
        'dispatch',
        'machineId',
        'orderId',
        'processedAt',
        'reason',
        'status',
      ]);
      expect(ev.body).toMatchObject({
        status: 'PROCESSED',
        reason: null,
        machineId: m.id,
        orderId,
        dispatch: 'DONE',
      });
      expect(Number.isNaN(Date.parse(ev.body.processedAt as string))).toBe(false);

      const order = await server.request('GET', `/v1/orders/${orderId}`);
      expect(order.body).toMatchObject({ status: 'COMPLETED', dispatchPending: false, failureCode: null });
    }
  });

  it('payment events: unknown → 404, bad provider → 400', async () => {
    const unknown = await server.request('GET', `/v1/payment-events/razorpay/${newPaymentId()}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('NOT_FOUND');
    const otherProvider = await server.request('GET', '/v1/payment-events/momo/pay_x');
    expect(otherProvider.status).toBe(404);
    const badProvider = await server.request('GET', '/v1/payment-events/Razor%20Pay/pay_x');
    expect(badProvider.status).toBe(400);
    expect(badProvider.body.error.code).toBe('VALIDATION_FAILED');
  });

  describe('who may read', () => {
    let defaultMachine: { id: string; key: string; qrCodeId: string };
    let defaultOrderId: string;
    let defaultPaymentId: string;
    let bMachine: { id: string; key: string; qrCodeId: string };
    let bOrderId: string;
    let bPaymentId: string;
    let bToken: string;
    let defaultStaffToken: string;

    beforeAll(async () => {
      defaultMachine = await server.createVendingMachine('ISO_A', 2000);
      defaultPaymentId = newPaymentId();
      defaultOrderId = await pay(defaultMachine.qrCodeId, 2000, defaultPaymentId);

      expect((await server.request('POST', '/v1/tenants', { body: { id: 'b', name: 'B' } })).status).toBe(
        201,
      );
      const user = await server.request('POST', '/v1/users', {
        body: { email: 'admin@b.example', password: 'b-password-123', role: 'admin', tenantId: 'b' },
      });
      expect(user.status, JSON.stringify(user.body)).toBe(201);
      const login = await server.request('POST', '/v1/auth/login', {
        body: { email: 'admin@b.example', password: 'b-password-123' },
        token: null,
      });
      expect(login.status).toBe(200);
      bToken = login.body.token as string;

      const staff = await server.request('POST', '/v1/users', {
        body: { email: 'staff@default.example', password: 'default-password-1', role: 'staff' },
      });
      expect(staff.status, JSON.stringify(staff.body)).toBe(201);
      const staffLogin = await server.request('POST', '/v1/auth/login', {
        body: { email: 'staff@default.example', password: 'default-password-1' },
        token: null,
      });
      defaultStaffToken = staffLogin.body.token as string;

      bMachine = await server.createVendingMachine('ISO_B', 2000, 'b');
      bPaymentId = newPaymentId();
      bOrderId = await pay(bMachine.qrCodeId, 2000, bPaymentId);
    });

    it('a staff user of another tenant gets 404 for tenant default’s order, timeline and payment event, and an empty list', async () => {
      const order = await server.request('GET', `/v1/orders/${defaultOrderId}`, { token: bToken });
      expect(order.status).toBe(404);
      expect(order.body.error.code).toBe('NOT_FOUND');
      const timeline = await server.request('GET', `/v1/orders/${defaultOrderId}/timeline`, {
        token: bToken,
      });
      expect(timeline.status).toBe(404);
      const ev = await server.request('GET', `/v1/payment-events/razorpay/${defaultPaymentId}`, {
        token: bToken,
      });
      expect(ev.status).toBe(404);
      expect(ev.body.error.code).toBe('NOT_FOUND');
      const byMachine = await server.request('GET', `/v1/orders?machineId=${defaultMachine.id}`, {
        token: bToken,
      });
      expect(byMachine.status).toBe(200);
      expect(byMachine.body).toEqual({ items: [], nextCursor: null });

      // Its own tenant's order is all it sees.
      const pages = await allPages('limit=200', bToken);
      expect(pages.flatMap((p) => p.items.map((o) => o.id))).toEqual([bOrderId]);
      expect((await server.request('GET', `/v1/orders/${bOrderId}`, { token: bToken })).body.tenantId).toBe(
        'b',
      );
      expect(
        (await server.request('GET', `/v1/payment-events/razorpay/${bPaymentId}`, { token: bToken })).body
          .orderId,
      ).toBe(bOrderId);
    });

    it('a tenant with no orders gets an empty list', async () => {
      expect((await server.request('POST', '/v1/tenants', { body: { id: 'c', name: 'C' } })).status).toBe(
        201,
      );
      const user = await server.request('POST', '/v1/users', {
        body: { email: 'admin@c.example', password: 'c-password-123', role: 'admin', tenantId: 'c' },
      });
      expect(user.status).toBe(201);
      const login = await server.request('POST', '/v1/auth/login', {
        body: { email: 'admin@c.example', password: 'c-password-123' },
        token: null,
      });
      const res = await server.request('GET', '/v1/orders', { token: login.body.token as string });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ items: [], nextCursor: null });
    });

    it('tenant default’s staff do not see tenant b’s order either', async () => {
      expect(
        (await server.request('GET', `/v1/orders/${bOrderId}`, { token: defaultStaffToken })).status,
      ).toBe(404);
      expect(
        (
          await server.request('GET', `/v1/payment-events/razorpay/${bPaymentId}`, {
            token: defaultStaffToken,
          })
        ).status,
      ).toBe(404);
      const ids = (await allPages('limit=200', defaultStaffToken)).flatMap((p) => p.items.map((o) => o.id));
      expect(ids).toContain(defaultOrderId);
      expect(ids).not.toContain(bOrderId);
      for (const id of ids)
        expect(
          (await server.request('GET', `/v1/orders/${id}`, { token: defaultStaffToken })).body.tenantId,
        ).toBe('default');
    });

    it('a machine key cannot read orders or payment events (403), even its own', async () => {
      const asKey = { token: null, headers: { 'x-api-key': defaultMachine.key } };
      const asBearer = { token: defaultMachine.key };
      for (const auth of [asKey, asBearer]) {
        const list = await server.request('GET', '/v1/orders', auth);
        expect(list.status).toBe(403);
        expect(list.body.error.code).toBe('FORBIDDEN');
        expect((await server.request('GET', `/v1/orders?machineId=${defaultMachine.id}`, auth)).status).toBe(
          403,
        );
        expect((await server.request('GET', `/v1/orders/${defaultOrderId}`, auth)).status).toBe(403);
        expect((await server.request('GET', `/v1/orders/${defaultOrderId}/timeline`, auth)).status).toBe(403);
        expect(
          (await server.request('GET', `/v1/payment-events/razorpay/${defaultPaymentId}`, auth)).status,
        ).toBe(403);
      }
    });

    it('no or a wrong credential → 401 UNAUTHORIZED', async () => {
      for (const token of [null, 'not-a-real-token-at-all', `${bToken}x`]) {
        const res = await server.request('GET', '/v1/orders', { token });
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('UNAUTHORIZED');
      }
      expect(
        (await server.request('GET', `/v1/payment-events/razorpay/${defaultPaymentId}`, { token: null }))
          .status,
      ).toBe(401);
    });
  });
});
