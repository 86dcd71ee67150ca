// The job table (grown from the transactional outbox): effects that must follow a commit (live
// emits, dispatch kicks, print wake-ups) and background work are rows written inside the
// transaction and run after it, again at start-up, and again with backoff when they throw, so a
// crash or an error only delays the effect; a job that keeps failing ends FAILED with an alert.
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { insertRows } from './db/compiled.js';
import { heldUntilEnd, inGroup } from './db/group-commit.js';
import { nowIso, type Db, type Executor } from './db/database.js';

// Modules add their own topics by declaration merging (`declare module '…/platform/outbox.js'`)
// and register their handlers with `relay.handle(topic, fn)` before `start()`.
export interface OutboxTopics {
  /** Emit a live event to rooms of one tenant. */
  live: { tenantId: string; rooms: string[]; event: string; data: Record<string, unknown> };
  /**
   * A machine may have a command to send (`commandId`: the command just queued, when known).
   * `tenantId`, the machine's, files a failure under its tenant (absent in jobs written before).
   */
  dispatch: { tenantId?: string; machineId: string; commandId?: string };
  /** A site has a print job waiting: wake its long-polling and connected printers. */
  print: { tenantId: string; siteId: string; jobId: string };
  /** Ask the payment's provider to refund (its refund API); retried until it answers. */
  refund: { tenantId: string; refundId: string };
}
export type OutboxTopic = keyof OutboxTopics;
export type OutboxHandler<T extends OutboxTopic> = (payload: OutboxTopics[T]) => void | Promise<void>;
export type OutboxHandlers = { [T in OutboxTopic]?: OutboxHandler<T> };
/**
 * Told once when a job of its topic ends FAILED, with the job's payload and last error: ends what
 * the job was for (its own state and alert). True when it did, so no JOB_FAILED alert is raised.
 */
export type OutboxFailureHandler<T extends OutboxTopic> = (
  payload: OutboxTopics[T],
  error: string,
) => Promise<boolean>;

export async function enqueueOutbox<T extends OutboxTopic>(
  ex: Executor,
  topic: T,
  payload: OutboxTopics[T],
  options: { runAt?: string } = {},
): Promise<void> {
  await enqueueOutboxJobs(ex, [outboxJob(topic, payload, options)]);
}

const heldJobs = {};

/**
 * Several jobs, in this order (`outboxJob` builds each). In a money event they are written with
 * the event's other jobs as one statement at its end (a webhook queues three).
 */
export async function enqueueOutboxJobs(ex: Executor, jobs: OutboxJob[]): Promise<void> {
  if (jobs.length === 0) return;
  const held = heldUntilEnd(
    ex,
    heldJobs,
    (): OutboxJob[] => [],
    async (all) => {
      await insertJob(ex, all);
    },
  );
  if (held) held.push(...jobs);
  else await insertJob(ex, jobs);
}

export interface OutboxJob {
  topic: string;
  payload: string;
  created_at: string;
  run_at: string | null;
}

export function outboxJob<T extends OutboxTopic>(
  topic: T,
  payload: OutboxTopics[T],
  options: { runAt?: string } = {},
): OutboxJob {
  return { topic, payload: JSON.stringify(payload), created_at: nowIso(), run_at: options.runAt ?? null };
}

/** True when a job of this topic is waiting to run (a periodic job queues itself only once). */
export async function hasQueuedJob(ex: Executor, topic: OutboxTopic): Promise<boolean> {
  const waiting = await ex
    .selectFrom('outbox')
    .select('id')
    .where('topic', '=', topic)
    .where('status', '=', 'QUEUED')
    .executeTakeFirst();
  return waiting !== undefined;
}

/**
 * The payloads of the jobs of `topic` waiting to run, claimed or not (a sweep's "has it a job
 * already?"). A job that runs keeps its row until it ends, and one that schedules its next writes
 * that before its own row goes, so a chain of jobs always shows here while it lasts.
 */
