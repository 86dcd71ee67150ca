// The record of water verifications: each PIN check at a kiosk with its outcome (approved, or
// the denial code), written by the verification path in its own transaction. Owns the
// water_verifications table; the kiosk page's feed and the water charts read it.
import type { Page, WaterVerificationView } from '@kioskhub/protocol';
import { insertRows } from '../../platform/db/compiled.js';
import { newId, type Db, type Executor } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import { notFound } from '../../platform/errors.js';

/** Operator-facing text of each verification code (docs/water.md). */
export const WATER_CODE_REASONS: Record<string, string> = {
  VERIFIED: 'Approved',
  UNKNOWN_CUSTOMER: 'No customer with this phone number',
  NOT_REGISTERED: 'Customer has not set a PIN',
  INACTIVE: 'Account suspended',
  SUBSCRIPTION_EXPIRED: 'No active subscription and not enough credit',
  INVALID_PIN: 'Wrong PIN',
  PIN_LOCKED: 'PIN locked after too many wrong tries',
  DAILY_LIMIT: 'Daily limit reached',
  INSUFFICIENT_CREDIT: 'Not enough credit',
  KIOSK_NOT_ALLOWED: 'Customer may not use this kiosk',
};
export const reasonOf = (code: string): string => WATER_CODE_REASONS[code] ?? code.replaceAll('_', ' ');

export interface VerificationRecord {
  tenantId: string;
  kioskId: string;
  customerId: string | null;
  approved: boolean;
  code: string;
  volumeMl: number;
  /** Defaults to now. */
  at?: string;
}

// One row per kiosk verification: compiled once.
const insertVerification = insertRows('water_verifications');

export function createWaterVerifications(deps: {
  db: Db;
  /** 404 unless the kiosk is a machine of this tenant (null: any tenant). */
  kioskExists(kioskId: string, tenantId: string | null): Promise<boolean>;
  /** Account id and full name of customers by id (customers module). */
  customerNames(ids: readonly string[]): Promise<Map<string, { accountId: string; fullName: string | null }>>;
}) {
  const { db } = deps;
  return {
    /** Records one verification's outcome in the caller's transaction. */
    async record(ex: Executor, v: VerificationRecord): Promise<void> {
      await insertVerification(ex, [
        {
          id: newId(),
          tenant_id: v.tenantId,
          kiosk_id: v.kioskId,
          customer_id: v.customerId,
          approved: v.approved ? 1 : 0,
          code: v.code,
          volume_ml: Math.max(0, Math.round(v.volumeMl)),
          at: v.at ?? new Date().toISOString(),
        },
      ]);
    },

    /** Newest first; `cursor` is the last id of the previous page. */
    async list(
      tenantId: string | null,
      filter: { kioskId?: string; cursor?: string; limit: number },
    ): Promise<Page<WaterVerificationView>> {
      if (filter.kioskId && !(await deps.kioskExists(filter.kioskId, tenantId)))
        throw notFound('water kiosk', filter.kioskId);
      // Verifications are never deleted: a cursor names one of this list's (the caller's, and the
      // kiosk's when one is named), or it is made up.
      await knownCursor(filter.cursor, (id) => {
        let found = db.selectFrom('water_verifications').select('id').where('id', '=', id);
        if (tenantId !== null) found = found.where('tenant_id', '=', tenantId);
        if (filter.kioskId) found = found.where('kiosk_id', '=', filter.kioskId);
        return found.executeTakeFirst();
      });
      let q = db
        .selectFrom('water_verifications')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(filter.limit + 1);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if (filter.kioskId) q = q.where('kiosk_id', '=', filter.kioskId);
      if (filter.cursor) q = q.where('id', '<', filter.cursor);
      const rows = await q.execute();
      // The customer's account id and name (customers module), so the feed names who asked.
      const names = await deps.customerNames(rows.flatMap((r) => (r.customer_id ? [r.customer_id] : [])));
      return pageOf(rows, filter.limit, (r) => ({
        id: r.id,
        kioskId: r.kiosk_id,
        customerId: r.customer_id,
        customerAccountId: (r.customer_id && names.get(r.customer_id)?.accountId) ?? null,
        customerName: (r.customer_id && names.get(r.customer_id)?.fullName) ?? null,
        approved: Number(r.approved) === 1,
        code: r.code,
        reason: reasonOf(r.code),
        volumeMl: Number(r.volume_ml),
        at: r.at,
      }));
    },
  };
}

export type WaterVerifications = ReturnType<typeof createWaterVerifications>;
