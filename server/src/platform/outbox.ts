// Transactional outbox: effects that must follow a commit (live emits, dispatch kicks) are
// written as rows inside the transaction and relayed after it, and again at start-up, so a
// crash between commit and effect only delays the effect.
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { nowIso, type Db, type Executor } from './db/database.js';

export interface OutboxTopics {
  /** Emit a live event to rooms of one tenant. */
  live: { tenantId: string; rooms: string[]; event: string; data: Record<string, unknown> };
  /** A machine may have a command to send (`commandId`: the command just queued, when known). */
  dispatch: { machineId: string; commandId?: string };
  /** A site has a print job waiting: wake its long-polling and connected printers. */
  print: { tenantId: string; siteId: string; jobId: string };
}
export type OutboxTopic = keyof OutboxTopics;
export type OutboxHandlers = { [T in OutboxTopic]: (payload: OutboxTopics[T]) => void };

export async function enqueueOutbox<T extends OutboxTopic>(ex: Executor, topic: T, payload: OutboxTopics[T]): Promise<void> {
  await ex.insertInto('outbox').values({ topic, payload: JSON.stringify(payload), created_at: nowIso() }).execute();
}

export function createOutboxRelay(deps: { db: Db; dialect: 'sqlite' | 'postgres'; logger: Logger; batchSize?: number }) {
  const batchSize = deps.batchSize ?? 500;
  let handlers: OutboxHandlers | undefined;
  let scheduled = false;
  // Relays run one after another; drain() never rejects, so the chain never breaks.
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  async function drainOnce(): Promise<number> {
    if (!handlers) return 0;
    const active = handlers;
    return deps.db.transaction().execute(async (tx) => {
      let q = tx.selectFrom('outbox').select(['id', 'topic', 'payload']).orderBy('id').limit(batchSize);
      // Several processes may relay at once: each takes rows nobody else holds.
      if (deps.dialect === 'postgres') q = q.modifyEnd(sql`for update skip locked`);
      const rows = await q.execute();
      if (rows.length === 0) return 0;
      for (const row of rows) {
        const handler = active[row.topic as OutboxTopic] as ((p: unknown) => void) | undefined;
        try {
          if (handler) handler(JSON.parse(row.payload));
          else deps.logger.warn({ topic: row.topic }, 'outbox row with unknown topic dropped');
        } catch (err) {
          deps.logger.error({ err, topic: row.topic }, 'outbox handler failed');
        }
      }
      await tx.deleteFrom('outbox').where('id', 'in', rows.map((r) => r.id)).execute();
      return rows.length;
    });
  }

  async function drain(): Promise<void> {
    try {
      while ((await drainOnce()) === batchSize) {
        /* keep going while full batches come back */
      }
    } catch (err) {
      deps.logger.warn({ err }, 'outbox relay failed; will retry');
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
    start(h: OutboxHandlers, intervalMs = 1000): void {
      handlers = h;
      flushSoon();
      timer = setInterval(flushSoon, intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      handlers = undefined;
      await chain;
    },
  };
}

export type OutboxRelay = ReturnType<typeof createOutboxRelay>;
