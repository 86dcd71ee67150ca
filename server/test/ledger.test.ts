// The ledger against a real database: transfers write two entries summing to zero in the
// caller's transaction, cached balances equal the sum of entries, accounts that may not go
// negative refuse (and the caller's transaction rolls back), and the routes are tenant-scoped.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Executor } from '../src/platform/db/database.js';
import { inGroup } from '../src/platform/db/group-commit.js';
import { engines, type Engine, type TestServer, startServer } from './harness.js';
import { ledgerInvariants } from './ledger-invariants.js';

const PASSWORD = 'correct horse battery';

describe.each(engines())('ledger (%s)', (engine: Engine) => {
  let server: TestServer;
  let otherToken: string;

  beforeAll(async () => {
    server = await startServer({ engine });
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'ledgerco', name: 'Ledger Co' } })).status,
    ).toBe(201);
    const email = 'clerk@ledgerco.example';
    const user = { email, password: PASSWORD, role: 'staff', tenantId: 'ledgerco' };
    expect((await server.request('POST', '/v1/users', { body: user })).status).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      body: { email, password: PASSWORD },
      token: null,
    });
    otherToken = login.body.token as string;
  });
  afterAll(async () => {
    await server?.close();
  });

  const services = () => server.kioskhub.services;
  const db = () => server.kioskhub.db;

  it('a series of transfers keeps every cached balance equal to the sum of its entries', async () => {
    const { ledger } = services();
    const accounts = await db()
      .transaction()
      .execute(async (tx) => ({
        ext: await ledger.external(tx, 'default', 'UGX'),
        cash: await ledger.siteAccount(tx, 'default', 'site-a', 'unallocated_cash', 'UGX'),
        revenue: await ledger.siteAccount(tx, 'default', 'site-a', 'revenue', 'UGX'),
        refunds: await ledger.siteAccount(tx, 'default', 'site-a', 'refunds_due', 'UGX'),
        kwdExt: await ledger.external(tx, 'default', 'KWD'),
        kwdCash: await ledger.siteAccount(tx, 'default', 'site-a', 'unallocated_cash', 'KWD'),
      }));
    const { ext, cash, revenue, refunds, kwdExt, kwdCash } = accounts;
    const moves: [typeof ext, typeof ext, number][] = [
      [ext, cash, 50_000],
      [cash, revenue, 20_000],
      [ext, cash, 1000],
      [cash, refunds, 5000],
      [refunds, ext, 2500],
      [cash, ext, 3000],
      [revenue, ext, 25_000],
      [kwdExt, kwdCash, 1250],
    ];
    let n = 0;
    for (const [from, to, amount] of moves) {
      await db()
        .transaction()
        .execute((tx) =>
          ledger.transfer(tx, {
            tenantId: 'default',
            from: from.id,
            to: to.id,
            amount,
            unit: from.unit,
            cause: { type: 'test', id: `t${++n}` },
          }),
        );
    }
    // Concurrent transfers into and out of the same accounts.
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        db()
          .transaction()
          .execute((tx) =>
            ledger.transfer(tx, {
              tenantId: 'default',
              from: i % 2 ? ext.id : cash.id,
              to: i % 2 ? cash.id : revenue.id,
              amount: 100,
              unit: 'UGX',
              cause: { type: 'test', id: `c${i}` },
            }),
          ),
      ),
    );

    const balance = async (id: string) => (await ledger.getAccount('default', id)).balance;
    expect(await balance(cash.id)).toBe(50_000 - 20_000 + 1000 - 5000 - 3000);
    expect(await balance(revenue.id)).toBe(20_000 - 25_000 + 500);
    expect(await balance(refunds.id)).toBe(2500);
    expect(await balance(ext.id)).toBe(-51_000 + 2500 + 3000 + 25_000 - 500);
    expect(await balance(kwdCash.id)).toBe(1250);
    expect(await ledgerInvariants(db())).toEqual({ drift: [], units: [] });
  });

  it('money events into one site’s revenue at once: exact balances; on PostgreSQL each event adds to a balance slot, not the account row', async () => {
    const { ledger } = services();
    const [ext, revenue] = await db()
      .transaction()
      .execute(async (tx) => [
        await ledger.external(tx, 'default', 'INR'),
        await ledger.siteAccount(tx, 'default', 'site-s', 'revenue', 'INR'),
      ]);
    // 40 payments at once, each a money event (a webhook's transaction), 100 … 139 paise.
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        inGroup(db(), (tx) =>
          ledger.transfer(tx, {
            tenantId: 'default',
            from: ext.id,
            to: revenue.id,
            amount: 100 + i,
            unit: 'INR',
            cause: { type: 'test', id: `s${i}` },
          }),
        ),
      ),
    );
    const total = 40 * 100 + (39 * 40) / 2;
    expect((await ledger.getAccount('default', revenue.id)).balance).toBe(total);
    expect((await ledger.getAccount('default', ext.id)).balance).toBe(-total);
    const listed = await server.request('GET', '/v1/ledger/accounts?ownerId=site-s&kind=revenue&unit=INR');
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([expect.objectContaining({ id: revenue.id, balance: total })]);

    const row = await db()
      .selectFrom('ledger_accounts')
      .select('balance')
      .where('id', '=', revenue.id)
      .executeTakeFirstOrThrow();
    const slots = await db()
      .selectFrom('ledger_balance_slots')
      .select(['slot', 'delta'])
      .where('account_id', '=', revenue.id)
      .execute();
    if (engine === 'postgres') {
      expect(Number(row.balance)).toBe(0);
      expect(slots.length).toBeGreaterThan(1);
      expect(slots.reduce((sum, s) => sum + Number(s.delta), 0)).toBe(total);
      // Each event takes one slot for both its accounts: the outside world mirrors the revenue.
      const extSlots = await db()
        .selectFrom('ledger_balance_slots')
        .select(['slot', 'delta'])
        .where('account_id', '=', ext.id)
        .execute();
      const bySlot = (rows: { slot: number; delta: number }[]) =>
        Object.fromEntries(rows.map((r) => [Number(r.slot), Number(r.delta)]));
      const mirrored = Object.fromEntries(Object.entries(bySlot(slots)).map(([k, v]) => [k, -v]));
      expect(bySlot(extSlots)).toEqual(mirrored);
    } else {
      // One writer: the account row itself, no slot.
      expect(Number(row.balance)).toBe(total);
      expect(slots).toEqual([]);
    }
    expect(await ledgerInvariants(db())).toEqual({ drift: [], units: [] });
  });

  it('an account that may not go negative refuses, and the caller’s transaction rolls back', async () => {
    const { ledger } = services();
    const [ext, cash, revenue] = await db()
      .transaction()
      .execute(async (tx) => [
        await ledger.external(tx, 'default', 'JPY'),
        await ledger.siteAccount(tx, 'default', 'site-b', 'unallocated_cash', 'JPY'),
        await ledger.siteAccount(tx, 'default', 'site-b', 'revenue', 'JPY'),
      ]);
    const move = (from: string, to: string, amount: number, id: string) => (tx: Executor) =>
      ledger.transfer(tx, {
        tenantId: 'default',
        from,
        to,
        amount,
        unit: 'JPY',
        cause: { type: 'test', id },
      });
    await db()
      .transaction()
      .execute(move(ext.id, cash.id, 500, 'in'));
    const refused = db()
      .transaction()
      .execute(async (tx) => {
        await move(ext.id, cash.id, 100, 'ok-then-undone')(tx);
        await move(cash.id, revenue.id, 601, 'too-much')(tx);
      });
    await expect(refused).rejects.toMatchObject({ code: 'INVALID_STATE' });
    expect((await ledger.getAccount('default', cash.id)).balance).toBe(500);
    const causes = await db()
      .selectFrom('ledger_entries')
      .select('cause_id')
      .where('account_id', '=', cash.id)
      .execute();
    expect(causes.map((c) => c.cause_id)).toEqual(['in']);
    // Ten concurrent withdrawals of 100 from 500: exactly five succeed, never below zero.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        db()
          .transaction()
          .execute(move(cash.id, revenue.id, 100, `w${i}`)),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    expect((await ledger.getAccount('default', cash.id)).balance).toBe(0);
    expect(await ledgerInvariants(db())).toEqual({ drift: [], units: [] });
  });

  it('account() is get-or-create, also when many ask at once', async () => {
    const { ledger } = services();
    const key = { tenantId: 'default', ownerType: 'site', ownerId: 'site-c', kind: 'revenue', unit: 'PHP' };
    const ids = await Promise.all(
      Array.from({ length: 8 }, () =>
        db()
          .transaction()
          .execute((tx) => ledger.account(tx, key).then((a) => a.id)),
      ),
    );
    expect(new Set(ids).size).toBe(1);
    const count = await sql<{
      n: number;
    }>`select count(*) as n from ledger_accounts where owner_id = 'site-c'`.execute(db());
    expect(Number(count.rows[0]!.n)).toBe(1);
  });

  it('GET /v1/ledger/accounts and /entries: filtered, paged newest first, tenant-scoped', async () => {
    const list = await server.request(
      'GET',
      '/v1/ledger/accounts?ownerType=site&ownerId=site-a&kind=unallocated_cash',
    );
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect(list.body.items).toHaveLength(2);
    const ugx = list.body.items.find((a: { unit: string }) => a.unit === 'UGX');
    expect(ugx).toEqual({
      id: expect.any(String),
      ownerType: 'site',
      ownerId: 'site-a',
      kind: 'unallocated_cash',
      unit: 'UGX',
      balance: 23_000,
    });

    const first = await server.request('GET', `/v1/ledger/accounts/${ugx.id}/entries?limit=3`);
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(3);
    expect(first.body.items[0]).toEqual({
      id: expect.any(String),
      accountId: ugx.id,
      amount: expect.any(Number),
      unit: 'UGX',
      cause: { type: 'test', id: expect.any(String) },
      createdAt: expect.any(String),
    });
    const all: { id: string; amount: number; cause: { id: string } }[] = [...first.body.items];
    let cursor = first.body.nextCursor as string | null;
    while (cursor) {
      const next = await server.request(
        'GET',
        `/v1/ledger/accounts/${ugx.id}/entries?limit=3&cursor=${cursor}`,
      );
      all.push(...next.body.items);
      cursor = next.body.nextCursor;
    }
    expect(all.reduce((sum, e) => sum + e.amount, 0)).toBe(23_000);
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort().reverse());
    expect(all.at(-1)!.cause.id).toBe('t1');

    // Another tenant sees none of it.
    const theirs = await server.request('GET', '/v1/ledger/accounts', { token: otherToken });
    expect(theirs.body).toEqual({ items: [], nextCursor: null });
    const peek = await server.request('GET', `/v1/ledger/accounts/${ugx.id}/entries`, { token: otherToken });
    expect(peek.status).toBe(404);
    expect(peek.body.error.code).toBe('NOT_FOUND');
  });

  it('bad queries → 400 VALIDATION_FAILED; no credential → 401', async () => {
    for (const path of [
      '/v1/ledger/accounts?limit=0',
      '/v1/ledger/accounts?unit=dollars',
      '/v1/ledger/accounts?x=1',
      '/v1/ledger/accounts/abc/entries?limit=9999',
      '/v1/ledger/accounts/a%20b/entries',
    ]) {
      const res = await server.request('GET', path);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_FAILED');
    }
    expect((await server.request('GET', '/v1/ledger/accounts', { token: null })).status).toBe(401);
  });
});
