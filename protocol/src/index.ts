// The single source of event names and payload types shared by the server, the machine
// simulator, field agents and browsers (CONTRACTS.md §5 and §8).

export type MachineStatus = 'OFFLINE' | 'IDLE' | 'BUSY' | 'ERROR';
export type ReportedMachineStatus = Exclude<MachineStatus, 'OFFLINE'>;
export type MachineKind = 'vending' | 'kiosk' | 'water' | 'printer' | 'cash' | 'table';
export const MACHINE_KINDS: readonly MachineKind[] = [
  'vending',
  'kiosk',
  'water',
  'printer',
  'cash',
  'table',
];

export type OrderStatus =
  | 'CREATED'
  | 'PAID'
  | 'DISPATCHED'
  | 'COMPLETED'
  | 'FAILED'
  | 'NEEDS_REVIEW'
  | 'CANCELLED'
  | 'REFUNDED'
  // A cafe order in the kitchen (CONTRACTS §12): PAID → PREPARING → READY → SERVED.
  | 'PREPARING'
  | 'READY'
  | 'SERVED';
export const ORDER_STATUSES: readonly OrderStatus[] = [
  'CREATED',
  'PAID',
  'DISPATCHED',
  'COMPLETED',
  'FAILED',
  'NEEDS_REVIEW',
  'CANCELLED',
  'REFUNDED',
  'PREPARING',
  'READY',
  'SERVED',
];

export type DispenseResult = 'SUCCESS' | 'FAILED';

// ---- v2 machine gateway, namespace /machines --------------------------------------------

export const MACHINES_NAMESPACE = '/machines';

export interface MachineHandshakeAuth {
  machineId: string;
  key: string;
}

export interface HeartbeatPayload {
  status: ReportedMachineStatus;
  firmware?: string;
  metrics?: Record<string, unknown>;
}
export interface HeartbeatAck {
  ok: true;
  serverTime: string;
}

export interface DonePayload {
  commandId: string;
  orderId: string;
  status: DispenseResult;
  failureCode?: string;
  details?: unknown;
}

export interface DispenseCommand {
  commandId: string;
  orderId: string;
  amountMinor: number;
  currency: string;
  items?: { sku: string; qty: number }[];
  issuedAt: string;
}
export type DispenseAck = { accepted: true } | { accepted: false; reason: string };

/** Error answer used by every socket event that rejects its payload. */
export interface SocketErrorAck {
  ok: false;
  error: { code: string; message: string; details?: unknown };
}

export const V2_EVENTS = {
  heartbeat: 'machine:heartbeat',
  done: 'machine:done',
  dispense: 'machine:dispense',
} as const;

/** Pushed to printers connected on /machines (CONTRACTS.md §10): one leased receipt. */
export const PRINT_JOB_EVENT = 'print_job';

/** The receipt document of the print queue (CONTRACTS.md §10): major units, the earlier kiosk's names. */
export interface Receipt {
  restaurantName: string;
  restaurantAddress: string;
  restaurantPhone: string;
  orderNumber: string;
  orderDate: string;
  customerName?: string;
  items: { productName: string; quantity: number; lineTotal: number }[];
  subTotal: number;
  tax: number;
  /** A cafe guest's tip, in `totalAmount` (subTotal + tax + tip = totalAmount); absent without one. */
  tip?: number;
  totalAmount: number;
  paymentMethod: string;
  amountPaid?: number;
  change?: number;
  /**
   * ISO 4217 code of the amounts: a printer prints each with that currency's decimals (UGX none,
   * KWD three). Absent from the earlier kiosk's receipts, which had two.
   */
  currency?: string;
}

export interface PrintJobPush {
  jobId: string;
  receipt: Receipt;
  queuedAt: string;
}

// ---- v1 machine gateway (seed-compatible), default namespace -----------------------------

export const V1_EVENTS = {
  welcome: 'machine:welcome',
  connect: 'machine:connect',
  authenticated: 'machine:authenticated',
  heartbeat: 'machine:heartbeat',
  dispense: 'machine:dispense',
  done: 'machine:done',
} as const;

export interface V1ConnectPayload {
  machineId: string;
  token: string;
}
export interface V1DispensePayload {
  type: 'DISPENSE';
  orderId: string;
}
export interface V1DonePayload {
  orderId: string;
  result: DispenseResult;
}

