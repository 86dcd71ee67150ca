// The job table on both engines: a job that throws is retried with growing backoff until it
// succeeds, or ends FAILED once with an alert; a job survives kill -9 of its process.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, engines, newSchemaName, tempDir } from '../../test/harness.js';
import { openDatabase, type OpenedDatabase } from './db/database.js';
import { createOutboxRelay, enqueueOutbox, jobBackoffMs, type OutboxHandlers } from './outbox.js';

const logger = pino({ level: 'silent' });
const quiet: OutboxHandlers = {
  live: () => undefined,
  print: () => undefined,
  dispatch: () => undefined,
  refund: () => undefined,
};

describe('job backoff', () => {
  it('doubles from the base and is capped at 5 minutes', () => {
    expect([1, 2, 3, 4].map((n) => jobBackoffMs(n, 1000))).toEqual([1000, 2000, 4000, 8000]);
    expect(jobBackoffMs(30, 1000)).toBe(300_000);
  });
});

describe.each(engines())('job table (%s)', (engine) => {
  let opened: OpenedDatabase | undefined;
  let schema: string | undefined;
  afterEach(async () => {
    await opened?.close();
    if (schema) await dropSchema(schema);
  });

  async function open(): Promise<OpenedDatabase> {
    if (engine === 'postgres') {
      schema = newSchemaName();
      opened = await openDatabase({ kind: 'postgres', url: process.env['TEST_DATABASE_URL']! }, { schema });
    } else opened = await openDatabase({ kind: 'sqlite-memory' });
    return opened;
  }

  it.skipIf(engine !== 'postgres')(
    'a batch slower than its lease keeps it: two relays never run one job twice',
    async () => {
      const { db, dialect } = await open();
      for (let i = 0; i < 6; i++) await enqueueOutbox(db, 'dispatch', { machineId: `M${i}` });
      const runs: string[] = [];
      // Each job takes 150 ms; the lease is 400 ms: a batch of six outlasts it.
      const slow: OutboxHandlers = {
        ...quiet,
        dispatch: async (p) => {
          runs.push(p.machineId);
          await new Promise((r) => setTimeout(r, 150));
        },
      };
      const a = createOutboxRelay({ db, dialect, logger, leaseMs: 400 });
      const b = createOutboxRelay({ db, dialect, logger, leaseMs: 400 });
      a.start(slow, 50);
      await new Promise((r) => setTimeout(r, 100));
      b.start(slow, 50);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const left = await db.selectFrom('outbox').select('id').execute();
        if (left.length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await Promise.all([a.stop(), b.stop()]);
      // Before, relay b took the batch once a's lease ran out and ran its jobs again.
      expect(runs.toSorted()).toEqual(['M0', 'M1', 'M2', 'M3', 'M4', 'M5']);
    },
  );

  it('retries a job that throws, with growing delays, and deletes it once it succeeds', async () => {
    const { db, dialect } = await open();
    await enqueueOutbox(db, 'dispatch', { machineId: 'M1' });
    const relay = createOutboxRelay({ db, dialect, logger, backoffBaseMs: 40 });
    const runs: number[] = [];
    relay.start(
      {
        ...quiet,
        dispatch: async () => {
          runs.push(Date.now());
          if (runs.length < 3) throw new Error(`attempt ${runs.length} failed`);
        },
      },
      10,
    );
    const deadline = Date.now() + 5_000;
    while (runs.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await relay.stop();
    expect(runs).toHaveLength(3);
    // The second delay is about twice the first (40 ms, then 80 ms, give or take the 10 ms tick).
    expect(runs[1]! - runs[0]!).toBeGreaterThanOrEqual(35);
    expect(runs[2]! - runs[1]!).toBeGreaterThanOrEqual(75);
    expect(await db.selectFrom('outbox').selectAll().execute()).toEqual([]);
  });

  it('ends a job that keeps failing as FAILED, once, with its error, and never runs it again', async () => {
    const { db, dialect } = await open();
    await enqueueOutbox(db, 'live', { tenantId: 't1', rooms: [], event: 'x', data: {} });
    const failed: { topic: string; tenantId: string | null; error: string }[] = [];
    let runs = 0;
    const relay = createOutboxRelay({
      db,
      dialect,
      logger,
      backoffBaseMs: 5,
      maxAttempts: 3,
      onFailed: async (job) => void failed.push(job),
    });
    relay.start(
      {
        ...quiet,
        live: () => {
          runs++;
          throw new Error('room service down');
        },
      },
      5,
    );
    const deadline = Date.now() + 5_000;
    while (failed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    await relay.stop();
    expect(runs).toBe(3);
    expect(failed).toEqual([
      { id: expect.any(Number), topic: 'live', tenantId: 't1', error: 'room service down' },
    ]);
    const rows = await db.selectFrom('outbox').select(['status', 'attempts', 'last_error']).execute();
    expect(rows).toEqual([{ status: 'FAILED', attempts: 3, last_error: 'room service down' }]);
  });

  it('lets a topic end its own job that failed for good, once, instead of the generic alert', async () => {
    const { db, dialect } = await open();
    await enqueueOutbox(db, 'refund', { tenantId: 't1', refundId: 'r-ended' });
    await enqueueOutbox(db, 'refund', { tenantId: 't1', refundId: 'r-kept' });
    await enqueueOutbox(db, 'refund', { tenantId: 't1', refundId: 'r-throws' });
    const failed: { topic: string; tenantId: string | null; error: string }[] = [];
    const ended: { refundId: string; error: string }[] = [];
    const relay = createOutboxRelay({
      db,
      dialect,
      logger,
      backoffBaseMs: 5,
      maxAttempts: 2,
      onFailed: async (job) => void failed.push(job),
    });
    relay.handleFailure('refund', async (p, error) => {
      ended.push({ refundId: p.refundId, error });
      if (p.refundId === 'r-throws') throw new Error('database gone');
      return p.refundId === 'r-ended';
    });
    relay.start(
      {
        ...quiet,
        refund: (p) => {
          throw new Error(`no answer for ${p.refundId}`);
        },
      },
      5,
    );
    const deadline = Date.now() + 5_000;
    while (ended.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    await relay.stop();
    expect(ended.sort((a, b) => a.refundId.localeCompare(b.refundId))).toEqual([
      { refundId: 'r-ended', error: 'no answer for r-ended' },
      { refundId: 'r-kept', error: 'no answer for r-kept' },
      { refundId: 'r-throws', error: 'no answer for r-throws' },
    ]);
    // Ended by its topic: no generic alert; not ended (false, or its ending threw): the alert.
    expect(failed.map((f) => f.error).sort()).toEqual(['no answer for r-kept', 'no answer for r-throws']);
  });

  it("runs a topic's ending of a job that failed for good before marking it FAILED: a process stopping in between leaves the job to run again", async () => {
    const { db, dialect } = await open();
    await enqueueOutbox(db, 'refund', { tenantId: 't1', refundId: 'r-crash' });
    const seen: { status: string; attempts: number }[] = [];
    const relay = createOutboxRelay({ db, dialect, logger, backoffBaseMs: 5, maxAttempts: 2 });
    relay.handleFailure('refund', async () => {
      // Where the job stands while its ending runs: what a process stopping here leaves behind.
      const row = await db.selectFrom('outbox').select(['status', 'attempts']).executeTakeFirstOrThrow();
      seen.push({ status: row.status, attempts: Number(row.attempts) });
      return true;
    });
    relay.start(
      {
        ...quiet,
        refund: () => {
          throw new Error('no answer');
        },
      },
      5,
    );
    const deadline = Date.now() + 5_000;
    while (seen.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    await relay.stop();
    // Not FAILED yet: had the process stopped, the job would run again once its lease ran out.
    expect(seen).toEqual([{ status: 'QUEUED', attempts: 1 }]);
    const rows = await db.selectFrom('outbox').select(['status', 'attempts']).execute();
    expect(rows.map((r) => ({ status: r.status, attempts: Number(r.attempts) }))).toEqual([
      { status: 'FAILED', attempts: 2 },
    ]);
  });

  it('runs immediate and due scheduled jobs in the order they were written, never a job not yet due', async () => {
    const { db, dialect } = await open();
    const past = new Date(Date.now() - 60_000).toISOString();
    const later = new Date(Date.now() + 3_600_000).toISOString();
    // Interleaved, as water hold expiries (due in 10 minutes) and live events are.
    const plan: [string, string | undefined][] = [
      ['later-1', later],
      ['now-1', undefined],
      ['due-1', past],
      ['later-2', later],
      ['now-2', undefined],
      ['due-2', past],
      ['now-3', undefined],
    ];
    for (const [machineId, runAt] of plan)
      await enqueueOutbox(db, 'dispatch', { machineId }, runAt ? { runAt } : {});
    const seen: string[] = [];
    // A batch of 2: the order must hold across batches too.
    const relay = createOutboxRelay({ db, dialect, logger, batchSize: 2 });
    relay.start({ ...quiet, dispatch: (p) => void seen.push(p.machineId) }, 20);
    const deadline = Date.now() + 3_000;
    while (seen.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 60));
    await relay.stop();
    expect(seen).toEqual(['now-1', 'due-1', 'now-2', 'due-2', 'now-3']);
    const left = await db.selectFrom('outbox').select('payload').orderBy('id').execute();
    expect(left.map((r) => (JSON.parse(r.payload) as { machineId: string }).machineId)).toEqual([
      'later-1',
      'later-2',
    ]);
  });

  it('gives a job whose relay died mid-run (lease held) to the next relay once the lease expires', async () => {
    const { db, dialect } = await open();
    await enqueueOutbox(db, 'dispatch', { machineId: 'M2' });
    // A relay that claimed the row and then vanished: its lease still holds the row for a while.
    await db
      .updateTable('outbox')
      .set({ leased_until: new Date(Date.now() + 150).toISOString() })
      .execute();
    const seen: string[] = [];
    const relay = createOutboxRelay({ db, dialect, logger });
    relay.start({ ...quiet, dispatch: (p) => void seen.push(p.machineId) }, 20);
    await new Promise((r) => setTimeout(r, 60));
    expect(seen).toEqual([]);
    const deadline = Date.now() + 3_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await relay.stop();
    expect(seen).toEqual(['M2']);
  });
});

describe('job table across kill -9 (sqlite file)', () => {
  it('a job whose attempt failed in a process killed with SIGKILL runs in the next process', async () => {
    const dir = tempDir('kioskhub-jobs-');
    const file = join(dir.path, 'kioskhub.db');
    try {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, '../../test/fixtures/job-crash-child.ts'), file],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('child never recorded its failed attempt')), 20_000);
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('attempted')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));

      const reopened = await openDatabase({ kind: 'sqlite-file', file });
      try {
        const row = await reopened.db.selectFrom('outbox').selectAll().executeTakeFirstOrThrow();
        expect(row).toMatchObject({ status: 'QUEUED', attempts: 1, last_error: 'provider unreachable' });
        // Its retry is due in a minute; bring it forward as if the minute had passed.
        await reopened.db
          .updateTable('outbox')
          .set({ run_at: new Date(Date.now() - 1).toISOString() })
          .execute();
        const seen: string[] = [];
        const relay = createOutboxRelay({ db: reopened.db, dialect: 'sqlite', logger });
        relay.start({ ...quiet, dispatch: (p) => void seen.push(p.machineId) }, 20);
        const deadline = Date.now() + 3_000;
        while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await relay.stop();
        expect(seen).toEqual(['CRASH1']);
        expect(await reopened.db.selectFrom('outbox').selectAll().execute()).toEqual([]);
      } finally {
        await reopened.close();
      }
    } finally {
      dir.remove();
    }
  });
});
