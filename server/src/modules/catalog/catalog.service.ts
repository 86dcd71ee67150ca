// Sites and their product catalog (prices in minor units, optional tracked stock), and
// kiosk orders priced from the catalog. Stock moves only when an order is paid.
import { randomBytes } from 'node:crypto';
import { PostgresAdapter } from 'kysely';
import type { ProductView, SiteView } from '@kioskhub/protocol';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import type { ProductRow, SiteRow } from '../../platform/db/schema.js';
import { isKnownCurrency } from '../../platform/money.js';
import { recordAudit } from '../audit/audit.service.js';
import { isTimeZone } from '../reporting/local-buckets.js';
import type { Order, OrderItem, OrdersService } from '../orders/orders.service.js';

export type Site = SiteView;

/** Amounts of a site are converted with its currency's ISO 4217 exponent: the code must be one. */
function checkCurrency(currency: string | undefined): void {
  if (currency !== undefined && !isKnownCurrency(currency)) {
    throw validation(`currency "${currency}" is not an ISO 4217 code`);
  }
}

/** An IANA zone Intl knows, kept as given (Node's own canonical names are the old ones: Asia/Calcutta). */
function checkTimeZone(timeZone: string | undefined): string | undefined {
  if (timeZone !== undefined && !isTimeZone(timeZone))
    throw validation(
      `timeZone "${timeZone}" is not an IANA time zone (for example "Africa/Nairobi" or "UTC")`,
    );
  return timeZone;
}

export type Product = ProductView;

/** What a site may be created or changed with, besides its id, name, address and phone. */
interface SiteSettings {
  currency: string;
  printQueueOpen: boolean;
  taxRateBp: number;
  adHocCashOrders: boolean;
  keylessCashCancel: boolean;
  timeZone: string;
}

