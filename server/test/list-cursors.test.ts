// Keyset cursors of the money lists (orders, orders needing review, payments, audit, ledger
// accounts and entries): a cursor is the `nextCursor` the same list gave, naming one of the
// caller's rows. Anything else (a made-up text, another tenant's row, another list's id) is a
// clear 400, never a page that looks like the first one. The cursors the lists hand out keep
// working, and a page asked for with a bad cursor changes nothing.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, qrCredited, startServer, type TestServer } from './harness.js';

const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

describe.each(engines())('list cursors (%s)', (engine) => {
  let server: TestServer;
  let bToken: string;
  let aToken: string;
  let bOrderId: string;
  let auditId: string;
  let accountId: string;

  beforeAll(async () => {
    server = await startServer({ engine });
    const machine = await server.createVendingMachine('CUR_A', 2000);
    for (let i = 0; i < 3; i++) {
      const res = await server.postWebhook(qrCredited(machine.qrCodeId, 2000, newPaymentId()));
      expect(res.status).toBe(200);
    }
    // Two orders of the wrong amount: FAILED, needing review.
    for (let i = 0; i < 2; i++)
      expect((await server.postWebhook(qrCredited(machine.qrCodeId, 1234, newPaymentId()))).status).toBe(200);
    expect((await server.request('POST', '/v1/tenants', { body: { id: 'b', name: 'B' } })).status).toBe(201);
    const user = await server.request('POST', '/v1/users', {
      body: { email: 'admin@b.example', password: 'b-password-123', role: 'admin', tenantId: 'b' },
    });
    expect(user.status).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      body: { email: 'admin@b.example', password: 'b-password-123' },
      token: null,
    });
    bToken = login.body.token as string;
    expect(
      (
        await server.request('POST', '/v1/users', {
          body: { email: 'admin@a.example', password: 'a-password-123', role: 'admin' },
        })
      ).status,
    ).toBe(201);
    aToken = (
      await server.request('POST', '/v1/auth/login', {
        body: { email: 'admin@a.example', password: 'a-password-123' },
        token: null,
      })
    ).body.token as string;
    const bMachine = await server.createVendingMachine('CUR_B', 2000, 'b');
    const paid = await server.postWebhook(qrCredited(bMachine.qrCodeId, 2000, newPaymentId()));
    bOrderId = paid.body.orderId as string;
    auditId = (await server.request('GET', '/v1/audit?limit=1')).body.items[0].id as string;
    const accounts = await server.request('GET', '/v1/ledger/accounts?limit=200');
    accountId = (accounts.body.items as { id: string; balance: number }[]).find((a) => a.balance !== 0)!.id;
  });
  afterAll(async () => {
    await server?.close();
  });

  const lists = (): [string, string][] => [
    ['orders', '/v1/orders?limit=1'],
    ['orders needing review', '/v1/orders/needs-review?limit=1'],
    ['payments', '/v1/payments?limit=1'],
    ['audit', '/v1/audit?limit=1'],
    ['ledger accounts', '/v1/ledger/accounts?limit=1'],
    ['ledger entries', `/v1/ledger/accounts/${accountId}/entries?limit=1`],
  ];

  it('every list pages with its own nextCursor', async () => {
    for (const [name, path] of lists()) {
      const first = await server.request('GET', path);
      expect(first.status, `${name}: ${JSON.stringify(first.body)}`).toBe(200);
      expect(typeof first.body.nextCursor, name).toBe('string');
      const next = await server.request('GET', `${path}&cursor=${encodeURIComponent(first.body.nextCursor)}`);
      expect(next.status, `${name}: ${JSON.stringify(next.body)}`).toBe(200);
      expect(next.body.items.length, name).toBe(1);
      expect(next.body.items[0].id, name).not.toBe(first.body.items[0].id);
    }
  });

  it('a made-up cursor is 400 VALIDATION_FAILED naming the cursor, on every list', async () => {
    for (const [name, path] of lists()) {
      for (const bad of ['zzz', '00000000000000000000000000', 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ']) {
        const res = await server.request('GET', `${path}&cursor=${bad}`);
        expect(res.status, `${name} cursor=${bad}: ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.body.error.code, name).toBe('VALIDATION_FAILED');
        expect(res.body.error.message, name).toContain('cursor');
      }
    }
  });

  it("another tenant's row, or another list's id, is not a cursor", async () => {
    // Tenant b's order id given to tenant default's order list.
    const foreign = await server.request('GET', `/v1/orders?limit=1&cursor=${bOrderId}`, { token: aToken });
    expect(foreign.status, JSON.stringify(foreign.body)).toBe(400);
    expect(foreign.body.error.code).toBe('VALIDATION_FAILED');
    // An audit row's id given to an order list, and to the payment list.
    const crossTenant = await server.request('GET', `/v1/orders?limit=1&cursor=${auditId}`, {
      token: bToken,
    });
    expect(crossTenant.status).toBe(400);
    const otherList = await server.request('GET', `/v1/payments?limit=1&cursor=${auditId}`);
    expect(otherList.status).toBe(400);
    // b's own order is a cursor b may use.
    const own = await server.request('GET', `/v1/orders?limit=1&cursor=${bOrderId}`, { token: bToken });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.items).toEqual([]);
  });
});
