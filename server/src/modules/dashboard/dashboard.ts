// Wires the dashboard module: its services, its /v1 routes, and its background sweep, which
// runs while the app is ready (onReady … onClose), so building an app never starts work.
import type { Logger } from 'pino';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/database.js';
import type { Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CommandsService } from '../commands/commands.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import type { PrintingService } from '../printing/printing.service.js';
import type { UsersService } from '../users/users.service.js';
import { createStatsService } from '../reporting/stats.service.js';
import { dashboardRoutes } from './dashboard.routes.js';
import { createExportLinks } from './export-links.js';
import { exportRoutes } from './export.routes.js';
import { createFleetService } from './fleet.service.js';
import { createQrService } from './qr.service.js';
import { createReviewService } from './review.service.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import type { Refunds } from '../payments/refunds.js';
import { createDashboardSweeper } from './sweeper.js';

export interface DashboardDeps {
  auth: Authenticator;
  db: Db;
  config: Pick<
    Config,
    'razorpay' | 'upi' | 'dataDir' | 'dashboardSweepMs' | 'machineOfflineAlertMs' | 'exportMaxRows'
  >;
  logger: Logger;
  /** Fleet views and the sweep read machines; the QR page provisions them. */
  machines: Pick<
    MachinesService,
    | 'get'
    | 'list'
    | 'statuses'
    | 'statusSnapshot'
    | 'offlineSince'
    | 'create'
    | 'findRow'
    | 'setPaymentProfile'
  >;
  orders: Pick<OrdersService, 'get' | 'transition' | 'needingReview' | 'list'>;
  commands: Pick<CommandsService, 'pendingCountsByMachine' | 'recentForMachine' | 'unsuccessfulSince'>;
  printing: Pick<PrintingService, 'summaryBySite'>;
  alerts: Pick<AlertsService, 'raise' | 'resolveSubject'>;
  refunds: Pick<Refunds, 'refundDueForOrder'>;
  /** The charts' revenue: what payments took and refunds gave back (the ledger's revenue). */
  paymentQueries: Pick<PaymentQueries, 'takenByGroup' | 'refundedByGroup'>;
  /** A one-time export link checks that the user who made it still may export. */
  users: Pick<UsersService, 'staffState'>;
  /** A link made with ADMIN_TOKEN works only while ADMIN_TOKEN is the same. */
  adminTokenHash: string;
  /** Relay the outbox now (live events of review decisions and new alerts). */
  afterCommit(): void;
}

export function installDashboard(app: FastifyTypebox, deps: DashboardDeps) {
  const { db, machines } = deps;
  const fleet = createFleetService({ machines, commands: deps.commands, printing: deps.printing });
  const stats = createStatsService({
    db,
    machineSite: async (id, tenantId) => (await machines.get(id, tenantId)).siteId,
    payments: deps.paymentQueries,
  });
  const review = createReviewService({
    db,
    orders: deps.orders,
    refunds: deps.refunds,
    alerts: deps.alerts,
    afterCommit: deps.afterCommit,
  });
  const qr = createQrService({ db, machines, config: deps.config });
  const sweeper = createDashboardSweeper({
    db,
    alerts: deps.alerts,
    machines,
    commands: deps.commands,
    logger: deps.logger,
    everyMs: deps.config.dashboardSweepMs,
    offlineAfterMs: deps.config.machineOfflineAlertMs,
    afterCommit: deps.afterCommit,
  });

  dashboardRoutes(app, { auth: deps.auth, fleet, stats, review, qr });
  const links = createExportLinks({
    db,
    adminTokenHash: deps.adminTokenHash,
    staffState: (id) => deps.users.staffState(id),
  });
  exportRoutes(app, { auth: deps.auth, orders: deps.orders, links, maxRows: deps.config.exportMaxRows });
  app.addHook('onReady', async () => sweeper.start());
  app.addHook('onClose', async () => sweeper.stop());
  return { fleet, stats, review, qr, sweeper };
}
