// Every change of money or access is written here in the same transaction as the change. The
// log is append-only: nothing but `recordAudit` writes it, and the API only reads it.
import { sql } from 'kysely';
import { insertRows } from '../../platform/db/compiled.js';
import { nowIso, type Executor, newId } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import type { AuditLogTable } from '../../platform/db/schema.js';

export interface AuditEntry {
  tenantId: string | null;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before?: unknown;
  after?: unknown;
}

// One or more rows on every payment, verification and settlement: compiled once.
const insertAudit = insertRows('audit_log');

export async function recordAudit(ex: Executor, entry: AuditEntry): Promise<void> {
  await insertAudit(ex, [
    {
      id: newId(),
      tenant_id: entry.tenantId,
      actor: entry.actor,
      action: entry.action,
      subject_type: entry.subjectType,
      subject_id: entry.subjectId,
      before: entry.before === undefined ? null : JSON.stringify(entry.before),
      after: entry.after === undefined ? null : JSON.stringify(entry.after),
      at: nowIso(),
    },
  ]);
}

/** True when the log holds `action` on that subject (of `tenantId`; null: any tenant). */
export async function wasAudited(
  ex: Executor,
  entry: { tenantId: string | null; action: string; subjectType: string; subjectId: string },
): Promise<boolean> {
  let q = ex
    .selectFrom('audit_log')
    .select('id')
    .where('subject_id', '=', entry.subjectId)
    .where('subject_type', '=', entry.subjectType)
    .where('action', '=', entry.action);
  if (entry.tenantId !== null) q = q.where('tenant_id', '=', entry.tenantId);
  return (await q.limit(1).executeTakeFirst()) !== undefined;
}

/** One audit row as the API shows it: `before` and `after` parsed (null when not recorded). */
export interface AuditRecord {
  id: string;
  tenantId: string | null;
  actor: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before: unknown;
  after: unknown;
  at: string;
}

export interface AuditFilter {
  /** The tenants whose rows are read; null: every tenant and the rows of none (ADMIN_TOKEN). */
  tenants: readonly string[] | null;
  /** An exact action, or a prefix ending in `*` (`user.*`). */
  action?: string;
  actor?: string;
  subjectType?: string;
  subjectId?: string;
  /** `at` from (inclusive) and to (exclusive), ISO-8601. */
  from?: string;
  to?: string;
  cursor?: string;
  limit: number;
}

const parsed = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

const toRecord = (r: AuditLogTable): AuditRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  actor: r.actor,
  action: r.action,
  subjectType: r.subject_type,
  subjectId: r.subject_id,
  before: parsed(r.before),
  after: parsed(r.after),
  at: r.at,
});

/** The audit log, newest first, in keyset pages (the cursor is the last id of a page). */
export async function listAudit(
  ex: Executor,
  f: AuditFilter,
): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
  await knownCursor(f.cursor, (id) => {
    let row = ex.selectFrom('audit_log').select('id').where('id', '=', id);
    if (f.tenants !== null) row = row.where('tenant_id', 'in', f.tenants);
    return row.executeTakeFirst();
  });
  let q = ex
    .selectFrom('audit_log')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(f.limit + 1);
  if (f.tenants !== null) q = q.where('tenant_id', 'in', f.tenants);
  if (f.action !== undefined) {
    if (f.action.endsWith('*')) {
      // A prefix compared exactly: LIKE would read `_` as a wildcard (and SQLite's is case-blind).
      const prefix = f.action.slice(0, -1);
      q = q.where(sql<string>`substr(action, 1, ${prefix.length})`, '=', prefix);
    } else {
      q = q.where('action', '=', f.action);
    }
  }
  if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
  if (f.subjectType !== undefined) q = q.where('subject_type', '=', f.subjectType);
  if (f.subjectId !== undefined) q = q.where('subject_id', '=', f.subjectId);
  if (f.from !== undefined) q = q.where('at', '>=', f.from);
  if (f.to !== undefined) q = q.where('at', '<', f.to);
  if (f.cursor !== undefined) q = q.where('id', '<', f.cursor);
  return pageOf(await q.execute(), f.limit, toRecord);
}
