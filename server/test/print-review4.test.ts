// Review 4 of the receipt print queue and the kitchen (docs/api.md §15, §16). Each test shows a
// behaviour the contract promises that the current code breaks:
// - a printer's failed attempt (or an operator's retry) landing while a full refund of the order
//   is being recorded brings back a receipt the refund took off: it is printed for an order that
//   was refunded before it was made (PostgreSQL, where the two transactions run side by side);
// - a PRINT_JOB_FAILED alert stays "standing" after its receipt was retried and printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function kitchenSite(getServer: () => TestServer, site: string) {
  const server = () => getServer();
  let keys: Record<string, string> = {};

  async function setup(): Promise<void> {
    keys = await createBurgerSite(server(), {
      siteId: site,
      skuPrefix: `${site}-`,
      machines: { [`${site}K`]: 'kiosk', [`${site}C`]: 'cash', [`${site}P`]: 'printer' },
    });
  }
  const printer = () => keys[`${site}P`]!;
  const nextReceipt = () => server().request('GET', '/api/receipt/queue/next', key(printer()));
  const failed = (jobId: string) =>
    server().request('POST', `/api/receipt/queue/failed/${jobId}`, {
      ...key(printer()),
      body: { error: 'paper jam' },
    });

  async function drainQueue(): Promise<void> {
    for (let n = 0; n < 50; n++) {
      const next = await nextReceipt();
      if (next.status === 204) return;
      const done = await server().request(
        'POST',
        `/api/receipt/queue/complete/${next.body.jobId}`,
        key(printer()),
      );
      expect(done.status).toBe(200);
    }
  }

  async function paidKioskOrder() {
    const { orderId } = await openCashSession(
      server(),
      { siteId: site, kiosk: keys[`${site}K`]!, cash: keys[`${site}C`]! },
      150,
    );
    expect((await server().request('GET', `/v1/orders/${orderId}`)).body.status).toBe('PAID');
    const payments = await server().request('GET', `/v1/payments?orderId=${orderId}`);
    return { orderId, paymentId: payments.body.items[0].id as string };
  }

  async function printJobOf(orderId: string) {
    const res = await server().request('GET', `/v1/print-jobs?siteId=${site}&limit=200`);
    expect(res.status).toBe(200);
    const jobs = res.body.items.filter((j: { orderId: string }) => j.orderId === orderId);
    expect(jobs).toHaveLength(1);
    return jobs[0] as { jobId: string; status: string; attempts: number };
  }

  /** Fails the order's receipt five times: FAILED, with its PRINT_JOB_FAILED alert. */
  async function failFiveTimes(jobId: string): Promise<void> {
    for (let n = 0; n < 5; n++) {
      const leased = await nextReceipt();
      expect(leased.body.jobId).toBe(jobId);
      expect((await failed(jobId)).status).toBe(200);
    }
  }

  const complete = (jobId: string) =>
    server().request('POST', `/api/receipt/queue/complete/${jobId}`, key(printer()));

  return { setup, nextReceipt, failed, complete, drainQueue, paidKioskOrder, printJobOf, failFiveTimes };
}

