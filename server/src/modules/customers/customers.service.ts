// Customers of a tenant: water customers (phone + PIN, subscription, credit in millilitres) and
// cafe wallet holders (phone + one-time SMS code) are one module. Phone numbers are E.164; PINs
// are sealed under a server key (pin-verifier.ts), with a lockout; balances are ledger accounts
// (a wallet per currency, water credit in ml). Every change is audited with its actor.
import { randomInt } from 'node:crypto';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import type { Updateable } from 'kysely';
import type { CustomerRow, CustomersTable, PlanRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import type { LedgerAccount, LedgerService } from '../ledger/ledger.service.js';
import type { SettlementHandler } from '../payments/settlement.js';
import { createCustomersRepo } from './customers.repo.js';
import { needsCountryCode, normalisePhone } from './phone.js';
import { createPinVerifier } from './pin-verifier.js';
import { createSignInCodes } from './sign-in-codes.js';

/** Wrong PINs in a row before the PIN is locked, and for how long. */
export const PIN_MAX_FAILURES = 5;
export const PIN_LOCK_MS = 15 * 60_000;
const PIN_FORMAT = /^\d{4}$/;
/** `TSF` + 6 characters; no 0/O or 1/I, so an account id read over the phone is unambiguous. */
const ACCOUNT_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

export type PinCheck = { ok: true } | { ok: false; code: 'INVALID_PIN' | 'PIN_LOCKED' | 'NOT_REGISTERED' };

/** The argon2 verdict on a PIN set before seals, reached outside any transaction (`provePin`). */
export interface PinProof {
  customerId: string;
  stored: string;
  pin: string;
  right: boolean;
}

/** Thrown by `checkPin` told to do no slow work when the PIN is argon2: prove it, then retry. */
export class PinProofNeeded extends Error {
  constructor(readonly customer: CustomerRow) {
    super('this PIN is an argon2 hash: check it outside the transaction first');
  }
}

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
  /** Every tenant that has a calling code, with it: an ADMIN_TOKEN search over all tenants. */
  countryCodes?(): Promise<{ tenantId: string; code: string }[]>;
  /** The server's PIN key (PIN_SECRET): PIN seals are keyed from it, never stored. */
  pinKey: Buffer;
  /** Told each new PIN in its transaction (the water kiosks' credential cache seals it). */
  onPinSet?(ex: Executor, customer: CustomerRow, pin: string): Promise<void>;
}

