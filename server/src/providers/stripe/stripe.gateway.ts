// Stripe Checkout as Kioskhub's card gateway, through the official SDK: a Checkout Session per
// payment (our payment id as client_reference_id), webhook events verified by
// `webhooks.constructEvent` over the raw bytes, and refunds through the Refunds API with our refund
// id as the idempotency key and in its metadata (a pending one looked up with Retrieve a refund).
// STRIPE_API_BASE points the client at a local fake in tests.
import Stripe from 'stripe';
import { currencyExponent } from '../../platform/money.js';
import {
  CardEventError,
  CardSignatureError,
  type CardEvent,
  type CardGateway,
  type CheckoutRequest,
} from '../../modules/payments/card-gateway.js';
import {
  REFUND_ID_NOTE,
  RefundLookupFailedError,
  RefundRefusedError,
  refundIdOfNotes,
  type ProviderRefundNews,
} from '../../modules/payments/refunds.js';

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

/** Error codes Stripe answers while another request holds the object or the key, or too many came. */
const STRIPE_BUSY_CODES = new Set(['lock_timeout', 'rate_limit', 'idempotency_key_in_use']);

/**
 * Stripe's answer on the request itself, final: a 4xx (`charge_already_refunded`, `amount_too_large`,
 * an unknown PaymentIntent, a key it does not take), which asking again gets again: Stripe keeps the
 * answer under the idempotency key. Not a 408, a 409 (another request with the same key in flight),
 * a 429 or the codes of a busy object (`lock_timeout`, `rate_limit`, `idempotency_key_in_use`), not
 * `Stripe-Should-Retry: true`, and not an `idempotency_error` (the key was used with other
 * parameters: a refund may exist under it, so staff must look before refunding again); nor a 5xx or
 * no answer at all. Those are asked again by the job.
 */
export function isStripeRefusal(err: unknown): err is Stripe.errors.StripeError {
  if (!(err instanceof Stripe.errors.StripeError)) return false;
  const status = err.statusCode;
  if (status === undefined || status < 400 || status >= 500) return false;
  if (status === 408 || status === 409 || status === 429) return false;
  if (err.rawType === 'idempotency_error' || (err.code && STRIPE_BUSY_CODES.has(err.code))) return false;
  const shouldRetry = (err.headers as Record<string, string | undefined> | undefined)?.[
    'stripe-should-retry'
  ];
  return shouldRetry !== 'true';
}

/** What Stripe said, for the refund's error and the alert: `400 charge_already_refunded: …`. */
const stripeAnswer = (err: Stripe.errors.StripeError) =>
  `Stripe answered ${err.statusCode ?? 'with an error'}${err.code ? ` ${err.code}` : ''}: ${err.message || err.rawType || 'no message'}`;

/** The statuses of Stripe's Refund object (docs.stripe.com/api/refunds/object). */
const REFUND_NEWS = {
  succeeded: 'processed',
  pending: 'pending',
  requires_action: 'pending',
  failed: 'failed',
  canceled: 'failed',
} as const;

/** Why a Stripe refund gave nothing back, from its status and `failure_reason`. */
const refundFailure = (id: string, status: string, reason: unknown) =>
  status === 'canceled'
    ? `Stripe refund ${id} was canceled`
    : `Stripe refund ${id} failed: ${str(reason) ?? 'no reason given'}`;

/**
 * Stripe's Refund object (docs.stripe.com/api/refunds/object) as the news of that refund; undefined
 * for a refund of no PaymentIntent. `unreadable(why)` is thrown for an object it cannot read.
 */
