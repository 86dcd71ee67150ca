// Double-entry ledger (ARCHITECTURE "Payments, ledger and jobs"): every balance change is a
// transfer, two entries summing to zero, written in the caller's transaction with its cause.
// Amounts are integers in the account's unit: minor units of an ISO 4217 currency, or ml.
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import {
  createLedgerRepo,
  type AccountFilter,
  type AccountKey,
  type AccountRow,
  type EntryRow,
} from './ledger.repo.js';

/** The account kinds in use, and whether each may go below zero. */
export const ACCOUNT_KINDS = {
  /** The outside world (per tenant): money comes from and goes back to it. */
  external: { allowNegative: true },
  /** Cash a machine took that no order could use (per site), until staff resolve it. */
  unallocated_cash: { allowNegative: false },
  /** Money the site earned (per site). */
  revenue: { allowNegative: true },
  /** Money owed back to customers (per site). */
  refunds_due: { allowNegative: false },
  /** A customer's prepaid money in one currency (per customer). */
  wallet: { allowNegative: false },
  /** A water customer's prepaid water in ml (per customer); only offline dispensing overdraws it. */
  water_credit: { allowNegative: false },
  /** Water held for approved dispenses not yet settled, in ml (per customer). */
  water_held: { allowNegative: false },
  /** Water sold and dispensed, in ml (per tenant): the counterpart of customers' credit. */
  water_issued: { allowNegative: true },
} as const satisfies Record<string, { allowNegative: boolean }>;
export type AccountKind = keyof typeof ACCOUNT_KINDS;

export interface LedgerAccount {
  id: string;
  tenantId: string;
  ownerType: string;
  ownerId: string;
  kind: string;
  unit: string;
  balance: number;
}

export interface LedgerEntry {
  id: string;
  accountId: string;
  transferId: string;
  amount: number;
  unit: string;
  cause: { type: string; id: string };
  memo?: string;
  createdAt: string;
}

export interface TransferInput {
  tenantId: string;
  /** Account ids (from `account()`). */
  from: string;
  to: string;
  /** Positive integer in `unit`. */
  amount: number;
  unit: string;
  cause: { type: string; id: string };
  memo?: string;
  /**
   * Lets `from` go below zero even when its kind may not (water already dispensed offline): the
   * caller flags it. Never for money.
   */
  overdraw?: boolean;
}

const toAccount = (r: AccountRow): LedgerAccount => ({
  id: r.id,
  tenantId: r.tenant_id,
  ownerType: r.owner_type,
  ownerId: r.owner_id,
  kind: r.kind,
  unit: r.unit,
  balance: Number(r.balance),
});

const toEntry = (r: EntryRow): LedgerEntry => ({
  id: r.id,
  accountId: r.account_id,
  transferId: r.transfer_id,
  amount: Number(r.amount),
  unit: r.unit,
  cause: { type: r.cause_type, id: r.cause_id },
  ...(r.memo !== null ? { memo: r.memo } : {}),
  createdAt: r.created_at,
});

