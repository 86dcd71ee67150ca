// What staff (admin, customer_service) do to water customers: look them up, register them, change
// their status, limits and sites, reset or unlock their PIN, adjust their credit and subscription.
// Every change is one transaction with its audit row (actor, reason, before, after) and a
// `customer_updated` live event to the tenant room. A PIN is never returned, logged or audited,
// except the new PIN of a reset when no SMS provider can deliver it (answered once).
import { randomInt } from 'node:crypto';
import { LIVE_EVENTS, type CustomerView } from '@kioskhub/protocol';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { CustomerRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Sms } from '../messaging/sms.js';
import { homeSite, usedTodayMl } from '../water/usage.js';
import { toCustomerBase, type CustomersService } from './customers.service.js';
import { subscriptionRunChange } from './subscription-run.js';

const DAY_MS = 86_400_000;

/** A customer as staff see it (CONTRACTS.md §11): `CustomerView` of @kioskhub/protocol. */
export type { CustomerView };

export interface CustomerChanges {
  fullName?: string | null;
  active?: boolean;
  dailyLimitMl?: number | null;
  siteIds?: string[];
}

export interface CustomersStaffDeps {
  db: Db;
  customers: Pick<CustomersService, 'get' | 'create' | 'setPin' | 'search' | 'repo'>;
  ledger: Pick<LedgerService, 'account' | 'transfer' | 'balanceOf' | 'listOwnerEntries' | 'entriesOfCause'>;
  sms: Pick<Sms, 'queue' | 'configured'>;
  siteExists(tenantId: string, siteId: string, ex?: Executor): Promise<boolean>;
  now?: () => number;
}

