// A restaurant site with a two-item menu (Burger 150.00, Cola 50.00, in PHP) and its machines:
// the setup the kiosk, cash-screen and device-agent tests share.
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
