// Wires water operations for staff: the verification record, the water reporting routes, and
// the water alerts job (queued by the platform scheduler, run by the job table's relay).
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/database.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import type { OutboxRelay } from '../../platform/outbox.js';
import type { Scheduler } from '../../platform/scheduler.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import { createWaterStatsService } from '../reporting/water-stats.service.js';
import { createWaterVerifications } from './verifications.js';
import { createWaterAlerts } from './water-alerts.js';
import { waterOpsRoutes } from './water-ops.routes.js';

export function createWaterOps(deps: {
  db: Db;
  config: Pick<Config, 'waterAlertSweepMs' | 'paymentStuckGraceMs'>;
  machines: Pick<MachinesService, 'findRow'>;
  alerts: Pick<AlertsService, 'raiseUnlessOpen' | 'unresolved' | 'resolve'>;
  jobs: Pick<OutboxRelay, 'handle' | 'flushSoon'>;
  scheduler: Pick<Scheduler, 'every'>;
  payments: Pick<PaymentQueries, 'planRevenue' | 'stuckPending'>;
  customers: Pick<CustomersService, 'planNames' | 'names'>;
}) {
  const { db } = deps;
  const stats = createWaterStatsService({ db, payments: deps.payments, customers: deps.customers });
  const verifications = createWaterVerifications({
    db,
    kioskExists: async (id, tenantId) => {
      const m = await deps.machines.findRow(id);
      return m !== undefined && m.kind === 'water' && (tenantId === null || m.tenant_id === tenantId);
    },
    customerNames: (ids) => deps.customers.names(ids),
  });
  const alerts = createWaterAlerts({
    db,
    alerts: deps.alerts,
    conditions: stats,
    paymentStuckGraceMs: deps.config.paymentStuckGraceMs,
  });
  deps.jobs.handle('water_alerts', async () => {
    const { raised } = await alerts.sweepOnce();
    if (raised > 0) deps.jobs.flushSoon(); // the alerts' live events
  });
  deps.scheduler.every('water-alerts', deps.config.waterAlertSweepMs, async () => {
    await alerts.queueSweep();
    deps.jobs.flushSoon();
  });
  return {
    stats,
    verifications,
    alerts,
    routes: (app: FastifyTypebox) => waterOpsRoutes(app, { stats, verifications }),
  };
}

export type WaterOps = ReturnType<typeof createWaterOps>;
