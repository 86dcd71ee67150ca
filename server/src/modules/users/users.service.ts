// Staff accounts: argon2 password hashes, login issuing a JWT, one tenant per user. Logout,
// disable, role change, password reset and delete bump the user's token version, which revokes
// its tokens (a PATCH that changes nothing revokes nothing); a tenant always keeps one enabled
// admin. One sign-in alone ends by its token's id (users.sessions.ts).
import argon2 from 'argon2';
import { AppError, notFound } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import type { StaffRole, StaffSession, StaffState } from '../../platform/http/auth.js';
import type { UserRow } from '../../platform/db/schema.js';
import { recordAudit, wasAudited } from '../audit/audit.service.js';
import { changeOwnPassword, hashPassword, keepAnAdmin } from './users.access.js';
import { endSession, purgeEndedSessions, staffState } from './users.sessions.js';
import type { PasswordHashCost } from '../../platform/config.js';

export interface User {
  id: string;
  email: string;
  role: StaffRole;
  tenantId: string;
  createdAt: string;
  disabled: boolean;
}

const toUser = (row: UserRow): User => ({
  id: row.id,
  email: row.email,
  role: row.role as StaffRole,
  tenantId: row.tenant_id,
  createdAt: row.created_at,
  disabled: row.disabled_at !== null,
});

