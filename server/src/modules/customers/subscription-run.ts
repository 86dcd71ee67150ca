// When a customer's subscription pays for water: up to its expiry, from the start of its current
// unbroken run (the purchase or grant made while none was running), or inside the run before it
// (from its start, when known, to its expiry).
// Water an offline kiosk dispensed and uploads later is judged at the instant it was dispensed.
import type { CustomerRow } from '../../platform/db/schema.js';

type Run = Pick<
  CustomerRow,
  | 'subscription_expires_at'
  | 'subscription_started_at'
  | 'subscription_prior_expires_at'
  | 'subscription_prior_started_at'
>;
type RunChange = Pick<
  Run,
  'subscription_started_at' | 'subscription_prior_expires_at' | 'subscription_prior_started_at'
>;

/**
 * The run fields to write with a new expiry set at `nowMs` (`null`: the subscription ends). One
 * still running is extended and keeps its start; otherwise a new run starts now, and the one
 * before it (if any) is remembered from its start to its expiry.
 */
export function subscriptionRunChange(
  c: Run,
  expiresAt: string | null,
  nowMs: number,
): RunChange | Record<string, never> {
  if (expiresAt === null) {
    return {
      subscription_started_at: null,
      subscription_prior_expires_at: null,
      subscription_prior_started_at: null,
    };
  }
  const current = c.subscription_expires_at === null ? null : Date.parse(c.subscription_expires_at);
  if (current !== null && current > nowMs) return {};
  return {
    subscription_started_at: new Date(nowMs).toISOString(),
    subscription_prior_expires_at: c.subscription_expires_at,
    subscription_prior_started_at: c.subscription_expires_at === null ? null : c.subscription_started_at,
  };
}

/**
 * Whether the subscription pays for water dispensed at `atMs`. A run whose start is not known
 * (kept only since starts are stored) pays for anything before its expiry, as it always did; so
 * does the run before, when its start is not known.
 */
export function subscriptionCovers(c: Run, atMs: number): boolean {
  if (c.subscription_expires_at === null || atMs >= Date.parse(c.subscription_expires_at)) return false;
  if (c.subscription_started_at === null || atMs >= Date.parse(c.subscription_started_at)) return true;
  const prior = c.subscription_prior_expires_at;
  if (prior === null || atMs >= Date.parse(prior)) return false;
  const priorStart = c.subscription_prior_started_at;
  return priorStart === null || atMs >= Date.parse(priorStart);
}
