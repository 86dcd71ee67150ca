// A price is minor units of the currency of the site the product belongs to. The tenant's
// `default` products are sold at every site that prices in the same currency as the `default`
// site, and at no other: a UGX site would otherwise charge an INR product's 5000 paise (₹50) as
// USh 5,000. The kiosk's list leaves them out, an order for one is refused with a clear message
// and creates nothing, and a site in the same currency keeps selling them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from './harness.js';

describe.each(engines())('catalog: default products and site currencies (%s)', (engine) => {
  let server: TestServer;
  let ugxKiosk: string;
  let inrKiosk: string;
  const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;

  beforeAll(async () => {
    server = await startServer({ engine });
    for (const body of [
      { id: 'kla', name: 'Kampala', currency: 'UGX' },
      { id: 'blr', name: 'Bengaluru', currency: 'INR' },
    ]) {
      const res = await server.request('POST', '/v1/sites', { body });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    for (const body of [
      { sku: 'soda', name: 'Soda', priceMinor: 5_000 }, // the default site's (INR): ₹50
      { sku: 'matoke', name: 'Matoke', priceMinor: 7_000, siteId: 'kla' }, // USh 7,000
    ]) {
      const res = await server.request('POST', '/v1/products', { body });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    ugxKiosk = (await server.createMachine('CURK_UGX', { kind: 'kiosk', siteId: 'kla' })).key;
    inrKiosk = (await server.createMachine('CURK_INR', { kind: 'kiosk', siteId: 'blr' })).key;
  });
  afterAll(async () => {
    await server?.close();
  });

  const skus = (res: { body: any }) => (res.body.items as { sku: string }[]).map((p) => p.sku).sort();
  const orderCount = async () =>
    ((await server.request('GET', '/v1/orders?limit=200')).body.items as unknown[]).length;

  it("a site in another currency does not list the default site's products", async () => {
    expect(skus(await server.request('GET', '/v1/products', key(ugxKiosk)))).toEqual(['matoke']);
    expect(skus(await server.request('GET', '/v1/products?siteId=kla'))).toEqual(['matoke']);
    // Same currency as the default site: its products are sold there.
    expect(skus(await server.request('GET', '/v1/products', key(inrKiosk)))).toEqual(['soda']);
    expect(skus(await server.request('GET', '/v1/products?siteId=blr'))).toEqual(['soda']);
  });

  it('an order at the other-currency site for a default product is 400 naming the currency, and creates nothing', async () => {
    const before = await orderCount();
    const res = await server.request('POST', '/v1/orders', {
      ...key(ugxKiosk),
      body: {
        items: [
          { sku: 'soda', qty: 1 },
          { sku: 'matoke', qty: 1 },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(res.body.error.details.unknownSkus).toEqual(['soda']);
    expect(res.body.error.message).toContain('INR');
    expect(res.body.error.message).toContain('UGX');
    expect(await orderCount()).toBe(before);
  });

  it('orders price what each site sells in its own currency', async () => {
    const ugx = await server.request('POST', '/v1/orders', {
      ...key(ugxKiosk),
      body: { items: [{ sku: 'matoke', qty: 2 }] },
    });
    expect(ugx.status, JSON.stringify(ugx.body)).toBe(201);
    expect(ugx.body).toMatchObject({ amount: 14_000, currency: 'UGX' });
    const inr = await server.request('POST', '/v1/orders', {
      ...key(inrKiosk),
      body: { items: [{ sku: 'soda', qty: 1 }] },
    });
    expect(inr.status, JSON.stringify(inr.body)).toBe(201);
    expect(inr.body).toMatchObject({ amount: 5_000, currency: 'INR' });
  });

  it('when the default site changes to the same currency, its products are sold there', async () => {
    const res = await server.request('PATCH', '/v1/sites/default', { body: { currency: 'UGX' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    try {
      expect(skus(await server.request('GET', '/v1/products', key(ugxKiosk)))).toEqual(['matoke', 'soda']);
      expect(skus(await server.request('GET', '/v1/products', key(inrKiosk)))).toEqual([]);
    } finally {
      await server.request('PATCH', '/v1/sites/default', { body: { currency: 'INR' } });
    }
  });
});
