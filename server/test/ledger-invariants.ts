// The ledger's invariants, checked by the ledger and cash tests against the real database.
import type { Executor } from '../src/platform/db/database.js';

/** Every account's cached balance against the sum of its entries, and each unit's total. */
export async function ledgerInvariants(db: Executor): Promise<{ drift: unknown[]; units: unknown[] }> {
  const sums = await db
    .selectFrom('ledger_accounts as a')
    .leftJoin('ledger_entries as e', 'e.account_id', 'a.id')
    .select([
      'a.id',
      'a.balance',
      (eb) => eb.fn.coalesce(eb.fn.sum<number>('e.amount'), eb.val(0)).as('total'),
    ])
    .groupBy(['a.id', 'a.balance'])
    .execute();
  const drift = sums.filter((r) => Number(r.balance) !== Number(r.total));
  const perUnit = await db
    .selectFrom('ledger_entries')
    .select(['unit', (eb) => eb.fn.sum<number>('amount').as('total')])
    .groupBy('unit')
    .execute();
  return { drift, units: perUnit.filter((r) => Number(r.total) !== 0) };
}