export function createUsersService(deps: {
  db: Db;
  tenantExists(id: string): Promise<boolean>;
  issueToken(user: {
    id: string;
    tenantId: string;
    role: StaffRole;
    email: string;
    tokenVersion: number;
  }): Promise<string>;
  /** Runs password hashing through the sign-in queue. */
  hashing<T>(work: () => Promise<T>): Promise<T>;
  /** The cost of new hashes (PASSWORD_HASH_*). */
  hashCost: PasswordHashCost;
  /** After a commit that revoked a user's tokens: forget cached state, drop live sockets. */
  revoked(userId: string): void;
  /** After a commit that ended one sign-in: forget cached state, drop that token's sockets. */
  sessionEnded(userId: string, sessionId: string): void;
}) {
  const { db } = deps;
  // A real hash to verify against when the email is unknown, so timing does not reveal accounts:
  // made at the cost of real ones, once.
  let dummyHash: Promise<string> | undefined;

  /**
   * In `tx`: locks the user's row until the commit (an update that changes nothing) and answers
   * it as it is now. Another tenant's user (`tenantId`; null: any tenant, for ADMIN_TOKEN) is
   * "not found".
   */
  async function lockScoped(tx: Executor, id: string, tenantId: string | null): Promise<UserRow> {
    let query = tx
      .updateTable('users')
      .set((eb) => ({ token_version: eb.ref('token_version') }))
      .where('id', '=', id);
    if (tenantId !== null) query = query.where('tenant_id', '=', tenantId);
    const row = await query.returningAll().executeTakeFirst();
    if (!row) throw notFound('user', id);
    return row;
  }

  return {
    async create(
      input: { email: string; password: string; role: StaffRole; tenantId: string },
      actor: string,
    ): Promise<User> {
      if (!(await deps.tenantExists(input.tenantId))) {
        throw new AppError('NOT_FOUND', `tenant "${input.tenantId}" does not exist`);
      }
      const email = input.email.trim().toLowerCase();
      const passwordHash = await deps.hashing(() => hashPassword(input.password, deps.hashCost));
      const user: User = {
        id: newId(),
        email,
        role: input.role,
        tenantId: input.tenantId,
        createdAt: nowIso(),
        disabled: false,
      };
      await db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto('users')
          .values({
            id: user.id,
            tenant_id: user.tenantId,
            email,
            password_hash: passwordHash,
            role: user.role,
            created_at: user.createdAt,
          })
          .onConflict((oc) => oc.column('email').doNothing())
          .returning('id')
          .executeTakeFirst();
        // Emails are unique across tenants; the answer must not tell whether (or where) it exists.
        if (!inserted)
          throw new AppError('CONFLICT', 'this email cannot be used for a new user; choose another');
        await recordAudit(tx, {
          tenantId: user.tenantId,
          actor,
          action: 'user.create',
          subjectType: 'user',
          subjectId: user.id,
          after: { email, role: user.role },
        });
      });
      return user;
    },

    /**
     * A password sign-in from `address`. Both outcomes for an existing user are audited (access
     * events of its tenant): `user.login`, or `user.login_failed` with the reason. An unknown email
     * belongs to no tenant and is not recorded; attempts refused by the sign-in limits never get
     * here, so the rows per email are bounded by LOGIN_MAX_PER_EMAIL.
     */
    async login(
      email: string,
      password: string,
      address = 'unknown',
    ): Promise<{ token: string; user: User }> {
      const row = await db
        .selectFrom('users')
        .selectAll()
        .where('email', '=', email.trim().toLowerCase())
        .executeTakeFirst();
      if (!row) {
        dummyHash ??= hashPassword('not-a-password', deps.hashCost);
        const hash = await dummyHash;
        await deps
          .hashing(() => argon2.verify(hash, password))
          .catch((err: unknown) => {
            if (err instanceof AppError) throw err;
            return false;
          });
        throw new AppError('UNAUTHORIZED', 'wrong email or password');
      }
      const ok = await deps
        .hashing(() => argon2.verify(row.password_hash, password))
        .catch((err: unknown) => {
          if (err instanceof AppError) throw err;
          return false;
        });
      if (!ok || row.disabled_at !== null) {
        await recordAudit(db, {
          tenantId: row.tenant_id,
          actor: `address:${address}`,
          action: 'user.login_failed',
          subjectType: 'user',
          subjectId: row.id,
          after: { reason: ok ? 'disabled' : 'wrong_password', address },
        });
        throw new AppError('UNAUTHORIZED', 'wrong email or password');
      }
      const user = toUser(row);
      const token = await deps.issueToken({ ...user, tokenVersion: row.token_version });
      await recordAudit(db, {
        tenantId: row.tenant_id,
        actor: `user:${row.email}`,
        action: 'user.login',
        subjectType: 'user',
        subjectId: row.id,
        after: { role: row.role, address },
      });
      return { token, user };
    },

    /**
     * A page of the users of a tenant (null: every tenant, for ADMIN_TOKEN), by id. The cursor is
     * the id of a user of that scope: one there now, or one deleted from it since (its audited
     * `user.delete`), so a walk goes on past a user deleted meanwhile. Anything else is a 400.
     */
    async list(filter: { tenantId: string | null; limit: number; cursor?: string }) {
      const { tenantId, limit, cursor } = filter;
      await knownCursor(cursor, async (id) => {
        let user = db.selectFrom('users').select('id').where('id', '=', id);
        if (tenantId !== null) user = user.where('tenant_id', '=', tenantId);
        const found = await user.executeTakeFirst();
        if (found) return found;
        const deleted = await wasAudited(db, {
          tenantId,
          action: 'user.delete',
          subjectType: 'user',
          subjectId: id,
        });
        return deleted ? { id } : undefined;
      });
      let query = db
        .selectFrom('users')
        .selectAll()
        .orderBy('id')
        .limit(limit + 1);
      if (tenantId !== null) query = query.where('tenant_id', '=', tenantId);
      if (cursor !== undefined) query = query.where('id', '>', cursor);
      return pageOf(await query.execute(), limit, toUser);
    },

    /**
     * True when the user is an enabled staff user of this tenant (a table's server, say): a
     * disabled user gets nothing that staff membership grants.
     */
    async isStaffOf(userId: string, tenantId: string, ex: Executor = db): Promise<boolean> {
      const row = await ex
        .selectFrom('users')
        .select('id')
        .where('id', '=', userId)
        .where('tenant_id', '=', tenantId)
        .where('disabled_at', 'is', null)
        .executeTakeFirst();
      return row !== undefined;
    },

    /** For the authenticator: what a staff token is checked against (its ended sessions too). */
    staffState: (userId: string): Promise<StaffState | undefined> => staffState(db, userId),

    /** Ends the calling sign-in only (users.sessions.ts); the user's other tokens keep working. */
    endSession: (userId: string, session: StaffSession, actor: string): Promise<void> =>
      endSession(deps, { userId, session, actor }),

    /** Forgets ended sessions whose tokens have expired (a scheduled task). */
    purgeEndedSessions: (now?: string): Promise<number> => purgeEndedSessions(db, now),

    async update(
      id: string,
      tenantId: string | null,
      changes: { role?: StaffRole; disabled?: boolean; password?: string },
      actor: string,
    ): Promise<User> {
      const { password } = changes;
      const passwordHash =
        password === undefined ? undefined : await deps.hashing(() => hashPassword(password, deps.hashCost));
      const updated = await db.transaction().execute(async (tx) => {
        if ((changes.role !== undefined && changes.role !== 'admin') || changes.disabled === true)
          await keepAnAdmin(tx, id, tenantId, changes.disabled === true ? 'disable' : 'demote');
        // Locking the row first (PostgreSQL) makes the state this change starts from the latest:
        // a concurrent change is neither undone nor misstated in the audit.
        const row = await lockScoped(tx, id, tenantId);
        const disabledAt =
          changes.disabled === undefined
            ? row.disabled_at
            : changes.disabled
              ? (row.disabled_at ?? nowIso())
              : null;
        const role = changes.role ?? row.role;
        // Only a real change (role, enabled state, a new password) ends the user's sessions and
        // is audited; a PATCH that changes nothing answers the user as it is.
        const changed =
          role !== row.role ||
          (disabledAt !== null) !== (row.disabled_at !== null) ||
          passwordHash !== undefined;
        if (!changed) return { row, changed };
        const next = await tx
          .updateTable('users')
          .set((eb) => ({
            role,
            disabled_at: disabledAt,
            token_version: eb('token_version', '+', 1),
            ...(passwordHash !== undefined ? { password_hash: passwordHash } : {}),
          }))
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: 'user.update',
          subjectType: 'user',
          subjectId: id,
          before: { role: row.role, disabled: row.disabled_at !== null },
          // Never the password or its hash: only that it was set.
          after: {
            role,
            disabled: disabledAt !== null,
            ...(passwordHash !== undefined ? { passwordChanged: true } : {}),
          },
        });
        return { row: next, changed };
      });
      if (updated.changed) deps.revoked(id);
      return toUser(updated.row);
    },

    async remove(id: string, tenantId: string | null, actor: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await keepAnAdmin(tx, id, tenantId, 'delete');
        let query = tx.deleteFrom('users').where('id', '=', id);
        if (tenantId !== null) query = query.where('tenant_id', '=', tenantId);
        const row = await query.returningAll().executeTakeFirst();
        if (!row) throw notFound('user', id);
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: 'user.delete',
          subjectType: 'user',
          subjectId: id,
          before: { email: row.email, role: row.role },
        });
      });
      deps.revoked(id);
    },

    /** A new password from the signed-in user (users.access.ts), and a new token for this session. */
    async changeOwnPassword(
      id: string,
      current: string,
      next: string,
      actor: string,
      /** The client address, for the audit row of a wrong current password. */
      address?: string,
    ): Promise<{ token: string; user: User }> {
      const updated = await changeOwnPassword(deps, {
        id,
        current,
        next,
        actor,
        ...(address ? { address } : {}),
      });
      const user = toUser(updated);
      return { token: await deps.issueToken({ ...user, tokenVersion: updated.token_version }), user };
    },

    /** Ends every session of the user (all of its tokens), not only the one presented. */
    async logout(id: string, actor: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const row = await tx
          .updateTable('users')
          .set((eb) => ({ token_version: eb('token_version', '+', 1) }))
          .where('id', '=', id)
          .returning('tenant_id')
          .executeTakeFirst();
        if (!row) return;
        await recordAudit(tx, {
          tenantId: row.tenant_id,
          actor,
          action: 'user.logout',
          subjectType: 'user',
          subjectId: id,
        });
      });
      deps.revoked(id);
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
