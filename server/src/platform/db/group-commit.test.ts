// Group commit on a real SQLite file: events submitted together share one transaction, each in
// its own savepoint (replayable ones in none); one that fails is rolled back alone; each settles
// only once it is on disk.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectionProbe, withStatementCache, type Db } from './database.js';
import {
  afterCommit,
  createGroupCommit,
  heldUntilEnd,
  inGroup,
  NestedMoneyEvent,
  probeConnection,
  TransactionEnded,
} from './group-commit.js';

describe('group commit (SQLite file, WAL)', () => {
  let dir: string;
  let file: string;
  let db: Db;
  /** Every statement the database was handed, in order. */
  let statements: string[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kioskhub-group-'));
    file = join(dir, 'db.sqlite');
    const sqlite = new SqliteDatabase(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    statements = [];
    // The server's own statement cache (it counts writes and refuses statements outside the group's
    // transaction), with every statement it is handed recorded.
    const cache = withStatementCache(sqlite);
    const database = {
      close: () => sqlite.close(),
      prepare(text: string) {
        statements.push(text);
        return cache.prepare(text);
      },
    };
    db = new Kysely({ dialect: new SqliteDialect({ database }) }) as unknown as Db;
    probeConnection(db, connectionProbe(sqlite, cache));
    await sql`create table events (id text primary key, n integer not null)`.execute(db);
  });
  afterEach(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (id: string, n: number) => (tx: Db) =>
    sql`insert into events (id, n) values (${id}, ${n})`.execute(tx).then(() => id);
  /** What another connection (another process, after a crash) sees on disk. */
  const onDisk = (): string[] => {
    const other = new SqliteDatabase(file, { readonly: true });
    try {
      return (other.prepare('select id from events order by id').all() as { id: string }[]).map((r) => r.id);
    } finally {
      other.close();
    }
  };

  it('events submitted together share commits, and each settles only when it is on disk', async () => {
    const sizes: number[] = [];
    const group = createGroupCommit(db, { onCommit: (n) => sizes.push(n) });
    const seenAtSettle: boolean[] = [];
    const ids = Array.from({ length: 40 }, (_, i) => `e${String(i).padStart(2, '0')}`);
    await Promise.all(
      ids.map((id, i) =>
        group.submit(insert(id, i)).then((got) => {
          expect(got).toBe(id);
          seenAtSettle.push(onDisk().includes(id));
        }),
      ),
    );
    expect(seenAtSettle).toEqual(ids.map(() => true));
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(40);
    expect(sizes.length).toBeLessThan(40);
    expect(onDisk()).toEqual(ids);
  });

  it('an event that fails is rolled back alone; the others in its group commit', async () => {
    const group = createGroupCommit(db);
    const results = await Promise.allSettled([
      group.submit(insert('a', 1)),
      group.submit(async (tx) => {
        await insert('b', 2)(tx);
        throw new Error('bad event');
      }),
      // A constraint error from the database itself, after the row it collides with.
      group.submit(insert('a', 3)),
      group.submit(insert('c', 4)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('bad event');
    expect(String((results[2] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(onDisk()).toEqual(['a', 'c']);
    const n = await sql<{ n: number }>`select n from events where id = 'a'`.execute(db);
    expect(n.rows[0]!.n).toBe(1);
  });

  it("state held until an event ends is that event's own, written at its end, and gone with its rollback", async () => {
    const group = createGroupCommit(db);
    const owner = {};
    // Each event holds rows and writes them, as one statement, when it ends (like its jobs).
    const holding =
      (ids: string[], fail = false) =>
      async (tx: Db) => {
        for (const id of ids) {
          const held = heldUntilEnd(
            tx,
            owner,
            (): string[] => [],
            async (all) => {
              const values = all.map((x, i) => sql`(${x}, ${i})`);
              await sql`insert into events (id, n) values ${sql.join(values)}`.execute(tx);
            },
          );
          held!.push(id);
        }
        if (fail) throw new Error('bad event');
        expect(onDisk().some((id) => ids.includes(id))).toBe(false); // nothing written yet
      };
    const results = await Promise.allSettled([
      group.submit(holding(['h1', 'h2'])),
      group.submit(holding(['h3'], true)),
      group.submit(holding(['h4', 'h5', 'h6'])),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(onDisk()).toEqual(['h1', 'h2', 'h4', 'h5', 'h6']);
    // Outside a money event there is nothing to hold: the caller writes at once.
    expect(
      heldUntilEnd(
        db,
        owner,
        () => [],
        async () => undefined,
      ),
    ).toBeUndefined();
  });

  describe('replayable events', () => {
    /** An event that counts its runs, writes `id` and may fail after (or before) writing. */
    const runs = new Map<string, number>();
    const hooks: string[] = [];
    const event =
      (id: string, fail?: 'after-writing' | 'before-writing') =>
      async (tx: Db): Promise<string> => {
        runs.set(id, (runs.get(id) ?? 0) + 1);
        if (fail === 'before-writing') {
          await sql`select count(*) from events`.execute(tx);
          throw new Error(`refused ${id}`);
        }
        await insert(id, runs.get(id)!)(tx);
        afterCommit(tx, () => hooks.push(id));
        if (fail === 'after-writing') throw new Error(`failed ${id}`);
        return id;
      };
    beforeEach(() => {
      runs.clear();
      hooks.length = 0;
    });
    const savepoints = () => statements.filter((s) => /^(savepoint|release|rollback to)/.test(s));

    it('run without savepoints', async () => {
      const sizes: number[] = [];
      // These events belong in one group: the time cap (maxOpenMs) is not what is tested here, and a
      // busy box must not split the group because a statement was slow to compile.
      const group = createGroupCommit(db, { maxOpenMs: 60_000, onCommit: (n) => sizes.push(n) });
      const ids = ['r1', 'r2', 'r3', 'r4'];
      await Promise.all(ids.map((id) => group.submit(event(id), { replayable: true })));
      expect(sizes).toEqual([4]);
      expect(savepoints()).toEqual([]);
      expect(onDisk()).toEqual(ids);
      expect(hooks).toEqual(ids);
      expect([...runs.values()]).toEqual([1, 1, 1, 1]);
    });

    it('one that fails after writing fails alone: the ones before it run again, once committed', async () => {
      const sizes: number[] = [];
      // These events belong in one group: the time cap (maxOpenMs) is not what is tested here, and a
      // busy box must not split the group because a statement was slow to compile.
      const group = createGroupCommit(db, { maxOpenMs: 60_000, onCommit: (n) => sizes.push(n) });
      const results = await Promise.allSettled([
        group.submit(event('a1'), { replayable: true }),
        group.submit(event('a2'), { replayable: true }),
        group.submit(event('a3', 'after-writing'), { replayable: true }),
        group.submit(event('a4'), { replayable: true }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      expect((results[2] as PromiseRejectedResult).reason.message).toBe('failed a3');
      expect(onDisk()).toEqual(['a1', 'a2', 'a4']);
      // a1 and a2 ran twice, and what is on disk is their second run; their first run's hooks are gone.
      expect(Object.fromEntries(runs)).toEqual({ a1: 2, a2: 2, a3: 1, a4: 1 });
      const n = await sql<{ id: string; n: number }>`select id, n from events order by id`.execute(db);
      expect(n.rows.map((r) => r.n)).toEqual([2, 2, 1]);
      expect(hooks).toEqual(['a1', 'a2', 'a4']);
      // One commit holds the three; the rolled-back attempt is no commit. Run again, each in its own savepoint.
      expect(sizes).toEqual([3]);
      expect(savepoints().filter((s) => s.startsWith('savepoint'))).toHaveLength(3);
    });

    it('one that fails before writing anything fails alone without undoing the others', async () => {
      const group = createGroupCommit(db);
      const results = await Promise.allSettled([
        group.submit(event('b1'), { replayable: true }),
        group.submit(event('b2', 'before-writing'), { replayable: true }),
        group.submit(event('b3'), { replayable: true }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason.message).toBe('refused b2');
      expect(onDisk()).toEqual(['b1', 'b3']);
      expect(Object.fromEntries(runs)).toEqual({ b1: 1, b2: 1, b3: 1 });
      expect(savepoints()).toEqual([]);
    });

    it('a transaction SQLite ended by itself fails its group, and nothing after it runs outside one', async () => {
      const group = createGroupCommit(db);
      const results = await Promise.allSettled([
        group.submit(event('d1'), { replayable: true }),
        // As SQLite does on some errors (a full disk, an I/O error): the transaction is gone.
        group.submit(
          async (tx) => {
            await sql`rollback`.execute(tx);
            throw new Error('disk full');
          },
          { replayable: true },
        ),
        group.submit(event('d3'), { replayable: true }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason.message).toBe('disk full');
      // d1's write went with the transaction, and it says so; d3 ran in a transaction of its own.
      expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(TransactionEnded);
      expect(onDisk()).toEqual(['d3']);
      expect(hooks).toEqual(['d3']);
    });

    describe('an event that catches the error with which SQLite ended the transaction', () => {
      beforeEach(async () => {
        // RAISE(ROLLBACK) ends the whole transaction, as a full disk or an I/O error does.
        await sql`create table boom (x integer)`.execute(db);
        await sql`create trigger boom_rollback before insert on boom begin select raise(rollback, 'gone'); end`.execute(
          db,
        );
      });
      const boom = (tx: Db) => sql`insert into boom values (1)`.execute(tx).catch(() => undefined);

      for (const [name, after] of [
        ['and goes on writing', (tx: Db) => insert('x2', 2)(tx)],
        ['and returns', async () => 'x2'],
      ] as const)
        it(`${name}: nothing of its group is written outside a transaction, and what is on disk was answered`, async () => {
          const group = createGroupCommit(db);
          const results = await Promise.allSettled([
            group.submit(event('x1'), { replayable: true }),
            group.submit(
              async (tx) => {
                await boom(tx);
                return after(tx);
              },
              { replayable: true },
            ),
            group.submit(event('x3'), { replayable: true }),
          ]);
          expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
          for (const r of results.slice(0, 2))
            expect((r as PromiseRejectedResult).reason).toBeInstanceOf(TransactionEnded);
          // Before, x2 (and x3, in the same group) ran in autocommit: on disk and answered as failed.
          expect(onDisk()).toEqual(['x3']);
          expect(hooks).toEqual(['x3']);
        });
    });

    it('never runs an event that is not replayable twice', async () => {
      const group = createGroupCommit(db);
      const results = await Promise.allSettled([
        group.submit(event('c1'), { replayable: true }),
        group.submit(event('c2')),
        group.submit(event('c3'), { replayable: true }),
        group.submit(event('c4', 'after-writing'), { replayable: true }),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
      expect(onDisk()).toEqual(['c1', 'c2', 'c3']);
      // From c2 on, every event has a savepoint of its own: c4 is rolled back alone, nothing runs again.
      expect(Object.fromEntries(runs)).toEqual({ c1: 1, c2: 1, c3: 1, c4: 1 });
      expect(hooks).toEqual(['c1', 'c2', 'c3']);
    });
  });

  it('an after-commit hook that throws is reported, and every event of its group is answered', async () => {
    const reported: unknown[] = [];
    const group = createGroupCommit(db, { onHookError: (err) => reported.push(err) });
    const results = await Promise.all([
      group.submit(async (tx) => {
        await insert('h1', 1)(tx);
        afterCommit(tx, () => {
          throw new Error('hook failed');
        });
        return 'h1';
      }),
      group.submit(insert('h2', 2)),
    ]);
    expect(results).toEqual(['h1', 'h2']);
    expect(onDisk()).toEqual(['h1', 'h2']);
    expect(reported.map((e) => (e as Error).message)).toEqual(['hook failed']);
    // The group commit goes on.
    await expect(group.submit(insert('h3', 3))).resolves.toBe('h3');
  });

  it('an event that opens another (inGroup inside inGroup) fails at once instead of waiting for ever', async () => {
    // The inner event would wait for the group its own caller holds open: a deadlock on SQLite.
    const nested = inGroup(db, async (tx) => {
      await insert('outer', 1)(tx);
      await inGroup(db, insert('inner', 2));
      return 'outer';
    });
    await expect(nested).rejects.toBeInstanceOf(NestedMoneyEvent);
    // The group goes on: the next event commits, and the failed one left nothing.
    await expect(inGroup(db, insert('after', 3), { replayable: true })).resolves.toBe('after');
    expect(onDisk()).toEqual(['after']);
  });

  it('caps a group at maxUnits events', async () => {
    const sizes: number[] = [];
    const group = createGroupCommit(db, { maxUnits: 5, onCommit: (n) => sizes.push(n) });
    await Promise.all(Array.from({ length: 23 }, (_, i) => group.submit(insert(`x${i}`, i))));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(5);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(23);
  });

  it('fails what waits, without spinning, when the database cannot begin', async () => {
    const group = createGroupCommit(db);
    await db.destroy();
    const results = await Promise.allSettled([group.submit(insert('z', 1)), group.submit(insert('y', 2))]);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(group.waiting).toBe(0);
    // afterEach destroys again: harmless.
  });
});
