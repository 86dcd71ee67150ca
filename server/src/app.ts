// Builds the whole application from config: storage, services, HTTP routes, the machine
// gateway and live updates. Nothing listens here; main.ts (or a test) calls listen().
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { OtaNext } from '@kioskhub/protocol';
import type { Config } from './platform/config.js';
import { newId, openDatabase, type OpenedDatabase } from './platform/db/database.js';
import { lockDataDir, type DataDirLock } from './platform/db/data-dir-lock.js';
import { configureGroupCommit } from './platform/db/group-commit.js';
import { constantTimeEqual, createAuthenticator, sha256 } from './platform/http/auth.js';
import { compileTrust } from './platform/http/client-address.js';
import { createLoginGuard, createWindowCounter } from './platform/http/login-guard.js';
import { installSecurityHeaders, logSerializers } from './platform/http/security-headers.js';
import { installErrorHandling } from './platform/http/errors-plugin.js';
import { installStaffGuard } from './platform/http/staff-guard.js';
import { OPERATOR_TENANT } from './platform/operator-scope.js';
import type { FastifyTypebox } from './platform/http/fastify.js';
import { opsRoutes } from './platform/http/ops.routes.js';
import { EntityId, ErrorResponse } from './platform/http/schemas.js';
import { installValidation } from './platform/http/validation.js';
import { cachedSerializers } from './platform/http/serialization.js';
import { installRateLimits } from './platform/http/rate-limit.js';
import { throttledWarning } from './platform/http/throttled-warning.js';
import { createMetrics } from './platform/metrics.js';
import { createOutboxRelay } from './platform/outbox.js';
import { createRealtime } from './platform/realtime.js';
import { createScheduler } from './platform/scheduler.js';
import { createCommandsService } from './modules/commands/commands.service.js';
import { createDispatcher } from './modules/gateway/dispatcher.js';
import { installMachineGateway, newNodeId } from './modules/gateway/machine-gateway.js';
import { createPresence } from './modules/gateway/presence.js';
import { createMqttTransport, type MqttTransport } from './modules/mqtt/mqtt.transport.js';
import { installMqttOta } from './modules/mqtt/mqtt-ota.js';
import { installLiveGateway } from './modules/live/live.gateway.js';
import { createMachinesRepo } from './modules/machines/machines.repo.js';
import { machinesRoutes } from './modules/machines/machines.routes.js';
import { createMachinesService } from './modules/machines/machines.service.js';
import { createOrdersRepo } from './modules/orders/orders.repo.js';
import { ordersRoutes } from './modules/orders/orders.routes.js';
import { createOrdersService } from './modules/orders/orders.service.js';
import { paymentsRoutes } from './modules/payments/payments.routes.js';
import { createPaymentsService } from './modules/payments/payments.service.js';
import { createPaymentsRepo } from './modules/payments/payments.repo.js';
import { createPaymentQueries } from './modules/payments/payment-queries.js';
import { createSettlement } from './modules/payments/settlement.js';
import { createRefunds, RefundRefusedError } from './modules/payments/refunds.js';
import { createRefundPolls } from './modules/payments/refund-polls.js';
import { createIntents } from './modules/payments/intents.js';
import { createMethodRegistry } from './modules/payments/methods.js';
import { createArrivals } from './modules/payments/arrivals.js';
import { cardMethod, createCardPayments } from './modules/payments/card-payments.js';
import { createSurplus } from './modules/payments/surplus.js';
import { bankTransferMethod } from './providers/bank/bank.method.js';
import { bankWebhookRoutes } from './providers/bank/bank.routes.js';
import { createStripeGateway } from './providers/stripe/stripe.gateway.js';
import { stripeWebhookRoutes } from './providers/stripe/stripe.routes.js';
import { createSms, WITHHELD_SMS_TEXT } from './modules/messaging/sms.js';
import { createAtSmsClient } from './providers/africastalking/at.api.js';
import {
  createCustomersService,
  createWalletTopupSettlement,
} from './modules/customers/customers.service.js';
import { createCustomersStaff } from './modules/customers/customers-staff.js';
import { customersRoutes } from './modules/customers/customers.routes.js';
import { createPlans } from './modules/customers/plans.js';
import { listCustomerDispenses } from './modules/water/customer-dispenses.js';
import { createRazorpayClient, isRazorpayRefusal } from './providers/razorpay/razorpay.api.js';
import { fetchRazorpayRefundNews } from './providers/razorpay/razorpay.refunds.js';
import { createMomoClient } from './providers/momo/momo.api.js';
import { momoStatusSource } from './providers/momo/momo.status.js';
import { momoCallbackRoutes } from './providers/momo/momo.routes.js';
import { createAirtelClient } from './providers/airtel/airtel.api.js';
import { airtelStatusSource } from './providers/airtel/airtel.status.js';
import { airtelCallbackRoutes } from './providers/airtel/airtel.routes.js';
import { africasTalkingRoutes } from './providers/africastalking/at.routes.js';
import { createMobileMoney } from './modules/mobile-money/mobile-money.service.js';
import { createPlanSettlement } from './modules/mobile-money/plan-settlement.js';
import { createWaterNotices } from './modules/water-messaging/notices.js';
import { createPinSealer, createWater } from './modules/water/water.module.js';
import { waterRoutes } from './modules/water/water.routes.js';
import { waterTelemetry } from './modules/water/water-mqtt.js';
import { createSmsCommands } from './modules/water-messaging/sms-commands.js';
import { createUssd } from './modules/water-messaging/ussd.js';
import { createOrderSettlement } from './modules/orders/order-settlement.js';
import { createCafe } from './modules/cafe/cafe.module.js';
import { tenantsRoutes } from './modules/tenants/tenants.routes.js';
import { createTenantsService } from './modules/tenants/tenants.service.js';
import { usersRoutes } from './modules/users/users.routes.js';
import { createUsersService } from './modules/users/users.service.js';
import { razorpayWebhookRoutes } from './providers/razorpay/razorpay.routes.js';
import { documentWebhookRoutes } from './providers/razorpay/razorpay.docs.js';
import { restaurantCashRoutes } from './compat/restaurant-cash.routes.js';
import { restaurantPrintRoutes } from './compat/restaurant-print.routes.js';
import { createAlertsService } from './modules/alerts/alerts.service.js';
import { createCashService } from './modules/cash/cash.service.js';
import { createUnallocatedService } from './modules/cash/unallocated.js';
import { catalogRoutes } from './modules/catalog/catalog.routes.js';
import { createCatalogService } from './modules/catalog/catalog.service.js';
import { createKitchenService, kitchenOrderWithdrawn } from './modules/kitchen/kitchen.service.js';
import { restaurantOpsRoutes } from './modules/kitchen/restaurant-ops.routes.js';
import { ledgerRoutes } from './modules/ledger/ledger.routes.js';
import { auditRoutes } from './modules/audit/audit.routes.js';
import { createLedgerService } from './modules/ledger/ledger.service.js';
import { createPrintNotifier } from './modules/printing/print-notifier.js';
import { createPrintingService } from './modules/printing/printing.service.js';
import { createPrintPush } from './modules/printing/print-push.js';
import { screensRoutes } from './screens/screens.routes.js';
import { installDashboard } from './modules/dashboard/dashboard.js';
import { serveDashboard } from './modules/dashboard/static.js';
import { createWaterOps } from './modules/water-ops/water-ops.module.js';
import { createFirmware } from './modules/firmware/firmware.module.js';
import { createOtaPush } from './modules/gateway/ota-push.js';

