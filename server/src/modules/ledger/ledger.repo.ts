// Storage of ledger accounts and entries. Only the ledger service calls this.
import { nowIso, type Executor, newId } from '../../platform/db/database.js';
import type { LedgerAccountsTable, LedgerEntriesTable } from '../../platform/db/schema.js';

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

export function createLedgerRepo() {
  return {
    findAccount(ex: Executor, key: AccountKey): Promise<AccountRow | undefined> {
      return ex
        .selectFrom('ledger_accounts')
        .selectAll()
        .where('tenant_id', '=', key.tenantId)
        .where('owner_type', '=', key.ownerType)
        .where('owner_id', '=', key.ownerId)
        .where('kind', '=', key.kind)
        .where('unit', '=', key.unit)
        .executeTakeFirst();
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
      let q = ex.selectFrom('ledger_accounts').selectAll().where('id', '=', id);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return q.executeTakeFirst();
    },

    /**
     * Adds `delta` to the cached balance unless that would take an account that may not go
     * negative below zero; one statement, so concurrent transfers cannot both pass the check.
     */
    async addToBalance(ex: Executor, accountId: string, delta: number, force = false): Promise<boolean> {
      let q = ex
        .updateTable('ledger_accounts')
        .set((eb) => ({ balance: eb('balance', '+', delta) }))
        .where('id', '=', accountId);
      if (!force) {
        q = q.where((eb) => eb.or([eb('allow_negative', '=', 1), eb(eb('balance', '+', delta), '>=', 0)]));
      }
      const result = await q.executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },

    async insertEntries(ex: Executor, rows: EntryRow[]): Promise<void> {
      await ex.insertInto('ledger_entries').values(rows).execute();
    },

    listAccounts(ex: Executor, tenantId: string | null, filter: AccountFilter): Promise<AccountRow[]> {
      let q = ex
        .selectFrom('ledger_accounts')
        .selectAll()
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
  };
}

export type LedgerRepo = ReturnType<typeof createLedgerRepo>;
