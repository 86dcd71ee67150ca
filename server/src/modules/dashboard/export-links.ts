// One-time links to the orders CSV export. The export needs a bearer header, which a plain link
// cannot send, so the dashboard used to fetch the whole file into the page's memory. Instead it
// asks for a link (POST /v1/orders/export-links, with its credential and the filters) and lets the
// browser follow it: the file goes straight to disk.
//
// A link's token is 256 random bits (base64url), stored only as its sha256, with who asked (a
// staff user with the token version and id of that sign-in, or ADMIN_TOKEN and a fingerprint of which
// ADMIN_TOKEN) in which tenant, and the filters. It works once, within EXPORT_LINK_TTL_MS: the one conditional UPDATE … RETURNING that
// spends it is atomic on both engines, so two requests racing with one link (two processes, two
// PostgreSQL connections) get one export between them. Spent and expired rows are deleted by the
// dashboard sweep (sweeper.ts, every DASHBOARD_SWEEP_MS).
import { randomBytes } from 'node:crypto';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { ExportLinksTable } from '../../platform/db/schema.js';
import { AppError } from '../../platform/errors.js';
import { sha256, type StaffPrincipal, type StaffRole, type StaffState } from '../../platform/http/auth.js';

export const EXPORT_LINK_TTL_MS = 60_000;

/** The filters an export link carries (the export's query, as validated by its schema). */
export interface ExportLinkFilters {
  machineId?: string;
  siteId?: string;
  status?: string;
  from?: string;
  to?: string;
}

const UNKNOWN_LINK = `this download link is unknown, used or expired: a link works once, within ${EXPORT_LINK_TTL_MS / 1000} s of being made; export again`;

/** Deletes links spent or expired by `now` (the dashboard sweep). */
export async function deleteSpentExportLinks(ex: Executor, now = nowIso()): Promise<number> {
  const result = await ex
    .deleteFrom('export_links')
    .where((eb) => eb.or([eb('expires_at', '<=', now), eb('used_at', 'is not', null)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Which ADMIN_TOKEN made a link: a hash of its hash, with a purpose of its own, so the stored value
 * is not the one the authenticator compares (ADMIN_TOKEN is at least 16 random characters).
 */
const adminKeyOf = (adminTokenHash: string): string => sha256(`kioskhub export link\0${adminTokenHash}`);

export function createExportLinks(deps: {
  db: Db;
  /** The sha256 of ADMIN_TOKEN as this process knows it (changed by a restart with a new one). */
  adminTokenHash: string;
  /** The staff user as it is now (the users service, uncached). */
  staffState(userId: string): Promise<StaffState | undefined>;
}) {
  const { db } = deps;
  const adminKey = adminKeyOf(deps.adminTokenHash);

  /** The caller the link was made by, as it stands now; 401 when it may no longer export. */
  async function principalOf(link: ExportLinksTable): Promise<StaffPrincipal> {
    if (link.user_id === null) {
      if (link.admin_key !== adminKey) {
        throw new AppError(
          'UNAUTHORIZED',
          'this download link was made with an ADMIN_TOKEN that has been changed since; export again with the current one',
        );
      }
      return { kind: 'admin', tenantId: null, actor: link.actor };
    }
    const state = await deps.staffState(link.user_id);
    const gone = (why: string) =>
      new AppError('UNAUTHORIZED', `the user who made this download link ${why}; sign in and export again`);
    if (!state) throw gone('no longer exists');
    if (state.disabled) throw gone('is disabled');
    if (state.tenantId !== link.tenant_id) throw gone('belongs to another tenant now');
    // A sign-out, a role change or a new password gives the user a new version.
    if (state.tokenVersion !== link.token_version) throw gone('has signed out or been changed since');
    // This sign-in alone signed out (DELETE /v1/auth/session) since the link was made.
    if (link.session_id !== null && state.endedSessions.has(link.session_id))
      throw gone('has signed out since');
    return {
      kind: 'user',
      userId: link.user_id,
      tenantId: state.tenantId,
      role: state.role as StaffRole,
      actor: link.actor,
      tokenVersion: state.tokenVersion,
    };
  }

  return {
    /** A new link for the caller and these (validated) filters: its token, and when it expires. */
    async create(
      principal: StaffPrincipal,
      filters: ExportLinkFilters,
    ): Promise<{ token: string; expiresAt: string }> {
      // The version of the sign-in that asks (its token's), not the user's version now: a sign-in
      // revoked since it was checked (a process's cached check) makes a link that never works.
      const tokenVersion = principal.kind === 'user' ? principal.tokenVersion : null;
      const token = randomBytes(32).toString('base64url');
      const now = Date.now();
      const expiresAt = new Date(now + EXPORT_LINK_TTL_MS).toISOString();
      await db
        .insertInto('export_links')
        .values({
          token_hash: sha256(token),
          user_id: principal.kind === 'user' ? principal.userId : null,
          tenant_id: principal.tenantId,
          token_version: tokenVersion,
          session_id: principal.kind === 'user' ? (principal.session?.id ?? null) : null,
          admin_key: principal.kind === 'admin' ? adminKey : null,
          actor: principal.actor,
          filters: JSON.stringify(filters),
          expires_at: expiresAt,
          used_at: null,
          created_at: new Date(now).toISOString(),
        })
        .execute();
      return { token, expiresAt };
    },

    /**
     * Spends the link (once, atomically) and answers who may export what with it: the principal
     * as it stands now and the stored filters. Unknown, used or expired: 401; the user deleted,
     * disabled, signed out or changed (role, password) since: 401.
     * `spend: false` (a HEAD) checks the same without spending it.
     */
    async redeem(
      token: string,
      options: { spend: boolean } = { spend: true },
    ): Promise<{ principal: StaffPrincipal; filters: ExportLinkFilters }> {
      const now = nowIso();
      const hash = sha256(token);
      const link = options.spend
        ? await db
            .updateTable('export_links')
            .set({ used_at: now })
            .where('token_hash', '=', hash)
            .where('used_at', 'is', null)
            .where('expires_at', '>', now)
            .returningAll()
            .executeTakeFirst()
        : await db
            .selectFrom('export_links')
            .selectAll()
            .where('token_hash', '=', hash)
            .where('used_at', 'is', null)
            .where('expires_at', '>', now)
            .executeTakeFirst();
      if (!link) throw new AppError('UNAUTHORIZED', UNKNOWN_LINK);
      const principal = await principalOf(link);
      return { principal, filters: JSON.parse(link.filters) as ExportLinkFilters };
    },
  };
}

export type ExportLinks = ReturnType<typeof createExportLinks>;
