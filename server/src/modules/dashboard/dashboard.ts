// Wires the dashboard module: its services, its /v1 routes, and its background sweep, which
// runs while the app is ready (onReady … onClose), so building an app never starts work.
import type { Logger } from 'pino';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/database.js';
import type { Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import { dashboardRoutes } from './dashboard.routes.js';
import { exportRoutes } from './export.routes.js';
import { createFleetService } from './fleet.service.js';
import { createQrService } from './qr.service.js';
import { createReviewService } from './review.service.js';
import { createStatsService } from '../reporting/stats.service.js';
import { createDashboardSweeper } from './sweeper.js';

export interface DashboardDeps {
  auth: Authenticator;
  db: Db;
  config: Pick<Config, 'razorpay' | 'upi' | 'dataDir' | 'dashboardSweepMs' | 'machineOfflineAlertMs'>;
  logger: Logger;
  machines: MachinesService;
  orders: OrdersService;
  alerts: AlertsService;
  pendingLastSeen(machineId: string): string | undefined;
  /** Relay the outbox now (live events of review decisions and new alerts). */
  afterCommit(): void;
}

export function installDashboard(app: FastifyTypebox, deps: DashboardDeps) {
  const { db, machines } = deps;
  const fleet = createFleetService({ db, machines, pendingLastSeen: deps.pendingLastSeen });
  const stats = createStatsService({ db, machineSite: async (id, tenantId) => (await machines.get(id, tenantId)).siteId });
  const review = createReviewService({ db, orders: deps.orders, afterCommit: deps.afterCommit });
  const qr = createQrService({ db, machines, config: deps.config });
  const sweeper = createDashboardSweeper({ db, alerts: deps.alerts, logger: deps.logger, everyMs: deps.config.dashboardSweepMs, offlineAfterMs: deps.config.machineOfflineAlertMs, afterCommit: deps.afterCommit });

  dashboardRoutes(app, { auth: deps.auth, fleet, stats, review, qr });
  exportRoutes(app, { auth: deps.auth, orders: deps.orders });
  app.addHook('onReady', async () => sweeper.start());
  app.addHook('onClose', async () => sweeper.stop());
  return { fleet, stats, review, qr, sweeper };
}
