// How a one-off payment method presents itself to the payer. The cafe's `POST
// /api/payments/initiate` (and any later channel) creates the PENDING intent through
// `intents.create` and asks the method for what the payer needs: a bank transfer's EPC payload
// and RF reference, a card gateway's hosted checkout URL. A second card gateway is a new adapter
// registered under its method, not a change to the channel's code.
import type { Executor } from '../../platform/db/database.js';
import type { PaymentRow } from '../../platform/db/schema.js';

/** What the channel knows about what is being paid for. */
export interface PaymentSubject {
  tenantId: string;
  siteId: string | null;
  /** The order (cafe) or plan being paid; shown to the payer. */
  description: string;
  orderId?: string;
  customerId?: string;
  /** Where the payer goes back to (the guest's order page). */
  returnUrl?: string;
}

export interface OneOffMethod {
  /** `bank_transfer`, `card`, … (§13 methods). */
  method: string;
  /** The provider recorded on the payment (`bank`, `stripe`). */
  provider: string;
  /** Our reference for the payer, fixed when the intent is created (an RF reference). */
  reference?(paymentId: string): string;
  /** How long the intent stays payable (default: PAYMENT_INTENT_TTL_MS). */
  ttlMs?: number;
  /**
   * Before anything is written: throws an AppError when this method cannot pay in this place
   * (a currency it does not take, no account to pay into), so a refusal changes nothing.
   */
  check?(subject: { tenantId: string; siteId: string | null; currency: string }): void | Promise<void>;
  /**
   * After the intent committed, outside any transaction (it may wait on the provider): what the
   * payer needs, merged into the initiate answer. May record the provider's id on the payment.
   */
  present(ex: Executor, payment: PaymentRow, subject: PaymentSubject): Promise<Record<string, unknown>>;
}

export function createMethodRegistry() {
  const methods = new Map<string, OneOffMethod>();
  return {
    register(m: OneOffMethod): void {
      if (methods.has(m.method)) throw new Error(`payment method "${m.method}" is already registered`);
      methods.set(m.method, m);
    },
    get: (method: string): OneOffMethod | undefined => methods.get(method),
    has: (method: string): boolean => methods.has(method),
  };
}

export type MethodRegistry = ReturnType<typeof createMethodRegistry>;
