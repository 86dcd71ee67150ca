// A kiosk asks whether a customer (phone + PIN) may take `volume_ml` now (CONTRACTS §11). An
// approval holds the water on the customer (credit and daily limit) until the kiosk settles
// what it dispensed or the hold expires (the `water_hold_expire` job). The same request again
// (kiosk, customer, kiosk timestamp) answers the same authorization and holds nothing more.
// Everything, refusals included (the PIN's failure count), is one transaction, and nothing slow
// runs inside it: a PIN still kept as an argon2 hash is checked before it (PinProofNeeded).
import { newId, type Db, type Executor } from '../../platform/db/database.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { CustomerRow, WaterDispenseRow } from '../../platform/db/schema.js';
import { AppError } from '../../platform/errors.js';
import { LIVE_EVENTS } from '@kioskhub/protocol';
import { enqueueOutboxJobs, outboxJob, type OutboxJob } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import { PinProofNeeded, type CustomersService, type PinProof } from '../customers/customers.service.js';
import { usedTodayMl } from './usage.js';
import type { WaterLedger } from './water-ledger.js';
import type { WaterRepo } from './water.repo.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** Release an approval's hold if the kiosk has not settled it by now. */
    water_hold_expire: { tenantId: string; dispenseId: string };
  }
}

export const VERIFY_CODES = [
  'VERIFIED',
  'UNKNOWN_CUSTOMER',
  'NOT_REGISTERED',
  'INACTIVE',
  'SUBSCRIPTION_EXPIRED',
  'INVALID_PIN',
  'PIN_LOCKED',
  'DAILY_LIMIT',
  'INSUFFICIENT_CREDIT',
  'KIOSK_NOT_ALLOWED',
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

const REASONS: Record<VerifyCode, string> = {
  VERIFIED: 'Customer verified',
  UNKNOWN_CUSTOMER: 'Customer not found',
  NOT_REGISTERED: 'Customer not fully registered',
  INACTIVE: 'Account suspended',
  SUBSCRIPTION_EXPIRED: 'Subscription expired',
  INVALID_PIN: 'Invalid PIN',
  PIN_LOCKED: 'Too many wrong PINs: try again in 15 minutes',
  DAILY_LIMIT: 'Daily limit reached',
  INSUFFICIENT_CREDIT: 'Not enough credit',
  KIOSK_NOT_ALLOWED: 'This customer may not use this kiosk',
};

export interface Kiosk {
  machineId: string;
  tenantId: string;
  siteId: string;
}

export interface UserData {
  phone_number: string;
  account_id: string;
  full_name: string | null;
  active: boolean;
  /** Whole litres of credit (the earlier firmware's field). */
  credits: number;
  credits_ml: number;
  /** null: no daily limit. */
  remaining_today_ml: number | null;
}

export interface Verification {
  approved: boolean;
  code: VerifyCode;
  reason: string;
  authorizationId?: string;
  customerId: string | null;
  /** Only once the PIN was right: nothing about an account before that. */
  userData?: UserData;
}

export interface VerificationDeps {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  repo: WaterRepo;
  water: WaterLedger;
  customers: Pick<CustomersService, 'findByPhone' | 'checkPin' | 'provePin' | 'lockForUpdate'>;
  holdMs: number;
  now?: () => number;
  /** Records the outcome for staff (the kiosk page's feed, the water charts), in this transaction. */
  recordOutcome?(
    ex: Executor,
    v: {
      tenantId: string;
      kioskId: string;
      customerId: string | null;
      approved: boolean;
      code: string;
      volumeMl: number;
    },
  ): Promise<void>;
}

export const allowedAt = (customer: CustomerRow, siteId: string): boolean => {
  const sites = JSON.parse(customer.site_ids) as string[];
  return sites.length === 0 || sites.includes(siteId);
};

export function createVerification(deps: VerificationDeps) {
  const now = deps.now ?? Date.now;

  async function userData(ex: Executor, customer: CustomerRow, siteId: string, at: Date): Promise<UserData> {
    const creditMl = await deps.water.creditMl(ex, customer.tenant_id, customer.id);
    const limit = customer.daily_limit_ml === null ? null : Number(customer.daily_limit_ml);
    const used = limit === null ? 0 : await usedTodayMl(ex, customer.tenant_id, customer.id, siteId, at);
    return {
      phone_number: customer.phone,
      account_id: customer.account_id,
      full_name: customer.full_name,
      active: customer.active === 1,
      credits: Math.floor(creditMl / 1000),
      credits_ml: creditMl,
      remaining_today_ml: limit === null ? null : Math.max(0, limit - used),
    };
  }

  /**
   * The same (kiosk, customer, timestamp) again: a retry after a lost answer gets the same
   * authorization. Only the very same request still held is a retry: a larger volume under the
   * same timestamp would be told it may pour water nobody holds, and an authorization already
   * settled or released would pour water that is never charged.
   */
  function repeatOf(
    earlier: WaterDispenseRow,
    volumeMl: number,
    customerId: string,
    data: UserData,
  ): Verification {
    if (Number(earlier.held_ml) !== volumeMl || earlier.status !== 'HELD') {
      throw new AppError(
        'CONFLICT',
        `this timestamp was already used by authorization ${earlier.id} for ${Number(earlier.held_ml)} ml ` +
          `(${earlier.status.toLowerCase()}); a new request needs a new timestamp`,
      );
    }
    return {
      approved: true,
      code: 'VERIFIED',
      reason: REASONS.VERIFIED,
      authorizationId: earlier.id,
      customerId,
      userData: data,
    };
  }

  async function decide(
    ex: Executor,
    kiosk: Kiosk,
    req: { userId: string; pin: string; volumeMl: number; timestampMs: number | null },
    proof: PinProof | undefined,
    /** Jobs to write with the verification's own live event (one statement). */
    jobs: OutboxJob[],
  ): Promise<Verification> {
    const refuse = (code: VerifyCode, customerId: string | null, data?: UserData): Verification => ({
      approved: false,
      code,
      reason: REASONS[code],
      customerId,
      ...(data ? { userData: data } : {}),
    });
    let customer = await deps.customers.findByPhone(kiosk.tenantId, req.userId, ex);
    if (!customer) return refuse('UNKNOWN_CUSTOMER', null);
    if (deps.dialect === 'postgres') {
      // One decision per customer at a time: two taps at once cannot both pass the daily limit.
      customer = (await deps.customers.lockForUpdate(customer.id, ex))!;
    }
    const pin = await deps.customers.checkPin(customer, req.pin, ex, { proof, noSlowWork: true });
    if (!pin.ok) return refuse(pin.code, customer.id);
    const at = new Date(now());
    const data = await userData(ex, customer, kiosk.siteId, at);
    if (customer.active !== 1) return refuse('INACTIVE', customer.id, data);
    if (!allowedAt(customer, kiosk.siteId)) return refuse('KIOSK_NOT_ALLOWED', customer.id, data);

    // Without a kiosk timestamp nothing marks a retry: the request is a new one (no key).
    const requestKey = req.timestampMs === null ? null : `${customer.id}|${req.timestampMs}`;
    const earlier =
      requestKey === null ? undefined : await deps.repo.byRequestKey(ex, kiosk.machineId, requestKey);
    if (earlier) return repeatOf(earlier, req.volumeMl, customer.id, data);

    if (data.remaining_today_ml !== null && data.remaining_today_ml < req.volumeMl) {
      return refuse('DAILY_LIMIT', customer.id, data);
    }
    const expiresAt = customer.subscription_expires_at;
    const subscribed = expiresAt !== null && Date.parse(expiresAt) > at.getTime();
    let funding: 'subscription' | 'credit';
    if (subscribed) funding = 'subscription';
    else if (data.credits_ml >= req.volumeMl) funding = 'credit';
    else if (expiresAt !== null && data.credits_ml <= 0)
      return refuse('SUBSCRIPTION_EXPIRED', customer.id, data);
    else return refuse('INSUFFICIENT_CREDIT', customer.id, data);

    const id = newId();
    const holdExpiresAt = new Date(at.getTime() + deps.holdMs).toISOString();
    const inserted = await deps.repo.insertDispense(ex, {
      id,
      tenant_id: kiosk.tenantId,
      kiosk_id: kiosk.machineId,
      customer_id: customer.id,
      tap: null,
      held_ml: req.volumeMl,
      dispensed_ml: null,
      status: 'HELD',
      request_key: requestKey,
      kiosk_txn_id: null,
      flagged: 0,
      at: at.toISOString(),
      hold_expires_at: holdExpiresAt,
      settled_at: null,
      funding,
    });
    if (!inserted) {
      // The same request raced this one and won: answer its authorization.
      const won =
        requestKey === null ? undefined : await deps.repo.byRequestKey(ex, kiosk.machineId, requestKey);
      if (won) return repeatOf(won, req.volumeMl, customer.id, data);
      throw new Error('water hold neither inserted nor found');
    }
    if (funding === 'credit') await deps.water.hold(ex, kiosk.tenantId, customer.id, req.volumeMl, id);
    jobs.push(
      outboxJob('water_hold_expire', { tenantId: kiosk.tenantId, dispenseId: id }, { runAt: holdExpiresAt }),
    );
    await recordAudit(ex, {
      tenantId: kiosk.tenantId,
      actor: `machine:${kiosk.machineId}`,
      action: 'water.hold_placed',
      subjectType: 'customer',
      subjectId: customer.id,
      after: { authorizationId: id, heldMl: req.volumeMl, funding, holdExpiresAt },
    });
    const held: UserData = {
      ...data,
      ...(funding === 'credit'
        ? {
            credits_ml: data.credits_ml - req.volumeMl,
            credits: Math.floor((data.credits_ml - req.volumeMl) / 1000),
          }
        : {}),
      remaining_today_ml: data.remaining_today_ml === null ? null : data.remaining_today_ml - req.volumeMl,
    };
    return {
      approved: true,
      code: 'VERIFIED',
      reason: REASONS.VERIFIED,
      authorizationId: id,
      customerId: customer.id,
      userData: held,
    };
  }

  async function decideAndRecord(
    kiosk: Kiosk,
    req: { userId: string; pin: string; volumeMl: number; timestampMs: number | null },
    proof: PinProof | undefined,
  ): Promise<Verification> {
    return inGroup(
      deps.db,
      async (tx) => {
        const jobs: OutboxJob[] = [];
        const result = await decide(tx, kiosk, req, proof, jobs);
        const outcome = {
          tenantId: kiosk.tenantId,
          kioskId: kiosk.machineId,
          customerId: result.customerId,
          approved: result.approved,
          code: result.code,
          volumeMl: req.volumeMl,
        };
        await deps.recordOutcome?.(tx, outcome);
        jobs.push(
          outboxJob('live', {
            tenantId: kiosk.tenantId,
            rooms: [`tenant:${kiosk.tenantId}`, `site:${kiosk.siteId}`],
            event: LIVE_EVENTS.waterVerification,
            data: {
              ...outcome,
              ...(result.authorizationId ? { authorizationId: result.authorizationId } : {}),
            },
          }),
        );
        await enqueueOutboxJobs(tx, jobs);
        return result;
      },
      { replayable: true },
    );
  }

  return {
    async verify(
      kiosk: Kiosk,
      req: { userId: string; pin: string; volumeMl: number; timestampMs: number | null },
    ): Promise<Verification> {
      let proof: PinProof | undefined;
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await decideAndRecord(kiosk, req, proof);
        } catch (err) {
          // An argon2 PIN (set before seals): hash outside the transaction, then decide again.
          // The transaction rolled back having written nothing; a PIN changed meanwhile asks again.
          if (!(err instanceof PinProofNeeded) || attempt >= 3) throw err;
          proof = await deps.customers.provePin(err.customer, req.pin);
        }
      }
    },
  };
}

export type VerificationService = ReturnType<typeof createVerification>;
