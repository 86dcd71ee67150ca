// The agent's durable memory of inserts the server has not acknowledged yet: an append-only
// JSON-lines file, fsynced after every record, replayed on start and compacted after
// acknowledgements. At any crash point each detected insert is either acknowledged or on disk.
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { InsertKind } from './line-protocol.js';
import { lockQueueDir } from './queue-lock.js';

export interface CashInsert {
  eventId: string;
  kind: InsertKind;
  /** Hundredths of a major unit; thousandths when `scale` is 3. */
  amountMinor: number;
  /** 3: `amountMinor` is in thousandths (an amount with a third decimal). Absent: hundredths. */
  scale?: 3;
  /** The order the money is reported for; null until the agent has decided (see session-tracker.ts). */
  orderNumber: string | null;
  detectedAt: string;
}

type QueueRecord =
  | { op: 'insert'; insert: CashInsert }
  | { op: 'bind'; eventId: string; orderNumber: string }
  | { op: 'ack'; eventId: string };

export const QUEUE_FILE = 'inserts.jsonl';
export const DEAD_LETTER_FILE = 'dead-letter.jsonl';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function asInsert(v: unknown): CashInsert | undefined {
  if (!isRecord(v)) return undefined;
  const { eventId, kind, amountMinor, amountMilli, orderNumber, detectedAt } = v;
  if (typeof eventId !== 'string' || (kind !== 'BILL' && kind !== 'COIN') || typeof detectedAt !== 'string')
    return undefined;
  if (orderNumber !== null && typeof orderNumber !== 'string') return undefined;
  const positive = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
  // An amount with a third decimal is stored in thousandths under its own name (see `stored`).
  if (amountMinor === undefined && positive(amountMilli))
    return { eventId, kind, amountMinor: amountMilli, scale: 3, orderNumber, detectedAt };
  if (!positive(amountMinor)) return undefined;
  return { eventId, kind, amountMinor, orderNumber, detectedAt };
}

/**
 * An insert as the queue file holds it: hundredths as `amountMinor`, thousandths as `amountMilli`
 * (never `amountMinor`, so an agent of an earlier version, which knows only hundredths, cannot
 * read such a record as ten times the money: it moves it to the dead-letter file instead).
 */
function stored(insert: CashInsert): Record<string, unknown> {
  const { scale, amountMinor, ...rest } = insert;
  return scale === 3 ? { ...rest, amountMilli: amountMinor } : { ...rest, amountMinor };
}

/** One line of the queue file, or undefined when it cannot be read (a torn write). */
export function parseQueueRecord(line: string): QueueRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isRecord(v)) return undefined;
  if (v['op'] === 'insert') {
    const insert = asInsert(v['insert']);
    return insert ? { op: 'insert', insert } : undefined;
  }
  if (v['op'] === 'bind' && typeof v['eventId'] === 'string' && typeof v['orderNumber'] === 'string')
    return { op: 'bind', eventId: v['eventId'], orderNumber: v['orderNumber'] };
  if (v['op'] === 'ack' && typeof v['eventId'] === 'string') return { op: 'ack', eventId: v['eventId'] };
  return undefined;
}

