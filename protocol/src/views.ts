// REST views the operator dashboard reads (CONTRACTS.md §4, §4b, §6, §9, §10 and docs/dashboard.md).
// The server's schemas for these routes are checked against these types at compile time.
import type { MachineKind, MachineStatus, OrderStatus } from './index.js';

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface PaymentProfileView {
  provider: string;
  qrCodeId: string;
  qrImageUrl: string | null;
  qrShortUrl: string | null;
  fixedAmountPaise: number | null;
  qrContent?: string | null;
}

export interface MachineView {
  id: string;
  tenantId: string;
  siteId: string;
  name: string;
  kind: MachineKind | string;
  status: MachineStatus;
  socketConnected: boolean;
  lastSeenAt: string | null;
  firmware: string | null;
  protocol: string | null;
  currency: string;
  paymentProfile?: PaymentProfileView;
  createdAt: string;
  updatedAt: string;
}

/** `GET /v1/fleet`: a machine with the paid orders still waiting for it. */
export interface FleetMachineView extends MachineView {
  queuedOrders: number;
}

/** `GET /v1/fleet/summary`: every machine a fleet filter matches, counted (not one page). */
export interface FleetSummaryView {
  machines: number;
  /** Machines whose status is not `OFFLINE`. */
  online: number;
  /** Paid orders whose command is not done yet, on those machines. */
  queuedOrders: number;
}

export interface OrderView {
  id: string;
  tenantId: string;
  machineId: string | null;
  siteId: string | null;
  orderNumber: string | null;
  amount: number;
  currency: string;
  source: string;
  provider: string | null;
  providerPaymentId: string | null;
  providerQrCodeId: string | null;
  paidAt: string | null;
  dispatchPending: boolean;
  status: OrderStatus;
  failureCode: string | null;
  customerName: string | null;
  items?: { sku: string; qty: number }[];
  createdAt: string;
  updatedAt: string;
}

/** Why an order is in the `Needs review` list. */
export type ReviewReason = 'NO_RESULT' | 'AMOUNT_MISMATCH' | 'DISPENSE_FAILED';
/** A payment of any channel (GET /v1/payments): what was to be paid, what arrived, where it stands. */
export interface PaymentView {
  id: string;
  tenantId: string;
  siteId: string | null;
  purpose: string;
  orderId: string | null;
  customerId: string | null;
  planId: string | null;
  machineId: string | null;
  method: string;
  provider: string | null;
  providerPaymentId: string | null;
  reference: string | null;
  amountMinor: number;
  receivedMinor: number;
  currency: string;
  status: string;
  failureCode: string | null;
  refundedMinor: number;
  createdAt: string;
  completedAt: string | null;
}

export interface ReviewOrderView extends OrderView {
  reviewReason: ReviewReason;
}

export interface TimelineEntryView {
  type: string;
  actor: string;
  at: string;
  detail: unknown;
}

export interface CommandView {
  id: string;
  orderId: string;
  status: string;
  protocol: string | null;
  attempts: number;
  queuedAt: string;
  sentAt: string | null;
  acceptedAt: string | null;
  finishedAt: string | null;
  result: string | null;
  failureCode: string | null;
}

export type StatsBucket = 'hour' | 'day';
export interface StatsView {
  from: string;
  to: string;
  bucket: StatsBucket;
  /**
   * Money kept, as the ledger's revenue accounts: `amountMinor` = `paidMinor` (what order payments
   * took in the bucket) − `refundedMinor` (refunds of taken payments recorded in the bucket, less
   * those that ended FAILED in it);
   * `orders`: payments taken in the bucket. Negative when a bucket gave back more than it took.
   */
  revenue: {
    start: string;
    currency: string;
    amountMinor: number;
    orders: number;
    paidMinor: number;
    refundedMinor: number;
  }[];
  ordersByStatus: { status: OrderStatus; count: number }[];
  dispense: { success: number; failed: number; noResult: number; rate: number | null };
  machinesOnline: { at: string; online: number; total: number }[];
}

export interface PrintSummaryView {
  tenantId: string;
  siteId: string;
  pending: number;
  leased: number;
  printed: number;
  failed: number;
}

export interface ProvisionQrView {
  machineId: string;
  status: 'provisioned' | 'skipped' | 'failed';
  qrCodeId: string | null;
  notes: string[];
  error: string | null;
}

export interface ReviewActionBody {
  note?: string;
}

// ---- existing operator routes the dashboard also reads (CONTRACTS.md §3, §4b, §9, §10) ----

