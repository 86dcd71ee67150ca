// Second review of the mobile-money providers (PROVIDERS.md §4; docs/water-payments.md), against
// the real server and local fakes of MTN MoMo and Airtel Money: money a wallet takes after the
// payment ended here (a prompt approved after our expiry, an answer that was not final at expiry)
// is never lost silently, and a plan paid with another amount tells the customer.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type TestServer } from './harness.js';
import {
  AIRTEL_KEY,
  MOMO_KEY,
  providerEnv,
  startProviderFakes,
  type ProviderFakes,
  addCreditPlan,
  buyPlan,
} from './fixtures/mobile-money-fakes.js';

const TTL_MS = 2_500;
const digits = () => String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0');
const MTN_PHONE = () => `+25677${digits()}`;
const AIRTEL_PHONE = () => `+25670${digits()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(engines())('mobile money after the payment ended (%s)', (engine) => {
  let server: TestServer;
  let fakes: ProviderFakes;
  let relayTicker: NodeJS.Timeout | undefined;
  const planId = `plan${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    fakes = await startProviderFakes();
    server = await startServer({
      engine,
      env: providerEnv(fakes, {
        PAYMENT_STATUS_POLL_MS: '200',
        PAYMENT_INTENT_TTL_MS: String(TTL_MS),
        JOB_RETRY_BASE_MS: '100',
      }),
    });
    // The job relay looks for due jobs once a second; each step here (the expiry, the checks
    // after it, the SMS) is a job due at a set time, so it is also asked every 50 ms: a step runs
    // when it is due rather than up to a second later. When the jobs fall due is unchanged.
    relayTicker = setInterval(() => server.kioskhub.services.outbox.flushSoon(), 50);
    await server.kioskhub.services.tenants.setDefaultCountryCode('default', '256');
    await addCreditPlan(server, planId);
  });
  afterAll(async () => {
    clearInterval(relayTicker);
    await server?.close();
    await fakes?.close();
  });

  const paymentView = async (id: string) => (await server.request('GET', `/v1/payments/${id}`)).body;
  const alertsAbout = async (subjectId: string) =>
    server.kioskhub.db.selectFrom('alerts').selectAll().where('subject_id', '=', subjectId).execute();
  const audits = async (subjectId: string, action: string) =>
    server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', subjectId)
      .where('action', '=', action)
      .execute();
  const creditMl = (customerId: string) =>
    server.kioskhub.db.transaction().execute(async (tx) => {
      return (await server.kioskhub.services.customers.waterCredit(tx, 'default', customerId)).balance;
    });

  const buy = (phone: string) => buyPlan(server, planId, phone);

  const expiredView = (id: string) =>
    eventually(
      async () => {
        const p = await paymentView(id);
        return p.status === 'EXPIRED' ? p : undefined;
      },
      20_000,
      'the payment to expire',
    );

  const callback = (path: string, body: unknown, method = 'POST') =>
    fetch(`${server.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

  // PROVIDERS.md §4.1: the prompt stays PENDING until the payer approves (about 5 minutes); a
  // request sent shortly before our expiry can be approved after it. MoMo then says SUCCESSFUL and
  // the money has left the payer's wallet: it must be seen (recorded, alerted, the customer told),
  // never dropped because the payment here had already EXPIRED.
  it('MoMo: a prompt approved after the payment expired is found by the checks after expiry', async () => {
    const phone = MTN_PHONE();
    const { payment, customer } = await buy(phone);
    const req = await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    const expired = await expiredView(payment.id);
    expect(expired.receivedMinor).toBe(0);
    // Approved after our expiry; MoMo's callback is lost (it may never be retried).
    req.status = 'SUCCESSFUL';
    const seen = await eventually(
      async () => {
        const p = await paymentView(payment.id);
        return p.receivedMinor > 0 ? p : undefined;
      },
      20_000,
      'the late money to be recorded',
    );
    expect(seen).toMatchObject({
      status: 'EXPIRED',
      receivedMinor: 5000,
      providerPaymentId: String(req.financialTransactionId),
    });
    const alerts = await alertsAbout(payment.id);
    expect(alerts.map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    expect(alerts[0]!.message).toContain('5000 UGX');
    expect(alerts[0]!.message).toContain('refund it');
    expect(await audits(payment.id, 'payment.paid_after_end')).toHaveLength(1);
    // No plan: the payment ended; the customer hears the money will come back.
    expect(await creditMl(customer.id)).toBe(0);
    await eventually(
      () => fakes.smsTo(phone).some((m) => m.includes('UGX 5000 arrived after the request had ended')),
      10_000,
      'the customer SMS',
    );
    // A repeat of MoMo's callback and further checks record nothing twice.
    const cb = await callback(
      `/webhooks/momo/${payment.id}?key=${MOMO_KEY}`,
      { status: 'SUCCESSFUL' },
      'PUT',
    );
    expect(cb.status).toBe(200);
    await server.kioskhub.services.intents.check({ paymentId: payment.id, poll: false });
    await sleep(300);
    expect(await alertsAbout(payment.id)).toHaveLength(1);
    expect(await paymentView(payment.id)).toMatchObject({ status: 'EXPIRED', receivedMinor: 5000 });
    // Staff can now owe it back (it could not be refunded with nothing received).
    const refund = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'paid after it expired', to: 'refund_due' },
    });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    expect(refund.body).toMatchObject({ amountMinor: 5000, destination: 'refund_due' });
  });

  it('a plan bought by phone (no site) and refunded: the refund comes out of the tenant revenue its settlement went to', async () => {
    // Through the ledger: on PostgreSQL a revenue account's balance lives in its balance slots.
    const revenue = (ownerType: 'tenant' | 'site', ownerId: string) =>
      server.kioskhub.services.ledger.balanceOf(server.kioskhub.db, {
        tenantId: 'default',
        ownerType,
        ownerId,
        kind: 'revenue',
        unit: 'UGX',
      });
    const [tenantBefore, siteBefore] = [await revenue('tenant', 'default'), await revenue('site', 'default')];
    const { payment } = await buy(MTN_PHONE());
    const req = await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    req.status = 'SUCCESSFUL';
    await eventually(
      async () => (await paymentView(payment.id)).status === 'SUCCEEDED',
      20_000,
      'the plan to be paid',
    );
    expect(await revenue('tenant', 'default')).toBe(tenantBefore + 5000);
    const refund = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'kiosk out of order', to: 'refund_due' },
    });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    expect(await revenue('tenant', 'default')).toBe(tenantBefore);
    expect(await revenue('site', 'default')).toBe(siteBefore);
  });

  // The same with Airtel: callbacks (a forged one first) and the checks after expiry race.
  it('Airtel: TS after the payment expired (callbacks, forged first) is confirmed by the enquiry and recorded once', async () => {
    const phone = AIRTEL_PHONE();
    const { payment } = await buy(phone);
    await eventually(() => fakes.state.airtel.get(payment.id), 10_000, 'collection');
    await expiredView(payment.id);
    // A forged TS while Airtel says it is still in progress: nothing.
    const forged = await callback(`/webhooks/airtel?key=${AIRTEL_KEY}`, {
      transaction: { id: payment.id, status_code: 'TS' },
    });
    expect(forged.body).toEqual({ ok: true, outcome: 'scheduled' });
    await sleep(400);
    expect(await paymentView(payment.id)).toMatchObject({ status: 'EXPIRED', receivedMinor: 0 });
    expect(await alertsAbout(payment.id)).toEqual([]);

    fakes.state.airtel.get(payment.id)!.status = 'TS';
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        callback(`/webhooks/airtel?key=${AIRTEL_KEY}`, {
          transaction: { id: payment.id, status_code: i % 2 ? 'TS' : 'ts', airtel_money_id: 'MPX1' },
        }),
      ),
    );
    for (const r of results) expect(r.status).toBe(200);
    const seen = await eventually(
      async () => {
        const p = await paymentView(payment.id);
        return p.receivedMinor > 0 ? p : undefined;
      },
      10_000,
      'the late money to be recorded',
    );
    expect(seen).toMatchObject({ status: 'EXPIRED', receivedMinor: 5000 });
    await sleep(400);
    expect((await alertsAbout(payment.id)).map((a) => a.kind)).toEqual(['PAYMENT_MISMATCH']);
    expect(await audits(payment.id, 'payment.paid_after_end')).toHaveLength(1);
  });

  // TA is "ambiguous" and TIP "in progress" (PROVIDERS.md §4.2): not an answer. A payment that
  // expires on one is asked again, and stops being asked once Airtel gives a final answer.
  it('Airtel: ambiguous at expiry, then failed: nothing recorded, and the checks stop', async () => {
    const phone = AIRTEL_PHONE();
    const { payment } = await buy(phone);
    const req = await eventually(() => fakes.state.airtel.get(payment.id), 10_000, 'collection');
    req.status = 'TA';
    await expiredView(payment.id);
    const callsAtExpiry = fakes.state.airtelStatusCalls.get(payment.id) ?? 0;
    await eventually(
      () => (fakes.state.airtelStatusCalls.get(payment.id) ?? 0) > callsAtExpiry,
      10_000,
      'a check after expiry',
    );
    req.status = 'TF';
    const before = fakes.state.airtelStatusCalls.get(payment.id) ?? 0;
    await eventually(
      () => (fakes.state.airtelStatusCalls.get(payment.id) ?? 0) > before,
      10_000,
      'the check that hears TF',
    );
    const settledAt = fakes.state.airtelStatusCalls.get(payment.id) ?? 0;
    await sleep(2_000);
    expect(fakes.state.airtelStatusCalls.get(payment.id) ?? 0).toBe(settledAt);
    expect(await paymentView(payment.id)).toMatchObject({ status: 'EXPIRED', receivedMinor: 0 });
    expect(await alertsAbout(payment.id)).toEqual([]);
  });

  // docs/water-payments.md step 6: a plan paid with another amount applies nothing, alerts staff,
  // and the customer's SMS says it could not be applied and will be refunded.
  it('MoMo: another amount than asked applies no plan and tells the customer', async () => {
    const phone = MTN_PHONE();
    const { payment, customer } = await buy(phone);
    const req = await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    req.status = 'SUCCESSFUL';
    req.reportedAmount = '4000';
    await callback(`/webhooks/momo/${payment.id}?key=${MOMO_KEY}`, { status: 'SUCCESSFUL' }, 'PUT');
    const failed = await eventually(
      async () => {
        const p = await paymentView(payment.id);
        return p.status === 'FAILED' ? p : undefined;
      },
      10_000,
      'the payment to fail',
    );
    expect(failed).toMatchObject({ failureCode: 'AMOUNT_MISMATCH', receivedMinor: 4000 });
    expect((await alertsAbout(payment.id)).map((a) => a.kind)).toEqual(['PAYMENT_AMOUNT_MISMATCH']);
    expect(await creditMl(customer.id)).toBe(0);
    await eventually(
      () =>
        fakes.smsTo(phone).some((m) => m.startsWith('Your water plan payment arrived in a form we cannot')),
      10_000,
      'the customer SMS',
    );
    // Its later callbacks ask nothing more: the money is on the payment already.
    const calls = fakes.state.momoStatusCalls.get(payment.id) ?? 0;
    const again = await callback(
      `/webhooks/momo/${payment.id}?key=${MOMO_KEY}`,
      { status: 'SUCCESSFUL' },
      'PUT',
    );
    expect(again.body.outcome).toBe('duplicate');
    await sleep(300);
    expect(fakes.state.momoStatusCalls.get(payment.id) ?? 0).toBe(calls);
  });
});