export function createCustomersStaff(deps: CustomersStaffDeps) {
  const { db, customers } = deps;
  const now = deps.now ?? Date.now;

  const creditKey = (c: CustomerRow) => ({
    tenantId: c.tenant_id,
    ownerType: 'customer',
    ownerId: c.id,
    kind: 'water_credit',
    unit: 'ml',
  });

  async function view(row: CustomerRow, ex: Executor = db): Promise<CustomerView> {
    const { tenantId: _tenant, ...base } = toCustomerBase(row, now());
    return {
      ...base,
      creditsMl: await deps.ledger.balanceOf(ex, creditKey(row)),
      usedTodayMl: await usedTodayMl(ex, row.tenant_id, row.id, homeSite(row), new Date(now())),
    };
  }

  async function checkSites(tenantId: string, siteIds: string[], ex: Executor): Promise<void> {
    for (const siteId of new Set(siteIds)) {
      if (!(await deps.siteExists(tenantId, siteId, ex))) {
        throw validation(`site "${siteId}" does not exist`);
      }
    }
  }

  /** Audit row and live event of one staff change, in its transaction. */
  async function changed(
    ex: Executor,
    c: CustomerRow,
    change: { actor: string; action: string; reason?: string | undefined; before?: unknown; after?: unknown },
  ): Promise<void> {
    await recordAudit(ex, {
      tenantId: c.tenant_id,
      actor: change.actor,
      action: change.action,
      subjectType: 'customer',
      subjectId: c.id,
      ...(change.before !== undefined ? { before: change.before } : {}),
      after: { ...(change.after as object | undefined), ...(change.reason ? { reason: change.reason } : {}) },
    });
    await enqueueOutbox(ex, 'live', {
      tenantId: c.tenant_id,
      rooms: [`tenant:${c.tenant_id}`],
      event: LIVE_EVENTS.customerUpdated,
      data: { tenantId: c.tenant_id, customerId: c.id, reason: change.action.replace(/^customer\./, '') },
    });
  }

  /** Runs `work` on the customer row locked for this transaction (PostgreSQL; SQLite has one writer). */
  function withCustomer<T>(
    tenantId: string | null,
    id: string,
    work: (tx: Executor, c: CustomerRow) => Promise<T>,
  ): Promise<T> {
    return db.transaction().execute(async (tx) => {
      const locked = await tx
        .updateTable('customers')
        .set({ updated_at: nowIso() })
        .where('id', '=', id)
        .$if(tenantId !== null, (q) => q.where('tenant_id', '=', tenantId!))
        .returningAll()
        .executeTakeFirst();
      if (!locked) throw notFound('customer', id);
      return work(tx, locked);
    });
  }

  return {
    view,

    /** The customer's row (another tenant's is "not found"). */
    row: (tenantId: string | null, id: string): Promise<CustomerRow> => customers.get(tenantId, id),

    async get(tenantId: string | null, id: string): Promise<CustomerView> {
      return view(await customers.get(tenantId, id));
    },

    async list(tenantId: string | null, q: { query?: string; cursor?: string; limit: number }) {
      const page = await customers.search(tenantId, q);
      const items: CustomerView[] = [];
      for (const row of page.rows) items.push(await view(row));
      return { items, nextCursor: page.nextCursor };
    },

    async register(
      input: {
        tenantId: string;
        phone: string;
        fullName?: string | null;
        pin?: string;
        siteIds?: string[];
        reason?: string;
      },
      actor: string,
    ): Promise<CustomerView> {
      const row = await db.transaction().execute(async (tx) => {
        if (input.siteIds) await checkSites(input.tenantId, input.siteIds, tx);
        let c = await customers.create(
          {
            tenantId: input.tenantId,
            phone: input.phone,
            ...(input.fullName !== undefined ? { fullName: input.fullName } : {}),
            ...(input.siteIds ? { siteIds: [...new Set(input.siteIds)] } : {}),
            actor,
          },
          tx,
        );
        if (input.pin !== undefined) c = await customers.setPin(c, input.pin, actor, tx, input.reason);
        await changed(tx, c, { actor, action: 'customer.registered_by_staff', reason: input.reason });
        return c;
      });
      return view(row);
    },

    async update(
      tenantId: string | null,
      id: string,
      changes: CustomerChanges,
      actor: string,
      reason?: string,
    ): Promise<CustomerView> {
      const row = await withCustomer(tenantId, id, async (tx, c) => {
        if (changes.siteIds) await checkSites(c.tenant_id, changes.siteIds, tx);
        const before = toCustomerBase(c, now());
        const set: Partial<CustomerRow> = { updated_at: nowIso() };
        if (changes.fullName !== undefined) set.full_name = changes.fullName;
        if (changes.active !== undefined) set.active = changes.active ? 1 : 0;
        if (changes.dailyLimitMl !== undefined) set.daily_limit_ml = changes.dailyLimitMl;
        if (changes.siteIds !== undefined) set.site_ids = JSON.stringify([...new Set(changes.siteIds)]);
        const updated = (await customers.repo.update(c.id, set, tx))!;
        const after = toCustomerBase(updated, now());
        const pick = (b: typeof before) =>
          Object.fromEntries(Object.keys(changes).map((k) => [k, b[k as keyof typeof b]]));
        await changed(tx, c, {
          actor,
          action: 'customer.updated',
          reason,
          before: pick(before),
          after: pick(after),
        });
        return updated;
      });
      return view(row);
    },

    /**
     * A new random PIN, sent by SMS. Without an SMS provider the PIN is in the answer (once) for
     * staff to pass on; it is never stored anywhere but as its hash.
     */
    async resetPin(
      tenantId: string | null,
      id: string,
      actor: string,
      reason?: string,
    ): Promise<{ sent: true } | { sent: false; pin: string }> {
      const pin = String(randomInt(10_000)).padStart(4, '0');
      await withCustomer(tenantId, id, async (tx, c) => {
        await customers.setPin(c, pin, actor, tx);
        await deps.sms.queue(tx, {
          tenantId: c.tenant_id,
          to: c.phone,
          text: `Your new water kiosk PIN is ${pin}. Keep it secret.`,
          kind: 'pin_reset',
        });
        await changed(tx, c, {
          actor,
          action: 'customer.pin_reset',
          reason,
          after: { sent: deps.sms.configured },
        });
      });
      return deps.sms.configured ? { sent: true } : { sent: false, pin };
    },

    async unlock(tenantId: string | null, id: string, actor: string, reason?: string): Promise<CustomerView> {
      const row = await withCustomer(tenantId, id, async (tx, c) => {
        const updated = (await customers.repo.update(
          c.id,
          { pin_failures: 0, pin_locked_until: null, updated_at: nowIso() },
          tx,
        ))!;
        await changed(tx, c, {
          actor,
          action: 'customer.unlocked',
          reason,
          before: { pinLockedUntil: c.pin_locked_until, pinFailures: c.pin_failures },
        });
        return updated;
      });
      return view(row);
    },

    /**
     * Adds (positive) or takes (negative) credit: one entry pair with the tenant's water_issued.
     * `clientId` (the caller's adjustmentId) makes it safe to send again: an adjustment of this
     * customer under that id is not made twice, and the same id for another amount is refused.
     */
    async adjustCredit(
      tenantId: string | null,
      id: string,
      deltaMl: number,
      actor: string,
      reason: string,
      clientId?: string,
    ): Promise<CustomerView> {
      if (!Number.isSafeInteger(deltaMl) || deltaMl === 0) {
        throw validation('deltaMl is a non-zero whole number of millilitres');
      }
      const row = await withCustomer(tenantId, id, async (tx, c) => {
        const credit = await deps.ledger.account(tx, creditKey(c));
        const issued = await deps.ledger.account(tx, {
          tenantId: c.tenant_id,
          ownerType: 'tenant',
          ownerId: c.tenant_id,
          kind: 'water_issued',
          unit: 'ml',
        });
        const adjustmentId = clientId === undefined ? newId() : `${c.id}:${clientId}`;
        if (clientId !== undefined) {
          const earlier = (
            await deps.ledger.entriesOfCause(tx, c.tenant_id, { type: 'staff_adjustment', id: adjustmentId })
          ).find((e) => e.accountId === credit.id);
          if (earlier && Number(earlier.amount) === deltaMl) return c; // made already: nothing again
          if (earlier)
            throw new AppError(
              'CONFLICT',
              `adjustmentId "${clientId}" was used for ${Number(earlier.amount)} ml on this customer, not ${deltaMl} ml; send a new adjustmentId`,
            );
        }
        if (deltaMl < 0 && credit.balance < -deltaMl) {
          throw new AppError(
            'INSUFFICIENT_CREDIT',
            `the customer has ${credit.balance} ml of credit; ${-deltaMl} ml cannot be taken`,
          );
        }
        await deps.ledger.transfer(tx, {
          tenantId: c.tenant_id,
          from: deltaMl > 0 ? issued.id : credit.id,
          to: deltaMl > 0 ? credit.id : issued.id,
          amount: Math.abs(deltaMl),
          unit: 'ml',
          cause: { type: 'staff_adjustment', id: adjustmentId },
          memo: reason.slice(0, 200),
        });
        await changed(tx, c, {
          actor,
          action: 'customer.credit_adjusted',
          reason,
          before: { creditsMl: credit.balance },
          after: { creditsMl: credit.balance + deltaMl, deltaMl, adjustmentId },
        });
        return c;
      });
      return view(row);
    },

    /**
     * Sets the subscription: `expiresAt` as given, or (a plan and no date) extended from
     * max(now, current expiry) by the plan's days; `expiresAt: null` ends it.
     */
    async setSubscription(
      tenantId: string | null,
      id: string,
      input: { planId?: string; expiresAt?: string | null },
      actor: string,
      reason?: string,
    ): Promise<CustomerView> {
      if (input.planId === undefined && input.expiresAt === undefined) {
        throw validation('name a planId (extends by its days) or an expiresAt (null ends the subscription)');
      }
      const row = await withCustomer(tenantId, id, async (tx, c) => {
        const set: Partial<CustomerRow> = { updated_at: nowIso() };
        // A plan named is checked first, whatever else the request says: a rejected request
        // (an unknown plan) must not end the subscription it came with.
        const plan = input.planId ? await customers.repo.plan(c.tenant_id, input.planId, tx) : undefined;
        if (input.planId && !plan) throw validation(`plan "${input.planId}" does not exist`);
        if (input.expiresAt === null) {
          set.subscription_plan_id = null;
          set.subscription_expires_at = null;
          Object.assign(set, subscriptionRunChange(c, null, now()));
        } else {
          let expiresAt: string;
          if (input.expiresAt !== undefined) {
            const at = Date.parse(input.expiresAt);
            if (Number.isNaN(at)) throw validation('expiresAt is not a date-time');
            expiresAt = new Date(at).toISOString();
          } else {
            const days = plan?.days === null || plan?.days === undefined ? 0 : Number(plan.days);
            if (days <= 0) throw validation(`plan "${input.planId}" is not a subscription (it has no days)`);
            const current = c.subscription_expires_at ? Date.parse(c.subscription_expires_at) : 0;
            expiresAt = new Date(Math.max(now(), current) + days * DAY_MS).toISOString();
          }
          set.subscription_plan_id = plan ? plan.id : c.subscription_plan_id;
          set.subscription_expires_at = expiresAt;
          // Granted while none runs: it starts now (offline water dated earlier is not its).
          Object.assign(set, subscriptionRunChange(c, expiresAt, now()));
          if (plan && plan.daily_limit_ml !== null && input.expiresAt === undefined) {
            set.daily_limit_ml = Number(plan.daily_limit_ml);
          }
        }
        const updated = (await customers.repo.update(c.id, set, tx))!;
        const limitChanged = updated.daily_limit_ml !== c.daily_limit_ml;
        await changed(tx, c, {
          actor,
          action: 'customer.subscription_set',
          reason,
          before: {
            planId: c.subscription_plan_id,
            expiresAt: c.subscription_expires_at,
            ...(limitChanged ? { dailyLimitMl: c.daily_limit_ml } : {}),
          },
          after: {
            planId: updated.subscription_plan_id,
            expiresAt: updated.subscription_expires_at,
            startedAt: updated.subscription_started_at,
            ...(limitChanged ? { dailyLimitMl: updated.daily_limit_ml } : {}),
          },
        });
        return updated;
      });
      return view(row);
    },

    async ledgerEntries(tenantId: string | null, id: string, page: { cursor?: string; limit: number }) {
      const c = await customers.get(tenantId, id);
      return deps.ledger.listOwnerEntries(
        { tenantId: c.tenant_id, ownerType: 'customer', ownerId: c.id },
        page,
      );
    },
  };
}

export type CustomersStaff = ReturnType<typeof createCustomersStaff>;