export interface MeView {
  kind: 'admin' | 'user' | string;
  tenantId: string | null;
  role?: string;
  actor: string;
}

export interface TenantView {
  id: string;
  name: string;
  createdAt: string;
}

export interface SiteView {
  id: string;
  tenantId: string;
  name: string;
  currency: string;
  printQueueOpen: boolean;
  address: string | null;
  phone: string | null;
  taxRateBp: number;
  /** Cash sessions may open for order numbers the server has not seen (staff or this site's kiosks). */
  adHocCashOrders: boolean;
  /** The cash reader may cancel this site's sessions without a key under /sites/<id>/. */
  keylessCashCancel: boolean;
  /** IANA time zone (`Africa/Nairobi`, default `UTC`): a water customer's day here is this zone's day. */
  timeZone: string;
  createdAt: string;
  updatedAt: string;
}

export interface ProductView {
  sku: string;
  tenantId: string;
  siteId: string;
  name: string;
  priceMinor: number;
  stock: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface AlertView {
  id: string;
  tenantId: string;
  kind: string;
  subjectType: string;
  subjectId: string;
  message: string;
  createdAt: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  /** When the alert's condition cleared by itself (water kiosks, stuck payments); else null. */
  resolvedAt: string | null;
}

export interface PrintJobView {
  jobId: string;
  tenantId: string;
  siteId: string;
  orderId: string | null;
  status: 'PENDING' | 'LEASED' | 'PRINTED' | 'FAILED' | string;
  attempts: number;
  queuedAt: string;
  printedAt: string | null;
  error: string | null;
}

/** Amounts in major units, as on the cash reader's routes (§9). */
export interface CashSessionView {
  sessionId: string;
  orderNumber: string;
  orderId: string;
  totalRequired: number;
  amountInserted: number;
  remainingAmount: number;
  status: string;
  startedAt: string;
  currency: string;
}

export interface UnallocatedCashView {
  id: string;
  tenantId: string;
  siteId: string | null;
  machineId: string | null;
  orderNumber: string;
  amount: number;
  amountMinor: number;
  currency: string;
  reason: string;
  /** The device's event id of the bill or coin, when it sent one. */
  eventId: string | null;
  recordedAt: string;
  /**
   * Reported again without an eventId within seconds of the same amount for the same order by the
   * same machine: the earlier item it probably repeats (a device retrying a refused report). Count
   * the cash box; a repeat that is not there is resolved `void`.
   */
  possibleRepeatOf: string | null;
  /**
   * OPEN until staff resolve it: RETURNED to the customer, APPLIED to an order, KEPT, or VOID (a
   * repeated report of money that is not in the machine).
   */
  status: 'OPEN' | 'RETURNED' | 'APPLIED' | 'KEPT' | 'VOID';
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolutionNote: string | null;
  /** For APPLIED: the order whose cash session took the money. */
  appliedOrderNumber: string | null;
}

/** A water customer as staff see it (GET /v1/customers/:id; docs/customers.md). */
export interface CustomerView {
  id: string;
  /** `TSF` + 6 characters. */
  accountId: string;
  /** E.164 */
  phone: string;
  fullName: string | null;
  /** Has a PIN. */
  registered: boolean;
  active: boolean;
  subscription: { planId: string | null; expiresAt: string } | null;
  dailyLimitMl: number | null;
  creditsMl: number;
  usedTodayMl: number;
  pinLocked: boolean;
  /** [] = every site. */
  siteIds: string[];
  createdAt: string;
}

/** A water plan (GET /v1/water/plans). */
export interface PlanView {
  id: string;
  name: string;
  kind: 'subscription' | 'credit';
  priceMinor: number;
  currency: string;
  days: number | null;
  creditMl: number | null;
  dailyLimitMl: number | null;
  active: boolean;
  createdAt: string;
}

/** One ledger entry (§13): signed, in the account's unit ("ml" or a currency). */
export interface LedgerEntryView {
  id: string;
  accountId: string;
  amount: number;
  unit: string;
  cause: { type: string; id: string };
  memo?: string;
  createdAt: string;
}

/** Water a customer took from a kiosk (GET /v1/customers/:id/dispenses). */
export interface DispenseView {
  id: string;
  kioskId: string;
  tap: number | null;
  heldMl: number;
  dispensedMl: number | null;
  /** HELD | SETTLED | RELEASED | OFFLINE */
  status: string;
  flagged: boolean;
  at: string;
  settledAt: string | null;
}