async function appendSynced(handle: FileHandle, value: unknown): Promise<void> {
  await handle.write(`${JSON.stringify(value)}\n`);
  await handle.sync();
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface InsertQueueOptions {
  dir: string;
  /** Rewrite the file after this many acknowledgements. */
  compactAfterAcks?: number;
}

export type InsertQueue = Awaited<ReturnType<typeof openInsertQueue>>;

export async function openInsertQueue(options: InsertQueueOptions) {
  const { dir } = options;
  const compactAfterAcks = options.compactAfterAcks ?? 50;
  const path = join(dir, QUEUE_FILE);
  const deadLetterPath = join(dir, DEAD_LETTER_FILE);
  await mkdir(dir, { recursive: true });
  const unlock = await lockQueueDir(dir);

  const pending = new Map<string, CashInsert>();
  const apply = (record: QueueRecord) => {
    if (record.op === 'insert') {
      if (!pending.has(record.insert.eventId)) pending.set(record.insert.eventId, record.insert);
    } else if (record.op === 'bind') {
      const insert = pending.get(record.eventId);
      if (insert) insert.orderNumber = record.orderNumber;
    } else {
      pending.delete(record.eventId);
    }
  };

  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const unreadable: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const record = parseQueueRecord(line);
    if (record) apply(record);
    else unreadable.push(line);
  }

  async function deadLetter(entry: Record<string, unknown>): Promise<void> {
    const handle = await open(deadLetterPath, 'a');
    try {
      await appendSynced(handle, { ...entry, at: new Date().toISOString() });
    } finally {
      await handle.close();
    }
  }

  /** Rewrites the file with only the pending inserts (temp file, fsync, rename, fsync dir). */
  async function writeCompacted(): Promise<void> {
    const tmp = `${path}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      const lines = [...pending.values()].map(
        (insert) => `${JSON.stringify({ op: 'insert', insert: stored(insert) })}\n`,
      );
      await handle.write(lines.join(''));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    await syncDir(dir);
  }

  // What could not be read goes where an operator will see it; then start from a clean file.
  for (const raw of unreadable) await deadLetter({ reason: 'UNREADABLE_QUEUE_RECORD', raw });
  await writeCompacted();
  let handle = await open(path, 'a');
  let acksSinceCompaction = 0;

  // File operations run one at a time, in call order.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = chain.then(work);
    chain = run.catch(() => undefined);
    return run;
  };

  async function compactNow(): Promise<void> {
    await handle.close();
    await writeCompacted();
    handle = await open(path, 'a');
    acksSinceCompaction = 0;
  }

  async function ackNow(eventId: string): Promise<void> {
    await appendSynced(handle, { op: 'ack', eventId } satisfies QueueRecord);
    pending.delete(eventId);
    acksSinceCompaction += 1;
    if (acksSinceCompaction >= compactAfterAcks) await compactNow();
  }

  return {
    path,
    deadLetterPath,
    /** Records that could not be read at start-up (moved to the dead-letter file). */
    unreadableAtStart: unreadable.length,
    /** Pending inserts in detection order (copies). */
    pending: (): CashInsert[] => [...pending.values()].map((i) => ({ ...i })),
    head: (): CashInsert | undefined => {
      const first = pending.values().next();
      return first.done ? undefined : { ...first.value };
    },
    size: (): number => pending.size,
    /** Durable once this resolves. */
    append: (insert: CashInsert): Promise<void> =>
      serial(async () => {
        await appendSynced(handle, { op: 'insert', insert: stored(insert) });
        apply({ op: 'insert', insert: { ...insert } });
      }),
    bind: (eventId: string, orderNumber: string): Promise<void> =>
      serial(async () => {
        await appendSynced(handle, { op: 'bind', eventId, orderNumber } satisfies QueueRecord);
        apply({ op: 'bind', eventId, orderNumber });
      }),
    /** The server has the insert: forget it. */
    ack: (eventId: string): Promise<void> => serial(() => ackNow(eventId)),
    /** The server refused the insert for good: keep it in the dead-letter file, then forget it here. */
    deadLetter: (insert: CashInsert, reason: string, details?: unknown): Promise<void> =>
      serial(async () => {
        // As the queue file has it: thousandths as `amountMilli`, never read as hundredths.
        await deadLetter({ reason, insert: stored(insert), ...(details === undefined ? {} : { details }) });
        await ackNow(insert.eventId);
      }),
    /** Something that may have been money but could not become an insert (e.g. an unreadable line). */
    recordUnusable: (reason: string, raw: string): Promise<void> => serial(() => deadLetter({ reason, raw })),
    compact: (): Promise<void> => serial(compactNow),
    close: (): Promise<void> =>
      serial(async () => {
        await compactNow();
        await handle.close();
        await unlock();
      }),
  };
}
