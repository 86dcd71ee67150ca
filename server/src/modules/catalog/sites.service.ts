// Sites (owned by the catalog module): the small questions every module asks about one (does it
// exist, what is its currency) and the default site a new tenant gets. The site API, its settings
// and its print queue are catalog.service.ts.
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';

export const DEFAULT_SITE = 'default';

/**
 * The IANA time zone of a site (`UTC` when the site is not there): the water modules count a
 * customer's day in it.
 */
export async function siteTimeZone(ex: Executor, tenantId: string, siteId: string): Promise<string> {
  const row = await ex
    .selectFrom('sites')
    .select('time_zone')
    .where('tenant_id', '=', tenantId)
    .where('id', '=', siteId)
    .executeTakeFirst();
  return row?.time_zone ?? 'UTC';
}

export function createSitesService(db: Db) {
  return {
    /** The `default` site of a tenant (INR until staff change it); nothing when it exists. */
    async ensureDefault(tenantId: string, ex: Executor = db): Promise<void> {
      const now = nowIso();
      await ex
        .insertInto('sites')
        .values({
          tenant_id: tenantId,
          id: DEFAULT_SITE,
          name: 'Default site',
          currency: 'INR',
          print_queue_open: 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
        .execute();
    },

    /** The currency of a site of the tenant, or undefined when there is no such site. */
    async currencyOf(tenantId: string, siteId: string, ex: Executor = db): Promise<string | undefined> {
      const row = await ex
        .selectFrom('sites')
        .select('currency')
        .where('tenant_id', '=', tenantId)
        .where('id', '=', siteId)
        .executeTakeFirst();
      return row?.currency;
    },

    async exists(tenantId: string, siteId: string, ex: Executor = db): Promise<boolean> {
      const row = await ex
        .selectFrom('sites')
        .select('id')
        .where('tenant_id', '=', tenantId)
        .where('id', '=', siteId)
        .executeTakeFirst();
      return row !== undefined;
    },
  };
}

export type SitesService = ReturnType<typeof createSitesService>;
