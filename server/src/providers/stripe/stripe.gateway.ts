// Stripe Checkout as Kioskhub's card gateway, through the official SDK: a Checkout Session per
// payment (our payment id as client_reference_id), webhook events verified by
// `webhooks.constructEvent` over the raw bytes, and refunds through the Refunds API with our refund
// id as the idempotency key. STRIPE_API_BASE points the client at a local fake in tests.
import Stripe from 'stripe';
import { currencyExponent } from '../../platform/money.js';
import {
  CardSignatureError,
  type CardEvent,
  type CardGateway,
  type CheckoutRequest,
} from '../../modules/payments/card-gateway.js';

// Stripe's own minor units (docs.stripe.com/currencies): zero-decimal and three-decimal currencies;
// every other currency has two. Where ISO 4217 differs (ISK), amounts are scaled, exactly.
const STRIPE_ZERO_DECIMAL = new Set(
  'BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF'.split(' '),
);
const STRIPE_THREE_DECIMAL = new Set('BHD JOD KWD OMR TND'.split(' '));
const stripeExponent = (c: string) => (STRIPE_ZERO_DECIMAL.has(c) ? 0 : STRIPE_THREE_DECIMAL.has(c) ? 3 : 2);

/** ISO minor units → Stripe's `amount`. */
export const toStripeAmount = (minor: number, currency: string): number =>
  minor * 10 ** Math.max(0, stripeExponent(currency) - currencyExponent(currency));

/** Stripe's `amount` → ISO minor units; undefined when it has digits the currency does not. */
export function fromStripeAmount(amount: number, currency: string): number | undefined {
  const scale = 10 ** Math.max(0, stripeExponent(currency) - currencyExponent(currency));
  return Number.isSafeInteger(amount) && amount % scale === 0 ? amount / scale : undefined;
}

const withQuery = (url: string, query: string) => `${url}${url.includes('?') ? '&' : '?'}${query}`;

