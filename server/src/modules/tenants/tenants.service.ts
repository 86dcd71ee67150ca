// Owns tenants and installation secrets (admin token hash, JWT key); a new tenant gets its
// default site from the catalog module, which owns sites.
import { randomBytes } from 'node:crypto';
import { SqliteAdapter } from 'kysely';
import { AppError, notFound } from '../../platform/errors.js';
import { compiled } from '../../platform/db/compiled.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { sha256 } from '../../platform/http/auth.js';
import { recordAudit } from '../audit/audit.service.js';
import { createSitesService, type SitesService } from '../catalog/sites.service.js';

export const DEFAULT_TENANT = 'default';
export { DEFAULT_SITE } from '../catalog/sites.service.js';

export interface Tenant {
  id: string;
  name: string;
  createdAt: string;
  /** The calling code local phone numbers are read with ("254"), or null: numbers must be international. */
  defaultCountryCode: string | null;
}

export interface InstallationSecrets {
  adminTokenHash: string;
  jwtSecret: Uint8Array;
  /** The key mixed into every customer PIN hash: PIN_SECRET, else one generated and stored. */
  pinKey: Buffer;
  /** Set only when this start generated the admin token: print it once. */
  generatedAdminToken?: string;
  /** Which admin token is in force: ADMIN_TOKEN, or the one stored (generated at first start). */
  adminTokenSource: 'environment' | 'stored';
  /** ADMIN_TOKEN is set while the database also holds a generated one, which is then not accepted. */
  storedAdminTokenUnused: boolean;
}

// Read for every local phone number a kiosk or a phone sends: compiled once.
const countryCodeOf = compiled((ex, p: { tenantId: string }) =>
  ex.selectFrom('tenants').select('default_country_code').where('id', '=', p.tenantId),
);

const tenantOf = (r: {
  id: string;
  name: string;
  created_at: string;
  default_country_code: string | null;
}): Tenant => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at,
  defaultCountryCode: r.default_country_code ?? null,
});

