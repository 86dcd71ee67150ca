// Storage of ledger accounts and entries. Only the ledger service calls this.
import { randomInt } from 'node:crypto';
import { sql, type ExpressionBuilder, type SelectQueryBuilder } from 'kysely';
import { compiled, insertRows } from '../../platform/db/compiled.js';
import { nowIso, type Executor, newId } from '../../platform/db/database.js';
import type { Database, LedgerAccountsTable, LedgerEntriesTable } from '../../platform/db/schema.js';

export type AccountRow = LedgerAccountsTable;
export type EntryRow = LedgerEntriesTable;

export interface AccountKey {
  tenantId: string;
  ownerType: string;
  ownerId: string;
  kind: string;
  unit: string;
}

export interface AccountFilter {
  ownerType?: string;
  ownerId?: string;
  kind?: string;
  unit?: string;
  cursor?: string;
  limit: number;
}

/**
 * An account's balance: its row's, plus what its slots hold (PostgreSQL's sink accounts; no slot
 * on SQLite, where one writer never queues).
 */
const balanceOf = (eb: ExpressionBuilder<Database, 'ledger_accounts'>) =>
  sql<number>`${eb.ref('ledger_accounts.balance')} + coalesce((select cast(sum(s.delta) as bigint) from ledger_balance_slots s where s.account_id = ${eb.ref('ledger_accounts.id')}), 0)`.as(
    'balance',
  );
/** Every column of the accounts, the balance with its slots. */
const withBalance = <O>(q: SelectQueryBuilder<Database, 'ledger_accounts', O>) =>
  q.select([
    'id',
    'tenant_id',
    'owner_type',
    'owner_id',
    'kind',
    'unit',
    'allow_negative',
    'created_at',
    balanceOf,
  ]);

// Every payment moves money between two accounts: these run on each one, compiled once.
const accountByKey = compiled((ex, p: AccountKey) =>
  withBalance(ex.selectFrom('ledger_accounts'))
    .where('tenant_id', '=', p.tenantId)
    .where('owner_type', '=', p.ownerType)
    .where('owner_id', '=', p.ownerId)
    .where('kind', '=', p.kind)
    .where('unit', '=', p.unit),
);
type BalanceChange = { id: string; tenantId: string; unit: string; delta: number };
const addChecked = compiled((ex, p: BalanceChange) =>
  ex
    .updateTable('ledger_accounts')
    .set((eb) => ({ balance: eb('balance', '+', p.delta) }))
    .where('id', '=', p.id)
    .where('tenant_id', '=', p.tenantId)
    .where('unit', '=', p.unit)
    .where((eb) => eb.or([eb('allow_negative', '=', 1), eb(eb('balance', '+', p.delta), '>=', 0)])),
);
const addForced = compiled((ex, p: BalanceChange) =>
  ex
    .updateTable('ledger_accounts')
    .set((eb) => ({ balance: eb('balance', '+', p.delta) }))
    .where('id', '=', p.id)
    .where('tenant_id', '=', p.tenantId)
    .where('unit', '=', p.unit),
);
const insertEntryRows = insertRows('ledger_entries');

/** Slots per sink account: enough that a process's concurrent transactions each find a free one. */
const BALANCE_SLOTS = 64;
const addToSlot = compiled((ex, p: { accountId: string; slot: number; delta: number }) =>
  ex
    .insertInto('ledger_balance_slots')
    .values({ account_id: p.accountId, slot: p.slot, delta: p.delta })
    .onConflict((oc) =>
      oc
        .columns(['account_id', 'slot'])
        .doUpdateSet((eb) => ({ delta: eb('ledger_balance_slots.delta', '+', eb.ref('excluded.delta')) })),
    ),
);

