// Customers of a tenant: water customers (phone + PIN, subscription, credit in millilitres) and
// cafe wallet holders (phone + one-time SMS code) are one module. Phone numbers are E.164; PINs
// are argon2id hashes keyed with a server secret, with a lockout; balances are ledger accounts
// (a wallet per currency, water credit in ml). Every change is audited with its actor.
import { randomInt } from 'node:crypto';
import argon2 from 'argon2';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { CustomerRow, PlanRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import type { LedgerAccount, LedgerService } from '../ledger/ledger.service.js';
import type { SettlementHandler } from '../payments/settlement.js';
import { createCustomersRepo } from './customers.repo.js';
import { normalisePhone } from './phone.js';

/** Wrong PINs in a row before the PIN is locked, and for how long. */
export const PIN_MAX_FAILURES = 5;
export const PIN_LOCK_MS = 15 * 60_000;
const PIN_FORMAT = /^\d{4}$/;
/** `TSF` + 6 characters; no 0/O or 1/I, so an account id read over the phone is unambiguous. */
const ACCOUNT_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/**
 * argon2id over the PIN with a per-hash salt and the server's PIN key as argon2's secret: a copy
 * of the database alone does not allow the 10,000-guess search a 4-digit PIN invites. The costs
 * are set for a kiosk that waits on the answer (about 8 ms on one core).
 */
const PIN_HASH_OPTIONS = { type: argon2.argon2id, memoryCost: 8192, timeCost: 2, parallelism: 1 } as const;

export type PinCheck = { ok: true } | { ok: false; code: 'INVALID_PIN' | 'PIN_LOCKED' | 'NOT_REGISTERED' };

export interface CustomerBase {
  id: string;
  tenantId: string;
  accountId: string;
  phone: string;
  fullName: string | null;
  registered: boolean;
  active: boolean;
  subscription: { planId: string | null; expiresAt: string } | null;
  dailyLimitMl: number | null;
  pinLocked: boolean;
  siteIds: string[];
  createdAt: string;
}

export function toCustomerBase(r: CustomerRow, now = Date.now()): CustomerBase {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    accountId: r.account_id,
    phone: r.phone,
    fullName: r.full_name,
    registered: r.pin_hash !== null,
    active: r.active === 1,
    subscription:
      r.subscription_expires_at !== null
        ? { planId: r.subscription_plan_id, expiresAt: r.subscription_expires_at }
        : null,
    dailyLimitMl: r.daily_limit_ml === null ? null : Number(r.daily_limit_ml),
    pinLocked: r.pin_locked_until !== null && Date.parse(r.pin_locked_until) > now,
    siteIds: JSON.parse(r.site_ids) as string[],
    createdAt: r.created_at,
  };
}

export interface CustomersDeps {
  db: Db;
  ledger: LedgerService;
  /** The tenant's calling code for local numbers ("254"), or null. */
  defaultCountryCode(tenantId: string, ex?: Executor): Promise<string | null>;
  /** The key argon2 mixes into every PIN hash (kept out of the database). */
  pinKey: Buffer;
}

