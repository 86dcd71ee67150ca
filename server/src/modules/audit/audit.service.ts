// Every change of money or access is written here in the same transaction as the change.
import { insertRows } from '../../platform/db/compiled.js';
import { nowIso, type Executor, newId } from '../../platform/db/database.js';

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