function readRefund(refund: Obj, unreadable: (why: string) => Error): ProviderRefundNews | undefined {
  const id = str(refund['id']);
  if (refund['object'] !== 'refund' || !id) throw unreadable(' carries no refund object with an id');
  const pi = idOf(refund['payment_intent']);
  if (!pi) return undefined;
  const currency = str(refund['currency'])?.toUpperCase() ?? '';
  const amount = refund['amount'];
  const amountMinor =
    typeof amount === 'number' && /^[A-Z]{3}$/.test(currency)
      ? fromStripeAmount(amount, currency)
      : undefined;
  const status = str(refund['status']);
  const refundId = refundIdOfNotes(refund['metadata']);
  if (amountMinor === undefined || !status)
    throw unreadable(`: refund ${id} has no readable amount, currency or status`);
  // A status Stripe adds later says nothing we know: the refund keeps waiting.
  const outcome = Object.hasOwn(REFUND_NEWS, status)
    ? REFUND_NEWS[status as keyof typeof REFUND_NEWS]
    : 'pending';
  return {
    provider: 'stripe',
    providerRefundId: id,
    providerPaymentId: pi,
    amountMinor,
    outcome,
    error: outcome === 'failed' ? refundFailure(id, status, refund['failure_reason']) : '',
    // Our refund id from its metadata: finds a refund whose answer never came (its job gave up).
    ...(refundId !== undefined ? { refundId } : {}),
  };
}

const REFUND_EVENTS = new Set(['refund.created', 'refund.updated', 'refund.failed', 'charge.refund.updated']);

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

  /**
   * `refund.created|updated|failed` and `charge.refund.updated` carry the Refund object: its news
   * for the refund it names. A refund of no PaymentIntent is none of ours (every checkout has one).
   */
  function refundNews(event: Stripe.Event, refund: Obj): CardEvent {
    const eventId = event.id;
    const eventType = event.type;
    const news = readRefund(refund, (why) => new CardEventError(`${eventType} ${eventId}${why}`));
    if (!news) return { kind: 'ignored', eventId, eventType };
    return { kind: 'refund_news', eventId, eventType, news };
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
      let refund: Stripe.Refund;
      try {
        refund = await stripe.refunds.create(
          {
            payment_intent: providerPaymentId,
            amount: toStripeAmount(amountMinor, ctx.currency),
            // Echoed on the Refund object of its webhooks and Retrieve answers.
            metadata: { [REFUND_ID_NOTE]: ctx.refundId },
          },
          // The job may run again after a timeout: Stripe answers a repeat with the same refund.
          { idempotencyKey: `refund-${ctx.refundId}` },
        );
      } catch (err) {
        throw isStripeRefusal(err) ? new RefundRefusedError(stripeAnswer(err)) : err;
      }
      // `failed` or `canceled` gave nothing back, and the same key answers the same refund: it ends
      // FAILED now. `pending` and `requires_action` are on their way: they wait for the refund's
      // webhook (refund.updated, refund.failed).
      const status = refund.status ?? 'pending';
      if (status === 'failed' || status === 'canceled')
        throw new RefundRefusedError(refundFailure(refund.id, status, refund.failure_reason));
      return { providerRefundId: refund.id, pending: status !== 'succeeded' };
    },

    // A refund left PENDING, asked about now and then (modules/payments/refund-polls.ts): the same
    // news as its webhook. A refusal (`404 resource_missing`, a key Stripe does not take) or an
    // object it cannot read is final; no answer, a 5xx, 408, 409 or 429 is asked again.
    async fetchRefund(providerRefundId) {
      let refund: Stripe.Refund;
      try {
        refund = await stripe.refunds.retrieve(providerRefundId);
      } catch (err) {
        throw isStripeRefusal(err) ? new RefundLookupFailedError(stripeAnswer(err)) : err;
      }
      const what = `GET /v1/refunds/${providerRefundId}`;
      const news = readRefund(
        refund as unknown as Obj,
        (why) => new RefundLookupFailedError(`Stripe's answer to ${what}${why}`),
      );
      if (!news)
        throw new RefundLookupFailedError(`Stripe answered ${what} with a refund of no PaymentIntent`);
      return news;
    },

    readEvent(raw, signature) {
      let event: Stripe.Event;
      try {
        event = stripe.webhooks.constructEvent(raw, signature ?? '', o.webhookSecret);
      } catch (err) {
        if (err instanceof Stripe.errors.StripeSignatureVerificationError)
          throw new CardSignatureError(err.message);
        throw new CardEventError('the body is not a JSON Stripe event');
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
          if (REFUND_EVENTS.has(event.type)) return refundNews(event, object);
          return { kind: 'ignored', eventId: event.id, eventType: event.type };
      }
    },
  };
}
