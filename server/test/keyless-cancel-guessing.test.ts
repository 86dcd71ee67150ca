// A key-less cash-reader cancel names an order number, and order numbers are short: an address
// that keeps naming order numbers the site has no session for is guessing. After
// KEYLESS_CANCEL_MAX_MISSES such misses in 10 minutes, its key-less cancels are refused (429) and
// change nothing; keyed cancels (kiosks, staff) are not limited by it.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';
import { createBurgerSite, openCashSession } from './restaurant-fixtures.js';

const keyed = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
const guess = () => `K${randomBytes(3).toString('hex').toUpperCase()}`;

// Each engine with the in-process counter, and with the Redis one (shared by every process) when
// TEST_REDIS_URL is set. SQLite answers without waiting on I/O, so concurrent requests there barely
// interleave; PostgreSQL and Redis round trips let them overlap.
const redisUrl = process.env['TEST_REDIS_URL'];
if (!redisUrl)
  console.warn(
    'NOTICE: TEST_REDIS_URL is not set; the Redis-counter variants of the key-less cancel guessing tests are SKIPPED.',
  );
const setups = engines().flatMap((engine) => [
  { name: engine, engine, redis: undefined as string | undefined },
  ...(redisUrl ? [{ name: `${engine} + Redis`, engine, redis: redisUrl }] : []),
]);