export interface BuildOptions {
  /** PostgreSQL schema for this app (tests use one per file). */
  databaseSchema?: string;
  /** Silence request logs (tests, benchmarks). */
  quiet?: boolean;
  /** Where logs go instead of stdout (tests read them). */
  logStream?: { write(line: string): void };
}

/** How long a stop lets HTTP requests in progress finish before their connections are closed. */
const HTTP_DRAIN_MS = 5_000;

/** Logged at start-up and when a site turns keylessCashCancel on: what the opt-in exposes. */
const KEYLESS_CASH_CANCEL_WARNING =
  'site accepts the cash reader’s key-less cancel under /sites/<id>/ (keylessCashCancel): anyone ' +
  'who can reach this server and knows an open order number of the site can cancel its cash session ' +
  '(the cash inserted is then due back to the customer)';

export async function buildApp(config: Config, options: BuildOptions = {}) {
  const nodeId = newNodeId();
  const trust = compileTrust(config.trustProxy);
  const app = Fastify({
    logger: {
      level: options.quiet ? 'warn' : config.logLevel,
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
      serializers: logSerializers,
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    genReqId: () => newId(),
    requestIdHeader: 'x-request-id',
    // X-Forwarded-For only from the proxies TRUST_PROXY names: anyone could send it.
    trustProxy: config.trustProxy === false ? false : trust,
    // A client trickling its request (or saying nothing) does not hold a connection for long.
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.connectionTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(config.requestTimeoutMs / 4))),
    },
    ajv: { customOptions: { removeAdditional: false } },
    schemaController: { compilersFactory: { buildSerializer: cachedSerializers } },
    // A malformed %-encoding or an over-long path parameter is refused by the router before any
    // route or error handler runs: answer in the contract's error shape too (CONTRACTS.md §2).
    frameworkErrors: (err, _request, reply) => {
      const message =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'a path parameter is too long (at most 100 characters)'
          : 'the URL path is not valid (bad %-encoding)';
      void (reply as FastifyReply).code(400).send({ error: { code: 'VALIDATION_FAILED', message } });
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as FastifyTypebox;
  const logger = app.log as unknown as Logger;

  let database: OpenedDatabase | undefined;
  // The embedded file belongs to one process: a second server on the same DATA_DIR is refused.
  let dataDirLock: DataDirLock | undefined;
  try {
    if (config.database.kind === 'sqlite-file') dataDirLock = lockDataDir(config.dataDir);
    const schema = options.databaseSchema ?? config.databaseSchema;
    const warn = (message: string) => logger.warn(message);
    const opening = {
      poolSize: config.databasePoolSize,
      preparedStatements: config.databasePreparedStatements,
      ...(schema ? { schema } : {}),
      warn,
    };
    database = await openDatabase(config.database, opening);
  } catch (err) {
    dataDirLock?.release();
    await app.close();
    throw err;
  }
  const { db, dialect } = database;

  const tenants = createTenantsService(db);
  const secrets = await tenants.bootstrap({
    ...(config.adminToken ? { adminToken: config.adminToken } : {}),
    ...(config.jwtSecret ? { jwtSecret: config.jwtSecret } : {}),
    ...(config.pinSecret ? { pinSecret: config.pinSecret } : {}),
  });
  if (!config.jwtSecret && config.database.kind !== 'sqlite-memory') {
    // Whoever reads this key (in the database, or any backup of it) can sign an admin token.
    logger.warn(
      'JWT_SECRET is not set: the generated signing key is kept in the database and its backups; ' +
        'set JWT_SECRET (docs/security.md)',
    );
  }
  const machinesRepo = createMachinesRepo(db, dialect);
  const auth = createAuthenticator({
    adminTokenHash: secrets.adminTokenHash,
    jwtSecret: secrets.jwtSecret,
    findStaffState: (userId) => users.staffState(userId),
    staffCacheMs: config.tokenCheckCacheMs,
    findMachineByKeyHash: async (hash) => {
      const row = await machinesRepo.findByKeyHash(hash);
      if (!row) return undefined;
      // Kiosks, cash units and printers call over HTTP: each authenticated call is a sign of life.
      presence.seenOverHttp(row.id);
      return { machineId: row.id, tenantId: row.tenant_id, siteId: row.site_id, machineKind: row.kind };
    },
  });

  // Realtime first: presence and the dispatcher publish through it.
  const realtime = createRealtime(app.server, {
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    logger,
    trust,
    corsOrigins: config.corsOrigins,
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    maxPerAddress: config.socketMaxPerAddress,
    authTimeoutMs: config.socketAuthTimeoutMs,
  });
  const loginGuard = createLoginGuard({
    maxPerAddress: config.loginMaxPerAddress,
    maxPerEmail: config.loginMaxPerEmail,
    concurrency: config.loginConcurrency,
    queue: config.loginQueue,
    ...(realtime.redis ? { redis: realtime.redis } : {}),
  });
  // Key-less cash-reader cancels naming no session of the site, per address (guessing order numbers).
  const keylessMisses = {
    counter: createWindowCounter({
      prefix: 'kioskhub:',
      windowMs: 10 * 60_000,
      ...(realtime.redis ? { redis: realtime.redis } : {}),
    }),
    max: config.keylessCancelMaxMisses,
  };
  const users = createUsersService({
    db,
    tenantExists: tenants.exists,
    issueToken: auth.issueStaffToken,
    hashing: loginGuard.hashing,
    hashCost: config.passwordHash,
    revoked: (userId) => {
      auth.forgetUser(userId);
      live.disconnectUser(userId);
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:revoke', userId);
    },
    sessionEnded: (userId, sessionId) => {
      auth.forgetUser(userId);
      live.disconnectSession(userId, sessionId);
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:end-session', userId, sessionId);
    },
  });
  const orders = createOrdersService({ repo: createOrdersRepo(db), dialect });
  const live = installLiveGateway({
    io: realtime.io,
    resolveToken: auth.fromToken,
    resolveOrderToken: auth.verifyOrderToken,
    tenantOfMachine: async (id) => (await machinesRepo.findById(id))?.tenant_id,
    tenantOfOrder: orders.tenantOf,
    siteExists: (t, s) => tenants.siteExists(t, s),
    tenantExists: tenants.exists,
  });
  const presence = createPresence({
    repo: machinesRepo,
    logger,
    publish: live.publish,
    heartbeatTimeoutMs: config.machineHeartbeatTimeoutMs,
    nodeId,
    statusWriteIntervalMs: config.statusWriteIntervalMs,
    firmwareReported: (machineId, version) => {
      firmware.device
        .observeVersion(machineId, version)
        .catch((err: unknown) => logger.warn({ err, machineId }, 'could not record a firmware version'));
    },
  });
  const machines = createMachinesService({
    db,
    repo: machinesRepo,
    siteCurrency: tenants.siteCurrency,
    tenantExists: tenants.exists,
    pendingLastSeen: presence.pendingLastSeen,
    dropConnections: (machineId, reconnect) => {
      presence.local(machineId)?.link.disconnect(reconnect);
      // An empty connection id matches no connection: every process drops the machine's socket.
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:evict', machineId, '', reconnect);
    },
    keyIssued: async (machineId, key, reason) => {
      if (reason === 'created') await mqtt?.machineCreated(machineId, key);
      else await mqtt?.keyRotated(machineId, key);
    },
  });
  const alerts = createAlertsService({ db });
  const commands = createCommandsService({
    db,
    dialect,
    orders,
    alerts,
    // A late SUCCESS for an order in review whose payment was refunded meanwhile raises an alert.
    refundedOf: (ex, orderId) => paymentQueries.refundedForOrder(ex, orderId),
  });
  const metrics = createMetrics({
    machinesOnline: presence.count,
    queueDepth: commands.queueDepth,
    ...(database.statements ? { dbStatements: database.statements } : {}),
  });
  configureGroupCommit(db, {
    onCommit: (events) => metrics.commitGroups.observe(events),
    onReplay: (events) => metrics.commitReplays.inc(events),
    onHookError: (err) => logger.error({ err }, 'an after-commit hook threw; its event is committed'),
  });
  const dispatcher = createDispatcher({
    commands,
    presence,
    logger,
    ackTimeoutMs: config.dispatchAckTimeoutMs,
    resultTimeoutMs: config.dispatchResultTimeoutMs,
    idleRecheckMs: config.dispatchIdleRecheckMs,
    sweepMs: config.dispatchSweepMs,
    noticesArrive: () => realtime.noticesArrive(),
    notifyOthers: (machineId) => {
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:kick', machineId);
    },
    observeDispatchLatency: (s) => metrics.dispatchLatency.observe(s),
    commandExpiryMs: config.commandExpiryMs,
  });
  const outbox = createOutboxRelay({
    db,
    dialect,
    logger,
    backoffBaseMs: config.jobRetryBaseMs,
    onOutcome: (topic, outcome) => metrics.jobs.inc({ topic, outcome }),
    // A job that names no tenant (a card refund's look-again, the water sweep, a dispatch kick
    // written before kicks named their machine's tenant) is the deployment's: its failure is the
    // operator's (operator-scope.ts), not the tenant `default`'s, whose staff would otherwise see
    // other tenants' and no tenant's work.
    onFailed: (job) =>
      alerts.raise(db, {
        tenantId: job.tenantId ?? OPERATOR_TENANT,
        kind: 'JOB_FAILED',
        subjectType: 'job',
        subjectId: String(job.id),
        message: `Background job ${job.id} (${job.topic}) failed for good: ${job.error}`,
      }),
  });
  // Periodic work: the one place timers of modules live (started when the app is ready).
  const scheduler = createScheduler({ logger });
  const catalog = createCatalogService({ db, orders });
  const printing = createPrintingService({
    db,
    dialect,
    alerts,
    leaseMs: config.printJobLeaseMs,
    retentionMs: config.printJobRetentionDays * 86_400_000,
    // A receipt of an order refunded before the kitchen made it is not printed again.
    orderWithdrawn: kitchenOrderWithdrawn(orders),
  });
  // Money in: one payments table and one settlement path, with a handler per purpose.
  const paymentsRepo = createPaymentsRepo(db);
  const settlement = createSettlement({ repo: paymentsRepo });
  // What other modules ask about payments and refunds: they never read the payments tables.
  const paymentQueries = createPaymentQueries({ db, dialect, repo: paymentsRepo });

  const payments = createPaymentsService({
    db,
    repo: paymentsRepo,
    settlement,
    orders,
    machines,
    onCommandQueued: dispatcher.commandQueued,
  });
  const razorpayApi =
    config.razorpay.keyId && config.razorpay.keySecret
      ? createRazorpayClient({
          baseUrl: config.razorpay.apiBase,
          keyId: config.razorpay.keyId,
          keySecret: config.razorpay.keySecret,
        })
      : undefined;
  const intents = createIntents({
    db,
    repo: paymentsRepo,
    settlement,
    logger,
    pollMs: config.paymentStatusPollMs,
    ttlMs: config.paymentIntentTtlMs,
    dialect,
    alerts,
  });
  // One-off methods (bank transfer, card gateways) register here; channels look them up.
  const methods = createMethodRegistry();
  const ledger = createLedgerService({ db, dialect });
  settlement.register(
    'order',
    createOrderSettlement({ orders, catalog, commands, printing, alerts, ledger }),
  );
  const pinSealer = createPinSealer({ pinKey: secrets.pinKey });
  // Card payments: Stripe Checkout when its keys are set (a second gateway: its own adapter).
  const stripeConfig = config.stripe;
  const cardGateway =
    stripeConfig.secretKey && stripeConfig.webhookSecret
      ? createStripeGateway({
          secretKey: stripeConfig.secretKey,
          webhookSecret: stripeConfig.webhookSecret,
          apiBase: stripeConfig.apiBase,
        })
      : undefined;
  // Money beyond what a payment asked goes to the payer's wallet, else to staff review.
  const allocateSurplus = createSurplus({ ledger, catalog, alerts, orders });
  const arrivals = createArrivals({ db, dialect, repo: paymentsRepo, settlement, allocateSurplus, alerts });
  const customers = createCustomersService({
    db,
    ledger,
    defaultCountryCode: tenants.defaultCountryCode,
    countryCodes: tenants.countryCodes,
    pinKey: secrets.pinKey,
    onPinSet: pinSealer.pinSet,
  });
  const at = config.africasTalking;
  const sms = createSms({
    logger,
    ...(at.username && at.apiKey
      ? {
          client: createAtSmsClient({
            baseUrl: at.apiBase,
            username: at.username,
            apiKey: at.apiKey,
            ...(at.from ? { from: at.from } : {}),
          }),
        }
      : {}),
  });
  settlement.register('wallet_topup', createWalletTopupSettlement({ ledger, customers }));
  // Staff acting on water customers (admin, customer_service), and the plans they buy.
  const customersStaff = createCustomersStaff({
    db,
    customers,
    ledger,
    sms,
    siteExists: (t, s, ex) => tenants.siteExists(t, s, ex),
  });
  const plans = createPlans({ db, repo: customers.repo });
  // Water plans bought with mobile money (MoMo, Airtel), and the USSD/SMS channels that sell them.
  const publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
  const momoConfig = config.momo;
  const momoClient =
    momoConfig.subscriptionKey && momoConfig.apiUser && momoConfig.apiKey
      ? createMomoClient({
          baseUrl: momoConfig.apiBase,
          subscriptionKey: momoConfig.subscriptionKey,
          apiUser: momoConfig.apiUser,
          apiKey: momoConfig.apiKey,
          targetEnvironment: momoConfig.targetEnvironment,
        })
      : undefined;
  const airtelConfig = config.airtel;
  const airtelClient =
    airtelConfig.clientId && airtelConfig.clientSecret
      ? createAirtelClient({
          baseUrl: airtelConfig.apiBase,
          clientId: airtelConfig.clientId,
          clientSecret: airtelConfig.clientSecret,
          country: airtelConfig.country,
          currency: airtelConfig.currency,
        })
      : undefined;
  if (momoClient) intents.registerStatusSource('momo', momoStatusSource(momoClient));
  if (airtelClient) intents.registerStatusSource('airtel', airtelStatusSource(airtelClient));
  const mobileMoney = createMobileMoney({
    db,
    intents,
    payments: paymentQueries,
    inbox: payments,
    customers,
    sms,
    logger,
    ...(momoClient
      ? {
          momo: {
            client: momoClient,
            currency: momoConfig.currency,
            callbackUrl: (id: string) => {
              // Under PUBLIC_URL's path (Kioskhub behind a proxy at https://host/hub), as every link.
              const url = new URL(`${publicUrl}/webhooks/momo/${encodeURIComponent(id)}`);
              if (momoConfig.callbackSecret) url.searchParams.set('key', momoConfig.callbackSecret);
              return url.toString();
            },
          },
        }
      : {}),
    ...(airtelClient ? { airtel: { client: airtelClient } } : {}),
  });
  intents.onEnded('plan', mobileMoney.ended);
  const waterNotices = createWaterNotices({ sms });
  const waterOps = createWaterOps({
    db,
    config,
    machines,
    alerts,
    jobs: outbox,
    scheduler,
    payments: paymentQueries,
    customers,
  });
  // Water kiosks: verification with holds, settlements, offline logs, credential caches.
  const water = createWater({
    db,
    dialect,
    keys: pinSealer.keys,
    ledger,
    customers,
    notices: waterNotices,
    alerts,
    holdMs: config.waterHoldMs,
    recordOutcome: (ex, v) => waterOps.verifications.record(ex, v),
  });
  settlement.register('plan', createPlanSettlement({ ledger, customers, payments: settlement, alerts, sms }));
  const ussd = createUssd({
    db,
    customers,
    mobileMoney,
    notices: waterNotices,
    hopDigest: pinSealer.keys.ussdHop,
    logger,
  });
  const smsCommands = createSmsCommands({
    db,
    customers,
    mobileMoney,
    sms,
    inbox: payments,
    ussdCode: at.ussdCode,
    logger,
  });
  const refunds = createRefunds({
    db,
    dialect,
    ledger,
    customers,
    alerts,
    providers: {
      ...(razorpayApi
        ? {
            razorpay: {
              // The refund's own id is the idempotency key: the job's retries are one refund. A
              // 4xx (but 408, 429) is Razorpay refusing it for good: the refund ends FAILED.
              // `pending`: Razorpay makes it later; its refund.processed / refund.failed webhook,
              // or its status checks (refundPolls below), end it (docs/api.md §8, §9).
              refund: async (id: string, amount: number, ctx: { refundId: string }) => {
                let answer: { id: string; status: string };
                try {
                  answer = await razorpayApi.refundPayment(id, amount, ctx.refundId);
                } catch (err) {
                  throw isRazorpayRefusal(err) ? new RefundRefusedError(err.message) : err;
                }
                if (answer.status === 'failed')
                  throw new RefundRefusedError(`Razorpay answered refund ${answer.id} failed`);
                return { providerRefundId: answer.id, pending: answer.status === 'pending' };
              },
            },
          }
        : {}),
      ...(cardGateway ? { [cardGateway.provider]: cardGateway } : {}),
    },
  });
  // A provider refund whose job ran out of attempts gave nothing back that we know of: it ends
  // FAILED with a REFUND_FAILED alert rather than staying PENDING (and a JOB_FAILED alert); one
  // that ended meanwhile (its webhook, a twin run) needs no JOB_FAILED alert either.
  // An SMS may carry a new PIN or a sign-in code: one that could not be sent is not kept in clear.
  outbox.withholdWhenFailed('sms', (p) => ({ ...p, text: WITHHELD_SMS_TEXT }));
  outbox.handleFailure('refund', (p, error) => refunds.refundJobGaveUp(p.refundId, error));
  // A payment whose provider never answered its last question at expiry still ends EXPIRED.
  outbox.handleFailure('payment_expire', (p) => intents.expireGaveUp(p));
  // A status check whose provider stayed silent through every retry is followed by the next one.
  outbox.handleFailure('payment_status', (p) => intents.statusGaveUp(p));
  // A refund answered pending (Razorpay, Stripe) is asked about now and then until it ends, or a
  // REFUND_STILL_PENDING alert after REFUND_STATUS_POLL_FOR_MS (docs/api.md §8).
  const refundPolls = createRefundPolls({
    db,
    providers: {
      ...(razorpayApi
        ? { razorpay: { fetchRefund: (id: string) => fetchRazorpayRefundNews(razorpayApi, id) } }
        : {}),
      ...(cardGateway ? { [cardGateway.provider]: cardGateway } : {}),
    },
    refunds,
    alerts,
    logger,
    firstGapMs: config.refundStatusPollMs,
    checkForMs: config.refundStatusPollForMs,
  });
  refunds.onProviderPending((ex, refund, payment) => refundPolls.start(ex, refund, payment));
  outbox.handle('refund_poll', (p) => refundPolls.check(p));
  outbox.handleFailure('refund_poll', (p, error) => refundPolls.gaveUp(p, error));
  // PENDING provider refunds with no checks (from before them, or their job lost) get them.
  scheduler.every('refund-poll-sweep', 3_600_000, async () => {
    await refundPolls.sweep();
  });
  // A refund of a vending order's payment ends its dispense not yet sent, or waits for the one
  // the machine holds (docs/api.md §8).
  refunds.onRecording(async (ex, payment, refund) => {
    if (payment.purpose !== 'order' || !payment.order_id) return;
    await commands.settleForRefund(ex, payment.order_id, {
      full: refund.full,
      actor: refund.actor,
      paymentId: payment.id,
    });
  });
  // Cafe tables: guest orders, payments through intents and settlement, the wallet.
  const cafe = createCafe({
    db,
    jwtSecret: secrets.jwtSecret,
    publicUrl: config.publicUrl,
    auth,
    machines,
    users,
    catalog,
    orders,
    paymentQueries,
    intents,
    methods,
    settlement,
    refunds,
    ledger,
    customers,
    sms,
    allocateSurplus,
    logger,
    orderTtlMs: config.cafeOrderTtlMs,
  });
  const cash = createCashService({
    db,
    dialect,
    orders,
    catalog,
    alerts,
    ledger,
    payments,
    settlement,
    refunds,
    // A table order paid at the counter's cash unit: the cafe says what its guest owes (tip included).
    tableOrders: cafe.payments,
  });
  const unallocated = createUnallocatedService({ db, dialect, cash, ledger });
  // Abandoned kiosk cash sessions: empty ones are cancelled, ones holding money raise an alert.
  if (config.cashSessionIdleMs > 0)
    scheduler.every(
      'cash-session-expiry',
      Math.max(1_000, Math.min(60_000, Math.floor(config.cashSessionIdleMs / 4))),
      async () => {
        const done = await cash.expireIdle(config.cashSessionIdleMs);
        if (done.cancelled > 0 || done.stale > 0)
          logger.info(done, 'cash sessions: idle ones cancelled or flagged');
      },
    );
  // Staff sessions ended one by one are refused until their tokens expire, then forgotten.
  scheduler.every('ended-sessions-purge', 3_600_000, async () => {
    await users.purgeEndedSessions();
  });
  // Abandoned table orders: each has its own job; this sweep re-queues any that lost theirs.
  scheduler.every('cafe-order-expiry-sweep', Math.min(600_000, config.cafeOrderTtlMs), async () => {
    await cafe.expiry.sweep();
  });
  // One-off methods: a bank transfer into the cafe's own account (its cafe settings), and cards.
  methods.register(
    bankTransferMethod({
      bankAccount: async (tenantId, siteId, ex) => (await cafe.settings(tenantId, siteId, ex)).bankAccount,
    }),
  );
  const cardPayments = cardGateway
    ? createCardPayments({
        db,
        dialect,
        gateway: cardGateway,
        repo: paymentsRepo,
        settlement,
        intents,
        refunds,
        alerts,
        parkedAlertAfterMs: config.cardRefundParkedAlertMs,
      })
    : undefined;
  // Its status check alerts like its webhook when the checkout was paid another amount.
  if (cardGateway && cardPayments)
    intents.registerStatusSource(cardGateway.provider, cardPayments.statusSource);
  if (cardGateway) methods.register(cardMethod({ gateway: cardGateway, repo: paymentsRepo, publicUrl }));
  const kitchen = createKitchenService({
    db,
    orders,
    tableOrderReady: (orderId, tenantId, actor) =>
      cafe.orders.kitchenStatus(orderId, tenantId, 'READY', actor),
    printing,
  });
  // A full refund of a paid kitchen order not yet made takes it off the kitchen's queue and
  // cancels its receipt not yet printed (docs/api.md §16). Only a refund of the payment that paid
  // it: money a payment that never succeeded received is not the order's price.
  refunds.onRecording(async (ex, payment, refund) => {
    if (payment.purpose !== 'order' || !payment.order_id) return;
    if (payment.status !== 'SUCCEEDED' && payment.status !== 'PARTIALLY_REFUNDED') return;
    await kitchen.withdrawForRefund(ex, payment.order_id, {
      full: refund.full,
      actor: refund.actor,
      paymentId: payment.id,
    });
  });
  // Firmware over the air: signed artifacts, staged campaigns driven by the job table.
  const firmware = createFirmware({
    db,
    dialect,
    logger,
    config: config.firmware,
    publicUrl: config.publicUrl,
    machines,
    tenantExists: tenants.exists,
    wake: () => outbox.flushSoon(),
  });
  const otaPush = createOtaPush({
    presence,
    notifyOthers: (machineId, next) => {
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:ota', machineId, next);
    },
    sendMqtt: (machineId, next) => mqttOta?.offer(machineId, next) ?? Promise.resolve(false),
  });
  firmware.onNotify((machineId, next) => otaPush.offer(machineId, next));
  const printNotifier = createPrintNotifier();
  const printPush = createPrintPush({ presence, printing, logger });

  installMachineGateway({
    io: realtime.io,
    nodeId,
    machines,
    commands,
    presence,
    dispatcher,
    logger,
    authTimeoutMs: config.socketAuthTimeoutMs,
    eventsPerSecond: config.socketEventsPerSecond,
    onPrinterConnected: (tenantId, siteId) => printPush.offer(tenantId, siteId),
    onMachineConnected: (machineId, connectionId) => {
      if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:evict', machineId, connectionId);
      // A firmware deployment released while the machine was away is offered again, like a command.
      firmware.device
        .offerOnConnect(machineId)
        .then((next) => next && otaPush.offer(machineId, next))
        .catch((err: unknown) => logger.warn({ err, machineId }, 'could not offer firmware on connect'));
    },
  });
  // MQTT devices (CONTRACTS §14): the same presence and dispatch engine, through an MqttLink.
  const mqtt: MqttTransport | undefined =
    config.mqtt.port !== undefined || config.mqtt.url !== undefined
      ? createMqttTransport({
          config: config.mqtt,
          host: config.host,
          clustered: realtime.clustered,
          nodeId,
          presence,
          dispatcher,
          commands,
          logger,
          findMachine: (id) => machines.findRow(id),
          authenticate: async (id, key) => {
            const row = await machines.findRow(id);
            return row && constantTimeEqual(row.key_hash, sha256(key)) ? row : undefined;
          },
          evictElsewhere: (machineId, connectionId) => {
            if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:evict', machineId, connectionId);
          },
          willElsewhere: (machineId, bootId) => {
            if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:mqtt-will', machineId, bootId ?? '');
          },
        })
      : undefined;
  // MQTT devices get ota.install as a device command and report on up/ota (answered on down/ota).
  const mqttOta = mqtt
    ? installMqttOta({
        gateway: mqtt.gateway,
        device: firmware.device,
        logger,
        resendAfterMs: config.dispatchAckTimeoutMs,
        recordedFirmware: async (id) => (await machines.findRow(id))?.firmware,
      })
    : undefined;
  if (mqtt) mqtt.gateway.hooks.onTelemetry = waterTelemetry({ kiosks: water.kiosks, logger });
  if (realtime.clustered) {
    realtime.io.on('kioskhub:mqtt-will', (machineId: string, bootId: string) => {
      mqtt?.gateway
        .willArrived(machineId, bootId === '' ? undefined : bootId)
        .catch((err: unknown) => logger.warn({ err, machineId }, 'mqtt: could not record a last will'));
    });
    realtime.onReconnected(() => dispatcher.forgetIdleChecks());
    realtime.io.on('kioskhub:kick', (machineId: string) => dispatcher.kick(machineId, 'remote'));
    realtime.io.on('kioskhub:print', (tenantId: string, siteId: string) => {
      printNotifier.notify(tenantId, siteId);
      printPush.offer(tenantId, siteId);
    });
    realtime.io.on('kioskhub:evict', (machineId: string, connectionId: string, reconnect?: boolean) => {
      const conn = presence.local(machineId);
      // '' matches no connection (a move, which reconnects; a key rotation, which sends it away);
      // otherwise a newer connection of the machine, on another process, replaced this one.
      if (conn && conn.connectionId !== connectionId) conn.link.disconnect(reconnect === true);
    });
    realtime.io.on('kioskhub:ota', (machineId: string, next: OtaNext) => {
      if (!presence.local(machineId)) return;
      Promise.resolve(otaPush.offer(machineId, next)).catch((err: unknown) =>
        logger.warn({ err, machineId }, 'could not offer firmware to a machine'),
      );
    });
    realtime.io.on('kioskhub:revoke', (userId: string) => {
      auth.forgetUser(userId);
      live.disconnectUser(userId);
    });
    realtime.io.on('kioskhub:end-session', (userId: string, sessionId: string) => {
      auth.forgetUser(userId);
      live.disconnectSession(userId, sessionId);
    });
  }

  // ---- HTTP ------------------------------------------------------------------------------
  installValidation(app);
  installErrorHandling(app);
  installStaffGuard(app, auth);
  installSecurityHeaders(app);
  await installRateLimits(app, {
    perMinute: config.rateLimitPerMinute,
    knownCredential: auth.knownCredential,
    ...(realtime.redis ? { redis: realtime.redis } : {}),
  });
  app.addSchema(ErrorResponse);
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Kioskhub',
        version: '0.1.0',
        description:
          'Payments in, dispenses out: the Kioskhub API. The device protocols (Socket.IO), ' +
          'live events and error codes are described in docs/api.md of the repository.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'ADMIN_TOKEN, a staff JWT or a machine key',
          },
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'a machine or device key' },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
    },
    // The webhook keeps its raw bytes for the signature check: its body schema is documentation only.
    transform: documentWebhookRoutes,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const afterCommit = () => outbox.flushSoon();
  // Writes leave live events, print wake-ups and dispatch kicks in the outbox: relay them as
  // soon as the response is out, not at the relay's next 1 s tick (a long-polling printer and
  // the customer's cash screen would otherwise wait up to a second).
  app.addHook('onResponse', async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') afterCommit();
  });
  // The webhook answers 401 only for a signature that does not match: almost always a secret
  // that differs from the one set in the Razorpay Dashboard. Say so in the log, once a minute.
  const warnBadSignature = throttledWarning(
    logger,
    'Razorpay webhook refused (401 BAD_SIGNATURE): X-Razorpay-Signature does not match ' +
      'RAZORPAY_WEBHOOK_SECRET; set it to the secret of this webhook in the Razorpay Dashboard',
  );
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401 && request.routeOptions.url === '/webhooks/razorpay') {
      const signed = request.headers['x-razorpay-signature'] !== undefined;
      warnBadSignature({ requestId: request.id, ip: request.ip, signed });
    }
  });
  await app.register(async (scope) => {
    const s = scope as FastifyTypebox;
    const metricsToken = config.metricsToken ? { metricsToken: config.metricsToken } : {};
    opsRoutes(s, { metrics, ping: database.ping, auth, ...metricsToken });
    tenantsRoutes(s, { auth, tenants });
    usersRoutes(s, { auth, users, loginGuard });
    machinesRoutes(s, { auth, machines });
    ordersRoutes(s, { auth, orders });
    paymentsRoutes(s, { auth, payments, refunds });
    catalogRoutes(s, {
      auth,
      catalog,
      siteExtension: cafe.siteExtension,
      warnOpenSite: (siteId) =>
        logger.warn({ siteId }, 'site accepts key-less printers under /sites/<id>/ (printQueueOpen)'),
      warnKeylessCashCancel: (siteId) => logger.warn({ siteId }, KEYLESS_CASH_CANCEL_WARNING),
      tenantExists: tenants.exists,
    });
    restaurantOpsRoutes(s, {
      auth,
      kitchen,
      cash,
      unallocated,
      printing,
      alerts,
      isSoleTenant: tenants.isSole,
    });
    ledgerRoutes(s, { auth, ledger });
    auditRoutes(s, { db, isSoleTenant: tenants.isSole });
    customersRoutes(s, {
      staff: customersStaff,
      plans,
      payments,
      dispenses: (tenantId, customerId, page) => listCustomerDispenses(db, tenantId, customerId, page),
      tenantExists: tenants.exists,
    });
    waterRoutes(s, { auth, machines, water, db });
    cafe.routes(s, auth);
    waterOps.routes(s);
    await firmware.routes(s, auth);
    screensRoutes(s);
    installDashboard(s, {
      auth,
      db,
      config,
      logger,
      machines,
      orders,
      commands,
      printing,
      alerts,
      refunds,
      paymentQueries,
      users,
      adminTokenHash: secrets.adminTokenHash,
      afterCommit,
    });
  });
  // The restaurant kiosk's device routes, also under /sites/:siteId/ for key-less legacy printers.
  for (const prefix of ['', '/sites/:siteId']) {
    await app.register(
      async (scope) => {
        const s = scope as FastifyTypebox;
        // A route's own params schema does not know the prefix: add siteId so it is validated and
        // the OpenAPI path declares it.
        if (prefix) {
          s.addHook('onRoute', (route) => {
            const params = route.schema?.params as
              { properties?: Record<string, unknown>; required?: string[] } | undefined;
            if (route.schema && params?.properties && !('siteId' in params.properties)) {
              route.schema.params = {
                ...params,
                properties: { ...params.properties, siteId: EntityId },
                required: [...(params.required ?? []), 'siteId'],
              };
            }
          });
        }
        restaurantCashRoutes(s, { auth, catalog, cash, keylessMisses });
        restaurantPrintRoutes(s, { auth, catalog, printing, notifier: printNotifier });
      },
      { prefix },
    );
  }
  await app.register(async (scope) => {
    bankWebhookRoutes(scope as FastifyTypebox, {
      secrets: config.bankWebhookSecrets,
      arrivals,
      metrics,
      afterCommit,
    });
  });
  await app.register(async (scope) => {
    stripeWebhookRoutes(scope as FastifyTypebox, {
      gateway: cardGateway,
      cardPayments,
      metrics,
      afterCommit,
    });
  });
  await app.register(async (scope) => {
    razorpayWebhookRoutes(scope as FastifyTypebox, {
      secrets: config.razorpay.webhookSecrets,
      payments,
      refunds,
      metrics,
      afterCommit,
      logger,
    });
  });

  // Unsigned callbacks (Africa's Talking, MoMo, Airtel): a secret in the URL, compared in constant time.
  await app.register(async (scope) => {
    africasTalkingRoutes(scope as FastifyTypebox, {
      callbackSecret: at.callbackSecret,
      tenantExists: tenants.exists,
      ussd,
      smsCommands,
      afterCommit,
    });
  });
  await app.register(async (scope) => {
    momoCallbackRoutes(scope as FastifyTypebox, {
      callbackSecret: momoConfig.callbackSecret,
      mobileMoney,
      afterCommit,
    });
  });
  await app.register(async (scope) => {
    airtelCallbackRoutes(scope as FastifyTypebox, {
      callbackSecret: airtelConfig.callbackSecret,
      mobileMoney,
      afterCommit,
    });
  });

  // The operator dashboard (dashboard/dist) at `/`; registered last, it never shadows a route above.
  await serveDashboard(app);

  // ---- background work -------------------------------------------------------------------
  if (dialect === 'sqlite') {
    // One process owns the file: whatever it thought was connected before is gone.
    await machinesRepo.resetConnections('');
  }
  await firmware.campaigns.resumeRunning();
  outbox.start(
    {
      live: (p) => live.publish(p.tenantId, p.rooms, p.event, p.data),
      dispatch: (p) => dispatcher.fromOutbox(p.machineId, p.commandId),
      refund: (p) => refunds.runProviderRefund(p.refundId),
      payment_status: (p) => intents.check(p),
      payment_expire: (p) => intents.expire(p),
      cafe_order_expire: async (p) => {
        await cafe.expiry.expire(p);
      },
      sms: (p) => sms.run(p),
      ...(cardPayments ? { card_refund_parked: (p) => cardPayments.alertIfStillParked(p) } : {}),
      water_hold_expire: (p) => water.dispenses.expireHold(p),
      firmware_tick: (p) => firmware.jobs.firmware_tick(p),
      firmware_notify: (p) => firmware.jobs.firmware_notify(p),
      mobile_money_request: (p) => mobileMoney.sendRequest(p),
      print: (p) => {
        printNotifier.notify(p.tenantId, p.siteId);
        printPush.offer(p.tenantId, p.siteId);
        if (realtime.clustered) realtime.io.serverSideEmit('kioskhub:print', p.tenantId, p.siteId);
      },
    },
    config.jobPollMs,
  );
  const printSweep = setInterval(
    () => {
      printing.sweep().catch((err: unknown) => logger.warn({ err }, 'print queue sweep failed'));
    },
    Math.max(100, Math.min(5_000, Math.floor(config.printJobLeaseMs / 4))),
  );
  printSweep.unref();
  for (const site of await catalog.listOpenSites()) {
    logger.warn(
      { siteId: site.id, tenantId: site.tenantId },
      'site accepts key-less printers under /sites/<id>/ (printQueueOpen)',
    );
  }
  for (const site of await catalog.listKeylessCashSites()) {
    logger.warn({ siteId: site.id, tenantId: site.tenantId }, KEYLESS_CASH_CANCEL_WARNING);
  }
  presence.start();
  dispatcher.start();
  // Scheduled tasks begin once the app is ready, so building an app starts no periodic work.
  app.addHook('onReady', async () => scheduler.start());

  let closed = false;
  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    clearInterval(printSweep);
    await scheduler.stop();
    await dispatcher.stop();
    await outbox.stop();
    mqttOta?.close();
    await mqtt?.close();
    // Sockets first, so their disconnections are written (and announced over Redis, still up)
    // before presence stops; then no new handshakes, and no engine connection left open.
    realtime.stopSockets();
    await presence.stop();
    // HTTP is closed by Fastify, which answers requests arriving on a kept-alive connection while
    // it drains with 503 + `Connection: close`. Closed behind its back (io.close() closes the HTTP
    // server) it would keep serving them, so a client polling on a kept-alive connection (the
    // cash reader, the print client) could hold the stop for as long as it polls. Requests still
    // running after the drain time, and WebSockets whose peer never completes the close, lose
    // their connection, so a stop always ends.
    const drain = setTimeout(() => {
      app.server.closeAllConnections();
      realtime.destroyConnections();
    }, HTTP_DRAIN_MS);
    drain.unref();
    await app.close();
    clearTimeout(drain);
    await realtime.close();
    await database!.close();
    dataDirLock?.release();
  }

  return {
    app,
    config,
    nodeId,
    db,
    dialect,
    generatedAdminToken: secrets.generatedAdminToken,
    adminTokenSource: secrets.adminTokenSource,
    storedAdminTokenUnused: secrets.storedAdminTokenUnused,
    services: {
      tenants,
      users,
      machines,
      orders,
      commands,
      payments,
      auth,
      presence,
      dispatcher,
      outbox,
      live,
      catalog,
      cash,
      printing,
      kitchen,
      alerts,
      ledger,
      customers,
      intents,
      methods,
      arrivals,
      cardPayments,
      sms,
      settlement,
      refunds,
      refundPolls,
      cafe,
      mobileMoney,
      waterNotices,
      waterOps,
      scheduler,
      water,
      firmware,
    },
    metrics,
    mqtt,
    async listen(): Promise<string> {
      // The broker side first: once HTTP answers, a machine created through it gets its broker
      // credentials (an external broker's client is made at creation, never later).
      await mqtt?.start();
      return app.listen({ host: config.host, port: config.port });
    },
    close,
  };
}

export type KioskhubApp = Awaited<ReturnType<typeof buildApp>>;
