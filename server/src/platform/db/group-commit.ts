// Group commit on the embedded database. SQLite makes one durable commit (an fsync of the WAL) at
// a time, and better-sqlite3 waits for it on the event loop; money events that arrive together
// (webhooks, cash inserts, water settlements) therefore share one transaction, an event that fails
// is rolled back alone, and each caller's promise settles only after the COMMIT that holds its
// event. Nothing is acknowledged before it is on disk. An event runs in a savepoint of its own,
// unless it may be run again (`replayable`, as every money event is) and so may all before it in
// the group: then it runs bare (a savepoint copies every page its event touches), and if it fails
// after writing, the whole transaction is rolled back and the events before it run again, each in
// its own savepoint. If SQLite rolls the transaction back by itself (a full disk, an I/O error), no
// statement runs until the group ends (none would run outside a transaction) and its events fail.
// PostgreSQL commits concurrently on its own connections: there each event is its own transaction.
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { CompiledQuery, SqliteAdapter } from 'kysely';
import type { Db, Executor, Tx } from './database.js';

interface Unit {
  fn: (tx: Tx) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  replayable: boolean;
  /** Runs in a savepoint of its own (it is being run again). */
  isolated?: boolean;
  value?: unknown;
  committed?: (() => void)[];
}

export interface InGroupOptions {
  /**
   * `fn` may be run a second time, after its first run's writes are rolled back (when an event
   * after it in its group fails after writing). True only when all it does besides reading and writing
   * through `tx` is deferred to `afterCommit` or recomputed by the second run.
   */
  replayable?: boolean;
}

export interface GroupCommitOptions {
  /** Events in one transaction at most (default 64). */
  maxUnits?: number;
  /** Stop adding events to an open transaction after this long, ms (default 10). */
  maxOpenMs?: number;
  /** Told the size of each committed group (metrics). */
  onCommit?(units: number): void;
  /** Told how many events run again after a failed one's rollback (metrics). */
  onReplay?(units: number): void;
  /**
   * Told of an after-commit hook that threw (a bug: hooks only record). Its event is committed and
   * answered all the same, and so are the others of its group. Default: a process warning.
   */
  onHookError?(err: unknown): void;
}

const groups = new WeakMap<Db, GroupCommit>();
// Three of these around every event: built once, not compiled per statement.
const SAVEPOINT = CompiledQuery.raw('savepoint kioskhub_event');
const ROLLBACK_TO = CompiledQuery.raw('rollback to kioskhub_event');
const RELEASE = CompiledQuery.raw('release kioskhub_event');
/**
 * `inGroup` called while a money event runs (its `fn` calling a service that opens an event of its
 * own) would wait for a group that waits for it: on SQLite it never ends. The events it would open
 * must take the running event's `tx` instead. Found in tests (NODE_ENV=test, where the check runs:
 * it tracks every promise, a cost the hot path does not pay in production), it fails at once.
 */
export class NestedMoneyEvent extends Error {
  constructor() {
    super('inGroup called inside a money event: pass the running event’s tx instead of opening another');
  }
}
const insideEvent = process.env['NODE_ENV'] === 'test' ? new AsyncLocalStorage<true>() : undefined;
/** Runs an event's `fn`, marked as inside an event where the check runs. */
const runEventFn = <T>(fn: (tx: Tx) => Promise<T>, tx: Tx): Promise<T> =>
  insideEvent ? insideEvent.run(true, () => fn(tx)) : fn(tx);

/** Thrown out of a group's transaction to roll it back and run its events again, isolated. */
class ReplayGroup extends Error {}
/** What the events of a group get when SQLite rolled their transaction back by itself. */
export class TransactionEnded extends Error {
  constructor(options?: ErrorOptions) {
    super(
      'SQLite ended the transaction by itself (an error rolled it back): nothing of this group of events was committed',
      options,
    );
  }
}
/** What the group commit can ask of a SQLite connection. */
export interface ConnectionProbe {
  /** Writing statements handed out so far. */
  writes(): number;
  /** Whether a transaction is open (SQLite rolls one back by itself on some errors). */
  inTransaction(): boolean;
  /**
   * While on, every statement is refused once no transaction is open: after SQLite rolled the
   * group's transaction back by itself, an event that caught the error and went on would
   * otherwise write outside it, straight to disk, and be answered as failed.
   */
  requireTransaction(on: boolean): void;
}
/** Per database (its Kysely adapter). */
const probes = new WeakMap<object, ConnectionProbe>();

/**
 * Lets the group commit of `db` see its connection: a replayable event that fails before writing
 * anything, with the transaction still open, then fails without undoing the events before it.
 */
export function probeConnection(db: Db, probe: ConnectionProbe): void {
  probes.set(db.getExecutor().adapter, probe);
}
/** What one money event keeps while it runs: its after-commit hooks and its held state. */
interface EventScope {
  committed: (() => void)[];
  held: Map<object, unknown>;
  atEnd: (() => Promise<void>)[];
}
// Keyed by the transaction: on SQLite the events of a group run one after another on one
// transaction, each with a scope of its own, set as it starts.
const events = new WeakMap<object, EventScope>();

