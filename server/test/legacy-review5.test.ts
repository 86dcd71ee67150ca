// Review of the compatibility protocols field devices speak unchanged (api.md §11, §13–§15, §20),
// read against the devices' own public code: each test shows a defect found on review, against the
// real server and database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestOrder, makeCafe, uid } from './cafe-fixtures.js';
import { engines, type Engine, type TestServer, startServer } from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

describe.each(engines())('legacy review 5 (%s)', (engine: Engine) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  // docs/cafe.md §6 ("At the counter's cash unit"): "What the guest owes there is the order's
  // `totalMinor`: the subtotal plus the tip they chose." … "When the bills cover the total, the order
  // is paid once … `PAID`, the total with the tip as the site's revenue …, one receipt".
  // docs/api.md §15: "`receipt`: {… subTotal, tax, totalAmount, paymentMethod, amountPaid?, change?,
  // currency} (major units …)".
  // What is wrong: the receipt of a tipped table order states `totalAmount` without the tip (the
  // order's `amount`, its subtotal) while `amountPaid` and `change` are counted against the total
  // with the tip. The earlier kiosk's printer (kiosk_peripherals.py `_print_totals` /
  // `_print_payment_info`) prints "TOTAL 8.50 / Paid 10.00 / Change 0.65": the customer's receipt
  // understates what was charged by the tip and does not add up (8.50 + 0.65 ≠ 10.00).
  // Cause: server/src/modules/printing/receipt.ts:28-30 builds subTotal/tax/totalAmount from
  // `order.amount` only, and server/src/modules/orders/order-settlement.ts:123 passes no tip.
  // Fix: give buildReceipt the amount the payment was for (payment.amount_minor, or amount +
  // tipMinor for a table order): `totalAmount` = that, and add a `tip` line (an extra field the
  // earlier clients ignore), keeping subTotal + tax + tip = totalAmount = amountPaid − change.
  it('the receipt of a tipped table order paid at the counter states the total with the tip', async () => {
    const cafe = await makeCafe(server);
    const printer = await server.createMachine(uid('P'), { kind: 'printer', siteId: cafe.siteId });
    const unit = await server.createMachine(uid('C'), { kind: 'cash', siteId: cafe.siteId });
    // Latte 3.50 + soup 5.00 = 8.50, tip 10 % = 0.85: the guest owes 9.35.
    const order = await guestOrder(server, cafe, cafe.tables[0], { tip: { percent: 10 } });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    expect(order.body).toMatchObject({ subtotalMinor: 850, tipMinor: 85, totalMinor: 935 });
    const orderNumber = order.body.orderNumber as string;

    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(unit.key),
      body: { orderNumber, totalAmount: 9.35 },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    // A €10 note: paid, 0.65 change (the cash unit and the cash screen say so).
    const bill = await server.request('POST', '/api/cash-payment/update', {
      ...key(unit.key),
      body: { orderNumber, amountAdded: 10 },
    });
    expect(bill.status).toBe(200);
    expect(bill.body).toMatchObject({ isComplete: true, totalRequired: 9.35, change: 0.65 });

    const next = await server.request('GET', '/api/receipt/queue/next', key(printer.key));
    expect(next.status).toBe(200);
    const receipt = next.body.receiptData.receipt;
    expect(receipt.orderNumber).toBe(orderNumber);
    expect({ amountPaid: receipt.amountPaid, change: receipt.change }).toEqual({
      amountPaid: 10,
      change: 0.65,
    });
    // What the guest was charged, and what the printed lines add up to.
    expect(receipt.totalAmount).toBe(9.35);
    expect(Math.round((receipt.amountPaid - receipt.change) * 100)).toBe(
      Math.round(receipt.totalAmount * 100),
    );
  });
});
