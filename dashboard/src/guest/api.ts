// How the guest page talks to the cafe API (`/api/…`): JSON over fetch with one of the guest's
// tokens. Failures carry the contract's stable code; a request that never reached the server is
// `NETWORK`, so the page can say "no connection" rather than "error".
import type { RefundUpdatedEvent } from '@kioskhub/protocol';

export class GuestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export async function call<T>(path: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method: body === undefined ? 'GET' : 'POST',
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    throw new GuestError(0, 'NETWORK', 'No connection. Check your signal or Wi-Fi and try again.');
  }
  if (!res.ok) {
    let error: { code?: string; message?: string; details?: unknown } = {};
    try {
      error = ((await res.json()) as { error?: typeof error }).error ?? {};
    } catch {
      /* not JSON */
    }
    throw new GuestError(
      res.status,
      error.code ?? `HTTP_${res.status}`,
      error.message ?? res.statusText,
      error.details,
    );
  }
  return (await res.json()) as T;
}

// ---- what the API answers (docs/cafe.md) --------------------------------------------------

export interface MenuProduct {
  sku: string;
  name: string;
  priceMinor: number;
  category: string | null;
  description: string | null;
  stock: number | null;
  available: boolean;
  soldOut: boolean;
}

export interface Menu {
  site: { id: string; name: string; address: string | null; phone: string | null };
  table: { id: string; name: string };
  currency: string;
  tipPresetsPercent: number[];
  payLater: boolean;
  categories: { name: string; products: MenuProduct[] }[];
}

export interface GuestOrder {
  id: string;
  orderNumber: string | null;
  status: string;
  siteId: string | null;
  tableId: string;
  currency: string;
  items?: { sku: string; qty: number; name?: string; unitPriceMinor?: number; notes?: string }[];
  subtotalMinor: number;
  tipMinor: number;
  totalMinor: number;
  paidAt: string | null;
  /** `UNPAID_EXPIRED`: cancelled because it was not paid in time. */
  failureCode?: string | null;
  /** The order's newest refund (null: none), as `payment_refunded` / `refund_updated` carry it. */
  refund?: GuestRefund | null;
}

/** A refund of the order: PENDING at the card's provider, DUE from staff, then SUCCEEDED or FAILED. */
export type GuestRefund = Pick<
  RefundUpdatedEvent,
  'orderId' | 'refundId' | 'amountMinor' | 'currency' | 'destination'
> & { status: string };

export type Method = 'cash' | 'credit' | 'bank_transfer' | 'card';

export interface GuestPayment {
  paymentId: string;
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED' | 'EXPIRED' | 'REFUNDED' | 'PARTIALLY_REFUNDED';
  method: Method | string;
  amountMinor: number;
  receivedMinor?: number;
  refundedMinor?: number;
  currency: string;
  orderId: string | null;
  failureCode?: string | null;
  expiresAt?: string | null;
  payLater?: boolean;
  /** Bank transfer (docs/cafe.md §6): the EPC QR and the RF reference to quote. */
  epc?: { payload: string; reference: string; qrPngUrl: string };
  /** Card: the gateway's hosted checkout. */
  checkoutUrl?: string;
}

export interface Wallet {
  customerId: string;
  balanceMinor: number;
  currency: string;
}

// ---- what this phone remembers ------------------------------------------------------------
// The order token lets a reload (or the return from a card checkout to /t/order/<id>) find the
// order again; the customer token keeps the wallet signed in while the guest is at the table.

export interface SavedOrder {
  orderId: string;
  orderToken: string;
  tableToken: string;
  paymentId?: string;
  /** What the initiate answer presented (the status route does not repeat it). */
  presented?: Pick<GuestPayment, 'epc' | 'checkoutUrl'>;
}

const ORDER_KEY = (id: string) => `kioskhub.guest.order.${id}`;
const CUSTOMER_KEY = 'kioskhub.guest.customer';

function read<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}
function write(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* private mode: the page still works until it is reloaded */
  }
}

export const savedOrder = (orderId: string): SavedOrder | null => read<SavedOrder>(ORDER_KEY(orderId));
export const saveOrder = (o: SavedOrder): void => write(ORDER_KEY(o.orderId), o);

export interface SavedCustomer {
  token: string;
  customerId: string;
  phone: string;
  savedAt: number;
  /** The table it signed in at: a customer token pays only that table's orders. */
  tableId?: string;
}
/** 12 h: the server's customer token lifetime. */
const CUSTOMER_TTL_MS = 12 * 3_600_000;
/** The wallet sign-in kept in this browser, for `tableId` (one made at another table does not pay here). */
export function savedCustomer(tableId: string): SavedCustomer | null {
  const c = read<SavedCustomer>(CUSTOMER_KEY);
  return c && Date.now() - c.savedAt < CUSTOMER_TTL_MS && c.tableId === tableId ? c : null;
}
export const saveCustomer = (c: SavedCustomer | null): void => {
  if (c) write(CUSTOMER_KEY, c);
  else localStorage.removeItem(CUSTOMER_KEY);
};
