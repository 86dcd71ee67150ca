// Read model for the dashboard's fleet views: machines with the paid orders still waiting for
// them, a machine's recent commands, and print queue counts per site. Reads only; every write
// goes through the service that owns the table.
import type { CommandView, FleetMachineView, Page, PrintSummaryView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import { likeEscape } from '../../platform/db/like.js';
import { toMachine, type MachinesService } from '../machines/machines.service.js';

export interface FleetFilter {
  tenantId: string | null;
  siteId?: string;
  status?: string;
  kind?: string;
  /** Part of the id or name, case-insensitive. */
  q?: string;
  cursor?: string;
  limit: number;
}

const PENDING_COMMANDS = ['QUEUED', 'SENT', 'ACCEPTED'];

export function createFleetService(deps: { db: Db; machines: Pick<MachinesService, 'get'>; pendingLastSeen(machineId: string): string | undefined }) {
  const { db } = deps;

  async function queuedCounts(machineIds: string[]): Promise<Map<string, number>> {
    if (machineIds.length === 0) return new Map();
    const rows = await db
      .selectFrom('commands')
      .select(['machine_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('machine_id', 'in', machineIds)
      .where('status', 'in', PENDING_COMMANDS)
      .groupBy('machine_id')
      .execute();
    return new Map(rows.map((r) => [r.machine_id, Number(r.n)]));
  }

  return {
    async list(filter: FleetFilter): Promise<Page<FleetMachineView>> {
      let q = db.selectFrom('machines').selectAll().orderBy('id').limit(filter.limit + 1);
      if (filter.tenantId !== null) q = q.where('tenant_id', '=', filter.tenantId);
      if (filter.siteId !== undefined) q = q.where('site_id', '=', filter.siteId);
      if (filter.status !== undefined) q = q.where('status', '=', filter.status);
      if (filter.kind !== undefined) q = q.where('kind', '=', filter.kind);
      if (filter.cursor !== undefined) q = q.where('id', '>', filter.cursor);
      if (filter.q !== undefined && filter.q.trim() !== '') {
        const pattern = `%${likeEscape(filter.q.trim().toLowerCase())}%`;
        q = q.where(sql<boolean>`(lower(id) like ${pattern} escape '\\' or lower(name) like ${pattern} escape '\\')`);
      }
      const rows = await q.execute();
      const page = rows.slice(0, filter.limit);
      const counts = await queuedCounts(page.map((r) => r.id));
      return {
        items: page.map((r) => ({ ...toMachine(r, deps.pendingLastSeen(r.id)), queuedOrders: counts.get(r.id) ?? 0 })),
        nextCursor: rows.length > filter.limit ? (page.at(-1)?.id ?? null) : null,
      };
    },

    /** A machine's most recent commands, newest first (404 for another tenant's machine). */
    async recentCommands(machineId: string, tenantId: string | null, limit: number): Promise<CommandView[]> {
      await deps.machines.get(machineId, tenantId);
      const rows = await db.selectFrom('commands').selectAll().where('machine_id', '=', machineId).orderBy('queued_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map((c) => ({
        id: c.id,
        orderId: c.order_id,
        status: c.status,
        protocol: c.protocol,
        attempts: Number(c.attempts),
        queuedAt: c.queued_at,
        sentAt: c.sent_at,
        acceptedAt: c.accepted_at,
        finishedAt: c.finished_at,
        result: c.result,
        failureCode: c.failure_code,
      }));
    },

    /** Print jobs by status for every site of the tenant (all tenants for ADMIN_TOKEN). */
    async printSummary(tenantId: string | null): Promise<PrintSummaryView[]> {
      let q = db.selectFrom('print_jobs').select(['tenant_id', 'site_id', 'status', (eb) => eb.fn.countAll<number>().as('n')]).groupBy(['tenant_id', 'site_id', 'status']);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      const bySite = new Map<string, PrintSummaryView>();
      for (const r of await q.execute()) {
        const key = `${r.tenant_id}|${r.site_id}`;
        const entry = bySite.get(key) ?? { tenantId: r.tenant_id, siteId: r.site_id, pending: 0, leased: 0, printed: 0, failed: 0 };
        const n = Number(r.n);
        if (r.status === 'PENDING') entry.pending += n;
        else if (r.status === 'LEASED') entry.leased += n;
        else if (r.status === 'PRINTED') entry.printed += n;
        else if (r.status === 'FAILED') entry.failed += n;
        bySite.set(key, entry);
      }
      return [...bySite.values()].sort((a, b) => a.tenantId.localeCompare(b.tenantId) || a.siteId.localeCompare(b.siteId));
    },
  };
}

export type FleetService = ReturnType<typeof createFleetService>;
