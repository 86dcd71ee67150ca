// The Africa's Talking, MoMo and Airtel variables: set together, callback secrets long enough,
// country and currency codes well formed; a bad value names its variable.
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

describe("mobile-money and Africa's Talking configuration", () => {
  it('has safe defaults: nothing offered, sandbox bases', () => {
    const c = loadConfig({});
    // A pending payment is asked every 30 s (the documented default), and once more at its expiry.
    expect(c.paymentStatusPollMs).toBe(30_000);
    expect(c.momo).toMatchObject({
      apiBase: 'https://sandbox.momodeveloper.mtn.com',
      targetEnvironment: 'sandbox',
      apiUser: undefined,
    });
    expect(c.airtel).toMatchObject({
      apiBase: 'https://openapiuat.airtel.africa',
      country: 'UG',
      currency: 'UGX',
      clientId: undefined,
    });
    expect(c.africasTalking.callbackSecret).toBeUndefined();
  });
  it('reads AT_CALLBACK_KEY, and AT_CALLBACK_SECRET as its older name', () => {
    expect(loadConfig({ AT_CALLBACK_KEY: 'k7f3a9c1e44b2d8e' }).africasTalking.callbackSecret).toBe(
      'k7f3a9c1e44b2d8e',
    );
    expect(loadConfig({ AT_CALLBACK_SECRET: 'k7f3a9c1e44b2d8e' }).africasTalking.callbackSecret).toBe(
      'k7f3a9c1e44b2d8e',
    );
    expect(refusal({ AT_CALLBACK_KEY: 'short' })).toContain('AT_CALLBACK_KEY');
    expect(refusal({ MOMO_CALLBACK_KEY: 'change-me-please-now' })).toContain('MOMO_CALLBACK_KEY');
  });
  it('wants the MoMo and Airtel credentials together and codes well formed', () => {
    expect(refusal({ MOMO_API_USER: 'u', MOMO_API_KEY: 'k' })).toContain('MOMO_SUBSCRIPTION_KEY');
    expect(refusal({ AIRTEL_CLIENT_ID: 'c' })).toContain('AIRTEL_CLIENT_SECRET');
    expect(refusal({ AIRTEL_COUNTRY: 'uganda' })).toContain('AIRTEL_COUNTRY');
    expect(refusal({ MOMO_CURRENCY: 'eur' })).toContain('MOMO_CURRENCY');
    expect(refusal({ MOMO_API_BASE: 'ftp://x' })).toContain('MOMO_API_BASE');
    const c = loadConfig({
      MOMO_SUBSCRIPTION_KEY: 's',
      MOMO_API_USER: 'u',
      MOMO_API_KEY: 'k',
      MOMO_TARGET_ENVIRONMENT: 'mtnuganda',
      MOMO_CURRENCY: 'UGX',
    });
    expect(c.momo).toMatchObject({
      subscriptionKey: 's',
      apiUser: 'u',
      apiKey: 'k',
      targetEnvironment: 'mtnuganda',
      currency: 'UGX',
    });
  });
});
