// Write-behind on PostgreSQL. Each statement is a network round trip, and a money event writes a
// dozen rows nobody reads back in its transaction (the order, its event, the payment, ledger
// entries, the machine command, jobs). A write marked `deferred` inside a transaction is held on
// its connection and sent, together with every other held write, as one statement
// (`WITH w0 AS (…), w1 AS (…) SELECT …`) just before the next statement of any kind — a read, a
// savepoint or the COMMIT. Every statement therefore still sees every write issued before it, a
// failing write still fails its transaction (before COMMIT), and nothing is held past the
// transaction. A held write whose row count is wrong fails the statement that carried it and
// dooms the transaction, as a failed statement does in PostgreSQL: every later statement and the
// COMMIT fail with the same error, even if the first caller swallowed it. Outside a transaction, and on SQLite (in-process, no round trips), a marked write
// runs at once.
//
// What may be marked: an INSERT without RETURNING (with ON CONFLICT DO NOTHING only as a claim whose
// count is checked, `DeferredConflict` when it was taken; with ON CONFLICT DO UPDATE as an upsert
// whose count is checked, the only held change of its row: a ledger balance slot), or an UPDATE
// whose row count is checked at the flush (`expectRows`) and that is the only held update of its
// rows. The parts of one statement see one snapshot: a second change of the same row in the same
// statement would be lost (the ledger sums its changes per account first), and an update would
// not see a row inserted by the same statement (an update is never held behind an insert into its
// table).
//
// BEGIN is held too, until a statement needs the transaction: a write sent at once, a locking
// read, a savepoint, or held writes that more statements follow. A plain read before that runs on
// its own, as it would inside a READ COMMITTED transaction (each statement takes a fresh snapshot).
// A transaction that then only held writes ends as their one statement alone, with no BEGIN or
// COMMIT: one statement is atomic by itself, and it checks its own row counts (a wrong one divides
// by zero, which aborts it), after which the writes run again inside a transaction to fail as
// above. A vending webhook is thus two round trips: the machine, and every write.
import {
  CompiledQuery,
  PostgresDialect,
  type DatabaseIntrospector,
  type Kysely,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { SearchPathIntrospector } from './search-path-introspector.js';

interface Mark {
  /** Rows the write must change; checked when it is sent (updates, claims). */
  expectRows?: number;
  /** A different count is a key taken by someone else (`DeferredConflict`), not a broken write. */
  conflict?: boolean;
  /** Named in the error when the row count differs. */
  what?: string;
}

const marks = new WeakMap<CompiledQuery, Mark>();

/** PostgreSQL bind parameters per statement at most (the protocol's limit is 65,535). */
const MAX_PARAMETERS = 30_000;

/** Marks a write whose result nobody reads until the transaction's next statement. */
export function deferred<Q extends CompiledQuery>(query: Q, mark: Mark = {}): Q {
  marks.set(query, mark);
  return query;
}

/**
 * Adds `offset` to each bind-parameter number (`$1` → `$7`), leaving quoted strings and names
 * alone (`'costs $1'` stays). Dollar-quoted strings (`$$…$$`) are not recognised: marked writes
 * must not hold one.
 */
export function shift(sqlText: string, offset: number): string {
  if (offset === 0) return sqlText;
  return sqlText.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|\$(\d+)/g, (match, n: string | undefined) =>
    n === undefined ? match : `$${Number(n) + offset}`,
  );
}

/** One statement for several held writes; `checks[i]` names the count column of write i, if any. */
export function combine(
  held: readonly CompiledQuery[],
  options: { enforce?: boolean } = {},
): { query: CompiledQuery; checks: (string | null)[] } {
  const shape = combinedText(held, options.enforce === true);
  const parameters: unknown[] = [];
  for (const q of held) for (const p of q.parameters) parameters.push(p);
  return { query: CompiledQuery.raw(shape.text, parameters), checks: shape.checks };
}

interface Combined {
  text: string;
  checks: (string | null)[];
}
/** A node of the shape tree: by each write's text, then by the row count it must change (-1: none). */
interface ShapeNode {
  next: Map<string, Map<number, ShapeNode>>;
  combined?: Combined;
}
/** Most combined texts kept (a webhook's writes are one shape; bulk inserts vary in length). */
const MAX_SHAPES = 1_000;
const shapes = {
  plain: { next: new Map() } as ShapeNode,
  enforced: { next: new Map() } as ShapeNode,
  size: 0,
};

/**
 * The combined text for writes of this shape: built once and then found again by the identity of
 * the writes' texts (each compiled once), so a money event's flush neither renumbers nor joins
 * several kilobytes of SQL, and the prepared-statement lookup meets a string it has hashed before.
 */