// ---- live updates for browsers, namespace /live ------------------------------------------

export const LIVE_NAMESPACE = '/live';

export const LIVE_EVENTS = {
  machineStatus: 'machine_status',
  orderCreated: 'order_created',
  orderStatusUpdated: 'order_status_updated',
  paymentInitiated: 'payment_initiated',
  paymentCompleted: 'payment_completed',
  cashSessionUpdated: 'cash_session_updated',
  kitchenOrderReady: 'kitchen_order_ready',
  /** A paid kitchen order left the kitchen's queue without being made: refunded in full (docs/api.md §16). */
  kitchenOrderCancelled: 'kitchen_order_cancelled',
  printJobUpdated: 'print_job_updated',
  /** A payment of an order was refunded (cafe, docs/cafe.md). */
  paymentRefunded: 'payment_refunded',
  /** A refund of an order's payment that waited (PENDING, DUE) ended: SUCCEEDED or FAILED (docs/cafe.md). */
  refundUpdated: 'refund_updated',
  /** A one-off payment of an order ended without money: EXPIRED or FAILED (docs/cafe.md). */
  paymentEnded: 'payment_ended',
  /** An operator alert was raised (dashboard: offline too long, failed dispense…); docs/dashboard.md. */
  alertRaised: 'alert_raised',
  /** A water kiosk asked to verify a customer (docs/water.md). */
  waterVerification: 'water_verification',
  /** A water kiosk reported water dispensed (settlement or offline log; docs/water.md). */
  waterDispensed: 'water_dispensed',
  /** A water customer changed (staff edit, credit, PIN reset, plan applied, balance, holds). */
  customerUpdated: 'customer_updated',
  /** A firmware campaign changed status or wave (docs/firmware.md). */
  firmwareCampaignUpdated: 'firmware_campaign_updated',
  /** A machine's firmware deployment changed state or progress (docs/firmware.md). */
  firmwareDeviceUpdated: 'firmware_device_updated',
} as const;
export type LiveEventName = (typeof LIVE_EVENTS)[keyof typeof LIVE_EVENTS];

export interface MachineStatusEvent {
  tenantId: string;
  machineId: string;
  status: MachineStatus;
  socketConnected: boolean;
  lastSeenAt: string | null;
}
export interface OrderStatusEvent {
  tenantId: string;
  orderId: string;
  machineId?: string;
  status: OrderStatus;
  failureCode?: string;
}
export interface OrderCreatedEvent {
  tenantId: string;
  orderId: string;
  machineId?: string;
  status: OrderStatus;
  amount: number;
  currency: string;
  source: string;
}

/**
 * `refund_updated`: a refund of an order's payment that waited (PENDING at its provider, DUE with
 * staff) ended. `refundedMinor` is the payment's refunded total after it (a FAILED refund is no
 * longer counted). Why a FAILED one gave nothing back is on the refund (`GET /v1/payments/:id/refunds`),
 * not here: the guest's rooms hear this too.
 */
export interface RefundUpdatedEvent {
  tenantId: string;
  orderId: string;
  paymentId: string;
  refundId: string;
  amountMinor: number;
  refundedMinor: number;
  currency: string;
  destination: 'original' | 'refund_due' | 'credit';
  status: 'SUCCEEDED' | 'FAILED';
}

export interface WaterVerificationEvent {
  tenantId: string;
  kioskId: string;
  customerId: string | null;
  approved: boolean;
  code: string;
  volumeMl: number;
  authorizationId?: string;
}
export interface WaterDispensedEvent {
  tenantId: string;
  kioskId: string;
  customerId: string;
  dispensedMl: number;
  tap: number | null;
  authorizationId?: string;
  flagged: boolean;
  offline?: boolean;
}
export interface CustomerUpdatedEvent {
  tenantId: string;
  customerId: string;
  reason: string;
}

export type LiveRoom = `tenant:${string}` | `machine:${string}` | `order:${string}` | `kitchen:${string}`;
export const LIVE_ROOM_KINDS = ['tenant', 'machine', 'order', 'kitchen'] as const;

export interface SubscribePayload {
  room: string;
}

export type * from './views.js';
export * from './money.js';
export * from './water-ops.js';

export * from './ota.js';
export * from './mqtt.js';
