// Direct execution on SQLite: inside a transaction a compiled statement runs on better-sqlite3
// itself and answers exactly what Kysely would; a failure is a rejection; a rollback undoes it.
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, Kysely, sql, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from './database.js';
import { enableDirect, execute } from './direct.js';
import { isUniqueViolation } from './errors.js';

describe('direct execution (SQLite)', () => {
  let sqlite: SqliteDatabase.Database;
  let db: Db;
  let prepared: string[];

  beforeEach(async () => {
    sqlite = new SqliteDatabase(':memory:');
    prepared = [];
    db = new Kysely({ dialect: new SqliteDialect({ database: sqlite }) }) as unknown as Db;
    enableDirect(db, (text) => {
      prepared.push(text);
      return sqlite.prepare(text);
    });
    await sql`create table items (id text primary key, n integer not null)`.execute(db);
  });
  afterEach(async () => {
    await db.destroy();
  });

  const insert = (id: string, n: number) =>
    CompiledQuery.raw('insert into items (id, n) values (?, ?)', [id, n]);
  const select = CompiledQuery.raw('select id, n from items order by id', []);

  it('inside a transaction answers what Kysely answers, straight from better-sqlite3', async () => {
    const viaKysely = await db.transaction().execute(async (tx) => {
      const written = await tx.executeQuery(insert('a', 1));
      return { written: written.numAffectedRows, rows: (await tx.executeQuery(select)).rows };
    });
    prepared = [];
    const viaDirect = await db.transaction().execute(async (tx) => {
      const written = await execute(tx, insert('b', 2));
      const update = await execute(tx, CompiledQuery.raw('update items set n = n + 1', []));
      expect(update.numAffectedRows).toBe(2n);
      return { written: written.numAffectedRows, rows: (await execute(tx, select)).rows };
    });
    expect(viaKysely).toEqual({ written: 1n, rows: [{ id: 'a', n: 1 }] });
    expect(viaDirect).toEqual({
      written: 1n,
      rows: [
        { id: 'a', n: 2 },
        { id: 'b', n: 3 },
      ],
    });
    expect(prepared).toEqual([insert('b', 2).sql, 'update items set n = n + 1', select.sql]);
  });

  it('a failing statement rejects with the driver error, and the rollback undoes what ran', async () => {
    const err = await db
      .transaction()
      .execute(async (tx) => {
        await execute(tx, insert('a', 1));
        await execute(tx, insert('a', 2));
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isUniqueViolation(err)).toBe(true);
    expect((await db.executeQuery(select)).rows).toEqual([]);
  });

  it('outside a transaction goes through Kysely', async () => {
    await execute(db, insert('a', 1));
    expect(prepared).toEqual([]);
    expect((await db.executeQuery(select)).rows).toEqual([{ id: 'a', n: 1 }]);
  });
});