export function createCustomersService(deps: CustomersDeps) {
  const { db } = deps;
  const repo = createCustomersRepo(db);
  const pins = createPinVerifier(deps.pinKey);
  // Keyed like PINs: a copy of the database alone does not reveal codes.
  const signInCodes = createSignInCodes(deps.pinKey);

  /**
   * The E.164 form of `input` for the tenant, else `400`. `forStaff`: a local number on a tenant
   * without a calling code names the setting that allows it (not said to cafe guests).
   */
  async function phoneOf(
    tenantId: string,
    input: string,
    ex: Executor = db,
    forStaff = false,
  ): Promise<string> {
    const code = await deps.defaultCountryCode(tenantId, ex);
    const phone = normalisePhone(input, code);
    if (!phone) {
      const local =
        forStaff &&
        code === null &&
        needsCountryCode(input) &&
        /^[\d\s().-]*\d[\d\s().-]*$/.test(input.trim());
      throw validation(
        `"${input.slice(0, 40)}" is not a phone number (use the international form, e.g. +254712345678` +
          (local
            ? `; tenant ${tenantId} has no calling code for local numbers: set one with PATCH /v1/tenants/${tenantId} {"defaultCountryCode":"254"})`
            : ')'),
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
    input: {
      tenantId: string;
      phone: string;
      fullName?: string | null;
      siteIds?: string[];
      /** Who: staff (`user:<email>`…), or the new customer itself (given its id). */
      actor: string | ((customerId: string) => string);
      /** The channel of a customer's own first contact (`ussd`, `sms`, `wallet`), audited. */
      via?: string;
    },
    ex: Executor = db,
  ): Promise<CustomerRow> {
    // Only staff register customers this way (POST /v1/customers).
    const phone = await phoneOf(input.tenantId, input.phone, ex, true);
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
        subscription_started_at: null,
        subscription_prior_expires_at: null,
        subscription_prior_started_at: null,
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
        actor: typeof input.actor === 'string' ? input.actor : input.actor(row.id),
        action: 'customer.created',
        subjectType: 'customer',
        subjectId: row.id,
        after: {
          accountId: row.account_id,
          phone,
          fullName: row.full_name,
          ...(input.via !== undefined ? { via: input.via } : {}),
        },
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
      const code = needsCountryCode(input) ? await deps.defaultCountryCode(tenantId, ex) : null;
      const phone = normalisePhone(input, code);
      return phone ? repo.byPhone(tenantId, phone, ex) : undefined;
    },

    /**
     * The customer with this phone number, created (unregistered) when there is none: the
     * customer's own first contact on a channel (`via`), audited with the customer as actor.
     */
    async findOrCreate(
      tenantId: string,
      input: string,
      via: string,
      ex: Executor = db,
    ): Promise<CustomerRow> {
      const phone = await phoneOf(tenantId, input, ex);
      const found = await repo.byPhone(tenantId, phone, ex);
      if (found) return found;
      try {
        return await create({ tenantId, phone, actor: (id) => `customer:${id}`, via }, ex);
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
      const tenantPhones: { tenantId: string; phone: string }[] = [];
      if (text && tenantId !== null) {
        phone = normalisePhone(text, await deps.defaultCountryCode(tenantId)) ?? undefined;
      } else if (text) {
        phone = normalisePhone(text, null) ?? undefined;
        // ADMIN_TOKEN, every tenant: a local number is each tenant's own reading of it.
        if (needsCountryCode(text) && deps.countryCodes) {
          for (const { tenantId: t, code } of await deps.countryCodes()) {
            const local = normalisePhone(text, code);
            if (local !== null && local !== phone) tenantPhones.push({ tenantId: t, phone: local });
          }
        }
      }
      // Customers are never deleted: a cursor names one of the caller's, or it is made up.
      await knownCursor(q.cursor, (id) => repo.byId(tenantId, id));
      const rows = await repo.search(tenantId, {
        ...(phone !== undefined ? { phone } : {}),
        ...(tenantPhones.length > 0 ? { tenantPhones } : {}),
        ...(text ? { text } : {}),
        ...(q.cursor ? { before: q.cursor } : {}),
        limit: q.limit + 1,
      });
      const { items, nextCursor } = pageOf(rows, q.limit, (r) => r);
      return { rows: items, nextCursor };
    },

    /** Sets (or replaces) the 4-digit PIN, clears any lockout; the PIN is kept only sealed. */
    async setPin(
      customer: CustomerRow,
      pin: string,
      actor: string,
      ex: Executor = db,
      reason?: string,
    ): Promise<CustomerRow> {
      if (!PIN_FORMAT.test(pin)) throw validation('a PIN is exactly 4 digits');
      const updated = await repo.update(
        customer.id,
        {
          pin_hash: pins.seal(customer.tenant_id, customer.id, pin),
          pin_failures: 0,
          pin_locked_until: null,
          updated_at: nowIso(),
        },
        ex,
      );
      await deps.onPinSet?.(ex, customer, pin);
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
     * The slow part of checking a PIN set before seals (argon2), to run before the caller's
     * transaction so it never holds the database while it hashes. Sealed PINs need none.
     */
    async provePin(customer: CustomerRow, pin: string): Promise<PinProof | undefined> {
      const stored = customer.pin_hash;
      if (stored === null || pins.isSealed(stored)) return undefined;
      const right = PIN_FORMAT.test(pin) && (await pins.legacyMatches(stored, pin));
      return { customerId: customer.id, stored, pin, right };
    },

    /**
     * Checks a PIN. Five wrong PINs in a row lock it for 15 minutes; a right one resets the count.
     * Counting is a conditional update, so concurrent guesses cannot slip past the limit. A sealed
     * PIN is checked here in microseconds; an argon2 one uses `proof` when it is about this very
     * hash and PIN, else hashes here, or throws `PinProofNeeded` when told to do no slow work. A
     * right argon2 PIN is sealed in its place (and handed to `onPinSet`), so argon2 runs once.
     */
    async checkPin(
      customer: CustomerRow,
      pin: string,
      ex: Executor = db,
      options: { proof?: PinProof | undefined; noSlowWork?: boolean } = {},
    ): Promise<PinCheck> {
      const stored = customer.pin_hash;
      if (stored === null) return { ok: false, code: 'NOT_REGISTERED' };
      const now = Date.now();
      if (customer.pin_locked_until !== null && Date.parse(customer.pin_locked_until) > now) {
        return { ok: false, code: 'PIN_LOCKED' };
      }
      let right: boolean;
      if (!PIN_FORMAT.test(pin)) right = false;
      else if (pins.isSealed(stored)) right = pins.sealMatches(customer.tenant_id, customer.id, stored, pin);
      else {
        const proof = options.proof;
        if (proof && proof.customerId === customer.id && proof.stored === stored && proof.pin === pin) {
          right = proof.right;
        } else if (options.noSlowWork) {
          throw new PinProofNeeded(customer);
        } else {
          right = await pins.legacyMatches(stored, pin);
        }
      }
      if (right) {
        const changes: { pin_failures?: number; pin_locked_until?: null; pin_hash?: string } = {};
        if (customer.pin_failures !== 0 || customer.pin_locked_until !== null) {
          Object.assign(changes, { pin_failures: 0, pin_locked_until: null });
        }
        if (!pins.isSealed(stored)) changes.pin_hash = pins.seal(customer.tenant_id, customer.id, pin);
        if (Object.keys(changes).length > 0) {
          // Guarded by the verifier read: a PIN changed meanwhile is never overwritten.
          const upgraded = await repo.updateIfPinIs(customer.id, stored, changes, ex);
          if (upgraded && changes.pin_hash !== undefined) await deps.onPinSet?.(ex, customer, pin);
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

    /** Account id and full name by customer id, for the ids that exist. */
    async names(
      ids: readonly string[],
    ): Promise<Map<string, { accountId: string; fullName: string | null }>> {
      const rows = await repo.namesByIds([...new Set(ids)]);
      return new Map(rows.map((r) => [r.id, { accountId: r.account_id, fullName: r.full_name }]));
    },

    /** The name of each (tenant, plan id) pair that exists, keyed `tenant/plan`. */
    async planNames(keys: readonly { tenantId: string; planId: string }[]): Promise<Map<string, string>> {
      const rows = await repo.plansByIds([...new Set(keys.map((k) => k.planId))]);
      return new Map(rows.map((r) => [`${r.tenant_id}/${r.id}`, r.name]));
    },

    /** The customer row, locked until the caller's transaction ends (PostgreSQL `FOR UPDATE`). */
    lockForUpdate: (id: string, ex: Executor): Promise<CustomerRow | undefined> => repo.lockForUpdate(id, ex),

    /** Writes customer fields in the caller's transaction (a plan applied; the caller audits). */
    update: (id: string, changes: Updateable<CustomersTable>, ex: Executor) => repo.update(id, changes, ex),

    /** One-time sign-in codes sent by SMS (the cafe wallet's sign-in). */
    signInCodes,
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
