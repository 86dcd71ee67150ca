// Cafe bank transfers (docs/cafe-payments.md): an EPC QR code for the exact amount with a unique RF
// reference, the bank's signed credit notification matched by that reference, each event counted
// once, underpaid kept PENDING with what arrived shown to staff, overpaid settled with the surplus
// to the payer's wallet or to staff review, refunds never more than was paid, bad input refused
// with nothing changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connected, engines, liveSocket, nextEvent, startServer, type TestServer } from './harness.js';
import { CAFE_IBAN, countRows, guestOrder, makeBankCafe, makeCafe, uid, type Cafe } from './cafe-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';
import { normaliseRfReference } from '../src/providers/bank/rf-reference.js';

const SECRET = 'bank-webhook-secret-for-tests';
const IBAN = CAFE_IBAN;

describe.each(engines())('cafe bank transfers (%s)', (engine) => {
  let server: TestServer;
  let cafe: Cafe;
  beforeAll(async () => {
    server = await startServer({ engine, env: { BANK_WEBHOOK_SECRET: SECRET } });
    cafe = await makeBankCafe(server, { bic: 'COBADEFFXXX' });
  });
  afterAll(async () => server?.close());

  const tableToken = (i = 0) => cafe.tokens[cafe.tables[i]!]!;

  async function payByTransfer(i = 0, token = tableToken(i)) {
    const order = await guestOrder(server, cafe, cafe.tables[i]);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token,
      body: { orderId: order.body.id, method: 'bank_transfer' },
    });
    expect(pay.status, JSON.stringify(pay.body)).toBe(201);
    return { order: order.body, pay: pay.body };
  }

  function credit(
    body: Record<string, unknown>,
    opts: { secret?: string; t?: number; header?: string | null } = {},
  ) {
    const raw = JSON.stringify(body);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const header =
      opts.header === undefined
        ? signatureHeader(raw, opts.secret ?? SECRET, opts.t ?? Math.floor(Date.now() / 1000))
        : opts.header;
    if (header !== null) headers['kioskhub-signature'] = header;
    return server.request('POST', '/webhooks/bank', { raw, token: null, headers });
  }

  const status = async (paymentId: string) =>
    (await server.request('GET', `/api/payments/${paymentId}/status`)).body;

  it('answers with an EPC payload for the exact amount, a unique RF reference and a PNG', async () => {
    const a = await payByTransfer();
    const b = await payByTransfer();
    expect(a.pay).toMatchObject({
      status: 'PENDING',
      method: 'bank_transfer',
      amountMinor: 850,
      currency: 'EUR',
    });
    const { payload, reference, qrPngUrl } = a.pay.epc;
    expect(normaliseRfReference(reference)).toBe(reference);
    expect(reference).not.toBe(b.pay.epc.reference);
    expect(payload).toBe(`BCD\n002\n1\nSCT\nCOBADEFFXXX\nCorner Cafe\n${IBAN}\nEUR8.50\n\n${reference}`);
    expect(qrPngUrl).toMatch(/^data:image\/png;base64,/);
    const png = Buffer.from(qrPngUrl.split(',')[1], 'base64');
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const row = await server.request('GET', `/v1/payments/${a.pay.paymentId}`);
    expect(row.body).toMatchObject({
      provider: 'bank',
      reference,
      method: 'bank_transfer',
      status: 'PENDING',
    });
    // A reloaded guest page gets the same QR code again (order token); strangers do not.
    const again = await server.request('GET', `/api/payments/${a.pay.paymentId}/epc`, {
      token: a.order.orderToken,
    });
    expect(again.status).toBe(200);
    expect(again.body.epc).toEqual(a.pay.epc);
    const stranger = await server.request('GET', `/api/payments/${a.pay.paymentId}/epc`, {
      token: b.order.orderToken,
    });
    expect(stranger.status).toBe(404);
    // A day to arrive, not the quarter of an hour of a mobile-money request.
    expect(Date.parse(a.pay.expiresAt) - Date.now()).toBeGreaterThan(23 * 3_600_000);
  });

  it('a signed credit for the reference settles the order once; duplicates change nothing', async () => {
    const { order, pay } = await payByTransfer();
    const guest = liveSocket(server.url, { orderToken: order.orderToken });
    await connected(guest);
    await guest.emitWithAck('subscribe', { room: `order:${order.id}` });
    const completed = nextEvent(guest, 'payment_completed');
    const eventId = uid('bank-evt-');
    const body = {
      eventId,
      reference: pay.epc.reference,
      amountMinor: 850,
      currency: 'EUR',
      bookedAt: new Date().toISOString(),
    };
    const res = await credit(body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      outcome: 'settled',
      paymentId: pay.paymentId,
      surplusMinor: 0,
    });
    expect(await completed).toMatchObject({
      paymentId: pay.paymentId,
      method: 'bank_transfer',
      amountMinor: 850,
    });
    guest.close();
    expect(await status(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    const noLonger = await server.request('GET', `/api/payments/${pay.paymentId}/epc`);
    expect(noLonger.status).toBe(409);
    const paid = await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken });
    expect(paid.body.paidAt).not.toBeNull();

    const before = await countRows(server, 'ledger_entries');
    const again = await credit(body);
    expect(again.body).toMatchObject({ ok: true, outcome: 'duplicate' });
    // Same event, another signature time: still once.
    const replay = await credit(body, { t: Math.floor(Date.now() / 1000) - 60 });
    expect(replay.body.outcome).toBe('duplicate');
    const concurrent = await Promise.all([1, 2, 3].map(() => credit(body)));
    expect(concurrent.map((r) => r.body.outcome)).toEqual(['duplicate', 'duplicate', 'duplicate']);
    // The same event id carrying another credit is refused; the first delivery stands.
    const reused = await credit({ ...body, amountMinor: 900 });
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe('CONFLICT');
    expect(await countRows(server, 'ledger_entries')).toBe(before);
    expect(await status(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
  });

  it('refuses forged, expired, unsigned and malformed notifications, changing nothing', async () => {
    const { pay } = await payByTransfer();
    const body = {
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference,
      amountMinor: 850,
      currency: 'EUR',
    };
    const before = await countRows(server, 'payments');
    const forged = await credit(body, { secret: 'not-the-bank-secret-0000' });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('BAD_SIGNATURE');
    const expired = await credit(body, { t: Math.floor(Date.now() / 1000) - 301 });
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toMatch(/5 minutes/);
    expect((await credit(body, { header: null })).status).toBe(401);
    expect((await credit(body, { header: 't=1,v1=zz' })).status).toBe(401);
    for (const bad of [
      { ...body, amountMinor: 8.5 },
      { ...body, amountMinor: -850 },
      { ...body, amountMinor: '850' },
      { ...body, currency: 'eur' },
      { ...body, eventId: '' },
      { eventId: body.eventId },
    ]) {
      const res = await credit(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect(await countRows(server, 'payments')).toBe(before);
    expect(await status(pay.paymentId)).toMatchObject({ status: 'PENDING', receivedMinor: 0 });
    // The refused event id was not used up: the genuine delivery still applies.
    expect((await credit(body)).body.outcome).toBe('settled');
  });

  it('underpaid stays PENDING with the amount received shown to staff; the rest completes it', async () => {
    const { order, pay } = await payByTransfer(1);
    const first = await credit({
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference.replace(/(.{4})/g, '$1 ').toLowerCase(),
      amountMinor: 500,
      currency: 'EUR',
    });
    expect(first.body).toMatchObject({ outcome: 'underpaid', receivedMinor: 500, missingMinor: 350 });
    expect(await status(pay.paymentId)).toMatchObject({ status: 'PENDING', receivedMinor: 500 });
    const overview = await server.request('GET', `/v1/cafe/sites/${cafe.siteId}/overview`);
    const shown = overview.body.transfersToConfirm.find((p: any) => p.paymentId === pay.paymentId);
    expect(shown).toMatchObject({
      receivedMinor: 500,
      amountMinor: 850,
      mismatched: true,
      reference: pay.epc.reference,
    });
    const unpaid = await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken });
    expect(unpaid.body.paidAt).toBeNull();
    // Staff cannot confirm less than is due.
    const verify = await server.request('POST', `/api/payments/${pay.paymentId}/verify`, {
      body: { receivedMinor: 500 },
    });
    expect(verify.status).toBe(409);

    const rest = await credit({
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference,
      amountMinor: 350,
      currency: 'EUR',
    });
    expect(rest.body).toMatchObject({ outcome: 'settled', receivedMinor: 850, surplusMinor: 0 });
    expect(await status(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
  });

  it('the part of a pending transfer that arrived is not refunded: it completes the order or goes to review once', async () => {
    const { order, pay } = await payByTransfer(1);
    const ref = pay.epc.reference;
    await credit({ eventId: uid('bank-evt-'), reference: ref, amountMinor: 500, currency: 'EUR' });
    const before = await server.request('GET', `/v1/payments/${pay.paymentId}`);
    for (const body of [
      { reason: 'underpaid, sent back', to: 'refund_due' },
      { reason: 'x', amountMinor: 100 },
    ]) {
      const refused = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, { body });
      expect(refused.status, JSON.stringify(refused.body)).toBe(409);
      expect(refused.body.error).toMatchObject({
        code: 'INVALID_STATE',
        details: { paymentId: pay.paymentId, status: 'PENDING', receivedMinor: 500 },
      });
    }
    expect((await server.request('GET', `/v1/payments/${pay.paymentId}`)).body).toEqual(before.body);
    expect((await server.request('GET', `/v1/payments/${pay.paymentId}/refunds`)).body.items).toEqual([]);
    // The rest arrives: the order is paid with all of its money, which may then be refunded.
    const rest = await credit({
      eventId: uid('bank-evt-'),
      reference: ref,
      amountMinor: 350,
      currency: 'EUR',
    });
    expect(rest.body).toMatchObject({ outcome: 'settled', receivedMinor: 850 });
    expect(
      (await server.request('GET', `/api/orders/${order.id}`, { token: order.orderToken })).body.paidAt,
    ).not.toBeNull();
    const back = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'all of it', to: 'refund_due' },
    });
    expect(back.body).toMatchObject({ amountMinor: 850, status: 'DUE' });

    // Another transfer that ends part paid: its 500 goes to review once, nothing else is owed.
    const other = await payByTransfer(1);
    await credit({
      eventId: uid('bank-evt-'),
      reference: other.pay.epc.reference,
      amountMinor: 500,
      currency: 'EUR',
    });
    expect(
      (
        await server.request('POST', `/api/payments/${other.pay.paymentId}/refund`, {
          body: { reason: 'sent back', to: 'refund_due' },
        })
      ).status,
    ).toBe(409);
    await server.kioskhub.db
      .updateTable('payments')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', other.pay.paymentId)
      .execute();
    await server.kioskhub.services.intents.expire({ paymentId: other.pay.paymentId });
    expect(await status(other.pay.paymentId)).toMatchObject({ status: 'EXPIRED', refundedMinor: 0 });
    const parked = (await server.request('GET', '/v1/cash/unallocated')).body.items.filter(
      (i: any) => i.orderNumber === other.order.orderNumber,
    );
    expect(parked.map((i: any) => [i.reason, i.amountMinor])).toEqual([['PART_PAID_ENDED', 500]]);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('overpaid completes; with no known payer the surplus goes to staff review', async () => {
    const { order, pay } = await payByTransfer();
    const unallocatedBefore = await countRows(server, 'ledger_entries');
    const res = await credit({
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference,
      amountMinor: 1000,
      currency: 'EUR',
    });
    expect(res.body).toMatchObject({
      outcome: 'settled',
      receivedMinor: 1000,
      surplusMinor: 150,
      surplusTo: 'review',
    });
    expect(await status(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 1000 });
    // The receipt shows what the order kept and no change: the surplus is not handed back at the
    // table, it went to staff review (so totalAmount = amountPaid − change still holds).
    const job = await server.kioskhub.db
      .selectFrom('print_jobs')
      .select('receipt')
      .where('order_id', '=', pay.orderId)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(job.receipt)).toMatchObject({
      amountPaid: 8.5,
      change: 0,
      paymentMethod: 'Bank transfer',
    });
    // Staff find it by the order's number (the one on the receipt), not its internal id.
    expect(order.orderNumber).toMatch(/^T/);
    const items = (await server.request('GET', '/v1/cash/unallocated')).body.items;
    const item = items.find((i: any) => i.orderNumber === order.orderNumber);
    expect(item).toMatchObject({ amountMinor: 150, currency: 'EUR', reason: 'OVERPAID', status: 'OPEN' });
    expect(await countRows(server, 'ledger_entries')).toBeGreaterThan(unallocatedBefore);
    // Staff hand it back: resolved once, on the ledger.
    const resolved = await server.request('POST', `/v1/cash/unallocated/${item.id}/resolve`, {
      body: { action: 'returned', note: 'sent back to the payer' },
    });
    expect(resolved.status).toBe(200);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a surplus is recorded in the payment’s currency, even after the site’s currency changed', async () => {
    const { order, pay } = await payByTransfer();
    const changed = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { currency: 'KWD' } });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    try {
      const res = await credit({
        eventId: uid('bank-evt-'),
        reference: pay.epc.reference,
        amountMinor: 1000,
        currency: 'EUR',
      });
      expect(res.body).toMatchObject({ outcome: 'settled', surplusMinor: 150, surplusTo: 'review' });
      const items = (await server.request('GET', '/v1/cash/unallocated')).body.items;
      const item = items.find((i: any) => i.orderNumber === order.orderNumber);
      expect(item).toMatchObject({ amountMinor: 150, currency: 'EUR', reason: 'OVERPAID' });
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    } finally {
      await server.request('PATCH', `/v1/sites/${cafe.siteId}`, { body: { currency: 'EUR' } });
    }
  });

  it('overpaid by a signed-in wallet customer: the surplus goes to their wallet', async () => {
    const customer = await server.kioskhub.services.customers.findOrCreate(
      'default',
      '+4915112345678',
      'test',
    );
    const token = await server.kioskhub.services.auth.issueCustomerToken({
      tenantId: 'default',
      customerId: customer.id,
      tableId: cafe.tables[0]!,
    });
    const { pay } = await payByTransfer(0, token);
    const res = await credit({
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference,
      amountMinor: 1200,
      currency: 'EUR',
    });
    expect(res.body).toMatchObject({ outcome: 'settled', surplusMinor: 350, surplusTo: 'wallet' });
    const balance = await server.request('GET', '/api/credits/balance', { token });
    expect(balance.body.balanceMinor).toBe(350);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('money for a payment that no longer takes it, an unknown reference or another currency is never applied silently', async () => {
    const { order, pay } = await payByTransfer();
    // The guest switched to cash and paid; the transfer arrives afterwards.
    const cash = await server.request('POST', '/api/payments/initiate', {
      token: tableToken(),
      body: { orderId: order.id, method: 'cash' },
    });
    await server.request('POST', `/api/payments/${cash.body.paymentId}/verify`, { body: {} });
    const late = await credit({
      eventId: uid('bank-evt-'),
      reference: pay.epc.reference,
      amountMinor: 850,
      currency: 'EUR',
    });
    expect(late.body).toMatchObject({ outcome: 'not_pending', surplusTo: 'review' });
    expect(await status(pay.paymentId)).toMatchObject({ status: 'FAILED', failureCode: 'SUPERSEDED' });
    const items = (await server.request('GET', '/v1/cash/unallocated')).body.items;
    expect(items.find((i: any) => i.orderNumber === order.orderNumber)).toMatchObject({
      amountMinor: 850,
      reason: 'PAYMENT_NOT_PENDING',
    });

    const unknown = await credit({
      eventId: uid('bank-evt-'),
      reference: 'RF18539007547034',
      amountMinor: 850,
      currency: 'EUR',
    });
    expect(unknown.body).toMatchObject({ ok: true, outcome: 'unknown_reference' });

    const other = await payByTransfer();
    const usd = await credit({
      eventId: uid('bank-evt-'),
      reference: other.pay.epc.reference,
      amountMinor: 850,
      currency: 'USD',
    });
    expect(usd.body).toMatchObject({ outcome: 'currency_mismatch' });
    expect(await status(other.pay.paymentId)).toMatchObject({ status: 'PENDING', receivedMinor: 0 });
    const alerts = await server.request('GET', '/v1/alerts');
    expect(JSON.stringify(alerts.body)).toContain(other.pay.paymentId);
  });

  it('staff confirm a transfer from the statement; refunds are never more than was paid', async () => {
    const { pay } = await payByTransfer();
    const verified = await server.request('POST', `/api/payments/${pay.paymentId}/verify`, { body: {} });
    expect(verified.body).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    // A bank transfer has no refund API: it is handed back (refund due) or credited.
    const original = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold soup', to: 'original' },
    });
    expect(original.status).toBe(503);
    const tooMuch = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold soup', to: 'refund_due', amountMinor: 851 },
    });
    expect(tooMuch.status).toBe(409);
    const part = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold soup', to: 'refund_due', amountMinor: 500 },
    });
    expect(part.status).toBe(201);
    const rest = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'cold soup', to: 'refund_due', amountMinor: 351 },
    });
    expect(rest.status).toBe(409);
    expect(await status(pay.paymentId)).toMatchObject({ status: 'PARTIALLY_REFUNDED', refundedMinor: 500 });
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a cafe without a bank account, or not in euros, is refused with a clear error and nothing written', async () => {
    const plain = await makeCafe(server);
    const order = await guestOrder(server, plain, plain.tables[0]);
    const before = await countRows(server, 'payments');
    const res = await server.request('POST', '/api/payments/initiate', {
      token: plain.tokens[plain.tables[0]!]!,
      body: { orderId: order.body.id, method: 'bank_transfer' },
    });
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({
      code: 'PROVIDER_NOT_CONFIGURED',
      message: 'this cafe has no bank account for transfers',
    });

    const siteId = uid('gbp');
    await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'London Cafe', currency: 'GBP' } });
    await server.request('PATCH', `/v1/sites/${siteId}`, {
      body: { bankAccount: { name: 'London Cafe', iban: IBAN } },
    });
    const sku = uid('tea');
    await server.request('POST', '/v1/products', { body: { sku, name: 'Tea', priceMinor: 250, siteId } });
    const table = uid('T');
    await server.createMachine(table, { kind: 'table', siteId, name: 'Table' });
    const link = await server.request('GET', `/v1/machines/${table}/table-link`);
    const gbp = await server.request('POST', '/api/orders', {
      token: link.body.token,
      body: { siteId, tableId: table, items: [{ sku, qty: 1 }] },
    });
    const beforeGbp = await countRows(server, 'payments');
    const refused = await server.request('POST', '/api/payments/initiate', {
      token: link.body.token,
      body: { orderId: gbp.body.id, method: 'bank_transfer' },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/euros only/);
    expect(await countRows(server, 'payments')).toBe(beforeGbp);
    expect(beforeGbp).toBe(before);
  });
});

describe('bank webhook without BANK_WEBHOOK_SECRET', () => {
  it('answers 503 PROVIDER_NOT_CONFIGURED', async () => {
    const server = await startServer();
    try {
      const res = await server.request('POST', '/webhooks/bank', { raw: '{}', token: null });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
    } finally {
      await server.close();
    }
  });
});
