// Opens the configured storage engine behind one Kysely instance and runs migrations.
// SQLite runs in WAL mode with synchronous=FULL so every commit survives power loss.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { monotonicFactory } from 'ulid';
import type { DatabaseTarget } from '../config.js';
import { migrationProvider } from './migrations.js';
import { enableDirect } from './direct.js';
import { probeConnection, TransactionEnded, type ConnectionProbe } from './group-commit.js';
import type { Database } from './schema.js';
import { createPreparedStatements } from './prepared.js';
import { WriteBehindPostgresDialect, type StatementCounts } from './write-behind.js';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Anything a query can run on: the database or an open transaction. */
export type Executor = Kysely<Database>;

export interface OpenedDatabase {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  /** Cheap round trip used by /readyz. */
  ping(): Promise<void>;
  /** PostgreSQL: statements sent (round trips) and writes that travelled inside them, so far. */
  statements?(): StatementCounts;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL schema to use (tests isolate themselves with one schema per file). */
  schema?: string;
  poolSize?: number;
  /** PostgreSQL: name the statements a process sends again and again (default true). */
  preparedStatements?: boolean;
  /** Told when DATA_DIR or the database file cannot be restricted to their owner. */
  warn?(message: string): void;
}

// int8 and numeric come back as strings from pg by default; money here fits in a JS number.
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === 20) return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format);
  },
};

/** PostgreSQL did not answer at start: the message names DATABASE_URL (without its password). */
export class DatabaseUnreachableError extends Error {}

/**
 * The database was migrated by a newer Kioskhub than this one (going back after an upgrade): a
 * restart cannot help, so start-up names what the database needs instead of starting.
 */
export class DatabaseNewerError extends Error {}

/** A connection URL fit to print: its password replaced by `***`. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(not a URL)';
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; errors?: { message?: string }[] };
  // A refused connection to "localhost" is an AggregateError of one per address, with no message.
  const message = e.message || e.errors?.map((x) => x.message).join('; ') || String(err);
  return e.code && !message.includes(e.code) ? `${e.code} ${message}` : message;
}

export async function openDatabase(
  target: DatabaseTarget,
  options: OpenOptions = {},
): Promise<OpenedDatabase> {
  if (target.kind === 'postgres') {
    const schema = options.schema;
    if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema))
      throw new Error(`bad schema name ${schema}`);
    const pool = new pg.Pool({
      connectionString: target.url,
      max: options.poolSize ?? 10,
      types: pgTypes,
      connectionTimeoutMillis: 5_000,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    });
    // A broken idle connection must not crash the process; the next query reconnects.
    pool.on('error', () => undefined);
    // Nor may a checked-out one (between two statements of a transaction) when the server
    // goes away: its next query fails (mapped to 503) and the pool drops it on release.
    pool.on('connect', (client) => client.on('error', () => undefined));
    const prepared = createPreparedStatements();
    pool.on('connect', (client) => prepared.attach(client));
    // The first connection says whether DATABASE_URL leads anywhere; name it when it does not.
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => undefined);
      const where = `DATABASE_URL=${redactUrl(target.url)}`;
      throw new DatabaseUnreachableError(`cannot connect to PostgreSQL at ${where}: ${describe(err)}`);
    }
    try {
      if (schema) await client.query(`create schema if not exists ${schema}`);
    } finally {
      client.release();
    }
    const dialect = new WriteBehindPostgresDialect({ pool });
    const db = new Kysely<Database>({ dialect });
    // Kysely looks for its migration tables in every schema unless told which one: another
    // schema's kysely_migration_lock would make it skip creating this schema's own.
    const current = schema ?? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]?.s;
    await migrate(db, 'postgres', current);
    if (options.preparedStatements !== false) prepared.enable();
    return {
      db,
      dialect: 'postgres',
      ping: async () => {
        await sql`select 1`.execute(db);
      },
      statements: () => ({ ...dialect.counts }),
      close: () => db.destroy(),
    };
  }
  const file = target.kind === 'sqlite-file' ? target.file : ':memory:';
  if (target.kind === 'sqlite-file') restrictFiles(file, options.warn);
  const sqlite = new SqliteDatabase(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // Each money event of a group commit runs in a savepoint, whose undo copies of the pages it
  // touches go to a statement journal; on a temp file that is a 4 KB write per page (the
  // largest cost of a webhook's statements). In memory it is a copy, freed at each release.
  sqlite.pragma('temp_store = MEMORY');
  const statements = withStatementCache(sqlite);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: statements }) });
  enableDirect(db, (text) => statements.prepare(text));
  probeConnection(db, connectionProbe(sqlite, statements));
  await migrate(db, 'sqlite');
  return {
    db,
    dialect: 'sqlite',
    ping: async () => {
      await sql`select 1`.execute(db);
    },
    close: () => db.destroy(),
  };
}

/**
 * The database holds password hashes and the generated JWT secret: its folder is the owner's
 * only (0700) and so are the file and its WAL (0600; SQLite gives the WAL and shared-memory
 * files the database file's mode). Folders and files of older installs are tightened too.
 */