export function createLedgerRepo() {
  // Consecutive transactions of this process take consecutive slots, from a random start (other
  // processes start elsewhere): the transactions in flight at once each have a slot of their own.
  let nextSlot = randomInt(BALANCE_SLOTS);
  return {
    findAccount(ex: Executor, key: AccountKey): Promise<AccountRow | undefined> {
      return accountByKey.first(ex, key);
    },

    /** Inserts the account unless it exists (a concurrent creator may win; nothing is raised). */
    async insertAccountIfAbsent(ex: Executor, key: AccountKey, allowNegative: boolean): Promise<void> {
      await ex
        .insertInto('ledger_accounts')
        .values({
          id: newId(),
          tenant_id: key.tenantId,
          owner_type: key.ownerType,
          owner_id: key.ownerId,
          kind: key.kind,
          unit: key.unit,
          balance: 0,
          allow_negative: allowNegative ? 1 : 0,
          created_at: nowIso(),
        })
        .onConflict((oc) => oc.columns(['tenant_id', 'owner_type', 'owner_id', 'kind', 'unit']).doNothing())
        .execute();
    },

    accountById(ex: Executor, id: string, tenantId: string | null): Promise<AccountRow | undefined> {
      let q = withBalance(ex.selectFrom('ledger_accounts')).where('id', '=', id);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return q.executeTakeFirst();
    },

    /**
     * The entry, if it is one of the list a cursor walks: of `tenantId` (null: any), and of one
     * account (`accountId`) or of one owner's accounts (`owner`).
     */
    entryId(
      ex: Executor,
      id: string,
      tenantId: string | null,
      of: { accountId: string } | { owner: { tenantId: string; ownerType: string; ownerId: string } },
    ): Promise<{ id: string } | undefined> {
      let q = ex.selectFrom('ledger_entries').select('id').where('id', '=', id);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if ('accountId' in of) q = q.where('account_id', '=', of.accountId);
      else
        q = q.where('account_id', 'in', (eb) =>
          eb
            .selectFrom('ledger_accounts')
            .select('id')
            .where('tenant_id', '=', of.owner.tenantId)
            .where('owner_type', '=', of.owner.ownerType)
            .where('owner_id', '=', of.owner.ownerId),
        );
      return q.executeTakeFirst();
    },

    /**
     * Adds `delta` to the cached balance of the tenant's account in `unit`, unless that would take
     * an account that may not go negative below zero (`force` skips that check); one statement, so
     * concurrent transfers cannot both pass the check. False when no such account moved.
     */
    async addToBalance(ex: Executor, change: BalanceChange, force = false): Promise<boolean> {
      return (await (force ? addForced : addChecked).affected(ex, change)) === 1;
    },

    /**
     * Adds `delta` to an account that may go negative, as the last write of a transaction: on
     * PostgreSQL it travels with the COMMIT's batch; an account that is not there fails it.
     */
    addToSinkBalance(ex: Executor, change: BalanceChange): Promise<void> {
      return addForced.deferredWrite(ex, change, {
        expectRows: 1,
        what: `the balance of ledger account ${change.id}`,
      });
    },

    /** The slot of the next transaction: consecutive ones get consecutive slots. */
    takeSlot(): number {
      const slot = nextSlot;
      nextSlot = (nextSlot + 1) % BALANCE_SLOTS;
      return slot;
    },

    /**
     * Adds `delta` to a sink account's balance slot `slot` (PostgreSQL), as the last write of a
     * transaction: concurrent payments of one site each write a row of their own, where updating
     * the account's row would make each wait for the one before to commit.
     */
    addToSinkSlot(ex: Executor, change: { id: string; delta: number; slot: number }): Promise<void> {
      return addToSlot.deferredWrite(
        ex,
        { accountId: change.id, slot: change.slot, delta: change.delta },
        { expectRows: 1, what: `a balance slot of ledger account ${change.id}` },
      );
    },

    async insertEntries(ex: Executor, rows: EntryRow[]): Promise<void> {
      await insertEntryRows(ex, rows);
    },

    listAccounts(ex: Executor, tenantId: string | null, filter: AccountFilter): Promise<AccountRow[]> {
      let q = withBalance(ex.selectFrom('ledger_accounts'))
        .orderBy('id')
        .limit(filter.limit + 1);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if (filter.ownerType !== undefined) q = q.where('owner_type', '=', filter.ownerType);
      if (filter.ownerId !== undefined) q = q.where('owner_id', '=', filter.ownerId);
      if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
      if (filter.unit !== undefined) q = q.where('unit', '=', filter.unit);
      if (filter.cursor !== undefined) q = q.where('id', '>', filter.cursor);
      return q.execute();
    },

    /** An account's entries, newest first (entry ids are time-ordered). */
    /** The entries a cause made (a transfer's pair), in the caller's transaction. */
    entriesOfCause(ex: Executor, tenantId: string, cause: { type: string; id: string }): Promise<EntryRow[]> {
      return ex
        .selectFrom('ledger_entries')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('cause_type', '=', cause.type)
        .where('cause_id', '=', cause.id)
        .orderBy('id')
        .execute();
    },

    listEntries(
      ex: Executor,
      accountId: string,
      page: { cursor?: string; limit: number },
    ): Promise<EntryRow[]> {
      let q = ex
        .selectFrom('ledger_entries')
        .selectAll()
        .where('account_id', '=', accountId)
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      return q.execute();
    },

    /** Entries of every account of one owner (a customer's wallets and credit), newest first. */
    listEntriesOfOwner(
      ex: Executor,
      owner: { tenantId: string; ownerType: string; ownerId: string },
      page: { cursor?: string; limit: number },
    ): Promise<EntryRow[]> {
      let q = ex
        .selectFrom('ledger_entries')
        .selectAll()
        .where('account_id', 'in', (eb) =>
          eb
            .selectFrom('ledger_accounts')
            .select('id')
            .where('tenant_id', '=', owner.tenantId)
            .where('owner_type', '=', owner.ownerType)
            .where('owner_id', '=', owner.ownerId),
        )
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      return q.execute();
    },
  };
}

export type LedgerRepo = ReturnType<typeof createLedgerRepo>;
