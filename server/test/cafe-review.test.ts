// Review of the cafe module (docs/cafe.md, docs/cafe-payments.md): money never lost or doubled,
// orders not changed after payment, two phones of one table racing, tokens that act only on their
// own table's orders, the kitchen's state machine, bad input answered with a clear 4xx.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { CAFE_IBAN, guestOrder, makeBankCafe, makeCafe, uid, type Cafe } from './cafe-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';

const SECRET = 'bank-webhook-secret-for-review';
const IBAN = CAFE_IBAN;

describe.each(engines())('cafe review (%s)', (engine) => {
  let server: TestServer;
  let cafe: Cafe;
  beforeAll(async () => {
    server = await startServer({ engine, env: { BANK_WEBHOOK_SECRET: SECRET } });
    cafe = await makeBankCafe(server);
  });
  afterAll(async () => server?.close());

  const tokenOf = (i: number, c: Cafe = cafe) => c.tokens[c.tables[i]!]!;
  const initiate = (token: string, body: Record<string, unknown>) =>
    server.request('POST', '/api/payments/initiate', { token, body });
  const verify = (paymentId: string, body: Record<string, unknown> = {}) =>
    server.request('POST', `/api/payments/${paymentId}/verify`, { body });
  const credit = (body: Record<string, unknown>) => {
    const raw = JSON.stringify(body);
    return server.request('POST', '/webhooks/bank', {
      raw,
      token: null,
      headers: {
        'content-type': 'application/json',
        'kioskhub-signature': signatureHeader(raw, SECRET, Math.floor(Date.now() / 1000)),
      },
    });
  };

  /** The ledger entries a payment caused (its revenue: external → the site's revenue). */
  const entriesOf = async (paymentId: string) =>
    (
      await server.kioskhub.db
        .selectFrom('ledger_entries')
        .select('amount')
        .where('cause_type', '=', 'payment')
        .where('cause_id', '=', paymentId)
        .execute()
    ).length;

  /** A cafe of its own (one table, one product) in `currency`. */
  async function cafeIn(currency: string, priceMinor: number) {
    const siteId = uid('cafe');
    expect(
      (await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Kampala Cafe', currency } }))
        .status,
    ).toBe(201);
    const sku = uid('dish');
    await server.request('POST', '/v1/products', { body: { sku, name: 'Dish', priceMinor, siteId } });
    const table = uid('T');
    await server.createMachine(table, { kind: 'table', siteId, name: 'Table' });
    const token = (await server.request('GET', `/v1/machines/${table}/table-link`)).body.token as string;
    return { siteId, sku, table, token };
  }

  it('rounds a percent tip to the nearest minor unit in currencies of exponent 0 and 3, and charges subtotal + tip', async () => {
    for (const [currency, price, percent, tip] of [
      ['UGX', 1005, 15, 151], // 150.75 shillings → 151
      ['UGX', 5, 10, 1], // 0.5 → 1
      ['KWD', 1250, 5, 63], // 62.5 fils → 63
      ['KWD', 1333, 15, 200], // 199.95 → 200
    ] as const) {
      const c = await cafeIn(currency, price);
      const order = await server.request('POST', '/api/orders', {
        token: c.token,
        body: { siteId: c.siteId, tableId: c.table, items: [{ sku: c.sku, qty: 1 }], tip: { percent } },
      });
      expect(order.status).toBe(201);
      expect(order.body).toMatchObject({
        currency,
        subtotalMinor: price,
        tipMinor: tip,
        totalMinor: price + tip,
      });
      const pay = await initiate(c.token, { orderId: order.body.id, method: 'cash' });
      expect(pay.body).toMatchObject({
        amountMinor: price + tip,
        subtotalMinor: price,
        tipMinor: tip,
        currency,
      });
    }
  });

  it('a table token paying another table’s order gets 404 whatever the method (docs/cafe.md §2)', async () => {
    const theirs = await guestOrder(server, cafe, cafe.tables[0]);
    for (const method of ['cash', 'card', 'bank_transfer']) {
      const res = await initiate(tokenOf(1), { orderId: theirs.body.id, method });
      expect(res.status, method).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    }
  });

  it('a paid table order marked ready on the kiosk kitchen display stays in the cafe kitchen flow', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    const pay = await initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' });
    expect((await verify(pay.body.paymentId)).status).toBe(200);
    // The kiosk kitchen display lists it (api.md §16, docs/cafe.md §9) and has a "Mark ready" button.
    const queue = await server.request('GET', `/v1/kitchen/${cafe.siteId}/orders`);
    expect(queue.body.items.map((o: any) => o.id)).toContain(order.body.id);
    const ready = await server.request('POST', `/v1/orders/${order.body.id}/ready`, { body: {} });
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('READY');
    const served = await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
      body: { status: 'SERVED' },
    });
    expect(served.status).toBe(200);
    expect(served.body.status).toBe('SERVED');
  });

  it('the kiosk "ready" route does not move an unpaid table order to the kitchen', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    const ready = await server.request('POST', `/v1/orders/${order.body.id}/ready`, { body: {} });
    expect(ready.status).toBe(409);
    expect((await server.request('GET', `/v1/orders/${order.body.id}`)).body.status).toBe('CREATED');
  });

  it('a bank transfer part of which arrived is not superseded silently: the money stays in sight', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const transfer = await initiate(tokenOf(1), { orderId: order.body.id, method: 'bank_transfer' });
    expect(transfer.status).toBe(201);
    const part = await credit({
      eventId: uid('bank-evt-'),
      reference: transfer.body.epc.reference,
      amountMinor: 500,
      currency: 'EUR',
    });
    expect(part.body).toMatchObject({ outcome: 'underpaid', receivedMinor: 500 });
    // The guest switches to cash: asked for the whole 850 again while 500 already arrived.
    const cash = await initiate(tokenOf(1), { orderId: order.body.id, method: 'cash' });
    const status = (await server.request('GET', `/api/payments/${transfer.body.paymentId}/status`)).body;
    const overview = (await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`)).body;
    const shown = overview.transfersToConfirm.find((p: any) => p.paymentId === transfer.body.paymentId);
    const parked = (await server.request('GET', '/v1/cash/unallocated')).body.items.find(
      (i: any) => i.orderNumber === order.body.orderNumber && i.amountMinor === 500,
    );
    // Either the switch is refused and the transfer stays pending for staff, or the 500 is parked.
    const visible = (cash.status === 409 && status.status === 'PENDING' && shown) || parked;
    expect(
      visible,
      `switch answered ${cash.status}; transfer ${status.status} with ${status.receivedMinor} received`,
    ).toBeTruthy();
    if (cash.status === 409) {
      expect(cash.body.error).toMatchObject({
        code: 'INVALID_STATE',
        details: { paymentId: transfer.body.paymentId, receivedMinor: 500, missingMinor: 350 },
      });
      // The rest to the same reference completes it.
      const rest = await credit({
        eventId: uid('bank-evt-'),
        reference: transfer.body.epc.reference,
        amountMinor: 350,
        currency: 'EUR',
      });
      expect(rest.body).toMatchObject({ outcome: 'settled', receivedMinor: 850 });
    }
  });

  it('products of the default site priced in another currency are not sold at a cafe in UGX or KWD', async () => {
    // The tenant's default site charges INR (2 decimals): 15000 is ₹150.00.
    const sku = uid('chai');
    expect(
      (
        await server.request('POST', '/v1/products', {
          body: { sku, name: 'Masala chai', priceMinor: 15000 },
        })
      ).status,
    ).toBe(201);
    for (const currency of ['UGX', 'KWD']) {
      const c = await cafeIn(currency, 1000);
      const menu = await server.request('GET', `/api/menu?token=${c.token}`, { token: null });
      const listed = menu.body.categories.flatMap((k: any) => k.products).map((p: any) => p.sku);
      expect(listed, currency).toContain(c.sku);
      expect(listed, currency).not.toContain(sku);
      const order = await server.request('POST', '/api/orders', {
        token: c.token,
        body: { siteId: c.siteId, tableId: c.table, items: [{ sku, qty: 1 }] },
      });
      expect(order.status, `${currency}: ${JSON.stringify(order.body)}`).toBe(400);
      expect(order.body.error.details.unknownSkus).toEqual([sku]);
    }
  });

  it('refuses a bank account whose holder name is blank when saved, not when a guest pays', async () => {
    const c = await cafeIn('EUR', 500);
    const res = await server.request('PATCH', `/v1/sites/${c.siteId}`, {
      body: { bankAccount: { name: '   ', iban: IBAN } },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('refuses an order with nothing to pay (it could never be paid nor reach the kitchen)', async () => {
    const c = await cafeIn('EUR', 0);
    const order = await server.request('POST', '/api/orders', {
      token: c.token,
      body: { siteId: c.siteId, tableId: c.table, items: [{ sku: c.sku, qty: 1 }] },
    });
    expect(order.status).toBe(400);
    expect(order.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('staff confirming cash while the guest starts another payment: never a 5xx, paid once', async () => {
    const pairs = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const order = await guestOrder(server, cafe, cafe.tables[0]);
        const pay = await initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' });
        return { orderId: order.body.id as string, paymentId: pay.body.paymentId as string };
      }),
    );
    const results = await Promise.all(
      pairs.map(async (p) => {
        // The guest's request does more before its transaction: let it start a little earlier.
        const [i, v] = await Promise.all([
          initiate(tokenOf(0), { orderId: p.orderId, method: 'cash' }),
          new Promise((r) => setTimeout(r, Math.random() * 12)).then(() => verify(p.paymentId)),
        ]);
        return { ...p, verify: v.status, initiate: i.status, body: [v.body, i.body] };
      }),
    );
    const errors = results.filter((r) => r.verify >= 500 || r.initiate >= 500);
    expect(
      errors.map((r) => JSON.stringify(r.body)),
      'answers of 5xx',
    ).toEqual([]);
    for (const r of results) {
      // Exactly one wins: the cash confirmed (the new attempt then 409), or the new attempt (verify 409).
      expect([r.verify, r.initiate].sort()).toEqual(r.verify === 200 ? [200, 409] : [201, 409]);
    }
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('cash confirmed while the kitchen moves a pay-later order: the order is paid and its revenue booked', async () => {
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: true } });
    try {
      const orders = await Promise.all(
        Array.from({ length: 24 }, async () => {
          const order = await guestOrder(server, cafe, cafe.tables[1]);
          const pay = await initiate(tokenOf(1), { orderId: order.body.id, method: 'cash' });
          expect(pay.body.payLater).toBe(true);
          const prep = await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
            body: { status: 'PREPARING' },
          });
          expect(prep.status).toBe(200);
          return { orderId: order.body.id as string, paymentId: pay.body.paymentId as string };
        }),
      );
      await Promise.all(
        orders.map((o) =>
          Promise.all([
            verify(o.paymentId),
            server.request('POST', `/v1/orders/${o.orderId}/kitchen-status`, { body: { status: 'READY' } }),
          ]),
        ),
      );
      const unpaid: string[] = [];
      for (const o of orders) {
        const payment = (await server.request('GET', `/v1/payments/${o.paymentId}`)).body;
        const order = (await server.request('GET', `/v1/orders/${o.orderId}`)).body;
        expect(payment.status).toBe('SUCCEEDED');
        if (order.paidAt === null || (await entriesOf(o.paymentId)) === 0) unpaid.push(o.orderId);
      }
      expect(unpaid, 'orders whose cash SUCCEEDED but never marked paid, no revenue booked').toEqual([]);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    } finally {
      await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: false } });
    }
  });

  it('a guest starting a payment while a settlement holds the pending one never deadlocks (PostgreSQL)', async () => {
    if (engine !== 'postgres') return;
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    const cash = await initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' });
    // What staff confirming the cash (verify), a bank credit and a card webhook do, in this order:
    // lock the payment, then change the order. Here in a transaction held open on purpose.
    let answer: { status: number; body: any } | undefined;
    const rollback = new Error('rollback');
    await server.kioskhub.db
      .transaction()
      .execute(async (tx) => {
        await sql`select id from payments where id = ${cash.body.paymentId} for update`.execute(tx);
        // The guest's second phone starts another payment meanwhile (not awaited here).
        void initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' }).then((r) => (answer = r));
        await new Promise((r) => setTimeout(r, 300));
        await sql`update orders set updated_at = updated_at where id = ${order.body.id}`.execute(tx);
        throw rollback;
      })
      .catch((err) => {
        if (err !== rollback) throw err;
      });
    const start = Date.now();
    while (!answer && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(answer?.status, JSON.stringify(answer?.body)).toBe(201);
    expect((await server.request('GET', `/v1/payments/${cash.body.paymentId}`)).body).toMatchObject({
      status: 'FAILED',
      failureCode: 'SUPERSEDED',
    });
  });

  // orders.service.ts `paidInKitchen` used to read the order's status, then update "where status =
  // <what it read>": a kitchen move committed in between made the update miss, and the settlement
  // skipped everything (paid_at, revenue, stock, receipt) while the payment stayed SUCCEEDED.
  it('a bank credit while the kitchen moves a pay-later order: the order is paid and its revenue booked', async () => {
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: true } });
    try {
      const orders = await Promise.all(
        Array.from({ length: 24 }, async () => {
          const order = await guestOrder(server, cafe, cafe.tables[1]);
          await initiate(tokenOf(1), { orderId: order.body.id, method: 'cash' });
          await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
            body: { status: 'PREPARING' },
          });
          // The guest pays by transfer after all.
          const transfer = await initiate(tokenOf(1), { orderId: order.body.id, method: 'bank_transfer' });
          expect(transfer.status).toBe(201);
          return { orderId: order.body.id as string, ...transfer.body };
        }),
      );
      await Promise.all(
        orders.map((o) =>
          Promise.all([
            credit({
              eventId: uid('bank-evt-'),
              reference: o.epc.reference,
              amountMinor: 850,
              currency: 'EUR',
            }),
            server.request('POST', `/v1/orders/${o.orderId}/kitchen-status`, { body: { status: 'READY' } }),
          ]),
        ),
      );
      const unpaid: string[] = [];
      for (const o of orders) {
        expect((await server.request('GET', `/v1/payments/${o.paymentId}`)).body.status).toBe('SUCCEEDED');
        const order = (await server.request('GET', `/v1/orders/${o.orderId}`)).body;
        if (order.paidAt === null || (await entriesOf(o.paymentId)) === 0) unpaid.push(o.orderId);
      }
      expect(unpaid, 'orders whose transfer SUCCEEDED but never marked paid, no revenue booked').toEqual([]);
    } finally {
      await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: false } });
    }
  });

  // A customer token used to name a tenant and a customer only: a wallet guest of one table could
  // start payments on any order of the tenant, superseding that table's pending payment and
  // rewriting its tip. Wallet sign-ins are now bound to the table they were asked at.
  it('a wallet customer token does not act on another table’s order', async () => {
    const customer = await server.kioskhub.services.customers.findOrCreate(
      'default',
      '+4915112340001',
      'test',
    );
    const token = await server.kioskhub.services.auth.issueCustomerToken({
      tenantId: 'default',
      customerId: customer.id,
      tableId: cafe.tables[0]!,
    });
    const unbound = await server.kioskhub.services.auth.issueCustomerToken({
      tenantId: 'default',
      customerId: customer.id,
    });
    const theirs = await guestOrder(server, cafe, cafe.tables[1]);
    const card = await initiate(tokenOf(1), { orderId: theirs.body.id, method: 'bank_transfer' });
    expect(card.status).toBe(201);
    const res = await initiate(token, { orderId: theirs.body.id, method: 'credit', tipMinor: 5000 });
    expect(res.status).toBe(404);
    const old = await initiate(unbound, { orderId: theirs.body.id, method: 'credit', tipMinor: 5000 });
    expect(old.status).toBe(401);
    expect((await server.request('GET', `/v1/payments/${card.body.paymentId}`)).body.status).toBe('PENDING');
    expect((await server.request('GET', `/api/orders/${theirs.body.id}`)).body.tipMinor).toBe(0);
    // At its own table the same token acts (here: an empty wallet is refused as such).
    const mine = await guestOrder(server, cafe, cafe.tables[0]);
    const own = await initiate(token, { orderId: mine.body.id, method: 'credit' });
    expect(own.status).toBe(409);
    expect(own.body.error.code).toBe('INSUFFICIENT_CREDIT');
  });

  // A pending transfer used to end EXPIRED whatever it had received, with no alert, no unallocated
  // item and no wallet credit.
  it('a transfer that expires with part of its money arrived does not keep it silently', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const transfer = await initiate(tokenOf(1), { orderId: order.body.id, method: 'bank_transfer' });
    await credit({
      eventId: uid('bank-evt-'),
      reference: transfer.body.epc.reference,
      amountMinor: 500,
      currency: 'EUR',
    });
    await server.kioskhub.db
      .updateTable('payments')
      .set({ expires_at: new Date(Date.now() - 1_000).toISOString() })
      .where('id', '=', transfer.body.paymentId)
      .execute();
    await server.kioskhub.services.intents.expire({ paymentId: transfer.body.paymentId });
    const status = (await server.request('GET', `/api/payments/${transfer.body.paymentId}/status`)).body;
    expect(status).toMatchObject({ status: 'EXPIRED', receivedMinor: 500 });
    const parked = (await server.request('GET', '/v1/cash/unallocated')).body.items.find(
      (i: any) => i.orderNumber === order.body.orderNumber,
    );
    expect(parked, 'the 500 that arrived, for staff to return').toMatchObject({
      amountMinor: 500,
      reason: 'PART_PAID_ENDED',
    });
  });

  it('answers text with a NUL character with 400, never 500 (PostgreSQL refuses it)', async () => {
    const customer = await server.kioskhub.services.customers.findOrCreate(
      'default',
      '+4915112340002',
      'test',
    );
    const checks: [string, string, Record<string, unknown>, string | null][] = [
      ['PATCH', `/v1/cafe/menu/${cafe.sku.soup}`, { description: 'hot\u0000' }, null],
      ['PATCH', `/v1/cafe/menu/${cafe.sku.soup}`, { category: 'Soups\u0000' }, null],
      ['POST', '/api/credits/add', { customerId: customer.id, amountMinor: 5, reason: 'gift\u0000' }, null],
      ['POST', '/api/payments/initiate', { orderId: 'x\u0000', method: 'cash' }, tokenOf(0)],
    ];
    for (const [method, path, body, token] of checks) {
      const res = await server.request(method, path, { body, ...(token ? { token } : {}) });
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
  });

  // The site's cash unit (api.md §14) takes cash for any order number of the site, a table's too.
  const cashUnitOf = async (siteId: string) => {
    const unit = await server.createMachine(uid('C'), { kind: 'cash', siteId });
    return { token: null, headers: { 'x-api-key': unit.key } } as const;
  };
  type Device = Awaited<ReturnType<typeof cashUnitOf>>;
  /** `by`: a device's key; staff (the admin token) without it. */
  const counterInit = (orderNumber: string, totalAmount: number, by?: Device) =>
    server.request('POST', '/api/cash-payment/init', { ...by, body: { orderNumber, totalAmount } });
  const counterBill = (by: Device, orderNumber: string, amountAdded: number) =>
    server.request('POST', '/api/cash-payment/update', {
      ...by,
      body: { orderNumber, amountAdded, eventId: uid('bill-') },
    });
  /** The order's revenue on the ledger (entries caused by its payments on a revenue account). */
  const revenueOf = async (orderId: string) =>
    (
      await server.kioskhub.db
        .selectFrom('ledger_entries as e')
        .innerJoin('payments as p', 'p.id', 'e.cause_id')
        .innerJoin('ledger_accounts as a', 'a.id', 'e.account_id')
        .select('e.amount')
        .where('p.order_id', '=', orderId)
        .where('a.kind', '=', 'revenue')
        .execute()
    ).reduce((sum, e) => sum + Number(e.amount), 0);
  const paymentsOf = (orderId: string) =>
    server.kioskhub.db
      .selectFrom('payments')
      .select(['id', 'status', 'method', 'amount_minor', 'received_minor', 'failure_code'])
      .where('order_id', '=', orderId)
      .orderBy('created_at')
      .execute();
  const receiptsOf = async (orderId: string) =>
    (await server.kioskhub.db.selectFrom('print_jobs').select('id').where('order_id', '=', orderId).execute())
      .length;
  const tipsAt = async (siteId: string) => {
    const res = await server.request(
      'GET',
      `/v1/cafe/tips?siteId=${siteId}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`,
    );
    expect(res.status).toBe(200);
    return res.body as { items: { tipMinor: number; orders: number }[]; totals: unknown[] };
  };
  const orderView = async (orderId: string) => (await server.request('GET', `/api/orders/${orderId}`)).body;

  it('staff confirming a table’s cash after its order was paid another way do not settle it twice', async () => {
    const device = await cashUnitOf(cafe.siteId);
    const order = await guestOrder(server, cafe, cafe.tables[0], { tip: { amountMinor: 150 } });
    const atTable = await initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' });
    expect(atTable.body).toMatchObject({ status: 'PENDING', amountMinor: 1000 });
    // Meanwhile the order is paid at the counter, through the cash unit, for its total with the tip.
    const init = await counterInit(order.body.orderNumber, 10);
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    // The session is now the order's one pending payment: the table's attempt ended as a new
    // attempt of the guest would end it.
    expect((await server.request('GET', `/v1/payments/${atTable.body.paymentId}`)).body).toMatchObject({
      status: 'FAILED',
      failureCode: 'SUPERSEDED',
    });
    const paid = await counterBill(device, order.body.orderNumber, 10);
    expect(paid.body).toMatchObject({ isComplete: true, change: 0 });
    expect(await revenueOf(order.body.id)).toBe(1000);
    // The table's cash is confirmed afterwards: the order must not be paid a second time.
    const late = await verify(atTable.body.paymentId);
    expect(late.status, JSON.stringify(late.body)).toBe(409);
    expect(await revenueOf(order.body.id)).toBe(1000);
    expect(await receiptsOf(order.body.id)).toBe(1);
  });

  it('staff cannot confirm the counter’s cash session; the unit’s bills are booked once', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const order = await guestOrder(server, c, c.tables[0]);
    expect((await counterInit(order.body.orderNumber, 8.5, device)).status).toBe(200);
    const [session] = await paymentsOf(order.body.id);
    // The unit collects this cash, not staff at the table: it is not shown as cash to collect.
    const overview = await server.request('GET', `/v1/cafe/sites/${c.siteId}/overview`);
    expect(overview.body.cashToCollect.map((p: any) => p.paymentId)).not.toContain(session!.id);
    const before = await paymentsOf(order.body.id);
    const refused = await verify(session!.id);
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body.error).toMatchObject({
      code: 'INVALID_STATE',
      details: { paymentId: session!.id, atCounter: true },
    });
    expect(await paymentsOf(order.body.id)).toEqual(before);
    expect((await orderView(order.body.id)).paidAt ?? null).toBeNull();
    const paid = await counterBill(device, order.body.orderNumber, 10);
    expect(paid.body).toMatchObject({ isComplete: true, change: 1.5 });
    expect(await revenueOf(order.body.id)).toBe(850);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('bills that complete a session whose payment no longer takes money are kept as unallocated cash', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const order = await guestOrder(server, c, c.tables[0]);
    expect((await counterInit(order.body.orderNumber, 8.5, device)).status).toBe(200);
    const [session] = await paymentsOf(order.body.id);
    // Ended by some other path while the unit still takes bills for it.
    await server.kioskhub.db
      .updateTable('payments')
      .set({ status: 'FAILED', failure_code: 'TEST_ENDED' })
      .where('id', '=', session!.id)
      .execute();
    expect((await counterBill(device, order.body.orderNumber, 10)).status).toBe(200);
    expect(await revenueOf(order.body.id)).toBe(0);
    const parked = (await server.request('GET', '/v1/cash/unallocated')).body.items.filter(
      (i: any) => i.orderNumber === order.body.orderNumber && i.siteId === c.siteId,
    );
    // What the box keeps once the change is handed back: the session's total.
    expect(parked.map((i: any) => [i.reason, i.amountMinor])).toEqual([['PAYMENT_NOT_PENDING', 850]]);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  // cash.service.ts `init` used to open a cash session for any CREATED order of the site for its
  // `amount`, which for a table order is the subtotal without the tip (docs/cafe.md §5): the order
  // was paid without its tip while the tips report still counted it, and the table's own pending
  // payment was left as it was.
  it('the site’s cash unit does not settle a table order for its subtotal without the tip', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const order = await guestOrder(server, c, c.tables[0], { tip: { amountMinor: 150 } });
    expect(order.body).toMatchObject({ subtotalMinor: 850, tipMinor: 150, totalMinor: 1000 });
    const short = await counterInit(order.body.orderNumber, 8.5, device);
    expect(short.status, JSON.stringify(short.body)).toBe(409);
    expect(short.body.error).toMatchObject({
      code: 'CONFLICT',
      details: { totalMinor: 1000, subtotalMinor: 850, tipMinor: 150, currency: 'EUR' },
    });
    expect(short.body.error.message).toContain('10.00');
    // Refused with nothing opened.
    expect(await paymentsOf(order.body.id)).toEqual([]);
    const none = await server.request('GET', `/api/cash-payment/status/${order.body.orderNumber}`, device);
    expect(none.status).toBe(404);

    const init = await counterInit(order.body.orderNumber, 10, device);
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    expect(init.body).toMatchObject({ totalRequired: 10, remainingAmount: 10, status: 'PENDING' });
    // Asked again (the kiosk retried): the same session.
    const again = await counterInit(order.body.orderNumber, 10, device);
    expect(again.body.sessionId).toBe(init.body.sessionId);
    expect((await counterBill(device, order.body.orderNumber, 5)).body).toMatchObject({ isComplete: false });
    const done = await counterBill(device, order.body.orderNumber, 5);
    expect(done.body).toMatchObject({ isComplete: true, amountInserted: 10, totalRequired: 10, change: 0 });

    const view = await orderView(order.body.id);
    expect(view).toMatchObject({ status: 'PAID', subtotalMinor: 850, tipMinor: 150, totalMinor: 1000 });
    expect(view.paidAt).not.toBeNull();
    const payments = await paymentsOf(order.body.id);
    expect(
      payments.map((p) => [p.status, p.method, Number(p.amount_minor), Number(p.received_minor)]),
    ).toEqual([['SUCCEEDED', 'cash', 1000, 1000]]);
    // Revenue is what the guest paid (the cafe's own cash books the same), the tip is the tip.
    expect(await revenueOf(order.body.id)).toBe(1000);
    expect((await tipsAt(c.siteId)).totals).toEqual([{ currency: 'EUR', tipMinor: 150 }]);
    expect(await receiptsOf(order.body.id)).toBe(1);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a percent tip is owed at the counter as the amount stored on the order', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    // 10 % of 8.50 is 0.85: the order stores 85.
    const order = await guestOrder(server, c, c.tables[1], { tip: { percent: 10 } });
    expect(order.body).toMatchObject({ tipMinor: 85, totalMinor: 935 });
    for (const amount of [8.5, 9.34, 9.36]) {
      const wrong = await counterInit(order.body.orderNumber, amount, device);
      expect(wrong.status, `${amount}`).toBe(409);
      expect(wrong.body.error).toMatchObject({
        code: 'CONFLICT',
        details: { totalMinor: 935, tipMinor: 85 },
      });
    }
    expect((await counterInit(order.body.orderNumber, 9.35, device)).status).toBe(200);
    expect((await counterBill(device, order.body.orderNumber, 10)).body).toMatchObject({
      isComplete: true,
      change: 0.65,
    });
    expect(await orderView(order.body.id)).toMatchObject({ status: 'PAID', tipMinor: 85, totalMinor: 935 });
    // The change handed back is not revenue.
    expect(await revenueOf(order.body.id)).toBe(935);
    expect((await tipsAt(c.siteId)).totals).toEqual([{ currency: 'EUR', tipMinor: 85 }]);
    expect(await receiptsOf(order.body.id)).toBe(1);
  });

  it('a tip chosen on the phone before the counter opens is what the counter asks; while it is open the tip cannot change', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const token = c.tokens[c.tables[0]!]!;
    const order = await guestOrder(server, c, c.tables[0], { tip: { amountMinor: 150 } });
    // The guest starts cash on the phone with another tip: the order now owes 10.50.
    const phone = await initiate(token, { orderId: order.body.id, method: 'cash', tipMinor: 200 });
    expect(phone.body).toMatchObject({ status: 'PENDING', amountMinor: 1050, tipMinor: 200 });
    const old = await counterInit(order.body.orderNumber, 10, device);
    expect(old.status).toBe(409);
    expect(old.body.error).toMatchObject({ code: 'CONFLICT', details: { totalMinor: 1050, tipMinor: 200 } });
    expect(old.body.error.message).toContain('10.50');
    // Refused with nothing changed: the phone's attempt is still pending.
    expect((await server.request('GET', `/v1/payments/${phone.body.paymentId}`)).body.status).toBe('PENDING');

    expect((await counterInit(order.body.orderNumber, 10.5, device)).status).toBe(200);
    expect((await server.request('GET', `/v1/payments/${phone.body.paymentId}`)).body).toMatchObject({
      status: 'FAILED',
      failureCode: 'SUPERSEDED',
    });
    // While the counter's session is open the phone can neither change the tip nor start another
    // attempt (it would supersede the session's payment while the unit takes bills for it).
    for (const body of [{ method: 'cash', tipMinor: 500 }, { method: 'cash' }]) {
      const res = await initiate(token, { orderId: order.body.id, ...body });
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(res.body.error).toMatchObject({
        code: 'INVALID_STATE',
        details: { atCounter: true, amountMinor: 1050 },
      });
    }
    expect(await orderView(order.body.id)).toMatchObject({ tipMinor: 200, totalMinor: 1050 });
    // Staff confirming the phone's superseded cash: refused, nothing settled.
    expect((await verify(phone.body.paymentId)).status).toBe(409);

    expect((await counterBill(device, order.body.orderNumber, 10.5)).body).toMatchObject({
      isComplete: true,
    });
    const payments = await paymentsOf(order.body.id);
    expect(payments.filter((p) => p.status === 'SUCCEEDED').map((p) => Number(p.amount_minor))).toEqual([
      1050,
    ]);
    expect(payments.filter((p) => p.status === 'PENDING')).toEqual([]);
    expect(await revenueOf(order.body.id)).toBe(1050);
    expect((await tipsAt(c.siteId)).totals).toEqual([{ currency: 'EUR', tipMinor: 200 }]);
    expect(await receiptsOf(order.body.id)).toBe(1);
    // Paid: the phone has nothing more to pay.
    expect((await initiate(token, { orderId: order.body.id, method: 'cash', tipMinor: 0 })).status).toBe(409);
    expect(await orderView(order.body.id)).toMatchObject({ status: 'PAID', tipMinor: 200, totalMinor: 1050 });
  });

  it('a bank transfer part of which arrived keeps the counter from opening a session: the money stays in sight', async () => {
    const device = await cashUnitOf(cafe.siteId);
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const transfer = await initiate(tokenOf(1), { orderId: order.body.id, method: 'bank_transfer' });
    expect(transfer.status).toBe(201);
    await credit({
      eventId: uid('bank-evt-'),
      reference: transfer.body.epc.reference,
      amountMinor: 500,
      currency: 'EUR',
    });
    const init = await counterInit(order.body.orderNumber, 8.5, device);
    expect(init.status, JSON.stringify(init.body)).toBe(409);
    expect(init.body.error).toMatchObject({
      code: 'INVALID_STATE',
      details: { paymentId: transfer.body.paymentId, receivedMinor: 500, missingMinor: 350 },
    });
    expect((await server.request('GET', `/v1/payments/${transfer.body.paymentId}`)).body.status).toBe(
      'PENDING',
    );
    const none = await server.request('GET', `/api/cash-payment/status/${order.body.orderNumber}`, device);
    expect(none.status).toBe(404);
  });

  it('a table order without a tip is paid at the counter for its subtotal, as before', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const order = await guestOrder(server, c, c.tables[0]);
    expect(order.body).toMatchObject({ subtotalMinor: 850, tipMinor: 0, totalMinor: 850 });
    expect((await counterInit(order.body.orderNumber, 9, device)).status).toBe(409);
    const init = await counterInit(order.body.orderNumber, 8.5, device);
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    expect(init.body.totalRequired).toBe(8.5);
    expect((await counterBill(device, order.body.orderNumber, 8.5)).body).toMatchObject({ isComplete: true });
    expect(await orderView(order.body.id)).toMatchObject({ status: 'PAID', tipMinor: 0, totalMinor: 850 });
    expect(await revenueOf(order.body.id)).toBe(850);
    expect(await tipsAt(c.siteId)).toEqual({ items: [], totals: [] });
    expect(await receiptsOf(order.body.id)).toBe(1);
  });

  it('a kiosk order at the cafe’s site is paid at the cash unit for its amount, as before', async () => {
    const kiosk = await server.createMachine(uid('K'), { kind: 'kiosk', siteId: cafe.siteId });
    const kioskKey = { token: null, headers: { 'x-api-key': kiosk.key } } as const;
    const order = await server.request('POST', '/v1/orders', {
      ...kioskKey,
      body: { items: [{ sku: cafe.sku.latte, qty: 2 }] },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    expect(order.body.amount).toBe(700);
    const wrong = await counterInit(order.body.orderNumber, 8, kioskKey);
    expect(wrong.status).toBe(409);
    expect(wrong.body.error.code).toBe('CONFLICT');
    expect(wrong.body.error.message).toContain('7.00');
    const init = await counterInit(order.body.orderNumber, 7, kioskKey);
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    expect(init.body.totalRequired).toBe(7);
    const device = await cashUnitOf(cafe.siteId);
    expect((await counterBill(device, order.body.orderNumber, 7)).body).toMatchObject({ isComplete: true });
    expect((await server.request('GET', `/v1/orders/${order.body.id}`)).body.status).toBe('PAID');
    expect(await revenueOf(order.body.id)).toBe(700);
    expect(await receiptsOf(order.body.id)).toBe(1);
  });

  it('bad input to the cash unit for a table order is answered as before', async () => {
    const device = await cashUnitOf(cafe.siteId);
    const order = await guestOrder(server, cafe, cafe.tables[0], { tip: { amountMinor: 150 } });
    // More decimals than the euro has.
    const decimals = await counterInit(order.body.orderNumber, 10.001, device);
    expect(decimals.status).toBe(400);
    expect(decimals.body.error.code).toBe('VALIDATION_FAILED');
    for (const totalAmount of [0, -10, '10']) {
      const res = await server.request('POST', '/api/cash-payment/init', {
        ...device,
        body: { orderNumber: order.body.orderNumber, totalAmount },
      });
      expect(res.status, `${totalAmount}`).toBe(400);
    }
    // A cash unit of another site does not see the order.
    const other = await makeCafe(server);
    const elsewhere = await counterInit(order.body.orderNumber, 10, await cashUnitOf(other.siteId));
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body.error.code).toBe('NOT_FOUND');
    // An unknown order number.
    expect((await counterInit(uid('TNOPE'), 10, device)).status).toBe(404);
    // Nothing was opened or ended by any of these.
    expect(await paymentsOf(order.body.id)).toEqual([]);
    // A paid table order needs no cash session.
    const pay = await initiate(tokenOf(0), { orderId: order.body.id, method: 'cash' });
    expect((await verify(pay.body.paymentId)).status).toBe(200);
    const paid = await counterInit(order.body.orderNumber, 10, device);
    expect(paid.status).toBe(409);
    expect(paid.body.error.code).toBe('INVALID_STATE');
    expect(await revenueOf(order.body.id)).toBe(1000);
  });

  it('the counter opening a session while the phone changes the tip or staff confirm the table’s cash: never a 5xx, paid once', async () => {
    const c = await makeCafe(server);
    const device = await cashUnitOf(c.siteId);
    const token = c.tokens[c.tables[0]!]!;
    const runs = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const order = await guestOrder(server, c, c.tables[0], { tip: { amountMinor: 150 } });
        const phone = await initiate(token, { orderId: order.body.id, method: 'cash' });
        expect(phone.status).toBe(201);
        // Half race a new tip from the phone, half staff confirming the phone's cash.
        const other =
          i % 2 === 0
            ? () => initiate(token, { orderId: order.body.id, method: 'cash', tipMinor: 300 })
            : () => verify(phone.body.paymentId);
        // The guest's initiate does more before its transaction: the counter may start a little later.
        const jitter = (ms: number) => new Promise((r) => setTimeout(r, Math.random() * ms));
        const [counter, rival] = await Promise.all([
          jitter(i % 2 === 0 ? 40 : 15).then(() => counterInit(order.body.orderNumber, 10, device)),
          jitter(15).then(other),
        ]);
        return {
          i,
          orderId: order.body.id as string,
          orderNumber: order.body.orderNumber as string,
          counter,
          rival,
        };
      }),
    );
    expect(
      runs
        .filter((r) => r.counter.status >= 500 || r.rival.status >= 500)
        .map((r) => [r.counter.body, r.rival.body]),
      'answers of 5xx',
    ).toEqual([]);
    for (const r of runs) {
      // Exactly one of the two goes through: the counter's session (the phone's new attempt, or
      // staff's confirmation, then 409), or the other (the counter then 409: another total, or paid).
      const won = r.i % 2 === 0 ? 201 : 200;
      expect([r.counter.status, r.rival.status], JSON.stringify([r.counter.body, r.rival.body])).toEqual(
        r.counter.status === 200 ? [200, 409] : [409, won],
      );
      if (r.counter.status === 409)
        expect(r.counter.body.error.code).toBe(r.i % 2 === 0 ? 'CONFLICT' : 'INVALID_STATE');
      // One pending or paid attempt per order.
      const live = (await paymentsOf(r.orderId)).filter((p) => ['PENDING', 'SUCCEEDED'].includes(p.status));
      expect(live).toHaveLength(1);
      if (r.counter.status === 200) {
        // The session's total is what the order records.
        expect((await counterBill(device, r.orderNumber, 10)).body).toMatchObject({ isComplete: true });
        expect(await orderView(r.orderId)).toMatchObject({ status: 'PAID', totalMinor: 1000 });
      }
      const view = await orderView(r.orderId);
      const paid = (await paymentsOf(r.orderId)).filter((p) => p.status === 'SUCCEEDED');
      if (paid.length > 0) {
        expect(paid.map((p) => Number(p.amount_minor))).toEqual([view.totalMinor]);
        expect(await revenueOf(r.orderId)).toBe(view.totalMinor);
        expect(await receiptsOf(r.orderId)).toBe(1);
      }
    }
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('two phones of one table ordering at once: every order created once, no 5xx', async () => {
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        guestOrder(server, cafe, cafe.tables[i % 2], {
          items: [{ sku: cafe.sku.latte, qty: 1 + (i % 3), notes: `phone ${i}` }],
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(results.map(() => 201));
    expect(new Set(results.map((r) => r.body.orderNumber)).size).toBe(results.length);
    for (const [i, r] of results.entries()) expect(r.body.subtotalMinor).toBe(350 * (1 + (i % 3)));
  });

  it('two phones paying one order at once: one attempt stays pending, the order is paid once', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    const [a, b] = await Promise.all([
      initiate(tokenOf(0), { orderId: order.body.id, method: 'cash', tipMinor: 100 }),
      initiate(tokenOf(0), { orderId: order.body.id, method: 'bank_transfer' }),
    ]);
    expect([a.status, b.status]).toEqual([201, 201]);
    const payments = (await server.request('GET', `/v1/payments?orderId=${order.body.id}`)).body.items;
    expect(payments.filter((p: any) => p.status === 'PENDING')).toHaveLength(1);
    const [va, vb] = await Promise.all([verify(a.body.paymentId), verify(b.body.paymentId)]);
    expect([va.status, vb.status].sort()).toEqual([200, 409]);
    const winner = va.status === 200 ? a.body : b.body;
    const view = (await server.request('GET', `/api/orders/${order.body.id}`)).body;
    // The order's tip is the one of the attempt that was paid.
    expect(view.totalMinor).toBe(winner.amountMinor);
    expect(await entriesOf(winner.paymentId)).toBeGreaterThan(0);
    expect(await entriesOf((va.status === 200 ? b : a).body.paymentId)).toBe(0);
  });

  it('a paid order’s tip and total cannot be changed by a later initiate', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[1], { tip: { percent: 10 } });
    const pay = await initiate(tokenOf(1), { orderId: order.body.id, method: 'cash' });
    expect((await verify(pay.body.paymentId)).status).toBe(200);
    for (const method of ['cash', 'bank_transfer']) {
      const again = await initiate(tokenOf(1), { orderId: order.body.id, method, tipMinor: 9_999 });
      expect(again.status).toBe(409);
    }
    const view = (await server.request('GET', `/api/orders/${order.body.id}`)).body;
    expect(view).toMatchObject({ subtotalMinor: 850, tipMinor: 85, totalMinor: 935 });
  });
});
