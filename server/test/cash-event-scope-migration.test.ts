// Migration 0023_cash_event_scope: a cash eventId is unique per session (cash_inserts) and per
// site and order number (unallocated_cash), no longer per tenant. Rows recorded before it are kept as
// they were, on both engines (SQLite copies both tables into new ones).
import SqliteDatabase from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  PostgresDialect,
  SqliteDialect,
  type DatabaseIntrospector,
  type MigrationProvider,
} from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrationProvider } from '../src/platform/db/migrations.js';
import { SearchPathIntrospector } from '../src/platform/db/search-path-introspector.js';
import { dropSchema, engines, newSchemaName, type Engine } from './harness.js';

const BEFORE = '0022_ledger_balance_slots';

/** The migrations up to `BEFORE`, as a database that ran them before this one shipped. */
function upTo(provider: MigrationProvider): MigrationProvider {
  return {
    getMigrations: async () =>
      Object.fromEntries(Object.entries(await provider.getMigrations()).filter(([name]) => name <= BEFORE)),
  };
}

/**
 * The migrator finds its tables through the introspector: Kioskhub's, which lists the search path's
 * schemas only (Kysely's own fails when another file drops a schema meanwhile).
 */
class SearchPathDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SearchPathIntrospector(db);
  }
}

async function open(engine: Engine): Promise<{ db: Kysely<any>; schema?: string; close(): Promise<void> }> {
  if (engine === 'sqlite') {
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
    return { db, close: () => db.destroy() };
  }
  const schema = newSchemaName();
  const url = process.env['TEST_DATABASE_URL']!;
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`create schema ${schema}`);
  await setup.end();
  const pool = new pg.Pool({ connectionString: url, max: 2, options: `-c search_path=${schema}` });
  const db = new Kysely<any>({ dialect: new SearchPathDialect({ pool }) });
  return {
    db,
    schema,
    close: async () => {
      await db.destroy();
      await dropSchema(schema);
    },
  };
}

describe.each(engines())('migration 0023_cash_event_scope (%s)', (engine: Engine) => {
  it('keeps every recorded insert and unallocated item; eventIds are unique per session and per order', async () => {
    const { db, schema, close } = await open(engine);
    try {
      const provider = migrationProvider(engine);
      const migrator = (p: MigrationProvider) =>
        new Migrator({
          db,
          provider: p,
          allowUnorderedMigrations: true,
          ...(schema ? { migrationTableSchema: schema } : {}),
        });
      expect((await migrator(upTo(provider)).migrateToLatest()).error).toBeUndefined();

      const at = '2026-01-01T00:00:00.000Z';
      await db.insertInto('tenants').values({ id: 't1', name: 'T', created_at: at }).execute();
      const order = (id: string) => ({
        id,
        tenant_id: 't1',
        site_id: 's1',
        order_number: `N-${id}`,
        amount: 25_000,
        currency: 'PHP',
        status: 'CREATED',
        source: 'kiosk',
        created_at: at,
        updated_at: at,
      });
      await db
        .insertInto('orders')
        .values([order('o1'), order('o2')])
        .execute();
      const session = (id: string, orderId: string) => ({
        id,
        tenant_id: 't1',
        site_id: 's1',
        machine_id: 'M1',
        order_id: orderId,
        order_number: `N-${orderId}`,
        total_required_minor: 25_000,
        currency: 'PHP',
        status: 'PENDING',
        refund_due_minor: 0,
        started_at: at,
      });
      await db
        .insertInto('cash_sessions')
        .values([session('s-a', 'o1'), session('s-b', 'o2')])
        .execute();
      const insert = (id: string, sessionId: string, eventId: string | null, amount: number) => ({
        id,
        tenant_id: 't1',
        session_id: sessionId,
        machine_id: 'M1',
        event_id: eventId,
        kind: 'BILL',
        amount_minor: amount,
        recorded_at: at,
      });
      await db
        .insertInto('cash_inserts')
        .values([
          insert('i1', 's-a', 'ev-1', 10_000),
          insert('i2', 's-a', null, 500),
          insert('i3', 's-a', null, 25),
        ])
        .execute();
      const parked = (id: string, orderNumber: string, eventId: string, status = 'OPEN') => ({
        id,
        tenant_id: 't1',
        site_id: 's1',
        machine_id: 'M1',
        order_number: orderNumber,
        event_id: eventId,
        kind: 'COIN',
        amount_minor: 2_000,
        currency: 'PHP',
        reason: 'UNKNOWN_ORDER',
        recorded_at: at,
        status,
      });
      await db
        .insertInto('unallocated_cash')
        .values([
          parked('u1', 'GHOST-1', 'ev-9'),
          { ...parked('u2', 'GHOST-2', 'ev-8', 'KEPT'), resolved_by: 'staff' },
        ])
        .execute();
      // Before: one eventId per tenant.
      await expect(
        db
          .insertInto('cash_inserts')
          .values(insert('x', 's-b', 'ev-1', 1))
          .execute(),
      ).rejects.toThrow();

      const { error, results } = await migrator(provider).migrateToLatest();
      expect(error).toBeUndefined();
      expect(results?.map((r) => [r.migrationName, r.status])).toContainEqual([
        '0023_cash_event_scope',
        'Success',
      ]);

      const inserts = await db.selectFrom('cash_inserts').selectAll().orderBy('id').execute();
      expect(inserts.map((i) => [i.id, i.session_id, i.event_id, Number(i.amount_minor)])).toEqual([
        ['i1', 's-a', 'ev-1', 10_000],
        ['i2', 's-a', null, 500],
        ['i3', 's-a', null, 25],
      ]);
      const items = await db.selectFrom('unallocated_cash').selectAll().orderBy('id').execute();
      expect(items.map((u) => [u.id, u.order_number, u.event_id, u.status, u.resolved_by])).toEqual([
        ['u1', 'GHOST-1', 'ev-9', 'OPEN', null],
        ['u2', 'GHOST-2', 'ev-8', 'KEPT', 'staff'],
      ]);

      // After: the same eventId in another session, or for another order number or site, is a new row…
      await db
        .insertInto('cash_inserts')
        .values(insert('i4', 's-b', 'ev-1', 5_000))
        .execute();
      await db
        .insertInto('unallocated_cash')
        .values([parked('u3', 'GHOST-3', 'ev-9'), { ...parked('u6', 'GHOST-3', 'ev-9'), site_id: 's2' }])
        .execute();
      // …and a repeat within the same session, or the same order number of the site, is still refused.
      await expect(
        db
          .insertInto('cash_inserts')
          .values(insert('i5', 's-b', 'ev-1', 1))
          .execute(),
      ).rejects.toThrow();
      await expect(
        db
          .insertInto('unallocated_cash')
          .values(parked('u4', 'GHOST-3', 'ev-9'))
          .execute(),
      ).rejects.toThrow();
      // An insert still needs its session, and a new item is OPEN unless said otherwise.
      await expect(
        db
          .insertInto('cash_inserts')
          .values(insert('i6', 'nope', 'ev-2', 1))
          .execute(),
      ).rejects.toThrow();
      const { status: _status, ...withoutStatus } = parked('u5', 'GHOST-5', 'ev-5');
      await db.insertInto('unallocated_cash').values(withoutStatus).execute();
      expect(
        (
          await db
            .selectFrom('unallocated_cash')
            .select('status')
            .where('id', '=', 'u5')
            .executeTakeFirstOrThrow()
        ).status,
      ).toBe('OPEN');
    } finally {
      await close();
    }
  });
});