function startEvent(tx: Tx): EventScope {
  const scope: EventScope = { committed: [], held: new Map(), atEnd: [] };
  events.set(tx, scope);
  return scope;
}

/** Runs the event's end-of-event writes, in the order their state was first held. */
async function endEvent(scope: EventScope): Promise<void> {
  for (const write of scope.atEnd) await write();
}

/**
 * Runs `hook` once the money event running on `ex` is committed (never when it is rolled back)
 * and answers true; false when `ex` is not a money event's transaction. For caches of facts a
 * transaction may have created: a rolled-back creation must leave nothing behind. A hook runs
 * while its group's answers are handed out: it only records (a cache entry, a variable), and
 * what it records is acted on by its caller.
 */
export function afterCommit(ex: Executor, hook: () => void): boolean {
  const scope = events.get(ex);
  if (!scope) return false;
  scope.committed.push(hook);
  return true;
}

/** Per database (its Kysely adapter): where a throwing after-commit hook is reported. */
const hookErrorReporters = new WeakMap<object, (err: unknown) => void>();

function reportHookError(err: unknown): void {
  process.emitWarning(`an after-commit hook threw (its event is committed): ${String(err)}`);
}

/** Runs every hook; one that throws is reported and stops neither the others nor the answers. */
function runHooks(hooks: readonly (() => void)[] | undefined, report: (err: unknown) => void): void {
  for (const hook of hooks ?? []) {
    try {
      hook();
    } catch (err) {
      report(err);
    }
  }
}

/**
 * State `owner` keeps for the money event running on `ex` until its end: made by `init` on first
 * use, then handed to `atEnd`, which writes it just before the event's savepoint is released
 * (SQLite) or its transaction commits (PostgreSQL). For writes cheaper as one statement (the
 * event's jobs) and rows every event updates (a site's revenue account: on PostgreSQL their row
 * lock is then held only for the commit). Undefined when `ex` is not a money event's transaction
 * (the caller writes at once). On SQLite the events of a group share one transaction, so state is
 * per event, never per transaction.
 */
export function heldUntilEnd<S>(
  ex: Executor,
  owner: object,
  init: () => S,
  atEnd: (state: S) => Promise<void>,
): S | undefined {
  const scope = events.get(ex);
  if (!scope) return undefined;
  if (scope.held.has(owner)) return scope.held.get(owner) as S;
  const state = init();
  scope.held.set(owner, state);
  scope.atEnd.push(() => atEnd(state));
  return state;
}

/**
 * Runs `fn` in a transaction that may be shared with other events submitted at the same time
 * (SQLite), or in its own (PostgreSQL). `fn` must only touch the database through `tx` and must
 * not wait on anything slow (a provider's API, a password hash): the group waits with it.
 */
export function inGroup<T>(db: Db, fn: (tx: Tx) => Promise<T>, options: InGroupOptions = {}): Promise<T> {
  if (insideEvent?.getStore()) return Promise.reject(new NestedMoneyEvent());
  const group = groups.get(db);
  if (group) return group.submit(fn, options);
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) {
    let scope: EventScope | undefined;
    return db
      .transaction()
      .execute(async (tx) => {
        scope = startEvent(tx);
        const value = await runEventFn(fn, tx);
        await endEvent(scope);
        return value;
      })
      .then((value) => {
        runHooks(scope?.committed, hookErrorReporters.get(db.getExecutor().adapter) ?? reportHookError);
        return value;
      });
  }
  const created = createGroupCommit(db);
  groups.set(db, created);
  return created.submit(fn, options);
}

/** Sets the options of `db`'s group commit (before its first event; tests and metrics). */
export function configureGroupCommit(db: Db, options: GroupCommitOptions): void {
  if (options.onHookError) hookErrorReporters.set(db.getExecutor().adapter, options.onHookError);
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
  if (groups.has(db)) throw new Error('configure the group commit before its first event');
  groups.set(db, createGroupCommit(db, options));
}

export type GroupCommit = ReturnType<typeof createGroupCommit>;

