// Statements compiled once. Kysely builds an immutable operation tree and compiles it to SQL on
// every call: tens of microseconds per statement, and a webhook runs a dozen of them. The few
// statements on the money path are built once per dialect with named placeholders; afterwards a
// call only binds its values. The SQL text is Kysely's own, so behaviour is unchanged and the
// SQLite prepared-statement cache keeps hitting.
import {
  CompiledQuery,
  SqliteAdapter,
  type Compilable,
  type Insertable,
  type InsertQueryBuilder,
  type InsertResult,
} from 'kysely';
import type { Executor } from './database.js';
import type { Database } from './schema.js';
import { execute } from './direct.js';
import { deferred } from './write-behind.js';

const MARK = '\u0000kioskhub-param:';

type Slot = { name: string } | { value: unknown };

/** `deferred(query, mark)` where it means something: on PostgreSQL (SQLite has no round trips). */
function deferredOnPostgres<Q extends CompiledQuery>(
  ex: Executor,
  query: Q,
  mark?: Parameters<typeof deferred>[1],
): Q {
  return ex.getExecutor().adapter instanceof SqliteAdapter ? query : deferred(query, mark);
}

interface Plan {
  sql: string;
  slots: Slot[];
}

/** Builds the statement once per dialect (transactions share their database's adapter). */
function planner<P extends object>(build: (ex: Executor, p: P) => Compilable<unknown>) {
  const plans = new WeakMap<object, Plan>();
  return (ex: Executor): Plan => {
    const adapter = ex.getExecutor().adapter;
    let found = plans.get(adapter);
    if (found) return found;
    const placeholders = new Proxy({} as P, { get: (_t, name) => `${MARK}${String(name)}` });
    const query = build(ex, placeholders).compile();
    const slots = query.parameters.map((value): Slot =>
      typeof value === 'string' && value.startsWith(MARK) ? { name: value.slice(MARK.length) } : { value },
    );
    if (query.sql.includes(MARK)) throw new Error('compiled(): a placeholder ended up in the SQL text');
    found = { sql: query.sql, slots };
    plans.set(adapter, found);
    return found;
  };
}

/**
 * `build` receives placeholders for `P`'s fields: it must put each one into the query as a value
 * (never transform it in JavaScript) and must build the same shape of query for every call.
 */
export function compiled<P extends object, R>(build: (ex: Executor, p: P) => Compilable<R>) {
  const plan = planner(build);
  const bind = (ex: Executor, values: P): CompiledQuery<R> => {
    const { sql, slots } = plan(ex);
    const parameters = slots.map((s) => {
      if (!('name' in s)) return s.value;
      const value = (values as Record<string, unknown>)[s.name];
      // Kysely leaves an undefined column out of an insert; a fixed statement cannot.
      if (value === undefined) throw new Error(`compiled(): no value for "${s.name}"`);
      return value;
    });
    return CompiledQuery.raw(sql, parameters) as CompiledQuery<R>;
  };
  return {
    /** All rows (or none) of the statement. */
    async rows(ex: Executor, values: P): Promise<R[]> {
      return (await execute(ex, bind(ex, values))).rows;
    },
    async first(ex: Executor, values: P): Promise<R | undefined> {
      return (await execute(ex, bind(ex, values))).rows[0];
    },
    /** Rows an insert, update or delete touched. */
    async affected(ex: Executor, values: P): Promise<number> {
      return Number((await execute(ex, bind(ex, values))).numAffectedRows ?? 0);
    },
    /**
     * A write that must change `expectRows` rows, which on PostgreSQL may travel with the next
     * statement of its transaction (write-behind.ts); a different count fails the transaction.
     */
    async deferredWrite(ex: Executor, values: P, mark: { expectRows: number; what: string }): Promise<void> {
      const changed = Number(
        (await execute(ex, deferredOnPostgres(ex, bind(ex, values), mark))).numAffectedRows ?? 0,
      );
      if (changed !== mark.expectRows)
        throw new Error(
          `${mark.what} changed ${changed} rows, not ${mark.expectRows}; nothing was committed`,
        );
    },
  };
}

