// Stripe card refunds to the same standard as Razorpay's (docs/cafe-payments.md §6, docs/api.md §8).
// A refund Stripe refused (a 4xx such as `charge_already_refunded`) was retried by the job 8 times
// before it ended FAILED; now it ends FAILED at once, on the one failure path (the payment keeps the
// money again, refunds_due gives it back, REFUND_FAILED alert, `refund.fail` audit), with Stripe's
// code and message. A refund Stripe answers `pending` or `requires_action` was SUCCEEDED at once;
// now it waits, PENDING with Stripe's id, for `refund.updated` / `refund.failed` /
// `charge.refund.updated` on the signed Stripe webhook, settled once each like Razorpay's news.
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, type TestServer } from './harness.js';
import { stripeCafe, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { paidAtStripe, postStripe, rid, sessionCompleted } from './fixtures/stripe-events.js';
import { ledgerInvariants } from './ledger-invariants.js';

const WHSEC = 'whsec_stripe_refund_tests';

describe.each(engines())('Stripe refunds: refusals, pending refunds and their webhooks (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;

  const get = (path: string) => server.request('GET', path);
  const post = (path: string, body: unknown) => server.request('POST', path, { body });
  const balance = async (kind: string) => {
    const q = `ownerType=site&ownerId=${cafe.siteId}&kind=${kind}&unit=EUR`;
    return ((await get(`/v1/ledger/accounts?${q}`)).body.items[0]?.balance as number | undefined) ?? 0;
  };
  const alertsOf = async (subjectId: string) =>
    ((await get('/v1/alerts')).body.items as { kind: string; subjectId: string; message: string }[]).filter(
      (a) => a.subjectId === subjectId,
    );
  const auditOf = async (refundId: string) => (await get(`/v1/audit?subjectId=${refundId}`)).body.items;
  type Refund = { id: string; status: string; providerRefundId: string | null; error: string | null };
  const refundOf = async (paymentId: string, refundId: string) =>
    ((await get(`/v1/payments/${paymentId}/refunds`)).body.items as Refund[]).find((r) => r.id === refundId)!;
  const refundCalls = (pi: string) =>
    stripe.requests.filter((r) => r.path === '/v1/refunds' && r.form.get('payment_intent') === pi);

  /** A guest's €8.50 card payment at the cafe, settled by its checkout webhook. */
  async function paidByCard() {
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 850);
    const settled = await postStripe(server, WHSEC, sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
    return { paymentId: pay.paymentId, pi };
  }

  /** Staff refund `amountMinor` to the card; resolves once the job has had Stripe's answer. */
  async function refundToCard(paymentId: string, amountMinor: number, done: (r: Refund) => boolean) {
    const res = await post(`/v1/payments/${paymentId}/refunds`, { amountMinor, reason: 'cold soup' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ status: 'PENDING', destination: 'original', amountMinor });
    const refundId = res.body.id as string;
    return eventually(
      async () => {
        const r = await refundOf(paymentId, refundId);
        return done(r) ? r : undefined;
      },
      10_000,
      `refund ${refundId} answered by Stripe`,
    );
  }

  const started = stripeCafe(engine, WHSEC, {
    STRIPE_SECRET_KEY: 'sk_test_refunds',
    JOB_RETRY_BASE_MS: '20',
    JOB_POLL_MS: '50',
  });
  beforeAll(() => void ({ server, stripe, cafe } = started));

  it('a refusal ends the refund FAILED at once with Stripe’s code: one call, money back, alert, audit', async () => {
    const { paymentId, pi } = await paidByCard();
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');
    stripe.refuseRefunds(pi, {
      status: 400,
      type: 'invalid_request_error',
      code: 'charge_already_refunded',
      message: `Charge ${rid('ch')} has already been refunded.`,
    });
    const failed = await refundToCard(paymentId, 850, (r) => r.status !== 'PENDING');
    expect(failed).toMatchObject({ status: 'FAILED', providerRefundId: null });
    expect(failed.error).toMatch(
      /^Stripe answered 400 charge_already_refunded: Charge ch_\w+ has already been refunded\.$/,
    );
    // Stripe's answer on this refund: asked once, under the refund's own idempotency key.
    await new Promise((r) => setTimeout(r, 300));
    expect(refundCalls(pi).map((c) => c.idempotencyKey)).toEqual([`refund-${failed.id}`]);

    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'SUCCEEDED',
      refundedMinor: 0,
    });
    expect(await balance('revenue')).toBe(revenue);
    expect(await balance('refunds_due')).toBe(due);
    const alerts = await alertsOf(failed.id);
    expect(alerts.map((a) => a.kind)).toEqual(['REFUND_FAILED']);
    expect(alerts[0]!.message).toMatch(/refused by Stripe: Stripe answered 400 charge_already_refunded/);
    // Stripe says it was refunded already (from its Dashboard, say): staff look before refunding again.
    expect(alerts[0]!.message).toMatch(
      /says the payment was refunded already .*check there before refunding/,
    );
    expect(await auditOf(failed.id)).toEqual([
      expect.objectContaining({
        action: 'refund.fail',
        actor: 'provider:stripe',
        before: expect.objectContaining({ status: 'PENDING' }),
        after: expect.objectContaining({ status: 'FAILED', paymentId, amountMinor: 850 }),
      }),
    ]);
    const jobFailed = ((await get('/v1/alerts')).body.items as { kind: string; message: string }[]).filter(
      (a) => a.kind === 'JOB_FAILED' && a.message.includes('(refund)'),
    );
    expect(jobFailed).toEqual([]);

    // A lock timeout (429) is Stripe busy, not a refusal: asked again, the refund is made.
    stripe.refuseRefunds(
      pi,
      {
        status: 429,
        type: 'invalid_request_error',
        code: 'lock_timeout',
        message: 'This object cannot be accessed right now.',
      },
      1,
    );
    const done = await refundToCard(paymentId, 300, (r) => r.status !== 'PENDING');
    expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: expect.stringMatching(/^re_/) });
    expect(
      refundCalls(pi)
        .slice(1)
        .map((c) => c.idempotencyKey),
    ).toEqual([`refund-${done.id}`, `refund-${done.id}`]);
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 300,
    });

    // A refund Stripe answers `failed` straight away gave nothing back: FAILED, with its reason.
    stripe.refundStatus(pi, 'failed', 'expired_or_canceled_card');
    const gone = await refundToCard(paymentId, 550, (r) => r.status !== 'PENDING');
    expect(gone).toMatchObject({ status: 'FAILED' });
    expect(gone.error).toMatch(/^Stripe refund re_\w+ failed: expired_or_canceled_card$/);
    expect(refundCalls(pi)).toHaveLength(4);
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({ refundedMinor: 300 });
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a pending refund waits for refund.updated; a repeat, a twin event, a forged or empty one change nothing', async () => {
    const { paymentId, pi } = await paidByCard();
    stripe.refundStatus(pi, 'pending');
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');
    const pending = await refundToCard(paymentId, 850, (r) => r.providerRefundId !== null);
    expect(pending).toMatchObject({ status: 'PENDING', error: null });
    const reId = pending.providerRefundId!;
    expect(stripe.refunds.get(reId)).toMatchObject({ status: 'pending', amount: 850, payment_intent: pi });
    expect(await balance('refunds_due')).toBe(due + 850);

    const succeeded = stripe.refundUpdated(reId, 'succeeded');
    // Signed with another secret, and signed but without its refund object: refused, nothing changes.
    const forged = await postStripe(server, 'whsec_someone_else', succeeded);
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('BAD_SIGNATURE');
    const empty = await postStripe(server, WHSEC, { ...succeeded, id: rid('evt'), data: { object: {} } });
    expect(empty.status).toBe(400);
    expect(empty.body.error).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(empty.body.error.message).toMatch(/carries no refund object/);
    expect(await refundOf(paymentId, pending.id)).toEqual(pending);
    expect(await balance('refunds_due')).toBe(due + 850);

    const res = await postStripe(server, WHSEC, succeeded);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, outcome: 'refund_processed', refundId: pending.id });
    const done = await refundOf(paymentId, pending.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: reId, error: null });
    expect(await balance('refunds_due')).toBe(due);
    expect(await balance('revenue')).toBe(revenue - 850);
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'REFUNDED',
      refundedMinor: 850,
    });

    // The same delivery again, and the same news as charge.refund.updated: once.
    expect((await postStripe(server, WHSEC, succeeded)).body).toMatchObject({ outcome: 'refund_duplicate' });
    const twin = { ...succeeded, id: rid('evt'), type: 'charge.refund.updated' };
    expect((await postStripe(server, WHSEC, twin)).body).toMatchObject({
      outcome: 'refund_duplicate',
      refundId: pending.id,
    });
    expect(await refundOf(paymentId, pending.id)).toEqual(done);
    expect(await balance('refunds_due')).toBe(due);
    expect(await auditOf(pending.id)).toEqual([
      expect.objectContaining({
        action: 'refund.complete',
        actor: 'provider:stripe',
        after: expect.objectContaining({ status: 'SUCCEEDED', providerRefundId: reId }),
      }),
    ]);
    expect(await alertsOf(pending.id)).toEqual([]);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('twin events racing (refund.updated and charge.refund.updated at once): one settles it, the other is a duplicate', async () => {
    const { paymentId, pi } = await paidByCard();
    stripe.refundStatus(pi, 'pending');
    const pending = await refundToCard(paymentId, 850, (r) => r.providerRefundId !== null);
    const updated = stripe.refundUpdated(pending.providerRefundId!, 'succeeded');
    const twin = { ...updated, id: rid('evt'), type: 'charge.refund.updated' };
    // PostgreSQL: both deliveries read the refund PENDING, then wait at the payment's row lock.
    let release = () => {};
    let holder: Promise<void> = Promise.resolve();
    if (engine === 'postgres') {
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      holder = server.kioskhub.db.transaction().execute(async (tx) => {
        await sql`select id from payments where id = ${paymentId} for update`.execute(tx);
        locked();
        await new Promise<void>((r) => (release = r));
      });
      await isLocked;
    }
    const answers = Promise.all([postStripe(server, WHSEC, updated), postStripe(server, WHSEC, twin)]);
    if (engine === 'postgres')
      await eventually(
        async () => {
          const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity
            where wait_event_type = 'Lock' and query like '%"payments"%for update'`.execute(
            server.kioskhub.db,
          );
          return Number(rows[0]!.n) >= 2;
        },
        5_000,
        'both deliveries waiting for the payment',
      );
    release();
    await holder;
    const outcomes = (await answers).map((r) => r.body.outcome as string).sort();
    expect(outcomes).toEqual(['refund_duplicate', 'refund_processed']);
    expect(await refundOf(paymentId, pending.id)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await auditOf(pending.id)).toHaveLength(1);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('refund.failed ends a refund that required action FAILED: money back, alert, audit; contrary news raises a mismatch', async () => {
    const { paymentId, pi } = await paidByCard();
    stripe.refundStatus(pi, 'requires_action');
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');
    const pending = await refundToCard(paymentId, 500, (r) => r.providerRefundId !== null);
    expect(pending.status).toBe('PENDING');
    const reId = pending.providerRefundId!;
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'PARTIALLY_REFUNDED',
      refundedMinor: 500,
    });
    // A refund Kioskhub never asked for (made in the Dashboard) is answered 2xx and changes nothing.
    const unknown = await postStripe(server, WHSEC, {
      id: rid('evt'),
      object: 'event',
      type: 'refund.failed',
      data: { object: { ...stripe.refunds.get(reId)!, id: rid('re'), amount: 499, status: 'failed' } },
    });
    expect(unknown.body).toEqual({ ok: true, outcome: 'refund_ignored', ignored: 'UNKNOWN_REFUND' });
    expect((await refundOf(paymentId, pending.id)).status).toBe('PENDING');

    const failedEvent = stripe.refundUpdated(reId, 'failed', { failureReason: 'lost_or_stolen_card' });
    const res = await postStripe(server, WHSEC, failedEvent);
    expect(res.body).toEqual({ ok: true, outcome: 'refund_failed', refundId: pending.id });
    const failed = await refundOf(paymentId, pending.id);
    expect(failed).toMatchObject({ status: 'FAILED', providerRefundId: reId });
    expect(failed.error).toBe(`Stripe refund ${reId} failed: lost_or_stolen_card`);
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'SUCCEEDED',
      refundedMinor: 0,
    });
    expect(await balance('revenue')).toBe(revenue);
    expect(await balance('refunds_due')).toBe(due);
    expect((await alertsOf(pending.id)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
    expect(await auditOf(pending.id)).toEqual([
      expect.objectContaining({
        action: 'refund.fail',
        actor: 'provider:stripe',
        after: expect.objectContaining({ status: 'FAILED', paymentId, amountMinor: 500 }),
      }),
    ]);
    // Again, and as refund.updated: nothing more.
    expect((await postStripe(server, WHSEC, failedEvent)).body).toMatchObject({
      outcome: 'refund_duplicate',
    });
    const again = { ...failedEvent, id: rid('evt'), type: 'refund.updated' };
    expect((await postStripe(server, WHSEC, again)).body).toMatchObject({ outcome: 'refund_duplicate' });
    expect(await auditOf(pending.id)).toHaveLength(1);

    // Stripe later says it succeeded after all: no money moves, staff are told.
    const late = await postStripe(server, WHSEC, stripe.refundUpdated(reId, 'succeeded'));
    expect(late.body).toMatchObject({ outcome: 'refund_ignored', ignored: 'REFUND_FAILED' });
    expect((await alertsOf(pending.id)).map((a) => a.kind).sort()).toEqual([
      'REFUND_FAILED',
      'REFUND_PROVIDER_MISMATCH',
    ]);
    expect(await balance('refunds_due')).toBe(due);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });
});
