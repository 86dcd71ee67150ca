// Two rules of staff access kept apart from the account basics: a tenant keeps an enabled admin,
// and a staff user changes its own password by proving the current one.
import argon2 from 'argon2';
import { SqliteAdapter } from 'kysely';
import { AppError, forbidden } from '../../platform/errors.js';
import type { Db, Executor } from '../../platform/db/database.js';
import type { UserRow } from '../../platform/db/schema.js';
import { recordAudit } from '../audit/audit.service.js';
import type { PasswordHashCost } from '../../platform/config.js';

/**
 * In `tx`, before `id` itself is locked: a tenant admin (`tenantId`) may not leave its tenant
 * without an enabled admin (CONFLICT); ADMIN_TOKEN (null), which can always recover, may. The
 * tenant's enabled admins are locked in id order first (PostgreSQL; SQLite runs one writer at a
 * time), so two admins demoting each other at once are decided one after the other.
 */
export async function keepAnAdmin(
  tx: Executor,
  id: string,
  tenantId: string | null,
  what: string,
): Promise<void> {
  if (tenantId === null) return;
  const target = await tx
    .selectFrom('users')
    .select(['tenant_id', 'role', 'disabled_at'])
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
  if (!target || target.role !== 'admin' || target.disabled_at !== null) return;
  let admins = tx
    .selectFrom('users')
    .select('id')
    .where('tenant_id', '=', target.tenant_id)
    .where('role', '=', 'admin')
    .where('disabled_at', 'is', null)
    .orderBy('id');
  if (!(tx.getExecutor().adapter instanceof SqliteAdapter)) admins = admins.forUpdate();
  const locked = await admins.execute();
  if (locked.some((a) => a.id === id) && !locked.some((a) => a.id !== id)) {
    throw new AppError(
      'CONFLICT',
      `cannot ${what} the last enabled admin of tenant "${target.tenant_id}"; make another user admin first`,
    );
  }
}

/** An argon2id hash of a staff password at the configured cost (the hash records it for verify). */
export const hashPassword = (password: string, cost: PasswordHashCost): Promise<string> =>
  argon2.hash(password, { type: argon2.argon2id, memoryCost: cost.memoryKib, timeCost: cost.timeCost });

/**
 * The signed-in user sets a new password after proving the current one (FORBIDDEN otherwise, so
 * a stolen token alone cannot take the account). Every token of the user is revoked; the caller
 * issues a new one from the row answered. Audited as `user.password_change`.
 */
export async function changeOwnPassword(
  deps: {
    db: Db;
    hashing<T>(work: () => Promise<T>): Promise<T>;
    hashCost: PasswordHashCost;
    revoked(userId: string): void;
  },
  input: { id: string; current: string; next: string; actor: string; address?: string },
): Promise<UserRow> {
  const { db } = deps;
  const row = await db.selectFrom('users').selectAll().where('id', '=', input.id).executeTakeFirst();
  if (!row || row.disabled_at !== null) throw new AppError('UNAUTHORIZED', 'this session has ended');
  const ok = await deps
    .hashing(() => argon2.verify(row.password_hash, input.current))
    .catch((err: unknown) => {
      if (err instanceof AppError) throw err;
      return false;
    });
  if (!ok) {
    // A wrong guess with a valid token (a stolen one, say) is audited like a failed sign-in.
    await recordAudit(db, {
      tenantId: row.tenant_id,
      actor: input.actor,
      action: 'user.password_change_failed',
      subjectType: 'user',
      subjectId: input.id,
      after: { reason: 'wrong_current_password', ...(input.address ? { address: input.address } : {}) },
    });
    throw forbidden('the current password is wrong');
  }
  const passwordHash = await deps.hashing(() => hashPassword(input.next, deps.hashCost));
  const updated = await db.transaction().execute(async (tx) => {
    // Only from the state the current password was checked against: a change made meanwhile
    // (disabled, another password, a role) wins and this session has ended.
    const changed = await tx
      .updateTable('users')
      .set({ password_hash: passwordHash, token_version: row.token_version + 1 })
      .where('id', '=', input.id)
      .where('token_version', '=', row.token_version)
      .where('disabled_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!changed) throw new AppError('UNAUTHORIZED', 'this session has ended; sign in again');
    await recordAudit(tx, {
      tenantId: changed.tenant_id,
      actor: input.actor,
      action: 'user.password_change',
      subjectType: 'user',
      subjectId: input.id,
    });
    return changed;
  });
  deps.revoked(input.id);
  return updated;
}
