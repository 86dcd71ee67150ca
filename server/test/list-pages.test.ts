// The staff lists that used to answer one page with `nextCursor: null` whatever was left (alerts,
// unallocated cash, print jobs) now page like every list (api.md §1): `nextCursor` until the last
// page, every row once, and a cursor that is not one of the list's is 400 where rows are kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type Engine, type TestServer, startServer } from './harness.js';
import { createBurgerSite } from './restaurant-fixtures.js';
import { staffToken } from './dashboard-fixtures.js';

describe.each(engines())('list pages (%s)', (engine: Engine) => {
  let server: TestServer;
  let cashKey: string;
  let kioskKey: string;
  const siteId = 'pages1';

  beforeAll(async () => {
    server = await startServer({ engine });
    const keys = await createBurgerSite(server, {
      siteId,
      skuPrefix: `${siteId}-`,
      machines: { PGK1: 'kiosk', PGC1: 'cash' },
    });
    kioskKey = keys['PGK1']!;
    cashKey = keys['PGC1']!;
  });
  afterAll(async () => {
    await server?.close();
  });

  const keyed = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

  /** Every page of a list, following nextCursor; the ids in the order given. */
  async function allPages(path: string, idOf: (item: any) => string, token?: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 50; pages++) {
      const sep = path.includes('?') ? '&' : '?';
      const res = await server.request('GET', `${path}${cursor ? `${sep}cursor=${cursor}` : ''}`, {
        ...(token ? { token } : {}),
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      ids.push(...res.body.items.map(idOf));
      cursor = res.body.nextCursor;
      if (cursor === null) return ids;
    }
    throw new Error(`${path}: more than 50 pages`);
  }

  it('unallocated cash pages through every item once, and refuses a made-up cursor', async () => {
    // Seven bills for orders that do not exist: seven unallocated items (and their alerts).
    for (let i = 0; i < 7; i++) {
      const res = await server.request('POST', '/api/cash-payment/update', {
        ...keyed(cashKey),
        body: { orderNumber: `NOPE-${i}`, amountAdded: 20, eventId: `pg-bill-${i}` },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(404);
    }
    const first = await server.request('GET', '/v1/cash/unallocated?limit=3');
    expect(first.body.items).toHaveLength(3);
    expect(first.body.nextCursor).toEqual(first.body.items[2].id);
    const ids = await allPages('/v1/cash/unallocated?limit=3', (u) => u.id);
    expect(ids).toHaveLength(7);
    expect(new Set(ids).size).toBe(7);
    expect([...ids].sort().reverse()).toEqual(ids); // newest first

    const bad = await server.request('GET', '/v1/cash/unallocated?cursor=01ZZZZZZZZZZZZZZZZZZZZZZZZ');
    expect({ status: bad.status, code: bad.body.error?.code }).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
  });

  it('alerts page through every alert once; another tenant cannot page with ours', async () => {
    const ids = await allPages('/v1/alerts?limit=2', (a) => a.id);
    const all = await server.request('GET', '/v1/alerts?limit=200');
    expect(all.body.nextCursor).toBeNull();
    expect(ids).toEqual(all.body.items.map((a: any) => a.id));
    expect(ids.length).toBeGreaterThanOrEqual(7); // one UNALLOCATED_CASH alert per unknown bill

    await server.request('POST', '/v1/tenants', { body: { id: 'pages-other', name: 'Other' } });
    const other = await staffToken(server, 'pages@other.test', 'staff', 'pages-other');
    const res = await server.request('GET', `/v1/alerts?cursor=${ids[0]}`, { token: other });
    expect({ status: res.status, code: res.body.error?.code }).toEqual({
      status: 400,
      code: 'VALIDATION_FAILED',
    });
  });

  it('print jobs page through every job once', async () => {
    // Five orders paid in cash: five receipts waiting.
    for (let i = 0; i < 5; i++) {
      const created = await server.request('POST', '/v1/orders', {
        ...keyed(kioskKey),
        body: { items: [{ sku: `${siteId}-cola`, qty: 1 }] },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const orderNumber = created.body.orderNumber as string;
      const init = await server.request('POST', '/api/cash-payment/init', {
        ...keyed(kioskKey),
        body: { orderNumber, totalAmount: 50 },
      });
      expect(init.status, JSON.stringify(init.body)).toBe(200);
      const paid = await server.request('POST', '/api/cash-payment/update', {
        ...keyed(cashKey),
        body: { orderNumber, amountAdded: 50 },
      });
      expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    }
    const ids = await allPages(`/v1/print-jobs?siteId=${siteId}&limit=2`, (j) => j.jobId);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
    const first = await server.request('GET', `/v1/print-jobs?siteId=${siteId}&limit=2`);
    expect(first.body.nextCursor).toBe(ids[1]);
  });
});
