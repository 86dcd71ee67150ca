// Queries on the machines table (owned by the machines module).
import type { Updateable } from 'kysely';
import type { Db, Executor } from '../../platform/db/database.js';
import type { MachineRow, MachinesTable } from '../../platform/db/schema.js';

export function createMachinesRepo(db: Db) {
  return {
    insert(row: MachineRow, ex: Executor = db) {
      return ex.insertInto('machines').values(row).onConflict((oc) => oc.column('id').doNothing()).returning('id').executeTakeFirst();
    },
    findById(id: string, ex: Executor = db): Promise<MachineRow | undefined> {
      return ex.selectFrom('machines').selectAll().where('id', '=', id).executeTakeFirst();
    },
    findByKeyHash(keyHash: string): Promise<Pick<MachineRow, 'id' | 'tenant_id' | 'site_id'> | undefined> {
      return db.selectFrom('machines').select(['id', 'tenant_id', 'site_id']).where('key_hash', '=', keyHash).executeTakeFirst();
    },
    findByQrCodeId(qrCodeId: string, ex: Executor = db): Promise<MachineRow | undefined> {
      return ex.selectFrom('machines').selectAll().where('payment_qr_code_id', '=', qrCodeId).executeTakeFirst();
    },
    list(filter: { tenantId: string | null; after?: string; limit: number; status?: string; siteId?: string; kind?: string }) {
      let q = db.selectFrom('machines').selectAll().orderBy('id').limit(filter.limit);
      if (filter.tenantId !== null) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.after !== undefined) q = q.where('id', '>', filter.after);
      if (filter.status !== undefined) q = q.where('status', '=', filter.status);
      if (filter.siteId !== undefined) q = q.where('site_id', '=', filter.siteId);
      if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
      return q.execute();
    },
    update(id: string, changes: Updateable<MachinesTable>, ex: Executor = db) {
      return ex.updateTable('machines').set(changes).where('id', '=', id).executeTakeFirst();
    },
    /** Marks a machine offline only if `connectionId` is still its current connection. */
    markOffline(id: string, connectionId: string | null, at: string) {
      let q = db.updateTable('machines').set({ status: 'OFFLINE', socket_connected: 0, connection_id: null, updated_at: at }).where('id', '=', id);
      q = connectionId === null ? q : q.where('connection_id', '=', connectionId);
      return q.returning(['id', 'tenant_id', 'last_seen_at']).executeTakeFirst();
    },
    async touchMany(seen: ReadonlyMap<string, string>): Promise<void> {
      if (seen.size === 0) return;
      await db.transaction().execute(async (tx) => {
        // Same lock order in every process, so two batches never deadlock each other.
        for (const [id, at] of [...seen].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
          await tx.updateTable('machines').set({ last_seen_at: at }).where('id', '=', id).execute();
        }
      });
    },
    /** After a crash nothing is connected to this process any more. */
    resetConnections(connectionPrefix: string) {
      return db
        .updateTable('machines')
        .set({ status: 'OFFLINE', socket_connected: 0, connection_id: null })
        .where('connection_id', 'like', `${connectionPrefix}%`)
        .execute();
    },
  };
}

export type MachinesRepo = ReturnType<typeof createMachinesRepo>;
