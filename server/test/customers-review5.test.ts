// Review of the water customers module (customers-staff.ts, plans.ts, subscription-run.ts), fifth
// round, against the real server on both engines. Each test here fails on the code it was written
// against, because of a bug found in review:
// - offline water dated before the lapsed run that came before a renewal is paid by the renewed
//   subscription (free water), though that run had not started yet when it was dispensed;
// - `POST /v1/customers/:id/subscription {planId: <unknown>, expiresAt: null}` is answered 200 and
//   ends the subscription, where an unknown plan is promised 400 and a rejected request changes
//   nothing;
// - a plan named only with spaces is created with an empty name;
// - the daily limit a staff plan grant writes is missing from its audit row.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';
import { staffToken } from './dashboard-fixtures.js';
import { addWaterCustomer } from './water-fixtures.js';

const DAY_MS = 86_400_000;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;
const kenyan = () => `+2547${String(randomBytes(4).readUInt32BE(0) % 100_000_000).padStart(8, '0')}`;

describe.each(engines())('customers review 5 (%s)', (engine: Engine) => {
  let server: TestServer;
  let cs: string; // customer_service of tenant default
  let kiosk: { id: string; key: string };

  beforeAll(async () => {
    server = await startServer({ engine });
    cs = await staffToken(server, `${uid('cs')}@example.com`, 'customer_service');
    kiosk = await server.createMachine(uid('W'), { kind: 'water' });
    const month = {
      id: 'month',
      name: 'Monthly 20 L a day',
      kind: 'subscription',
      priceMinor: 150_000,
      currency: 'KES',
      days: 30,
      dailyLimitMl: 20_000,
    };
    const plan = await server.request('POST', '/v1/water/plans', { token: cs, body: month });
    expect(plan.status, JSON.stringify(plan.body)).toBe(201);
  });
  afterAll(async () => {
    await server?.close();
  });

  const customerRow = (id: string) =>
    server.kioskhub.db.selectFrom('customers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const audit = (customerId: string, action: string) =>
    server.kioskhub.db
      .selectFrom('audit_log')
      .selectAll()
      .where('subject_id', '=', customerId)
      .where('action', '=', action)
      .orderBy('id')
      .execute();

  // docs/water.md, offline batch: "Water dated before the start is not paid by it: the credit
  // pays (as above), unless the water is dated inside the subscription that ran before it
  // (renewed after it lapsed), which pays."
  // What is wrong: subscription-run.ts:37-38 (subscriptionCovers) takes everything dated before
  // `subscription_prior_expires_at` as inside the run before, because subscriptionRunChange
  // (subscription-run.ts:24-27) remembers only that run's expiry, not its start. Water a kiosk
  // logged offline before the earlier run even began (here 2 days before it, long after the
  // customer registered) is paid by the subscription: no credit is taken, nothing is flagged,
  // the water is free. Fix: remember the lapsed run's start too (a
  // `subscription_prior_started_at` column written from `subscription_started_at` in
  // subscriptionRunChange) and cover `at` only when prior start <= at < prior expiry (an unknown
  // prior start keeps today's rule).
  it('offline water dated before the lapsed run that preceded a renewal is paid by credit, not by the subscription', async () => {
    const c = await addWaterCustomer(server, { phone: kenyan(), pin: '4826' });
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    // History: registered 10 days ago; a month-plan run from 6 days ago lapsed 3 days ago.
    await server.kioskhub.services.customers.repo.update(c.id, {
      created_at: iso(now - 10 * DAY_MS),
      subscription_plan_id: 'month',
      subscription_started_at: iso(now - 6 * DAY_MS),
      subscription_expires_at: iso(now - 3 * DAY_MS),
      subscription_prior_expires_at: null,
    });
    // Staff renew it now: a new run starts now, the lapsed one is remembered.
    const renewed = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'month', reason: 'paid cash' },
    });
    expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);

    // The kiosk uploads 1.5 L it poured 8 days ago: before either run, while none ran.
    const txn = uid('sd-');
    const batch = await server.request('POST', '/v1/water/transactions:batch', {
      token: null,
      headers: { 'x-api-key': kiosk.key },
      body: {
        transactions: [{ kioskTxnId: txn, userId: c.phone, dispensedMl: 1_500, at: iso(now - 8 * DAY_MS) }],
      },
    });
    expect(batch.status, JSON.stringify(batch.body)).toBe(200);
    expect(batch.body.results[0].status).toBe('applied');
    const d = await server.kioskhub.db
      .selectFrom('water_dispenses')
      .select(['funding', 'flagged'])
      .where('kiosk_txn_id', '=', txn)
      .executeTakeFirstOrThrow();
    const credit = (await server.request('GET', `/v1/customers/${c.id}`, { token: cs })).body.creditsMl;
    // The credit (empty) pays: it goes to -1.5 L and the dispense is flagged.
    expect({ funding: d.funding, flagged: Number(d.flagged), creditsMl: credit }).toEqual({
      funding: 'credit',
      flagged: 1,
      creditsMl: -1_500,
    });
  });

  // docs/customers.md, POST /v1/customers/:id/subscription: "An unknown plan is `400
  // VALIDATION_FAILED`." and "A rejected request changes nothing."
  // What is wrong: customers-staff.ts:316-319 (setSubscription) takes the `expiresAt: null` branch
  // first and never looks the plan up: `{planId: "no-such-plan", expiresAt: null}` answers 200 and
  // ends the customer's running subscription (a typo in the plan id, or a request meant as
  // something else, silently cancels water the customer paid for). Fix: look `input.planId` up
  // before the branch (400 when unknown), or refuse `planId` together with `expiresAt: null`.
  it('an unknown plan with expiresAt: null is 400 and leaves the running subscription alone', async () => {
    const c = await addWaterCustomer(server, { phone: kenyan(), pin: null });
    const granted = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'month' },
    });
    expect(granted.status, JSON.stringify(granted.body)).toBe(200);
    const before = await customerRow(c.id);

    const res = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'no-such-plan', expiresAt: null },
    });
    expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
    const after = await customerRow(c.id);
    expect(after.subscription_expires_at).toBe(before.subscription_expires_at);
    expect(after.subscription_plan_id).toBe('month');
  });

  // docs/customers.md, POST /v1/water/plans: `{id, name, …}`; the plan's name is what the USSD
  // menu and SMS offer customers ("cheapest first … the USSD menu and SMS BUY offer only those on
  // sale"), and "A rejected request changes nothing" / bad input is 400 VALIDATION_FAILED.
  // What is wrong: the schema (customers.schema.ts:159, minLength 1) lets "   " through and
  // plans.ts:63 trims it to "": a plan with an empty name is created (201) and offered to
  // customers as a nameless line. Fix: refuse a name that is empty once trimmed
  // (`if (!input.name.trim()) throw validation('a plan needs a name')`), or add a non-blank
  // pattern to the schema.
  it('a plan named only with spaces is refused, not created with an empty name', async () => {
    const id = uid('blank');
    const res = await server.request('POST', '/v1/water/plans', {
      token: cs,
      body: { id, name: '   ', kind: 'credit', priceMinor: 5_000, currency: 'KES', creditMl: 20_000 },
    });
    expect({ status: res.status, code: res.body?.error?.code }, JSON.stringify(res.body)).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
    const plans = (await server.request('GET', '/v1/water/plans', { token: cs })).body.items as any[];
    expect(plans.map((p) => p.id)).not.toContain(id);
  });

  // docs/customers.md, Audit and live events: "Every change writes an `audit_log` row in its own
  // transaction, with the actor …, the reason, and before/after where they differ"; and the
  // `{planId}` grant "sets the plan's daily limit, if it has one".
  // What is wrong: customers-staff.ts:338-340 (setSubscription) writes `daily_limit_ml` from the
  // plan, but the `customer.subscription_set` row (customers-staff.ts:343-353) records only plan,
  // expiry and start: a staff grant that changes a customer's daily limit (here 5 L → 20 L) leaves
  // no trace of the old or new limit in the audit log (the purchase path, plan-settlement.ts,
  // does record dailyLimitMl before/after). Fix: add `dailyLimitMl` to `before` and `after` of
  // that audit row when it changes.
  it('a plan grant that changes the daily limit audits the limit before and after', async () => {
    const c = await addWaterCustomer(server, { phone: kenyan(), pin: null, dailyLimitMl: 5_000 });
    const res = await server.request('POST', `/v1/customers/${c.id}/subscription`, {
      token: cs,
      body: { planId: 'month', reason: 'upgrade' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.dailyLimitMl).toBe(20_000);
    const rows = await audit(c.id, 'customer.subscription_set');
    expect(rows).toHaveLength(1);
    expect({
      before: JSON.parse(rows[0]!.before ?? '{}').dailyLimitMl,
      after: JSON.parse(rows[0]!.after ?? '{}').dailyLimitMl,
    }).toEqual({ before: 5_000, after: 20_000 });
  });
});
