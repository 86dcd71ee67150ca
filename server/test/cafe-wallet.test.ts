// The cafe wallet (docs/cafe.md): sign-in with a one-time SMS code (hashed, 5 minutes, single
// use, limited attempts and requests), staff credit, paying from the wallet without ever
// overdrawing it (also when two orders pay at once), and refunds back to the wallet.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  liveSocket,
  nextEvent,
  startServer,
  type TestServer,
} from './harness.js';
import { countRows, fakeSmsApi, guestOrder, makeCafe, type Cafe } from './cafe-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

let phoneSeq = 0;
const newPhone = () =>
  `+2547${String(Date.now() % 1e6).padStart(6, '0')}${(phoneSeq++ % 100).toString().padStart(2, '0')}`;

describe.each(engines())('cafe wallet (%s)', (engine) => {
  let server: TestServer;
  let sms: Awaited<ReturnType<typeof fakeSmsApi>>;
  let cafe: Cafe;
  let table: string;
  let tableToken: string;
  beforeAll(async () => {
    sms = await fakeSmsApi();
    server = await startServer({
      engine,
      env: { AT_USERNAME: 'sandbox', AT_API_KEY: 'at-key', AT_API_BASE: sms.url },
    });
    cafe = await makeCafe(server);
    table = cafe.tables[0]!;
    tableToken = cafe.tokens[table]!;
  });
  afterAll(async () => {
    await server?.close();
    await sms?.close();
  });

  async function signIn(phone: string): Promise<{ token: string; customerId: string }> {
    const asked = await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } });
    expect(asked.status).toBe(202);
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    const session = await server.request('POST', '/api/customers/session', {
      token: tableToken,
      body: { phone, code },
    });
    expect(session.status).toBe(200);
    return session.body;
  }

  it('signs in with a one-time code sent by SMS only: hashed, single use, expiring', async () => {
    const phone = newPhone();
    const asked = await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } });
    expect(asked.status).toBe(202);
    expect(JSON.stringify(asked.body)).not.toMatch(/\d{6}/);
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    const stored = await server.kioskhub.db
      .selectFrom('customer_otps')
      .selectAll()
      .where('phone', '=', phone)
      .executeTakeFirstOrThrow();
    expect(stored.code_hash).not.toContain(code);
    const wrong = code === '000000' ? '111111' : '000000';
    expect(
      (
        await server.request('POST', '/api/customers/session', {
          token: tableToken,
          body: { phone, code: wrong },
        })
      ).status,
    ).toBe(401);
    const ok = await server.request('POST', '/api/customers/session', {
      token: tableToken,
      body: { phone, code },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.customerId).toBeTruthy();
    // Single use.
    expect(
      (await server.request('POST', '/api/customers/session', { token: tableToken, body: { phone, code } }))
        .status,
    ).toBe(401);
    // The customer token is no staff token and no table token.
    expect((await server.request('GET', '/v1/orders', { token: ok.body.token })).status).toBe(401);
    expect(
      (
        await server.request('POST', '/api/orders', {
          token: ok.body.token,
          body: { siteId: cafe.siteId, tableId: table, items: [{ sku: cafe.sku.latte, qty: 1 }] },
        })
      ).status,
    ).toBe(401);

    // Expired after 5 minutes.
    const phone2 = newPhone();
    await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone: phone2 } });
    const code2 = await eventually(() => sms.codeFor(phone2), 10_000, 'the SMS code');
    await server.kioskhub.db
      .updateTable('customer_otps')
      .set({ expires_at: new Date(Date.now() - 1).toISOString() })
      .where('phone', '=', phone2)
      .execute();
    expect(
      (
        await server.request('POST', '/api/customers/session', {
          token: tableToken,
          body: { phone: phone2, code: code2 },
        })
      ).status,
    ).toBe(401);

    // Without a table token there is no code; a bad phone changes nothing.
    expect(
      (await server.request('POST', '/api/customers/otp', { token: null, body: { phone } })).status,
    ).toBe(401);
    const rows = await server.kioskhub.db.selectFrom('customer_otps').select('id').execute();
    for (const body of [{ phone: 'not-a-phone' }, { phone, x: 1 }, {}]) {
      expect(
        (await server.request('POST', '/api/customers/otp', { token: tableToken, body })).status,
        JSON.stringify(body),
      ).toBe(400);
    }
    expect((await server.kioskhub.db.selectFrom('customer_otps').select('id').execute()).length).toBe(
      rows.length,
    );
  });

  it('limits attempts per code and codes per phone', async () => {
    const phone = newPhone();
    await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } });
    const code = await eventually(() => sms.codeFor(phone), 10_000, 'the SMS code');
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) {
      expect(
        (
          await server.request('POST', '/api/customers/session', {
            token: tableToken,
            body: { phone, code: wrong },
          })
        ).status,
      ).toBe(401);
    }
    // The sixth try is refused even with the right code: the code is burnt.
    expect(
      (await server.request('POST', '/api/customers/session', { token: tableToken, body: { phone, code } }))
        .status,
    ).toBe(429);
    expect(
      (await server.request('POST', '/api/customers/session', { token: tableToken, body: { phone, code } }))
        .status,
    ).toBe(401);
    // Three codes per phone per 15 minutes (this phone has had one).
    expect(
      (await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } })).status,
    ).toBe(202);
    expect(
      (await server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } })).status,
    ).toBe(202);
    const limited = await server.request('POST', '/api/customers/otp', {
      token: tableToken,
      body: { phone },
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('RATE_LIMITED');
    // When the oldest of the three leaves the 15 minutes: in the message and in Retry-After.
    const retry = Number(limited.headers.get('retry-after'));
    expect(retry).toBeGreaterThan(14 * 60);
    expect(retry).toBeLessThanOrEqual(15 * 60);
    expect(limited.body.error.message).toBe(`too many codes asked for; try again in ${retry} s`);
  });

  it('limits codes per client address', async () => {
    await server.kioskhub.db.deleteFrom('customer_otps').execute();
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      statuses.push(
        (
          await server.request('POST', '/api/customers/otp', {
            token: tableToken,
            body: { phone: newPhone() },
          })
        ).status,
      );
    }
    expect(statuses.slice(0, 10).every((s) => s === 202)).toBe(true);
    expect(statuses[10]).toBe(429);
    await server.kioskhub.db.deleteFrom('customer_otps').execute();
  });

  it('codes asked for one phone all at once: still three, and only the newest works', async () => {
    await server.kioskhub.db.deleteFrom('customer_otps').execute();
    const phone = newPhone();
    const asked = await Promise.all(
      Array.from({ length: 10 }, () =>
        server.request('POST', '/api/customers/otp', { token: tableToken, body: { phone } }),
      ),
    );
    expect(asked.map((r) => r.status).sort()).toEqual([202, 202, 202, 429, 429, 429, 429, 429, 429, 429]);
    const rows = await server.kioskhub.db
      .selectFrom('customer_otps')
      .select(['used_at'])
      .where('phone', '=', phone)
      .execute();
    expect(rows).toHaveLength(3);
    expect(rows.filter((r) => r.used_at === null)).toHaveLength(1);
    await server.kioskhub.db.deleteFrom('customer_otps').execute();
  });

  it('staff add credit (audited); the guest pays from the wallet or gets 409 with nothing changed', async () => {
    const me = await signIn(newPhone());
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body).toMatchObject({
      balanceMinor: 0,
      currency: 'EUR',
      history: [],
    });
    expect((await server.request('GET', '/api/credits/balance', { token: tableToken })).status).toBe(401);
    for (const body of [
      { customerId: me.customerId, amountMinor: 0, reason: 'x' },
      { customerId: me.customerId, amountMinor: 100 },
      { customerId: 'nobody', amountMinor: 100, reason: 'x' },
    ]) {
      const res = await server.request('POST', '/api/credits/add', { body });
      expect([400, 404], JSON.stringify(body)).toContain(res.status);
    }
    expect(
      (
        await server.request('POST', '/api/credits/add', {
          token: me.token,
          body: { customerId: me.customerId, amountMinor: 100, reason: 'x' },
        })
      ).status,
    ).toBe(401);
    const added = await server.request('POST', '/api/credits/add', {
      body: { customerId: me.customerId, amountMinor: 1000, reason: 'gift card sold at the counter' },
    });
    expect(added.status).toBe(201);
    expect(added.body.balanceMinor).toBe(1000);
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .select('action')
      .where('subject_id', '=', me.customerId)
      .execute();
    expect(audit.map((a) => a.action)).toContain('wallet.credit_add');

    // 850 from 1000: paid at once, through the one settlement path.
    const order = await guestOrder(server, cafe, table);
    const paid = await server.request('POST', '/api/payments/initiate', {
      token: me.token,
      body: { orderId: order.body.id, method: 'credit' },
    });
    expect(paid.status).toBe(201);
    expect(paid.body).toMatchObject({ status: 'SUCCEEDED', method: 'credit', amountMinor: 850 });
    expect((await server.request('GET', `/v1/orders/${order.body.id}`)).body.status).toBe('PAID');
    const balance = await server.request('GET', '/api/credits/balance', { token: me.token });
    expect(balance.body.balanceMinor).toBe(150);
    expect(balance.body.history.map((h: any) => h.amountMinor)).toEqual([-850, 1000]);
    const status = await server.request('GET', `/api/payments/${paid.body.paymentId}/status`, {
      token: me.token,
    });
    expect(status.body.status).toBe('SUCCEEDED');

    // 850 from 150: refused, nothing changes.
    const before = {
      payments: await countRows(server, 'payments'),
      entries: await countRows(server, 'ledger_entries'),
    };
    const second = await guestOrder(server, cafe, table);
    const refused = await server.request('POST', '/api/payments/initiate', {
      token: me.token,
      body: { orderId: second.body.id, method: 'credit' },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('INSUFFICIENT_CREDIT');
    expect(await countRows(server, 'payments')).toBe(before.payments);
    expect(await countRows(server, 'ledger_entries')).toBe(before.entries);
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      150,
    );
    // A customer reads the orders they paid, not others.
    expect((await server.request('GET', `/api/orders/${order.body.id}`, { token: me.token })).status).toBe(
      200,
    );
    expect((await server.request('GET', `/api/orders/${second.body.id}`, { token: me.token })).status).toBe(
      404,
    );
    // The table token alone cannot pay from a wallet.
    expect(
      (
        await server.request('POST', '/api/payments/initiate', {
          token: tableToken,
          body: { orderId: second.body.id, method: 'credit' },
        })
      ).status,
    ).toBe(401);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('two orders paid from the same wallet at once never overdraw it', async () => {
    const me = await signIn(newPhone());
    await server.request('POST', '/api/credits/add', {
      body: { customerId: me.customerId, amountMinor: 1000, reason: 'race' },
    });
    const orders = await Promise.all([
      guestOrder(server, cafe, table),
      guestOrder(server, cafe, table),
      guestOrder(server, cafe, table),
    ]);
    const results = await Promise.all(
      orders.map((o) =>
        server.request('POST', '/api/payments/initiate', {
          token: me.token,
          body: { orderId: o.body.id, method: 'credit' },
        }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409]);
    expect(
      results.filter((r) => r.status === 409).every((r) => r.body.error.code === 'INSUFFICIENT_CREDIT'),
    ).toBe(true);
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      150,
    );
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('one order paid twice at once from the wallet is charged once', async () => {
    const me = await signIn(newPhone());
    await server.request('POST', '/api/credits/add', {
      body: { customerId: me.customerId, amountMinor: 5000, reason: 'double tap' },
    });
    const order = await guestOrder(server, cafe, table);
    const results = await Promise.all(
      [0, 1, 2].map(() =>
        server.request('POST', '/api/payments/initiate', {
          token: me.token,
          body: { orderId: order.body.id, method: 'credit' },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      4150,
    );
    const paid = await server.kioskhub.db
      .selectFrom('payments')
      .select('status')
      .where('order_id', '=', order.body.id)
      .execute();
    expect(paid.map((p) => p.status)).toEqual(['SUCCEEDED']);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('refunds a wallet payment to the wallet, cash to a named wallet, never beyond what was paid', async () => {
    const me = await signIn(newPhone());
    await server.request('POST', '/api/credits/add', {
      body: { customerId: me.customerId, amountMinor: 2000, reason: 'top-up' },
    });
    const order = await guestOrder(server, cafe, table);
    const guest = liveSocket(server.url, { orderToken: order.body.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.body.id}` });
    const paid = await server.request('POST', '/api/payments/initiate', {
      token: me.token,
      body: { orderId: order.body.id, method: 'credit' },
    });
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      1150,
    );

    const refunded = nextEvent(guest, 'payment_refunded');
    const part = await server.request('POST', `/api/payments/${paid.body.paymentId}/refund`, {
      body: { amountMinor: 300, reason: 'cold soup' },
    });
    expect(part.status).toBe(201);
    expect(part.body).toMatchObject({ destination: 'credit', status: 'SUCCEEDED', amountMinor: 300 });
    expect(await refunded).toMatchObject({
      paymentId: paid.body.paymentId,
      amountMinor: 300,
      refundedMinor: 300,
    });
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      1450,
    );
    const beyond = await server.request('POST', `/api/payments/${paid.body.paymentId}/refund`, {
      body: { amountMinor: 551, reason: 'too much' },
    });
    expect(beyond.status).toBe(409);
    expect(
      (
        await server.request('POST', `/api/payments/${paid.body.paymentId}/refund`, {
          body: { reason: 'the rest' },
        })
      ).body.amountMinor,
    ).toBe(550);
    expect((await server.request('GET', `/api/payments/${paid.body.paymentId}/status`)).body).toMatchObject({
      status: 'REFUNDED',
      refundedMinor: 850,
    });
    expect(
      (
        await server.request('POST', `/api/payments/${paid.body.paymentId}/refund`, {
          body: { amountMinor: 1, reason: 'again' },
        })
      ).status,
    ).toBe(409);
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      2000,
    );
    // Guests and customers cannot refund.
    expect(
      (
        await server.request('POST', `/api/payments/${paid.body.paymentId}/refund`, {
          token: me.token,
          body: { reason: 'mine' },
        })
      ).status,
    ).toBe(401);

    // Cash paid by a guest who was not signed in: credit needs a named customer.
    const cashOrder = await guestOrder(server, cafe, table);
    const cash = await server.request('POST', '/api/payments/initiate', {
      token: tableToken,
      body: { orderId: cashOrder.body.id, method: 'cash' },
    });
    await server.request('POST', `/api/payments/${cash.body.paymentId}/verify`, { body: {} });
    const nobody = await server.request('POST', `/api/payments/${cash.body.paymentId}/refund`, {
      body: { amountMinor: 100, reason: 'x', to: 'credit' },
    });
    expect(nobody.status).toBe(409);
    const unknown = await server.request('POST', `/api/payments/${cash.body.paymentId}/refund`, {
      body: { amountMinor: 100, reason: 'x', to: 'credit', customerId: 'nobody' },
    });
    expect(unknown.status).toBe(404);
    const named = await server.request('POST', `/api/payments/${cash.body.paymentId}/refund`, {
      body: { amountMinor: 100, reason: 'late', to: 'credit', customerId: me.customerId },
    });
    expect(named.status).toBe(201);
    expect((await server.request('GET', '/api/credits/balance', { token: me.token })).body.balanceMinor).toBe(
      2100,
    );
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .select('after')
      .where('action', '=', 'payment.refund')
      .where('subject_id', '=', cash.body.paymentId)
      .execute();
    expect(JSON.parse(audit[0]!.after!)).toMatchObject({ destination: 'credit', customerId: me.customerId });
    // Cash "to the original method" is handed back by staff: a refund due, shown on the overview.
    const due = await server.request('POST', `/api/payments/${cash.body.paymentId}/refund`, {
      body: { amountMinor: 200, reason: 'change' },
    });
    expect(due.body.destination).toBe('refund_due');
    const overview = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`);
    expect(overview.body.refundsDue.map((r: any) => r.id)).toContain(due.body.id);
    guest.close();
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('reading a balance never opens a wallet; an unknown currency is refused', async () => {
    await server.kioskhub.db.deleteFrom('customer_otps').execute();
    const me = await signIn(newPhone());
    const accounts = () =>
      server.kioskhub.db
        .selectFrom('ledger_accounts')
        .select('unit')
        .where('owner_id', '=', me.customerId)
        .orderBy('unit')
        .execute();
    const before = await accounts();
    const jpy = await server.request('GET', '/api/credits/balance?currency=JPY', { token: me.token });
    expect(jpy.status).toBe(200);
    expect(jpy.body).toMatchObject({ balanceMinor: 0, currency: 'JPY', history: [] });
    const zzz = await server.request('GET', '/api/credits/balance?currency=ZZZ', { token: me.token });
    expect(zzz.status).toBe(400);
    expect(zzz.body.error.code).toBe('VALIDATION_FAILED');
    expect(await accounts()).toEqual(before);
  });
});
