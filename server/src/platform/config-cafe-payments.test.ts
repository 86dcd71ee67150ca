// The bank-webhook and Stripe variables: secrets long enough and not placeholders, Stripe's key
// and webhook secret set together, the API base a URL; a bad value names its variable.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const refusal = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return 'accepted';
};

describe('cafe payment configuration', () => {
  it('has safe defaults: no bank webhook, no card gateway, the real Stripe API', () => {
    const c = loadConfig({});
    expect(c.bankWebhookSecrets).toEqual([]);
    expect(c.stripe).toEqual({
      secretKey: undefined,
      webhookSecret: undefined,
      apiBase: 'https://api.stripe.com',
    });
  });

  it('reads the secrets, a rotation list, and a local Stripe base', () => {
    const c = loadConfig({
      BANK_WEBHOOK_SECRET: 'bank-secret-new-0917, bank-secret-old-0917',
      STRIPE_SECRET_KEY: 'sk_test_abc',
      STRIPE_WEBHOOK_SECRET: 'whsec_abc',
      STRIPE_API_BASE: 'http://127.0.0.1:12111/',
    });
    expect(c.bankWebhookSecrets).toEqual(['bank-secret-new-0917', 'bank-secret-old-0917']);
    expect(c.stripe).toEqual({
      secretKey: 'sk_test_abc',
      webhookSecret: 'whsec_abc',
      apiBase: 'http://127.0.0.1:12111',
    });
  });

  it('refuses weak or placeholder bank secrets, half a Stripe setup and a bad base', () => {
    expect(refusal({ BANK_WEBHOOK_SECRET: 'short' })).toMatch(/^BANK_WEBHOOK_SECRET: must be at least 16/);
    expect(refusal({ BANK_WEBHOOK_SECRET: 'change-me-change-me' })).toMatch(
      /^BANK_WEBHOOK_SECRET: .*placeholder/,
    );
    expect(refusal({ STRIPE_SECRET_KEY: 'sk_test_abc' })).toMatch(/^STRIPE_WEBHOOK_SECRET: .*set together/);
    expect(refusal({ STRIPE_WEBHOOK_SECRET: 'whsec_abc' })).toMatch(/^STRIPE_SECRET_KEY: .*set together/);
    expect(refusal({ STRIPE_API_BASE: 'ftp://stripe' })).toMatch(
      /^STRIPE_API_BASE: must use http: or https:/,
    );
  });
});