export async function queuedPayloads<T extends OutboxTopic>(
  ex: Executor,
  topic: T,
): Promise<OutboxTopics[T][]> {
  const rows = await ex
    .selectFrom('outbox')
    .select('payload')
    .where('topic', '=', topic)
    .where('status', '=', 'QUEUED')
    .execute();
  return rows.map((r) => JSON.parse(r.payload) as OutboxTopics[T]);
}

// Several jobs per payment: compiled once.
const insertJob = insertRows('outbox');

/** Backoff before attempt n+1 after n failures: 1 s, 2 s, 4 s … capped at 5 min. */
export const jobBackoffMs = (failures: number, baseMs = 1_000): number =>
  Math.min(300_000, baseMs * 2 ** Math.max(0, failures - 1));

export interface JobRelayOptions {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  logger: Logger;
  batchSize?: number;
  /** Attempts before a job is FAILED and an alert raised (default 8). */
  maxAttempts?: number;
  /** First retry delay; doubles each failure (default 1 s). */
  backoffBaseMs?: number;
  /** How long a claim holds rows before another relay may take them (a crash mid-run). */
  leaseMs?: number;
  /** Called once when a job reaches FAILED (raise an operator alert). */
  onFailed?(job: { id: number; topic: string; tenantId: string | null; error: string }): Promise<void>;
  /** Counts each run's outcome (metrics). */
  onOutcome?(topic: string, outcome: 'done' | 'retry' | 'failed'): void;
}

/**
 * The job table's relay: claims due rows with a lease (`SKIP LOCKED` on PostgreSQL), runs their
 * handlers outside any transaction, deletes what succeeded and reschedules what threw, with
 * exponential backoff, until a final FAILED state. Nothing is dropped on an error.
 */
