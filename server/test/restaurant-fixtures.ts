// A restaurant site with a two-item menu (Burger 150.00, Cola 50.00, in PHP) and its machines:
// the setup the kiosk, cash-screen and device-agent tests share.
import { expect } from 'vitest';
import type { TestServer } from './harness.js';

export interface BurgerSiteOptions {
  /** Site id; the skus are `<skuPrefix>burger` and `<skuPrefix>cola`. */
  siteId?: string;
  skuPrefix?: string;
  /** More fields of the site (taxRateBp, address, phone). */
  site?: Record<string, unknown>;
  /** Tracked burger stock (untracked when absent). */
  burgerStock?: number;
  /** Whether the menu has the cola too (default true). */
  cola?: boolean;
  /** Machines to create on the site: id → kind. */
  machines?: Record<string, string>;
}

/** Creates the site, its menu and machines; returns each machine's key by id. */
export async function createBurgerSite(
  server: TestServer,
  options: BurgerSiteOptions = {},
): Promise<Record<string, string>> {
  const siteId = options.siteId ?? 'manila1';
  const sku = options.skuPrefix ?? '';
  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await server.request('POST', path, { body });
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  };
  await post('/v1/sites', { id: siteId, name: 'Burger Manila', currency: 'PHP', ...options.site });
  await post('/v1/products', {
    sku: `${sku}burger`,
    name: 'Burger',
    priceMinor: 15_000,
    siteId,
    ...(options.burgerStock !== undefined ? { stock: options.burgerStock } : {}),
  });
  if (options.cola ?? true)
    await post('/v1/products', { sku: `${sku}cola`, name: 'Cola', priceMinor: 5_000, siteId });
  const keys: Record<string, string> = {};
  for (const [id, kind] of Object.entries(options.machines ?? {}))
    keys[id] = (await server.createMachine(id, { kind, siteId })).key;
  return keys;
}

/**
 * An order of a burger site (one burger, ₱150) placed by its kiosk, its cash session opened, and
 * `inserted` pesos reported by its cash unit.
 */
export async function openCashSession(
  server: TestServer,
  site: { siteId: string; kiosk: string; cash: string },
  inserted = 0,
): Promise<{ orderNumber: string; orderId: string }> {
  const keyed = (k: string) => ({ token: null, headers: { 'x-api-key': k } }) as const;
  const created = await server.request('POST', '/v1/orders', {
    ...keyed(site.kiosk),
    body: { items: [{ sku: `${site.siteId}-burger`, qty: 1 }] },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const orderNumber = created.body.orderNumber as string;
  const init = await server.request('POST', '/api/cash-payment/init', {
    ...keyed(site.kiosk),
    body: { orderNumber, totalAmount: 150 },
  });
  expect(init.status).toBe(200);
  if (inserted > 0) {
    const bill = await server.request('POST', '/api/cash-payment/update', {
      ...keyed(site.cash),
      body: { orderNumber, amountAdded: inserted },
    });
    expect(bill.status).toBe(200);
  }
  return { orderNumber, orderId: created.body.id as string };
}

export interface MealSite {
  siteId: string;
  kiosk: { id: string; key: string };
  cashUnit: { id: string; key: string };
  meal: string;
}

/** A PHP site with a kiosk, a cash unit and a ₱150 meal; ids from `uid` (site `<prefix>…`). */
export async function mealSite(
  server: TestServer,
  uid: (prefix: string) => string,
  prefix: string,
): Promise<MealSite> {
  const siteId = uid(prefix.toLowerCase());
  const res = await server.request('POST', '/v1/sites', {
    body: { id: siteId, name: siteId, currency: 'PHP' },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const meal = `${siteId}-meal`;
  const product = { sku: meal, name: 'Meal', priceMinor: 15_000, siteId };
  expect((await server.request('POST', '/v1/products', { body: product })).status).toBe(201);
  const kiosk = await server.createMachine(uid(`${prefix.toUpperCase()}K`), { kind: 'kiosk', siteId });
  const cashUnit = await server.createMachine(uid(`${prefix.toUpperCase()}C`), { kind: 'cash', siteId });
  return { siteId, kiosk, cashUnit, meal };
}

/** One ₱150 meal ordered by the site's kiosk. */
export async function orderMeal(
  server: TestServer,
  site: MealSite,
): Promise<{ id: string; orderNumber: string }> {
  const res = await server.request('POST', '/v1/orders', {
    token: null,
    headers: { 'x-api-key': site.kiosk.key },
    body: { items: [{ sku: site.meal, qty: 1 }] },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.id as string, orderNumber: res.body.orderNumber as string };
}
