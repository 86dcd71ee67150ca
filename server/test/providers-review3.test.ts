// Review 3 of payments and providers (docs/cafe-payments.md §3–§5, docs/api.md §9, §16): money a
// provider took or sent that matches nothing an operator would otherwise see. A card status check
// that finds another amount alerts once (the webhook that follows adds none); a bank credit that
// matches no reference alerts once per credit and is audited; refunds parked on one foreign
// PaymentIntent raise one alert for it, while each refund stays parked and applies later.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, engines, startServer, type TestServer } from './harness.js';
import { makeCafe, uid, type Cafe } from './cafe-fixtures.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';
import {
  paidAtStripe,
  payByCard as payCard,
  postStripe as postStripeAs,
  sessionCompleted,
  chargeRefunded,
  rid,
} from './fixtures/stripe-events.js';
import { signatureHeader } from '../src/providers/bank/bank.signature.js';

const WHSEC = 'whsec_providers_review3';
const BANK_SECRET = 'bank-secret-providers-review3';

describe.each(engines())('providers review 3 (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;

  beforeAll(async () => {
    stripe = await fakeStripe({ webhookSecret: WHSEC });
    server = await startServer({
      engine,
      env: {
        STRIPE_SECRET_KEY: 'sk_test_review3',
        STRIPE_WEBHOOK_SECRET: WHSEC,
        STRIPE_API_BASE: stripe.url,
        BANK_WEBHOOK_SECRET: BANK_SECRET,
        PAYMENT_STATUS_POLL_MS: '3600000',
        CARD_REFUND_PARKED_ALERT_MS: '1500',
      },
    });
    cafe = await makeCafe(server);
    const res = await server.request('PATCH', `/v1/sites/${cafe.siteId}`, {
      body: { cardGateway: 'stripe' },
    });
    expect(res.status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
    await stripe?.close();
  });

  const db = () => server.kioskhub.db;
  const paymentView = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const alertsAbout = async (subjectId: string) =>
    db().selectFrom('alerts').selectAll().where('subject_id', '=', subjectId).execute();

  const payByCard = () => payCard(server, cafe);

  const postStripe = (event: Record<string, unknown>) => postStripeAs(server, WHSEC, event);

  function credit(body: Record<string, unknown>) {
    const raw = JSON.stringify(body);
    const header = signatureHeader(raw, BANK_SECRET, Math.floor(Date.now() / 1000));
    return server.request('POST', '/webhooks/bank', {
      raw,
      token: null,
      headers: { 'content-type': 'application/json', 'kioskhub-signature': header },
    });
  }

  // ---- 1. Card: the status check that finds another amount ------------------------------------

  it('a status check that finds the card paid another amount raises PAYMENT_MISMATCH at once, even if no webhook ever comes', async () => {
    const { pay, pi } = await paidAtStripe(server, cafe, stripe, 849);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    // The money the card took is kept on the payment (so staff can refund it through the API even
    // if the webhook never comes), and audited.
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
      providerPaymentId: pi,
    });
    const audit = await db()
      .selectFrom('audit_log')
      .select(['actor', 'after'])
      .where('action', '=', 'payment.amount_mismatch')
      .where('subject_id', '=', pay.paymentId)
      .execute();
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!.after!)).toMatchObject({
      receivedMinor: 849,
      currency: 'EUR',
      providerPaymentId: pi,
    });
    const alerts = await alertsAbout(pay.paymentId);
    expect(alerts.map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    expect(alerts[0]!.message).toContain('8.49 EUR'); // the currency's decimals, not minor units
    expect(alerts[0]!.message).toContain(pi);
    // Asked again (a racing poll, the check at expiry): the payment has ended, no second alert.
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    await server.kioskhub.services.intents.expire({ paymentId: pay.paymentId });
    expect(await alertsAbout(pay.paymentId)).toHaveLength(1);
  });

  it('a refund parked before a status check that finds another amount is applied by that check', async () => {
    const { pay, pi } = await paidAtStripe(server, cafe, stripe, 849);
    // Stripe's refund event comes first: no payment carries that PaymentIntent yet.
    const refundEvent = chargeRefunded(pi, 300);
    expect((await postStripe(refundEvent)).body.outcome).toBe('refund_parked');
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
      refundedMinor: 300,
    });
    const refunds = (await server.request('GET', `/v1/payments/${pay.paymentId}/refunds`)).body.items as {
      amountMinor: number;
      status: string;
    }[];
    expect(refunds.map((r) => [r.amountMinor, r.status])).toEqual([[300, 'SUCCEEDED']]);
    expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
  });

  it('the webhook that follows such a status check records the money but raises no second alert', async () => {
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 851);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect((await alertsAbout(pay.paymentId)).map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 851, pi));
    expect(res.body).toEqual({ ok: true, outcome: 'amount_mismatch' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 851,
      providerPaymentId: pi,
    });
    expect(await alertsAbout(pay.paymentId)).toHaveLength(1);
    // Webhook only (no status check first): still exactly one alert, as before.
    const other = await payByCard();
    const otherCheckout = (await paymentView(other.paymentId)).providerPaymentId as string;
    const otherPi = rid('pi');
    const first = await postStripe(sessionCompleted(otherCheckout, other.paymentId, 849, otherPi));
    expect(first.body.outcome).toBe('amount_mismatch');
    expect((await alertsAbout(other.paymentId)).map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    // The money each kept is audited once: by the status check for the first payment (its webhook
    // recorded the same amount again), by the webhook for the other.
    const audits = async (paymentId: string) =>
      (
        await db()
          .selectFrom('audit_log')
          .select('after')
          .where('action', '=', 'payment.amount_mismatch')
          .where('subject_id', '=', paymentId)
          .execute()
      ).map((r) => JSON.parse(r.after!) as Record<string, unknown>);
    expect((await audits(pay.paymentId)).map((a) => a['foundBy'])).toEqual(['status_check']);
    expect(await audits(other.paymentId)).toEqual([
      expect.objectContaining({
        receivedMinor: 849,
        currency: 'EUR',
        providerPaymentId: otherPi,
        foundBy: 'webhook',
      }),
    ]);
  });

  // ---- 2. Bank: a credit that matches no reference ------------------------------------------

  it('a bank credit matching no reference is recorded as before, alerted once per credit and audited', async () => {
    const eventId = uid('bank-evt-');
    const body = { eventId, reference: 'RF18539007547034', amountMinor: 1250, currency: 'EUR' };
    const res = await credit(body);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, outcome: 'unknown_reference' });
    const inbox = await db()
      .selectFrom('payment_events')
      .selectAll()
      .where('provider', '=', 'bank')
      .where('event_id', '=', eventId)
      .execute();
    expect(inbox.map((r) => [r.status, r.reason])).toEqual([['IGNORED', 'UNKNOWN_REFERENCE']]);
    const alerts = await alertsAbout(`bank:${eventId}`);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      kind: 'BANK_CREDIT_UNMATCHED',
      tenant_id: '*',
      resolved_at: null,
    });
    expect(alerts[0]!.message).toContain('12.50 EUR');
    expect(alerts[0]!.message).toContain('RF18539007547034');
    expect(alerts[0]!.message).toContain(eventId);
    const audit = await db()
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'payment.unmatched_credit')
      .where('subject_id', '=', `bank:${eventId}`)
      .execute();
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]!.after!)).toMatchObject({
      reference: 'RF18539007547034',
      amountMinor: 1250,
      currency: 'EUR',
      eventId,
    });
    // The bank's retries of the same credit change nothing more.
    for (let i = 0; i < 2; i++) expect((await credit(body)).body).toEqual({ ok: true, outcome: 'duplicate' });
    expect(await alertsAbout(`bank:${eventId}`)).toHaveLength(1);
    // Another credit with the same unknown reference is other money: its own alert.
    const second = uid('bank-evt-');
    expect((await credit({ ...body, eventId: second })).body.outcome).toBe('unknown_reference');
    expect(await alertsAbout(`bank:${second}`)).toHaveLength(1);
    // Listed for staff.
    const listed = (await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items;
    expect(listed.map((a: { subjectId: string }) => a.subjectId)).toContain(`bank:${eventId}`);
  });

  // ---- 3. Two refunds parked on one foreign PaymentIntent -------------------------------------

  it('two refunds parked on one PaymentIntent raise one alert for it; both stay parked and apply later, once each', async () => {
    const pay = await payByCard();
    const pi = rid('pi');
    const partial = chargeRefunded(pi, 300);
    const rest = chargeRefunded(pi, 850);
    for (const event of [partial, rest])
      expect((await postStripe(event)).body).toEqual({ ok: true, outcome: 'refund_parked' });
    const jobs = async () =>
      (
        await db().selectFrom('outbox').select('payload').where('topic', '=', 'card_refund_parked').execute()
      ).filter((j) => j.payload.includes(pi));
    await eventually(async () => (await alertsAbout(`stripe:${pi}`)).length > 0, 20_000, 'the alert');
    await eventually(async () => (await jobs()).length === 0, 20_000, 'both look-again jobs done');
    const alerts = await alertsAbout(`stripe:${pi}`);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'CARD_REFUND_UNMATCHED', tenant_id: '*', resolved_at: null });
    // Both still parked: the payment becomes known by that PaymentIntent, each applies once.
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    stripe.completeSession(checkoutId, pi);
    expect((await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi))).body.outcome).toBe(
      'settled',
    );
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'REFUNDED', refundedMinor: 850 });
    const refunds = await db()
      .selectFrom('refunds')
      .select(['amount_minor', 'status'])
      .where('payment_id', '=', pay.paymentId)
      .orderBy('created_at')
      .execute();
    expect(refunds.map((r) => [Number(r.amount_minor), r.status]).sort()).toEqual(
      [
        [300, 'SUCCEEDED'],
        [550, 'SUCCEEDED'],
      ].sort(),
    );
    const after = await alertsAbout(`stripe:${pi}`);
    expect(after).toHaveLength(1);
    expect(after[0]!.resolved_at).not.toBeNull();
    for (const event of [partial, rest]) expect((await postStripe(event)).body.outcome).toBe('duplicate');
  });
});
