// Review 6 of cafe payments from a phone (docs/cafe.md, docs/cafe-payments.md): only failing tests
// for real bugs, each with the promise, the code at fault and the fix. Uses the fake Stripe of
// fixtures/stripe-fake.ts through `stripeCafe`, on both engines.
import { beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestServer } from './harness.js';
import { stripeCafe, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { chargeRefunded, paidAtStripe, postStripe, sessionCompleted } from './fixtures/stripe-events.js';

const WHSEC = 'whsec_cafe_review6_tests';

describe.each(engines())('cafe review 6: card payments (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;
  const started = stripeCafe(engine, WHSEC);
  beforeAll(() => void ({ server, stripe, cafe } = started));

  const paymentView = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const refundsOf = async (id: string) =>
    (await server.request('GET', `/v1/payments/${id}/refunds`)).body.items as {
      amountMinor: number;
      destination: string;
      status: string;
    }[];

  /** A guest's €8.50 card payment, settled by its checkout webhook. */
  async function paidByCard() {
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 850);
    const settled = await postStripe(server, WHSEC, sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
    return { paymentId: pay.paymentId, pi };
  }

  // Promise (docs/cafe-payments.md §5): "`charge.refunded` | our own refunds: `refund_in_step`; a
  // refund made in the Stripe Dashboard: `refund_recorded` (a `SUCCEEDED` refund row, capped at
  // what remains)"; and docs/cafe.md §7 lets staff refund a card payment `to: "refund_due"` (or
  // `"credit"`), money that never goes through Stripe.
  // Code at fault: server/src/modules/payments/card-payments.ts:187 (`recordRefund`) takes Stripe's
  // `amount_refunded` (what Stripe refunded) minus the payment's `refunded_minor`, which also counts
  // refunds handed back by staff or credited to a wallet. A Dashboard refund of the same size as an
  // earlier cash hand-back is answered `refund_in_step` and never recorded: €3 left the Stripe account
  // and the payment, the refunds list and the ledger do not show it.
  // Fix: compare Stripe's `amount_refunded` with the sum of the payment's non-FAILED refunds whose
  // destination is `original` (the ones that go through Stripe), then cap at what remains.
  it('a Dashboard refund after staff handed part back in cash is recorded, not taken for our own', async () => {
    const { paymentId, pi } = await paidByCard();
    const byHand = await server.request('POST', `/api/payments/${paymentId}/refund`, {
      body: { amountMinor: 300, reason: 'cold soup, cash back', to: 'refund_due' },
    });
    expect(byHand.status, JSON.stringify(byHand.body)).toBe(201);
    expect(byHand.body).toMatchObject({ destination: 'refund_due', status: 'DUE' });
    // Later someone refunds €3 to the card in the Stripe Dashboard: Stripe has refunded 300 in all.
    const calls = stripe.requests.length;
    const news = await postStripe(server, WHSEC, chargeRefunded(pi, 300));
    expect(news.body).toEqual({ ok: true, outcome: 'refund_recorded' });
    expect(await paymentView(paymentId)).toMatchObject({ status: 'PARTIALLY_REFUNDED', refundedMinor: 600 });
    expect((await refundsOf(paymentId)).map((r) => [r.destination, r.amountMinor, r.status]).sort()).toEqual([
      ['original', 300, 'SUCCEEDED'],
      ['refund_due', 300, 'DUE'],
    ]);
    expect(stripe.requests.length).toBe(calls);
  });
});
