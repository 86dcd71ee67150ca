// How much water a customer has taken on a UTC day (today, or an offline item's day): what was
// dispensed, plus holds of approvals not settled yet, so two taps at once cannot both pass the limit.
import { sql } from 'kysely';
import type { Executor } from '../../platform/db/database.js';

/** The start of the UTC day of `now`, as an ISO string. */
export const utcDayStart = (now = new Date()): string =>
  new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())).toISOString();

export async function usedTodayMl(
  ex: Executor,
  tenantId: string,
  customerId: string,
  now = new Date(),
): Promise<number> {
  const row = await ex
    .selectFrom('water_dispenses')
    .select(
      sql<string | number | null>`sum(case when status = 'HELD' then held_ml
        when status = 'RELEASED' then 0 else coalesce(dispensed_ml, 0) end)`.as('used'),
    )
    .where('tenant_id', '=', tenantId)
    .where('customer_id', '=', customerId)
    .where('at', '>=', utcDayStart(now))
    // Only that day: a back-dated offline item is not measured against the days after it.
    .where('at', '<', utcDayStart(new Date(Date.parse(utcDayStart(now)) + 86_400_000)))
    .executeTakeFirst();
  return Number(row?.used ?? 0);
}
