// The job table (grown from the transactional outbox): effects that must follow a commit (live
// emits, dispatch kicks, print wake-ups) and background work are rows written inside the
// transaction and run after it, again at start-up, and again with backoff when they throw, so a
// crash or an error only delays the effect; a job that keeps failing ends FAILED with an alert.
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { nowIso, type Db, type Executor } from './db/database.js';

// Modules add their own topics by declaration merging (`declare module '…/platform/outbox.js'`)
// and register their handlers with `relay.handle(topic, fn)` before `start()`.
export interface OutboxTopics {
  /** Emit a live event to rooms of one tenant. */
  live: { tenantId: string; rooms: string[]; event: string; data: Record<string, unknown> };
  /** A machine may have a command to send (`commandId`: the command just queued, when known). */
  dispatch: { machineId: string; commandId?: string };
  /** A site has a print job waiting: wake its long-polling and connected printers. */
  print: { tenantId: string; siteId: string; jobId: string };
  /** Ask the payment's provider to refund (its refund API); retried until it answers. */
  refund: { tenantId: string; refundId: string };
}
export type OutboxTopic = keyof OutboxTopics;
export type OutboxHandler<T extends OutboxTopic> = (payload: OutboxTopics[T]) => void | Promise<void>;
export type OutboxHandlers = { [T in OutboxTopic]?: OutboxHandler<T> };

export async function enqueueOutbox<T extends OutboxTopic>(
  ex: Executor,
  topic: T,
  payload: OutboxTopics[T],
  options: { runAt?: string } = {},
): Promise<void> {
  await ex
    .insertInto('outbox')
    .values({ topic, payload: JSON.stringify(payload), created_at: nowIso(), run_at: options.runAt ?? null })
    .execute();
}

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
  let running = false;
  let scheduled = false;
  // Relays run one after another; drain() never rejects, so the chain never breaks.
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  async function claim(): Promise<{ id: number; topic: string; payload: string; attempts: number }[]> {
    const now = nowIso();
    return deps.db
      .updateTable('outbox')
      .set({ leased_until: new Date(Date.now() + leaseMs).toISOString() })
      .where('id', 'in', (eb) => {
        let q = eb
          .selectFrom('outbox')
          .select('id')
          .where('status', '=', 'QUEUED')
          .where((w) => w.or([w('run_at', 'is', null), w('run_at', '<=', now)]))
          .where((w) => w.or([w('leased_until', 'is', null), w('leased_until', '<', now)]))
          .orderBy('id')
          .limit(batchSize);
        // Several processes may relay at once: each takes rows nobody else holds.
        if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update skip locked`);
        return q;
      })
      .returning(['id', 'topic', 'payload', 'attempts'])
      .execute();
  }

  async function failed(row: { id: number; topic: string; payload: string; attempts: number }, err: unknown) {
    const attempts = row.attempts + 1;
    const error = err instanceof Error ? err.message : String(err);
    const final = attempts >= maxAttempts;
    await deps.db
      .updateTable('outbox')
      .set({
        attempts,
        last_error: error.slice(0, 1000),
        leased_until: null,
        ...(final
          ? { status: 'FAILED' }
          : { run_at: new Date(Date.now() + jobBackoffMs(attempts, deps.backoffBaseMs)).toISOString() }),
      })
      .where('id', '=', row.id)
      .execute();
    deps.onOutcome?.(row.topic, final ? 'failed' : 'retry');
    if (final) {
      deps.logger.error({ err, topic: row.topic, jobId: row.id, attempts }, 'job failed for good');
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

  async function drainOnce(): Promise<number> {
    if (!running) return 0;
    const rows = await claim();
    if (rows.length === 0) return 0;
    const done: number[] = [];
    for (const row of rows) {
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
    if (done.length > 0) await deps.db.deleteFrom('outbox').where('id', 'in', done).execute();
    return rows.length;
  }

  async function drain(): Promise<void> {
    try {
      while ((await drainOnce()) === batchSize) {
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
