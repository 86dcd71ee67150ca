// The window counter's reservations (the key-less cash cancel's guessing limit): `reserve` takes one
// of a key's `max` places in its window atomically, so however many callers reserve at once, at
// most `max` get one; `release` gives a place back, never below zero, keeping the window's end,
// and never into a later window. In this process, and in Redis (shared by every process) when
// TEST_REDIS_URL is set.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createWindowCounter, type WindowCounter } from '../src/platform/http/login-guard.js';

const redisUrl = process.env['TEST_REDIS_URL'];
if (!redisUrl) console.warn('NOTICE: TEST_REDIS_URL is not set; the Redis window-counter tests are SKIPPED.');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
});

const stores = [{ name: 'in process', redis: false }, ...(redisUrl ? [{ name: 'Redis', redis: true }] : [])];

describe.each(stores)('window counter reservations ($name)', ({ redis }) => {
  const prefix = `kioskhub-test:${randomBytes(4).toString('hex')}:`;
  const counter = (windowMs = 60_000): WindowCounter => {
    if (!redis) return createWindowCounter({ prefix, windowMs });
    const client = new Redis(redisUrl!, { maxRetriesPerRequest: 1 });
    clients.push(client);
    return createWindowCounter({ prefix, windowMs, redis: client });
  };
  const key = () => `k${randomBytes(4).toString('hex')}`;

  it('grants at most max places however many reserve at once; the refused see the window’s end', async () => {
    const c = counter();
    const k = key();
    const answers = await Promise.all(Array.from({ length: 40 }, () => c.reserve(k, 7)));
    expect(answers.filter((a) => a.granted)).toHaveLength(7);
    const refused = answers.filter((a) => !a.granted);
    expect(refused).toHaveLength(33);
    for (const r of refused) {
      expect(r.count).toBe(7);
      expect(r.ttlMs).toBeGreaterThan(50_000);
      expect(r.ttlMs).toBeLessThanOrEqual(60_000);
    }
    expect((await c.peek(k)).count).toBe(7);
    // Another key has its own places.
    expect((await c.reserve(key(), 7)).granted).toBe(true);
  });

  it('a released place can be taken again; releasing twice gives back one; the window keeps its end', async () => {
    const c = counter();
    const k = key();
    const first = await c.reserve(k, 2);
    const second = await c.reserve(k, 2);
    expect([first.granted, second.granted]).toEqual([true, true]);
    expect((await c.reserve(k, 2)).granted).toBe(false);
    const before = await c.peek(k);
    await sleep(30);
    if (!first.granted) throw new Error('unreachable');
    await first.release();
    await first.release();
    const after = await c.peek(k);
    expect(after.count).toBe(1);
    // Still the same window: its end did not move (the time left only went down).
    expect(after.ttlMs).toBeLessThanOrEqual(before.ttlMs);
    expect(after.ttlMs).toBeGreaterThan(0);
    const again = await c.reserve(k, 2);
    expect(again.granted).toBe(true);
    expect(again.count).toBe(2);
    expect((await c.reserve(k, 2)).granted).toBe(false);
  });

  it('a refusal says how many places are still being tried; a kept place stays taken, settled once', async () => {
    const c = counter();
    const k = key();
    const a = await c.reserve(k, 2);
    const b = await c.reserve(k, 2);
    if (!a.granted || !b.granted) throw new Error('both granted');
    expect(await c.reserve(k, 2)).toMatchObject({ granted: false, count: 2, inFlight: 2 });
    // Kept (a miss): still counted, no longer being tried; settling again changes nothing.
    await a.keep();
    await a.keep();
    await a.release();
    expect(await c.reserve(k, 2)).toMatchObject({ granted: false, count: 2, inFlight: 1 });
    // Given back: a place is free again, and nothing is in flight.
    await b.release();
    await b.keep();
    expect((await c.peek(k)).count).toBe(1);
    const d = await c.reserve(k, 2);
    expect(d.granted).toBe(true);
    if (d.granted) await d.keep();
    expect(await c.reserve(k, 2)).toMatchObject({ granted: false, count: 2, inFlight: 0 });
  });

  it('never goes below zero, and a place of an ended window is not given back into the next one', async () => {
    const c = counter(150);
    const k = key();
    const old = await c.reserve(k, 2);
    expect(old.granted).toBe(true);
    await sleep(300);
    // A new window: two places again, both taken.
    const a = await c.reserve(k, 2);
    const b = await c.reserve(k, 2);
    expect([a.granted, b.granted]).toEqual([true, true]);
    expect(a.count).toBe(1);
    if (!old.granted || !a.granted) throw new Error('unreachable');
    // The old window's place is not this window's: releasing it changes nothing here.
    await old.release();
    expect((await c.peek(k)).count).toBe(2);
    expect((await c.reserve(k, 2)).granted).toBe(false);
    // Releases down to zero and past it stay at zero.
    await a.release();
    await a.release();
    if (b.granted) await b.release();
    expect((await c.peek(k)).count).toBe(0);
    expect((await c.reserve(k, 2)).count).toBe(1);
  });

  it.runIf(redis)('keeps a key’s Redis keys in one Redis Cluster slot (one hash tag)', async () => {
    const client = new Redis(redisUrl!, { maxRetriesPerRequest: 1 });
    clients.push(client);
    const c = createWindowCounter({ prefix, windowMs: 60_000, redis: client });
    const k = key();
    const place = await c.reserve(k, 3);
    await c.hit(k);
    // Redis Cluster hashes only the text between the first `{` and the next `}` when there is one.
    const tag = (name: string) => /\{([^}]+)\}/.exec(name)?.[1] ?? name;
    const stored = await client.keys(`${prefix}*${k}*`);
    // Its count, the name of its window and its places still being tried.
    expect(stored).toHaveLength(3);
    expect(new Set(stored.map(tag))).toEqual(new Set([k]));
    if (place.granted) await place.release();
  });

  it('refuses bad arguments', async () => {
    const c = counter();
    await expect(c.reserve(key(), 0)).rejects.toThrow(/max/);
    await expect(c.reserve(key(), 1.5)).rejects.toThrow(/max/);
  });
});

describe('window counter reservations without an answering Redis', () => {
  it('reserve rejects (the caller refuses the request) instead of granting', async () => {
    // Nothing listens on port 1: the connection is refused at once.
    const client = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    client.on('error', () => {});
    clients.push(client);
    const c = createWindowCounter({ prefix: 'kioskhub-test:', windowMs: 60_000, redis: client });
    await expect(c.reserve('down', 3)).rejects.toThrow();
  });
});
