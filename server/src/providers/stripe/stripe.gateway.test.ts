import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { CardEventError, CardSignatureError } from '../../modules/payments/card-gateway.js';
import { createStripeGateway, fromStripeAmount, isStripeRefusal, toStripeAmount } from './stripe.gateway.js';

describe('Stripe gateway', () => {
  const gateway = createStripeGateway({
    secretKey: 'sk_test_unit',
    webhookSecret: 'whsec_test',
    apiBase: 'http://127.0.0.1:9',
  });

  it('verifies with the SDK: the documented test vector passes, a wrong secret or an old one does not', () => {
    const payload = '{"id":"evt_test","object":"event"}';
    const header = 't=1700000000,v1=c25fec335f20601dcb662f0e7c4944646158a9324bb6ed8b7f6ab126449f507a';
    // The vector is old: within the 5 minutes only when "now" is its time.
    expect(() => gateway.readEvent(Buffer.from(payload), header)).toThrow(CardSignatureError);
    const fresh = Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_test' });
    expect(gateway.readEvent(Buffer.from(payload), fresh)).toMatchObject({
      kind: 'ignored',
      eventId: 'evt_test',
    });
    const forged = Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_other' });
    expect(() => gateway.readEvent(Buffer.from(payload), forged)).toThrow(CardSignatureError);
    expect(() => gateway.readEvent(Buffer.from(payload), undefined)).toThrow(CardSignatureError);
  });

  it('reads amounts in the currency exponent, exactly', () => {
    expect(toStripeAmount(850, 'EUR')).toBe(850);
    expect(toStripeAmount(500, 'JPY')).toBe(500);
    expect(toStripeAmount(1250, 'KWD')).toBe(1250);
    expect(toStripeAmount(5, 'ISK')).toBe(500);
    expect(fromStripeAmount(500, 'ISK')).toBe(5);
    expect(fromStripeAmount(550, 'ISK')).toBeUndefined();
    expect(gateway.currencyProblem('EUR')).toBeNull();
  });

  it('reads refund events strictly: a refund without an amount is refused, one of no PaymentIntent ignored', () => {
    const read = (object: Record<string, unknown>) => {
      const payload = JSON.stringify({
        id: 'evt_refund',
        object: 'event',
        type: 'refund.updated',
        data: { object },
      });
      const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_test' });
      return gateway.readEvent(Buffer.from(payload), header);
    };
    const refund = {
      id: 're_1',
      object: 'refund',
      amount: 850,
      currency: 'eur',
      payment_intent: 'pi_1',
      status: 'pending',
    };
    expect(read(refund)).toMatchObject({
      kind: 'refund_news',
      news: { outcome: 'pending', amountMinor: 850 },
    });
    expect(read({ ...refund, status: 'requires_action' })).toMatchObject({ news: { outcome: 'pending' } });
    expect(read({ ...refund, status: 'canceled' })).toMatchObject({
      news: { outcome: 'failed', error: 'Stripe refund re_1 was canceled' },
    });
    expect(() => read({ ...refund, amount: null })).toThrow(CardEventError);
    expect(() => read({ id: 'ch_1', object: 'charge' })).toThrow(/carries no refund object/);
    expect(read({ ...refund, payment_intent: null })).toMatchObject({ kind: 'ignored' });
  });

  it('counts a 4xx as Stripe refusing, but not a busy object, a key in flight, a reused key or a 5xx', () => {
    const error = (statusCode: number, raw: Record<string, unknown> = {}) =>
      Stripe.errors.StripeError.generate({ statusCode, message: 'm', type: 'invalid_request_error', ...raw });
    expect(isStripeRefusal(error(400, { code: 'charge_already_refunded' }))).toBe(true);
    expect(isStripeRefusal(error(402))).toBe(true);
    expect(isStripeRefusal(error(404, { code: 'resource_missing' }))).toBe(true);
    expect(isStripeRefusal(error(429, { code: 'lock_timeout' }))).toBe(false);
    expect(isStripeRefusal(error(400, { code: 'rate_limit' }))).toBe(false);
    expect(isStripeRefusal(error(409, { code: 'idempotency_key_in_use' }))).toBe(false);
    expect(isStripeRefusal(error(400, { type: 'idempotency_error' }))).toBe(false);
    expect(isStripeRefusal(error(400, { headers: { 'stripe-should-retry': 'true' } }))).toBe(false);
    expect(isStripeRefusal(error(500))).toBe(false);
    expect(isStripeRefusal(new Error('socket hang up'))).toBe(false);
  });
});