export function createOutboxRelay(deps: JobRelayOptions) {
  const batchSize = deps.batchSize ?? 500;
  const maxAttempts = deps.maxAttempts ?? 8;
  const leaseMs = deps.leaseMs ?? 60_000;
  const registered = new Map<string, (payload: unknown) => void | Promise<void>>();
  const onFinal = new Map<string, (payload: unknown, error: string) => Promise<boolean>>();
  const withheld = new Map<string, (payload: unknown) => unknown>();
  let running = false;
  let scheduled = false;
  // Relays run one after another; drain() never rejects, so the chain never breaks.
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  type Claimed = { id: number; topic: string; payload: string; attempts: number };

  /** Due jobs, and on PostgreSQL the lease written on them (renewed while the batch runs). */
  async function claim(): Promise<{ rows: Claimed[]; lease?: string }> {
    const now = nowIso();
    if (deps.dialect === 'sqlite') {
      // One process owns the file and its relay runs one drain at a time: nobody else can take
      // these rows, so a lease would only cost a synchronous (fsynced) write per batch.
      // Immediate jobs, and scheduled jobs now due, each a range of outbox_run_idx (as below). One
      // query with `run_at is null or run_at <= now` walks the queue in id order, reading every
      // job scheduled for later (one water hold expiry per verification: 1.4 ms a claim with
      // 5,000 pending); and the planner, unless told, may walk the queue by its primary key instead.
      const immediate = await sql<Claimed>`select id, topic, payload, attempts from outbox
        indexed by outbox_run_idx
        where status = 'QUEUED' and run_at is null and (leased_until is null or leased_until < ${now})
        order by id limit ${batchSize}`.execute(deps.db);
      const scheduled = await sql<Claimed>`select id, topic, payload, attempts from outbox
        indexed by outbox_run_idx
        where status = 'QUEUED' and run_at <= ${now} and (leased_until is null or leased_until < ${now})
        order by id limit ${batchSize}`.execute(deps.db);
      const rows = [...immediate.rows, ...scheduled.rows];
      return {
        rows: scheduled.rows.length === 0 ? rows : rows.sort((a, b) => a.id - b.id).slice(0, batchSize),
      };
    }
    const lease = new Date(Date.now() + leaseMs).toISOString();
    const leased = await deps.db
      .updateTable('outbox')
      .set({ leased_until: lease })
      .where((eb) => {
        // Immediate jobs, and scheduled jobs now due, each a range of outbox_run_idx: jobs
        // scheduled for later (thousands of water hold expiries) are never scanned.
        const due = (scheduled: boolean) => {
          let q = eb.selectFrom('outbox').select('id').where('status', '=', 'QUEUED');
          q = scheduled ? q.where('run_at', '<=', now) : q.where('run_at', 'is', null);
          q = q
            .where((w) => w.or([w('leased_until', 'is', null), w('leased_until', '<', now)]))
            .orderBy('id')
            .limit(batchSize);
          // Several processes may relay at once: each takes rows nobody else holds.
          if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update skip locked`);
          return q;
        };
        return eb.or([eb('id', 'in', due(false)), eb('id', 'in', due(true))]);
      })
      .returning(['id', 'topic', 'payload', 'attempts'])
      .execute();
    // RETURNING promises no order: run them in the order they were written, as on SQLite.
    return { rows: leased.sort((a, b) => Number(a.id) - Number(b.id)), lease };
  }

  async function failed(row: { id: number; topic: string; payload: string; attempts: number }, err: unknown) {
    const attempts = row.attempts + 1;
    const error = err instanceof Error ? err.message : String(err);
    const final = attempts >= maxAttempts;
    // A topic's own ending runs before the job is marked FAILED: should the process stop in
    // between, the job is still there and runs again (its handler finds what was ended, or ends
    // it then), rather than FAILED with nothing ended and nobody told.
    const ender = final ? onFinal.get(row.topic) : undefined;
    let ended = false;
    if (ender) {
      try {
        ended = await ender(JSON.parse(row.payload), error);
      } catch (endErr) {
        // Its own ending failed: the generic alert below still tells staff of the job.
        deps.logger.error({ err: endErr, topic: row.topic, jobId: row.id }, 'ending a failed job failed');
      }
    }
    const withhold = final ? withheld.get(row.topic) : undefined;
    await deps.db
      .updateTable('outbox')
      .set({
        attempts,
        last_error: error.slice(0, 1000),
        leased_until: null,
        ...(final
          ? {
              status: 'FAILED',
              ...(withhold ? { payload: JSON.stringify(withhold(JSON.parse(row.payload))) } : {}),
            }
          : { run_at: new Date(Date.now() + jobBackoffMs(attempts, deps.backoffBaseMs)).toISOString() }),
      })
      .where('id', '=', row.id)
      .execute();
    deps.onOutcome?.(row.topic, final ? 'failed' : 'retry');
    if (final) {
      deps.logger.error({ err, topic: row.topic, jobId: row.id, attempts }, 'job failed for good');
      if (ended) return;
      const tenantId = (JSON.parse(row.payload) as { tenantId?: unknown }).tenantId;
      await deps.onFailed?.({
        id: Number(row.id),
        topic: row.topic,
        tenantId: typeof tenantId === 'string' ? tenantId : null,
        error,
      });
    } else {
      deps.logger.warn({ err, topic: row.topic, jobId: row.id, attempts }, 'job failed; will retry');
    }
  }

  /**
   * PostgreSQL: keeps a claim's lease alive while its batch runs (every third of `leaseMs`, the
   * rows still carrying it get a fresh one), so no other process takes a job that is running or
   * waiting its turn, however slow the handlers. A row whose lease is gone (another relay took it
   * after this process stalled past the lease) is dropped from the batch and not run here.
   */
  function keepLease(ids: number[], lease: string): { holds(id: number): boolean; stop(): void } {
    const ours = new Set(ids);
    let current = lease;
    let renewing = false;
    const renew = async () => {
      if (renewing || ours.size === 0) return;
      renewing = true;
      try {
        const next = new Date(Date.now() + leaseMs).toISOString();
        const kept = await deps.db
          .updateTable('outbox')
          .set({ leased_until: next })
          .where('id', 'in', [...ours])
          .where('leased_until', '=', current)
          .returning('id')
          .execute();
        current = next;
        const still = new Set(kept.map((r) => Number(r.id)));
        for (const id of ours) if (!still.has(id)) ours.delete(id);
      } catch (err) {
        deps.logger.warn({ err }, 'could not renew the job lease; will retry');
      } finally {
        renewing = false;
      }
    };
    const timer = setInterval(() => void renew(), Math.max(10, Math.floor(leaseMs / 3)));
    timer.unref();
    return { holds: (id) => ours.has(id), stop: () => clearInterval(timer) };
  }

  async function drainOnce(): Promise<number> {
    if (!running) return 0;
    const { rows, lease: claimed } = await claim();
    if (rows.length === 0) return 0;
    const lease =
      claimed === undefined
        ? undefined
        : keepLease(
            rows.map((r) => Number(r.id)),
            claimed,
          );
    const done: number[] = [];
    try {
      for (const row of rows) {
        // Taken by another relay while this one stalled: it runs there, not twice.
        if (lease && !lease.holds(Number(row.id))) continue;
        const handler = registered.get(row.topic);
        try {
          if (!handler) throw new Error(`no handler for job topic "${row.topic}"`);
          await handler(JSON.parse(row.payload));
          done.push(row.id);
          deps.onOutcome?.(row.topic, 'done');
        } catch (err) {
          await failed(row, err);
        }
      }
      if (done.length > 0) {
        const remove = (ex: Executor) => ex.deleteFrom('outbox').where('id', 'in', done).execute();
        // SQLite: the deletion joins the money events' next commit rather than an fsync of its own
        // (a crash before it runs the jobs again, which every handler must allow anyway).
        await (deps.dialect === 'sqlite' ? inGroup(deps.db, remove, { replayable: true }) : remove(deps.db));
      }
    } finally {
      lease?.stop();
    }
    return rows.length;
  }

  async function drain(): Promise<void> {
    try {
      while ((await drainOnce()) >= batchSize) {
        /* keep going while full batches come back */
      }
    } catch (err) {
      deps.logger.warn({ err }, 'job relay failed; will retry');
    }
  }

  function flushSoon(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      chain = chain.then(drain);
    });
  }

  return {
    flushSoon,
    drain,
    /** Registers the handler of one topic (a module's own jobs); once per topic. */
    handle<T extends OutboxTopic>(topic: T, handler: OutboxHandler<T>): void {
      if (registered.has(topic)) throw new Error(`job topic "${topic}" already has a handler`);
      registered.set(topic, handler as (payload: unknown) => void | Promise<void>);
    },
    /**
     * A topic whose payload may hold a secret (an SMS with a new PIN): a job of it that ends FAILED
     * keeps `withhold(payload)` instead, not the secret for good.
     */
    withholdWhenFailed<T extends OutboxTopic>(
      topic: T,
      withhold: (payload: OutboxTopics[T]) => OutboxTopics[T],
    ): void {
      withheld.set(topic, withhold as (payload: unknown) => unknown);
    },
    /** What ends a job of `topic` that failed for good, instead of a JOB_FAILED alert (once per topic). */
    handleFailure<T extends OutboxTopic>(topic: T, handler: OutboxFailureHandler<T>): void {
      if (onFinal.has(topic)) throw new Error(`job topic "${topic}" already has a failure handler`);
      onFinal.set(topic, handler as (payload: unknown, error: string) => Promise<boolean>);
    },
    start(h: OutboxHandlers = {}, intervalMs = 1000): void {
      for (const [topic, handler] of Object.entries(h)) {
        if (handler) registered.set(topic, handler as (payload: unknown) => void | Promise<void>);
      }
      running = true;
      flushSoon();
      timer = setInterval(flushSoon, intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      running = false;
      await chain;
    },
  };
}

export type OutboxRelay = ReturnType<typeof createOutboxRelay>;
