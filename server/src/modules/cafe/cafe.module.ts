// The cafe, put together: tables and their tokens, table orders, payments, the wallet and the
// staff overview, with the refund listeners that tell the guest's screen about refunds.
import { LIVE_EVENTS, type RefundUpdatedEvent } from '@kioskhub/protocol';
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Db, Executor } from '../../platform/db/database.js';
import type { PaymentRow, RefundRow } from '../../platform/db/schema.js';
import type { Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { SiteExtension } from '../catalog/catalog.routes.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Sms } from '../messaging/sms.js';
import type { MachinesService } from '../machines/machines.service.js';
import type { UsersService } from '../users/users.service.js';
import { orderRooms, type OrdersService } from '../orders/orders.service.js';
import type { Intents } from '../payments/intents.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import type { MethodRegistry } from '../payments/methods.js';
import type { Refunds } from '../payments/refunds.js';
import type { Settlement } from '../payments/settlement.js';
import type { AllocateSurplus } from '../payments/surplus.js';
import { createCafeExpiry } from './cafe-expiry.js';
import { createCafeOrders } from './cafe-orders.js';
import { createCafeOverview } from './cafe-overview.js';
import { createCafePayments } from './cafe-payments.js';
import { createCafeTables, type CafeSettingsChange } from './cafe-tables.js';
import { cafeStaffRoutes } from './cafe.routes.js';
import { CafeSettingsSchema, cafeSiteFields } from './cafe.schema.js';
import { cafeGuestRoutes } from './guest.routes.js';
import { createTableTokens } from './table-token.js';
import { createWallet } from './wallet.js';

export function createCafe(deps: {
  db: Db;
  jwtSecret: Uint8Array;
  publicUrl: string | undefined;
  auth: Authenticator;
  machines: Pick<MachinesService, 'findRow' | 'atSite'>;
  users: Pick<UsersService, 'isStaffOf'>;
  catalog: CatalogService;
  orders: OrdersService;
  /** Payments and refunds as the payments module answers for them (cafe never reads its tables). */
  paymentQueries: PaymentQueries;
  intents: Intents;
  methods: MethodRegistry;
  settlement: Settlement;
  refunds: Refunds;
  ledger: LedgerService;
  customers: CustomersService;
  sms: Sms;
  allocateSurplus?: AllocateSurplus;
  logger: Logger;
  /** How long a table order may stay unpaid before it is cancelled (CAFE_ORDER_TTL_MS). */
  orderTtlMs: number;
}) {
  const { db } = deps;
  const tables = createCafeTables({
    db,
    tokens: createTableTokens(deps.jwtSecret),
    findMachine: deps.machines.findRow,
    siteTableMachines: (tenantId, siteId) => deps.machines.atSite(tenantId, siteId, 'table'),
    isStaffOf: deps.users.isStaffOf,
    productExists: deps.catalog.productExists,
  });
  const expiry = createCafeExpiry({
    db,
    logger: deps.logger,
    ttlMs: deps.orderTtlMs,
    orders: deps.orders,
    payments: deps.paymentQueries,
    intents: deps.intents,
  });
  const cafeOrders = createCafeOrders({
    db,
    tables,
    catalog: deps.catalog,
    orders: deps.orders,
    scheduleExpiry: expiry.scheduleFor,
  });
  const payments = createCafePayments({
    db,
    tables,
    cafeOrders,
    orders: deps.orders,
    payments: deps.paymentQueries,
    intents: deps.intents,
    methods: deps.methods,
    settlement: deps.settlement,
    ledger: deps.ledger,
    customers: deps.customers,
    ...(deps.allocateSurplus ? { allocateSurplus: deps.allocateSurplus } : {}),
  });
  const wallet = createWallet({
    db,
    customers: deps.customers,
    ledger: deps.ledger,
    sms: deps.sms,
    catalog: deps.catalog,
    issueCustomerToken: deps.auth.issueCustomerToken,
  });
  const overview = createCafeOverview({ db, tables, orders: deps.orders, payments: deps.paymentQueries });

  /**
   * A refund of an order's payment, told to the order's rooms (the guest's and the staff's
   * screens): `refundedMinor` is the payment's refunded total once this change is in.
   */
  async function announceRefund(
    ex: Executor,
    event: typeof LIVE_EVENTS.paymentRefunded | typeof LIVE_EVENTS.refundUpdated,
    payment: PaymentRow,
    refund: RefundRow,
    refundedMinor: number,
  ): Promise<void> {
    if (payment.purpose !== 'order' || !payment.order_id) return;
    const row = await deps.orders.findRow(payment.order_id, ex);
    if (!row) return;
    await enqueueOutbox(ex, 'live', {
      tenantId: payment.tenant_id,
      rooms: orderRooms(row),
      event,
      data: {
        tenantId: payment.tenant_id,
        orderId: payment.order_id,
        paymentId: payment.id,
        refundId: refund.id,
        amountMinor: Number(refund.amount_minor),
        refundedMinor,
        currency: refund.currency,
        destination: refund.destination as RefundUpdatedEvent['destination'],
        status: refund.status,
      },
    });
  }
  // Every refund of an order's payment reaches the guest's and the staff's screens.
  deps.refunds.onRecorded((ex, payment, refund) =>
    announceRefund(
      ex,
      LIVE_EVENTS.paymentRefunded,
      payment,
      refund,
      Number(payment.refunded_minor) + Number(refund.amount_minor),
    ),
  );
  // A refund that waited (PENDING at the card's provider, DUE with staff) ends: the guest who saw
  // it pending learns it was refunded, or that it failed (the payment keeps the money again). Not
  // why it failed: that text may name the staff member who settled it; staff read it on the refund.
  deps.refunds.onEnded((ex, payment, refund) =>
    announceRefund(ex, LIVE_EVENTS.refundUpdated, payment, refund, Number(payment.refunded_minor)),
  );

  /** The cafe settings `PATCH /v1/sites/:id` also takes. */
  const siteExtension: SiteExtension = {
    key: 'cafe',
    fields: cafeSiteFields,
    view: CafeSettingsSchema,
    check: (values) => tables.checkSettings(values as CafeSettingsChange),
    apply: (ex, tenantId, siteId, values, actor) =>
      tables.applySettings(ex, tenantId, siteId, values as CafeSettingsChange, actor),
  };

  const publicUrl = (request: FastifyRequest) => deps.publicUrl ?? `${request.protocol}://${request.host}`;

  return {
    tables,
    orders: cafeOrders,
    payments,
    wallet,
    overview,
    expiry,
    siteExtension,
    /** The cafe settings of a site (the bank-transfer method reads the account from here). */
    settings: tables.settings,
    routes(app: FastifyTypebox, auth: Authenticator): void {
      cafeStaffRoutes(app, { auth, tables, cafeOrders, overview, catalog: deps.catalog, publicUrl });
      cafeGuestRoutes(app, { auth, tables, cafeOrders, payments, wallet, publicUrl });
    },
  };
}

export type Cafe = ReturnType<typeof createCafe>;