export function createCustomersService(deps: CustomersDeps) {
  const { db } = deps;
  const repo = createCustomersRepo(db);
  const hashOptions = { ...PIN_HASH_OPTIONS, secret: deps.pinKey };

  async function phoneOf(tenantId: string, input: string, ex: Executor = db): Promise<string> {
    const phone = normalisePhone(input, await deps.defaultCountryCode(tenantId, ex));
    if (!phone) {
      throw validation(
        `"${input.slice(0, 40)}" is not a phone number (use the international form, e.g. +254712345678)`,
      );
    }
    return phone;
  }

  async function get(tenantId: string | null, id: string, ex: Executor = db): Promise<CustomerRow> {
    const row = await repo.byId(tenantId, id, ex);
    if (!row) throw notFound('customer', id);
    return row;
  }

  async function create(
    input: { tenantId: string; phone: string; fullName?: string | null; siteIds?: string[]; actor: string },
    ex: Executor = db,
  ): Promise<CustomerRow> {
    const phone = await phoneOf(input.tenantId, input.phone, ex);
    const now = nowIso();
    for (let attempt = 0; ; attempt += 1) {
      const row: CustomerRow = {
        id: newId(),
        tenant_id: input.tenantId,
        account_id: newAccountId(),
        phone,
        full_name: input.fullName ?? null,
        active: 1,
        pin_hash: null,
        pin_failures: 0,
        pin_locked_until: null,
        daily_limit_ml: null,
        subscription_plan_id: null,
        subscription_expires_at: null,
        site_ids: JSON.stringify(input.siteIds ?? []),
        created_at: now,
        updated_at: now,
      };
      // `on conflict do nothing`: a clash must not abort the caller's transaction on PostgreSQL.
      const inserted = await repo.insertIfAbsent(row, ex);
      if (!inserted) {
        if (await repo.byPhone(input.tenantId, phone, ex)) {
          throw new AppError('CONFLICT', `a customer with phone ${phone} already exists`);
        }
        if (attempt < 5) continue; // another customer drew the same account id
        throw new Error('could not draw a free account id');
      }
      await recordAudit(ex, {
        tenantId: input.tenantId,
        actor: input.actor,
        action: 'customer.created',
        subjectType: 'customer',
        subjectId: row.id,
        after: { accountId: row.account_id, phone, fullName: row.full_name },
      });
      return row;
    }
  }

  return {
    repo,
    phoneOf,
    get,
    create,

    /** The customer with this phone number (any form), or undefined. */
    async findByPhone(tenantId: string, input: string, ex: Executor = db): Promise<CustomerRow | undefined> {
      const phone = normalisePhone(input, await deps.defaultCountryCode(tenantId, ex));
      return phone ? repo.byPhone(tenantId, phone, ex) : undefined;
    },

    /** The customer with this phone number, created (unregistered) when there is none. */
    async findOrCreate(
      tenantId: string,
      input: string,
      actor: string,
      ex: Executor = db,
    ): Promise<CustomerRow> {
      const phone = await phoneOf(tenantId, input, ex);
      const found = await repo.byPhone(tenantId, phone, ex);
      if (found) return found;
      try {
        return await create({ tenantId, phone, actor }, ex);
      } catch (err) {
        // Two first contacts at once (two USSD sessions, two OTP requests): the other one won.
        if (err instanceof AppError && err.code === 'CONFLICT') {
          const row = await repo.byPhone(tenantId, phone, ex);
          if (row) return row;
        }
        throw err;
      }
    },

    /** Staff search: phone in any form, account id, or part of the name; newest first. */
    async search(tenantId: string | null, q: { query?: string; cursor?: string; limit: number }) {
      const text = q.query?.trim();
      let phone: string | undefined;
      if (text && tenantId !== null) {
        phone = normalisePhone(text, await deps.defaultCountryCode(tenantId)) ?? undefined;
      } else if (text) {
        phone = normalisePhone(text, null) ?? undefined;
      }
      const rows = await repo.search(tenantId, {
        ...(phone !== undefined ? { phone } : {}),
        ...(text ? { text } : {}),
        ...(q.cursor ? { before: q.cursor } : {}),
        limit: q.limit + 1,
      });
      const page = rows.slice(0, q.limit);
      return { rows: page, nextCursor: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null };
    },

    /** Sets (or replaces) the 4-digit PIN, clears any lockout; the PIN itself is never stored. */
    async setPin(
      customer: CustomerRow,
      pin: string,
      actor: string,
      ex: Executor = db,
      reason?: string,
    ): Promise<CustomerRow> {
      if (!PIN_FORMAT.test(pin)) throw validation('a PIN is exactly 4 digits');
      const pinHash = await argon2.hash(pin, hashOptions);
      const updated = await repo.update(
        customer.id,
        { pin_hash: pinHash, pin_failures: 0, pin_locked_until: null, updated_at: nowIso() },
        ex,
      );
      await recordAudit(ex, {
        tenantId: customer.tenant_id,
        actor,
        action: customer.pin_hash === null ? 'customer.pin_set' : 'customer.pin_changed',
        subjectType: 'customer',
        subjectId: customer.id,
        ...(reason ? { after: { reason } } : {}),
      });
      return updated!;
    },

    /**
     * Checks a PIN. Five wrong PINs in a row lock it for 15 minutes; a right one resets the count.
     * Counting is a conditional update, so concurrent guesses cannot slip past the limit.
     */
    async checkPin(customer: CustomerRow, pin: string, ex: Executor = db): Promise<PinCheck> {
      if (customer.pin_hash === null) return { ok: false, code: 'NOT_REGISTERED' };
      const now = Date.now();
      if (customer.pin_locked_until !== null && Date.parse(customer.pin_locked_until) > now) {
        return { ok: false, code: 'PIN_LOCKED' };
      }
      const right =
        PIN_FORMAT.test(pin) && (await argon2.verify(customer.pin_hash, pin, { secret: deps.pinKey }));
      if (right) {
        if (customer.pin_failures !== 0 || customer.pin_locked_until !== null) {
          await repo.update(customer.id, { pin_failures: 0, pin_locked_until: null }, ex);
        }
        return { ok: true };
      }
      const row = await ex
        .updateTable('customers')
        .set((eb) => ({ pin_failures: eb('pin_failures', '+', 1) }))
        .where('id', '=', customer.id)
        .returning(['pin_failures'])
        .executeTakeFirst();
      if (row && row.pin_failures >= PIN_MAX_FAILURES) {
        await repo.update(
          customer.id,
          { pin_failures: 0, pin_locked_until: new Date(now + PIN_LOCK_MS).toISOString() },
          ex,
        );
        await recordAudit(ex, {
          tenantId: customer.tenant_id,
          actor: 'system',
          action: 'customer.pin_locked',
          subjectType: 'customer',
          subjectId: customer.id,
        });
        return { ok: false, code: 'PIN_LOCKED' };
      }
      return { ok: false, code: 'INVALID_PIN' };
    },

    /** A customer's wallet in one currency (never below zero). */
    wallet: (ex: Executor, tenantId: string, customerId: string, currency: string): Promise<LedgerAccount> =>
      deps.ledger.account(ex, {
        tenantId,
        ownerType: 'customer',
        ownerId: customerId,
        kind: 'wallet',
        unit: currency,
      }),

    /** A water customer's prepaid credit in millilitres. */
    waterCredit: (ex: Executor, tenantId: string, customerId: string): Promise<LedgerAccount> =>
      deps.ledger.account(ex, {
        tenantId,
        ownerType: 'customer',
        ownerId: customerId,
        kind: 'water_credit',
        unit: 'ml',
      }),

    plan: (tenantId: string, id: string, ex: Executor = db): Promise<PlanRow | undefined> =>
      repo.plan(tenantId, id, ex),
    plans: (tenantId: string, ex: Executor = db): Promise<PlanRow[]> => repo.plans(tenantId, ex),
  };
}