export function createGroupCommit(db: Db, options: GroupCommitOptions = {}) {
  const maxUnits = options.maxUnits ?? 64;
  const maxOpenMs = options.maxOpenMs ?? 10;
  const queue: Unit[] = [];
  let running = false;
  // Without a probe every failed event is taken to have written.
  const probe = probes.get(db.getExecutor().adapter);
  const writes = probe ? () => probe.writes() : () => Number.NaN;
  const open = probe ? () => probe.inTransaction() : () => true;
  const report = options.onHookError ?? reportHookError;

  /** After an event succeeded: if SQLite ended the transaction meanwhile, nothing of it holds. */
  function stillOpen(): void {
    if (!open()) throw new TransactionEnded();
  }

  async function runUnit(tx: Tx, unit: Unit, done: Unit[]): Promise<void> {
    await tx.executeQuery(SAVEPOINT);
    // Units of a group run one after another on the shared transaction: this scope is this one's.
    const scope = startEvent(tx);
    try {
      unit.value = await runEventFn(unit.fn, tx);
      await endEvent(scope);
    } catch (err) {
      try {
        await tx.executeQuery(ROLLBACK_TO);
        await tx.executeQuery(RELEASE);
      } catch (rollbackErr) {
        // The transaction itself is broken: this event and the whole group fail.
        unit.reject(err);
        throw rollbackErr;
      }
      unit.reject(err);
      return;
    }
    stillOpen();
    await tx.executeQuery(RELEASE);
    unit.committed = scope.committed;
    done.push(unit);
  }

  /**
   * Runs a replayable event with no savepoint, while every event of the group so far can run again.
   * One that fails before writing anything fails alone; one that fails after writing fails, and
   * `ReplayGroup` rolls the whole transaction back so the events before it run again, isolated.
   */
  async function runBare(tx: Tx, unit: Unit, done: Unit[]): Promise<void> {
    const before = writes();
    const scope = startEvent(tx);
    try {
      unit.value = await runEventFn(unit.fn, tx);
      await endEvent(scope);
    } catch (err) {
      unit.reject(err);
      // A refusal after its reads: nothing to undo.
      if (writes() === before && open()) return;
      // Otherwise roll back (if SQLite already did, the rollback fails and so does the group).
      throw new ReplayGroup();
    }
    stillOpen();
    unit.committed = scope.committed;
    done.push(unit);
  }

  /** Runs queued events on the group's transaction until it is full or has been open long enough. */
  async function runEvents(tx: Tx, done: Unit[], inFlight: { current?: Unit }): Promise<void> {
    const opened = performance.now();
    // No savepoints while every event so far may run again (the common case, and the cheapest:
    // a savepoint copies each page its event touches).
    let bare = true;
    while (queue.length > 0 && done.length < maxUnits && performance.now() - opened < maxOpenMs) {
      const unit = (inFlight.current = queue.shift()!);
      if (bare && unit.replayable && !unit.isolated) {
        await runBare(tx, unit, done);
      } else {
        // A rollback of the whole transaction must never undo an event that cannot run again.
        bare = false;
        await runUnit(tx, unit, done);
      }
      inFlight.current = undefined;
    }
  }

  async function runGroup(): Promise<void> {
    const done: Unit[] = [];
    const inFlight: { current?: Unit } = {};
    /** SQLite rolled the transaction back by itself (full disk, I/O error, RAISE(ROLLBACK)). */
    let ended = false;
    try {
      await db.transaction().execute(async (tx) => {
        probe?.requireTransaction(true);
        try {
          await runEvents(tx, done, inFlight);
        } finally {
          probe?.requireTransaction(false);
          ended = !open();
        }
      });
    } catch (caught) {
      if (caught instanceof ReplayGroup && !ended) {
        // An event without a savepoint failed after writing, and is rejected: the events before it
        // were rolled back with it and run again first, each in its own savepoint this time. Their
        // first runs' after-commit hooks went with their writes.
        for (const unit of done) unit.isolated = true;
        queue.unshift(...done);
        if (done.length > 0) options.onReplay?.(done.length);
        return;
      }
      // COMMIT (or a savepoint) failed: nothing of this group is on disk. When SQLite had rolled the
      // transaction back by itself, Kysely's ROLLBACK failed as well: say what happened instead.
      const err =
        ended && !(caught instanceof TransactionEnded) ? new TransactionEnded({ cause: caught }) : caught;
      for (const unit of done) unit.reject(err);
      inFlight.current?.reject(err);
      // Not even BEGIN worked (the database is closed or broken): fail what waits, do not spin.
      if (done.length === 0 && inFlight.current === undefined)
        for (const unit of queue.splice(0)) unit.reject(err);
      return;
    }
    options.onCommit?.(done.length);
    for (const unit of done) {
      runHooks(unit.committed, report);
      unit.resolve(unit.value);
    }
  }

  async function run(): Promise<void> {
    running = true;
    try {
      // Let the requests read in this turn of the event loop (not only this tick) join the first
      // group: with 100 kiosk requests in flight that halves the commits (bench `water`).
      await new Promise((resolve) => setImmediate(resolve));
      while (queue.length > 0) await runGroup();
    } catch (err) {
      // runGroup settles its events itself; should it ever throw, nothing that waits may hang.
      for (const unit of queue.splice(0)) unit.reject(err);
    } finally {
      running = false;
    }
  }

  return {
    submit<T>(fn: (tx: Tx) => Promise<T>, options: InGroupOptions = {}): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const replayable = options.replayable === true;
        queue.push({ fn, resolve: resolve as (value: unknown) => void, reject, replayable });
        if (!running) void run();
      });
    },
    /** Events waiting for a transaction (not counting the one being written). */
    get waiting(): number {
      return queue.length;
    },
  };
}
