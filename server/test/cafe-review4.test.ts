// Review 4 of the cafe module: each test here fails on the code it was written against, for a
// bug described in the review report (docs/cafe.md is the contract quoted in each test).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { countRows, guestOrder, makeCafe, type Cafe } from './cafe-fixtures.js';

describe.each(engines())('cafe review 4 (%s)', (engine) => {
  let server: TestServer;
  let cafe: Cafe;
  beforeAll(async () => {
    server = await startServer({ engine });
    cafe = await makeCafe(server);
  });
  afterAll(async () => server?.close());
  const tokenOf = (i: number, c: Cafe = cafe) => c.tokens[c.tables[i]!]!;

  // docs/cafe.md §5: "Refused, with nothing created: … an unknown field, a quantity of 0, a tip
  // over 100 %, both `percent` and `amountMinor` → 400". A tip given as an amount is a tip too:
  // 50.00 on an 8.50 order is a 588 % tip, which the percent form refuses.
  it('a tip given as an amount over 100 % of the order is refused like a percent over 100, nothing created', async () => {
    const before = await countRows(server, 'orders');
    const res = await guestOrder(server, cafe, cafe.tables[0], { tip: { amountMinor: 5000 } });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error?.code).toBe('VALIDATION_FAILED');
    expect(await countRows(server, 'orders')).toBe(before);
  });

  // docs/cafe.md §6: at a payLater site cash sends the order "to the kitchen at once (order_created
  // to kitchen:<site>)"; "The cash unit opens sessions for CREATED orders only; a pay-later order
  // already in the kitchen is paid with cash staff confirm (verify), or on the phone."
  // docs/cafe-payments.md §9: "a pay-later cash order the kitchen took: nothing, ever: the food was
  // made; staff collect or write it off". The counter's unit takes such an order anyway,
  // supersedes the cash staff were to collect, and its cancel CANCELS the order the kitchen is
  // cooking: it can then never be paid (initiate 409, nothing to verify) — the food is lost money.
  it('a pay-later order already sent to the kitchen is not cancelled through the counter’s cash unit; staff can still collect it', async () => {
    const own = await makeCafe(server);
    expect(
      (await server.request('PATCH', `/v1/sites/${own.siteId}`, { body: { payLater: true } })).status,
    ).toBe(200);
    const order = await guestOrder(server, own, own.tables[0]);
    expect(order.status).toBe(201);
    const phone = await server.request('POST', '/api/payments/initiate', {
      token: tokenOf(0, own),
      body: { orderId: order.body.id, method: 'cash' },
    });
    expect(phone.body).toMatchObject({ status: 'PENDING', payLater: true });
    // The kitchen has it (sent_to_kitchen_at); the guest then walks to the counter's cash unit.
    const init = await server.request('POST', '/api/cash-payment/init', {
      body: { orderNumber: order.body.orderNumber, totalAmount: 8.5 },
    });
    // …and changes their mind there (or the unit's session is cancelled).
    await server.request('POST', `/api/cash-payment/cancel/${order.body.orderNumber}`, {});
    const view = (await server.request('GET', `/api/orders/${order.body.id}`)).body;
    expect({ init: init.status, status: view.status }).toEqual({ init: 409, status: 'CREATED' });
    // The cash the kitchen's order is owed is still there for staff to confirm.
    const verify = await server.request('POST', `/api/payments/${phone.body.paymentId}/verify`, { body: {} });
    expect(verify.status, JSON.stringify(verify.body)).toBe(200);
    expect((await server.request('GET', `/api/orders/${order.body.id}`)).body.paidAt).not.toBeNull();
  });
});
