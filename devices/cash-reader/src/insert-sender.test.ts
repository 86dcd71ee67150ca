import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openInsertQueue, type CashInsert, type InsertQueue } from './insert-queue.js';
import { createInsertSender } from './insert-sender.js';
import type { InsertAnswer } from './kioskhub-client.js';
import { memoryLogger } from '@kioskhub/agent-kit';

const insert = (n: number): CashInsert => ({
  eventId: `ev-${n}`,
  kind: 'BILL',
  amountMinor: 10_000,
  orderNumber: 'K-1',
  detectedAt: '2026-01-01T00:00:00.000Z',
});

describe('insert sender', () => {
  let dir: string;
  let queue: InsertQueue;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cash-sender-'));
    queue = await openInsertQueue({ dir });
  });
  afterEach(async () => {
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(answers: InsertAnswer[]) {
    const sent: string[] = [];
    const closed: string[] = [];
    const log = memoryLogger();
    const stop = new AbortController();
    const sender = createInsertSender({
      queue,
      log,
      retry: { baseMs: 5, maxMs: 20 },
      tracker: { closed: (o) => void closed.push(o), refresh: async () => true },
      client: {
        postInsert: async (i) => {
          const answer = answers.shift();
          if (!answer) {
            stop.abort(); // every scripted answer was used: end the run
            return { kind: 'retry', reason: 'stopped' };
          }
          sent.push(i.eventId);
          return answer;
        },
      },
    });
    const watcher = setInterval(() => {
      if (answers.length === 0 && queue.size() === 0) stop.abort();
    }, 5);
    await sender.run(stop.signal);
    clearInterval(watcher);
    return { sent, closed, log };
  }

  it('sends in order, retries network failures, acknowledges counted and unallocated inserts, dead-letters refusals', async () => {
    for (const n of [1, 2, 3]) await queue.append(insert(n));
    const { sent, closed, log } = await run([
      { kind: 'retry', reason: 'ECONNREFUSED' },
      { kind: 'retry', reason: 'HTTP 503' },
      { kind: 'applied', orderNumber: 'K-1', status: 'PENDING', isComplete: false },
      { kind: 'unallocated', httpStatus: 409, code: 'INVALID_STATE', message: 'already PAID' },
      { kind: 'rejected', httpStatus: 400, code: 'VALIDATION_FAILED', message: 'bad amount' },
    ]);
    expect(sent).toEqual(['ev-1', 'ev-1', 'ev-1', 'ev-2', 'ev-3']);
    expect(queue.size()).toBe(0);
    expect(closed).toEqual(['K-1']);
    expect(
      log.lines.filter((l) => l.includes('ERROR SERVER RECORDED THIS CASH AS UNALLOCATED')),
    ).toHaveLength(1);
    const dead = readFileSync(queue.deadLetterPath, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(dead).toEqual([expect.objectContaining({ reason: 'VALIDATION_FAILED', insert: insert(3) })]);
  });

  it('keeps an insert the server never answered', async () => {
    await queue.append(insert(1));
    const { sent } = await run([
      { kind: 'retry', reason: 'timeout' },
      { kind: 'retry', reason: 'HTTP 502' },
    ]);
    expect(sent).toEqual(['ev-1', 'ev-1']);
    expect(queue.pending().map((i) => i.eventId)).toEqual(['ev-1']);
  });

  it('waits for an insert whose session is not decided yet', async () => {
    await queue.append({ ...insert(1), orderNumber: null });
    const stop = new AbortController();
    let posted = 0;
    const sender = createInsertSender({
      queue,
      log: memoryLogger(),
      retry: { baseMs: 5, maxMs: 20 },
      tracker: { closed: () => undefined, refresh: async () => true },
      client: {
        postInsert: async () => (
          posted++,
          { kind: 'applied', orderNumber: 'K-9', status: 'PENDING', isComplete: false }
        ),
      },
    });
    const running = sender.run(stop.signal);
    await new Promise((r) => setTimeout(r, 50));
    expect(posted).toBe(0);
    await queue.bind('ev-1', 'K-9');
    sender.wake();
    await new Promise((r) => setTimeout(r, 50));
    stop.abort();
    await running;
    expect(posted).toBe(1);
    expect(queue.size()).toBe(0);
  });
});
