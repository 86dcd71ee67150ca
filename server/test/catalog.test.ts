// Sites, products and kiosk orders priced from the catalog (CONTRACTS.md §4b), with tenant
// isolation (§3), against the real server on every storage engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type Engine, type TestServer } from './harness.js';

const PASSWORD = 'correct horse battery';

type Res = { status: number; body: any };

function expectError(res: Res, status: number, code: string): void {
  expect({ status: res.status, body: res.body }, JSON.stringify(res.body)).toMatchObject({
    status,
    body: { error: { code } },
  });
  expect(typeof res.body.error.message).toBe('string');
}

describe.each(engines())('catalog: sites, products, kiosk orders (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;
  /** Ids unique within this server (machine ids are unique across the installation). */
  const uid = (prefix: string) => `${prefix}${++seq}`;

  const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

  async function userToken(role: string, tenantId?: string): Promise<string> {
    const email = `${uid(role)}@example.com`;
    const created = await server.request('POST', '/v1/users', {
      body: { email, password: PASSWORD, role, ...(tenantId ? { tenantId } : {}) },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const login = await server.request('POST', '/v1/auth/login', {
      body: { email, password: PASSWORD },
      token: null,
    });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    return login.body.token as string;
  }

  async function site(body: Record<string, unknown>, token?: string): Promise<any> {
    const res = await server.request('POST', '/v1/sites', { body, ...(token ? { token } : {}) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async function product(body: Record<string, unknown>, token?: string): Promise<any> {
    const res = await server.request('POST', '/v1/products', { body, ...(token ? { token } : {}) });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async function getSite(id: string, token?: string): Promise<any> {
    const res = await server.request('GET', '/v1/sites', token ? { token } : {});
    expect(res.status).toBe(200);
    // ADMIN_TOKEN sees every tenant: without a token, look at the default tenant's copy.
    return res.body.items.find((s: any) => s.id === id && (token !== undefined || s.tenantId === 'default'));
  }

  async function getProduct(sku: string, token?: string): Promise<any> {
    const res = await server.request('GET', '/v1/products', token ? { token } : {});
    expect(res.status).toBe(200);
    return res.body.items.find(
      (p: any) => p.sku === sku && (token !== undefined || p.tenantId === 'default'),
    );
  }

  async function orderCount(): Promise<number> {
    const res = await server.request('GET', '/v1/orders?limit=200');
    expect(res.status).toBe(200);
    return res.body.items.length as number;
  }

  /** Pays an order in cash through the kiosk's cash routes (exact amount). */
  async function payCash(k: string, orderNumber: string, totalMajor: number): Promise<void> {
    const init = await server.request('POST', '/api/cash-payment/init', {
      ...key(k),
      body: { orderNumber, totalAmount: totalMajor },
    });
    expect(init.status, JSON.stringify(init.body)).toBe(200);
    const paid = await server.request('POST', '/api/cash-payment/update', {
      ...key(k),
      body: { orderNumber, amountAdded: totalMajor, eventId: uid('pay-') },
    });
    expect(paid.status, JSON.stringify(paid.body)).toBe(200);
    expect(paid.body.status).toBe('PAID');
  }

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  describe('sites', () => {
    it('POST /v1/sites → 201 site; GET lists it with the default site; PATCH changes it', async () => {
      const created = await site({
        id: 'manila',
        name: 'Burger Manila',
        currency: 'PHP',
        taxRateBp: 1200,
        address: '1 Rizal Ave',
        phone: '+63 2 555 0100',
      });
      expect(created).toMatchObject({
        id: 'manila',
        tenantId: 'default',
        name: 'Burger Manila',
        currency: 'PHP',
        printQueueOpen: false,
        address: '1 Rizal Ave',
        phone: '+63 2 555 0100',
        taxRateBp: 1200,
      });
      expect(typeof created.createdAt).toBe('string');

      const minimal = await site({ id: 'pune', name: 'Pune' });
      expect(minimal).toMatchObject({
        id: 'pune',
        currency: 'INR',
        printQueueOpen: false,
        address: null,
        phone: null,
        taxRateBp: 0,
      });

      const list = await server.request('GET', '/v1/sites');
      expect(list.status).toBe(200);
      expect(list.body.nextCursor).toBeNull();
      expect(list.body.items.map((s: any) => s.id)).toEqual(
        expect.arrayContaining(['default', 'manila', 'pune']),
      );

      const patched = await server.request('PATCH', '/v1/sites/pune', {
        body: { name: 'Pune Camp', printQueueOpen: true, address: 'MG Road', taxRateBp: 500 },
      });
      expect(patched.status, JSON.stringify(patched.body)).toBe(200);
      expect(patched.body).toMatchObject({
        id: 'pune',
        name: 'Pune Camp',
        printQueueOpen: true,
        address: 'MG Road',
        taxRateBp: 500,
        currency: 'INR',
      });
      expect(await getSite('pune')).toMatchObject({
        name: 'Pune Camp',
        printQueueOpen: true,
        address: 'MG Road',
        taxRateBp: 500,
      });

      const cleared = await server.request('PATCH', '/v1/sites/pune', {
        body: { address: null, printQueueOpen: false },
      });
      expect(cleared.status).toBe(200);
      expect(await getSite('pune')).toMatchObject({
        name: 'Pune Camp',
        address: null,
        printQueueOpen: false,
      });
    });

    it('a duplicate site id → 409 CONFLICT and the existing site is unchanged', async () => {
      await site({ id: 'dup-site', name: 'First', currency: 'PHP' });
      expectError(
        await server.request('POST', '/v1/sites', {
          body: { id: 'dup-site', name: 'Second', currency: 'INR' },
        }),
        409,
        'CONFLICT',
      );
      expect(await getSite('dup-site')).toMatchObject({ name: 'First', currency: 'PHP' });
    });

    it('bad bodies → 400 VALIDATION_FAILED and nothing is created or changed', async () => {
      const before = (await server.request('GET', '/v1/sites')).body.items.length;
      const bad: unknown[] = [
        {},
        { id: 'nameless' },
        { name: 'No id' },
        { id: 'has space', name: 'x' },
        { id: '', name: 'x' },
        { id: 'x'.repeat(65), name: 'x' },
        { id: 'badname', name: '' },
        { id: 'badcur', name: 'x', currency: 'peso' },
        { id: 'badcur2', name: 'x', currency: 'PH' },
        { id: 'badopen', name: 'x', printQueueOpen: 'yes' },
        { id: 'badtax', name: 'x', taxRateBp: 5001 },
        { id: 'badtax2', name: 'x', taxRateBp: 12.5 },
        { id: 'extra', name: 'x', colour: 'red' },
        { id: 42, name: 'x' },
        [],
        'site',
      ];
      for (const body of bad)
        expectError(await server.request('POST', '/v1/sites', { body }), 400, 'VALIDATION_FAILED');
      expectError(
        await server.request('POST', '/v1/sites', { raw: '{"id": "broken", ' }),
        400,
        'VALIDATION_FAILED',
      );
      expect((await server.request('GET', '/v1/sites')).body.items.length).toBe(before);

      await site({ id: 'stable', name: 'Stable', currency: 'PHP' });
      const badPatches: unknown[] = [
        {},
        { name: '' },
        { currency: 'php' },
        { printQueueOpen: 1 },
        { taxRateBp: -1 },
        { id: 'renamed' },
        { name: 'x', unknown: true },
        { tenantId: 'default' },
      ];
      for (const body of badPatches)
        expectError(await server.request('PATCH', '/v1/sites/stable', { body }), 400, 'VALIDATION_FAILED');
      expect(await getSite('stable')).toMatchObject({
        name: 'Stable',
        currency: 'PHP',
        printQueueOpen: false,
        taxRateBp: 0,
      });
    });

    it('PATCH of an unknown site → 404; non-admin staff may read but not write sites', async () => {
      expectError(
        await server.request('PATCH', '/v1/sites/nowhere', { body: { name: 'x' } }),
        404,
        'NOT_FOUND',
      );
      const staff = await userToken('staff');
      expect((await server.request('GET', '/v1/sites', { token: staff })).status).toBe(200);
      expectError(
        await server.request('POST', '/v1/sites', { body: { id: 'bystaff', name: 'x' }, token: staff }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('PATCH', '/v1/sites/manila', { body: { name: 'x' }, token: staff }),
        403,
        'FORBIDDEN',
      );
      expectError(await server.request('GET', '/v1/sites', { token: null }), 401, 'UNAUTHORIZED');
    });
  });

  describe('products', () => {
    it('POST with stock tracks it; without stock it is not tracked (null); GET lists them', async () => {
      await site({ id: 'prodsite', name: 'Products', currency: 'PHP' });
      const tracked = await product({
        sku: 'p-burger',
        name: 'Burger',
        priceMinor: 15_000,
        siteId: 'prodsite',
        stock: 10,
      });
      expect(tracked).toMatchObject({
        sku: 'p-burger',
        tenantId: 'default',
        siteId: 'prodsite',
        name: 'Burger',
        priceMinor: 15_000,
        stock: 10,
      });
      const untracked = await product({ sku: 'p-cola', name: 'Cola', priceMinor: 5_000, siteId: 'prodsite' });
      expect(untracked.stock).toBeNull();
      const zero = await product({
        sku: 'p-fries',
        name: 'Fries',
        priceMinor: 0,
        siteId: 'prodsite',
        stock: 0,
      });
      expect(zero).toMatchObject({ priceMinor: 0, stock: 0 });
      const onDefault = await product({ sku: 'p-water', name: 'Water', priceMinor: 2_000 });
      expect(onDefault.siteId).toBe('default');

      const all = await server.request('GET', '/v1/products');
      expect(all.status).toBe(200);
      expect(all.body.nextCursor).toBeNull();
      expect(all.body.items.map((p: any) => p.sku)).toEqual(
        expect.arrayContaining(['p-burger', 'p-cola', 'p-fries', 'p-water']),
      );
      const ofSite = await server.request('GET', '/v1/products?siteId=prodsite');
      const skus = ofSite.body.items.map((p: any) => p.sku);
      expect(skus).toEqual(expect.arrayContaining(['p-burger', 'p-cola', 'p-fries']));
      // The default site prices in INR: its products are not sold at a PHP site (catalog-currency.test.ts).
      expect(skus).not.toContain('p-water');
      expect(ofSite.body.items.every((p: any) => p.siteId === 'prodsite' || p.siteId === 'default')).toBe(
        true,
      );
    });

    it('PATCH changes price, name and stock; stock null stops tracking', async () => {
      await product({ sku: 'patchme', name: 'Patch me', priceMinor: 1_000, stock: 5 });
      const priced = await server.request('PATCH', '/v1/products/patchme', {
        body: { priceMinor: 1_250, name: 'Patched' },
      });
      expect(priced.status, JSON.stringify(priced.body)).toBe(200);
      expect(priced.body).toMatchObject({ sku: 'patchme', priceMinor: 1_250, name: 'Patched', stock: 5 });
      const restocked = await server.request('PATCH', '/v1/products/patchme', { body: { stock: 7 } });
      expect(restocked.body.stock).toBe(7);
      const untracked = await server.request('PATCH', '/v1/products/patchme', { body: { stock: null } });
      expect(untracked.status).toBe(200);
      expect(untracked.body.stock).toBeNull();
      expect(await getProduct('patchme')).toMatchObject({ priceMinor: 1_250, name: 'Patched', stock: null });
    });

    it('duplicate sku → 409; unknown site → 404; bad bodies → 400 and nothing changes', async () => {
      await product({ sku: 'solid', name: 'Solid', priceMinor: 900, stock: 3 });
      expectError(
        await server.request('POST', '/v1/products', {
          body: { sku: 'solid', name: 'Other', priceMinor: 1 },
        }),
        409,
        'CONFLICT',
      );
      expectError(
        await server.request('POST', '/v1/products', {
          body: { sku: 'lost', name: 'Lost', priceMinor: 1, siteId: 'no-such-site' },
        }),
        404,
        'NOT_FOUND',
      );
      const badCreates: unknown[] = [
        { sku: 'neg', name: 'x', priceMinor: -1 },
        { sku: 'frac', name: 'x', priceMinor: 1.5 },
        { sku: 'text', name: 'x', priceMinor: '100' },
        { sku: 'nostock', name: 'x', priceMinor: 1, stock: -1 },
        { sku: 'fracstock', name: 'x', priceMinor: 1, stock: 0.5 },
        { sku: 'has space', name: 'x', priceMinor: 1 },
        { sku: 'noname', priceMinor: 1 },
        { sku: 'noprice', name: 'x' },
        { sku: 'extra', name: 'x', priceMinor: 1, colour: 'red' },
      ];
      for (const body of badCreates)
        expectError(await server.request('POST', '/v1/products', { body }), 400, 'VALIDATION_FAILED');
      const skus = (await server.request('GET', '/v1/products')).body.items.map((p: any) => p.sku);
      for (const body of badCreates) expect(skus).not.toContain((body as { sku: string }).sku);

      const badPatches: unknown[] = [
        {},
        { priceMinor: -5 },
        { priceMinor: 2.5 },
        { stock: -1 },
        { stock: '4' },
        { name: '' },
        { sku: 'renamed' },
        { siteId: 'manila' },
      ];
      for (const body of badPatches)
        expectError(await server.request('PATCH', '/v1/products/solid', { body }), 400, 'VALIDATION_FAILED');
      expect(await getProduct('solid')).toMatchObject({ name: 'Solid', priceMinor: 900, stock: 3 });
      expectError(
        await server.request('PATCH', '/v1/products/ghost', { body: { priceMinor: 1 } }),
        404,
        'NOT_FOUND',
      );
    });
  });

  describe('kiosk orders', () => {
    let kioskKey: string;
    let otherSiteKey: string;
    beforeAll(async () => {
      await site({ id: 'ordsite', name: 'Order Site', currency: 'PHP' });
      await site({ id: 'ordsite2', name: 'Other Site', currency: 'PHP' });
      await product({ sku: 'o-burger', name: 'Burger', priceMinor: 15_000, siteId: 'ordsite', stock: 5 });
      await product({ sku: 'o-cola', name: 'Cola', priceMinor: 5_000, siteId: 'ordsite' });
      await product({ sku: 'o-pie', name: 'Pie', priceMinor: 4_550, siteId: 'ordsite2' });
      kioskKey = (await server.createMachine(uid('OK'), { kind: 'kiosk', siteId: 'ordsite' })).key;
      otherSiteKey = (await server.createMachine(uid('OK'), { kind: 'kiosk', siteId: 'ordsite2' })).key;
    });

    it('with a kiosk key: 201 CREATED, amount from the catalog, order number generated', async () => {
      const res = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: {
          items: [
            { sku: 'o-burger', qty: 1 },
            { sku: 'o-cola', qty: 2 },
          ],
          customerName: 'Ana',
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({
        status: 'CREATED',
        amount: 25_000,
        currency: 'PHP',
        siteId: 'ordsite',
        customerName: 'Ana',
        dispatchPending: false,
        paidAt: null,
      });
      expect(res.body.orderNumber).toMatch(/^\S+$/);
      expect(res.body.items).toEqual([
        expect.objectContaining({ sku: 'o-burger', qty: 1 }),
        expect.objectContaining({ sku: 'o-cola', qty: 2 }),
      ]);
      const fetched = await server.request('GET', `/v1/orders/${res.body.id}`);
      expect(fetched.status).toBe(200);
      expect(fetched.body).toMatchObject({
        id: res.body.id,
        orderNumber: res.body.orderNumber,
        amount: 25_000,
        status: 'CREATED',
      });
    });

    it('a printer’s, vending machine’s or cash unit’s key orders nothing (403), and no order is made', async () => {
      for (const kind of ['printer', 'vending', 'cash']) {
        const other = await server.createMachine(uid('NK'), { kind, siteId: 'ordsite' });
        const orderNumber = uid('NOK');
        const res = await server.request('POST', '/v1/orders', {
          ...key(other.key),
          body: { orderNumber, items: [{ sku: 'o-cola', qty: 1 }] },
        });
        expect(res.status, kind).toBe(403);
        expect(res.body.error.message).toContain(
          `is a ${kind}: orders are made with a kiosk's key or by staff`,
        );
        const found = await server.request('GET', `/v1/orders?limit=200`);
        expect(
          found.body.items.filter((o: { orderNumber: string }) => o.orderNumber === orderNumber),
        ).toEqual([]);
      }
    });

    it('the same sku on two lines is priced once per unit', async () => {
      const res = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: {
          items: [
            { sku: 'o-cola', qty: 1 },
            { sku: 'o-cola', qty: 3 },
          ],
        },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.amount).toBe(20_000);
    });

    it('with staff credentials (site named in the body): 201 priced from the catalog', async () => {
      const staff = await userToken('staff');
      const res = await server.request('POST', '/v1/orders', {
        token: staff,
        body: { siteId: 'ordsite', items: [{ sku: 'o-cola', qty: 3 }] },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({
        status: 'CREATED',
        amount: 15_000,
        currency: 'PHP',
        siteId: 'ordsite',
        machineId: null,
      });
      const admin = await server.request('POST', '/v1/orders', {
        body: { siteId: 'ordsite2', items: [{ sku: 'o-pie', qty: 2 }] },
      });
      expect(admin.status, JSON.stringify(admin.body)).toBe(201);
      expect(admin.body).toMatchObject({ amount: 9_100, siteId: 'ordsite2' });
    });

    it('generated order numbers are unique (20 concurrent orders)', async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          server.request('POST', '/v1/orders', {
            ...key(kioskKey),
            body: { items: [{ sku: 'o-cola', qty: 1 }] },
          }),
        ),
      );
      for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(201);
      const numbers = results.map((r) => r.body.orderNumber as string);
      expect(new Set(numbers).size).toBe(20);
    });

    it('an explicit order number is kept; the same number again → 409 CONFLICT', async () => {
      const first = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { orderNumber: 'A-1001', items: [{ sku: 'o-cola', qty: 1 }] },
      });
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      expect(first.body.orderNumber).toBe('A-1001');
      const count = await orderCount();
      expectError(
        await server.request('POST', '/v1/orders', {
          ...key(kioskKey),
          body: { orderNumber: 'A-1001', items: [{ sku: 'o-burger', qty: 1 }] },
        }),
        409,
        'CONFLICT',
      );
      const staff = await userToken('staff');
      expectError(
        await server.request('POST', '/v1/orders', {
          token: staff,
          body: { orderNumber: 'A-1001', siteId: 'ordsite', items: [{ sku: 'o-cola', qty: 1 }] },
        }),
        409,
        'CONFLICT',
      );
      expect(await orderCount()).toBe(count);
    });

    it('unknown sku, qty 0 / negative / 1.5 / text, empty items, unknown fields → 400 VALIDATION_FAILED, nothing created', async () => {
      const count = await orderCount();
      const bad: unknown[] = [
        { items: [{ sku: 'no-such-sku', qty: 1 }] },
        {
          items: [
            { sku: 'o-cola', qty: 1 },
            { sku: 'no-such-sku', qty: 1 },
          ],
        },
        { items: [{ sku: 'o-cola', qty: 0 }] },
        { items: [{ sku: 'o-cola', qty: -1 }] },
        { items: [{ sku: 'o-cola', qty: 1.5 }] },
        { items: [{ sku: 'o-cola', qty: '2' }] },
        { items: [{ sku: 'o-cola' }] },
        { items: [{ qty: 1 }] },
        { items: [] },
        {},
        { items: [{ sku: 'o-cola', qty: 1 }], price: 1 },
        { items: [{ sku: 'o-cola', qty: 1, priceMinor: 1 }] },
        { items: [{ sku: 'o-cola', qty: 1 }], amount: 100 },
        { items: [{ sku: 'o-cola', qty: 1 }], orderNumber: 'has space' },
        { items: [{ sku: 'o-cola', qty: 1 }], orderNumber: '' },
      ];
      for (const body of bad) {
        const res = await server.request('POST', '/v1/orders', { ...key(kioskKey), body });
        expectError(res, 400, 'VALIDATION_FAILED');
      }
      const unknown = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'no-such-sku', qty: 1 }] },
      });
      expect(JSON.stringify(unknown.body.error)).toContain('no-such-sku');
      // A product of another site of the tenant is not on this kiosk's menu.
      expectError(
        await server.request('POST', '/v1/orders', {
          ...key(kioskKey),
          body: { items: [{ sku: 'o-pie', qty: 1 }] },
        }),
        400,
        'VALIDATION_FAILED',
      );
      expect(await orderCount()).toBe(count);
    });

    it('more than the tracked stock → 409 OUT_OF_STOCK with details; untracked stock has no limit', async () => {
      await product({ sku: 'o-scarce', name: 'Scarce', priceMinor: 1_000, siteId: 'ordsite', stock: 3 });
      const count = await orderCount();
      const over = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: {
          items: [
            { sku: 'o-scarce', qty: 4 },
            { sku: 'o-cola', qty: 1 },
          ],
        },
      });
      expectError(over, 409, 'OUT_OF_STOCK');
      expect(over.body.error.details).toEqual([{ sku: 'o-scarce', requested: 4, available: 3 }]);
      // Two lines of the same sku add up.
      const split = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: {
          items: [
            { sku: 'o-scarce', qty: 2 },
            { sku: 'o-scarce', qty: 2 },
          ],
        },
      });
      expectError(split, 409, 'OUT_OF_STOCK');
      expect(split.body.error.details).toEqual([{ sku: 'o-scarce', requested: 4, available: 3 }]);
      expect(await orderCount()).toBe(count);

      const exact = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-scarce', qty: 3 }] },
      });
      expect(exact.status).toBe(201);
      const lots = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-cola', qty: 1000 }] },
      });
      expect(lots.status, JSON.stringify(lots.body)).toBe(201);
      expect(lots.body.amount).toBe(5_000_000);

      await server.request('PATCH', '/v1/products/o-scarce', { body: { stock: 0 } });
      const none = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-scarce', qty: 1 }] },
      });
      expectError(none, 409, 'OUT_OF_STOCK');
      expect(none.body.error.details).toEqual([{ sku: 'o-scarce', requested: 1, available: 0 }]);
      await server.request('PATCH', '/v1/products/o-scarce', { body: { stock: null } });
      expect(
        (
          await server.request('POST', '/v1/orders', {
            ...key(kioskKey),
            body: { items: [{ sku: 'o-scarce', qty: 50 }] },
          })
        ).status,
      ).toBe(201);
    });

    it('stock is decremented only when the order is paid (not on create, not on cancel)', async () => {
      await product({ sku: 'o-stocked', name: 'Stocked', priceMinor: 2_500, siteId: 'ordsite', stock: 10 });
      const a = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-stocked', qty: 3 }] },
      });
      const b = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-stocked', qty: 2 }] },
      });
      expect([a.status, b.status]).toEqual([201, 201]);
      expect((await getProduct('o-stocked')).stock).toBe(10);

      // b is started in cash and cancelled: no stock moves.
      const init = await server.request('POST', '/api/cash-payment/init', {
        ...key(kioskKey),
        body: { orderNumber: b.body.orderNumber, totalAmount: 50 },
      });
      expect(init.status, JSON.stringify(init.body)).toBe(200);
      expect(
        (await server.request('POST', `/api/cash-payment/cancel/${b.body.orderNumber}`, key(kioskKey)))
          .status,
      ).toBe(200);
      expect((await getProduct('o-stocked')).stock).toBe(10);

      await payCash(kioskKey, a.body.orderNumber, 75);
      expect((await getProduct('o-stocked')).stock).toBe(7);
      expect((await server.request('GET', `/v1/orders/${a.body.id}`)).body.status).toBe('PAID');
      // The stock check uses the stock left after payments.
      const over = await server.request('POST', '/v1/orders', {
        ...key(kioskKey),
        body: { items: [{ sku: 'o-stocked', qty: 8 }] },
      });
      expectError(over, 409, 'OUT_OF_STOCK');
      expect(over.body.error.details).toEqual([{ sku: 'o-stocked', requested: 8, available: 7 }]);
    });

    it('a kiosk key of site A cannot order for site B', async () => {
      const count = await orderCount();
      expectError(
        await server.request('POST', '/v1/orders', {
          ...key(kioskKey),
          body: { siteId: 'ordsite2', items: [{ sku: 'o-pie', qty: 1 }] },
        }),
        403,
        'FORBIDDEN',
      );
      expectError(
        await server.request('POST', '/v1/orders', {
          ...key(otherSiteKey),
          body: { siteId: 'ordsite', items: [{ sku: 'o-cola', qty: 1 }] },
        }),
        403,
        'FORBIDDEN',
      );
      // Naming its own site is fine.
      const own = await server.request('POST', '/v1/orders', {
        ...key(otherSiteKey),
        body: { siteId: 'ordsite2', items: [{ sku: 'o-pie', qty: 1 }] },
      });
      expect(own.status, JSON.stringify(own.body)).toBe(201);
      expect(own.body.siteId).toBe('ordsite2');
      expect(await orderCount()).toBe(count + 1);
    });

    it('no credentials → 401; an unknown site for staff → 404', async () => {
      expectError(
        await server.request('POST', '/v1/orders', {
          token: null,
          body: { items: [{ sku: 'o-cola', qty: 1 }] },
        }),
        401,
        'UNAUTHORIZED',
      );
      expectError(
        await server.request('POST', '/v1/orders', {
          body: { siteId: 'nowhere', items: [{ sku: 'o-cola', qty: 1 }] },
        }),
        404,
        'NOT_FOUND',
      );
    });
  });

  describe('tenant isolation', () => {
    let acmeAdmin: string;
    let acmeStaff: string;
    let defaultOrder: any;
    beforeAll(async () => {
      expect(
        (await server.request('POST', '/v1/tenants', { body: { id: 'acme', name: 'Acme' } })).status,
      ).toBe(201);
      acmeAdmin = await userToken('admin', 'acme');
      acmeStaff = await userToken('staff', 'acme');
      await site({ id: 'isosite', name: 'Default tenant site', currency: 'PHP' });
      await product({
        sku: 'iso-secret',
        name: 'Secret recipe',
        priceMinor: 9_900,
        siteId: 'isosite',
        stock: 4,
      });
      const k = (await server.createMachine(uid('ISO'), { kind: 'kiosk', siteId: 'isosite' })).key;
      defaultOrder = (
        await server.request('POST', '/v1/orders', {
          ...key(k),
          body: { orderNumber: 'ISO-1', items: [{ sku: 'iso-secret', qty: 1 }] },
        })
      ).body;
      expect(defaultOrder.orderNumber).toBe('ISO-1');
    });

    it("another tenant's staff sees none of this tenant's sites, products or orders", async () => {
      for (const token of [acmeAdmin, acmeStaff]) {
        const sites = await server.request('GET', '/v1/sites', { token });
        expect(sites.status).toBe(200);
        expect(sites.body.items.every((s: any) => s.tenantId === 'acme')).toBe(true);
        expect(sites.body.items.map((s: any) => s.id)).not.toContain('isosite');
        const products = await server.request('GET', '/v1/products', { token });
        expect(products.body.items.every((p: any) => p.tenantId === 'acme')).toBe(true);
        expect(products.body.items.map((p: any) => p.sku)).not.toContain('iso-secret');
        const orders = await server.request('GET', '/v1/orders', { token });
        expect(orders.body.items.every((o: any) => o.tenantId === 'acme')).toBe(true);
        expectError(
          await server.request('GET', `/v1/orders/${defaultOrder.id}`, { token }),
          404,
          'NOT_FOUND',
        );
      }
    });

    it("another tenant cannot change, order from or collide with this tenant's catalog", async () => {
      expectError(
        await server.request('PATCH', '/v1/sites/isosite', { token: acmeAdmin, body: { name: 'Hijacked' } }),
        404,
        'NOT_FOUND',
      );
      expectError(
        await server.request('PATCH', '/v1/products/iso-secret', {
          token: acmeAdmin,
          body: { priceMinor: 1 },
        }),
        404,
        'NOT_FOUND',
      );
      expectError(
        await server.request('POST', '/v1/orders', {
          token: acmeStaff,
          body: { items: [{ sku: 'iso-secret', qty: 1 }] },
        }),
        400,
        'VALIDATION_FAILED',
      );
      expectError(
        await server.request('POST', '/v1/orders', {
          token: acmeStaff,
          body: { siteId: 'isosite', items: [{ sku: 'iso-secret', qty: 1 }] },
        }),
        404,
        'NOT_FOUND',
      );
      expectError(
        await server.request('POST', '/v1/sites', {
          token: acmeAdmin,
          body: { id: 'x-tenant', name: 'x', tenantId: 'default' },
        }),
        403,
        'FORBIDDEN',
      );
      expect(await getSite('isosite')).toMatchObject({ name: 'Default tenant site' });
      expect(await getProduct('iso-secret')).toMatchObject({ priceMinor: 9_900, stock: 4 });

      // The same ids live side by side in two tenants; order numbers are unique per tenant only.
      const acmeSite = await server.request('POST', '/v1/sites', {
        token: acmeAdmin,
        body: { id: 'isosite', name: 'Acme site', currency: 'INR' },
      });
      expect(acmeSite.status, JSON.stringify(acmeSite.body)).toBe(201);
      expect(acmeSite.body.tenantId).toBe('acme');
      const acmeProduct = await server.request('POST', '/v1/products', {
        token: acmeAdmin,
        body: { sku: 'iso-secret', name: 'Acme recipe', priceMinor: 100, siteId: 'isosite' },
      });
      expect(acmeProduct.status, JSON.stringify(acmeProduct.body)).toBe(201);
      const acmeOrder = await server.request('POST', '/v1/orders', {
        token: acmeStaff,
        body: { orderNumber: 'ISO-1', siteId: 'isosite', items: [{ sku: 'iso-secret', qty: 2 }] },
      });
      expect(acmeOrder.status, JSON.stringify(acmeOrder.body)).toBe(201);
      expect(acmeOrder.body).toMatchObject({
        tenantId: 'acme',
        orderNumber: 'ISO-1',
        amount: 200,
        currency: 'INR',
      });
      expect(await getSite('isosite')).toMatchObject({ tenantId: 'default', name: 'Default tenant site' });
      expect(await getProduct('iso-secret')).toMatchObject({ tenantId: 'default', priceMinor: 9_900 });
      const acmeKiosk = await server.request('POST', '/v1/machines', {
        token: acmeAdmin,
        body: { id: uid('ACME'), kind: 'kiosk', siteId: 'isosite' },
      });
      expect(acmeKiosk.status, JSON.stringify(acmeKiosk.body)).toBe(201);
      const viaKiosk = await server.request('POST', '/v1/orders', {
        ...key(acmeKiosk.body.key),
        body: { items: [{ sku: 'iso-secret', qty: 1 }] },
      });
      expect(viaKiosk.status).toBe(201);
      expect(viaKiosk.body).toMatchObject({ tenantId: 'acme', amount: 100 });
      const defaultOrders = await server.request('GET', '/v1/orders?limit=200', {
        token: await userToken('staff'),
      });
      expect(defaultOrders.body.items.every((o: any) => o.tenantId === 'default')).toBe(true);
    });
  });
});