function combinedText(held: readonly CompiledQuery[], enforce: boolean): Combined {
  let node = enforce ? shapes.enforced : shapes.plain;
  for (const q of held) {
    const expect = marks.get(q)?.expectRows ?? -1;
    let byCount = node.next.get(q.sql);
    let child = byCount?.get(expect);
    if (!child) {
      if (shapes.size >= MAX_SHAPES) return buildCombined(held, enforce);
      if (!byCount) node.next.set(q.sql, (byCount = new Map()));
      byCount.set(expect, (child = { next: new Map() }));
    }
    node = child;
  }
  if (!node.combined) {
    if (shapes.size >= MAX_SHAPES) return buildCombined(held, enforce);
    shapes.size++;
    node.combined = buildCombined(held, enforce);
  }
  return node.combined;
}

function buildCombined(held: readonly CompiledQuery[], enforce: boolean): Combined {
  const parts: string[] = [];
  const checks: (string | null)[] = [];
  let offset = 0;
  held.forEach((q, i) => {
    const checked = marks.get(q)?.expectRows !== undefined;
    parts.push(`w${i} as (${shift(q.sql, offset)}${checked ? ' returning 1' : ''})`);
    offset += q.parameters.length;
    checks.push(checked ? `c${i}` : null);
  });
  const counted = checks.flatMap((c, i) => (c ? [`(select count(*) from w${i})::int as ${c}`] : []));
  if (enforce) {
    // Run alone, outside a transaction, a wrong count must undo the statement itself: a division
    // by zero (22012) aborts it, and nothing of it is committed.
    const expected = held.flatMap((q, i) =>
      checks[i] ? [`(select count(*) from w${i}) = ${marks.get(q)!.expectRows!}`] : [],
    );
    if (expected.length > 0)
      counted.push(`1 / (case when ${expected.join(' and ')} then 1 else 0 end) as ok`);
  }
  const select = counted.length > 0 ? counted.join(', ') : '1 as ok';
  return { text: `with ${parts.join(', ')} select ${select}`, checks };
}

/** Statements sent to the server (round trips) and writes that travelled inside them. */
export interface StatementCounts {
  sent: number;
  held: number;
}

class WriteBehindConnection implements DatabaseConnection {
  inTransaction = false;
  /** In a transaction whose BEGIN has not been sent yet (see `begin`). */
  #beginHeld = false;
  /**
   * A held write's row count was wrong: the error went to whoever issued the statement that sent
   * it. Like a failed statement in PostgreSQL, it dooms the transaction: every later statement and
   * the COMMIT fail with it, even if that caller swallowed it.
   */
  #doomed: unknown;
  #held: CompiledQuery[] = [];
  #parameters = 0;