describe.each(setups)(
  'key-less cancel guessing ($name)',
  ({ engine, redis }: { engine: Engine; redis: string | undefined }) => {
    let server: TestServer;
    const siteId = `kg${randomBytes(3).toString('hex')}`;
    let kiosk = '';

    beforeAll(async () => {
      server = await startServer({
        engine,
        env: {
          KEYLESS_CANCEL_MAX_MISSES: '3',
          ...(redis ? { REDIS_URL: redis } : {}),
        },
      });
      const keys = await createBurgerSite(server, {
        siteId,
        skuPrefix: `${siteId}-`,
        site: { keylessCashCancel: true },
        machines: { [`${siteId}-K`]: 'kiosk' },
      });
      kiosk = keys[`${siteId}-K`]!;
    });
    afterAll(async () => {
      await server?.close();
    });

    const openSession = async () => {
      const created = await server.request('POST', '/v1/orders', {
        ...keyed(kiosk),
        body: { items: [{ sku: `${siteId}-burger`, qty: 1 }] },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const orderNumber = created.body.orderNumber as string;
      const init = await server.request('POST', '/api/cash-payment/init', {
        ...keyed(kiosk),
        body: { orderNumber, totalAmount: 150 },
      });
      expect(init.status).toBe(200);
      return orderNumber;
    };
    const readerCancel = (orderNumber: string) =>
      server.request('POST', `/sites/${siteId}/api/cash-payment/cancel/${orderNumber}`, { token: null });
    const sessionStatus = async (orderNumber: string) =>
      (await server.request('GET', `/api/cash-payment/status/${orderNumber}`, keyed(kiosk))).body.status;

    it('an address past the misses is refused (429), even for a real order, which stays open; keyed cancels still work', async () => {
      const real = await openSession();
      // A real cancel is no miss.
      const first = await openSession();
      expect((await readerCancel(first)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await readerCancel(guess())).status).toBe(404);
      const refused = await readerCancel(real);
      expect(refused.status, JSON.stringify(refused.body)).toBe(429);
      expect(refused.body.error.code).toBe('RATE_LIMITED');
      expect(refused.body.error.message).toContain('KEYLESS_CANCEL_MAX_MISSES');
      expect(await sessionStatus(real)).toBe('PENDING');
      // The kiosk's own (keyed) cancel is not limited by the key-less guard.
      const byKiosk = await server.request('POST', `/api/cash-payment/cancel/${real}`, keyed(kiosk));
      expect(byKiosk.status).toBe(200);
      expect(byKiosk.body.status).toBe('CANCELLED');
    });

    // Each site below is new, so its address starts with a whole budget (the guard counts per site
    // and address); they are of the same tenant as `siteId`, whose orders they do not have.
    const MAX = 3;
    const newSite = async () => {
      const id = `kg${randomBytes(3).toString('hex')}`;
      const keys = await createBurgerSite(server, {
        siteId: id,
        skuPrefix: `${id}-`,
        site: { keylessCashCancel: true },
        machines: { [`${id}-K`]: 'kiosk', [`${id}-C`]: 'cash' },
      });
      return { id, kiosk: keys[`${id}-K`]!, cash: keys[`${id}-C`]! };
    };
    type Site = Awaited<ReturnType<typeof newSite>>;
    const openAt = async (site: Site, inserted = 0) =>
      (await openCashSession(server, { siteId: site.id, kiosk: site.kiosk, cash: site.cash }, inserted))
        .orderNumber;
    const cancelAt = (site: Site, orderNumber: string) =>
      server.request('POST', `/sites/${site.id}/api/cash-payment/cancel/${orderNumber}`, { token: null });
    const statusAt = async (site: Site, orderNumber: string) =>
      (await server.request('GET', `/api/cash-payment/status/${orderNumber}`, keyed(site.kiosk))).body.status;
    const tally = (answers: { status: number }[]) => {
      const counts: Record<number, number> = {};
      for (const a of answers) counts[a.status] = (counts[a.status] ?? 0) + 1;
      return counts;
    };
    /**
     * A 429 of the guard. Once every try has been settled it is the window's: retry when it ends
     * (minutes). While tries are still being handled (`atOnce`), it may instead say how many, and
     * to retry in a second: a valid cancel among them gives its place back.
     */
    const expectRefused = (res: { status: number; body: any; headers: Headers }, atOnce = false) => {
      expect(res.status, JSON.stringify(res.body)).toBe(429);
      expect(res.body.error.code).toBe('RATE_LIMITED');
      const message = res.body.error.message as string;
      // The message's wait is the answer's Retry-After.
      expect(message).toContain(`retry in ${res.headers.get('retry-after')} s`);
      const inFlight = new RegExp(
        `^too many key-less cancels at once from this address \\(KEYLESS_CANCEL_MAX_MISSES: ${MAX} in 10 minutes, [1-${MAX}] still being tried\\); retry in 1 s, or give the reader a key$`,
      );
      if (atOnce && inFlight.test(message)) return;
      const window = new RegExp(
        `\\(KEYLESS_CANCEL_MAX_MISSES: ${MAX} in 10 minutes\\); retry in (\\d+) s, or give the reader a key$`,
      ).exec(message);
      expect(window, message).not.toBeNull();
      // Most of the 10-minute window is left.
      expect(Number(window![1])).toBeGreaterThan(500);
    };

    it('guesses sent at once: exactly KEYLESS_CANCEL_MAX_MISSES are tried, every other one is refused (429)', async () => {
      const site = await newSite();
      const real = await openAt(site, 100);
      // Another site's order (401 without a key) is a miss as much as an unknown one (404).
      const elsewhere = await openSession();
      const names = Array.from({ length: 4 * MAX }, (_, i) => (i % 3 === 0 ? elsewhere : guess()));
      const answers = await Promise.all(names.map((n) => cancelAt(site, n)));
      const counts = tally(answers);
      expect((counts[404] ?? 0) + (counts[401] ?? 0), JSON.stringify(counts)).toBe(MAX);
      expect(counts[429], JSON.stringify(counts)).toBe(3 * MAX);
      for (const a of answers.filter((x) => x.status === 429)) expectRefused(a, true);
      // The budget is spent: the site's real session is refused too and stays open with its money.
      expectRefused(await cancelAt(site, real));
      expect(await statusAt(site, real)).toBe('PENDING');
      expect(await sessionStatus(elsewhere)).toBe('PENDING');
    });

    it('valid key-less cancels, sent at once, do not use the budget: KEYLESS_CANCEL_MAX_MISSES misses are still allowed after them', async () => {
      const site = await newSite();
      const orders = await Promise.all(Array.from({ length: 2 * MAX }, () => openAt(site, 50)));
      // Each attempt holds one of the MAX places while it is tried, so MAX at a time, twice over:
      // every place taken by a valid cancel is given back.
      for (const batch of [orders.slice(0, MAX), orders.slice(MAX)]) {
        const done = await Promise.all(batch.map((o) => cancelAt(site, o)));
        expect(tally(done)).toEqual({ 200: MAX });
      }
      for (const o of orders) expect(await statusAt(site, o)).toBe('CANCELLED');
      // Cancelling one again (answered as before) and a paid session (409, not a miss) are no misses either.
      expect((await cancelAt(site, orders[0]!)).status).toBe(200);
      const paid = await openAt(site, 150);
      const refusedPaid = await cancelAt(site, paid);
      expect(refusedPaid.status, JSON.stringify(refusedPaid.body)).toBe(409);
      expect(await statusAt(site, paid)).toBe('PAID');
      for (let i = 0; i < MAX; i++) expect((await cancelAt(site, guess())).status).toBe(404);
      expectRefused(await cancelAt(site, guess()));
    });

    it('a valid cancel sent among guesses gives its place back: the misses still stop at KEYLESS_CANCEL_MAX_MISSES', async () => {
      const site = await newSite();
      const real = await openAt(site);
      // The real cancel first, then MAX - 1 guesses while it may still hold its place.
      const answers = await Promise.all([
        cancelAt(site, real),
        ...Array.from({ length: MAX - 1 }, () => cancelAt(site, guess())),
      ]);
      expect(tally(answers)).toEqual({ 200: 1, 404: MAX - 1 });
      // One miss left, not zero (the valid cancel's place was given back), and then none.
      expect((await cancelAt(site, guess())).status).toBe(404);
      expectRefused(await cancelAt(site, guess()));
    });

    it.skipIf(!redis)(
      'a counter store that fails refuses key-less cancels (503), never unguarded; nothing changes',
      async () => {
        const site = await newSite();
        const real = await openAt(site, 100);
        const other = await openAt(site);
        expect((await cancelAt(site, other)).status).toBe(200);
        // The address's count at the site, left at 0 by that valid cancel: made unreadable.
        const client = new Redis(redis!, { maxRetriesPerRequest: 1 });
        try {
          const keys = await client.keys(`kioskhub:{keyless-cancel:*:${site.id}:*}`);
          expect(keys).toHaveLength(1);
          expect(await client.get(keys[0]!)).toBe('0');
          await client.del(keys[0]!);
          await client.hset(keys[0]!, 'not', 'a count');
          await client.pexpire(keys[0]!, 60_000);
          for (const name of [real, guess()]) {
            const res = await cancelAt(site, name);
            expect(res.status, JSON.stringify(res.body)).toBe(503);
            expect(res.body.error.code).toBe('UNAVAILABLE');
            expect(res.body.error.message).toContain('the rate-limit store does not answer');
          }
          expect(await statusAt(site, real)).toBe('PENDING');
        } finally {
          client.disconnect();
        }
      },
    );
  },
);
