// A provider refund whose job ran out of attempts ends FAILED (no provider id stored, the money
// counted back on the payment). If the provider made it all the same, its later news used to find
// no refund (no provider id, not PENDING): answered `UNKNOWN_REFUND`, and nobody was told the payer
// had money back that the books count as kept. Now our refund id goes with each refund (Razorpay
// `notes.kioskhub_refund_id`, Stripe `metadata[kioskhub_refund_id]`) and its news finds the refund
// by it (or, without it, as the one refund of that payment and amount whose job gave up): one
// REFUND_PROVIDER_MISMATCH alert, the provider's id stored (later deliveries are duplicates),
// audited, no money moved.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import { fakeRazorpay, razorpayEnv, type FakeRazorpay } from './fake-razorpay.js';
import { FAST_JOBS, razorpayRefundEvent, razorpayRefundReads } from './razorpay-refund-fixtures.js';
import { ledgerInvariants } from './ledger-invariants.js';
import { stripeCafe, uid, type Cafe } from './cafe-fixtures.js';
import type { FakeStripe } from './fixtures/stripe-fake.js';
import { chargeRefunded, paidAtStripe, postStripe, rid, sessionCompleted } from './fixtures/stripe-events.js';
import { createRazorpayClient } from '../src/providers/razorpay/razorpay.api.js';
import { fetchRazorpayRefundNews } from '../src/providers/razorpay/razorpay.refunds.js';
import { createStripeGateway } from '../src/providers/stripe/stripe.gateway.js';

type Alert = { kind: string; subjectId: string; message: string };
type Audit = { action: string; actor: string; before: any; after: any };

