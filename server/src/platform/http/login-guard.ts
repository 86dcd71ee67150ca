// Password sign-in limits: attempts per address (any email) and per email (any address) in
// one-minute windows, shared through Redis when configured and refused while Redis does not
// answer; and a small queue in front of the password hashing, so junk attempts cannot take
// every CPU (argon2 costs 64 MiB and tens of milliseconds each) from real sign-ins or the API.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AppError, rateLimited } from '../errors.js';

export interface LoginGuard {
  /** Counts one attempt; throws RATE_LIMITED over a limit, UNAVAILABLE when Redis does not answer. */
  admit(address: string, email: string): Promise<void>;
  /** Runs password work with at most `concurrency` at once; refuses when the queue is full. */
  hashing<T>(work: () => Promise<T>): Promise<T>;
}

export interface LoginGuardOptions {
  maxPerAddress: number;
  maxPerEmail: number;
  concurrency: number;
  queue: number;
  redis?: Redis;
  windowMs?: number;
}

// INCR and, on the first hit of a window, its expiry: one round trip, atomic.
const COUNT = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}`;

// Takes one of the key's ARGV[2] places when one is left, in one atomic step, so callers reserving
// at once cannot all pass. KEYS[2] names the window (ARGV[3] when this call starts it): a release
// only gives a place back into the window it was taken from. KEYS[3] counts the places taken and
// not yet settled (kept or given back). A count without an end is no window.
const RESERVE = `local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  redis.call('SET', KEYS[1], 0, 'PX', ARGV[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[1])
  redis.call('SET', KEYS[3], 0, 'PX', ARGV[1])
  ttl = tonumber(ARGV[1])
else
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl) end
  if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SET', KEYS[3], 0, 'PX', ttl) end
end
local n = tonumber(redis.call('GET', KEYS[1]))
if n >= tonumber(ARGV[2]) then return {0, n, ttl, '', tonumber(redis.call('GET', KEYS[3]))} end
n = redis.call('INCR', KEYS[1])
return {1, n, ttl, redis.call('GET', KEYS[2]), redis.call('INCR', KEYS[3])}`;

// Settles a place of the window ARGV[1] (DECR keeps the expiry; never below zero; nothing once the
// window ended): no longer being tried, and given back too when ARGV[2] is 1.
const SETTLE = `if redis.call('GET', KEYS[2]) == ARGV[1] then
  local f = tonumber(redis.call('GET', KEYS[3]) or '0')
  if f > 0 then redis.call('DECR', KEYS[3]) end
  if ARGV[2] == '1' then
    local n = tonumber(redis.call('GET', KEYS[1]) or '0')
    if n > 0 then return redis.call('DECR', KEYS[1]) end
  end
