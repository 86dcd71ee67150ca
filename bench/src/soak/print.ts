// Receipt printers of the restaurant and the cafe: each long-polls its site's queue, and now and
// then jams (reports the job failed before printing it: the job is retried) or reboots mid-job
// (keeps the lease and never answers: the lease expires after PRINT_JOB_LEASE_MS and the job goes
// back to the queue). A printer never prints a job id it has printed already (a job handed out
// again after a completion lost in the crash is completed without printing). Exactly once: every
// paid order of these sites has one print job, every job is PRINTED, and printed once.
import { sleep } from '../lib/wait.js';
import { call, ok } from './client.js';
import { type AuditLine, type Flow } from './flow.js';

export function printFlow(options: { sites: string[]; leaseMs: number }): Flow {
  const printers: { id: string; key: string; siteId: string }[] = [];
  const printed = new Map<string, number>(); // job id → times printed
  const orderOfJob = new Map<string, string>();
  let jams = 0;
  let reboots = 0;
  let handedOutAgain = 0;
  let stop = false;
  let running: Promise<void>[] = [];

  const printerLoop = async (url: string, p: { key: string }) => {
    while (!stop) {
      const res = await call(url, 'GET', '/api/receipt/queue/next?wait=5', { key: p.key });
      if (res.status !== 200) continue;
      const jobId = String(res.body.jobId);
      orderOfJob.set(jobId, String(res.body.receipt?.orderNumber));
      if (printed.has(jobId)) {
        handedOutAgain++;
      } else {
        const r = Math.random();
        if (r < 0.04) {
          jams++;
          await ok(url, 'POST', `/api/receipt/queue/failed/${jobId}`, { key: p.key }, { error: 'paper jam' });
          continue;
        }
        if (r < 0.06) {
          // Rebooted before printing: the job comes back when its lease expires.
          reboots++;
          await sleep(options.leaseMs / 4);
          continue;
        }
        printed.set(jobId, (printed.get(jobId) ?? 0) + 1);
      }
      await ok(url, 'POST', `/api/receipt/queue/complete/${jobId}`, { key: p.key });
    }
  };

  const unprintedJobs = async (url: string) => {
    let n = 0;
    for (const p of printers) {
      const s = await ok(url, 'GET', '/api/receipt/queue/status', { key: p.key });
      n += Number(s.pending) + Number(s.leased);
    }
    return n;
  };

  return {
    name: 'receipt printers',
    async setup(ctx) {
      for (const siteId of options.sites) {
        const id = `SP-${siteId}`.slice(0, 64);
        const m = await ok(ctx.url, 'POST', '/v1/machines', { admin: true }, { id, kind: 'printer', siteId });
        printers.push({ id, key: String(m.key), siteId });
      }
      running = printers.map((p) => printerLoop(ctx.url, p));
    },
    async run(ctx) {
      await ctx.stopped;
    },
    count: () => printed.size,
    async drain(ctx) {
      // Jobs of the last paid orders, and jobs whose lease a rebooted printer let lapse.
      for (let i = 0; i < 90; i++) {
        if ((await unprintedJobs(ctx.url)) === 0) break;
        await sleep(1_000);
      }
      stop = true;
      await Promise.all(running);
    },
    async audit(db) {
      const jobs = await db
        .selectFrom('print_jobs')
        .select(['id', 'order_id', 'status'])
        .where('site_id', 'in', options.sites)
        .execute();
      const paidOrders = await db
        .selectFrom('orders')
        .select(['id'])
        .where('site_id', 'in', options.sites)
        .where('paid_at', 'is not', null)
        .execute();
      const jobsPerOrder = new Map<string, number>();
      for (const j of jobs)
        if (j.order_id) jobsPerOrder.set(j.order_id, (jobsPerOrder.get(j.order_id) ?? 0) + 1);
      const withoutReceipt = paidOrders.filter((o) => !jobsPerOrder.has(o.id)).length;
      const twoReceipts = [...jobsPerOrder.values()].filter((n) => n > 1).length;
      const notPrinted = jobs.filter((j) => j.status !== 'PRINTED').length;
      const printedTwice = [...printed.values()].filter((n) => n > 1).length;
      const neverSeen = jobs.filter((j) => !printed.has(j.id)).length;
      const line: AuditLine = {
        check: 'print: every paid order has one receipt job, every job printed once',
        ok:
          withoutReceipt === 0 &&
          twoReceipts === 0 &&
          notPrinted === 0 &&
          printedTwice === 0 &&
          neverSeen === 0 &&
          jobs.length === paidOrders.length,
        detail: `${paidOrders.length} paid orders, ${jobs.length} jobs, ${printed.size} printed, ${printedTwice} printed twice, ${notPrinted} not PRINTED, ${withoutReceipt} orders without a receipt, ${twoReceipts} with two; ${jams} jams retried, ${reboots} leases lapsed, ${handedOutAgain} handed out again after a lost completion`,
      };
      return [line];
    },
    async close() {
      stop = true;
    },
  };
}
