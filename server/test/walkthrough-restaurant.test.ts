// Found by following the restaurant kiosk docs as an operator (README's restaurant walkthrough,
// docs/api.md §6, §13–§18, devices/cash-reader/README.md) with sites in PHP, UGX and KWD, and fixed:
// - the cash reader agent read acceptor amounts with at most 2 decimals, so at a site in a currency
//   with 3 (KWD, BHD, OMR: a 5-fils coin is `COIN:0.005`) the coin went to the dead-letter file and
//   was never reported: the customer's money was in the box, the session never got it.
// - the kitchen list (`GET /v1/kitchen/:siteId/orders`, which the kitchen display loads on sign-in
//   and after every reconnect) answered the 200 oldest waiting orders with `nextCursor: null`: with
//   more than 200 paid orders not yet marked ready, the newest paid orders were missing, and the
//   display dropped them from the board at its next reload, so they were never cooked.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLogger } from '@kioskhub/agent-kit';
import { startCashReader, type CashReader } from '../../devices/cash-reader/src/index.js';
import { engines, eventually, startServer, tempDir, type TestServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';

for (const engine of engines()) {
  describe(`restaurant walkthrough (${engine})`, () => {
    let server: TestServer;
    let tmp: ReturnType<typeof tempDir>;
    const keys: Record<string, string> = {};
    const cleanups: (() => Promise<void>)[] = [];
    const keyed = (machine: string) => ({ token: null, headers: { 'x-api-key': keys[machine] ?? '' } });

    beforeAll(async () => {
      tmp = tempDir('restaurant-walkthrough-');
      server = await startServer({ engine });
      const created = await server.request('POST', '/v1/sites', {
        body: { id: 'kuwait1', name: 'Shawarma Kuwait', currency: 'KWD' },
      });
      expect(created.status).toBe(201);
      const product = await server.request('POST', '/v1/products', {
        body: { sku: 'shawarma', name: 'Shawarma', priceMinor: 1_255, siteId: 'kuwait1' },
      });
      expect(product.status).toBe(201);
      for (const [id, kind] of [
        ['KWKIOSK1', 'kiosk'],
        ['KWCASH1', 'cash'],
      ] as const)
        keys[id] = (await server.createMachine(id, { kind, siteId: 'kuwait1' })).key;
      Object.assign(
        keys,
        await createBurgerSite(server, {
          siteId: 'busy1',
          skuPrefix: 'busy1-',
          machines: { BUSYKIOSK: 'kiosk', BUSYCASH: 'cash' },
        }),
      );
    });
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      await server?.close();
      tmp?.remove();
    });

    it('the cash reader reports a 5-fils coin (3 decimals) at a KWD site, and the session is paid', async () => {
      const order = await server.request('POST', '/v1/orders', {
        ...keyed('KWKIOSK1'),
        body: { items: [{ sku: 'shawarma', qty: 1 }] },
      });
      expect(order.body).toMatchObject({ amount: 1_255, currency: 'KWD' });
      const orderNumber = order.body.orderNumber as string;
      const init = await server.request('POST', '/api/cash-payment/init', {
        ...keyed('KWKIOSK1'),
        body: { orderNumber, totalAmount: 1.255 },
      });
      expect(init.body).toMatchObject({ status: 'PENDING', totalRequired: 1.255 });

      const log = memoryLogger();
      const agent: CashReader = await startCashReader(
        {
          url: server.url,
          key: keys['KWCASH1'] ?? '',
          kioskId: 'KWKIOSK1',
          serialPort: '/dev/null',
          baudRate: 9600,
          queueDir: join(tmp.path, 'queue-kw'),
          pollIntervalMs: 100,
          pingIntervalMs: 60_000,
          pingTimeoutMs: 5_000,
          requestTimeoutMs: 2_000,
          retryBaseMs: 50,
          retryMaxMs: 300,
          logLevel: 'debug',
        },
        { log, openAcceptor: () => ({ send: () => false, close: async () => undefined }) },
      );
      cleanups.push(() => agent.stop());
      await eventually(
        () => log.lines.some((l) => l.includes('cash session open for this kiosk')),
        10_000,
        'the agent to see its session',
      );

      // A 1 KWD bill, a 250-fils coin and a 5-fils coin: 1.255 KWD.
      for (const line of ['BILL:1', 'COIN:0.25', 'COIN:0.005']) await agent.handleLine(`${line}\r\n`);
      await eventually(() => agent.queue.size() === 0, 10_000, 'every insert reported');
      const status = await server.request('GET', `/api/cash-payment/status/${orderNumber}`);
      expect(status.body).toMatchObject({
        status: 'PAID',
        amountInserted: 1.255,
        change: 0,
        currency: 'KWD',
      });
      expect(log.lines.filter((l) => l.includes('dead-letter'))).toEqual([]);
      const unallocated = await server.request('GET', '/v1/cash/unallocated');
      expect(unallocated.body.items.filter((u: { siteId: string }) => u.siteId === 'kuwait1')).toEqual([]);
    });

    it('the kitchen list pages through every paid order waiting, more than 200 included', async () => {
      const paid: string[] = [];
      for (let n = 0; n < 203; n++) {
        const order = await server.request('POST', '/v1/orders', {
          ...keyed('BUSYKIOSK'),
          body: { items: [{ sku: 'busy1-cola', qty: 1 }] },
        });
        const orderNumber = order.body.orderNumber as string;
        await server.request('POST', '/api/cash-payment/init', {
          ...keyed('BUSYKIOSK'),
          body: { orderNumber, totalAmount: 50 },
        });
        const bill = await server.request('POST', '/api/cash-payment/update', {
          ...keyed('BUSYCASH'),
          body: { orderNumber, amountAdded: 50, eventId: `${orderNumber}-1` },
        });
        expect(bill.body).toMatchObject({ isComplete: true });
        paid.push(order.body.id as string);
      }
      // The kitchen marked the first one ready: 202 are waiting.
      expect((await server.request('POST', `/v1/orders/${paid[0]}/ready`)).status).toBe(200);

      const listed: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await server.request(
          'GET',
          `/v1/kitchen/busy1/orders${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        expect(page.status, JSON.stringify(page.body)).toBe(200);
        listed.push(...page.body.items.map((o: { id: string }) => o.id));
        cursor = page.body.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 10);
      expect(pages).toBe(2);
      // Oldest first, each once, the newest paid order included.
      expect(listed).toEqual(paid.slice(1));

      // A smaller page, and a cursor that is not one of this list's: 400, never a page.
      const small = await server.request('GET', '/v1/kitchen/busy1/orders?limit=2');
      expect(small.body.items.map((o: { id: string }) => o.id)).toEqual(paid.slice(1, 3));
      expect(small.body.nextCursor).toBe(paid[2]);
      const next = await server.request('GET', `/v1/kitchen/busy1/orders?limit=2&cursor=${paid[2]}`);
      expect(next.body.items.map((o: { id: string }) => o.id)).toEqual(paid.slice(3, 5));
      const unpaid = await server.request('POST', '/v1/orders', {
        ...keyed('BUSYKIOSK'),
        body: { items: [{ sku: 'busy1-cola', qty: 1 }] },
      });
      for (const bad of ['made-up', unpaid.body.id as string]) {
        const refused = await server.request('GET', `/v1/kitchen/busy1/orders?cursor=${bad}`);
        expect(refused.status, String(bad)).toBe(400);
        expect(refused.body.error.code).toBe('VALIDATION_FAILED');
      }
    }, 120_000);
  });
}