function newAccountId(): string {
  let id = 'TSF';
  for (let i = 0; i < 6; i += 1) id += ACCOUNT_ALPHABET[randomInt(ACCOUNT_ALPHABET.length)];
  return id;
}

export type CustomersService = ReturnType<typeof createCustomersService>;

/**
 * Settlement of purpose `wallet_topup`: the money a payment received moves from the outside world
 * into the customer's wallet, in the payment's transaction (so it applies once with it).
 */
export function createWalletTopupSettlement(deps: {
  ledger: LedgerService;
  customers: Pick<CustomersService, 'wallet'>;
}): SettlementHandler {
  return async (ex, payment) => {
    if (!payment.customer_id) throw new Error(`wallet top-up ${payment.id} names no customer`);
    const amount = Number(payment.received_minor);
    if (amount <= 0) return;
    const wallet = await deps.customers.wallet(ex, payment.tenant_id, payment.customer_id, payment.currency);
    const external = await deps.ledger.external(ex, payment.tenant_id, payment.currency);
    await deps.ledger.transfer(ex, {
      tenantId: payment.tenant_id,
      from: external.id,
      to: wallet.id,
      amount,
      unit: payment.currency,
      cause: { type: 'payment', id: payment.id },
      memo: 'wallet top-up',
    });
  };
}
