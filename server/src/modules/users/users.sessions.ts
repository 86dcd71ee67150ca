// A staff user's sign-ins one by one: what a token is checked against (the user's state and the
// ids of its tokens signed out alone), ending the calling token only, and purging ended ids once
// their tokens have expired. Logout (every sign-in) is the token version, in users.service.ts.
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db } from '../../platform/db/database.js';
import type { StaffSession, StaffState } from '../../platform/http/auth.js';
import { recordAudit } from '../audit/audit.service.js';

/**
 * The user's state and its ended sessions not yet expired, in one query (the authenticator caches
 * the answer per user, so an ended session costs no query per request).
 */
export async function staffState(db: Db, userId: string): Promise<StaffState | undefined> {
  const rows = await db
    .selectFrom('users')
    .leftJoin('ended_sessions', (join) =>
      join.onRef('ended_sessions.user_id', '=', 'users.id').on('ended_sessions.expires_at', '>', nowIso()),
    )
    .select([
      'users.tenant_id',
      'users.role',
      'users.token_version',
      'users.disabled_at',
      'ended_sessions.token_id',
    ])
    .where('users.id', '=', userId)
    .execute();
  const row = rows[0];
  if (!row) return undefined;
  const ended = new Set<string>();
  for (const r of rows) if (r.token_id !== null) ended.add(r.token_id);
  return {
    tenantId: row.tenant_id,
    role: row.role,
    tokenVersion: row.token_version,
    disabled: row.disabled_at !== null,
    endedSessions: ended,
  };
}

/**
 * Ends one sign-in of the user (the calling token's `session`), audited as `user.session_end`
 * with the token's id. The same session ended again (two requests racing with one token) is
 * `401` and audited once; the user's other tokens are untouched.
 */
export async function endSession(
  deps: { db: Db; sessionEnded(userId: string, sessionId: string): void },
  input: { userId: string; session: StaffSession; actor: string },
): Promise<void> {
  const { userId, session, actor } = input;
  await deps.db.transaction().execute(async (tx) => {
    const user = await tx.selectFrom('users').select('tenant_id').where('id', '=', userId).executeTakeFirst();
    const ended = user
      ? await tx
          .insertInto('ended_sessions')
          .values({
            token_id: session.id,
            user_id: userId,
            expires_at: session.expiresAt,
            ended_at: nowIso(),
          })
          .onConflict((oc) => oc.column('token_id').doNothing())
          .returning('token_id')
          .executeTakeFirst()
      : undefined;
    if (!user || !ended) throw new AppError('UNAUTHORIZED', 'this session has ended; sign in again');
    await recordAudit(tx, {
      tenantId: user.tenant_id,
      actor,
      action: 'user.session_end',
      subjectType: 'user',
      subjectId: userId,
      after: { tokenId: session.id, expiresAt: session.expiresAt },
    });
  });
  deps.sessionEnded(userId, session.id);
}

/** Deletes the ended sessions whose tokens have expired by `now` (their tokens are refused anyway). */
export async function purgeEndedSessions(db: Db, now = nowIso()): Promise<number> {
  const result = await db.deleteFrom('ended_sessions').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