for (const engine of engines()) {
  describe(`Razorpay news of a refund whose job gave up (${engine})`, () => {
    let server: TestServer;
    let razorpay: FakeRazorpay;
    const { get, post, balance, alertsOf, refundOf, paidPayment } = razorpayRefundReads(() => server);
    const auditOf = async (id: string) => (await get(`/v1/audit?subjectId=${id}`)).body.items as Audit[];

    /**
     * A refund of `amountMinor` that Razorpay made but whose every answer was lost: the job gave up
     * and the refund is FAILED with no Razorpay id. Returns it and Razorpay's refund.
     */
    async function gaveUpRefund(payment: { id: string; providerPaymentId: string }, amountMinor: number) {
      razorpay.loseAnswers(payment.providerPaymentId);
      const res = await post(`/v1/payments/${payment.id}/refunds`, { amountMinor, reason: 'item jammed' });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const failed = await eventually(
        async () => {
          const r = await refundOf(payment.id, refundId);
          return r.status === 'FAILED' ? r : undefined;
        },
        25_000,
        'the refund whose job gave up',
      );
      razorpay.loseAnswers(payment.providerPaymentId, false);
      expect(failed).toMatchObject({ status: 'FAILED', providerRefundId: null });
      expect(failed.error).toMatch(/504/);
      const calls = razorpay.calls.filter((c) => c.key === refundId);
      expect(calls).toHaveLength(8);
      // Every request carried our refund id in its notes (and as its idempotency key).
      for (const c of calls)
        expect(c.body).toEqual({ amount: amountMinor, notes: { kioskhub_refund_id: refundId } });
      const atRazorpay = razorpay.refunds.filter((r) => r.key === refundId);
      expect(atRazorpay).toHaveLength(1);
      expect(razorpay.entityOf(atRazorpay[0]!.id).notes).toEqual({ kioskhub_refund_id: refundId });
      expect((await auditOf(refundId)).map((a) => [a.action, a.actor])).toEqual([['refund.fail', 'system']]);
      expect((await alertsOf(refundId)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
      return { refundId, atRazorpay: atRazorpay[0]! };
    }

    /** The ledger and the payment as they stand (no news of the refund may change them). */
    const books = async (paymentId: string) => ({
      revenue: await balance('revenue'),
      due: await balance('refunds_due'),
      payment: (await get(`/v1/payments/${paymentId}`)).body as { status: string; refundedMinor: number },
    });

    beforeAll(async () => {
      razorpay = await fakeRazorpay({ refundStatus: 'pending' });
      server = await startServer({ engine, env: { ...razorpayEnv(razorpay), ...FAST_JOBS } });
    });
    afterAll(async () => {
      await server?.close();
      await razorpay?.close();
    });

    it('refund.processed for it is found by the notes: one mismatch alert, its id stored, audited; redeliveries are duplicates', async () => {
      const payment = await paidPayment();
      const { refundId, atRazorpay } = await gaveUpRefund(payment, 2000);
      const before = await books(payment.id);
      expect(before.payment).toMatchObject({ status: 'SUCCEEDED', refundedMinor: 0 });

      // Razorpay's status API shows our refund id too.
      const api = createRazorpayClient({
        baseUrl: razorpay.url,
        keyId: 'rzp_test_key',
        keySecret: 'rzp_test_secret',
      });
      expect(await fetchRazorpayRefundNews(api, atRazorpay.id)).toMatchObject({
        providerRefundId: atRazorpay.id,
        refundId,
        outcome: 'pending',
      });

      atRazorpay.status = 'processed';
      const processed = razorpayRefundEvent('refund.processed', razorpay.entityOf(atRazorpay.id));
      const eventId = uid('evt_');
      const res = await server.postWebhook(processed, { eventId });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true, refundId, ignored: 'REFUND_FAILED' });
      const row = await refundOf(payment.id, refundId);
      expect(row).toMatchObject({ status: 'FAILED', providerRefundId: atRazorpay.id });
      const alerts = await alertsOf(refundId);
      expect(alerts.map((a) => a.kind).sort()).toEqual(['REFUND_FAILED', 'REFUND_PROVIDER_MISMATCH']);
      expect(alerts.find((a) => a.kind === 'REFUND_PROVIDER_MISMATCH')!.message).toMatch(
        new RegExp(
          `Razorpay says refund ${refundId} .*${atRazorpay.id}\\) was processed, but it is FAILED here: the payer has this money back`,
        ),
      );
      const audit = await auditOf(refundId);
      expect(audit).toHaveLength(2);
      expect(audit).toContainEqual(
        expect.objectContaining({
          action: 'refund.provider_mismatch',
          actor: 'provider:razorpay',
          before: expect.objectContaining({ status: 'FAILED', providerRefundId: null }),
          after: expect.objectContaining({
            status: 'FAILED',
            providerRefundId: atRazorpay.id,
            providerSays: 'processed',
            paymentId: payment.id,
            amountMinor: 2000,
          }),
        }),
      );
      expect(await books(payment.id)).toEqual(before);

      // The same delivery, the same news under another event id, a late refund.created, and a
      // refund.failed (the refund is FAILED here): found by the id now stored, duplicates, no
      // second alert, nothing changes.
      const late = (type: 'refund.created' | 'refund.failed', status: string) =>
        razorpayRefundEvent(type, { ...razorpay.entityOf(atRazorpay.id), status });
      for (const [event, id] of [
        [processed, eventId],
        [processed, uid('evt_')],
        [late('refund.created', 'pending'), uid('evt_')],
        [late('refund.failed', 'failed'), uid('evt_')],
      ] as const)
        expect((await server.postWebhook(event, { eventId: id })).body).toEqual({
          ok: true,
          refundId,
          duplicate: true,
        });
      expect(await alertsOf(refundId)).toEqual(alerts);
      expect(await auditOf(refundId)).toHaveLength(2);
      expect(await refundOf(payment.id, refundId)).toEqual(row);
      expect(await books(payment.id)).toEqual(before);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 60_000);

    it('refund.created (still pending) for it: a mismatch alert to check the Razorpay dashboard, once; refund.processed later is told too', async () => {
      const payment = await paidPayment();
      const { refundId, atRazorpay } = await gaveUpRefund(payment, 1500);
      const before = await books(payment.id);
      const created = razorpayRefundEvent('refund.created', razorpay.entityOf(atRazorpay.id));
      const res = await server.postWebhook(created, { eventId: uid('evt_') });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ ok: true, refundId, ignored: 'REFUND_FAILED' });
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'FAILED',
        providerRefundId: atRazorpay.id,
      });
      const mismatch = async () =>
        (await alertsOf(refundId)).filter((a) => a.kind === 'REFUND_PROVIDER_MISMATCH').map((a) => a.message);
      const told = await mismatch();
      expect(told).toHaveLength(1);
      expect(told[0]).toMatch(/Razorpay says refund .* is still pending, but it is FAILED here/);
      expect(told[0]).toMatch(
        new RegExp(`check refund ${atRazorpay.id} in the Razorpay dashboard before refunding`),
      );
      expect(await books(payment.id)).toEqual(before);

      // Pending again (another event): a duplicate.
      expect((await server.postWebhook(created, { eventId: uid('evt_') })).body).toEqual({
        ok: true,
        refundId,
        duplicate: true,
      });
      expect(await mismatch()).toHaveLength(1);

      // Razorpay makes it: that is news (the payer now has the money), told once.
      atRazorpay.status = 'processed';
      const processed = razorpayRefundEvent('refund.processed', razorpay.entityOf(atRazorpay.id));
      expect((await server.postWebhook(processed, { eventId: uid('evt_') })).body).toEqual({
        ok: true,
        refundId,
        ignored: 'REFUND_FAILED',
      });
      expect((await server.postWebhook(processed, { eventId: uid('evt_') })).body).toEqual({
        ok: true,
        refundId,
        duplicate: true,
      });
      const all = await mismatch();
      expect(all).toHaveLength(2);
      expect(all.some((m) => /was processed, but it is FAILED here/.test(m))).toBe(true);
      expect(
        (await auditOf(refundId))
          .filter((a) => a.action === 'refund.provider_mismatch')
          .map((a) => a.after.providerSays),
      ).toEqual(['processed', 'pending']); // newest first
      expect(await books(payment.id)).toEqual(before);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 60_000);

    it('news without our notes finds the one refund of that payment and amount whose job gave up, never a refused one; notes of another payment are not taken', async () => {
      const payment = await paidPayment();
      // A refund Razorpay refused (400): FAILED, but not given up on.
      razorpay.script(payment.providerPaymentId, [
        { status: 400, code: 'BAD_REQUEST_ERROR', description: 'no' },
      ]);
      const refused = await post(`/v1/payments/${payment.id}/refunds`, { amountMinor: 500, reason: 'x' });
      expect(refused.status).toBe(201);
      await eventually(
        async () => ((await refundOf(payment.id, refused.body.id)).status === 'FAILED' ? true : undefined),
        20_000,
        'the refused refund',
      );
      const bare = (id: string) => ({ ...razorpay.entityOf(id), notes: [] });
      const stranger = {
        id: `rfnd_${randomBytes(5).toString('hex')}`,
        payment_id: payment.providerPaymentId,
        amount: 500,
      };
      const unknown = await server.postWebhook(
        razorpayRefundEvent('refund.processed', {
          ...stranger,
          entity: 'refund',
          currency: 'INR',
          status: 'processed',
          notes: [],
        }),
        { eventId: uid('evt_') },
      );
      expect(unknown.body).toEqual({ ok: true, ignored: 'UNKNOWN_REFUND' });

      const other = await paidPayment();
      const { refundId, atRazorpay } = await gaveUpRefund(payment, 500);
      const before = await books(payment.id);
      // Our notes, but carried by news of another payment: not this refund (and nothing else fits).
      const misfiled = await server.postWebhook(
        razorpayRefundEvent('refund.processed', {
          ...razorpay.entityOf(atRazorpay.id),
          id: `rfnd_${randomBytes(5).toString('hex')}`,
          payment_id: other.providerPaymentId,
          status: 'processed',
        }),
        { eventId: uid('evt_') },
      );
      expect(misfiled.body).toEqual({ ok: true, ignored: 'UNKNOWN_REFUND' });
      expect((await refundOf(payment.id, refundId)).providerRefundId).toBeNull();

      // Without notes: the one of that payment and amount that gave up (not the refused one).
      atRazorpay.status = 'processed';
      const res = await server.postWebhook(razorpayRefundEvent('refund.processed', bare(atRazorpay.id)), {
        eventId: uid('evt_'),
      });
      expect(res.body).toEqual({ ok: true, refundId, ignored: 'REFUND_FAILED' });
      expect(await refundOf(payment.id, refundId)).toMatchObject({
        status: 'FAILED',
        providerRefundId: atRazorpay.id,
      });
      expect((await refundOf(payment.id, refused.body.id)).providerRefundId).toBeNull();
      expect((await alertsOf(refused.body.id)).map((a) => a.kind)).toEqual(['REFUND_FAILED']);
      expect(await books(payment.id)).toEqual(before);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 60_000);
  });

  describe(`Stripe news of a refund whose job gave up (${engine})`, () => {
    const WHSEC = 'whsec_refund_news_after_give_up';
    let server: TestServer;
    let stripe: FakeStripe;
    let cafe: Cafe;
    const get = (path: string) => server.request('GET', path);
    const balance = async (kind: string) => {
      const q = `ownerType=site&ownerId=${cafe.siteId}&kind=${kind}&unit=EUR`;
      return ((await get(`/v1/ledger/accounts?${q}`)).body.items[0]?.balance as number | undefined) ?? 0;
    };
    type Refund = { id: string; status: string; providerRefundId: string | null; error: string | null };
    const refundOf = async (paymentId: string, refundId: string) =>
      ((await get(`/v1/payments/${paymentId}/refunds`)).body.items as Refund[]).find(
        (r) => r.id === refundId,
      )!;
    const alertsOf = async (subjectId: string) =>
      ((await get('/v1/alerts')).body.items as Alert[]).filter((a) => a.subjectId === subjectId);

    const started = stripeCafe(engine, WHSEC, FAST_JOBS);
    beforeAll(() => void ({ server, stripe, cafe } = started));

    it('refund.updated (succeeded) for it is found by the metadata: one mismatch alert, its id stored; a twin event is a duplicate', async () => {
      const { pay, checkoutId, pi } = await paidAtStripe(server, cafe, stripe, 850);
      const paymentId = pay.paymentId;
      const settled = await postStripe(server, WHSEC, sessionCompleted(checkoutId, paymentId, 850, pi));
      expect(settled.body).toEqual({ ok: true, outcome: 'settled' });
      stripe.loseRefundAnswers(pi);
      const res = await server.request('POST', `/v1/payments/${paymentId}/refunds`, {
        body: { amountMinor: 850, reason: 'cold soup' },
      });
      expect(res.status).toBe(201);
      const refundId = res.body.id as string;
      const failed = await eventually(
        async () => {
          const r = await refundOf(paymentId, refundId);
          return r.status === 'FAILED' ? r : undefined;
        },
        25_000,
        'the Stripe refund whose job gave up',
      );
      expect(failed).toMatchObject({ providerRefundId: null });
      const calls = stripe.requests.filter(
        (r) => r.path === '/v1/refunds' && r.form.get('payment_intent') === pi,
      );
      expect(calls).toHaveLength(8);
      for (const c of calls) {
        expect(c.idempotencyKey).toBe(`refund-${refundId}`);
        expect(c.form.get('metadata[kioskhub_refund_id]')).toBe(refundId);
      }
      const made = [...stripe.refunds.values()].filter((r) => r['payment_intent'] === pi);
      expect(made).toHaveLength(1);
      const reId = made[0]!.id;
      expect(made[0]!['metadata']).toEqual({ kioskhub_refund_id: refundId });
      // Retrieve a refund shows our refund id too.
      const gateway = createStripeGateway({
        secretKey: 'sk_test_cafe',
        webhookSecret: WHSEC,
        apiBase: stripe.url,
      });
      expect(await gateway.fetchRefund(reId)).toMatchObject({
        providerRefundId: reId,
        refundId,
        outcome: 'processed',
      });

      const revenue = await balance('revenue');
      const due = await balance('refunds_due');
      const payment = (await get(`/v1/payments/${paymentId}`)).body;
      expect(payment).toMatchObject({ refundedMinor: 0 });

      const updated = stripe.refundUpdated(reId, 'succeeded');
      const told = await postStripe(server, WHSEC, updated);
      expect(told.status).toBe(200);
      expect(told.body).toEqual({ ok: true, outcome: 'refund_ignored', refundId, ignored: 'REFUND_FAILED' });
      expect(await refundOf(paymentId, refundId)).toMatchObject({ status: 'FAILED', providerRefundId: reId });
      const alerts = await alertsOf(refundId);
      expect(alerts.map((a) => a.kind).sort()).toEqual(['REFUND_FAILED', 'REFUND_PROVIDER_MISMATCH']);
      expect(alerts.find((a) => a.kind === 'REFUND_PROVIDER_MISMATCH')!.message).toMatch(
        /Stripe says refund .* was processed, but it is FAILED here/,
      );

      const twin = { ...updated, id: rid('evt'), type: 'charge.refund.updated' };
      expect((await postStripe(server, WHSEC, twin)).body).toEqual({
        ok: true,
        outcome: 'refund_duplicate',
        refundId,
      });
      expect(await alertsOf(refundId)).toHaveLength(2);
      expect(await balance('revenue')).toBe(revenue);
      expect(await balance('refunds_due')).toBe(due);
      expect((await get(`/v1/payments/${paymentId}`)).body).toEqual(payment);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });

      // Stripe's charge.refunded (850 refunded in all, that refund the latest) puts the refund on
      // the books as one the gateway made: the payment counts it refunded, revenue gives it up,
      // and the mismatch ("the payment counts it as kept") is resolved. The FAILED one stays FAILED.
      const charge = chargeRefunded(pi, 850);
      charge.data.object.refunds.data[0]!.id = reId;
      expect((await postStripe(server, WHSEC, charge)).body).toMatchObject({ outcome: 'refund_recorded' });
      const refunds = (await get(`/v1/payments/${paymentId}/refunds`)).body.items as Refund[];
      expect(refunds.map((r) => [r.status, r.providerRefundId]).sort()).toEqual([
        ['FAILED', reId],
        ['SUCCEEDED', reId],
      ]);
      expect((await get(`/v1/payments/${paymentId}`)).body).toMatchObject({ refundedMinor: 850 });
      expect(await balance('revenue')).toBe(revenue - 850);
      expect(await balance('refunds_due')).toBe(due);
      const after = (await get('/v1/alerts')).body.items as (Alert & { resolvedAt: string | null })[];
      const mismatch = after.find((a) => a.subjectId === refundId && a.kind === 'REFUND_PROVIDER_MISMATCH');
      expect(mismatch?.resolvedAt).toEqual(expect.any(String));
      // Later news of that refund is of the one on the books: a duplicate, no new alert.
      const again = { ...updated, id: rid('evt') };
      expect((await postStripe(server, WHSEC, again)).body).toMatchObject({ outcome: 'refund_duplicate' });
      expect(await alertsOf(refundId)).toHaveLength(2);
      expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
    }, 60_000);
  });
}
