// What a card gateway adapter (providers/stripe, or a second gateway in its own folder) gives the
// payments module: a hosted checkout for one payment, its signed events read into this neutral
// shape, and refunds. Nothing here knows a gateway's wire format.
import type { ProviderRefundStatus } from './refund-polls.js';
import type { ProviderRefundNews, ProviderRefunds } from './refunds.js';

export interface CheckoutRequest {
  paymentId: string;
  amountMinor: number;
  currency: string;
  description: string;
  /** Where the payer returns after paying, or after giving up. */
  returnUrl: string;
  expiresAt: string;
}

export type CardEvent =
  | {
      kind: 'paid';
      eventId: string;
      eventType: string;
      /** Our payment id, which the checkout carried. */
      paymentId: string;
      /** The gateway's id of the money taken (refunds name it). */
      providerPaymentId: string;
      amountMinor: number;
      currency: string;
    }
  /** The checkout finished but the money is still on its way (a delayed payment method). */
  | { kind: 'awaiting'; eventId: string; eventType: string; paymentId: string }
  | { kind: 'failed'; eventId: string; eventType: string; paymentId: string }
  | {
      kind: 'refunded';
      eventId: string;
      eventType: string;
      providerPaymentId: string;
      /** All that the gateway has refunded of this payment so far. */
      refundedMinor: number;
      currency: string;
      providerRefundId: string | null;
    }
  /** News of one refund (made, failed, still on its way), settled by the gateway's refund id. */
  | { kind: 'refund_news'; eventId: string; eventType: string; news: ProviderRefundNews }
  | { kind: 'ignored'; eventId: string; eventType: string };

export type CheckoutState =
  | { state: 'open' }
  | { state: 'paid'; providerPaymentId: string; amountMinor: number; currency: string }
  | { state: 'expired' };

/** A signature that does not verify (missing, forged, too old): nothing is read or stored. */
export class CardSignatureError extends Error {}

/** A verified event that cannot be read (not JSON, an object missing what its type carries). */
export class CardEventError extends Error {}

/** Refunds, and where one left PENDING stands (its status checks, refund-polls.ts). */
export interface CardGateway extends ProviderRefunds, ProviderRefundStatus {
  /** Recorded as the payments' `provider` (`stripe`). */
  provider: string;
  /** Why the gateway cannot take this currency exactly, or null when it can. */
  currencyProblem(currency: string): string | null;
  createCheckout(r: CheckoutRequest): Promise<{ checkoutId: string; url: string }>;
  /** Where a checkout stands, asked when its event may have been lost and before it expires. */
  fetchCheckout(checkoutId: string): Promise<CheckoutState>;
  /** Verifies the signature over the raw bytes, then reads the event; throws CardSignatureError. */
  readEvent(raw: Buffer, signature: string | undefined): CardEvent;
}