function restrictFiles(file: string, warn: (message: string) => void = () => undefined): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  const modes = [
    [dir, 0o700],
    [file, 0o600],
    [`${file}-wal`, 0o600],
    [`${file}-shm`, 0o600],
  ] as const;
  for (const [path, mode] of modes) {
    if (!existsSync(path)) continue;
    try {
      chmodSync(path, mode);
    } catch (err) {
      // Not ours (say, DATA_DIR is a folder root owns): serve, but say who else may read it.
      const reason = (err as Error).message;
      warn(`cannot restrict ${path} (DATA_DIR) to its owner, so others may read the database: ${reason}`);
    }
  }
}

/**
 * Kysely prepares every query anew; the same few dozen statements run all day, so keep them
 * prepared (bounded, least recently used out). Statements run synchronously, one at a time.
 */
/** What the group commit sees of a SQLite connection through its statement cache. */
export function connectionProbe(
  sqlite: SqliteDatabase.Database,
  statements: ReturnType<typeof withStatementCache>,
): ConnectionProbe {
  return {
    writes: () => statements.writes,
    inTransaction: () => sqlite.inTransaction,
    requireTransaction: (on) => statements.requireTransaction(on),
  };
}

export function withStatementCache(sqlite: SqliteDatabase.Database, max = 500) {
  const cache = new Map<string, SqliteDatabase.Statement>();
  // Statements handed out that may write (all but reads and transaction control): the group
  // commit's way to tell an event that failed before writing anything.
  let writes = 0;
  // Set by the group commit while its events run: no statement outside their transaction.
  let inTransactionOnly = false;
  return {
    close: () => sqlite.close(),
    get writes() {
      return writes;
    },
    requireTransaction(on: boolean): void {
      inTransactionOnly = on;
    },
    prepare(query: string): SqliteDatabase.Statement {
      if (inTransactionOnly && !sqlite.inTransaction) throw new TransactionEnded();
      let stmt = cache.get(query);
      if (stmt) {
        cache.delete(query);
      } else {
        stmt = sqlite.prepare(query);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
      }
      cache.set(query, stmt);
      if (!stmt.readonly) writes++;
      return stmt;
    },
  };
}

async function migrate(db: Db, dialect: 'sqlite' | 'postgres', schema?: string): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: migrationProvider(dialect),
    // 0013 landed after 0014 and 0015 had run on some databases: run a missing earlier one too.
    allowUnorderedMigrations: true,
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const unknown = await migrationsUnknownHere(db, dialect, schema);
    if (unknown.length > 0) {
      throw new DatabaseNewerError(
        `this database was upgraded by a newer Kioskhub: it has ${unknown.length === 1 ? 'migration' : 'migrations'} ` +
          `${unknown.join(', ')}, which this version does not know, and an older version cannot run on it. ` +
          'Start the version that upgraded it, or restore the backup taken before the upgrade ' +
          '(docs/operations.md, "Upgrades"). Nothing was changed.',
      );
    }
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
}

/** Migrations the database has run that this version does not have (a newer version ran them). */
async function migrationsUnknownHere(
  db: Db,
  dialect: 'sqlite' | 'postgres',
  schema?: string,
): Promise<string[]> {
  try {
    const known = new Set(Object.keys(await migrationProvider(dialect).getMigrations()));
    const table = sql.table(schema ? `${schema}.kysely_migration` : 'kysely_migration');
    const { rows } = await sql<{ name: string }>`select name from ${table}`.execute(db);
    return rows
      .map((r) => r.name)
      .filter((name) => !known.has(name))
      .sort();
  } catch {
    return [];
  }
}

export const nowIso = (): string => new Date().toISOString();
// ulid's default random source asks the OS for every character (~100 µs an id here); a pooled
// buffer of crypto randomness gives the same quality at a fraction of the cost.
let pool = Buffer.alloc(0);
let offset = 0;
function pooledRandom(): number {
  if (offset + 4 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const value = pool.readUInt32BE(offset) / 0x1_0000_0000;
  offset += 4;
  return value;
}

/** ULIDs that sort in the order this process made them, also within one millisecond (rows listed by id). */
export const newId: () => string = monotonicFactory(pooledRandom);
export const bool = (value: number | boolean): boolean => value === true || value === 1;
