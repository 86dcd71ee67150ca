// Review of how provider notifications are received (PROVIDERS.md; docs/api.md §9,
// docs/cafe-payments.md §3–§5, docs/water-payments.md "Callbacks"), against the real server:
// out-of-order and repeated deliveries, amounts and currencies, and what each answer changes.
// Tests marked `it.skip` show a bug outside what this review may change; each says why.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qrCreditedEvent } from '../src/providers/razorpay/razorpay.events.js';
import { eventually, engines, startServer, type TestServer } from './harness.js';
import { makeCafe, type Cafe } from './cafe-fixtures.js';
import { fakeStripe, type FakeStripe } from './fixtures/stripe-fake.js';
import {
  paidAtStripe,
  payByCard as payCard,
  postStripe as postStripeAs,
  sessionCompleted,
  chargeRefunded,
  rid,
} from './fixtures/stripe-events.js';
import {
  MOMO,
  startProviderFakes,
  type ProviderFakes,
  addCreditPlan,
} from './fixtures/mobile-money-fakes.js';

const WHSEC = 'whsec_provider_review';
const MOMO_KEY = 'momo-callback-k-review-0001';

describe.each(engines())('provider notifications review (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let fakes: ProviderFakes;
  let cafe: Cafe;

  beforeAll(async () => {
    stripe = await fakeStripe({ webhookSecret: WHSEC });
    fakes = await startProviderFakes();
    server = await startServer({
      engine,
      env: {
        STRIPE_SECRET_KEY: 'sk_test_review',
        STRIPE_WEBHOOK_SECRET: WHSEC,
        STRIPE_API_BASE: stripe.url,
        MOMO_API_BASE: fakes.url,
        MOMO_SUBSCRIPTION_KEY: MOMO.subscriptionKey,
        MOMO_API_USER: MOMO.apiUser,
        MOMO_API_KEY: MOMO.apiKey,
        MOMO_TARGET_ENVIRONMENT: 'sandbox',
        MOMO_CALLBACK_KEY: MOMO_KEY,
        PUBLIC_URL: 'https://kiosk.example.org',
        PAYMENT_STATUS_POLL_MS: '3600000',
        CARD_REFUND_PARKED_ALERT_MS: '2000',
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
    await fakes?.close();
  });

  const paymentView = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const alertsAbout = async (subjectId: string) =>
    server.kioskhub.db.selectFrom('alerts').selectAll().where('subject_id', '=', subjectId).execute();

  // ---- Stripe (docs/cafe-payments.md §4–§5) -------------------------------------------------

  const payByCard = () => payCard(server, cafe);

  const postStripe = (event: Record<string, unknown>) => postStripeAs(server, WHSEC, event);

  it('card paid another amount, seen first by the status check: its webhook still records the money and alerts (not a duplicate)', async () => {
    // Stripe's side: the session was paid with another total (849 instead of 850).
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 849);
    // The poll (or the last check at expiry) gets there before the webhook.
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
    });

    // cafe-payments.md §5: "paid another amount or currency → amount_mismatch: FAILED / AMOUNT_MISMATCH
    // with receivedMinor, a PAYMENT_MISMATCH alert; refund it".
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 849, pi));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, outcome: 'amount_mismatch' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
      providerPaymentId: pi,
    });
    expect((await alertsAbout(pay.paymentId)).map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    // The money taken can now be refunded to the card (it could not with receivedMinor 0).
    const refund = await server.request('POST', `/api/payments/${pay.paymentId}/refund`, {
      body: { reason: 'wrong amount charged', amountMinor: 849, to: 'original' },
    });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    // Stripe's retry of the same event, and the async twin, are duplicates.
    const again = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 849, pi));
    expect(again.body.outcome).toBe('duplicate');
    expect((await alertsAbout(pay.paymentId)).length).toBe(1);
  });

  it('card paid the exact amount, settled first by the status check: the webhook stays a duplicate', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(res.body).toEqual({ ok: true, outcome: 'duplicate' });
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', receivedMinor: 850 });
    expect(await alertsAbout(pay.paymentId)).toEqual([]);
  });

  // What a refund left behind: its rows (the API), its audit, its ledger entries.
  const refundsOf = async (paymentId: string) =>
    (await server.request('GET', `/v1/payments/${paymentId}/refunds`)).body.items as any[];
  const refundAudits = async (paymentId: string) =>
    (
      await server.kioskhub.db
        .selectFrom('audit_log')
        .select(['actor', 'after'])
        .where('subject_id', '=', paymentId)
        .where('action', '=', 'payment.refund')
        .orderBy('at')
        .orderBy('id')
        .execute()
    ).map((a): Record<string, unknown> => ({ actor: a.actor, ...(JSON.parse(a.after!) as object) }));
  const ledgerOfRefund = (refundId: string) =>
    server.kioskhub.db
      .selectFrom('ledger_entries')
      .select(['amount', 'unit'])
      .where('cause_type', '=', 'refund')
      .where('cause_id', '=', refundId)
      .execute();
  const refundIdOf = (event: ReturnType<typeof chargeRefunded>) => event.data.object.refunds.data[0]!.id;
  const refundApiCalls = (pi: string) =>
    stripe.requests
      .filter((r) => r.path === '/v1/refunds' && r.form.get('payment_intent') === pi)
      .map((r) => Object.fromEntries(r.form));
  const claimed = async (eventId: string) =>
    (await server.kioskhub.db
      .selectFrom('webhook_deliveries')
      .select('event_id')
      .where('provider', '=', 'stripe')
      .where('event_id', '=', eventId)
      .executeTakeFirst()) !== undefined;

  // cafe-payments.md §5: a `charge.refunded` that arrives before the payment is known by its
  // PaymentIntent id (its checkout event not yet applied: Stripe delivers in any order) is parked,
  // its event id left unclaimed, and applied once in the transaction that settles the payment.
  it('a charge.refunded delivered before its checkout event is not lost', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    const refundEvent = chargeRefunded(pi, 300);
    const early = await postStripe(refundEvent);
    expect(early.status).toBe(200);
    expect(early.body).toEqual({ ok: true, outcome: 'refund_parked' });
    // Stripe's retry while the payment is still unknown: parked once, nothing applied.
    expect((await postStripe(refundEvent)).body).toEqual({ ok: true, outcome: 'refund_parked' });
    expect(await claimed(refundEvent.id)).toBe(false);
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'PENDING', refundedMinor: 0 });
    expect(await refundsOf(pay.paymentId)).toEqual([]);

    const settled = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      receivedMinor: 850,
      refundedMinor: 300,
    });
    // Recorded as any refund made in the Stripe Dashboard: a SUCCEEDED row, audited, on the ledger
    // (revenue → refunds due → external), never asked of Stripe again.
    const refunds = await refundsOf(pay.paymentId);
    expect(refunds).toEqual([
      expect.objectContaining({
        amountMinor: 300,
        currency: 'EUR',
        destination: 'original',
        status: 'SUCCEEDED',
        actor: 'provider:stripe',
        reason: 'refunded at the card gateway',
        providerRefundId: refundIdOf(refundEvent),
      }),
    ]);
    expect(await refundAudits(pay.paymentId)).toEqual([
      expect.objectContaining({ actor: 'provider:stripe', amountMinor: 300, refundedMinor: 300 }),
    ]);
    const entries = await ledgerOfRefund(refunds[0].id);
    expect(entries.map((e) => Number(e.amount)).sort((a, b) => a - b)).toEqual([-300, -300, 300, 300]);
    expect(new Set(entries.map((e) => e.unit))).toEqual(new Set(['EUR']));
    expect(refundApiCalls(pi)).toEqual([]);

    // Stripe's retry (or a resend) of the refund event after the payment is known: applied already.
    const late = await postStripe(refundEvent);
    expect(late.body).toEqual({ ok: true, outcome: 'duplicate' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 300,
    });
    expect(await refundsOf(pay.paymentId)).toHaveLength(1);
    expect(await refundAudits(pay.paymentId)).toHaveLength(1);
  });

  it('two refunds parked before the checkout event (partial, then the rest) apply in order, once each', async () => {
    for (const arrival of ['in order', 'reversed'] as const) {
      const pay = await payByCard();
      const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
      const pi = rid('pi');
      stripe.completeSession(checkoutId, pi);
      const partial = chargeRefunded(pi, 300);
      const full = chargeRefunded(pi, 850);
      for (const event of arrival === 'in order' ? [partial, full] : [full, partial]) {
        expect((await postStripe(event)).body, arrival).toEqual({ ok: true, outcome: 'refund_parked' });
      }
      const settled = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
      expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
      expect(await paymentView(pay.paymentId)).toMatchObject({
        status: 'REFUNDED',
        receivedMinor: 850,
        refundedMinor: 850,
      });
      // Stripe's amount_refunded is all refunded so far: 300, then 550 more.
      const refunds = await refundsOf(pay.paymentId);
      expect(
        refunds.map((r) => [r.amountMinor, r.status, r.providerRefundId]),
        arrival,
      ).toEqual([
        [300, 'SUCCEEDED', refundIdOf(partial)],
        [550, 'SUCCEEDED', refundIdOf(full)],
      ]);
      expect((await refundAudits(pay.paymentId)).map((a) => a['refundedMinor'])).toEqual([300, 850]);
      for (const r of refunds) expect(await ledgerOfRefund(r.id)).toHaveLength(4);
      for (const event of [partial, full]) {
        expect((await postStripe(event)).body).toEqual({ ok: true, outcome: 'duplicate' });
      }
      expect(await refundsOf(pay.paymentId)).toHaveLength(2);
      expect(refundApiCalls(pi)).toEqual([]);
    }
  });

  // A parked refund whose payment never becomes known must not wait unseen: after
  // CARD_REFUND_PARKED_ALERT_MS (2 s here) it raises CARD_REFUND_UNMATCHED, once; one applied
  // before then leaves no open alert; one applied after it resolves its alert.
  it('a refund still parked after CARD_REFUND_PARKED_ALERT_MS raises one alert, resolved if its payment becomes known', async () => {
    const foreignPi = rid('pi');
    const foreign = chargeRefunded(foreignPi, 1234);
    const soon = await payByCard();
    const soonPi = rid('pi');
    const soonEvent = chargeRefunded(soonPi, 100);
    const late = await payByCard();
    const latePi = rid('pi');
    const lateEvent = chargeRefunded(latePi, 200);
    for (const event of [foreign, foreign, soonEvent, lateEvent])
      expect((await postStripe(event)).body).toEqual({ ok: true, outcome: 'refund_parked' });
    const soonCheckout = (await paymentView(soon.paymentId)).providerPaymentId as string;
    stripe.completeSession(soonCheckout, soonPi);
    expect((await postStripe(sessionCompleted(soonCheckout, soon.paymentId, 850, soonPi))).body.outcome).toBe(
      'settled',
    );

    const unmatched = async (pi: string) => alertsAbout(`stripe:${pi}`);
    const [alert] = await eventually(async () => {
      const found = await unmatched(foreignPi);
      return found.length > 0 && found;
    }, 20_000);
    expect(alert).toMatchObject({ tenant_id: '*', kind: 'CARD_REFUND_UNMATCHED', resolved_at: null });
    expect(alert!.message).toContain(`stripe reported 12.34 EUR refunded on ${foreignPi}`);
    expect(alert!.message).toContain(`refund ${refundIdOf(foreign)}, event ${foreign.id}`);
    await eventually(async () => (await unmatched(latePi)).length === 1, 20_000);
    // Each parked refund's look-again job runs and is gone (the relay deletes a batch's rows after
    // its handlers, so a moment after the alerts); the repeat delivery queued none.
    const jobsOf = async (pi: string) =>
      (
        await server.kioskhub.db
          .selectFrom('outbox')
          .select('payload')
          .where('topic', '=', 'card_refund_parked')
          .execute()
      ).filter((j) => j.payload.includes(pi));
    for (const pi of [foreignPi, soonPi, latePi])
      await eventually(async () => (await jobsOf(pi)).length === 0, 20_000, `${pi}'s job done`);
    expect(await unmatched(foreignPi)).toHaveLength(1);
    // Applied before its look-again job ran: no alert; on a box slow enough that the job ran first,
    // the alert was resolved by the settlement that applied it. Never an open one.
    expect((await unmatched(soonPi)).filter((a) => a.resolved_at === null)).toEqual([]);
    expect(await paymentView(soon.paymentId)).toMatchObject({ refundedMinor: 100 });
    // The operator sees it in the alerts list.
    const listed = (await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items;
    expect(listed.map((a: { subjectId: string }) => a.subjectId)).toContain(`stripe:${foreignPi}`);

    const lateCheckout = (await paymentView(late.paymentId)).providerPaymentId as string;
    stripe.completeSession(lateCheckout, latePi);
    expect((await postStripe(sessionCompleted(lateCheckout, late.paymentId, 850, latePi))).body.outcome).toBe(
      'settled',
    );
    expect(await paymentView(late.paymentId)).toMatchObject({ refundedMinor: 200 });
    const [resolved] = await unmatched(latePi);
    expect(resolved!.resolved_at).not.toBeNull();
    expect((await unmatched(foreignPi))[0]!.resolved_at).toBeNull();
  });

  it('a refund parked before the payment is known applies when the status check settles it', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    const refundEvent = chargeRefunded(pi, 300);
    expect((await postStripe(refundEvent)).body.outcome).toBe('refund_parked');
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      receivedMinor: 850,
      refundedMinor: 300,
      providerPaymentId: pi,
    });
    expect((await refundsOf(pay.paymentId)).map((r) => r.amountMinor)).toEqual([300]);
    expect((await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi))).body.outcome).toBe(
      'duplicate',
    );
    expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
    expect(await paymentView(pay.paymentId)).toMatchObject({ refundedMinor: 300 });
  });

  it('a refund that arrives after a status check found another amount counts against the money that check recorded', async () => {
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 849);
    await server.kioskhub.services.intents.check({ paymentId: pay.paymentId, poll: false });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      failureCode: 'AMOUNT_MISMATCH',
      receivedMinor: 849,
      providerPaymentId: pi,
    });
    // The check kept the 849 taken: the refund counts against it at once, and the checkout event
    // that follows finds the money recorded and refunds nothing more.
    const refundEvent = chargeRefunded(pi, 300);
    expect((await postStripe(refundEvent)).body.outcome).toBe('refund_recorded');
    const res = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 849, pi));
    expect(res.body).toEqual({ ok: true, outcome: 'amount_mismatch' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      receivedMinor: 849,
      refundedMinor: 300,
    });
    expect((await refundsOf(pay.paymentId)).map((r) => [r.amountMinor, r.status])).toEqual([
      [300, 'SUCCEEDED'],
    ]);
    expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
  });

  it('a refund parked before a card paid after its payment ended counts first; only the rest goes back to the card', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    const failed = await postStripe({
      ...sessionCompleted(checkoutId, pay.paymentId, 850, pi),
      type: 'checkout.session.async_payment_failed',
    });
    expect(failed.body.outcome).toBe('failed');
    const refundEvent = chargeRefunded(pi, 300);
    expect((await postStripe(refundEvent)).body.outcome).toBe('refund_parked');
    const late = await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(late.body).toEqual({ ok: true, outcome: 'not_pending' });
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'FAILED',
      receivedMinor: 850,
      refundedMinor: 850,
    });
    const refunds = await eventually(async () => {
      const list = await refundsOf(pay.paymentId);
      return list.every((r) => r.status === 'SUCCEEDED') ? list : undefined;
    });
    expect(refunds.map((r) => [r.amountMinor, r.providerRefundId === refundIdOf(refundEvent)])).toEqual([
      [300, true],
      [550, false],
    ]);
    const toCard = refunds.find((r) => r.amountMinor === 550)!;
    expect(refundApiCalls(pi)).toEqual([
      { payment_intent: pi, amount: '550', 'metadata[kioskhub_refund_id]': toCard.id },
    ]);
    expect((await alertsAbout(pay.paymentId)).map((a) => a.message)).toEqual([
      expect.stringContaining('refunded to the card'),
    ]);
    expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
  });

  it('a refund delivered twice alongside its checkout event, all at once, is applied once', async () => {
    const rounds = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const pay = await payByCard();
        const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
        const pi = rid('pi');
        stripe.completeSession(checkoutId, pi);
        return { pay, checkoutId, pi, refundEvent: chargeRefunded(pi, 300) };
      }),
    );
    await Promise.all(
      rounds.flatMap(({ pay, checkoutId, pi, refundEvent }) => [
        postStripe(refundEvent),
        postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi)),
        postStripe(refundEvent),
      ]),
    );
    for (const { pay, refundEvent } of rounds) {
      expect(await paymentView(pay.paymentId)).toMatchObject({
        status: 'PARTIALLY_REFUNDED',
        refundedMinor: 300,
      });
      expect(await refundsOf(pay.paymentId)).toHaveLength(1);
      expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
    }
  });

  // PostgreSQL runs the two deliveries in transactions of their own: a refund that finds no payment
  // while the checkout event's transaction is settling it must not be parked after that
  // transaction looked for parked refunds. Forced here: the settling transaction waits on the
  // order's row (held below), and the refund's parking on its key (taken, uncommitted, below).
  it.runIf(engine === 'postgres')(
    'a refund arriving while its checkout event is being settled waits for it and is recorded',
    async () => {
      const db = server.kioskhub.db;
      const pay = await payByCard();
      const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
      const pi = rid('pi');
      stripe.completeSession(checkoutId, pi);
      const refundEvent = chargeRefunded(pi, 300);
      const pidOf = async (tx: typeof db) =>
        (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0]!.pid;
      /** The session that waits for one of `pids` (once it does). */
      const waitingFor = (pids: number[]) =>
        eventually(async () => {
          const r = await sql<{ pid: number }>`select pid from pg_stat_activity
            where pg_blocking_pids(pid) && ${pids}::int[]`.execute(db);
          return r.rows[0]?.pid;
        });
      const gate = () => {
        let open!: () => void;
        const promise = new Promise<void>((resolve) => (open = resolve));
        return { promise, open };
      };
      const releaseOrder = gate();
      const releaseKey = gate();
      let orderPid = 0;
      let keyPid = 0;
      const orderHeld = gate();
      const keyHeld = gate();
      const holdOrder = db.transaction().execute(async (tx) => {
        await sql`select id from orders where id = ${pay.orderId} for update`.execute(tx);
        orderPid = await pidOf(tx);
        orderHeld.open();
        await releaseOrder.promise;
      });
      const holdKey = db
        .transaction()
        .execute(async (tx) => {
          // The key the refund's parking claims (payments.repo.ts `parkedKey`), taken uncommitted.
          await tx
            .insertInto('webhook_deliveries')
            .values({
              provider: `stripe:parked:${pi}`,
              event_id: refundEvent.id,
              response: '{}',
              received_at: new Date().toISOString(),
            })
            .execute();
          keyPid = await pidOf(tx);
          keyHeld.open();
          await releaseKey.promise;
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      await orderHeld.promise;
      await keyHeld.promise;
      const settling = postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi));
      const settlingPid = await waitingFor([orderPid]);
      const refunding = postStripe(refundEvent);
      await waitingFor([settlingPid, keyPid]);
      releaseOrder.open();
      await holdOrder;
      expect((await settling).body).toEqual({ ok: true, outcome: 'settled' });
      releaseKey.open();
      await holdKey;
      expect((await refunding).body).toEqual({ ok: true, outcome: 'refund_recorded' });
      expect(await paymentView(pay.paymentId)).toMatchObject({
        status: 'PARTIALLY_REFUNDED',
        refundedMinor: 300,
      });
      expect((await postStripe(refundEvent)).body.outcome).toBe('duplicate');
    },
  );

  it('a refund parked for a PaymentIntent that never becomes known changes nothing else', async () => {
    const count = async () => {
      const db = server.kioskhub.db;
      const rows = async (table: 'refunds' | 'ledger_entries' | 'alerts' | 'payments') =>
        Number(
          (
            await db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      return {
        refunds: await rows('refunds'),
        ledger: await rows('ledger_entries'),
        alerts: await rows('alerts'),
        payments: await rows('payments'),
      };
    };
    const before = await count();
    const ghost = chargeRefunded(rid('pi'), 500);
    expect((await postStripe(ghost)).body).toEqual({ ok: true, outcome: 'refund_parked' });
    expect((await postStripe(ghost)).body).toEqual({ ok: true, outcome: 'refund_parked' });
    expect(await claimed(ghost.id)).toBe(false);
    expect(await count()).toEqual(before);

    // A card payment settled meanwhile (another PaymentIntent) is untouched.
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    expect((await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi))).body.outcome).toBe(
      'settled',
    );
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', refundedMinor: 0 });
    expect(await refundsOf(pay.paymentId)).toEqual([]);
    expect((await postStripe(ghost)).body.outcome).toBe('refund_parked');
  });

  it('refund events that are not valid are answered as before and park nothing', async () => {
    const pay = await payByCard();
    const checkoutId = (await paymentView(pay.paymentId)).providerPaymentId as string;
    const pi = rid('pi');
    stripe.completeSession(checkoutId, pi);
    const refundEvent = chargeRefunded(pi, 300);
    const payload = JSON.stringify(refundEvent);
    const send = (raw: string, signature?: string) =>
      server.request('POST', '/webhooks/stripe', {
        raw,
        token: null,
        headers: {
          'content-type': 'application/json',
          ...(signature !== undefined ? { 'stripe-signature': signature } : {}),
        },
      });
    const unsigned = await send(payload);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error.code).toBe('BAD_SIGNATURE');
    const forged = await send(
      payload,
      Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_someone_else' }),
    );
    expect(forged.status).toBe(401);
    const notJson = await send(
      'not json',
      Stripe.webhooks.generateTestHeaderString({ payload: 'not json', secret: WHSEC }),
    );
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('VALIDATION_FAILED');
    // Signed, but without a PaymentIntent, an amount or a currency: ignored.
    const object = refundEvent.data.object;
    for (const broken of [
      { ...object, payment_intent: null },
      { ...object, amount_refunded: '300' },
      { ...object, currency: null },
    ]) {
      const res = await postStripe({ ...refundEvent, id: rid('evt'), data: { object: broken } });
      expect(res.body).toEqual({ ok: true, outcome: 'ignored' });
    }
    expect(await claimed(refundEvent.id)).toBe(false);

    expect((await postStripe(sessionCompleted(checkoutId, pay.paymentId, 850, pi))).body.outcome).toBe(
      'settled',
    );
    expect(await paymentView(pay.paymentId)).toMatchObject({ status: 'SUCCEEDED', refundedMinor: 0 });
    expect(await refundsOf(pay.paymentId)).toEqual([]);
    // The event itself, never stored, is applied as any refund after the payment is known.
    expect((await postStripe(refundEvent)).body.outcome).toBe('refund_recorded');
    expect(await paymentView(pay.paymentId)).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 300,
    });
  });

  // ---- Razorpay (docs/api.md §9) ------------------------------------------------------------

  const razorpayEvent = (qrCodeId: string, paymentId: string, status: string, event = 'qr_code.credited') => {
    const e = qrCreditedEvent({ qrCodeId, amountPaise: 2000, paymentId });
    Object.assign(e.payload.payment.entity, { status, captured: status === 'captured' });
    return { ...e, event };
  };
  const ordersOf = async (machineId: string) =>
    (await server.request('GET', `/v1/orders?machineId=${machineId}&limit=50`)).body.items as any[];

  it('Razorpay: a payment first delivered not captured takes effect once when it arrives captured', async () => {
    const m = await server.createVendingMachine(`RV${randomBytes(3).toString('hex')}`, 2000);
    const paymentId = rid('pay');
    const first = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'authorized'), {
      eventId: rid('evt'),
    });
    expect(first.body).toEqual({ ok: true, ignored: 'NOT_CAPTURED' });
    expect(await ordersOf(m.id)).toEqual([]);
    const captured = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(captured.body).toEqual({ ok: true, orderId: expect.any(String) });
    const again = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(again.body).toEqual({ ok: true, duplicate: true, orderId: captured.body.orderId });
    const orders = await ordersOf(m.id);
    expect(orders.map((o) => [o.id, o.status])).toEqual([[captured.body.orderId, 'PAID']]);
  });

  it('Razorpay: a failure or refund event after the success is acknowledged and changes nothing', async () => {
    const m = await server.createVendingMachine(`RV${randomBytes(3).toString('hex')}`, 2000);
    const paymentId = rid('pay');
    const paid = await server.postWebhook(razorpayEvent(m.qrCodeId, paymentId, 'captured'), {
      eventId: rid('evt'),
    });
    expect(paid.body).toEqual({ ok: true, orderId: expect.any(String) });
    for (const [event, status, ignored] of [
      ['payment.failed', 'failed', 'EVENT_NOT_HANDLED'],
      // A refund made outside Kioskhub (in the Razorpay Dashboard): not one of ours.
      ['refund.processed', 'refunded', 'UNKNOWN_REFUND'],
      ['payment.refunded', 'refunded', 'EVENT_NOT_HANDLED'],
    ] as const) {
      const body = razorpayEvent(m.qrCodeId, paymentId, status, event) as {
        contains: string[];
        payload: Record<string, unknown>;
      };
      if (event === 'refund.processed') {
        body.contains = ['refund', 'payment'];
        body.payload.refund = {
          entity: {
            id: rid('rfnd'),
            entity: 'refund',
            amount: 2000,
            currency: 'INR',
            payment_id: paymentId,
            notes: [],
            status: 'processed',
            created_at: Math.floor(Date.now() / 1000),
          },
        };
      }
      const res = await server.postWebhook(body, { eventId: rid('evt') });
      expect(res.status, event).toBe(200);
      expect(res.body).toEqual({ ok: true, ignored });
    }
    const order = await server.request('GET', `/v1/orders/${paid.body.orderId}`);
    expect(order.body.status).toBe('PAID');
    expect((await server.request('GET', `/v1/payment-events/razorpay/${paymentId}`)).body).toMatchObject({
      status: 'PROCESSED',
      reason: null,
      orderId: paid.body.orderId,
    });
  });

  // ---- MTN MoMo (docs/water-payments.md, step 6) --------------------------------------------

  // MoMo's status API says SUCCESSFUL in another currency than asked: the money cannot be applied
  // nor kept in the payment's currency, so the payment fails and staff are told exactly what was
  // taken, to refund it (docs/water-payments.md, step 6); the customer is not told it "did not go
  // through".
  it('MoMo: money taken in another currency ends FAILED with an alert naming what was taken', async () => {
    const tenantId = 'default';
    await server.kioskhub.services.tenants.setDefaultCountryCode(tenantId, '256');
    const planId = rid('plan');
    await addCreditPlan(server, planId, tenantId);
    const phone = `+25677${String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0')}`;
    const { payment } = await server.kioskhub.db.transaction().execute(async (tx) => {
      const customer = await server.kioskhub.services.customers.findOrCreate(tenantId, phone, 'test', tx);
      const plan = (await server.kioskhub.services.customers.repo.plan(tenantId, planId, tx))!;
      return server.kioskhub.services.mobileMoney.startPlanPurchase(tx, { customer, plan, channel: 'test' });
    });
    server.kioskhub.services.outbox.flushSoon();
    const req = await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    req.status = 'SUCCESSFUL';
    req.body.currency = 'EUR';
    const cb = await fetch(`${server.url}/webhooks/momo/${payment.id}?key=${MOMO_KEY}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'SUCCESSFUL' }),
    });
    expect(cb.status).toBe(200);
    const failed = await eventually(
      async () => {
        const p = await paymentView(payment.id);
        return p.status === 'FAILED' ? p : undefined;
      },
      10_000,
      'the payment to fail',
    );
    expect(failed).toMatchObject({ failureCode: 'AMOUNT_MISMATCH' });
    const alerts = await alertsAbout(payment.id);
    expect(alerts.map((a) => a.kind)).toEqual(['PAYMENT_AMOUNT_MISMATCH']);
    expect(alerts[0]!.message).toContain('5000 EUR');
    expect(alerts[0]!.message).toContain('refund it');
    // Nothing applied: no plan credit, and nothing kept in UGX that it is not.
    expect(failed.receivedMinor).toBe(0);
  });
});
