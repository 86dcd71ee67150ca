import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { CardSignatureError } from '../../modules/payments/card-gateway.js';
import { createStripeGateway, fromStripeAmount, toStripeAmount } from './stripe.gateway.js';

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
});
