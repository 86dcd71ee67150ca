// Double-entry ledger (ARCHITECTURE "Payments, ledger and jobs"): every balance change is a
// transfer, two entries summing to zero, written in the caller's transaction with its cause.
// Amounts are integers in the account's unit: minor units of an ISO 4217 currency, or ml.
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { afterCommit, heldUntilEnd } from '../../platform/db/group-commit.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
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

/** What an account is, without its balance (which changes). */
export type AccountRef = Pick<LedgerAccount, 'id' | 'tenantId' | 'kind' | 'unit'>;

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

export function createLedgerService(deps: { db: Db; dialect?: 'sqlite' | 'postgres' }) {
  const repo = createLedgerRepo();
  const ruleOf = (kind: string) => (ACCOUNT_KINDS as Record<string, { allowNegative: boolean }>)[kind];
  // PostgreSQL: the sink kinds' balance changes go to slots (concurrent payments of a site would
  // otherwise queue on its revenue row, each waiting for the one before to commit).
  const slotted = (kind: string) => deps.dialect === 'postgres' && ruleOf(kind)?.allowNegative === true;

  /** Gets or creates an account; safe when two transactions create the same one at once. */
  async function account(
    ex: Executor,
    key: AccountKey & { allowNegative?: boolean },
  ): Promise<LedgerAccount> {
    const found = await repo.findAccount(ex, key);
    if (found) return remember(toAccount(found), found.allow_negative);
    await repo.insertAccountIfAbsent(ex, key, key.allowNegative ?? ruleOf(key.kind)?.allowNegative ?? false);
    const row = await repo.findAccount(ex, key);
    if (!row)
      throw new Error(`ledger account ${key.kind} of ${key.ownerType} ${key.ownerId} was not created`);
    return remember(toAccount(row), row.allow_negative);
  }

  /**
   * Accounts that may go negative (the outside world, a site's revenue) take part in every payment
   * of their site: their change is written last in a money event, just before COMMIT, and on
   * PostgreSQL the sink kinds' change goes to a balance slot rather than the account's row (no
   * transaction waits for another's commit). What an account is never changes (its id is never
   * reused), so the facts are kept here; a balance is never cached.
   */
  const sinks = new Map<string, { tenantId: string; unit: string; slotted: boolean }>();
  function remember(a: LedgerAccount, allowNegative: number | boolean): LedgerAccount {
    if (allowNegative === 1 || allowNegative === true) {
      if (sinks.size >= 10_000) sinks.delete(sinks.keys().next().value!);
      sinks.set(a.id, { tenantId: a.tenantId, unit: a.unit, slotted: slotted(a.kind) });
    }
    return a;
  }
  /**
   * The accounts every payment of a site moves money through (the outside world, the site's
   * revenue): their ids by key, remembered once the transaction that found or created them has
   * committed, so a money event does not look them up again.
   */
  const known = new Map<string, AccountRef>();
  async function knownAccount(ex: Executor, key: AccountKey): Promise<AccountRef> {
    const k = `${key.tenantId}\u0000${key.ownerType}\u0000${key.ownerId}\u0000${key.kind}\u0000${key.unit}`;
    const hit = known.get(k);
    if (hit) return hit;
    const a = await account(ex, key);
    const ref: AccountRef = { id: a.id, tenantId: a.tenantId, kind: a.kind, unit: a.unit };
    afterCommit(ex, () => {
      if (known.size >= 10_000) known.delete(known.keys().next().value!);
      known.set(k, ref);
    });
    return ref;
  }

  const pendingSinks = {};
  type BalanceDelta = { tenantId: string; unit: string; delta: number; slotted: boolean };

  /** Queues a sink's balance change for the end of the money event; false when it must go now. */
  function deferSink(ex: Executor, id: string, change: Omit<BalanceDelta, 'slotted'>): boolean {
    const facts = sinks.get(id);
    if (!facts || facts.tenantId !== change.tenantId || facts.unit !== change.unit) return false;
    const pending = heldUntilEnd(
      ex,
      pendingSinks,
      () => new Map<string, BalanceDelta>(),
      async (changes) => {
        // In account id order, so two transactions never wait on each other crosswise; the event
        // takes one slot number for all its slotted accounts.
        let slot: number | undefined;
        for (const [accountId, c] of [...changes].sort(([a], [b]) => (a < b ? -1 : 1))) {
          if (c.slotted)
            await repo.addToSinkSlot(ex, { id: accountId, delta: c.delta, slot: (slot ??= repo.takeSlot()) });
          else await repo.addToSinkBalance(ex, { id: accountId, ...c });
        }
      },
    );
    if (!pending) return false;
    const before = pending.get(id);
    pending.set(id, { ...change, delta: (before?.delta ?? 0) + change.delta, slotted: facts.slotted });
    return true;
  }

  /** Why a balance update moved nothing: the same errors as checking up front. Always throws. */
  async function refuse(ex: Executor, t: TransferInput, accountId: string): Promise<never> {
    const from = await repo.accountById(ex, t.from, t.tenantId);
    const to = await repo.accountById(ex, t.to, t.tenantId);
    if (!from || !to)
      throw new Error(`ledger account ${from ? t.to : t.from} is not an account of ${t.tenantId}`);
    if (from.unit !== t.unit || to.unit !== t.unit) {
      throw new Error(`a ${t.unit} transfer between ${from.unit} and ${to.unit} accounts`);
    }
    const a = accountId === from.id ? from : to;
    throw new AppError(
      'INVALID_STATE',
      `${a.kind} of ${a.owner_type} ${a.owner_id} holds less than ${t.amount} ${t.unit}; nothing moved`,
    );
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
    // Balances are updated in account id order, so two opposite transfers cannot deadlock. Each
    // update checks the tenant and the unit itself, and the paying side its floor; only a refusal
    // reads the accounts. The floor never refuses money coming in: an account below it (water
    // drawn offline, beyond a hold) takes every credit, even one that leaves it still below.
    const moves = [
      { id: t.from, delta: -t.amount, force: t.overdraw === true },
      { id: t.to, delta: t.amount, force: true },
    ].sort((a, b) => (a.id < b.id ? -1 : 1));
    for (const move of moves) {
      const change = { tenantId: t.tenantId, unit: t.unit, delta: move.delta };
      if (deferSink(ex, move.id, change)) continue;
      if (!(await repo.addToBalance(ex, { id: move.id, ...change }, move.force)))
        await refuse(ex, t, move.id);
    }
    const transferId = newId();
    const createdAt = nowIso();
    const rows: EntryRow[] = [
      { accountId: t.from, amount: -t.amount },
      { accountId: t.to, amount: t.amount },
    ].map((e) => ({
      id: newId(),
      tenant_id: t.tenantId,
      transfer_id: transferId,
      account_id: e.accountId,
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

    /** The tenant's account for the outside world in `unit` (its id; read a balance elsewhere). */
    external: (ex: Executor, tenantId: string, unit: string) =>
      knownAccount(ex, { tenantId, ownerType: 'tenant', ownerId: tenantId, kind: 'external', unit }),

    /** A site's account of `kind` in `unit` (its id; read a balance elsewhere). */
    siteAccount: (ex: Executor, tenantId: string, siteId: string, kind: AccountKind, unit: string) =>
      knownAccount(ex, { tenantId, ownerType: 'site', ownerId: siteId, kind, unit }),

    async listAccounts(tenantId: string | null, filter: AccountFilter) {
      await knownCursor(filter.cursor, (id) => repo.accountById(deps.db, id, tenantId));
      const rows = await repo.listAccounts(deps.db, tenantId, filter);
      return pageOf(rows, filter.limit, toAccount);
    },

    async getAccount(tenantId: string | null, id: string): Promise<LedgerAccount> {
      const row = await repo.accountById(deps.db, id, tenantId);
      if (!row) throw new AppError('NOT_FOUND', `ledger account "${id}" does not exist`);
      return toAccount(row);
    },

    /** The balance of an account, 0 when it does not exist yet (a read never creates one). */
    async balanceOf(ex: Executor, key: AccountKey): Promise<number> {
      const row = await repo.findAccount(ex, key);
      return row ? Number(row.balance) : 0;
    },

    /** Entries of all the accounts of one owner, newest first. */
    async listOwnerEntries(
      owner: { tenantId: string; ownerType: string; ownerId: string },
      page: { cursor?: string; limit: number },
    ) {
      await knownCursor(page.cursor, (id) => repo.entryId(deps.db, id, owner.tenantId, { owner }));
      return pageOf(await repo.listEntriesOfOwner(deps.db, owner, page), page.limit, toEntry);
    },

    /** The entries one cause made so far (e.g. whether an adjustment under a caller's id exists). */
    async entriesOfCause(
      ex: Executor,
      tenantId: string,
      cause: { type: string; id: string },
    ): Promise<LedgerEntry[]> {
      return (await repo.entriesOfCause(ex, tenantId, cause)).map(toEntry);
    },

    async listEntries(tenantId: string | null, accountId: string, page: { cursor?: string; limit: number }) {
      const owner = await repo.accountById(deps.db, accountId, tenantId);
      if (!owner) throw new AppError('NOT_FOUND', `ledger account "${accountId}" does not exist`);
      // A cursor of this account's list: another account's entry is not one (400, never a page).
      await knownCursor(page.cursor, (id) => repo.entryId(deps.db, id, tenantId, { accountId }));
      return pageOf(await repo.listEntries(deps.db, accountId, page), page.limit, toEntry);
    },
  };
}

export type LedgerService = ReturnType<typeof createLedgerService>;
