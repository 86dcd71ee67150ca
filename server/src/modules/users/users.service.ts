// Staff accounts: argon2 password hashes, login issuing a JWT, one tenant per user.
import argon2 from 'argon2';
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db, newId } from '../../platform/db/database.js';
import type { StaffRole } from '../../platform/http/auth.js';
import { recordAudit } from '../audit/audit.service.js';

export interface User {
  id: string;
  email: string;
  role: StaffRole;
  tenantId: string;
  createdAt: string;
}

// A real hash to verify against when the email is unknown, so timing does not reveal accounts.
let dummyHash: Promise<string> | undefined;

export function createUsersService(deps: {
  db: Db;
  tenantExists(id: string): Promise<boolean>;
  issueToken(user: { id: string; tenantId: string; role: StaffRole; email: string }): Promise<string>;
}) {
  const { db } = deps;
  return {
    async create(input: { email: string; password: string; role: StaffRole; tenantId: string }, actor: string): Promise<User> {
      if (!(await deps.tenantExists(input.tenantId))) {
        throw new AppError('NOT_FOUND', `tenant "${input.tenantId}" does not exist`);
      }
      const email = input.email.trim().toLowerCase();
      const passwordHash = await argon2.hash(input.password, { type: argon2.argon2id });
      const user = { id: newId(), email, role: input.role, tenantId: input.tenantId, createdAt: nowIso() };
      await db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto('users')
          .values({ id: user.id, tenant_id: user.tenantId, email, password_hash: passwordHash, role: user.role, created_at: user.createdAt })
          .onConflict((oc) => oc.column('email').doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) throw new AppError('CONFLICT', `a user with email ${email} already exists`);
        await recordAudit(tx, { tenantId: user.tenantId, actor, action: 'user.create', subjectType: 'user', subjectId: user.id, after: { email, role: user.role } });
      });
      return user;
    },

    async login(email: string, password: string): Promise<{ token: string; user: User }> {
      const row = await db.selectFrom('users').selectAll().where('email', '=', email.trim().toLowerCase()).executeTakeFirst();
      if (!row) {
        dummyHash ??= argon2.hash('not-a-password');
        await argon2.verify(await dummyHash, password).catch(() => false);
        throw new AppError('UNAUTHORIZED', 'wrong email or password');
      }
      const ok = await argon2.verify(row.password_hash, password).catch(() => false);
      if (!ok) throw new AppError('UNAUTHORIZED', 'wrong email or password');
      const user: User = { id: row.id, email: row.email, role: row.role as StaffRole, tenantId: row.tenant_id, createdAt: row.created_at };
      return { token: await deps.issueToken(user), user };
    },
  };
}

export type UsersService = ReturnType<typeof createUsersService>;