describe.each(engines().filter((e) => e === 'postgres'))(
  'a full refund recorded while the printer or an operator acts on its receipt (%s)',
  (engine: Engine) => {
    let server: TestServer;
    const k = kitchenSite(() => server, 'race4');

    beforeAll(async () => {
      server = await startServer({ engine });
      await k.setup();
    });
    afterAll(async () => {
      await server?.close();
    });

    // docs/api.md §16: "A receipt a printer holds (`LEASED`) stays that printer's: its "printed"
    // stands, and a failed attempt or an expired lease makes it `CANCELLED` instead of queueing it
    // again." §15: "A failed attempt at a receipt whose order was refunded meanwhile answers
    // `CANCELLED`: it is not printed again".
    it('a failed attempt reported while the full refund is being recorded does not queue the receipt again', async () => {
      await k.drainQueue();
      const { orderId } = await k.paidKioskOrder();
      const leased = await k.nextReceipt();
      expect(leased.status).toBe(200);
      const { jobId } = await k.printJobOf(orderId);
      expect(leased.body.jobId).toBe(jobId);

      // The refund (the real refund path, with its kitchen hook) is recorded in a transaction that
      // commits just after the printer's "failed" arrives.
      let reported: Promise<{ status: number; body: any }> | undefined;
      await server.kioskhub.db.transaction().execute(async (tx) => {
        await server.kioskhub.services.refunds.refundDueForOrder(tx, orderId, {
          reason: 'customer left',
          actor: 'admin-token',
        });
        reported = k.failed(jobId);
        await sleep(500);
      });
      const report = await reported!;
      expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');

      // The refund has committed: the order was refunded before the kitchen made it, so its
      // receipt must not go back to the queue and be printed.
      const job = await k.printJobOf(orderId);
      expect({ report: report.body, job: job.status }).toEqual({
        report: { success: true, status: 'CANCELLED' },
        job: 'CANCELLED',
      });
      expect((await k.nextReceipt()).status).toBe(204);
    });

    // docs/api.md §16: its receipt "(waiting, or `FAILED`) becomes `CANCELLED`: it is never
    // printed, and `retry` refuses it."
    it('a retry racing the full refund cannot bring the cancelled receipt back to the queue', async () => {
      await k.drainQueue();
      const { orderId } = await k.paidKioskOrder();
      const { jobId } = await k.printJobOf(orderId);
      await k.failFiveTimes(jobId);
      expect((await k.printJobOf(orderId)).status).toBe('FAILED');

      let retry: Promise<{ status: number; body: any }> | undefined;
      await server.kioskhub.db.transaction().execute(async (tx) => {
        await server.kioskhub.services.refunds.refundDueForOrder(tx, orderId, {
          reason: 'customer left',
          actor: 'admin-token',
        });
        // The operator presses Retry while the refund is being recorded: it reads FAILED.
        retry = server.request('POST', `/v1/print-jobs/${jobId}/retry`);
        await sleep(500);
      });
      const retried = await retry!;
      expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
      const job = await k.printJobOf(orderId);
      expect({ retry: retried.status, job: job.status }).toEqual({ retry: 409, job: 'CANCELLED' });
      expect((await k.nextReceipt()).status).toBe(204);
    });
  },
);

describe.each(engines())('a failed receipt retried and printed (%s)', (engine: Engine) => {
  let server: TestServer;
  const k = kitchenSite(() => server, `alert4${engine}`);

  beforeAll(async () => {
    server = await startServer({ engine });
    await k.setup();
  });
  afterAll(async () => {
    await server?.close();
  });

  // docs/api.md §16: "Each alert has `resolvedAt` (null while its condition stands)"; the code's
  // own rule (printing.service.ts cancelForOrder): "A receipt that had FAILED needs nobody's
  // attention any more" once it will never be printed — nor once it has been printed.
  it('its PRINT_JOB_FAILED alert is resolved once the receipt printed', async () => {
    await k.drainQueue();
    const { orderId } = await k.paidKioskOrder();
    const { jobId } = await k.printJobOf(orderId);
    await k.failFiveTimes(jobId);
    const alertOf = async () =>
      (
        (await server.request('GET', '/v1/alerts?limit=200')).body.items as {
          kind: string;
          subjectId: string;
          resolvedAt: string | null;
        }[]
      ).find((a) => a.kind === 'PRINT_JOB_FAILED' && a.subjectId === jobId);
    expect((await alertOf())?.resolvedAt).toBeNull();

    expect((await server.request('POST', `/v1/print-jobs/${jobId}/retry`)).status).toBe(200);
    const again = await k.nextReceipt();
    expect(again.body.jobId).toBe(jobId);
    expect((await k.complete(jobId)).body).toEqual({ success: true });
    expect((await k.printJobOf(orderId)).status).toBe('PRINTED');

    // The receipt is printed: nothing is left for staff to do about its failure.
    const alert = await alertOf();
    expect(alert?.resolvedAt, JSON.stringify(alert)).toEqual(expect.any(String));
    const open = (await server.request('GET', '/v1/alerts?open=true&limit=200')).body.items as {
      kind: string;
      subjectId: string;
    }[];
    expect(open.filter((a) => a.kind === 'PRINT_JOB_FAILED' && a.subjectId === jobId)).toEqual([]);
  });
});