export function createTenantsService(db: Db, sites: SitesService = createSitesService(db)) {
  const setCountryCode = async (tenantId: string, code: string | null, ex: Executor): Promise<void> => {
    await ex.updateTable('tenants').set({ default_country_code: code }).where('id', '=', tenantId).execute();
  };
  const ensureDefaultSite = (tenantId: string, ex: Executor = db) => sites.ensureDefault(tenantId, ex);

  async function setting(key: string, make: () => string): Promise<{ value: string; created: boolean }> {
    const inserted = await db
      .insertInto('settings')
      .values({ key, value: make() })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('value')
      .executeTakeFirst();
    if (inserted) return { value: inserted.value, created: true };
    const row = await db
      .selectFrom('settings')
      .select('value')
      .where('key', '=', key)
      .executeTakeFirstOrThrow();
    return { value: row.value, created: false };
  }

  return {
    /** First start: default tenant + site, generated secrets. Safe to run on every start and on many nodes. */
    async bootstrap(options: {
      adminToken?: string;
      jwtSecret?: string;
      pinSecret?: string;
    }): Promise<InstallationSecrets> {
      await db
        .insertInto('tenants')
        .values({ id: DEFAULT_TENANT, name: 'Default tenant', created_at: nowIso() })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
      await ensureDefaultSite(DEFAULT_TENANT);
      const jwt =
        options.jwtSecret ?? (await setting('jwt_secret', () => randomBytes(32).toString('hex'))).value;
      const pinKey = Buffer.from(
        options.pinSecret ?? (await setting('pin_secret', () => randomBytes(32).toString('hex'))).value,
      );
      if (options.adminToken) {
        const hash = sha256(options.adminToken);
        const stored = await db
          .selectFrom('settings')
          .select('value')
          .where('key', '=', 'admin_token_hash')
          .executeTakeFirst();
        return {
          adminTokenHash: hash,
          jwtSecret: new TextEncoder().encode(jwt),
          pinKey,
          adminTokenSource: 'environment',
          storedAdminTokenUnused: stored !== undefined && stored.value !== hash,
        };
      }
      let generated: string | undefined;
      const stored = await setting('admin_token_hash', () => {
        generated = `kh_admin_${randomBytes(24).toString('base64url')}`;
        return sha256(generated);
      });
      return {
        adminTokenHash: stored.value,
        jwtSecret: new TextEncoder().encode(jwt),
        pinKey,
        adminTokenSource: 'stored',
        storedAdminTokenUnused: false,
        ...(stored.created && generated ? { generatedAdminToken: generated } : {}),
      };
    },

    /** A new tenant with its default site, audited (`tenant.create`) in the same transaction. */
    async create(input: { id: string; name: string }, actor: string): Promise<Tenant> {
      const createdAt = nowIso();
      const row = await db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto('tenants')
          .values({ id: input.id, name: input.name, created_at: createdAt })
          .onConflict((oc) => oc.column('id').doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) throw new AppError('CONFLICT', `tenant "${input.id}" already exists`);
        await ensureDefaultSite(input.id, tx);
        await recordAudit(tx, {
          tenantId: input.id,
          actor,
          action: 'tenant.create',
          subjectType: 'tenant',
          subjectId: input.id,
          after: { id: input.id, name: input.name },
        });
        return inserted;
      });
      return { id: row.id, name: input.name, createdAt, defaultCountryCode: null };
    },

    async list(): Promise<Tenant[]> {
      const rows = await db.selectFrom('tenants').selectAll().orderBy('id').execute();
      return rows.map(tenantOf);
    },

    /** True while `tenantId` is the deployment's only tenant (who runs it: see operator-scope.ts). */
    async isSole(tenantId: string): Promise<boolean> {
      const rows = await db.selectFrom('tenants').select('id').limit(2).execute();
      return rows.length === 1 && rows[0]!.id === tenantId;
    },

    /**
     * Changes a tenant's settings (its calling code), audited as `tenant.update` in the same
     * transaction with the fields that changed; a value it already has changes nothing and writes
     * no audit row. An unknown tenant is `404`.
     */
    async update(id: string, input: { defaultCountryCode: string | null }, actor: string): Promise<Tenant> {
      return db.transaction().execute(async (tx) => {
        let read = tx.selectFrom('tenants').selectAll().where('id', '=', id);
        // Two changes at once on PostgreSQL: the second reads the first's value (SQLite has one writer).
        if (!(tx.getExecutor().adapter instanceof SqliteAdapter)) read = read.forUpdate();
        const row = await read.executeTakeFirst();
        if (!row) throw notFound('tenant', id);
        const before = row.default_country_code ?? null;
        if (before === input.defaultCountryCode) return tenantOf(row);
        await setCountryCode(id, input.defaultCountryCode, tx);
        await recordAudit(tx, {
          tenantId: id,
          actor,
          action: 'tenant.update',
          subjectType: 'tenant',
          subjectId: id,
          before: { defaultCountryCode: before },
          after: { defaultCountryCode: input.defaultCountryCode },
        });
        return { ...tenantOf(row), defaultCountryCode: input.defaultCountryCode };
      });
    },

    async exists(id: string): Promise<boolean> {
      return (
        (await db.selectFrom('tenants').select('id').where('id', '=', id).executeTakeFirst()) !== undefined
      );
    },

    /** The tenant's calling code for local phone numbers ("254"), or null. */
    async defaultCountryCode(tenantId: string, ex: Executor = db): Promise<string | null> {
      const row = await countryCodeOf.first(ex, { tenantId });
      return row?.default_country_code ?? null;
    },

    /** Every tenant that has a calling code, with it (a search over all tenants reads local numbers by it). */
    async countryCodes(): Promise<{ tenantId: string; code: string }[]> {
      const rows = await db
        .selectFrom('tenants')
        .select(['id', 'default_country_code'])
        .where('default_country_code', 'is not', null)
        .execute();
      return rows.flatMap((r) =>
        r.default_country_code ? [{ tenantId: r.id, code: r.default_country_code }] : [],
      );
    },

    /** Sets the tenant's calling code (digits, 1–3 of them), unaudited: `update` is the audited way. */
    setDefaultCountryCode: (tenantId: string, code: string | null, ex: Executor = db) =>
      setCountryCode(tenantId, code, ex),

    /** The currency of a site of the tenant, or undefined when there is no such site. */
    siteCurrency: (tenantId: string, siteId: string, ex: Executor = db): Promise<string | undefined> =>
      sites.currencyOf(tenantId, siteId, ex),

    siteExists: (tenantId: string, siteId: string, ex: Executor = db): Promise<boolean> =>
      sites.exists(tenantId, siteId, ex),
  };
}

export type TenantsService = ReturnType<typeof createTenantsService>;
