// The ledger's invariants, checked by the ledger and cash tests against the real database.
import type { Executor } from '../src/platform/db/database.js';

/**
 * Every account's cached balance (its row's plus its balance slots', PostgreSQL's sink accounts)
 * against the sum of its entries, and each unit's total.
 */
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
  const slots = await db
    .selectFrom('ledger_balance_slots')
    .select(['account_id', (eb) => eb.fn.sum<number>('delta').as('delta')])
    .groupBy('account_id')
    .execute();
  const inSlots = new Map(slots.map((s) => [s.account_id, Number(s.delta)]));
  const drift = sums.filter((r) => Number(r.balance) + (inSlots.get(r.id) ?? 0) !== Number(r.total));
  const perUnit = await db
    .selectFrom('ledger_entries')
    .select(['unit', (eb) => eb.fn.sum<number>('amount').as('total')])
    .groupBy('unit')
    .execute();
  return { drift, units: perUnit.filter((r) => Number(r.total) !== 0) };
}
