// The receipt print queue: durable jobs per site, leased to one printer at a time. A lease
// that expires puts the job back; five failed attempts mark it FAILED and raise an alert. A job
// whose order was refunded before it printed is CANCELLED: never handed out (again).
import { LIVE_EVENTS, type PrintSummaryView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { AppError, notFound } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { pageOf } from '../../platform/db/pages.js';
import type { PrintJobRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { Receipt } from './receipt.js';

export const MAX_PRINT_ATTEMPTS = 5;

export interface PrinterScope {
  tenantId: string;
  siteId: string;
  printer: string;
}

export interface LeasedJob {
  jobId: string;
  receipt: Receipt;
  queuedAt: string;
}

/** Why a printer's "printed" for a job it does not hold is refused (409 INVALID_STATE). */
function notHeldMessage(job: Pick<PrintJobRow, 'id' | 'status' | 'attempts'>): string {
  if (job.status === 'FAILED') return `print job ${job.id} has already FAILED; retry it first`;
  if (job.status === 'LEASED')
    return `print job ${job.id} is leased to another printer (a lease that ran out is handed on); only its report counts`;
  if (job.attempts === 0)
    return `print job ${job.id} has not been handed out yet; take it with GET /api/receipt/queue/next`;
  return `print job ${job.id} went back to the queue when its lease ran out; it will be handed out again`;
}

export function createPrintingService(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  alerts: Pick<AlertsService, 'raise' | 'resolveSubject'>;
  leaseMs: number;
  retentionMs: number;
  /**
   * Whether the job's order was taken off the kitchen (refunded before it was made), in the
   * caller's transaction: a failed attempt of its receipt is then CANCELLED, not printed again.
   */
  orderWithdrawn?: (ex: Executor, orderId: string) => Promise<boolean>;
}) {
  const { db, alerts } = deps;

  async function jobEvent(
    ex: Executor,
    job: Pick<PrintJobRow, 'id' | 'tenant_id' | 'site_id' | 'order_id'>,
    status: string,
  ) {
    await enqueueOutbox(ex, 'live', {
      tenantId: job.tenant_id,
      rooms: [`tenant:${job.tenant_id}`, `kitchen:${job.site_id}`],
      event: LIVE_EVENTS.printJobUpdated,
      data: { tenantId: job.tenant_id, jobId: job.id, siteId: job.site_id, orderId: job.order_id, status },
    });
  }

  /**
   * A leased job's attempt failed (reported, or its lease ran out): back to the queue, or FAILED
   * after the last attempt. Only while it is still LEASED: a printer's "printed" committing at the
   * same moment (PostgreSQL) is waited for and stands, and its current status is answered.
   */
  async function fail(ex: Executor, job: PrintJobRow, error: string): Promise<string> {
    const withdrawn =
      job.order_id !== null && deps.orderWithdrawn ? await deps.orderWithdrawn(ex, job.order_id) : false;
    const final = !withdrawn && job.attempts >= MAX_PRINT_ATTEMPTS;
    const status = withdrawn ? 'CANCELLED' : final ? 'FAILED' : 'PENDING';
    const moved = await ex
      .updateTable('print_jobs')
      .set({
        status,
        leased_by: null,
        lease_expires_at: null,
        last_error: error.slice(0, 500),
        updated_at: nowIso(),
      })
      .where('id', '=', job.id)
      .where('status', '=', 'LEASED')
      // This lease, not a later one (each lease counts an attempt).
      .where('attempts', '=', job.attempts)
      .returning('status')
      .executeTakeFirst();
    if (!moved) {
      const now = await ex
        .selectFrom('print_jobs')
        .select('status')
        .where('id', '=', job.id)
        .executeTakeFirst();
      return now?.status ?? job.status;
    }
    // Cancelled by a refund (after staff retried it): the alert about its failures has ended too.
    if (withdrawn) await alerts.resolveSubject(ex, 'PRINT_JOB_FAILED', job.id);
    if (final) {
      await alerts.raise(ex, {
        tenantId: job.tenant_id,
        kind: 'PRINT_JOB_FAILED',
        subjectType: 'print_job',
        subjectId: job.id,
        message: `Receipt ${job.id} failed ${job.attempts} times: ${error.slice(0, 200)}`,
      });
    }
    await jobEvent(ex, job, status);
    // Requeued or FAILED, its printer is free: offer the site's next receipt either way.
    await enqueueOutbox(ex, 'print', { tenantId: job.tenant_id, siteId: job.site_id, jobId: job.id });
    return status;
  }

  /**
   * A job a printer reports on: one of its tenant and site, or the one it holds the lease of
   * wherever it is now (moved to another site while printing it: its "printed" still counts, or
   * the receipt would be printed again by the old site's printers).
   */
  async function reportedJob(ex: Executor, jobId: string, scope: PrinterScope): Promise<PrintJobRow> {
    const job = await scopedJob(ex, jobId, { tenantId: scope.tenantId });
    if (job.site_id !== scope.siteId && job.leased_by !== scope.printer) throw notFound('print job', jobId);
    return job;
  }

  async function scopedJob(
    ex: Executor,
    jobId: string,
    scope: Pick<PrinterScope, 'tenantId' | 'siteId'> | { tenantId: string | null; siteId?: undefined },
  ): Promise<PrintJobRow> {
    const job = await ex.selectFrom('print_jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
    if (
      !job ||
      (scope.tenantId !== null && job.tenant_id !== scope.tenantId) ||
      (scope.siteId !== undefined && job.site_id !== scope.siteId)
    ) {
      throw notFound('print job', jobId);
    }
    return job;
  }

  return {
    /** Queues a receipt inside the payment transaction. */
    async enqueue(
      ex: Executor,
      input: { tenantId: string; siteId: string; orderId: string | null; receipt: Receipt },
    ): Promise<string> {
      const id = newId();
      const now = nowIso();
      await ex
        .insertInto('print_jobs')
        .values({
          id,
          tenant_id: input.tenantId,
          site_id: input.siteId,
          order_id: input.orderId,
          status: 'PENDING',
          receipt: JSON.stringify(input.receipt),
          attempts: 0,
          leased_by: null,
          lease_expires_at: null,
          last_error: null,
          queued_at: now,
          printed_at: null,
          updated_at: now,
        })
        .execute();
      await jobEvent(
        ex,
        { id, tenant_id: input.tenantId, site_id: input.siteId, order_id: input.orderId },
        'PENDING',
      );
      await enqueueOutbox(ex, 'print', { tenantId: input.tenantId, siteId: input.siteId, jobId: id });
      return id;
    },

    /**
     * The order was refunded before it was made (in the refund's transaction): its receipts not
     * yet handed out (PENDING, or FAILED: a retry would print it) become CANCELLED and are never
     * printed. One a printer holds (LEASED) is left
     * to it: its "printed" stands, and a failed attempt or an expired lease cancels it instead of
     * queueing it again (`orderWithdrawn`). Answers the ids of the jobs cancelled.
     */
    async cancelForOrder(ex: Executor, orderId: string, reason: string): Promise<string[]> {
      const cancelled = await ex
        .updateTable('print_jobs')
        .set({ status: 'CANCELLED', last_error: reason.slice(0, 500), updated_at: nowIso() })
        .where('order_id', '=', orderId)
        .where('status', 'in', ['PENDING', 'FAILED'])
        .returningAll()
        .execute();
      for (const job of cancelled) {
        await jobEvent(ex, job, 'CANCELLED');
        // A receipt that had FAILED needs nobody's attention any more: it is never to be printed.
        await alerts.resolveSubject(ex, 'PRINT_JOB_FAILED', job.id);
      }
      return cancelled.map((j) => j.id);
    },

    /** Leases the oldest pending job of the printer's site, or undefined when there is none. */
    async leaseNext(scope: PrinterScope): Promise<LeasedJob | undefined> {
      return db.transaction().execute(async (tx) => {
        let q = tx
          .selectFrom('print_jobs')
          .selectAll()
          .where('tenant_id', '=', scope.tenantId)
          .where('site_id', '=', scope.siteId)
          .where('status', '=', 'PENDING')
          .orderBy('queued_at')
          .orderBy('id')
          .limit(1);
        if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update skip locked`);
        const job = await q.executeTakeFirst();
        if (!job) return undefined;
        const expires = new Date(Date.now() + deps.leaseMs).toISOString();
        await tx
          .updateTable('print_jobs')
          .set({
            status: 'LEASED',
            leased_by: scope.printer,
            lease_expires_at: expires,
            attempts: job.attempts + 1,
            updated_at: nowIso(),
          })
          .where('id', '=', job.id)
          .execute();
        await jobEvent(tx, job, 'LEASED');
        return { jobId: job.id, receipt: JSON.parse(job.receipt) as Receipt, queuedAt: job.queued_at };
      });
    },

    /**
     * The printer holding the job's lease printed it (its lease may have run out meanwhile, as long
     * as the job has not been put back). A repeat is answered as done; anyone else's is refused.
     */
    async complete(jobId: string, scope: PrinterScope): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const job = await reportedJob(tx, jobId, scope);
        if (job.status === 'PRINTED') return;
        const printed = await tx
          .updateTable('print_jobs')
          .set({
            status: 'PRINTED',
            printed_at: nowIso(),
            leased_by: null,
            lease_expires_at: null,
            updated_at: nowIso(),
          })
          .where('id', '=', jobId)
          .where('status', '=', 'LEASED')
          .where('leased_by', '=', scope.printer)
          .returning('status')
          .executeTakeFirst();
        if (!printed) {
          // PostgreSQL: a repeat committing at the same moment is still a repeat.
          const now = await scopedJob(tx, jobId, { tenantId: scope.tenantId });
          if (now.status === 'PRINTED') return;
          throw new AppError('INVALID_STATE', notHeldMessage(now));
        }
        await jobEvent(tx, job, 'PRINTED');
        // Printed after all (retried after it had FAILED): its alert's condition has ended.
        await alerts.resolveSubject(tx, 'PRINT_JOB_FAILED', jobId);
        // A pushed-to printer is free again: offer it the next receipt.
        await enqueueOutbox(tx, 'print', { tenantId: job.tenant_id, siteId: job.site_id, jobId });
      });
    },

    /** The lease holder's print failed; anyone else's report changes nothing. Answers the job's status. */
    async reportFailure(jobId: string, scope: PrinterScope, error: string): Promise<string> {
      return db.transaction().execute(async (tx) => {
        const job = await reportedJob(tx, jobId, scope);
        // Not (or no longer) this printer's: PRINTED, FAILED, queued again, or leased to another.
        if (job.status !== 'LEASED' || job.leased_by !== scope.printer) return job.status;
        return fail(tx, job, error);
      });
    },

    /** Operator: put a FAILED job back in the queue with fresh attempts. */
    async retry(jobId: string, tenantId: string | null): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const job = await scopedJob(tx, jobId, { tenantId });
        if (job.status !== 'FAILED')
          throw new AppError('INVALID_STATE', `print job ${jobId} is ${job.status}, not FAILED`);
        // Only while still FAILED: a refund cancelling it at the same moment (PostgreSQL) stands.
        const queued = await tx
          .updateTable('print_jobs')
          .set({ status: 'PENDING', attempts: 0, last_error: null, updated_at: nowIso() })
          .where('id', '=', jobId)
          .where('status', '=', 'FAILED')
          .returning('id')
          .executeTakeFirst();
        if (!queued) {
          const now = await scopedJob(tx, jobId, { tenantId });
          throw new AppError('INVALID_STATE', `print job ${jobId} is ${now.status}, not FAILED`);
        }
        await jobEvent(tx, job, 'PENDING');
        await enqueueOutbox(tx, 'print', { tenantId: job.tenant_id, siteId: job.site_id, jobId });
      });
    },

    /** Whether the printer holds a receipt of this site (one of a site it has left does not count). */
    async holdsLease(printer: string, tenantId: string, siteId: string): Promise<boolean> {
      const row = await db
        .selectFrom('print_jobs')
        .select('id')
        .where('leased_by', '=', printer)
        .where('status', '=', 'LEASED')
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .executeTakeFirst();
      return row !== undefined;
    },

    async counts(tenantId: string, siteId: string) {
      const rows = await db
        .selectFrom('print_jobs')
        .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .groupBy('status')
        .execute();
      const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      return {
        pending: by['PENDING'] ?? 0,
        leased: by['LEASED'] ?? 0,
        printed: by['PRINTED'] ?? 0,
        failed: by['FAILED'] ?? 0,
      };
    },

    /** Jobs by status per site of the tenant (every tenant's when null), sorted by tenant, site. */
    async summaryBySite(tenantId: string | null): Promise<PrintSummaryView[]> {
      let q = db
        .selectFrom('print_jobs')
        .select(['tenant_id', 'site_id', 'status', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy(['tenant_id', 'site_id', 'status']);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      const bySite = new Map<string, PrintSummaryView>();
      for (const r of await q.execute()) {
        const key = `${r.tenant_id}|${r.site_id}`;
        const entry = bySite.get(key) ?? {
          tenantId: r.tenant_id,
          siteId: r.site_id,
          pending: 0,
          leased: 0,
          printed: 0,
          failed: 0,
        };
        const n = Number(r.n);
        if (r.status === 'PENDING') entry.pending += n;
        else if (r.status === 'LEASED') entry.leased += n;
        else if (r.status === 'PRINTED') entry.printed += n;
        else if (r.status === 'FAILED') entry.failed += n;
        bySite.set(key, entry);
      }
      const sites = [...bySite.values()];
      return sites.sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.siteId.localeCompare(b.siteId));
    },

    async jobStatus(
      jobId: string,
      scope: Pick<PrinterScope, 'tenantId' | 'siteId'> | { tenantId: string | null },
    ) {
      const job = await scopedJob(db, jobId, scope);
      return {
        jobId: job.id,
        status: job.status,
        attempts: job.attempts,
        ...(job.printed_at ? { printedAt: job.printed_at } : {}),
        ...(job.last_error ? { error: job.last_error } : {}),
      };
    },

    /**
     * Newest first, a page at a time; `cursor` is the last job id of the previous page (a position:
     * printed jobs are removed after a while, so a cursor may name one no longer there).
     */
    async listJobs(
      tenantId: string | null,
      filter: { status?: string; siteId?: string; cursor?: string; limit: number },
    ) {
      let q = db
        .selectFrom('print_jobs')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(filter.limit + 1);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if (filter.status) q = q.where('status', '=', filter.status);
      if (filter.siteId) q = q.where('site_id', '=', filter.siteId);
      if (filter.cursor) q = q.where('id', '<', filter.cursor);
      const rows = await q.execute();
      return pageOf(rows, filter.limit, (j) => ({
        jobId: j.id,
        tenantId: j.tenant_id,
        siteId: j.site_id,
        orderId: j.order_id,
        status: j.status,
        attempts: j.attempts,
        queuedAt: j.queued_at,
        printedAt: j.printed_at,
        error: j.last_error,
      }));
    },

    /** Expired leases go back to the queue (or FAILED after the last attempt); old printed jobs are removed. */
    async sweep(): Promise<{ expired: number; removed: number }> {
      const now = nowIso();
      const expired = await db
        .selectFrom('print_jobs')
        .selectAll()
        .where('status', '=', 'LEASED')
        .where('lease_expires_at', '<', now)
        .limit(500)
        .execute();
      for (const job of expired) {
        await db.transaction().execute(async (tx) => {
          const still = await tx
            .selectFrom('print_jobs')
            .selectAll()
            .where('id', '=', job.id)
            .where('status', '=', 'LEASED')
            .where('lease_expires_at', '<', now)
            .executeTakeFirst();
          if (still) await fail(tx, still, 'lease expired without a result');
        });
      }
      const cutoff = new Date(Date.now() - deps.retentionMs).toISOString();
      const removed = await db
        .deleteFrom('print_jobs')
        .where('status', '=', 'PRINTED')
        .where('printed_at', '<', cutoff)
        .executeTakeFirst();
      return { expired: expired.length, removed: Number(removed.numDeletedRows) };
    },
  };
}

export type PrintingService = ReturnType<typeof createPrintingService>;
