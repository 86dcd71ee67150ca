// A Stripe refund answered `pending` / `requires_action` waited for Stripe's refund webhooks only:
// with those events off or a delivery lost it stayed PENDING unseen. Now it is asked about with
// Stripe's Retrieve a refund API (GET /v1/refunds/{id}) like Razorpay's, settled as the webhook
// settles it. And a refund whose outcome Kioskhub could not learn (REFUND_STILL_PENDING) can be
// settled by staff as the provider's dashboard shows: POST /v1/refunds/:id/settle (docs/api.md §8).
import { beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, type TestServer } from './harness.js';
import { stripeCafe, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { paidAtStripe, postStripe, sessionCompleted } from './fixtures/stripe-events.js';
import { ledgerInvariants } from './ledger-invariants.js';
import { signInAs } from './fixtures/staff.js';

const WHSEC = 'whsec_stripe_refund_checks';
const JWT_SECRET = 'test-jwt-secret-stripe-refund-checks-0123';
// Checks 100 ms, 400 ms, 1 s after the pending answer, then at the 1.2 s bound: the alert.
const FIRST_CHECK_MS = 100;
const CHECK_FOR_MS = 1_200;

describe.each(engines())('Stripe refund status checks and staff settling (%s)', (engine) => {
  let server: TestServer;
  let stripe: FakeStripe;
  let cafe: Cafe;

  const get = (path: string) => server.request('GET', path);
  const post = (path: string, body: unknown, token?: string) =>
    server.request('POST', path, { body, ...(token ? { token } : {}) });
  const balance = async (kind: string) => {
    const q = `ownerType=site&ownerId=${cafe.siteId}&kind=${kind}&unit=EUR`;
    return ((await get(`/v1/ledger/accounts?${q}`)).body.items[0]?.balance as number | undefined) ?? 0;
  };
  type Alert = { kind: string; subjectId: string; message: string; resolvedAt: string | null };
  const alertsOf = async (subjectId: string) =>
    ((await get('/v1/alerts')).body.items as Alert[]).filter((a) => a.subjectId === subjectId);
  const auditOf = async (refundId: string) => (await get(`/v1/audit?subjectId=${refundId}`)).body.items;
  type Refund = {
    id: string;
    status: string;
    actor: string;
    providerRefundId: string | null;
    error: string | null;
  };
  const refundOf = async (paymentId: string, refundId: string) =>
    ((await get(`/v1/payments/${paymentId}/refunds`)).body.items as Refund[]).find((r) => r.id === refundId)!;
  const lookups = (reId: string) => stripe.requests.filter((r) => r.path === `/v1/refunds/${reId}`).length;

  /** A guest's €8.50 card payment, settled by its checkout webhook. */
  async function paidByCard() {
    const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 850);
    const settled = await postStripe(server, WHSEC, sessionCompleted(checkoutId, pay.paymentId, 850, pi));
    expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
    return { paymentId: pay.paymentId, pi };
  }

  /** A card payment (`paidByCard`), then a refund of it that Stripe answers `status`. */
  async function pendingCardRefund(status: 'pending' | 'requires_action') {
    const { paymentId, pi } = await paidByCard();
    stripe.refundStatus(pi, status);
    const res = await post(`/v1/payments/${paymentId}/refunds`, { amountMinor: 850, reason: 'cold soup' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const refund = await eventually(
      async () => {
        const r = await refundOf(paymentId, res.body.id);
        return r.providerRefundId ? r : undefined;
      },
      10_000,
      'the pending answer stored',
    );
    expect(refund.status).toBe('PENDING');
    return { paymentId, refund, reId: refund.providerRefundId! };
  }

  const ended = (paymentId: string, refundId: string) =>
    eventually(
      async () => {
        const r = await refundOf(paymentId, refundId);
        return r.status !== 'PENDING' ? r : undefined;
      },
      10_000,
      'the refund settled',
    );

  /** A refund left PENDING whose checks ran out: its open REFUND_STILL_PENDING alert. */
  const stillPending = (refundId: string) =>
    eventually(
      async () => (await alertsOf(refundId)).find((a) => a.kind === 'REFUND_STILL_PENDING'),
      10_000,
      'the REFUND_STILL_PENDING alert',
    );

  const started = stripeCafe(engine, WHSEC, {
    JWT_SECRET,
    STRIPE_SECRET_KEY: 'sk_test_refund_checks',
    JOB_RETRY_BASE_MS: '20',
    JOB_POLL_MS: '50',
    REFUND_STATUS_POLL_MS: String(FIRST_CHECK_MS),
    REFUND_STATUS_POLL_FOR_MS: String(CHECK_FOR_MS),
  });
  beforeAll(() => void ({ server, stripe, cafe } = started));

  it('pending, then succeeded at Stripe: the check settles it SUCCEEDED; its later webhook is a duplicate', async () => {
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');
    const { paymentId, refund, reId } = await pendingCardRefund('pending');
    await eventually(async () => lookups(reId) >= 1, 10_000, 'the first GET /v1/refunds/{id}');
    expect((await refundOf(paymentId, refund.id)).status).toBe('PENDING');
    const event = stripe.refundUpdated(reId, 'succeeded');
    const done = await ended(paymentId, refund.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', providerRefundId: reId, error: null });
    expect(stripe.requests.find((r) => r.path === `/v1/refunds/${reId}`)!.auth).toBe(
      'Bearer sk_test_refund_checks',
    );
    // The payment's €8.50 in revenue, and out again to the payer.
    expect(await balance('refunds_due')).toBe(due);
    expect(await balance('revenue')).toBe(revenue);
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({ status: 'REFUNDED' });
    expect(await auditOf(refund.id)).toEqual([
      expect.objectContaining({ action: 'refund.complete', actor: 'provider:stripe' }),
    ]);
    const late = await postStripe(server, WHSEC, event);
    expect(late.body).toEqual({ ok: true, outcome: 'refund_duplicate', refundId: refund.id });
    expect(await alertsOf(refund.id)).toEqual([]);
  });

  it('requires_action, then failed at Stripe: FAILED as refund.failed does (money back, REFUND_FAILED)', async () => {
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');
    const { paymentId, refund, reId } = await pendingCardRefund('requires_action');
    await eventually(async () => lookups(reId) >= 1, 10_000, 'the first GET /v1/refunds/{id}');
    stripe.refundUpdated(reId, 'failed', { failureReason: 'expired_or_canceled_card' });
    const failed = await ended(paymentId, refund.id);
    expect(failed).toMatchObject({
      status: 'FAILED',
      error: `Stripe refund ${reId} failed: expired_or_canceled_card`,
    });
    expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({
      status: 'SUCCEEDED',
      refundedMinor: 0,
    });
    // The payment's €8.50 in revenue, out to refunds due, and back: the payment keeps it.
    expect(await balance('revenue')).toBe(revenue + 850);
    expect(await balance('refunds_due')).toBe(due);
    expect((await alertsOf(refund.id)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
    expect(await auditOf(refund.id)).toEqual([
      expect.objectContaining({ action: 'refund.fail', actor: 'provider:stripe' }),
    ]);
  });

  it('staff settle a refund Stripe left unknown both ways, audited, the alert resolved; bad requests change nothing', async () => {
    const a = await pendingCardRefund('pending');
    const b = await pendingCardRefund('pending');
    // Stripe does not know refund A (404 resource_missing): the alert at once; B's checks run out.
    const objectA = stripe.refunds.get(a.reId)!;
    stripe.refunds.delete(a.reId);
    const alertA = await stillPending(a.refund.id);
    expect(alertA.message).toMatch(/Stripe answered 404 resource_missing: No such refund/);
    expect(alertA.message).toMatch(new RegExp(`POST /v1/refunds/${a.refund.id}/settle`));
    const alertB = await stillPending(b.refund.id);
    expect(alertB.message).toMatch(/Stripe still said pending after/);
    stripe.refunds.set(a.reId, objectA);
    // C: a refund staff hand back (DUE): completed, never settled.
    const c = await paidByCard();
    const cRes = await post(`/v1/payments/${c.paymentId}/refunds`, {
      amountMinor: 850,
      reason: 'cold soup',
      to: 'refund_due',
    });
    expect(cRes.status, JSON.stringify(cRes.body)).toBe(201);
    const dueRefund = await refundOf(c.paymentId, cRes.body.id);
    expect(dueRefund.status).toBe('DUE');
    const revenue = await balance('revenue');
    const due = await balance('refunds_due');

    // Bad requests: refused with a stable code, nothing changes.
    const settle = (id: string, body: unknown, token?: string) =>
      post(`/v1/refunds/${id}/settle`, body, token);
    const note = 'Stripe Dashboard: refund succeeded on 5 Dec';
    for (const body of [
      {},
      { outcome: 'made', note },
      { outcome: 'succeeded' },
      { outcome: 'succeeded', note: '  ' },
      { outcome: 'succeeded', note, amountMinor: 1 },
    ]) {
      const res = await settle(a.refund.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    const kitchen = await signInAs(server, 'default', 'staff');
    expect((await settle(a.refund.id, { outcome: 'succeeded', note }, kitchen)).body.error.code).toBe(
      'FORBIDDEN',
    );
    expect((await post('/v1/tenants', { id: `other-${engine}`, name: 'Other' })).status).toBe(201);
    const otherAdmin = await signInAs(server, `other-${engine}`, 'admin');
    const foreign = await settle(a.refund.id, { outcome: 'succeeded', note }, otherAdmin);
    expect([foreign.status, foreign.body.error.code]).toEqual([404, 'NOT_FOUND']);
    const unknown = await settle('01NOSUCHREFUND', { outcome: 'failed', note });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'NOT_FOUND']);
    const notPending = await settle(dueRefund.id, { outcome: 'succeeded', note });
    expect([notPending.status, notPending.body.error.code, notPending.body.error.details]).toEqual([
      409,
      'INVALID_STATE',
      { status: 'DUE', destination: 'refund_due', providerRefundId: null },
    ]);
    expect(await refundOf(c.paymentId, dueRefund.id)).toEqual(dueRefund);
    expect(await refundOf(a.paymentId, a.refund.id)).toEqual(a.refund);
    expect(await refundOf(b.paymentId, b.refund.id)).toEqual(b.refund);
    expect(await auditOf(a.refund.id)).toEqual([]);
    expect(await balance('refunds_due')).toBe(due);
    expect(await balance('revenue')).toBe(revenue);

    // A: the Dashboard says succeeded.
    const doneA = await settle(a.refund.id, { outcome: 'succeeded', note });
    expect(doneA.status, JSON.stringify(doneA.body)).toBe(200);
    expect(doneA.body).toMatchObject({ id: a.refund.id, status: 'SUCCEEDED', providerRefundId: a.reId });
    expect(await auditOf(a.refund.id)).toEqual([
      expect.objectContaining({
        action: 'refund.complete',
        actor: a.refund.actor,
        before: { status: 'PENDING' },
        after: expect.objectContaining({ status: 'SUCCEEDED', providerRefundId: a.reId, note }),
      }),
    ]);
    expect(await alertsOf(a.refund.id)).toEqual([
      expect.objectContaining({ kind: 'REFUND_STILL_PENDING', resolvedAt: expect.any(String) }),
    ]);
    expect((await get(`/v1/payments/${a.paymentId}`)).body).toMatchObject({ status: 'REFUNDED' });

    // B: the Dashboard says failed.
    const failNote = 'Stripe Dashboard: refund failed, card closed';
    const doneB = await settle(b.refund.id, { outcome: 'failed', note: failNote });
    expect(doneB.status, JSON.stringify(doneB.body)).toBe(200);
    expect(doneB.body).toMatchObject({ status: 'FAILED', providerRefundId: b.reId });
    expect(doneB.body.error).toMatch(
      new RegExp(`Stripe refund ${b.reId} failed, as admin-token read in the Stripe Dashboard: ${failNote}`),
    );
    expect((await get(`/v1/payments/${b.paymentId}`)).body).toMatchObject({
      status: 'SUCCEEDED',
      refundedMinor: 0,
    });
    expect(await auditOf(b.refund.id)).toEqual([
      expect.objectContaining({
        action: 'refund.fail',
        actor: b.refund.actor,
        after: expect.objectContaining({ status: 'FAILED', note: failNote, refundedMinor: 0 }),
      }),
    ]);
    const bAlerts = await alertsOf(b.refund.id);
    expect(bAlerts.map((x) => [x.kind, x.resolvedAt === null])).toEqual(
      expect.arrayContaining([
        ['REFUND_STILL_PENDING', false],
        ['REFUND_FAILED', true],
      ]),
    );
    // A out of refunds due to the payer; B back from refunds due to revenue.
    expect(await balance('refunds_due')).toBe(due - 1700);
    expect(await balance('revenue')).toBe(revenue + 850);

    // Settled once: again → 409, nothing changes.
    const again = await settle(a.refund.id, { outcome: 'failed', note });
    expect([again.status, again.body.error.code, again.body.error.details?.status]).toEqual([
      409,
      'INVALID_STATE',
      'SUCCEEDED',
    ]);
    expect((await get(`/v1/payments/${a.paymentId}`)).body).toMatchObject({ status: 'REFUNDED' });

    // Stripe's news afterwards: agreeing is a duplicate; disagreeing raises REFUND_PROVIDER_MISMATCH.
    const agree = await postStripe(server, WHSEC, stripe.refundUpdated(a.reId, 'succeeded'));
    expect(agree.body).toEqual({ ok: true, outcome: 'refund_duplicate', refundId: a.refund.id });
    const disagree = await postStripe(server, WHSEC, stripe.refundUpdated(b.reId, 'succeeded'));
    expect(disagree.body).toMatchObject({ outcome: 'refund_ignored', ignored: 'REFUND_FAILED' });
    expect((await alertsOf(b.refund.id)).map((x) => x.kind)).toContain('REFUND_PROVIDER_MISMATCH');
    expect(await balance('refunds_due')).toBe(due - 1700);
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });
});