end
return -1`;

/**
 * The answer to `reserve`: a place taken, or none left. A place taken is settled once: `release`
 * when it was not used up, `keep` when it was.
 */
export type Reservation =
  | {
      granted: true;
      /** The key's count in its window, this place included. */
      count: number;
      ttlMs: number;
      /** Gives the place back (once; never below zero, the window keeping its end; nothing once it ended). */
      release(): Promise<void>;
      /** The place stays taken until the window ends; it is no longer being tried. */
      keep(): Promise<void>;
    }
  | {
      granted: false;
      count: number;
      ttlMs: number;
      /** Places of the count not settled yet: callers still trying, who may give theirs back soon. */
      inFlight: number;
    };

/**
 * Counts hits per key in fixed windows: in Redis when configured (shared by every process, one
 * atomic round trip), else in this process. Throws when Redis does not answer.
 */
export interface WindowCounter {
  /** Counts one hit; the key's count in its window and the time left of the window. */
  hit(key: string): Promise<{ count: number; ttlMs: number }>;
  /** The key's count in its window (0 when none), without counting. */
  peek(key: string): Promise<{ count: number; ttlMs: number }>;
  /**
   * Counts one hit only if the key's count in its window is below `max` (atomic: however many
   * callers reserve at once, at most `max` places are granted per window); refused, nothing counted.
   */
  reserve(key: string, max: number): Promise<Reservation>;
}

export function createWindowCounter(options: {
  prefix: string;
  windowMs: number;
  redis?: Redis;
}): WindowCounter {
  const { prefix, windowMs, redis } = options;
  const local = new Map<string, { count: number; resetAt: number; inFlight: number }>();
  // The key in braces (a Redis hash tag): a reservation's count and its window's name land in one
  // Redis Cluster slot, so the script that touches both may run there too.
  const slot = (key: string) => `${prefix}{${key}}`;
  const current = (key: string, now: number) => {
    const entry = local.get(key);
    return entry && entry.resetAt > now ? entry : undefined;
  };
  return {
    async hit(key) {
      if (redis) {
        const [n, ttl] = (await redis.eval(COUNT, 1, slot(key), windowMs)) as [number, number];
        return { count: n, ttlMs: Math.max(ttl, 0) };
      }
      const now = Date.now();
      if (local.size > 50_000) for (const [k, v] of local) if (v.resetAt <= now) local.delete(k);
      let entry = current(key, now);
      if (!entry) {
        entry = { count: 0, resetAt: now + windowMs, inFlight: 0 };
        local.set(key, entry);
      }
      entry.count += 1;
      return { count: entry.count, ttlMs: entry.resetAt - now };
    },
    async peek(key) {
      if (redis) {
        const [n, ttl] = await Promise.all([redis.get(slot(key)), redis.pttl(slot(key))]);
        return { count: Number(n ?? 0), ttlMs: Math.max(ttl, 0) };
      }
      const now = Date.now();
      const entry = current(key, now);
      return entry ? { count: entry.count, ttlMs: entry.resetAt - now } : { count: 0, ttlMs: 0 };
    },
    async reserve(key, max) {
      if (!Number.isSafeInteger(max) || max < 1)
        throw new RangeError(`max must be a positive integer, not ${max}`);
      if (redis) {
        const keys = [slot(key), `${prefix}window-of:{${key}}`, `${prefix}in-flight:{${key}}`];
        const [granted, n, ttl, window, inFlight] = (await redis.eval(
          RESERVE,
          3,
          ...keys,
          windowMs,
          max,
          randomUUID(),
        )) as [number, number, number, string, number];
        const ttlMs = Math.max(ttl, 0);
        if (granted !== 1) return { granted: false, count: n, ttlMs, inFlight: Number(inFlight ?? 0) };
        let settled = false;
        const settle = async (giveBack: boolean) => {
          if (settled) return;
          settled = true;
          await redis.eval(SETTLE, 3, ...keys, window, giveBack ? 1 : 0);
        };
        return { granted: true, count: n, ttlMs, release: () => settle(true), keep: () => settle(false) };
      }
      // One synchronous step: no other reservation can come between the check and the count.
      const now = Date.now();
      let entry = current(key, now);
      if (entry && entry.count >= max)
        return {
          granted: false,
          count: entry.count,
          ttlMs: entry.resetAt - now,
          inFlight: entry.inFlight,
        };
      if (!entry) {
        if (local.size > 50_000) for (const [k, v] of local) if (v.resetAt <= now) local.delete(k);
        entry = { count: 0, resetAt: now + windowMs, inFlight: 0 };
        local.set(key, entry);
      }
      entry.count += 1;
      entry.inFlight += 1;
      const taken = entry;
      let settled = false;
      const settle = async (giveBack: boolean) => {
        if (settled) return;
        settled = true;
        // Only in the window the place was taken from (a later window is another entry).
        if (local.get(key) !== taken || taken.resetAt <= Date.now()) return;
        if (taken.inFlight > 0) taken.inFlight -= 1;
        if (giveBack && taken.count > 0) taken.count -= 1;
      };
      return {
        granted: true,
        count: entry.count,
        ttlMs: entry.resetAt - now,
        release: () => settle(true),
        keep: () => settle(false),
      };
    },
  };
}

export function createLoginGuard(options: LoginGuardOptions): LoginGuard {
  const counter = createWindowCounter({
    prefix: 'kioskhub:login:',
    windowMs: options.windowMs ?? 60_000,
    ...(options.redis ? { redis: options.redis } : {}),
  });
  const count = (key: string) => counter.hit(key);

  let running = 0;
  const waiting: (() => void)[] = [];

  return {
    async admit(address, email) {
      const normalized = email.trim().toLowerCase().slice(0, 254);
      let byAddress: { count: number; ttlMs: number };
      let byEmail: { count: number; ttlMs: number };
      try {
        [byAddress, byEmail] = await Promise.all([count(`a:${address}`), count(`e:${normalized}`)]);
      } catch {
        // Without the shared counts every process would allow the full limit: refuse instead.
        throw new AppError(
          'UNAVAILABLE',
          'sign-in is briefly unavailable (the rate-limit store does not answer); try again shortly',
        );
      }
      const over = [
        byAddress.count > options.maxPerAddress
          ? { ttl: byAddress.ttlMs, what: `${options.maxPerAddress} per minute from one address` }
          : undefined,
        byEmail.count > options.maxPerEmail
          ? { ttl: byEmail.ttlMs, what: `${options.maxPerEmail} per minute for one email` }
          : undefined,
      ].find((o) => o !== undefined);
      if (over) {
        throw rateLimited(
          over.ttl,
          (s) => `too many sign-in attempts (at most ${over.what}); retry in ${s} s`,
        );
      }
    },

    async hashing(work) {
      if (running >= options.concurrency) {
        if (waiting.length >= options.queue)
          throw rateLimited(2_000, () => 'too many sign-ins at once; retry in a few seconds');
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        running += 1;
      }
      try {
        return await work();
      } finally {
        // The slot passes straight to the next waiter, or is freed.
        const next = waiting.shift();
        if (next) next();
        else running -= 1;
      }
    },
  };
}
