// Fourth review of mobile money, water plans and the USSD/SMS channels (docs/water-payments.md),
// against the real server and local fakes of MTN MoMo, Airtel Money and Africa's Talking. Each
// test here fails on the code as reviewed, because of the bug its comment names.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { engines, eventually, type TestServer } from './harness.js';
import {
  AT_KEY,
  FAST_JOBS,
  mobileMoneyServer,
  type ProviderFakes,
  buyPlan,
} from './fixtures/mobile-money-fakes.js';

const digits = () => String(randomBytes(3).readUIntBE(0, 3) % 10_000_000).padStart(7, '0');
const MTN_PHONE = () => `+25677${digits()}`;
const uid = (p: string) => `${p}${randomBytes(4).toString('hex')}`;

describe.each(engines())('mobile money review 4 (%s)', (engine) => {
  let server: TestServer;
  let fakes: ProviderFakes;
  const planId = `plan${randomBytes(3).toString('hex')}`;

  mobileMoneyServer(
    engine,
    planId,
    {
      // No polls: the expiry's last question is the one under test.
      PAYMENT_STATUS_POLL_MS: '3600000',
      PAYMENT_INTENT_TTL_MS: '2500',
      // A job that throws is retried after 20 ms, 40 ms, … (8 attempts, about 2.5 s in all);
      // due jobs are looked for every 50 ms, so each retry runs when it is due.
      ...FAST_JOBS,
    },
    (s, f) => ((server = s), (fakes = f)),
  );

  const paymentRow = (id: string) =>
    server.kioskhub.db.selectFrom('payments').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  const buy = (phone: string) => buyPlan(server, planId, phone);

  async function ussd(hop: { sessionId: string; phone: string; text: string }) {
    const res = await fetch(`${server.url}/webhooks/africastalking/ussd?key=${AT_KEY}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        sessionId: hop.sessionId,
        serviceCode: '*384*7#',
        phoneNumber: hop.phone,
        text: hop.text,
        networkCode: '64110',
      }).toString(),
    });
    return { status: res.status, text: await res.text() };
  }

  // docs/water-payments.md, "Paying for a plan" step 4: "A payment still pending at its expiry is
  // asked one last time, then ends `EXPIRED`", and the set-up table: PAYMENT_INTENT_TTL_MS is "how
  // long a request stays payable; then it is `EXPIRED`". intents.ts `expire` asks the provider
  // first and throws when it does not answer; the job table retries it 8 times, then marks the job
  // FAILED and nothing ends the payment: no poll is left (polls stop at the expiry), no late check
  // was scheduled, and there is no failure handler for `payment_expire`. A MoMo status outage of
  // about two minutes at the expiry (default backoff) leaves the payment PENDING for ever: the
  // customer is never told, and money MoMo took meanwhile is never looked for.
  it('a payment whose provider did not answer at its expiry still ends EXPIRED once the expiry job gives up', async () => {
    const phone = MTN_PHONE();
    const { payment } = await buy(phone);
    await eventually(() => fakes.state.momo.get(payment.id), 10_000, 'RequestToPay');
    // MoMo's status API is down through the expiry and every retry of the expiry job.
    fakes.state.momoStatusDown = 1_000_000;
    await eventually(
      async () => {
        const jobs = await server.kioskhub.db
          .selectFrom('outbox')
          .selectAll()
          .where('topic', '=', 'payment_expire')
          .where('status', '=', 'FAILED')
          .execute();
        return jobs.some((j) => j.payload.includes(payment.id));
      },
      20_000,
      'the expiry job to give up',
    );
    fakes.state.momoStatusDown = 0;
    // MoMo answers again (still PENDING at MoMo: nobody approved). Nothing is left to end it.
    let status = '';
    await eventually(
      async () => {
        status = (await paymentRow(payment.id)).status;
        return status !== 'PENDING';
      },
      8_000,
      'the payment to end',
    ).catch(() => undefined);
    expect(status, 'the payment is past its expiry and its expiry job gave up').toBe('EXPIRED');
    // The customer is told, as at any expiry; MoMo, which never answered, is asked again after the end.
    await eventually(
      () => fakes.smsTo(phone).some((m) => m.startsWith('Your water plan payment was not approved in time.')),
      10_000,
      'expiry SMS',
    );
    const late = await server.kioskhub.db
      .selectFrom('outbox')
      .select('payload')
      .where('topic', '=', 'payment_status')
      .where('status', '=', 'QUEUED')
      .execute();
    expect(late.some((j) => j.payload.includes(payment.id) && j.payload.includes('"late"'))).toBe(true);
  });

  // ussd.ts keeps "This session belongs to another phone." for a hop of one session from another
  // number, and docs/water-payments.md trusts `phoneNumber` for "which customer is speaking". The
  // check that answers a repeated hop with the stored answer runs before the phone check, so a
  // hop from another number whose `text` equals the session's last one is answered with the first
  // caller's screen: here their status screen (account id, plan, credit).
  it("a hop from another phone that repeats a session's last text does not get that session's screen", async () => {
    const owner = MTN_PHONE();
    const made = await server.request('POST', '/v1/customers', { body: { phone: owner, pin: '1357' } });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const accountId = made.body.accountId as string;
    const sessionId = uid('ATUid_');
    expect((await ussd({ sessionId, phone: owner, text: '' })).text).toMatch(/^CON Welcome/);
    const status = await ussd({ sessionId, phone: owner, text: '2' });
    expect(status.text).toContain(`Account: ${accountId}`);

    const other = MTN_PHONE();
    const answer = await ussd({ sessionId, phone: other, text: '2' });
    expect(answer.status).toBe(200);
    expect(answer.text).not.toContain(accountId);
    expect(answer.text).toBe('END This session belongs to another phone.');
  });
});
