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

describe('migration 0029_operator_scope', () => {
  it("moves the unmatched-money alerts and audit entries from tenant default to the operator's (*), nothing else", async () => {
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(':memory:') }) });
    const migrator = new Migrator({ db, provider: migrationProvider('sqlite') });
    expect((await migrator.migrateTo('0028_deployment_failure_acknowledged')).error).toBeUndefined();
    const alert = (id: string, tenant: string, kind: string) => ({
      id,
      tenant_id: tenant,
      kind,
      subject_type: 'x',
      subject_id: id,
      message: 'm',
      created_at: '2026-01-01T00:00:00.000Z',
    });
    await db
      .insertInto('alerts')
      .values([
        alert('a1', 'default', 'BANK_CREDIT_UNMATCHED'),
        alert('a2', 'default', 'CARD_REFUND_UNMATCHED'),
        alert('a3', 'default', 'PAYMENT_STUCK'),
        alert('a4', 'acme', 'CARD_REFUND_UNMATCHED'),
      ])
      .execute();
    const audit = (id: string, tenant: string | null, action: string) => ({
      id,
      tenant_id: tenant,
      actor: 'provider:bank',
      action,
      subject_type: 'payment_event',
      subject_id: id,
      at: '2026-01-01T00:00:00.000Z',
    });
    await db
      .insertInto('audit_log')
      .values([audit('u1', 'default', 'payment.unmatched_credit'), audit('u2', 'default', 'payment.refund')])
      .execute();
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const alerts = await db.selectFrom('alerts').select(['id', 'tenant_id']).orderBy('id').execute();
    expect(alerts.map((a) => [a.id, a.tenant_id])).toEqual([
      ['a1', '*'],
      ['a2', '*'],
      ['a3', 'default'],
      ['a4', 'acme'],
    ]);
    const rows = await db.selectFrom('audit_log').select(['id', 'tenant_id']).orderBy('id').execute();
    expect(rows.map((a) => [a.id, a.tenant_id])).toEqual([
      ['u1', '*'],
      ['u2', 'default'],
    ]);
    await db.destroy();
  });
});
