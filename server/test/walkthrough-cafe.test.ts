// Defects found walking through the cafe documentation as an operator (docs/cafe.md,
// docs/cafe-payments.md), each fixed: what the docs promise, on both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { countRows, guestOrder, makeBankCafe, type Cafe } from './cafe-fixtures.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';

const SECRET = 'bank-webhook-secret-for-walkthrough';

describe.each(engines())('cafe walkthrough defects (%s)', (engine) => {
  let server: TestServer;
  let cafe: Cafe;
  beforeAll(async () => {
    server = await startServer({ engine, env: { BANK_WEBHOOK_SECRET: SECRET } });
    cafe = await makeBankCafe(server);
  });
  afterAll(async () => server?.close());

  async function paidInCash() {
    const order = await guestOrder(server, cafe, cafe.tables[0]);
    expect(order.status).toBe(201);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(pay.status).toBe(201);
    const verify = await server.request('POST', `/api/payments/${pay.body.paymentId}/verify`, { body: {} });
    expect(verify.status).toBe(200);
    return pay.body.paymentId as string;
  }

  /** A table order with a bank-transfer payment waiting, and a signed credit for it. */
  async function transferWaiting() {
    const order = await guestOrder(server, cafe, cafe.tables[1]);
    const pay = await server.request('POST', '/api/payments/initiate', {
      token: cafe.tokens[cafe.tables[1]!]!,
      body: { orderId: order.body.id, method: 'bank_transfer' },
    });
    expect(pay.status).toBe(201);
    const credit = (fields: Record<string, unknown>) => {
      const raw = JSON.stringify({
        reference: pay.body.epc.reference,
        amountMinor: pay.body.amountMinor,
        currency: 'EUR',
        ...fields,
      });
      return server.request('POST', '/webhooks/bank', {
        raw,
        token: null,
        headers: {
          'content-type': 'application/json',
          'kioskhub-signature': signatureHeader(raw, SECRET, Math.floor(Date.now() / 1000)),
        },
      });
    };
    return { order: order.body, paymentId: pay.body.paymentId as string, credit };
  }

  // cafe.md §7 / api.md §8: "Never more in total than the payment kept ... (409 INVALID_STATE,
  // details: {remainingMinor}), also when two staff refund at once". Without amountMinor the
  // refund is "all that remains"; once nothing remains the answer is 400 VALIDATION_FAILED
  // "amountMinor must be a positive integer", a field the caller never sent.
  it('a refund of "all that remains" of a fully refunded payment answers 409 INVALID_STATE with remainingMinor 0', async () => {
    const paymentId = await paidInCash();
    const first = await server.request('POST', `/api/payments/${paymentId}/refund`, {
      body: { reason: 'cold latte', to: 'refund_due' },
    });
    expect(first.status).toBe(201);
    const refundsBefore = await countRows(server, 'refunds');
    const entriesBefore = await countRows(server, 'ledger_entries');

    const again = await server.request('POST', `/api/payments/${paymentId}/refund`, {
      body: { reason: 'second click', to: 'refund_due' },
    });
    expect(again.status, JSON.stringify(again.body)).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'INVALID_STATE', details: { remainingMinor: 0 } });
    expect(await countRows(server, 'refunds')).toBe(refundsBefore);
    expect(await countRows(server, 'ledger_entries')).toBe(entriesBefore);
  });

  it('two staff refunding "all that remains" at once: one 201, the other 409 INVALID_STATE', async () => {
    const paymentId = await paidInCash();
    const answers = await Promise.all(
      [1, 2].map(() =>
        server.request('POST', `/api/payments/${paymentId}/refund`, {
          body: { reason: 'two staff at once', to: 'refund_due' },
        }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409]);
    const loser = answers.find((a) => a.status !== 201)!;
    expect(loser.body.error).toMatchObject({ code: 'INVALID_STATE', details: { remainingMinor: 0 } });
  });

  // cafe.md §8: without an SMS API no wallet code can reach the guest; the request used to answer
  // 202 {"sent": true} and the guest waited for an SMS that never came.
  it('a wallet code asked for where no SMS API is configured is 503 PROVIDER_NOT_CONFIGURED; no code is made', async () => {
    const before = await countRows(server, 'customer_otps');
    const res = await server.request('POST', '/api/customers/otp', {
      token: cafe.tokens[cafe.tables[0]!]!,
      body: { phone: '+254712345678' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    expect(res.body.error.code).toBe('PROVIDER_NOT_CONFIGURED');
    expect(res.body.error.message).toMatch(/AT_USERNAME and AT_API_KEY.*pay another way/);
    expect(await countRows(server, 'customer_otps')).toBe(before);
  });

  // api.md §8: `dispatch` is where a machine's dispense stands; a cafe order has none. It read
  // "PENDING" for a paid table order, as if a vending machine still had to dispense it.
  it('a paid cafe order’s payment event says dispatch NONE', async () => {
    const { order, paymentId, credit } = await transferWaiting();
    const eventId = `walk-paid-${paymentId}`;
    const res = await credit({ eventId, bookedAt: '2026-12-03' });
    expect(res.body).toMatchObject({ ok: true, outcome: 'settled' });
    const event = await server.request('GET', `/v1/payment-events/bank/${eventId}`);
    expect(event.status, JSON.stringify(event.body)).toBe(200);
    expect(event.body).toMatchObject({ status: 'PROCESSED', orderId: order.id, dispatch: 'NONE' });
  });

  it('a guest route without a token says to send the table’s token, not to scan the QR again', async () => {
    const res = await server.request('GET', '/api/menu', { token: null });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/send the table's token as Bearer/);
    const stale = await server.request('GET', '/api/menu', { token: 'not-a-table-token' });
    expect(stale.body.error.message).toMatch(/scan the table QR again/);
  });

  // cafe-payments.md §3: `bookedAt` is an "optional date-time"; "signed, but not JSON or a field
  // wrong → 400 VALIDATION_FAILED naming the field, nothing stored". Any string up to 64 characters
  // is accepted and the credit applied.
  it('a signed bank credit whose bookedAt is not a date-time is refused, nothing stored', async () => {
    const { paymentId, credit } = await transferWaiting();
    const res = await credit({ eventId: `walk-${paymentId}`, bookedAt: 'yesterday' });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(res.body.error.message).toContain('bookedAt');
    const status = await server.request('GET', `/api/payments/${paymentId}/status`);
    expect(status.body).toMatchObject({ status: 'PENDING', receivedMinor: 0 });
  });
});
