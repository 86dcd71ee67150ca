// Which water a subscription pays for, and what buying or ending one writes: pure rules.
import { describe, expect, it } from 'vitest';
import { subscriptionCovers, subscriptionRunChange } from './subscription-run.js';

const t = (iso: string) => Date.parse(iso);
const run = (
  expires: string | null,
  started: string | null = null,
  prior: string | null = null,
  priorStarted: string | null = null,
) => ({
  subscription_expires_at: expires,
  subscription_started_at: started,
  subscription_prior_expires_at: prior,
  subscription_prior_started_at: priorStarted,
});

describe('subscriptionCovers', () => {
  it('none, or expired at that instant: not covered', () => {
    expect(subscriptionCovers(run(null), t('2026-12-01T00:00:00Z'))).toBe(false);
    expect(subscriptionCovers(run('2026-12-01T00:00:00Z'), t('2026-12-01T00:00:00Z'))).toBe(false);
  });
  it('an unknown start covers anything before the expiry, as before starts were stored', () => {
    expect(subscriptionCovers(run('2026-12-31T00:00:00Z'), t('1970-01-02T00:00:00Z'))).toBe(true);
  });
  it('from the start to the expiry; before the start only inside the run before it', () => {
    const c = run('2026-12-31T00:00:00Z', '2026-12-10T00:00:00Z', '2026-12-05T00:00:00Z');
    expect(subscriptionCovers(c, t('2026-12-10T00:00:00Z'))).toBe(true);
    expect(subscriptionCovers(c, t('2026-12-07T00:00:00Z'))).toBe(false); // the lapse
    expect(subscriptionCovers(c, t('2026-12-04T23:59:59Z'))).toBe(true); // the run before
    expect(subscriptionCovers({ ...c, subscription_prior_expires_at: null }, t('2026-12-04T00:00:00Z'))).toBe(
      false,
    );
  });
  it('the run before covers only from its start, when known', () => {
    const c = run(
      '2026-12-31T00:00:00Z',
      '2026-12-10T00:00:00Z',
      '2026-12-05T00:00:00Z',
      '2026-11-20T00:00:00Z',
    );
    expect(subscriptionCovers(c, t('2026-11-20T00:00:00Z'))).toBe(true);
    expect(subscriptionCovers(c, t('2026-11-19T23:59:59Z'))).toBe(false); // before it began
  });
});

describe('subscriptionRunChange', () => {
  const now = t('2026-12-10T00:00:00Z');
  it('extending a running subscription keeps its start (writes nothing)', () => {
    expect(
      subscriptionRunChange(run('2026-12-20T00:00:00Z', '2026-12-01T00:00:00Z'), '2027-01-20T00:00:00Z', now),
    ).toEqual({});
  });
  it('bought while none runs: starts now and remembers the lapsed run, start and expiry', () => {
    expect(subscriptionRunChange(run('2026-12-05T00:00:00Z'), '2027-01-10T00:00:00Z', now)).toEqual({
      subscription_started_at: '2026-12-10T00:00:00.000Z',
      subscription_prior_expires_at: '2026-12-05T00:00:00Z',
      subscription_prior_started_at: null,
    });
    expect(
      subscriptionRunChange(run('2026-12-05T00:00:00Z', '2026-11-05T00:00:00Z'), '2027-01-10T00:00:00Z', now),
    ).toEqual({
      subscription_started_at: '2026-12-10T00:00:00.000Z',
      subscription_prior_expires_at: '2026-12-05T00:00:00Z',
      subscription_prior_started_at: '2026-11-05T00:00:00Z',
    });
    expect(subscriptionRunChange(run(null), '2027-01-10T00:00:00Z', now)).toEqual({
      subscription_started_at: '2026-12-10T00:00:00.000Z',
      subscription_prior_expires_at: null,
      subscription_prior_started_at: null,
    });
  });
  it('ended: all cleared', () => {
    expect(subscriptionRunChange(run('2026-12-20T00:00:00Z', '2026-12-01T00:00:00Z'), null, now)).toEqual({
      subscription_started_at: null,
      subscription_prior_expires_at: null,
      subscription_prior_started_at: null,
    });
  });
});
