// How much water a customer has taken on a day (today, or an offline item's day): what was
// dispensed, plus holds of approvals not settled yet, so two taps at once cannot both pass the limit.
// The day is the local day of a site's time zone (sites.time_zone, UTC unless staff set it): at a
// kiosk, the kiosk's site; elsewhere (staff views, SMS and USSD), the customer's home site.
import { sql } from 'kysely';
import type { Executor } from '../../platform/db/database.js';
import type { CustomerRow } from '../../platform/db/schema.js';
import { DEFAULT_SITE, siteTimeZone } from '../catalog/sites.service.js';
import { dayStart } from '../reporting/local-buckets.js';

const HOUR = 3_600_000;

/** The start of the UTC day of `now`, as an ISO string. */
export const utcDayStart = (now = new Date()): string =>
  new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate())).toISOString();

/** The local day of `now` in `timeZone`, as ISO instants: `[start, end)`. 23 or 25 hours across a DST change. */
export function localDayBounds(now: Date, timeZone: string): { start: string; end: string } {
  const start = dayStart(now.getTime(), timeZone);
  return {
    start: new Date(start).toISOString(),
    end: new Date(dayStart(start + 36 * HOUR, timeZone)).toISOString(),
  };
}

/**
 * The site whose day a customer's daily limit counts away from a kiosk: the first site the
 * customer is allowed at, or the tenant's `default` site when the customer may use every site.
 */
export const homeSite = (customer: Pick<CustomerRow, 'site_ids'>): string =>
  (JSON.parse(customer.site_ids) as string[])[0] ?? DEFAULT_SITE;

/** The day of `now` at a site of the tenant. */
export async function siteDay(
  ex: Executor,
  tenantId: string,
  siteId: string,
  now: Date,
): Promise<{ start: string; end: string }> {
  return localDayBounds(now, await siteTimeZone(ex, tenantId, siteId));
}

export async function usedTodayMl(
  ex: Executor,
  tenantId: string,
  customerId: string,
  /** The site whose local day counts (the kiosk's, else the customer's home site). */
  siteId: string,
  now = new Date(),
): Promise<number> {
  const day = await siteDay(ex, tenantId, siteId, now);
  const row = await ex
    .selectFrom('water_dispenses')
    .select(
      sql<string | number | null>`sum(case when status = 'HELD' then held_ml
        when status = 'RELEASED' then 0 else coalesce(dispensed_ml, 0) end)`.as('used'),
    )
    .where('tenant_id', '=', tenantId)
    .where('customer_id', '=', customerId)
    .where('at', '>=', day.start)
    // Only that day: a back-dated offline item is not measured against the days after it.
    .where('at', '<', day.end)
    .executeTakeFirst();
  return Number(row?.used ?? 0);
}
