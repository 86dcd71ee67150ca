// One-time sign-in codes sent to a customer's phone (the cafe wallet's sign-in): hashed at rest
// with the server's key (a copy of the database alone does not reveal codes), 5 minutes, single
// use, few attempts, limited per phone and per client address. Owns the customer_otps table.
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { PostgresAdapter, sql } from 'kysely';
import { rateLimited } from '../../platform/errors.js';
import { newId, nowIso, type Executor } from '../../platform/db/database.js';
import { recordAudit } from '../audit/audit.service.js';

export const OTP_TTL_MS = 5 * 60_000;
export const OTP_MAX_ATTEMPTS = 5;
/** Codes per phone, and per client address, in OTP_WINDOW_MS. */
export const OTP_PER_PHONE = 3;
export const OTP_PER_ADDRESS = 10;
export const OTP_WINDOW_MS = 15 * 60_000;

export type CodeCheck = 'right' | 'wrong' | 'locked';

/**
 * Makes the requests for one phone's codes, and for one address's, take turns to the end of their
 * transactions, so concurrent requests cannot all pass the count. Phone before address, always,
 * so two requests never wait on each other. SQLite runs one write transaction at a time already.
 */
async function takeTurns(tx: Executor, tenantId: string, phone: string, address: string): Promise<void> {
  if (!(tx.getExecutor().adapter instanceof PostgresAdapter)) return;
  await sql`select pg_advisory_xact_lock(hashtext(${`otp-phone:${tenantId}:${phone}`}))`.execute(tx);
  await sql`select pg_advisory_xact_lock(hashtext(${`otp-address:${address}`}))`.execute(tx);
}

/** Marks a code used, once: true for the one request that did. */
async function spend(tx: Executor, otpId: string): Promise<boolean> {
  const row = await tx
    .updateTable('customer_otps')
    .set({ used_at: nowIso() })
    .where('id', '=', otpId)
    .where('used_at', 'is', null)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

export function createSignInCodes(key: Buffer) {
  const hash = (id: string, code: string) => createHmac('sha256', key).update(`${id}:${code}`).digest('hex');

  return {
    /**
     * In the caller's transaction: a fresh six-digit code for the phone (earlier unused codes of
     * that phone stop working), or RATE_LIMITED when the phone or the address asked too often.
     */
    async issue(tx: Executor, tenantId: string, phone: string, address: string): Promise<string> {
      await takeTurns(tx, tenantId, phone, address);
      const since = new Date(Date.now() - OTP_WINDOW_MS).toISOString();
      const perPhone = await tx
        .selectFrom('customer_otps')
        .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
        .where('tenant_id', '=', tenantId)
        .where('phone', '=', phone)
        .where('created_at', '>', since)
        .executeTakeFirstOrThrow();
      const perAddress = await tx
        .selectFrom('customer_otps')
        .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('created_at').as('oldest')])
        .where('address', '=', address)
        .where('created_at', '>', since)
        .executeTakeFirstOrThrow();
      const over = [
        Number(perPhone.n) >= OTP_PER_PHONE ? perPhone.oldest : null,
        Number(perAddress.n) >= OTP_PER_ADDRESS ? perAddress.oldest : null,
      ].filter((t): t is string => typeof t === 'string');
      if (over.length > 0) {
        // A place frees when the oldest code counted leaves the window.
        const frees = Math.max(...over.map((t) => Date.parse(t) + OTP_WINDOW_MS));
        throw rateLimited(frees - Date.now(), (s) => `too many codes asked for; try again in ${s} s`);
      }
      const now = nowIso();
      await tx
        .updateTable('customer_otps')
        .set({ used_at: now })
        .where('tenant_id', '=', tenantId)
        .where('phone', '=', phone)
        .where('used_at', 'is', null)
        .execute();
      const id = newId();
      const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
      await tx
        .insertInto('customer_otps')
        .values({
          id,
          tenant_id: tenantId,
          phone,
          address,
          code_hash: hash(id, code),
          attempts: 0,
          expires_at: new Date(Date.now() + OTP_TTL_MS).toISOString(),
          used_at: null,
          created_at: now,
        })
        .execute();
      return code;
    },

    /**
     * In the caller's transaction: uses up the phone's current code when `code` is it. Every try
     * counts; past OTP_MAX_ATTEMPTS the code is spent (`locked`).
     */
    async redeem(tx: Executor, tenantId: string, phone: string, code: string): Promise<CodeCheck> {
      const otp = await tx
        .selectFrom('customer_otps')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('phone', '=', phone)
        .where('used_at', 'is', null)
        .where('expires_at', '>', nowIso())
        .orderBy('created_at', 'desc')
        .executeTakeFirst();
      if (!otp) return 'wrong';
      // Counted before the comparison, conditionally, so parallel guesses cannot pass the limit.
      const counted = await tx
        .updateTable('customer_otps')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('id', '=', otp.id)
        .where('attempts', '<', OTP_MAX_ATTEMPTS)
        .where('used_at', 'is', null)
        .returning('attempts')
        .executeTakeFirst();
      if (!counted) {
        const spent = await spend(tx, otp.id);
        // A lockout is an access event: audited once, by the request that spent the code.
        if (spent) {
          await recordAudit(tx, {
            tenantId,
            actor: 'system',
            action: 'customer.sign_in_locked',
            subjectType: 'phone',
            subjectId: phone,
            after: { attempts: OTP_MAX_ATTEMPTS },
          });
        }
        return 'locked';
      }
      const right =
        /^\d{6}$/.test(code) && timingSafeEqual(Buffer.from(hash(otp.id, code)), Buffer.from(otp.code_hash));
      if (!right) return 'wrong';
      return (await spend(tx, otp.id)) ? 'right' : 'wrong';
    },
  };
}

export type SignInCodes = ReturnType<typeof createSignInCodes>;
