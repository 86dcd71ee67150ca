// Printers connected on /machines get receipts pushed (`print_job`), one at a time, instead
// of polling. The job is leased to the printer first, so the usual lease rules apply.
import { PRINT_JOB_EVENT, type PrintJobPush } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import type { Presence } from '../gateway/presence.js';
import type { PrintingService } from './printing.service.js';

export function createPrintPush(deps: { presence: Presence; printing: PrintingService; logger: Logger }) {
  const busy = new Set<string>();

  async function offerTo(printer: string, tenantId: string, siteId: string): Promise<void> {
    const conn = deps.presence.local(printer);
    if (!conn?.socket || busy.has(printer)) return;
    busy.add(printer);
    try {
      if (await deps.printing.holdsLease(printer, tenantId, siteId)) return;
      const job = await deps.printing.leaseNext({ tenantId, siteId, printer });
      if (job) conn.socket?.emit(PRINT_JOB_EVENT, job satisfies PrintJobPush);
    } catch (err) {
      deps.logger.warn({ err, printer }, 'could not push a print job');
    } finally {
      busy.delete(printer);
    }
  }

  return {
    offer(tenantId: string, siteId: string): void {
      for (const conn of deps.presence.connections()) {
        if (
          conn.kind === 'printer' &&
          conn.protocol === 'v2' &&
          conn.tenantId === tenantId &&
          conn.siteId === siteId
        ) {
          void offerTo(conn.machineId, tenantId, siteId);
        }
      }
    },
  };
}
