// Table orders: the menu a guest sees for a table, orders priced from the catalog with notes and
// a tip kept apart from the order total, the kitchen's PREPARING → READY → SERVED, and the tips
// report (per day and per split: the pool, or the table's server).
import { randomBytes } from 'node:crypto';
import { LIVE_EVENTS, type OrderStatus } from '@kioskhub/protocol';
import { AppError, forbidden, notFound, validation } from '../../platform/errors.js';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import type { CafeOrderRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import {
  orderRooms,
  toOrder,
  type Order,
  type OrderItem,
  type OrdersService,
} from '../orders/orders.service.js';
import { cafeTipsReport, type TipsQuery } from '../reporting/cafe-tips.js';
import type { CafeTables, GuestTable } from './cafe-tables.js';

export type Tip = { percent: number } | { amountMinor: number };
export const KITCHEN_STATUSES = ['PREPARING', 'READY', 'SERVED'] as const;
export type KitchenStatus = (typeof KITCHEN_STATUSES)[number];

export interface CafeOrder extends Order {
  tableId: string;
  subtotalMinor: number;
  tipMinor: number;
  /** What the guest pays: subtotal + tip. The order's `amount` is the subtotal. */
  totalMinor: number;
}

export function tipFor(subtotalMinor: number, tip: Tip | undefined): number {
  if (!tip) return 0;
  return 'percent' in tip ? Math.round((subtotalMinor * tip.percent) / 100) : tip.amountMinor;
}

/** A tip is at most 100 % of the order, given as a percent or as an amount: else `400`. */
export function checkTip(subtotalMinor: number, tipMinor: number): void {
  if (tipMinor > subtotalMinor)
    throw validation(
      `a tip of ${tipMinor} is over 100 % of the order (${subtotalMinor}, minor units): nothing was changed`,
      { subtotalMinor, tipMinor },
    );
}

export function createCafeOrders(deps: {
  db: Db;
  tables: CafeTables;
  catalog: Pick<CatalogService, 'siteRow' | 'siteProducts'>;
  orders: Pick<OrdersService, 'create' | 'transition' | 'findRow'>;
  /** The unpaid deadline of a new order, as a job in its transaction (cafe-expiry.ts). */
  scheduleExpiry?(ex: Executor, order: { tenantId: string; id: string; createdAt: string }): Promise<void>;
}) {
  const { db, tables, orders } = deps;

  async function cafeRow(orderId: string, ex: Executor = db): Promise<CafeOrderRow | undefined> {
    return ex.selectFrom('cafe_orders').selectAll().where('order_id', '=', orderId).executeTakeFirst();
  }

  async function view(orderId: string, tenantId: string | null, ex: Executor = db): Promise<CafeOrder> {
    const row = await orders.findRow(orderId, ex);
    const cafe = await cafeRow(orderId, ex);
    if (!row || !cafe || (tenantId !== null && row.tenant_id !== tenantId)) throw notFound('order', orderId);
    const subtotal = Number(cafe.subtotal_minor);
    const tip = Number(cafe.tip_minor);
    return {
      ...toOrder(row),
      tableId: cafe.table_id,
      subtotalMinor: subtotal,
      tipMinor: tip,
      totalMinor: subtotal + tip,
    };
  }

  /**
   * The products the site sells (the catalog leaves out `default` ones priced in another
   * currency) as the menu shows them.
   */
  async function menuProducts(tenantId: string, siteId: string, ex: Executor = db) {
    const products = await deps.catalog.siteProducts(tenantId, siteId, ex);
    const menu = await ex
      .selectFrom('cafe_menu')
      .select(['sku', 'category', 'description', 'available', 'sort'])
      .where('tenant_id', '=', tenantId)
      .execute();
    const menuOf = new Map(menu.map((m) => [m.sku, m]));
    return products
      .map((p) => {
        const m = menuOf.get(p.sku);
        const stock = p.stock === null ? null : Number(p.stock);
        const listed = m === undefined || Number(m.available) === 1;
        return {
          sku: p.sku,
          name: p.name,
          priceMinor: Number(p.price_minor),
          category: m?.category ?? null,
          description: m?.description ?? null,
          stock,
          available: listed && (stock === null || stock > 0),
          soldOut: stock !== null && stock <= 0,
          sort: Number(m?.sort ?? 0),
        };
      })
      .sort((a, b) => a.sort - b.sort || a.sku.localeCompare(b.sku));
  }

  return {
    view,
    cafeRow,
    menuProducts,

    /** The site of a guest's table. */
    site: (guest: GuestTable) => deps.catalog.siteRow(guest.tenantId, guest.siteId),

    /** What the guest page shows for a table. */
    async menu(guest: GuestTable) {
      const site = await deps.catalog.siteRow(guest.tenantId, guest.siteId);
      const settings = await tables.settings(guest.tenantId, guest.siteId);
      const products = await menuProducts(guest.tenantId, guest.siteId);
      const names = [...new Set(products.map((p) => p.category ?? 'Menu'))];
      return {
        site: { id: site.id, name: site.name, address: site.address, phone: site.phone },
        table: { id: guest.tableId, name: guest.tableName },
        currency: site.currency,
        tipPresetsPercent: settings.tipPresetsPercent,
        payLater: settings.payLater,
        categories: names.map((name) => ({
          name,
          products: products.filter((p) => (p.category ?? 'Menu') === name).map(({ sort: _s, ...p }) => p),
        })),
      };
    },

    /** A guest's order: priced from the catalog; sold-out or unavailable items refuse the whole order. */
    async create(
      guest: GuestTable,
      input: {
        siteId: string;
        tableId: string;
        items: { sku: string; qty: number; notes?: string }[];
        tip?: Tip;
      },
    ): Promise<CafeOrder> {
      if (input.siteId !== guest.siteId || input.tableId !== guest.tableId)
        throw forbidden(`this table link is for table ${guest.tableId} of site ${guest.siteId}`);
      const site = await deps.catalog.siteRow(guest.tenantId, guest.siteId);
      const settings = await tables.settings(guest.tenantId, guest.siteId);
      const products = new Map((await menuProducts(guest.tenantId, guest.siteId)).map((p) => [p.sku, p]));
      const unknown = [...new Set(input.items.map((i) => i.sku).filter((sku) => !products.has(sku)))];
      if (unknown.length > 0)
        throw validation(`not on this menu: ${unknown.join(', ')}`, { unknownSkus: unknown });
      const wanted = new Map<string, number>();
      for (const i of input.items) wanted.set(i.sku, (wanted.get(i.sku) ?? 0) + i.qty);
      const refused = [...wanted].flatMap(([sku, qty]) => {
        const p = products.get(sku)!;
        if (!p.available && !p.soldOut) return [{ sku, name: p.name, reason: 'unavailable' }];
        if (p.stock !== null && p.stock < qty)
          return [{ sku, name: p.name, reason: 'sold_out', requested: qty, available: Math.max(0, p.stock) }];
        return [];
      });
      if (refused.length > 0) {
        throw new AppError(
          'OUT_OF_STOCK',
          `not available right now: ${refused.map((r) => r.name).join(', ')}; nothing was ordered`,
          refused,
        );
      }
      const items: OrderItem[] = input.items.map((i) => {
        const p = products.get(i.sku)!;
        const notes = i.notes?.trim();
        return {
          sku: i.sku,
          qty: i.qty,
          name: p.name,
          unitPriceMinor: p.priceMinor,
          ...(notes ? { notes } : {}),
        };
      });
      const subtotal = items.reduce((sum, i) => sum + i.qty * (i.unitPriceMinor ?? 0), 0);
      const tipMinor = tipFor(subtotal, input.tip);
      checkTip(subtotal, tipMinor);
      // A payment is a positive amount: an order costing nothing could never be paid nor cooked.
      if (subtotal + tipMinor <= 0)
        throw validation('this order costs nothing: there is nothing to pay, so it cannot be placed');
      for (let attempt = 0; ; attempt++) {
        const orderNumber = `T${randomBytes(3).toString('hex').toUpperCase()}`;
        try {
          const order = await db.transaction().execute(async (tx) => {
            const created = await orders.create(tx, {
              tenantId: guest.tenantId,
              siteId: guest.siteId,
              machineId: guest.tableId,
              orderNumber,
              amount: subtotal,
              currency: site.currency,
              source: 'table',
              status: 'CREATED',
              items,
              actor: `table:${guest.tableId}`,
            });
            await tx
              .insertInto('cafe_orders')
              .values({
                order_id: created.id,
                tenant_id: guest.tenantId,
                site_id: guest.siteId,
                table_id: guest.tableId,
                subtotal_minor: subtotal,
                tip_minor: tipMinor,
                currency: site.currency,
                tip_split: settings.tipSplit,
                server_user_id:
                  settings.tipSplit === 'server' ? await tables.serverOf(guest.tableId, tx) : null,
                sent_to_kitchen_at: null,
                created_at: nowIso(),
              })
              .execute();
            await deps.scheduleExpiry?.(tx, created);
            return created;
          });
          return {
            ...order,
            tableId: guest.tableId,
            subtotalMinor: subtotal,
            tipMinor,
            totalMinor: subtotal + tipMinor,
          };
        } catch (err) {
          if (!isUniqueViolation(err) || attempt >= 5) throw err;
        }
      }
    },

    /** A new tip chosen at payment time (before any money was taken). */
    async setTip(ex: Executor, orderId: string, tipMinor: number): Promise<void> {
      await ex
        .updateTable('cafe_orders')
        .set({ tip_minor: tipMinor })
        .where('order_id', '=', orderId)
        .execute();
    },

    /** Cash at a pay-later site: the kitchen may start before the money is collected. */
    async sendToKitchen(ex: Executor, order: CafeOrder): Promise<void> {
      const row = await ex
        .updateTable('cafe_orders')
        .set({ sent_to_kitchen_at: nowIso() })
        .where('order_id', '=', order.id)
        .where('sent_to_kitchen_at', 'is', null)
        .returning('order_id')
        .executeTakeFirst();
      if (!row || !order.siteId) return;
      await enqueueOutbox(ex, 'live', {
        tenantId: order.tenantId,
        rooms: [`kitchen:${order.siteId}`, `site:${order.siteId}`],
        event: LIVE_EVENTS.orderCreated,
        data: {
          tenantId: order.tenantId,
          orderId: order.id,
          orderNumber: order.orderNumber,
          siteId: order.siteId,
          tableId: order.tableId,
          status: order.status,
          amount: order.amount,
          currency: order.currency,
          items: order.items ?? [],
          payLater: true,
        },
      });
    },

    /** Staff move a table order through the kitchen. */
    async kitchenStatus(orderId: string, tenantId: string | null, status: KitchenStatus, actor: string) {
      return db.transaction().execute(async (tx) => {
        const before = await view(orderId, tenantId, tx);
        const cafe = (await cafeRow(orderId, tx))!;
        const unpaid = before.paidAt === null;
        if (unpaid && cafe.sent_to_kitchen_at === null) {
          throw new AppError(
            'INVALID_STATE',
            `order ${before.orderNumber ?? orderId} is not paid yet; only cash orders of a pay-later site go to the kitchen before payment`,
          );
        }
        const moved = await orders.transition(tx, orderId, status as OrderStatus, {
          actor,
          event: `kitchen_${status.toLowerCase()}`,
        });
        if (!moved)
          throw new AppError('INVALID_STATE', `an order that is ${before.status} cannot become ${status}`);
        if (status === 'READY') {
          const row = (await orders.findRow(orderId, tx))!;
          await enqueueOutbox(tx, 'live', {
            tenantId: row.tenant_id,
            rooms: [...orderRooms(row), ...(row.site_id ? [`kitchen:${row.site_id}`] : [])],
            event: LIVE_EVENTS.kitchenOrderReady,
            data: {
              tenantId: row.tenant_id,
              orderId: row.id,
              orderNumber: row.order_number,
              siteId: row.site_id,
              tableId: cafe.table_id,
              status,
            },
          });
        }
        return view(orderId, tenantId, tx);
      });
    },

    /** Tips of paid table orders, per day (UTC or `timeZone`'s), split and server (reporting/cafe-tips.ts). */
    tips: (tenantId: string | null, q: TipsQuery) => cafeTipsReport(db, tenantId, q),
  };
}

export type CafeOrders = ReturnType<typeof createCafeOrders>;