export const toSite = (r: SiteRow): Site => ({
  id: r.id,
  tenantId: r.tenant_id,
  name: r.name,
  currency: r.currency,
  printQueueOpen: r.print_queue_open === 1,
  address: r.address,
  phone: r.phone,
  taxRateBp: Number(r.tax_rate_bp),
  adHocCashOrders: Number(r.ad_hoc_cash_orders) === 1,
  keylessCashCancel: Number(r.keyless_cash_cancel) === 1,
  timeZone: r.time_zone,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toProduct = (r: ProductRow): Product => ({
  sku: r.sku,
  tenantId: r.tenant_id,
  siteId: r.site_id,
  name: r.name,
  priceMinor: Number(r.price_minor),
  stock: r.stock === null ? null : Number(r.stock),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export function createCatalogService(deps: { db: Db; orders: Pick<OrdersService, 'create'> }) {
  const { db, orders } = deps;

  async function siteRow(tenantId: string, siteId: string, ex: Executor = db): Promise<SiteRow> {
    const row = await ex
      .selectFrom('sites')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', siteId)
      .executeTakeFirst();
    if (!row) throw notFound('site', siteId);
    return row;
  }

  /**
   * A price is minor units of the currency of the site its product belongs to. The tenant's
   * `default` products are also sold at each site pricing in the `default` site's currency, and at
   * no other (5000 paise would be charged as USh 5,000 there). Of `rows` (products of `siteId` and
   * of `default`, one tenant's or several), those the site sells, and those it does not with the
   * two currencies (for the error naming them).
   */
  async function soldAt(
    siteId: string,
    rows: readonly ProductRow[],
    ex: Executor = db,
  ): Promise<{ sold: ProductRow[]; otherCurrency: { row: ProductRow; priced: string; site: string }[] }> {
    const tenants = [...new Set(rows.filter((p) => p.site_id !== siteId).map((p) => p.tenant_id))];
    if (tenants.length === 0) return { sold: [...rows], otherCurrency: [] };
    const sites = await ex
      .selectFrom('sites')
      .select(['tenant_id', 'id', 'currency'])
      .where('tenant_id', 'in', tenants)
      .where('id', 'in', [siteId, 'default'])
      .execute();
    const currency = (tenantId: string, id: string) =>
      sites.find((s) => s.tenant_id === tenantId && s.id === id)?.currency;
    const sold: ProductRow[] = [];
    const otherCurrency: { row: ProductRow; priced: string; site: string }[] = [];
    for (const row of rows) {
      const priced = currency(row.tenant_id, row.site_id);
      const site = currency(row.tenant_id, siteId);
      if (row.site_id === siteId || (priced !== undefined && priced === site)) sold.push(row);
      else otherCurrency.push({ row, priced: priced ?? '?', site: site ?? '?' });
    }
    return { sold, otherCurrency };
  }

  // Key-less devices (printers with printQueueOpen, the cash reader's cancel with
  // keylessCashCancel) find their site by id alone, so an id is open for them in one tenant only:
  // the first to open it holds it while either flag is on (another tenant's site changes nothing).
  type KeylessFlag = 'print_queue_open' | 'keyless_cash_cancel';
  /** The site of this id with the flag on, in the tenant holding the id's key-less claim. */
  async function keylessSite(flag: KeylessFlag, siteId: string): Promise<Site | undefined> {
    const row = await db
      .selectFrom('sites')
      .innerJoin('print_queue_claims as c', (j) =>
        j.onRef('c.site_id', '=', 'sites.id').onRef('c.tenant_id', '=', 'sites.tenant_id'),
      )
      .selectAll('sites')
      .where('sites.id', '=', siteId)
      .where(`sites.${flag}`, '=', 1)
      .executeTakeFirst();
    return row ? toSite(row) : undefined;
  }
  const sitesWith = async (flag: KeylessFlag): Promise<Site[]> =>
    (await db.selectFrom('sites').selectAll().where(flag, '=', 1).execute()).map(toSite);

  async function claimKeyless(tx: Executor, tenantId: string, siteId: string, open: boolean) {
    if (!open) {
      await tx
        .deleteFrom('print_queue_claims')
        .where('site_id', '=', siteId)
        .where('tenant_id', '=', tenantId)
        .execute();
      return;
    }
    await tx
      .insertInto('print_queue_claims')
      .values({ site_id: siteId, tenant_id: tenantId, claimed_at: nowIso() })
      .onConflict((oc) => oc.column('site_id').doNothing())
      .execute();
    const holder = await tx
      .selectFrom('print_queue_claims')
      .select('tenant_id')
      .where('site_id', '=', siteId)
      .executeTakeFirst();
    if (holder?.tenant_id !== tenantId) {
      throw new AppError(
        'CONFLICT',
        `key-less devices under /sites/${siteId}/ (printQueueOpen, keylessCashCancel) are not ` +
          'available for this site id; give the devices a key, or use a site with another id',
      );
    }
  }

  return {
    siteRow,
    async getSite(tenantId: string, siteId: string): Promise<Site> {
      return toSite(await siteRow(tenantId, siteId));
    },

    async createSite(
      tenantId: string,
      input: { id: string; name: string; address?: string; phone?: string } & Partial<SiteSettings>,
      actor: string,
    ): Promise<Site> {
      checkCurrency(input.currency);
      const timeZone = checkTimeZone(input.timeZone) ?? 'UTC';
      const now = nowIso();
      const row: SiteRow = {
        tenant_id: tenantId,
        id: input.id,
        name: input.name,
        currency: input.currency ?? 'INR',
        print_queue_open: input.printQueueOpen ? 1 : 0,
        address: input.address ?? null,
        phone: input.phone ?? null,
        tax_rate_bp: input.taxRateBp ?? 0,
        ad_hoc_cash_orders: input.adHocCashOrders ? 1 : 0,
        keyless_cash_cancel: input.keylessCashCancel ? 1 : 0,
        time_zone: timeZone,
        created_at: now,
        updated_at: now,
      };
      await db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto('sites')
          .values(row)
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) throw new AppError('CONFLICT', `site "${input.id}" already exists`);
        if (input.printQueueOpen || input.keylessCashCancel) await claimKeyless(tx, tenantId, input.id, true);
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'site.create',
          subjectType: 'site',
          subjectId: input.id,
          after: toSite(row),
        });
      });
      return toSite(row);
    },

    async listSites(tenantId: string | null): Promise<Site[]> {
      let q = db.selectFrom('sites').selectAll().orderBy('tenant_id').orderBy('id');
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      return (await q.execute()).map(toSite);
    },

    async updateSite(
      tenantId: string,
      siteId: string,
      changes: Partial<{ name: string; address: string | null; phone: string | null } & SiteSettings>,
      actor: string,
      /** Another module's settings of the site, saved in the same transaction. */
      alsoInTransaction?: (tx: Executor) => Promise<void>,
    ): Promise<Site> {
      checkCurrency(changes.currency);
      const timeZone = checkTimeZone(changes.timeZone);
      return db.transaction().execute(async (tx) => {
        // The key-less claim is kept or given back from both flags as read here: on PostgreSQL the
        // row is locked first, so a concurrent update of the other flag is read after its commit
        // (else one turning keylessCashCancel on while another turns printQueueOpen off would both
        // read the other flag as off, and the claim would be given back under a site still open).
        // SQLite runs one write transaction at a time.
        if (tx.getExecutor().adapter instanceof PostgresAdapter)
          await tx
            .selectFrom('sites')
            .select('id')
            .where('tenant_id', '=', tenantId)
            .where('id', '=', siteId)
            .forUpdate()
            .execute();
        const before = await siteRow(tenantId, siteId, tx);
        const set = {
          ...(changes.name !== undefined ? { name: changes.name } : {}),
          ...(changes.currency !== undefined ? { currency: changes.currency } : {}),
          ...(changes.printQueueOpen !== undefined
            ? { print_queue_open: changes.printQueueOpen ? 1 : 0 }
            : {}),
          ...(changes.address !== undefined ? { address: changes.address } : {}),
          ...(changes.phone !== undefined ? { phone: changes.phone } : {}),
          ...(changes.taxRateBp !== undefined ? { tax_rate_bp: changes.taxRateBp } : {}),
          ...(changes.adHocCashOrders !== undefined
            ? { ad_hoc_cash_orders: changes.adHocCashOrders ? 1 : 0 }
            : {}),
          ...(changes.keylessCashCancel !== undefined
            ? { keyless_cash_cancel: changes.keylessCashCancel ? 1 : 0 }
            : {}),
          ...(timeZone !== undefined ? { time_zone: timeZone } : {}),
          updated_at: nowIso(),
        };
        // One claim covers both key-less flags: taken when either is turned on, given back only
        // once both are off (turning one off keeps it for the other).
        if (changes.printQueueOpen === true || changes.keylessCashCancel === true) {
          await claimKeyless(tx, tenantId, siteId, true);
        } else if (changes.printQueueOpen !== undefined || changes.keylessCashCancel !== undefined) {
          const stillOpen =
            (changes.printQueueOpen ?? Number(before.print_queue_open) === 1) ||
            (changes.keylessCashCancel ?? Number(before.keyless_cash_cancel) === 1);
          if (!stillOpen) await claimKeyless(tx, tenantId, siteId, false);
        }
        await tx
          .updateTable('sites')
          .set(set)
          .where('tenant_id', '=', tenantId)
          .where('id', '=', siteId)
          .execute();
        const after = { ...before, ...set } as SiteRow;
        if (alsoInTransaction) await alsoInTransaction(tx);
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'site.update',
          subjectType: 'site',
          subjectId: siteId,
          before: toSite(before),
          after: toSite(after),
        });
        return toSite(after);
      });
    },

    /** Key-less legacy printers name their site in the URL: the open site of the tenant holding that id. */
    findOpenSite: (siteId: string) => keylessSite('print_queue_open', siteId),
    listOpenSites: () => sitesWith('print_queue_open'),
    /**
     * The key-less cash reader names its site in the URL: the site with keylessCashCancel of the
     * tenant holding that id's key-less claim.
     */
    findKeylessCashSite: (siteId: string) => keylessSite('keyless_cash_cancel', siteId),
    /** Sites whose cash sessions the cash reader may cancel without a key (for the start-up warning). */
    listKeylessCashSites: () => sitesWith('keyless_cash_cancel'),

    async createProduct(
      tenantId: string,
      input: { sku: string; name: string; priceMinor: number; siteId?: string; stock?: number },
      actor: string,
    ): Promise<Product> {
      const siteId = input.siteId ?? 'default';
      await siteRow(tenantId, siteId);
      const now = nowIso();
      const row: ProductRow = {
        tenant_id: tenantId,
        sku: input.sku,
        site_id: siteId,
        name: input.name,
        price_minor: input.priceMinor,
        stock: input.stock ?? null,
        created_at: now,
        updated_at: now,
      };
      await db.transaction().execute(async (tx) => {
        const inserted = await tx
          .insertInto('products')
          .values(row)
          .onConflict((oc) => oc.columns(['tenant_id', 'sku']).doNothing())
          .returning('sku')
          .executeTakeFirst();
        if (!inserted) throw new AppError('CONFLICT', `product "${input.sku}" already exists`);
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'product.create',
          subjectType: 'product',
          subjectId: input.sku,
          after: toProduct(row),
        });
      });
      return toProduct(row);
    },

    /** The tenant's money currency: its `default` site's, else its first site's, else INR. */
    async tenantCurrency(tenantId: string): Promise<string> {
      const sites = await db
        .selectFrom('sites')
        .select(['id', 'currency'])
        .where('tenant_id', '=', tenantId)
        .orderBy('id')
        .execute();
      return (sites.find((s) => s.id === 'default') ?? sites[0])?.currency ?? 'INR';
    },

    /** Products a site sells, by sku: its own, and the tenant's `default` ones priced in its currency. */
    async siteProducts(tenantId: string, siteId: string, ex: Executor = db): Promise<ProductRow[]> {
      const rows = await ex
        .selectFrom('products')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('site_id', 'in', [siteId, 'default'])
        .orderBy('sku')
        .execute();
      return (await soldAt(siteId, rows, ex)).sold;
    },

    async productExists(tenantId: string, sku: string, ex: Executor = db): Promise<boolean> {
      const row = await ex
        .selectFrom('products')
        .select('sku')
        .where('tenant_id', '=', tenantId)
        .where('sku', '=', sku)
        .executeTakeFirst();
      return row !== undefined;
    },

    async listProducts(tenantId: string | null, siteId?: string): Promise<Product[]> {
      let q = db.selectFrom('products').selectAll().orderBy('sku');
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if (siteId === undefined) return (await q.execute()).map(toProduct);
      q = q.where('site_id', 'in', [siteId, 'default']);
      return (await soldAt(siteId, await q.execute())).sold.map(toProduct);
    },

    async updateProduct(
      tenantId: string,
      sku: string,
      changes: { name?: string; priceMinor?: number; stock?: number | null },
      actor: string,
    ): Promise<Product> {
      return db.transaction().execute(async (tx) => {
        const before = await tx
          .selectFrom('products')
          .selectAll()
          .where('tenant_id', '=', tenantId)
          .where('sku', '=', sku)
          .executeTakeFirst();
        if (!before) throw notFound('product', sku);
        const set = {
          ...(changes.name !== undefined ? { name: changes.name } : {}),
          ...(changes.priceMinor !== undefined ? { price_minor: changes.priceMinor } : {}),
          ...(changes.stock !== undefined ? { stock: changes.stock } : {}),
          updated_at: nowIso(),
        };
        await tx
          .updateTable('products')
          .set(set)
          .where('tenant_id', '=', tenantId)
          .where('sku', '=', sku)
          .execute();
        const after = { ...before, ...set };
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'product.update',
          subjectType: 'product',
          subjectId: sku,
          before: toProduct(before),
          after: toProduct(after),
        });
        return toProduct(after);
      });
    },

    /** A kiosk order priced from the catalog, status CREATED. */
    async createKioskOrder(input: {
      tenantId: string;
      siteId: string;
      machineId: string | null;
      orderNumber?: string;
      items: { sku: string; qty: number }[];
      customerName?: string;
      actor: string;
    }): Promise<Order> {
      const site = await siteRow(input.tenantId, input.siteId);
      const skus = [...new Set(input.items.map((i) => i.sku))];
      const products = await db
        .selectFrom('products')
        .selectAll()
        .where('tenant_id', '=', input.tenantId)
        .where('sku', 'in', skus)
        .execute();
      const { sold, otherCurrency } = await soldAt(
        input.siteId,
        products.filter((p) => p.site_id === input.siteId || p.site_id === 'default'),
      );
      const bySku = new Map(sold.map((p) => [p.sku, p]));
      const wanted = new Map<string, number>();
      for (const item of input.items) wanted.set(item.sku, (wanted.get(item.sku) ?? 0) + item.qty);
      const unknown = skus.filter((s) => !bySku.has(s));
      if (unknown.length > 0) {
        const why = otherCurrency.map(
          (o) =>
            `${o.row.sku} is priced in ${o.priced} at site ${o.row.site_id}; site ${input.siteId} sells in ${o.site}`,
        );
        throw validation(
          `unknown sku: ${unknown.join(', ')}${why.length > 0 ? ` (${why.join('; ')})` : ''}`,
          {
            unknownSkus: unknown,
          },
        );
      }
      const short = [...wanted].filter(([sku, qty]) => {
        const stock = bySku.get(sku)!.stock;
        return stock !== null && Number(stock) < qty;
      });
      if (short.length > 0) {
        throw new AppError(
          'OUT_OF_STOCK',
          `not enough stock for ${short.map(([s]) => s).join(', ')}`,
          short.map(([sku, qty]) => ({ sku, requested: qty, available: Number(bySku.get(sku)!.stock) })),
        );
      }
      const items: OrderItem[] = [...wanted].map(([sku, qty]) => ({
        sku,
        qty,
        name: bySku.get(sku)!.name,
        unitPriceMinor: Number(bySku.get(sku)!.price_minor),
      }));
      const amount = items.reduce((sum, i) => sum + i.qty * (i.unitPriceMinor ?? 0), 0);
      // No payment settles a total of 0 (cash init takes more than 0), so it would wait for ever.
      if (amount === 0) throw validation('the order costs nothing: its items are all priced 0', { amount });
      for (let attempt = 0; ; attempt++) {
        const orderNumber = input.orderNumber ?? `K${randomBytes(3).toString('hex').toUpperCase()}`;
        try {
          return await db.transaction().execute((tx) =>
            orders.create(tx, {
              tenantId: input.tenantId,
              siteId: site.id,
              machineId: input.machineId,
              orderNumber,
              amount,
              currency: site.currency,
              source: 'kiosk',
              status: 'CREATED',
              items,
              ...(input.customerName ? { customerName: input.customerName } : {}),
              actor: input.actor,
            }),
          );
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          if (input.orderNumber !== undefined)
            throw new AppError('CONFLICT', `order number ${input.orderNumber} already exists`);
          if (attempt >= 5) throw err;
        }
      }
    },

    /** Takes paid items out of stock inside the payment transaction; returns SKUs that went short. */
    async takeStock(ex: Executor, tenantId: string, items: readonly OrderItem[]): Promise<string[]> {
      const oversold: string[] = [];
      for (const item of items) {
        // One atomic decrement per line, so concurrent payments cannot lose an update.
        const row = await ex
          .updateTable('products')
          .set((eb) => ({ stock: eb('stock', '-', item.qty), updated_at: nowIso() }))
          .where('tenant_id', '=', tenantId)
          .where('sku', '=', item.sku)
          .where('stock', 'is not', null)
          .returning('stock')
          .executeTakeFirst();
        if (row && row.stock !== null && Number(row.stock) < 0) {
          oversold.push(item.sku);
          await ex
            .updateTable('products')
            .set({ stock: 0 })
            .where('tenant_id', '=', tenantId)
            .where('sku', '=', item.sku)
            .execute();
        }
      }
      return oversold;
    },
  };
}

export type CatalogService = ReturnType<typeof createCatalogService>;