type Row = Record<string, unknown>;
/** `onConflictDoNothing`: the conflict target's columns, or `true` for a conflict on any key. */
type InsertOptions = { onConflictDoNothing?: readonly string[] | true; returning?: string };
const MAX_SHAPES = 32;

function buildInsert<T extends keyof Database & string>(
  q: InsertQueryBuilder<Database, T, InsertResult>,
  options: InsertOptions,
): Compilable<Row> {
  const target = options.onConflictDoNothing;
  if (target === true) q = q.onConflict((oc) => oc.doNothing());
  else if (target) q = q.onConflict((oc) => oc.columns(target as never).doNothing());
  return (options.returning ? q.returning(options.returning as never) : q) as Compilable<Row>;
}

/** Binds rows to an insert compiled once per shape (the columns present and the number of rows). */
function insertBinder<T extends keyof Database & string>(table: T, options: InsertOptions) {
  type Shape = { plan: (ex: Executor) => Plan; cells: WeakMap<Plan, { row: number; column: string }[]> };
  const shapes = new Map<string, Shape>();
  return (ex: Executor, rows: readonly Insertable<Database[T]>[]): CompiledQuery<Row> => {
    const present = rows.map((row) => Object.keys(row).filter((c) => (row as Row)[c] !== undefined));
    const key = present.map((columns) => columns.join(',')).join('|');
    let shape = shapes.get(key);
    if (!shape && shapes.size >= MAX_SHAPES) {
      // An unusual shape (a bulk insert of some other length): Kysely as usual.
      return buildInsert(ex.insertInto(table).values(rows as never), options).compile();
    }
    if (!shape) {
      const plan = planner<Row>((db, p) => {
        const values = present.map((columns, i) =>
          Object.fromEntries(columns.map((c) => [c, p[`${i}.${c}`]])),
        );
        return buildInsert(db.insertInto(table).values(values as never), options);
      });
      shape = { plan, cells: new WeakMap() };
      shapes.set(key, shape);
    }
    const plan = shape.plan(ex);
    // Where each parameter comes from (row, column), worked out once per plan.
    let cells = shape.cells.get(plan);
    if (!cells) {
      cells = plan.slots.map((s) => {
        if (!('name' in s)) throw new Error(`insertRows(${table}): a constant among the values`);
        const dot = s.name.indexOf('.');
        return { row: Number(s.name.slice(0, dot)), column: s.name.slice(dot + 1) };
      });
      shape.cells.set(plan, cells);
    }
    const parameters = cells.map((c) => (rows[c.row] as Row)[c.column]);
    return CompiledQuery.raw(plan.sql, parameters) as CompiledQuery<Row>;
  };
}

/**
 * An insert of rows of one table, compiled once per shape (the table, the columns present and the
 * number of rows): Kysely leaves undefined columns out, and so does this.
 */
export function insertRows<T extends keyof Database & string>(table: T, options: InsertOptions = {}) {
  const bind = insertBinder(table, options);
  // Nothing comes back from a plain insert: on PostgreSQL it may travel with the next statement.
  const blind = !options.returning && !options.onConflictDoNothing;
  return async (ex: Executor, rows: readonly Insertable<Database[T]>[]): Promise<Row[]> => {
    const query = bind(ex, rows);
    return (await execute(ex, blind ? deferredOnPostgres(ex, query) : query)).rows;
  };
}

/**
 * Claims keys: inserts rows unless their `conflict` key exists, and answers whether all were new.
 * `optimistic` (for paths where a repeat is rare): on PostgreSQL inside a transaction the claim
 * travels with the next statement and answers true; a key that was taken after all fails the
 * transaction there with `DeferredConflict`, and the caller runs again without `optimistic`.
 */
export function claimRows<T extends keyof Database & string>(table: T, conflict: readonly string[]) {
  const bind = insertBinder(table, { onConflictDoNothing: conflict });
  return async (
    ex: Executor,
    rows: readonly Insertable<Database[T]>[],
    options: { optimistic?: boolean } = {},
  ): Promise<boolean> => {
    const query = bind(ex, rows);
    const mark = { expectRows: rows.length, conflict: true, what: `a claim in ${table}` };
    const result = await execute(ex, options.optimistic ? deferredOnPostgres(ex, query, mark) : query);
    return Number(result.numAffectedRows ?? 0) === rows.length;
  };
}
