// Review tests of the receipt print queue (CONTRACTS.md §10) against the real server, on both
// engines: which printer's "printed" or "failed" counts (a job never handed out, a repeat, a late
// report after the lease ran out and the job went back or to another printer), and a long poll
// that must not sleep through a receipt queued just as it found the queue empty.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, eventually, startServer, type Engine, type TestServer } from './harness.js';

let seq = 0;
const uid = (prefix: string) => `${prefix}${++seq}${Math.random().toString(36).slice(2, 6)}`;
const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, body: res.body }, JSON.stringify(res.body)).toMatchObject({
    status,
    body: { error: { code } },
  });
}

function queueFor(getServer: () => TestServer) {
  const server = () => getServer();

  /** A PHP site with a kiosk, three printers and one product (₱120). */
  async function printSite() {
    const siteId = uid('prq');
    const res = await server().request('POST', '/v1/sites', {
      body: { id: siteId, name: `Diner ${siteId}`, currency: 'PHP' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const sku = `${siteId}-meal`;
    const p = await server().request('POST', '/v1/products', {
      body: { sku, name: 'Meal', priceMinor: 12_000, siteId },
    });
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    return {
      siteId,
      sku,
      kiosk: await server().createMachine(uid('K'), { kind: 'kiosk', siteId }),
      printerA: await server().createMachine(uid('PA'), { kind: 'printer', siteId }),
      printerB: await server().createMachine(uid('PB'), { kind: 'printer', siteId }),
      printerC: await server().createMachine(uid('PC'), { kind: 'printer', siteId }),
    };
  }
  type Site = Awaited<ReturnType<typeof printSite>>;

  /** A paid ₱120 cash order of the site; returns its receipt's print job id. */
  async function paid(site: Site): Promise<string> {
    const order = await server().request('POST', '/v1/orders', {
      ...key(site.kiosk.key),
      body: { items: [{ sku: site.sku, qty: 1 }] },
    });
    expect(order.status, JSON.stringify(order.body)).toBe(201);
    const orderNumber = order.body.orderNumber as string;
    const init = await server().request('POST', '/api/cash-payment/init', {
      ...key(site.kiosk.key),
      body: { orderNumber, totalAmount: 120 },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const upd = await server().request('POST', '/api/cash-payment/update', {
      ...key(site.kiosk.key),
      body: { orderNumber, amountAdded: 120 },
    });
    expect(upd.body.status, JSON.stringify(upd.body)).toBe('PAID');
    const jobs = (await server().request('GET', `/v1/print-jobs?siteId=${site.siteId}&limit=200`)).body.items;
    const job = jobs.find((j: any) => j.orderId === order.body.id);
    expect(job).toBeDefined();
    return job.jobId as string;
  }

  const next = (k: string, query = '') => server().request('GET', `/api/receipt/queue/next${query}`, key(k));
  const complete = (k: string, jobId: string) =>
    server().request('POST', `/api/receipt/queue/complete/${jobId}`, key(k));
  const failed = (k: string, jobId: string, error = 'paper jam') =>
    server().request('POST', `/api/receipt/queue/failed/${jobId}`, { ...key(k), body: { error } });
  const status = async (k: string, jobId: string) =>
    (await server().request('GET', `/api/receipt/queue/status/${jobId}`, key(k))).body;
  const counts = async (k: string) =>
    (await server().request('GET', '/api/receipt/queue/status', key(k))).body;

  /** The job's lease runs out now and the sweep puts it back in the queue (no waiting on a clock). */
  async function leaseRunsOut(jobId: string): Promise<void> {
    await server()
      .kioskhub.db.updateTable('print_jobs')
      .set({ lease_expires_at: new Date(Date.now() - 1_000).toISOString() })
      .where('id', '=', jobId)
      .execute();
    await server().kioskhub.services.printing.sweep();
  }

  return { printSite, paid, next, complete, failed, status, counts, leaseRunsOut };
}

describe.each(engines())('print queue: whose report counts (%s)', (engine: Engine) => {
  let server: TestServer;
  const q = queueFor(() => server);

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('"printed" for a job never handed out is 409 INVALID_STATE; it stays queued and prints once', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expectError(await q.complete(site.printerA.key, jobId), 409, 'INVALID_STATE');
    expect(await q.status(site.printerA.key, jobId)).toEqual({
      success: true,
      jobId,
      status: 'PENDING',
      attempts: 0,
    });
    expect((await q.next(site.printerB.key)).body.jobId).toBe(jobId);
    expect((await q.complete(site.printerB.key, jobId)).body).toEqual({ success: true });
    expect(await q.counts(site.printerA.key)).toMatchObject({ pending: 0, leased: 0, printed: 1 });
  });

  it('"printed" again (any printer of the site) answers success and changes nothing', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    expect((await q.complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    const first = await q.status(site.printerA.key, jobId);
    expect(first).toMatchObject({ status: 'PRINTED', attempts: 1, printedAt: expect.any(String) });
    await new Promise((r) => setTimeout(r, 5)); // a rewrite would carry a later printedAt
    expect((await q.complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    expect((await q.complete(site.printerB.key, jobId)).body).toEqual({ success: true });
    expect(await q.status(site.printerA.key, jobId)).toEqual(first);
    expect(await q.counts(site.printerA.key)).toMatchObject({ pending: 0, leased: 0, printed: 1 });
  });

  it('"printed" or "failed" from a printer not holding the lease is refused; the holder’s lease stands', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    expectError(await q.complete(site.printerB.key, jobId), 409, 'INVALID_STATE');
    expect((await q.failed(site.printerB.key, jobId)).body).toEqual({ success: true, status: 'LEASED' });
    expect(await q.status(site.printerA.key, jobId)).toEqual({
      success: true,
      jobId,
      status: 'LEASED',
      attempts: 1,
    });
    expect((await q.next(site.printerC.key)).status).toBe(204);
    expect((await q.complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    expect(await q.status(site.printerA.key, jobId)).toMatchObject({ status: 'PRINTED', attempts: 1 });
  });

  it('a late "printed" after the lease ran out and the job went to another printer is 409; that printer’s report decides', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    await q.leaseRunsOut(jobId);
    expect((await q.next(site.printerB.key)).body.jobId).toBe(jobId);
    expectError(await q.complete(site.printerA.key, jobId), 409, 'INVALID_STATE');
    expect(await q.status(site.printerB.key, jobId)).toMatchObject({ status: 'LEASED', attempts: 2 });
    expect(await q.counts(site.printerB.key)).toMatchObject({ pending: 0, leased: 1, printed: 0 });
    expect((await q.complete(site.printerB.key, jobId)).body).toEqual({ success: true });
    expect(await q.status(site.printerB.key, jobId)).toMatchObject({ status: 'PRINTED', attempts: 2 });
    expect(await q.counts(site.printerB.key)).toMatchObject({ pending: 0, leased: 0, printed: 1 });
  });

  it('a late "failed" after the job went to another printer changes nothing (it is not retried under that printer)', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    await q.leaseRunsOut(jobId);
    expect((await q.next(site.printerB.key)).body.jobId).toBe(jobId);
    expect((await q.failed(site.printerA.key, jobId, 'late jam')).body).toEqual({
      success: true,
      status: 'LEASED',
    });
    expect(await q.status(site.printerB.key, jobId)).toMatchObject({ status: 'LEASED', attempts: 2 });
    expect((await q.next(site.printerC.key)).status).toBe(204);
    expect((await q.complete(site.printerB.key, jobId)).body).toEqual({ success: true });
    expect(await q.counts(site.printerB.key)).toMatchObject({ pending: 0, leased: 0, printed: 1 });
  });

  it('a late "printed" after the lease ran out and the job went back to the queue is 409; it is handed out again', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    await q.leaseRunsOut(jobId);
    expect(await q.status(site.printerA.key, jobId)).toMatchObject({ status: 'PENDING', attempts: 1 });
    expectError(await q.complete(site.printerA.key, jobId), 409, 'INVALID_STATE');
    expect(await q.status(site.printerA.key, jobId)).toMatchObject({ status: 'PENDING', attempts: 1 });
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    expect((await q.complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    expect(await q.counts(site.printerA.key)).toMatchObject({ pending: 0, leased: 0, printed: 1 });
  });

  it('a "printed" from the holder whose lease ran out before the sweep moved the job stands', async () => {
    const site = await q.printSite();
    const jobId = await q.paid(site);
    expect((await q.next(site.printerA.key)).body.jobId).toBe(jobId);
    await server.kioskhub.db
      .updateTable('print_jobs')
      .set({ lease_expires_at: new Date(Date.now() - 1_000).toISOString() })
      .where('id', '=', jobId)
      .execute();
    expect((await q.complete(site.printerA.key, jobId)).body).toEqual({ success: true });
    await server.kioskhub.services.printing.sweep();
    expect(await q.status(site.printerA.key, jobId)).toMatchObject({ status: 'PRINTED', attempts: 1 });
    expect((await q.next(site.printerB.key)).status).toBe(204);
  });
});

describe.each(engines())('print queue: long-poll wake-ups (%s)', (engine: Engine) => {
  let server: TestServer;
  const q = queueFor(() => server);

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Print wake-ups delivered so far (the outbox's `print` jobs run). */
  const wakeUps = async (): Promise<number> =>
    (await server.kioskhub.metrics.jobs.get()).values
      .filter((v) => v.labels['topic'] === 'print' && v.labels['outcome'] === 'done')
      .reduce((n, v) => n + v.value, 0);

  // The poll used to look at the queue, find it empty and only then start listening: a receipt
  // whose wake-up came in between waited out the whole ?wait= (up to 30 s) before it printed.
  it('a receipt queued (and its wake-up sent) right after a poll found the queue empty is delivered at once', async () => {
    const site = await q.printSite();
    const printing = server.kioskhub.services.printing;
    const leaseNext = printing.leaseNext;
    let jobId = '';
    let hooked!: () => void;
    const gapPassed = new Promise<void>((r) => (hooked = r));
    // Deterministically inside the gap: the poll's first look finds nothing, then, before it
    // returns, a receipt is queued and its wake-up has gone out.
    printing.leaseNext = async (scope) => {
      const found = await leaseNext(scope);
      if (found || jobId !== '' || scope.siteId !== site.siteId) return found;
      const before = await wakeUps();
      jobId = await q.paid(site);
      await eventually(async () => (await wakeUps()) > before, 10_000, 'the wake-up to be sent');
      hooked();
      return found;
    };
    try {
      const poll = q.next(site.printerA.key, '?wait=30');
      await gapPassed;
      const gapAt = Date.now();
      // Nothing wakes it any more: only the wake-up it may have kept ends its wait before 30 s.
      const answer = await Promise.race([
        poll,
        new Promise<'still waiting'>((r) => setTimeout(() => r('still waiting'), 15_000)),
      ]);
      expect(answer, 'the poll slept through the wake-up').not.toBe('still waiting');
      const res = answer as Res;
      expect(res.status).toBe(200);
      expect(res.body.jobId).toBe(jobId);
      console.log(`long-poll gap (${engine}): answered ${Date.now() - gapAt} ms after the wake-up`);
    } finally {
      printing.leaseNext = leaseNext;
    }
  }, 60_000);

  it('many printers long-polling while receipts are queued: every receipt goes out, none waits out the poll', async () => {
    const site = await q.printSite();
    const printers = [site.printerA, site.printerB, site.printerC];
    const jobs = 12;
    const got: string[] = [];
    let done = false;
    let deliveredAt = 0;
    const poller = async (k: string) => {
      while (!done) {
        const res = await q.next(k, '?wait=20');
        if (res.status !== 200 || done) continue;
        got.push(res.body.jobId as string);
        expect((await q.complete(k, res.body.jobId as string)).body).toEqual({ success: true });
        if (got.length === jobs) {
          done = true;
          deliveredAt = Date.now();
        }
      }
    };
    const polling = Promise.all(printers.map((p) => poller(p.key)));
    const queued: string[] = [];
    for (let i = 0; i < jobs; i++) queued.push(await q.paid(site));
    const lastQueuedAt = Date.now();
    await eventually(() => done, 30_000, 'every receipt to be delivered');
    // A receipt that missed its wake-up would wait for a poll to run out (20 s).
    expect(deliveredAt - lastQueuedAt).toBeLessThan(15_000);
    // Release the polls still waiting: one more receipt each.
    for (let i = 1; i < printers.length; i++) await q.paid(site);
    await polling;
    expect([...got].sort()).toEqual([...queued].sort());
  }, 90_000);
});