export interface StripeGatewayOptions {
  secretKey: string;
  webhookSecret: string;
  /** https://api.stripe.com, or a local fake (http://127.0.0.1:port). */
  apiBase: string;
  timeoutMs?: number;
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
/** An expandable field: the id, or the expanded object's id. */
const idOf = (v: unknown): string | undefined =>
  str(v) ?? (v && typeof v === 'object' ? str((v as Obj)['id']) : undefined);

export function createStripeGateway(o: StripeGatewayOptions): CardGateway {
  const base = new URL(o.apiBase);
  const protocol = base.protocol === 'http:' ? 'http' : 'https';
  const stripe = new Stripe(o.secretKey, {
    host: base.hostname,
    port: base.port || (protocol === 'http' ? 80 : 443),
    protocol,
    timeout: o.timeoutMs ?? 20_000,
    maxNetworkRetries: 2,
    telemetry: false,
  });

  function checkoutEvent(event: Stripe.Event, session: Obj): CardEvent {
    const eventId = event.id;
    const eventType = event.type;
    const paymentId = str(session['client_reference_id']);
    if (!paymentId) return { kind: 'ignored', eventId, eventType };
    if (eventType === 'checkout.session.async_payment_failed')
      return { kind: 'failed', eventId, eventType, paymentId };
    if (session['payment_status'] !== 'paid') return { kind: 'awaiting', eventId, eventType, paymentId };
    const currency = str(session['currency'])?.toUpperCase() ?? '';
    const total = session['amount_total'];
    const amountMinor =
      typeof total === 'number' && /^[A-Z]{3}$/.test(currency)
        ? fromStripeAmount(total, currency)
        : undefined;
    const providerPaymentId = idOf(session['payment_intent']) ?? str(session['id']);
    if (amountMinor === undefined || !providerPaymentId) return { kind: 'ignored', eventId, eventType };
    return { kind: 'paid', eventId, eventType, paymentId, providerPaymentId, amountMinor, currency };
  }

  return {
    provider: 'stripe',

    currencyProblem(currency) {
      // Stripe without the digits ISO 4217 has (none known today) would round amounts: refused.
      return stripeExponent(currency) < currencyExponent(currency)
        ? `Stripe takes ${currency} with fewer decimals than ISO 4217 has`
        : null;
    },

    async createCheckout(r: CheckoutRequest) {
      const currency = r.currency.toLowerCase();
      const session = await stripe.checkout.sessions.create(
        {
          mode: 'payment',
          client_reference_id: r.paymentId,
          metadata: { paymentId: r.paymentId },
          payment_intent_data: { metadata: { paymentId: r.paymentId } },
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency,
                unit_amount: toStripeAmount(r.amountMinor, r.currency),
                product_data: { name: r.description.slice(0, 250) },
              },
            },
          ],
          // Stripe sends the payer to success_url once paid (the webhook may come later) and to
          // cancel_url from the page's back link (the session stays open until it expires).
          success_url: withQuery(r.returnUrl, 'checkout=done'),
          cancel_url: withQuery(r.returnUrl, 'checkout=cancelled'),
          expires_at: Math.floor(Date.parse(r.expiresAt) / 1000),
        },
        // A retried create returns the same session, never a second one.
        { idempotencyKey: `checkout-${r.paymentId}` },
      );
      if (!session.url) throw new Error(`Stripe returned checkout session ${session.id} without a url`);
      return { checkoutId: session.id, url: session.url };
    },

    async fetchCheckout(checkoutId) {
      const s = await stripe.checkout.sessions.retrieve(checkoutId);
      if (s.status === 'expired') return { state: 'expired' };
      const currency = (s.currency ?? '').toUpperCase();
      const amountMinor =
        s.amount_total !== null && /^[A-Z]{3}$/.test(currency)
          ? fromStripeAmount(s.amount_total, currency)
          : undefined;
      const providerPaymentId = idOf(s.payment_intent) ?? s.id;
      if (s.payment_status !== 'paid' || amountMinor === undefined) return { state: 'open' };
      return { state: 'paid', providerPaymentId, amountMinor, currency };
    },

    async refund(providerPaymentId, amountMinor, ctx) {
      const refund = await stripe.refunds.create(
        { payment_intent: providerPaymentId, amount: toStripeAmount(amountMinor, ctx.currency) },
        // The job may run again after a timeout: Stripe answers a repeat with the same refund.
        { idempotencyKey: `refund-${ctx.refundId}` },
      );
      // `pending` and `requires_action` are on their way; `failed` or `canceled` gave nothing back:
      // the job tries again (the same key answers the same refund) and ends FAILED with an alert.
      if (refund.status === 'failed' || refund.status === 'canceled')
        throw new Error(
          `Stripe refund ${refund.id} is ${refund.status}: ${refund.failure_reason ?? 'no reason'}`,
        );
      return { providerRefundId: refund.id };
    },

    readEvent(raw, signature) {
      let event: Stripe.Event;
      try {
        event = stripe.webhooks.constructEvent(raw, signature ?? '', o.webhookSecret);
      } catch (err) {
        if (err instanceof Stripe.errors.StripeSignatureVerificationError)
          throw new CardSignatureError(err.message);
        throw new Error('the body is not a JSON Stripe event');
      }
      const object = (event.data?.object ?? {}) as unknown as Obj;
      switch (event.type) {
        case 'checkout.session.completed':
        case 'checkout.session.async_payment_succeeded':
        case 'checkout.session.async_payment_failed':
          return checkoutEvent(event, object);
        case 'charge.refunded': {
          const currency = str(object['currency'])?.toUpperCase() ?? '';
          const pi = idOf(object['payment_intent']);
          const refunded = object['amount_refunded'];
          const refundedMinor =
            typeof refunded === 'number' && /^[A-Z]{3}$/.test(currency)
              ? fromStripeAmount(refunded, currency)
              : undefined;
          if (!pi || refundedMinor === undefined)
            return { kind: 'ignored', eventId: event.id, eventType: event.type };
          const refunds = (object['refunds'] as Obj | undefined)?.['data'];
          const latest = Array.isArray(refunds) ? idOf(refunds[0]) : undefined;
          return {
            kind: 'refunded',
            eventId: event.id,
            eventType: event.type,
            providerPaymentId: pi,
            refundedMinor,
            currency,
            providerRefundId: latest ?? null,
          };
        }
        default:
          return { kind: 'ignored', eventId: event.id, eventType: event.type };
      }
    },
  };
}
