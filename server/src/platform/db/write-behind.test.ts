// Write-behind on a real PostgreSQL: held writes travel together before the next statement, every
// statement sees what was written before it, a failing write fails its transaction, a rollback
// sends nothing, and outside a transaction nothing is held.
import { randomBytes } from 'node:crypto';
import { CompiledQuery, Kysely, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isUniqueViolation } from './errors.js';
import { afterCommit, inGroup } from './group-commit.js';
import type { Db } from './database.js';
import { DeferredConflict, deferred, WriteBehindPostgresDialect } from './write-behind.js';

const url = process.env['TEST_DATABASE_URL'];
if (!url)
  console.warn('NOTICE: TEST_DATABASE_URL is not set; the write-behind tests (PostgreSQL) are SKIPPED.');

describe.skipIf(!url)('write-behind (PostgreSQL)', () => {
  const schema = `wb_${randomBytes(6).toString('hex')}`;
  let pool: pg.Pool;
  let db: Db;
  /** Statements sent to the server, in order. */
  let sent: string[] = [];

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.query(`create table ${schema}.parents (id text primary key, n integer not null)`);
    await admin.query(
      `create table ${schema}.children (id text primary key, parent_id text not null references ${schema}.parents(id), note text)`,
    );
    await admin.end();
    pool = new pg.Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` });
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
        if (text) sent.push(text);
        return query(...args);
      };
    });
    db = new Kysely({ dialect: new WriteBehindPostgresDialect({ pool }) }) as unknown as Db;
  });
  afterAll(async () => {
    await db?.destroy();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
  });
  beforeEach(async () => {
    await sql`truncate children, parents`.execute(db);
    sent = [];
  });

  const insertParent = (id: string, n: number) =>
    deferred(CompiledQuery.raw('insert into "parents" ("id", "n") values ($1, $2)', [id, n]));
  const insertChild = (id: string, parentId: string, note: string) =>
    deferred(
      CompiledQuery.raw('insert into "children" ("id", "parent_id", "note") values ($1, $2, $3)', [
        id,
        parentId,
        note,
      ]),
    );
  const bump = (id: string, by: number) =>
    deferred(CompiledQuery.raw('update "parents" set "n" = "n" + $1 where "id" = $2', [by, id]), {
      expectRows: 1,
      what: `parent ${id}`,
    });
  const rows = async () =>
    (await sql<{ id: string; n: number }>`select id, n from parents order by id`.execute(db)).rows;
  const children = async () =>
    (
      await sql<{ id: string; parent_id: string; note: string }>`select * from children order by id`.execute(
        db,
      )
    ).rows;

  const inTransaction = () => sent.slice(sent.indexOf('begin'), sent.lastIndexOf('commit') + 1);

  it('held writes go as one statement, with their parameters renumbered; alone, it needs no BEGIN or COMMIT', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    sent = [];
    await db.transaction().execute(async (tx) => {
      await tx.executeQuery(bump('p0', 10));
      await tx.executeQuery(insertParent('p1', 1));
      await tx.executeQuery(insertChild('c1', 'p1', 'first, $1 stays text'));
      await tx.executeQuery(insertParent('p2', 2));
      await tx.executeQuery(insertChild('c2', 'p2', 'second'));
    });
    // Nothing but the batch: one statement is atomic by itself, and checks its own counts.
    const statements = sent;
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(
      /select \(select count\(\*\) from w0\)::int as c0, 1 \/ \(case when \(select count\(\*\) from w0\) = 1 then 1 else 0 end\) as ok$/,
    );
    expect(statements[0]).toMatch(
      /^with w0 as \(update "parents" set "n" = "n" \+ \$1 where "id" = \$2 returning 1\), w1 as \(insert into "parents" \("id", "n"\) values \(\$3, \$4\)\), w2 as \(insert into "children" \("id", "parent_id", "note"\) values \(\$5, \$6, \$7\)\)/,
    );
    expect(statements[0]).toContain(
      'w4 as (insert into "children" ("id", "parent_id", "note") values ($10, $11, $12))',
    );
    expect(await rows()).toEqual([
      { id: 'p0', n: 10 },
      { id: 'p1', n: 1 },
      { id: 'p2', n: 2 },
    ]);
    expect(await children()).toEqual([
      { id: 'c1', parent_id: 'p1', note: 'first, $1 stays text' },
      { id: 'c2', parent_id: 'p2', note: 'second' },
    ]);
  });

  it('BEGIN waits for the first statement that needs a transaction; reads before it run on their own', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    sent = [];
    // Only reads: neither BEGIN nor COMMIT.
    const n = await db.transaction().execute(async (tx) => {
      return (await sql<{ n: number }>`select n from parents where id = 'p0'`.execute(tx)).rows[0]!.n;
    });
    expect(n).toBe(0);
    expect(sent).toEqual([`select n from parents where id = 'p0'`]);

    // A read, then held writes: two statements.
    sent = [];
    await db.transaction().execute(async (tx) => {
      await sql`select n from parents where id = 'p0'`.execute(tx);
      await tx.executeQuery(insertParent('p1', 1));
      await tx.executeQuery(insertChild('c1', 'p1', 'with its parent'));
    });
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatch(/^with w0 as \(insert into "parents"/);
    expect(await children()).toEqual([{ id: 'c1', parent_id: 'p1', note: 'with its parent' }]);

    // A locking read, a write sent at once, a savepoint: each begins the transaction first.
    for (const first of [
      sql`select n from parents where id = 'p0' for update`,
      sql`update parents set n = n + 1 where id = 'p0'`,
    ]) {
      sent = [];
      await db.transaction().execute(async (tx) => {
        await first.execute(tx);
      });
      expect(sent[0]).toBe('begin');
      expect(sent.at(-1)).toBe('commit');
    }
    sent = [];
    const trx = await db.startTransaction().execute();
    await trx.savepoint('sp').execute();
    await trx.commit().execute();
    expect(sent[0]).toBe('begin');
  });

  it('a lone batch whose count is wrong commits nothing, and fails as in a transaction', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    sent = [];
    await expect(
      db.transaction().execute(async (tx) => {
        await tx.executeQuery(insertChild('c1', 'p0', 'sent with the updates'));
        await tx.executeQuery(bump('p0', 5));
        await tx.executeQuery(bump('missing', 1));
      }),
    ).rejects.toThrow('parent missing changed 0 rows, not 1; nothing was committed');
    const statements = [...sent];
    expect(await rows()).toEqual([{ id: 'p0', n: 0 }]);
    expect(await children()).toEqual([]);
    // The lone batch (aborted by its own check), then the same writes in a transaction, rolled back.
    expect(statements).toHaveLength(4);
    expect(statements[0]).toContain(' = 1 and (select count(*) from w2) = 1 then 1 else 0 end) as ok');
    expect(statements.slice(1)).toEqual(['begin', statements[2], 'rollback']);
    expect(statements[2]).toMatch(/^with w0 as \(insert into "children"/);
  });

  it('every statement sees the writes issued before it', async () => {
    const seen = await db.transaction().execute(async (tx) => {
      await tx.executeQuery(insertParent('p1', 1));
      await tx.executeQuery(insertParent('p2', 2));
      return (await sql<{ c: number }>`select count(*)::int as c from parents`.execute(tx)).rows[0]!.c;
    });
    expect(seen).toBe(2);
    expect(inTransaction()).toHaveLength(4); // begin, the batch, the read, commit
  });

  it('an update is never held behind an insert into its table: it sees the new row', async () => {
    await db.transaction().execute(async (tx) => {
      await tx.executeQuery(insertParent('p1', 1));
      await tx.executeQuery(bump('p1', 5));
    });
    expect(await rows()).toEqual([{ id: 'p1', n: 6 }]);
  });

  it('a held update that changes another number of rows than expected fails its transaction', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    await expect(
      db.transaction().execute(async (tx) => {
        await tx.executeQuery(insertChild('c1', 'p0', 'sent with the update'));
        await tx.executeQuery(bump('missing', 1));
      }),
    ).rejects.toThrow('parent missing changed 0 rows, not 1; nothing was committed');
    expect(await rows()).toEqual([{ id: 'p0', n: 0 }]);
    expect(await children()).toEqual([]);
  });

  it('a held insert that breaks a constraint fails the transaction before COMMIT, as the same error', async () => {
    await sql`insert into parents (id, n) values ('p1', 1)`.execute(db);
    const err = await db
      .transaction()
      .execute(async (tx) => {
        await tx.executeQuery(insertParent('p2', 2));
        await tx.executeQuery(insertParent('p1', 3));
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isUniqueViolation(err)).toBe(true);
    expect(await rows()).toEqual([{ id: 'p1', n: 1 }]);
  });

  it('a rollback sends nothing that was held; nor does a rollback to a savepoint', async () => {
    await expect(
      db.transaction().execute(async (tx) => {
        await tx.executeQuery(insertChild('c1', 'nobody', 'would break the foreign key'));
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(sent.some((s) => s.includes('children'))).toBe(false);

    const trx = await db.startTransaction().execute();
    await trx.executeQuery(insertParent('p1', 1));
    const inner = await trx.savepoint('sp').execute();
    await inner.executeQuery(insertChild('c1', 'nobody', 'would break the foreign key'));
    await inner.rollbackToSavepoint('sp').execute();
    await trx.executeQuery(insertParent('p2', 2));
    await trx.commit().execute();
    expect(await rows()).toEqual([
      { id: 'p1', n: 1 },
      { id: 'p2', n: 2 },
    ]);
    expect(sent.some((s) => s.includes('children'))).toBe(false);
  });

  it('a held claim whose key was taken fails its transaction with DeferredConflict; a free one goes through', async () => {
    await sql`insert into parents (id, n) values ('p1', 1)`.execute(db);
    const claim = (id: string) =>
      deferred(
        CompiledQuery.raw('insert into "parents" ("id", "n") values ($1, $2) on conflict ("id") do nothing', [
          id,
          0,
        ]),
        {
          expectRows: 1,
          conflict: true,
          what: `parent ${id}`,
        },
      );
    const taken = db.transaction().execute(async (tx) => {
      expect(Number((await tx.executeQuery(claim('p1'))).numAffectedRows)).toBe(1); // held: assumed new
      await tx.executeQuery(insertChild('c1', 'p1', 'written only if the claim holds'));
    });
    await expect(taken).rejects.toBeInstanceOf(DeferredConflict);
    await expect(taken).rejects.toThrow('parent p1 was taken meanwhile');
    expect(await children()).toEqual([]);

    await db.transaction().execute(async (tx) => {
      await tx.executeQuery(claim('p2'));
      await tx.executeQuery(insertChild('c2', 'p2', 'claimed'));
    });
    expect(await rows()).toEqual([
      { id: 'p1', n: 1 },
      { id: 'p2', n: 0 },
    ]);
    expect(await children()).toEqual([{ id: 'c2', parent_id: 'p2', note: 'claimed' }]);
  });

  it('a wrong row count dooms its transaction, even when the statement that carried it had its error swallowed', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    const run = db.transaction().execute(async (tx) => {
      await sql`update parents set n = n where id = 'p0'`.execute(tx); // sends BEGIN
      await tx.executeQuery(insertChild('c1', 'p0', 'held'));
      await tx.executeQuery(bump('missing', 1));
      // The count error reaches this unrelated read, whose caller does not care.
      await sql`select 1`.execute(tx).catch(() => undefined);
      // Like PostgreSQL after a failed statement: nothing more runs in the transaction…
      await expect(sql`select 2`.execute(tx)).rejects.toThrow('parent missing changed 0 rows, not 1');
    });
    // …and it does not commit.
    await expect(run).rejects.toThrow('parent missing changed 0 rows, not 1');
    expect(sent.at(-1)).toMatch(/^rollback$/i);
    expect(await children()).toEqual([]);
    // The connection is whole again for the next transaction.
    await db.transaction().execute(async (tx) => {
      await tx.executeQuery(insertChild('c2', 'p0', 'next'));
    });
    expect((await children()).map((c) => c.id)).toEqual(['c2']);
  });

  it('a rollback to a savepoint lifts the doom with the writes that caused it', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    const trx = await db.startTransaction().execute();
    await trx.executeQuery(insertChild('c1', 'p0', 'kept'));
    const sp = await trx.savepoint('sp').execute();
    await sp.executeQuery(insertChild('c2', 'p0', 'undone'));
    await sp.executeQuery(bump('missing', 1));
    await expect(sql`select 1`.execute(sp)).rejects.toThrow('parent missing');
    await sp.rollbackToSavepoint('sp').execute();
    await trx.executeQuery(insertChild('c3', 'p0', 'after'));
    await trx.commit().execute();
    expect((await children()).map((c) => c.id)).toEqual(['c1', 'c3']);
  });

  it('a locking select starts the transaction however it is spaced', async () => {
    await sql`insert into parents (id, n) values ('p0', 0)`.execute(db);
    sent = [];
    await db.transaction().execute(async (tx) => {
      await sql`select id from parents where id = 'p0' for   update`.execute(tx);
    });
    expect(sent[0]).toBe('begin');
  });

  it('renumbers parameters, never a "$n" inside a quoted string or name', async () => {
    await db.transaction().execute(async (tx) => {
      await tx.executeQuery(insertParent('p1', 1));
      await tx.executeQuery(
        deferred(
          CompiledQuery.raw(
            `insert into "children" ("id", "parent_id", "note") values ($1, $2, 'costs $1, it''s $2')`,
            ['c1', 'p1'],
          ),
        ),
      );
    });
    expect((await children())[0]!.note).toBe("costs $1, it's $2");
  });

  it('outside a transaction a marked write runs at once', async () => {
    const result = await db.executeQuery(insertParent('p1', 1));
    expect(Number(result.numAffectedRows)).toBe(1);
    expect(sent).toEqual(['insert into "parents" ("id", "n") values ($1, $2)']);
  });

  it('after-commit hooks of a money event run once it is committed, never after a rollback', async () => {
    const ran: string[] = [];
    await inGroup(db, async (tx) => {
      await tx.executeQuery(insertParent('p1', 1));
      afterCommit(tx, () => ran.push('committed'));
      expect(ran).toEqual([]);
    });
    expect(ran).toEqual(['committed']);
    await expect(
      inGroup(db, async (tx) => {
        afterCommit(tx, () => ran.push('rolled back'));
        await tx.executeQuery(insertParent('p1', 2));
      }),
    ).rejects.toThrow();
    expect(ran).toEqual(['committed']);
    expect(afterCommit(db, () => ran.push('no transaction'))).toBe(false);
  });
});
