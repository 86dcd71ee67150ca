// The provider-neutral shape every provider adapter turns its inbound request into. Providers
// import it from here; this module never imports a provider.

export interface PaymentNotification {
  provider: string;
  eventId: string | null;
  eventType: string;
  providerPaymentId: string;
  amountMinor: number;
  currency: string;
  /** What the payment points at: a standing intent's reference (a machine's QR code id). */
  reference: string | null;
  captured: boolean;
  raw: string;
}
