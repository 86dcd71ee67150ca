// The cafe (docs/cafe.md): table tokens and QR codes, the menu, orders with tips, cash paid and
// confirmed by staff through the one settlement path, the kitchen, live events, pay-later, the
// tips report, settings, one-off methods from the registry, and expiry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  liveSocket,
  nextEvent,
  startServer,
  ADMIN_TOKEN,
  type TestServer,
} from './harness.js';
import { countRows, guestOrder, makeCafe, uid, type Cafe } from './cafe-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';

describe.each(engines())('cafe tables, orders and cash (%s)', (engine) => {
  let server: TestServer;
  let cafe: Cafe;
  beforeAll(async () => {
    server = await startServer({ engine });
    cafe = await makeCafe(server);
  });
  afterAll(async () => server?.close());

  it('serves a table QR as PNG and the menu for its token', async () => {
    const png = await fetch(`${server.url}/v1/machines/${cafe.tables[0]}/table-qr`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await png.arrayBuffer());
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    const link = await server.request('GET', `/v1/machines/${cafe.tables[0]}/table-link`);
    expect(link.body.url).toBe(`${server.url}/t/${link.body.token}`);

    const menu = await server.request('GET', `/api/menu?token=${cafe.tokens[cafe.tables[0]!]}`, {
      token: null,
    });
    expect(menu.status).toBe(200);
    expect(menu.body.currency).toBe('EUR');
    expect(menu.body.table.id).toBe(cafe.tables[0]);
    expect(menu.body.tipPresetsPercent).toEqual([0, 5, 10, 15]);
    const drinks = menu.body.categories.find((c: any) => c.name === 'Drinks');
    expect(drinks.products).toEqual([
      expect.objectContaining({ sku: cafe.sku.latte, priceMinor: 350, available: true }),
    ]);

    const sheet = await fetch(`${server.url}/v1/sites/${cafe.siteId}/table-qr-sheet`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(sheet.headers.get('content-type')).toContain('text/html');
    const html = await sheet.text();
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(2);
    expect(
      (await server.request('GET', `/v1/machines/${cafe.tables[0]}/table-qr`, { token: null })).status,
    ).toBe(401);
  });

  it('orders at a table with notes and a tip kept apart from the order total, then cash confirmed by staff', async () => {
    const staff = liveSocket(server.url, { token: ADMIN_TOKEN });
    await connected(staff);
    expect(await staff.emitWithAck('subscribe', { room: `site:${cafe.siteId}` })).toMatchObject({ ok: true });
    expect(await staff.emitWithAck('subscribe', { room: `table:${cafe.tables[0]}` })).toMatchObject({
      ok: true,
    });
    const created = nextEvent(staff, 'order_created');
    const res = await guestOrder(server, cafe, cafe.tables[0], {
      items: [
        { sku: cafe.sku.latte, qty: 2, notes: 'oat milk' },
        { sku: cafe.sku.cake, qty: 1 },
      ],
      tip: { percent: 10 },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      status: 'CREATED',
      subtotalMinor: 1100,
      tipMinor: 110,
      totalMinor: 1210,
      amount: 1100,
      currency: 'EUR',
    });
    expect(res.body.items[0]).toMatchObject({
      sku: cafe.sku.latte,
      qty: 2,
      notes: 'oat milk',
      unitPriceMinor: 350,
    });
    expect((await created).orderId).toBe(res.body.id);
    const orderId: string = res.body.id;

    const guest = liveSocket(server.url, { orderToken: res.body.orderToken });
    await connected(guest);
    expect(await guest.emitWithAck('subscribe', { room: `order:${orderId}` })).toMatchObject({ ok: true });
    expect(await guest.emitWithAck('subscribe', { room: `site:${cafe.siteId}` })).toMatchObject({
      ok: false,
    });

    // Not paid and not a pay-later site: the kitchen may not start.
    const early = await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, {
      body: { status: 'PREPARING' },
    });
    expect(early.status).toBe(409);

    const initiated = nextEvent(staff, 'payment_initiated');
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { orderId, method: 'cash' },
    });
    expect(pay.status).toBe(201);
    expect(pay.body).toMatchObject({
      status: 'PENDING',
      method: 'cash',
      amountMinor: 1210,
      currency: 'EUR',
      orderId,
    });
    expect((await initiated).paymentId).toBe(pay.body.paymentId);
    const status = await server.request('GET', `/api/payments/${pay.body.paymentId}/status`, {
      token: res.body.orderToken,
    });
    expect(status.body).toMatchObject({
      paymentId: pay.body.paymentId,
      status: 'PENDING',
      amountMinor: 1210,
      refundedMinor: 0,
      orderId,
    });

    // A guest cannot confirm their own cash.
    expect(
      (
        await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, {
          token: res.body.orderToken,
          body: {},
        })
      ).status,
    ).toBe(401);
    const completed = nextEvent(guest, 'payment_completed');
    const verified = await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} });
    expect(verified.status).toBe(200);
    expect(verified.body.status).toBe('SUCCEEDED');
    expect((await completed).paymentId).toBe(pay.body.paymentId);
    expect(
      (await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} })).status,
    ).toBe(409);

    // Exactly what the order settlement does for every channel: PAID, stock, receipt, timeline.
    const order = await server.request('GET', `/v1/orders/${orderId}`);
    expect(order.body).toMatchObject({ status: 'PAID', amount: 1100 });
    expect(order.body.paidAt).not.toBeNull();
    const products = await server.request('GET', `/v1/products`);
    expect(products.body.items.find((p: any) => p.sku === cafe.sku.cake).stock).toBe(1);
    const jobs = await server.kioskhub.db
      .selectFrom('print_jobs')
      .select('order_id')
      .where('order_id', '=', orderId)
      .execute();
    expect(jobs).toHaveLength(1);
    const timeline = await server.request('GET', `/v1/orders/${orderId}/timeline`);
    expect(timeline.body.items.map((e: any) => e.type)).toContain('payment_received');

    // The kitchen: PREPARING → READY (heard by the guest) → SERVED; never backwards.
    expect(
      (
        await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, {
          body: { status: 'PREPARING' },
        })
      ).body.status,
    ).toBe('PREPARING');
    const ready = nextEvent(guest, 'kitchen_order_ready');
    expect(
      (await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, { body: { status: 'READY' } }))
        .body.status,
    ).toBe('READY');
    expect(await ready).toMatchObject({ orderId, status: 'READY', tableId: cafe.tables[0] });
    expect(
      (await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, { body: { status: 'SERVED' } }))
        .body.status,
    ).toBe('SERVED');
    expect(
      (
        await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, {
          body: { status: 'PREPARING' },
        })
      ).status,
    ).toBe(409);
    expect(
      (await server.request('POST', `/v1/orders/${orderId}/kitchen-status`, { body: { status: 'DONE' } }))
        .status,
    ).toBe(400);

    const day = new Date().toISOString().slice(0, 10);
    const tips = await server.request(
      'GET',
      `/v1/cafe/tips?siteId=${cafe.siteId}&from=${day}T00:00:00Z&to=2100-01-01T00:00:00Z`,
    );
    expect(tips.status).toBe(200);
    expect(tips.body.items).toEqual([
      {
        day,
        siteId: cafe.siteId,
        split: 'pool',
        serverUserId: null,
        currency: 'EUR',
        tipMinor: 110,
        orders: 1,
      },
    ]);
    guest.close();
    staff.close();
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('refuses a rotated token, another table’s or cafe’s token, and anything that is not a table token', async () => {
    const [t1, t2] = cafe.tables as [string, string];
    const old = cafe.tokens[t1]!;
    const rotated = await server.request('POST', `/v1/machines/${t1}/table-qr/rotate`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.version).toBe(2);
    expect((await server.request('GET', `/api/menu?token=${old}`, { token: null })).status).toBe(401);
    expect((await guestOrder(server, { ...cafe, tokens: { [t1]: old } }, t1)).status).toBe(401);
    cafe.tokens[t1] = rotated.body.url.split('/t/')[1];
    expect((await guestOrder(server, cafe, t1)).status).toBe(201);

    // Table 2's token cannot order for table 1, nor pay table 1's orders.
    const mine = await guestOrder(server, cafe, t1);
    const wrongTable = await server.request('POST', '/api/orders', {
      token: cafe.tokens[t2]!,
      body: { siteId: cafe.siteId, tableId: t1, items: [{ sku: cafe.sku.latte, qty: 1 }] },
    });
    expect(wrongTable.status).toBe(403);
    const payOther = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[t2]!,
      body: { orderId: mine.body.id, method: 'cash' },
    });
    expect(payOther.status).toBe(404);

    // Another tenant's cafe: its token never reaches this tenant's tables or orders.
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'other', name: 'Other' } })).status,
    ).toBe(201);
    const other = await makeCafe(server, 'other');
    const [o1] = other.tables as [string];
    const cross = await server.request('POST', '/api/orders', {
      token: other.tokens[o1]!,
      body: { siteId: cafe.siteId, tableId: t1, items: [{ sku: cafe.sku.latte, qty: 1 }] },
    });
    expect(cross.status).toBe(403);
    const crossPay = await server.request('POST', '/api/payments/initiate', {
      token: other.tokens[o1]!,
      body: { orderId: mine.body.id, method: 'cash' },
    });
    expect(crossPay.status).toBe(404);

    // A staff token, a tampered token and an order token are not table tokens.
    const staffAsTable = await server.request('POST', '/api/orders', {
      body: { siteId: cafe.siteId, tableId: t1, items: [{ sku: cafe.sku.latte, qty: 1 }] },
    });
    expect(staffAsTable.status).toBe(401);
    const token = cafe.tokens[t1]!;
    const tampered = token.slice(0, -3) + (token.endsWith('AAA') ? 'BBB' : 'AAA');
    expect((await server.request('GET', `/api/menu?token=${tampered}`, { token: null })).status).toBe(401);
    expect(
      (await server.request('GET', `/api/menu?token=${mine.body.orderToken}`, { token: null })).status,
    ).toBe(401);
    // A machine that is not a table has no table QR.
    await server.createMachine(uid('V'));
    const vending = (await server.request('GET', '/v1/machines?kind=vending')).body.items[0].id;
    expect((await server.request('GET', `/v1/machines/${vending}/table-qr`)).status).toBe(409);
  });

  it('refuses sold-out, unavailable and unknown items and bad input, creating nothing', async () => {
    const before = {
      orders: await countRows(server, 'orders'),
      cafe: await countRows(server, 'cafe_orders'),
    };
    const soldOut = await guestOrder(server, cafe, cafe.tables[1], {
      items: [{ sku: cafe.sku.cake, qty: 5 }],
    });
    expect(soldOut.status).toBe(409);
    expect(soldOut.body.error.code).toBe('OUT_OF_STOCK');
    expect(soldOut.body.error.details[0]).toMatchObject({ sku: cafe.sku.cake, reason: 'sold_out' });
    expect(
      (await server.request('PATCH', `/v1/cafe/menu/${cafe.sku.soup}`, { body: { available: false } }))
        .status,
    ).toBe(200);
    const unavailable = await guestOrder(server, cafe, cafe.tables[1]);
    expect(unavailable.status).toBe(409);
    expect(unavailable.body.error.details[0]).toMatchObject({ sku: cafe.sku.soup, reason: 'unavailable' });
    const menu = await server.request('GET', `/api/menu?token=${cafe.tokens[cafe.tables[1]!]}`, {
      token: null,
    });
    const soup = menu.body.categories
      .flatMap((c: any) => c.products)
      .find((p: any) => p.sku === cafe.sku.soup);
    expect(soup.available).toBe(false);
    expect(
      (await server.request('PATCH', `/v1/cafe/menu/${cafe.sku.soup}`, { body: { available: true } })).status,
    ).toBe(200);

    const bad: Record<string, unknown>[] = [
      { items: [{ sku: 'nope', qty: 1 }] },
      { items: [] },
      { items: [{ sku: cafe.sku.latte, qty: 0 }] },
      { items: [{ sku: cafe.sku.latte, qty: 1, price: 1 }] },
      { tip: { percent: 150 } },
      { tip: { amountMinor: -5 } },
      { tip: { percent: 5, amountMinor: 5 } },
      { extra: true },
      { items: [{ sku: cafe.sku.latte, qty: 1, notes: 'x'.repeat(201) }] },
    ];
    for (const body of bad) {
      const res = await guestOrder(server, cafe, cafe.tables[1], body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect(await countRows(server, 'orders')).toBe(before.orders);
    expect(await countRows(server, 'cafe_orders')).toBe(before.cafe);

    const payments = await countRows(server, 'payments');
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    for (const body of [
      { orderId: order.body.id, method: 'cheque' },
      { orderId: order.body.id },
      { orderId: order.body.id, method: 'cash', tipMinor: -1 },
      { orderId: order.body.id, method: 'cash', x: 1 },
    ]) {
      const res = await server.request('POST', '/api/payments/initiate', {
        token: cafe.tokens[cafe.tables[1]!]!,
        body,
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const unknownOrder = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[1]!]!,
      body: { orderId: 'nope', method: 'cash' },
    });
    expect(unknownOrder.status).toBe(404);
    expect(await countRows(server, 'payments')).toBe(payments);
    expect((await server.request('POST', '/api/payments/nope/verify', { body: {} })).status).toBe(404);
    expect(
      (await server.request('POST', `/v1/orders/nope/kitchen-status`, { body: { status: 'READY' } })).status,
    ).toBe(404);
    expect(
      (await server.request('GET', `/v1/cafe/tips?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z`)).status,
    ).toBe(400);
  });

  it('keeps cafe settings on the site: IBAN checked, audited; tips split by the table’s server', async () => {
    const badIban = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: { name: 'Renamed', bankAccount: { name: 'Corner Cafe', iban: 'DE89 3704 0044 0532 0130 01' } },
    });
    expect(badIban.status).toBe(400);
    const site = (await server.request('GET', '/v1/sites')).body.items.find((s: any) => s.id === cafe.siteId);
    expect(site.name).toBe('Corner Cafe');
    expect(
      (await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/settings`)).body.bankAccount,
    ).toBeNull();
    for (const body of [
      { tipSplit: 'half' },
      { tipPresetsPercent: [5, 5] },
      { tipPresetsPercent: [120] },
      { cardGateway: 'paypal' },
      { payLater: 'yes' },
    ]) {
      expect(
        (await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body })).status,
        JSON.stringify(body),
      ).toBe(400);
    }

    const ok = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: {
        tipPresetsPercent: [10, 0, 5],
        tipSplit: 'server',
        bankAccount: { name: 'Corner Cafe', iban: 'de89 3704 0044 0532 0130 00', bic: 'COBADEFFXXX' },
        cardGateway: 'stripe',
      },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.cafe).toEqual({
      tipPresetsPercent: [0, 5, 10],
      tipSplit: 'server',
      bankAccount: { name: 'Corner Cafe', iban: 'DE89370400440532013000', bic: 'COBADEFFXXX' },
      cardGateway: 'stripe',
      payLater: false,
    });
    const audit = await server.kioskhub.db
      .selectFrom('audit_log')
      .select('after')
      .where('action', '=', 'site.cafe_settings')
      .where('subject_id', '=', cafe.siteId)
      .execute();
    expect(audit).toHaveLength(1);

    const user = await server.request('POST', '/v1/users', {
      body: { email: `${uid('ana')}@cafe.test`, password: 'long-enough-password-1', role: 'staff' },
    });
    expect(user.status).toBe(201);
    const [, t2] = cafe.tables as [string, string];
    expect(
      (await server.request('PATCH', `/v1/cafe/tables/${t2}`, { body: { serverUserId: 'nobody' } })).status,
    ).toBe(400);
    expect(
      (await server.request('PATCH', `/v1/cafe/tables/${t2}`, { body: { serverUserId: user.body.id } }))
        .status,
    ).toBe(200);
    const order = await guestOrder(server, cafe, t2, {
      items: [{ sku: cafe.sku.latte, qty: 1 }],
      tip: { amountMinor: 50 },
    });
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[t2]!,
      body: { orderId: order.body.id, method: 'cash', tipMinor: 70 },
    });
    expect(pay.body).toMatchObject({ amountMinor: 420, tipMinor: 70 });
    await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} });
    const tips = await server.request(
      'GET',
      `/v1/cafe/tips?siteId=${cafe.siteId}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`,
    );
    expect(tips.body.items).toContainEqual(
      expect.objectContaining({ split: 'server', serverUserId: user.body.id, tipMinor: 70, orders: 1 }),
    );

    // A server disabled after being given the table earns no tips from orders placed after that:
    // they are recorded without a server, and the earlier order's tip stays the server's.
    expect(
      (await server.request('PATCH', `/v1/users/${user.body.id}`, { body: { disabled: true } })).status,
    ).toBe(200);
    const later = await guestOrder(server, cafe, t2, { items: [{ sku: cafe.sku.latte, qty: 1 }] });
    const laterPay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[t2]!,
      body: { orderId: later.body.id, method: 'cash', tipMinor: 30 },
    });
    await server.request('POST', `/api/payments/${laterPay.body.paymentId}/verify`, { body: {} });
    const row = await server.kioskhub.db
      .selectFrom('cafe_orders')
      .select('server_user_id')
      .where('order_id', '=', later.body.id)
      .executeTakeFirstOrThrow();
    expect(row.server_user_id).toBeNull();
    const after = await server.request(
      'GET',
      `/v1/cafe/tips?siteId=${cafe.siteId}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`,
    );
    expect(after.body.items).toContainEqual(
      expect.objectContaining({ split: 'server', serverUserId: user.body.id, tipMinor: 70, orders: 1 }),
    );
    expect(
      (await server.request('PATCH', `/v1/users/${user.body.id}`, { body: { disabled: false } })).status,
    ).toBe(200);
    expect(
      (await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { tipSplit: 'pool' } })).status,
    ).toBe(200);
  });

  it('pay-later: a cash order goes to the kitchen first and is paid later, keeping its kitchen status', async () => {
    expect(
      (await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: true } })).body.cafe
        .payLater,
    ).toBe(true);
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const token = cafe.tokens[cafe.tables[1]!]!;
    // Not before the guest chose cash.
    expect(
      (
        await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
          body: { status: 'PREPARING' },
        })
      ).status,
    ).toBe(409);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(pay.body.payLater).toBe(true);
    expect(
      (
        await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
          body: { status: 'PREPARING' },
        })
      ).body,
    ).toMatchObject({ status: 'PREPARING', paidAt: null });
    expect(
      (
        await server.request('POST', `/v1/orders/${order.body.id}/kitchen-status`, {
          body: { status: 'SERVED' },
        })
      ).status,
    ).toBe(200);
    const overview = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`);
    expect(overview.status).toBe(200);
    expect(overview.body.cashToCollect.map((p: any) => p.paymentId)).toContain(pay.body.paymentId);
    const table = overview.body.tables.find((t: any) => t.id === cafe.tables[1]);
    expect(table.openOrders.map((o: any) => o.id)).toContain(order.body.id);
    expect(
      (
        await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, {
          body: { receivedMinor: 1000 },
        })
      ).body.status,
    ).toBe('SUCCEEDED');
    const after = await server.request('GET', `/api/orders/${order.body.id}`, {
      token: order.body.orderToken,
    });
    expect(after.body.status).toBe('SERVED');
    expect(after.body.paidAt).not.toBeNull();
    const overview2 = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`);
    expect(overview2.body.cashToCollect.map((p: any) => p.paymentId)).not.toContain(pay.body.paymentId);
    await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { payLater: false } });
  });

  it('bank transfer and card come from the method registry: a clear error until each is set up', async () => {
    const token = cafe.tokens[cafe.tables[1]!]!;
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    // Registered at start: bank transfers always, cards only with STRIPE_* (unset here).
    expect(server.kioskhub.services.methods.has('bank_transfer')).toBe(true);
    expect(server.kioskhub.services.methods.has('card')).toBe(false);
    const card = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'card' },
    });
    expect(card.status).toBe(503);
    expect(card.body.error).toMatchObject({
      code: 'PROVIDER_NOT_CONFIGURED',
      message: 'card payments are not set up on this server',
    });
    // A cafe without a bank account in its settings takes no transfers.
    const plain = await makeCafe(server);
    const plainOrder = await guestOrder(server, plain, plain.tables[0]);
    const noAccount = await server.request('POST', '/api/payments/initiate', {
      token: plain.tokens[plain.tables[0]!]!,
      body: { orderId: plainOrder.body.id, method: 'bank_transfer' },
    });
    expect(noAccount.status).toBe(503);
    expect(noAccount.body.error).toMatchObject({
      code: 'PROVIDER_NOT_CONFIGURED',
      message: 'this cafe has no bank account for transfers',
    });
    // This cafe has one (the settings test above saved it).
    const res = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'bank_transfer' },
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'PENDING', method: 'bank_transfer', amountMinor: 850 });
    expect(res.body.epc.reference).toMatch(/^RF\d{2}[0-9A-Z]{12}$/);
    expect(res.body.epc.payload).toContain('\nDE89370400440532013000\nEUR8.50\n');
    const overview = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`);
    expect(overview.body.transfersToConfirm.map((p: any) => p.paymentId)).toContain(res.body.paymentId);
    // Switching to cash supersedes the transfer; staff confirm the cash.
    const cash = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect((await server.request('GET', `/api/payments/${res.body.paymentId}/status`)).body).toMatchObject({
      status: 'FAILED',
      failureCode: 'SUPERSEDED',
    });
    expect(
      (await server.request('POST', `/api/payments/${cash.body.paymentId}/verify`, { body: {} })).body.status,
    ).toBe('SUCCEEDED');
    // A paid order is not paid twice.
    const again = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(again.status).toBe(409);
  });

  it('an expired intent shows EXPIRED to the guest, live', async () => {
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const guest = liveSocket(server.url, { orderToken: order.body.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.body.id}` });
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[1]!]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    await server.kioskhub.db
      .updateTable('payments')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', pay.body.paymentId)
      .execute();
    const ended = nextEvent(guest, 'payment_ended');
    await server.kioskhub.services.intents.expire({ paymentId: pay.body.paymentId });
    expect(await ended).toMatchObject({
      paymentId: pay.body.paymentId,
      orderId: order.body.id,
      status: 'EXPIRED',
    });
    const status = await server.request('GET', `/api/payments/${pay.body.paymentId}/status`, {
      token: order.body.orderToken,
    });
    expect(status.body.status).toBe('EXPIRED');
    expect(
      (await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} })).status,
    ).toBe(409);
    guest.close();
    await eventually(async () => true);
  });

  it('answers bad input on the staff routes with a clear 4xx and changes nothing; documents every route', async () => {
    const audit = async () =>
      Number(
        (
          await server.kioskhub.db
            .selectFrom('audit_log')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await audit();
    const checks: [string, string, unknown, number][] = [
      ['POST', '/v1/machines/nope/table-qr/rotate', undefined, 404],
      ['GET', '/v1/machines/nope/table-qr', undefined, 404],
      ['GET', '/v1/sites/nope/table-qr-sheet', undefined, 404],
      ['PATCH', `/v1/cafe/menu/nope`, { available: false }, 404],
      ['PATCH', `/v1/cafe/menu/${cafe.sku.latte}`, {}, 400],
      ['PATCH', `/v1/cafe/menu/${cafe.sku.latte}`, { available: 'no' }, 400],
      ['PATCH', `/v1/cafe/tables/nope`, { serverUserId: null }, 404],
      ['PATCH', `/v1/cafe/tables/${cafe.tables[0]}`, { server: 'x' }, 400],
      ['GET', `/v1/cafe/sites/nope/overview`, undefined, 404],
      ['GET', `/v1/cafe/tips?from=yesterday&to=today`, undefined, 400],
      ['POST', '/api/credits/add', { customerId: 'nobody', amountMinor: 5, reason: 'x' }, 404],
    ];
    for (const [method, path, body, status] of checks) {
      const res = await server.request(method, path, body === undefined ? {} : { body });
      expect(res.status, `${method} ${path}`).toBe(status);
      expect(res.body.error.code).toBeTruthy();
    }
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[1]!]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(
      (
        await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, {
          body: { receivedMinor: 0 },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, {
          body: { receivedMinor: 10 },
        })
      ).status,
    ).toBe(409);
    expect((await server.request('GET', `/api/payments/${pay.body.paymentId}/status`)).body.status).toBe(
      'PENDING',
    );
    // A table order needs a table token; a wallet code request from another cafe's guest is its own tenant's.
    expect((await server.request('GET', '/api/menu', { token: null })).status).toBe(401);
    expect(await audit()).toBe(before);

    const doc = await server.request('GET', '/openapi.json', { token: null });
    expect(doc.status).toBe(200);
    for (const path of [
      '/api/orders',
      '/api/payments/initiate',
      '/api/payments/{id}/status',
      '/api/payments/{id}/verify',
      '/api/customers/otp',
      '/api/customers/session',
      '/api/credits/balance',
      '/api/credits/add',
      '/v1/orders/{id}/kitchen-status',
      '/v1/cafe/tips',
      '/v1/cafe/sites/{id}/overview',
      '/v1/machines/{id}/table-qr',
      '/v1/sites/{id}/table-qr-sheet',
    ]) {
      expect(Object.keys(doc.body.paths), path).toContain(path);
    }
  });
});
