// Migration 0008_ledger moves unallocated cash recorded before it onto the ledger.
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrationProvider } from './migrations.js';

describe('migration 0008_ledger', () => {
  it('posts existing unallocated cash external → unallocated_cash of its site, OPEN', async () => {
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
    const migrator = new Migrator({ db, provider: migrationProvider('sqlite') });
    expect((await migrator.migrateTo('0007_operator')).error).toBeUndefined();
    const parked = (id: string, site: string | null, amount: number, currency: string) => ({
      id,
      tenant_id: 't1',
      site_id: site,
      machine_id: 'M1',
      order_number: `O-${id}`,
      event_id: null,
      kind: 'BILL',
      amount_minor: amount,
      currency,
      reason: 'SESSION_PAID',
      recorded_at: '2026-01-01T00:00:00.000Z',
    });
    await db
      .insertInto('unallocated_cash')
      .values([
        parked('u1', 's1', 5000, 'UGX'),
        parked('u2', 's1', 2000, 'UGX'),
        parked('u3', null, 1250, 'KWD'),
      ])
      .execute();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();

    const accounts = await db
      .selectFrom('ledger_accounts')
      .selectAll()
      .orderBy('kind')
      .orderBy('unit')
      .execute();
    expect(
      accounts.map((a) => [a.owner_type, a.owner_id, a.kind, a.unit, a.balance, a.allow_negative]),
    ).toEqual([
      ['tenant', 't1', 'external', 'KWD', -1250, 1],
      ['tenant', 't1', 'external', 'UGX', -7000, 1],
      ['site', 'default', 'unallocated_cash', 'KWD', 1250, 0],
      ['site', 's1', 'unallocated_cash', 'UGX', 7000, 0],
    ]);
    const entries = await db.selectFrom('ledger_entries').selectAll().execute();
    expect(entries).toHaveLength(6);
    expect(
      entries
        .filter((e) => e.cause_id === 'u1')
        .map((e) => e.amount)
        .sort(),
    ).toEqual([-5000, 5000]);
    const items = await db.selectFrom('unallocated_cash').select(['status', 'resolved_at']).execute();
    expect(items).toEqual(Array(3).fill({ status: 'OPEN', resolved_at: null }));
    await db.destroy();
  });
});

describe('migration 0013_water', () => {
  it('runs on a database that already ran 0014 and 0015 (unordered migrations allowed)', async () => {
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
    const full = migrationProvider('sqlite');
    const without13 = {
      getMigrations: async () => {
        const { '0013_water': _skipped, ...rest } = await full.getMigrations();
        return rest;
      },
    };
    expect((await new Migrator({ db, provider: without13 }).migrateToLatest()).error).toBeUndefined();
    // Kysely refuses a missing earlier migration unless told otherwise, as database.ts does.
    expect((await new Migrator({ db, provider: full }).migrateToLatest()).error).toBeDefined();
    const { error, results } = await new Migrator({
      db,
      provider: full,
      allowUnorderedMigrations: true,
    }).migrateToLatest();
    expect(error).toBeUndefined();
    expect(results?.map((r) => r.migrationName)).toEqual(['0013_water']);
    await db.selectFrom('water_kiosks').selectAll().execute();
    await db.selectFrom('water_dispenses').select('funding').execute();
    await db.destroy();
  });
});
