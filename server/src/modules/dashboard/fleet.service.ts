// Read model for the dashboard's fleet views: machines with the paid orders still waiting for
// them, a machine's recent commands, and print queue counts per site. Each read goes through
// the service of the module that owns the table (machines, commands, printing).
import type {
  CommandView,
  FleetMachineView,
  FleetSummaryView,
  Page,
  PrintSummaryView,
} from '@kioskhub/protocol';
import type { CommandsService } from '../commands/commands.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { PrintingService } from '../printing/printing.service.js';

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

export function createFleetService(deps: {
  machines: Pick<MachinesService, 'get' | 'list' | 'statuses'>;
  commands: Pick<CommandsService, 'pendingCountsByMachine' | 'recentForMachine'>;
  printing: Pick<PrintingService, 'summaryBySite'>;
}) {
  const { machines, commands } = deps;

  return {
    async list(filter: FleetFilter): Promise<Page<FleetMachineView>> {
      const page = await machines.list(filter);
      const counts = await commands.pendingCountsByMachine(page.items.map((m) => m.id));
      return {
        items: page.items.map((m) => ({ ...m, queuedOrders: counts.get(m.id) ?? 0 })),
        nextCursor: page.nextCursor,
      };
    },

    /** Every machine the filter matches, counted: the fleet page's summary line, whatever is loaded. */
    async summary(filter: Omit<FleetFilter, 'cursor' | 'limit'>): Promise<FleetSummaryView> {
      const all = await machines.statuses(filter);
      const counts = await commands.pendingCountsByMachine(all.map((m) => m.id));
      let queuedOrders = 0;
      for (const n of counts.values()) queuedOrders += n;
      return {
        machines: all.length,
        online: all.filter((m) => m.status !== 'OFFLINE').length,
        queuedOrders,
      };
    },

    /** A machine's most recent commands, newest first (404 for another tenant's machine). */
    async recentCommands(machineId: string, tenantId: string | null, limit: number): Promise<CommandView[]> {
      await machines.get(machineId, tenantId);
      return commands.recentForMachine(machineId, limit);
    },

    /** Print jobs by status for every site of the tenant (all tenants for ADMIN_TOKEN). */
    printSummary(tenantId: string | null): Promise<PrintSummaryView[]> {
      return deps.printing.summaryBySite(tenantId);
    },
  };
}

export type FleetService = ReturnType<typeof createFleetService>;
