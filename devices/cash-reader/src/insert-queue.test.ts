import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openInsertQueue, type CashInsert } from './insert-queue.js';

const insert = (n: number, orderNumber: string | null = 'K-1'): CashInsert => ({
  eventId: `ev-${n}`,
  kind: n % 2 ? 'BILL' : 'COIN',
  amountMinor: n * 100,
  orderNumber,
  detectedAt: `2026-01-01T00:00:0${n}.000Z`,
});
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

describe('on-disk insert queue', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cash-queue-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps inserts in order, forgets acknowledged ones, and persists bindings', async () => {
    const queue = await openInsertQueue({ dir });
    await queue.append(insert(1));
    await queue.append(insert(2, null));
    await queue.append(insert(3));
    await queue.bind('ev-2', 'K-2');
    await queue.ack('ev-1');
    expect(queue.pending().map((i) => [i.eventId, i.orderNumber])).toEqual([
      ['ev-2', 'K-2'],
      ['ev-3', 'K-1'],
    ]);
    await queue.close();
    const again = await openInsertQueue({ dir });
    expect(again.pending()).toEqual([{ ...insert(2), orderNumber: 'K-2' }, insert(3)]);
    await again.close();
  });

  it('keeps an amount in thousandths across a restart; a record without a scale stays hundredths', async () => {
    const queue = await openInsertQueue({ dir });
    await queue.append({ ...insert(1), amountMinor: 5, scale: 3 });
    await queue.append(insert(2));
    await queue.close();
    const again = await openInsertQueue({ dir });
    expect(again.pending()).toEqual([{ ...insert(1), amountMinor: 5, scale: 3 }, insert(2)]);
    expect(again.pending()[1]).not.toHaveProperty('scale');
    // On disk thousandths have their own name: an earlier agent (hundredths only) cannot misread them.
    const onDisk = lines(again.path).map((l) => JSON.parse(l).insert);
    expect(onDisk[0]).toMatchObject({ eventId: 'ev-1', amountMilli: 5 });
    expect(onDisk[0]).not.toHaveProperty('amountMinor');
    expect(onDisk[1]).toMatchObject({ eventId: 'ev-2', amountMinor: 200 });
    await again.close();
  });

  it('replays an insert after a crash between append and acknowledgement', async () => {
    const queue = await openInsertQueue({ dir });
    await queue.append(insert(1));
    await queue.append(insert(2));
    await queue.ack('ev-1');
    // Crash: the process dies without closing; the server may or may not have ev-2 (it de-duplicates).
    const restarted = await openInsertQueue({ dir });
    expect(restarted.pending().map((i) => i.eventId)).toEqual(['ev-2']);
    expect(restarted.head()?.eventId).toBe('ev-2');
    await restarted.close();
  });

  it('compacts the file after acknowledgements, leaving only pending inserts', async () => {
    const queue = await openInsertQueue({ dir, compactAfterAcks: 3 });
    for (let n = 1; n <= 5; n++) await queue.append(insert(n));
    await queue.ack('ev-1');
    await queue.ack('ev-2');
    expect(lines(queue.path)).toHaveLength(7);
    await queue.ack('ev-4');
    expect(lines(queue.path).map((l) => JSON.parse(l).insert.eventId)).toEqual(['ev-3', 'ev-5']);
    await queue.append(insert(6));
    expect(lines(queue.path)).toHaveLength(3);
    await queue.close();
    expect((await openInsertQueue({ dir })).pending().map((i) => i.eventId)).toEqual([
      'ev-3',
      'ev-5',
      'ev-6',
    ]);
  });

  it('survives a torn last line and keeps the torn text in the dead-letter file', async () => {
    const queue = await openInsertQueue({ dir });
    await queue.append(insert(1));
    appendFileSync(queue.path, '{"op":"insert","insert":{"eventId":"ev-9","ki');
    const restarted = await openInsertQueue({ dir });
    expect(restarted.unreadableAtStart).toBe(1);
    expect(restarted.pending().map((i) => i.eventId)).toEqual(['ev-1']);
    expect(lines(restarted.path)).toHaveLength(1);
    expect(JSON.parse(lines(restarted.deadLetterPath)[0] ?? '{}')).toMatchObject({
      reason: 'UNREADABLE_QUEUE_RECORD',
      raw: expect.stringContaining('ev-9'),
    });
    await restarted.append(insert(2));
    await restarted.close();
    const last = await openInsertQueue({ dir });
    expect(last.pending().map((i) => i.eventId)).toEqual(['ev-1', 'ev-2']);
    await last.close();
  });

  it('moves a refused insert to the dead-letter file instead of dropping it', async () => {
    const queue = await openInsertQueue({ dir });
    await queue.append(insert(1));
    await queue.deadLetter({ ...insert(1) }, 'VALIDATION_FAILED', { status: 400 });
    expect(queue.size()).toBe(0);
    expect(JSON.parse(lines(queue.deadLetterPath)[0] ?? '{}')).toMatchObject({
      reason: 'VALIDATION_FAILED',
      insert: insert(1),
      details: { status: 400 },
    });
    await queue.close();
    expect((await openInsertQueue({ dir })).size()).toBe(0);
  });

  it('a refused amount in thousandths is dead-lettered as amountMilli, as the queue file has it', async () => {
    const queue = await openInsertQueue({ dir });
    const coin = { ...insert(2), amountMinor: 5, scale: 3 as const };
    await queue.append(coin);
    await queue.deadLetter(coin, 'VALIDATION_FAILED', { status: 400 });
    const entry = JSON.parse(lines(queue.deadLetterPath)[0] ?? '{}');
    expect(entry.insert).toMatchObject({ eventId: 'ev-2', amountMilli: 5 });
    expect(entry.insert).not.toHaveProperty('amountMinor');
    expect(entry.insert).not.toHaveProperty('scale');
    await queue.close();
  });

  it('writes concurrent appends in call order', async () => {
    const queue = await openInsertQueue({ dir });
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => queue.append(insert(n))));
    expect(queue.pending().map((i) => i.eventId)).toEqual(['ev-1', 'ev-2', 'ev-3', 'ev-4', 'ev-5', 'ev-6']);
    await queue.close();
  });
});