export function createLedgerService(deps: { db: Db }) {
  const repo = createLedgerRepo();

  /** Gets or creates an account; safe when two transactions create the same one at once. */
  async function account(
    ex: Executor,
    key: AccountKey & { allowNegative?: boolean },
  ): Promise<LedgerAccount> {
    const found = await repo.findAccount(ex, key);
    if (found) return toAccount(found);
    const rule = (ACCOUNT_KINDS as Record<string, { allowNegative: boolean }>)[key.kind];
    await repo.insertAccountIfAbsent(ex, key, key.allowNegative ?? rule?.allowNegative ?? false);
    const row = await repo.findAccount(ex, key);
    if (!row)
      throw new Error(`ledger account ${key.kind} of ${key.ownerType} ${key.ownerId} was not created`);
    return toAccount(row);
  }

  /**
   * Moves `amount` from one account to another in the caller's transaction. An account that
   * may not go negative and lacks the amount refuses with INVALID_STATE (roll the caller back).
   */
  async function transfer(
    ex: Executor,
    t: TransferInput,
  ): Promise<{ transferId: string; entries: LedgerEntry[] }> {
    if (!Number.isSafeInteger(t.amount) || t.amount <= 0) {
      throw new Error(`a ledger transfer needs a positive integer amount, not ${t.amount}`);
    }
    if (t.from === t.to) throw new Error('a ledger transfer needs two different accounts');
    const from = await repo.accountById(ex, t.from, t.tenantId);
    const to = await repo.accountById(ex, t.to, t.tenantId);
    if (!from || !to)
      throw new Error(`ledger account ${from ? t.to : t.from} is not an account of ${t.tenantId}`);
    if (from.unit !== t.unit || to.unit !== t.unit) {
      throw new Error(`a ${t.unit} transfer between ${from.unit} and ${to.unit} accounts`);
    }
    // Balances are updated in account id order, so two opposite transfers cannot deadlock.
    const moves = [
      { account: from, delta: -t.amount },
      { account: to, delta: t.amount },
    ].sort((a, b) => (a.account.id < b.account.id ? -1 : 1));
    for (const move of moves) {
      const force = t.overdraw === true && move.account.id === from.id;
      if (!(await repo.addToBalance(ex, move.account.id, move.delta, force))) {
        const a = move.account;
        throw new AppError(
          'INVALID_STATE',
          `${a.kind} of ${a.owner_type} ${a.owner_id} holds less than ${t.amount} ${t.unit}; nothing moved`,
        );
      }
    }
    const transferId = newId();
    const createdAt = nowIso();
    const rows: EntryRow[] = [
      { account: from, amount: -t.amount },
      { account: to, amount: t.amount },
    ].map((e) => ({
      id: newId(),
      tenant_id: t.tenantId,
      transfer_id: transferId,
      account_id: e.account.id,
      amount: e.amount,
      unit: t.unit,
      cause_type: t.cause.type,
      cause_id: t.cause.id,
      memo: t.memo ?? null,
      created_at: createdAt,
    }));
    await repo.insertEntries(ex, rows);
    return { transferId, entries: rows.map(toEntry) };
  }

  return {
    account,
    transfer,

    /** The tenant's account for the outside world in `unit`. */
    external: (ex: Executor, tenantId: string, unit: string) =>
      account(ex, { tenantId, ownerType: 'tenant', ownerId: tenantId, kind: 'external', unit }),

    /** A site's account of `kind` in `unit`. */
    siteAccount: (ex: Executor, tenantId: string, siteId: string, kind: AccountKind, unit: string) =>
      account(ex, { tenantId, ownerType: 'site', ownerId: siteId, kind, unit }),

    async listAccounts(tenantId: string | null, filter: AccountFilter) {
      const rows = await repo.listAccounts(deps.db, tenantId, filter);
      const page = rows.slice(0, filter.limit);
      return {
        items: page.map(toAccount),
        nextCursor: rows.length > filter.limit ? (page.at(-1)?.id ?? null) : null,
      };
    },

    async getAccount(tenantId: string | null, id: string): Promise<LedgerAccount> {
      const row = await repo.accountById(deps.db, id, tenantId);
      if (!row) throw new AppError('NOT_FOUND', `ledger account "${id}" does not exist`);
      return toAccount(row);
    },

    async listEntries(tenantId: string | null, accountId: string, page: { cursor?: string; limit: number }) {
      const owner = await repo.accountById(deps.db, accountId, tenantId);
      if (!owner) throw new AppError('NOT_FOUND', `ledger account "${accountId}" does not exist`);
      const rows = await repo.listEntries(deps.db, accountId, page);
      const items = rows.slice(0, page.limit);
      return {
        items: items.map(toEntry),
        nextCursor: rows.length > page.limit ? (items.at(-1)?.id ?? null) : null,
      };
    },
  };
}

export type LedgerService = ReturnType<typeof createLedgerService>;
