// Review 4 of the ledger reads, reports and exports an operator reconciles money with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';
import { addWaterCustomer } from './water-fixtures.js';

describe.each(engines())('reports review 4 (%s)', (engine) => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  const transferAll = async (moves: [string, string, number][], unit: string) => {
    const { ledger } = server.kioskhub.services;
    let n = 0;
    for (const [from, to, amount] of moves) {
      await server.kioskhub.db.transaction().execute((tx) =>
        ledger.transfer(tx, {
          tenantId: 'default',
          from,
          to,
          amount,
          unit,
          cause: { type: 'test', id: `r4-${++n}` },
        }),
      );
    }
  };

  // docs/api.md §1: "On the lists of orders …, payments, ledger accounts and entries, … a `cursor`
  // that is not a `nextCursor` of that list for the same caller (a made-up text, another tenant's
  // row, another list's id) answers `400 VALIDATION_FAILED` (`details: {cursor}`), never a page."
  it('an entry of another ledger account is not a cursor of this account’s entries', async () => {
    const { ledger } = server.kioskhub.services;
    const [ext, cash, revenue] = await server.kioskhub.db
      .transaction()
      .execute(async (tx) => [
        await ledger.external(tx, 'default', 'UGX'),
        await ledger.siteAccount(tx, 'default', 'r4site', 'unallocated_cash', 'UGX'),
        await ledger.siteAccount(tx, 'default', 'r4site', 'revenue', 'UGX'),
      ]);
    await transferAll(
      [
        [ext.id, cash.id, 5000],
        [ext.id, cash.id, 7000],
        [cash.id, revenue.id, 3000],
        [ext.id, revenue.id, 1000],
      ],
      'UGX',
    );
    // The newest entry of the external account (on no entry list of `cash`).
    const extEntries = await server.request('GET', `/v1/ledger/accounts/${ext.id}/entries?limit=1`);
    expect(extEntries.status).toBe(200);
    const foreign = extEntries.body.items[0].id as string;
    const res = await server.request(
      'GET',
      `/v1/ledger/accounts/${cash.id}/entries?limit=1&cursor=${foreign}`,
    );
    expect({ status: res.status, body: res.body }).toMatchObject({
      status: 400,
      body: { error: { code: 'VALIDATION_FAILED', details: { cursor: foreign } } },
    });
  });

  it('an entry of another customer is not a cursor of this customer’s ledger', async () => {
    const phone = () => `+2547${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;
    const a = await addWaterCustomer(server, { phone: phone(), pin: null, creditMl: 5_000 });
    const b = await addWaterCustomer(server, { phone: phone(), pin: null, creditMl: 7_000 });
    const bEntries = await server.request('GET', `/v1/customers/${b.id}/ledger?limit=1`);
    expect(bEntries.status).toBe(200);
    const foreign = bEntries.body.items[0].id as string;
    const res = await server.request('GET', `/v1/customers/${a.id}/ledger?limit=1&cursor=${foreign}`);
    expect({ status: res.status, body: res.body }).toMatchObject({
      status: 400,
      body: { error: { code: 'VALIDATION_FAILED', details: { cursor: foreign } } },
    });
    // Its own entries' ids still walk its list.
    const own = await server.request('GET', `/v1/customers/${a.id}/ledger?limit=1`);
    expect(own.status).toBe(200);
  });
});