  constructor(
    readonly inner: DatabaseConnection,
    private readonly counts: StatementCounts,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.#doomed !== undefined) throw this.#doomed;
    const mark = this.inTransaction ? marks.get(query) : undefined;
    if (mark) {
      if (this.#parameters + query.parameters.length > MAX_PARAMETERS) await this.flush();
      // An update would not see rows inserted by the same statement: those go first.
      else if (query.sql.startsWith('update') && this.#holdsInsertInto(tableOf(query.sql)))
        await this.flush();
      this.#held.push(query);
      this.#parameters += query.parameters.length;
      this.counts.held++;
      return { rows: [], numAffectedRows: BigInt(mark.expectRows ?? 0) };
    }
    // A plain read before anything was written needs no transaction yet (each statement of a READ
    // COMMITTED transaction reads its own snapshot anyway); anything else starts it first.
    if (this.#beginHeld && (this.#held.length > 0 || !PLAIN_READ.test(query.sql))) await this.begin();
    await this.flush();
    this.counts.sent++;
    return this.inner.executeQuery<R>(query);
  }

  /**
   * A transaction with default settings starts without a round trip: BEGIN is sent just before the
   * first statement that needs it. One that only read and then held writes ends as one statement
   * on its own (atomic by itself), and one that wrote nothing sends neither BEGIN nor COMMIT.
   */
  holdBegin(): void {
    this.#beginHeld = true;
  }

  /** Sends the held BEGIN, if any. */
  async begin(): Promise<void> {
    if (!this.#beginHeld) return;
    this.#beginHeld = false;
    this.counts.sent++;
    await this.inner.executeQuery(BEGIN);
  }

  /**
   * Ends the transaction: sends the held writes (as one statement that undoes itself on a wrong
   * count when no BEGIN was sent) and COMMIT, unless nothing was begun.
   */
  async commit(commit: () => Promise<void>): Promise<void> {
    if (this.#doomed !== undefined) throw this.#doomed; // the caller rolls back
    if (!this.#beginHeld) {
      await this.flush(); // a failing write throws here: the caller rolls back
      await commit();
      return;
    }
    if (this.#held.length === 0) {
      this.#beginHeld = false;
      return;
    }
    const held = this.#held;
    this.discard();
    this.counts.sent++;
    const query =
      held.length === 1 && marks.get(held[0]!)?.expectRows === undefined
        ? held[0]!
        : combine(held, { enforce: true }).query;
    try {
      // Still "not begun" while it runs: if it fails, nothing was written and the rollback sends nothing.
      await this.inner.executeQuery(query);
      this.#beginHeld = false;
    } catch (err) {
      if ((err as { code?: string }).code !== '22012') throw err;
      // A count was wrong and nothing was written: run the writes again in a transaction, which
      // names the write (or throws DeferredConflict for a claim) and rolls back as before.
      this.#held = held;
      await this.begin();
      await this.flush();
      await commit();
    }
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    if (this.#doomed !== undefined) throw this.#doomed;
    if (this.#beginHeld && (this.#held.length > 0 || !PLAIN_READ.test(query.sql))) await this.begin();
    await this.flush();
    this.counts.sent++;
    yield* this.inner.streamQuery<R>(query, chunkSize);
  }

  /** Sends the held writes as one statement and checks their row counts. */
  async flush(): Promise<void> {
    if (this.#held.length === 0) return;
    await this.begin(); // more statements follow this one: it must be inside the transaction
    const held = this.#held;
    this.#held = [];
    this.#parameters = 0;
    this.counts.sent++;
    if (held.length === 1) {
      const only = held[0]!;
      const result = await this.inner.executeQuery(only);
      this.#checked(() => check(only, Number(result.numAffectedRows ?? 0)));
      return;
    }
    const { query, checks } = combine(held);
    const result = await this.inner.executeQuery<Record<string, number>>(query);
    const counts = result.rows[0] ?? {};
    this.#checked(() =>
      checks.forEach((column, i) => {
        if (column) check(held[i]!, Number(counts[column]));
      }),
    );
  }

  /** Runs the row-count checks; a failed one dooms the transaction (see `#doomed`). */
  #checked(run: () => void): void {
    try {
      run();
    } catch (err) {
      this.#doomed = err;
      throw err;
    }
  }

  #holdsInsertInto(table: string | undefined): boolean {
    return this.#held.some((q) => q.sql.startsWith('insert') && tableOf(q.sql) === table);
  }

  /** A rolled-back transaction's held writes are dropped unsent (and its doom with it). */
  discard(): void {
    this.#held = [];
    this.#parameters = 0;
    this.#doomed = undefined;
  }

  /** Ends a transaction without sending anything when it never began. */
  endHeld(): boolean {
    const held = this.#beginHeld;
    this.#beginHeld = false;
    return held;
  }
}

const BEGIN = CompiledQuery.raw('begin');
/**
 * A select that takes no lock, creates no table and calls none of PostgreSQL's functions that change
 * state. A select calling a function of our own that writes must not open a transaction: there
 * are none.
 */
const PLAIN_READ =
  /^select\b(?![\s\S]*(?:\bfor\s+(?:update|share|no\s+key\s+update|key\s+share)\b|\binto\b|advisory|nextval|setval|set_config|txid_current|pg_current_xact_id|pg_notify))/i;

/** The table an `insert into "t"` or `update "t"` writes. */
function tableOf(sqlText: string): string | undefined {
  return /^(?:insert into|update) "([^"]+)"/.exec(sqlText)?.[1];
}

/**
 * A held claim (`INSERT … ON CONFLICT DO NOTHING`) found its key taken: the transaction fails and
 * its caller runs it again with the claim made at once.
 */
export class DeferredConflict extends Error {}

function check(query: CompiledQuery, changed: number): void {
  const mark = marks.get(query);
  if (mark?.expectRows === undefined || mark.expectRows === changed) return;
  if (mark.conflict) throw new DeferredConflict(`${mark.what ?? 'a held claim'} was taken meanwhile`);
  throw new Error(
    `${mark.what ?? 'a deferred write'} changed ${changed} rows, not ${mark.expectRows}; nothing was committed`,
  );
}

/** Kysely's PostgreSQL driver with write-behind inside transactions. */
class WriteBehindDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly counts: StatementCounts,
  ) {}

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new WriteBehindConnection(await this.inner.acquireConnection(), this.counts);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as WriteBehindConnection;
    if (settings.isolationLevel || settings.accessMode) await this.inner.beginTransaction(c, settings);
    else c.holdBegin();
    c.inTransaction = true;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriteBehindConnection;
    await c.commit(() => this.inner.commitTransaction(c));
    c.inTransaction = false;
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriteBehindConnection;
    c.discard();
    c.inTransaction = false;
    if (!c.endHeld()) await this.inner.rollbackTransaction(c);
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']) {
    await (connection as WriteBehindConnection).begin();
    await this.inner.savepoint!(connection, name, compile);
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ) {
    // Anything held was issued after the savepoint (the savepoint statement sent what came before).
    (connection as WriteBehindConnection).discard();
    await this.inner.rollbackToSavepoint!(connection, name, compile);
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compile: QueryCompiler['compileQuery'],
  ) {
    await this.inner.releaseSavepoint!(connection, name, compile);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriteBehindConnection;
    c.discard();
    c.endHeld();
    c.inTransaction = false;
    await this.inner.releaseConnection(c.inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

export class WriteBehindPostgresDialect extends PostgresDialect {
  /** Counted since the database was opened (the `kioskhub_db_statements_total` metric). */
  readonly counts: StatementCounts = { sent: 0, held: 0 };

  override createDriver(): Driver {
    return new WriteBehindDriver(super.createDriver(), this.counts);
  }

  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SearchPathIntrospector(db);
  }
}
