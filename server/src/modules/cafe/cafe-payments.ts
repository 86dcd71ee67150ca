// Paying a table order: one PENDING intent per attempt through `intents.create` (purpose
// `order`), settled through `settlement.succeed` like every channel. Cash waits for staff; the
// wallet (`credit`) pays at once or refuses with nothing changed; bank transfers and card
// checkouts are one-off methods other adapters register in the method registry.
import { LIVE_EVENTS } from '@kioskhub/protocol';
import { AppError, notFound } from '../../platform/errors.js';
import { newId, type Db, type Executor } from '../../platform/db/database.js';
import type { PaymentRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { Intents } from '../payments/intents.js';
import type { MethodRegistry } from '../payments/methods.js';
import { MONEY_RECEIVED, type PaymentQueries } from '../payments/payment-queries.js';
import type { Settlement } from '../payments/settlement.js';
import type { AllocateSurplus } from '../payments/surplus.js';
import { orderRooms, type OrdersService } from '../orders/orders.service.js';
import { checkTip, type CafeOrder, type CafeOrders } from './cafe-orders.js';
import type { CafeTables } from './cafe-tables.js';

export const CAFE_METHODS = ['bank_transfer', 'card', 'cash', 'credit'] as const;
export type CafeMethod = (typeof CAFE_METHODS)[number];

/** Cash waits for staff while the guest is at the table: longer than a one-off intent's default. */
const CASH_TTL_MS = 12 * 3_600_000;
/** Kitchen statuses an unpaid pay-later order may be in and still be paid. */
const PAYABLE = ['CREATED', 'PREPARING', 'READY', 'SERVED'];

export function paymentStatusView(p: PaymentRow) {
  return {
    paymentId: p.id,
    status: p.status,
    method: p.method,
    amountMinor: Number(p.amount_minor),
    receivedMinor: Number(p.received_minor),
    refundedMinor: Number(p.refunded_minor),
    currency: p.currency,
    orderId: p.order_id,
    failureCode: p.failure_code,
    expiresAt: p.expires_at,
    completedAt: p.completed_at,
  };
}

/** Who pays: a guest at the table, or a signed-in wallet customer. */
export type Payer =
  | { kind: 'table'; tenantId: string; tableId: string }
  /** `tableId`: where the customer signed in; its token pays that table's orders only. */
  | { kind: 'customer'; tenantId: string; customerId: string; tableId?: string };

/**
 * The site's cash unit taking cash for a table order at the counter (cash.service.ts `init`): it
 * pays whichever table's order it is given, for what the guest owes.
 */
type Counter = { kind: 'counter'; tenantId: string };

/** A payer acting on another table's order (or a wallet sign-in bound to no table). */
const otherTable = (payer: Payer, orderTableId: string | null): boolean =>
  payer.tableId === undefined || payer.tableId !== orderTableId;

export function createCafePayments(deps: {
  db: Db;
  tables: Pick<CafeTables, 'settings'>;
  cafeOrders: Pick<CafeOrders, 'view' | 'cafeRow' | 'setTip' | 'sendToKitchen'>;
  orders: Pick<OrdersService, 'findRow' | 'lock'>;
  payments: Pick<PaymentQueries, 'lock' | 'find' | 'ofOrder' | 'isPayer' | 'latestOrderRefund'>;
  intents: Pick<Intents, 'create' | 'fail' | 'onEnded'>;
  methods: Pick<MethodRegistry, 'get'>;
  settlement: Pick<Settlement, 'succeed'>;
  ledger: Pick<LedgerService, 'siteAccount' | 'transfer'>;
  customers: Pick<CustomersService, 'wallet' | 'get'>;
  /** A transfer staff saw with more than was due: the surplus to the payer's wallet or review. */
  allocateSurplus?: AllocateSurplus;
}) {
  const { db } = deps;

  /**
   * The order, locked, still to be paid; earlier pending attempts of the table end as SUPERSEDED.
   * A cash session the counter's cash unit opened for it is never superseded: a guest's new attempt
   * is refused while it is open (the counter's own call leaves it to the cash module).
   */
  /** The table a cafe order was placed at; undefined for an order that is not a table's. */
  async function tableOfOrder(ex: Executor, orderId: string | null): Promise<string | undefined> {
    if (orderId === null) return undefined;
    try {
      return (await deps.cafeOrders.view(orderId, null, ex)).tableId;
    } catch (err) {
      if (err instanceof AppError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  async function payableOrder(ex: Executor, payer: Payer | Counter, orderId: string): Promise<CafeOrder> {
    // The pending attempts first, then the order: the order every settlement locks them in (staff's
    // verify, a bank credit, a card webhook lock the payment, then change the order), so a guest
    // starting another payment at that moment waits instead of deadlocking with it.
    const earlier = await deps.payments.ofOrder(ex, orderId, ['PENDING']);
    for (const p of [...earlier].sort((a, b) => (a.id < b.id ? -1 : 1))) await deps.payments.lock(ex, p.id);
    await deps.orders.lock(ex, orderId);
    const order = await deps.cafeOrders.view(orderId, payer.tenantId, ex);
    if (payer.kind !== 'counter' && otherTable(payer, order.tableId)) throw notFound('order', orderId);
    const paid = (await deps.payments.ofOrder(ex, orderId, MONEY_RECEIVED)).length > 0;
    if (order.status === 'CANCELLED' && order.failureCode === 'UNPAID_EXPIRED') {
      throw new AppError(
        'INVALID_STATE',
        `order ${order.orderNumber ?? order.id} was cancelled because it was not paid in time; please order again`,
      );
    }
    if (paid || order.paidAt !== null || !PAYABLE.includes(order.status)) {
      throw new AppError(
        'INVALID_STATE',
        `order ${order.orderNumber ?? order.id} is ${order.status} and needs no payment`,
      );
    }
    const pending = await deps.payments.ofOrder(ex, orderId, ['PENDING']);
    const superseded: string[] = [];
    for (const p of pending) {
      const row = await deps.payments.lock(ex, p.id);
      if (!row || row.status !== 'PENDING') continue;
      // Not an attempt of the table (those name it as their machine): the cash session the site's
      // cash unit opened for this order, for its total at that moment. It ends at the counter, paid
      // or cancelled. Superseding it would leave the session taking bills for a payment that no
      // longer exists, and a new tip would make the order record another total than it is paying.
      if (row.machine_id !== order.tableId) {
        if (payer.kind === 'counter') continue;
        const due = Number(row.amount_minor);
        throw new AppError(
          'INVALID_STATE',
          `order ${order.orderNumber ?? order.id} is being paid at the counter's cash unit (payment ${row.id}, ${due} minor units due); pay there, or cancel that cash session first`,
          { paymentId: row.id, method: row.method, atCounter: true, amountMinor: due },
        );
      }
      // Part of a transfer already arrived: superseding it would ask the guest for everything again
      // and leave that money on a failed attempt nobody is shown. The rest goes to the same reference.
      const received = Number(row.received_minor);
      if (received > 0) {
        const amount = Number(row.amount_minor);
        throw new AppError(
          'INVALID_STATE',
          `${received} of the ${amount} due (minor units) already arrived for payment ${row.id}; send the rest to the same reference, or ask staff to confirm it`,
          { paymentId: row.id, method: row.method, receivedMinor: received, missingMinor: amount - received },
        );
      }
      superseded.push(row.id);
    }
    for (const id of superseded) await deps.intents.fail(ex, id, 'SUPERSEDED');
    return order;
  }

  async function announce(ex: Executor, order: CafeOrder, payment: PaymentRow): Promise<void> {
    const row = (await deps.orders.findRow(order.id, ex))!;
    await enqueueOutbox(ex, 'live', {
      tenantId: order.tenantId,
      rooms: orderRooms(row),
      event: LIVE_EVENTS.paymentInitiated,
      data: {
        tenantId: order.tenantId,
        orderId: order.id,
        tableId: order.tableId,
        paymentId: payment.id,
        method: payment.method,
        amountMinor: Number(payment.amount_minor),
        currency: payment.currency,
        status: payment.status,
      },
    });
  }

  // A one-off order payment that ends without money: the guest's screen hears it at once.
  deps.intents.onEnded('order', async (ex, payment) => {
    // A transfer that ends (expires) with part of its money arrived: that part is never kept on
    // a payment nobody is shown; it goes to the payer's wallet or to review, as a surplus does.
    const partPaid = Number(payment.received_minor);
    if (payment.method === 'bank_transfer' && partPaid > 0 && deps.allocateSurplus) {
      await deps.allocateSurplus(ex, payment, partPaid, {
        reason: 'PART_PAID_ENDED',
        eventId: `ended:${payment.id}`,
        actor: 'system',
      });
    }
    if (!payment.order_id) return;
    const row = await deps.orders.findRow(payment.order_id, ex);
    if (!row) return;
    await enqueueOutbox(ex, 'live', {
      tenantId: payment.tenant_id,
      rooms: orderRooms(row),
      event: LIVE_EVENTS.paymentEnded,
      data: {
        tenantId: payment.tenant_id,
        orderId: payment.order_id,
        paymentId: payment.id,
        method: payment.method,
        status: payment.status,
        failureCode: payment.failure_code,
      },
    });
  });

  return {
    async initiate(
      payer: Payer,
      input: { orderId: string; method: CafeMethod; tipMinor?: number },
      returnUrl: string | undefined,
    ): Promise<Record<string, unknown>> {
      if (input.method === 'credit' && payer.kind !== 'customer') {
        throw new AppError(
          'UNAUTHORIZED',
          'paying from the wallet needs the customer token of the wallet sign-in',
        );
      }
      const preset = await deps.cafeOrders.view(input.orderId, payer.tenantId);
      // Another table's order is not found, whatever the method (before any method's own checks).
      if (otherTable(payer, preset.tableId)) throw notFound('order', input.orderId);
      const settings = await deps.tables.settings(preset.tenantId, preset.siteId!);
      const oneOff =
        input.method === 'bank_transfer' || input.method === 'card'
          ? deps.methods.get(input.method)
          : undefined;
      if (input.method === 'bank_transfer' || input.method === 'card') {
        if (!oneOff) {
          throw new AppError(
            'PROVIDER_NOT_CONFIGURED',
            `${input.method === 'card' ? 'card payments are' : 'bank transfers are'} not set up on this server`,
          );
        }
        if (input.method === 'bank_transfer' && !settings.bankAccount)
          throw new AppError('PROVIDER_NOT_CONFIGURED', 'this cafe has no bank account for transfers');
        if (input.method === 'card' && !settings.cardGateway)
          throw new AppError('PROVIDER_NOT_CONFIGURED', 'this cafe takes no card payments');
        await oneOff.check?.({ tenantId: preset.tenantId, siteId: preset.siteId, currency: preset.currency });
      }
      const { payment, order } = await db.transaction().execute(async (tx) => {
        const order = await payableOrder(tx, payer, input.orderId);
        let tip = order.tipMinor;
        if (input.tipMinor !== undefined && input.tipMinor !== tip) {
          checkTip(order.subtotalMinor, input.tipMinor);
          tip = input.tipMinor;
          await deps.cafeOrders.setTip(tx, order.id, tip);
        }
        const amountMinor = order.subtotalMinor + tip;
        const id = newId();
        const base = {
          id,
          tenantId: order.tenantId,
          siteId: order.siteId,
          purpose: 'order' as const,
          orderId: order.id,
          machineId: order.tableId,
          amountMinor,
          currency: order.currency,
        };
        if (input.method === 'credit') {
          const customerId = (payer as Extract<Payer, { kind: 'customer' }>).customerId;
          const wallet = await deps.customers.wallet(tx, order.tenantId, customerId, order.currency);
          if (wallet.balance < amountMinor) {
            throw new AppError(
              'INSUFFICIENT_CREDIT',
              `the wallet holds ${wallet.balance}, the order needs ${amountMinor} (minor units)`,
              {
                balanceMinor: wallet.balance,
                amountMinor,
              },
            );
          }
          const intent = await deps.intents.create(tx, {
            ...base,
            method: 'credit',
            provider: 'wallet',
            customerId,
          });
          const revenue = await deps.ledger.siteAccount(
            tx,
            order.tenantId,
            order.siteId!,
            'revenue',
            order.currency,
          );
          try {
            await deps.ledger.transfer(tx, {
              tenantId: order.tenantId,
              from: wallet.id,
              to: revenue.id,
              amount: amountMinor,
              unit: order.currency,
              cause: { type: 'payment', id },
              memo: `order ${order.orderNumber ?? order.id}`,
            });
          } catch (err) {
            // Another order took the money meanwhile: the ledger refused; roll everything back.
            if (err instanceof AppError && err.code === 'INVALID_STATE')
              throw new AppError('INSUFFICIENT_CREDIT', 'the wallet does not cover this order');
            throw err;
          }
          await announce(tx, order, intent);
          const settled = await deps.settlement.succeed(tx, id, amountMinor, {
            actor: `customer:${customerId}`,
          });
          return { payment: settled ?? intent, order };
        }
        const intent = await deps.intents.create(tx, {
          ...base,
          method: input.method,
          provider: oneOff?.provider ?? null,
          ...(payer.kind === 'customer' ? { customerId: payer.customerId } : {}),
          ...(oneOff?.reference ? { reference: oneOff.reference(id) } : {}),
          ...(input.method === 'cash' || oneOff?.ttlMs
            ? { expiresAt: new Date(Date.now() + (oneOff?.ttlMs ?? CASH_TTL_MS)).toISOString() }
            : {}),
        });
        if (input.method === 'cash' && settings.payLater) await deps.cafeOrders.sendToKitchen(tx, order);
        await announce(tx, order, intent);
        return { payment: intent, order };
      });
      let presented: Record<string, unknown> = {};
      if (oneOff) {
        try {
          // Not in a transaction: a gateway may take seconds to answer.
          presented = await oneOff.present(db, payment, {
            tenantId: order.tenantId,
            siteId: order.siteId,
            description: `Order ${order.orderNumber ?? order.id}`,
            orderId: order.id,
            ...(returnUrl ? { returnUrl } : {}),
          });
        } catch (err) {
          await db.transaction().execute((tx) => deps.intents.fail(tx, payment.id, 'PRESENT_FAILED'));
          throw err;
        }
      }
      return {
        ...paymentStatusView(payment),
        subtotalMinor: order.subtotalMinor,
        tipMinor: Number(payment.amount_minor) - order.subtotalMinor,
        payLater: input.method === 'cash' && settings.payLater,
        ...presented,
      };
    },

    /** Staff saw the cash (or the transfer on the statement): settles like every channel. */
    async verify(
      paymentId: string,
      tenantId: string | null,
      receivedMinor: number | undefined,
      actor: string,
    ) {
      return db.transaction().execute(async (tx) => {
        const payment = await deps.payments.lock(tx, paymentId);
        if (!payment || (tenantId !== null && payment.tenant_id !== tenantId) || payment.purpose !== 'order')
          throw notFound('payment', paymentId);
        if (payment.method !== 'cash' && payment.method !== 'bank_transfer')
          throw new AppError(
            'INVALID_STATE',
            `a ${payment.method} payment is confirmed by its provider, not by staff`,
          );
        if (payment.status !== 'PENDING')
          throw new AppError('INVALID_STATE', `payment ${paymentId} is ${payment.status}, not PENDING`);
        // Cash that is not the table's own attempt (it names the table as its machine) is a cash
        // unit's session: it settles by its bills, and confirming it would leave those bills unbooked.
        if (payment.method === 'cash' && (await tableOfOrder(tx, payment.order_id)) !== payment.machine_id)
          throw new AppError(
            'INVALID_STATE',
            `payment ${paymentId} is a cash session of the counter's cash unit: it is paid there, not confirmed by staff`,
            { paymentId, atCounter: true },
          );
        // Then its order (payment first, as every settlement path): a kitchen move of a pay-later
        // order committing right now is waited for, so the settlement sees the order's status of
        // after it and marks it paid (else it would miss it and leave it unpaid).
        if (payment.order_id) {
          await deps.orders.lock(tx, payment.order_id);
          // Paid meanwhile another way (the site's cash unit, a transfer): settling this one too would
          // book the order's revenue, stock and receipt twice. The cash goes back to the guest.
          const order = await deps.orders.findRow(payment.order_id, tx);
          const paidBy = await deps.payments.ofOrder(tx, payment.order_id, MONEY_RECEIVED);
          if (order?.paid_at != null || paidBy.length > 0)
            throw new AppError(
              'INVALID_STATE',
              `order ${order?.order_number ?? payment.order_id} is already paid${paidBy[0] ? ` (payment ${paidBy[0].id})` : ''}; this payment is not needed`,
              { paidBy: paidBy.map((p) => p.id) },
            );
        }
        const received = receivedMinor ?? Number(payment.amount_minor);
        if (received < Number(payment.amount_minor))
          throw new AppError(
            'INVALID_STATE',
            `receivedMinor ${received} is less than the ${payment.amount_minor} due`,
          );
        const settled = await deps.settlement.succeed(tx, paymentId, received, { actor });
        const surplus = received - Number(payment.amount_minor);
        // Cash over the amount is change handed back; a transfer's surplus is the payer's money.
        if (payment.method === 'bank_transfer' && surplus > 0 && deps.allocateSurplus) {
          await deps.allocateSurplus(tx, settled!, surplus, {
            reason: 'OVERPAID',
            eventId: `verify:${paymentId}`,
            actor,
          });
        }
        await recordAudit(tx, {
          tenantId: payment.tenant_id,
          actor,
          action: 'payment.verify',
          subjectType: 'payment',
          subjectId: paymentId,
          before: { status: payment.status, receivedMinor: Number(payment.received_minor) },
          after: { status: 'SUCCEEDED', receivedMinor: received },
        });
        return paymentStatusView(settled!);
      });
    },

    /**
     * What a pending bank transfer shows the payer (the same `epc` as the initiate answer), for a
     * guest page that was reloaded. Nothing is written.
     */
    async transferDetails(p: PaymentRow): Promise<Record<string, unknown>> {
      const method = deps.methods.get('bank_transfer');
      if (p.method !== 'bank_transfer' || p.status !== 'PENDING' || !method)
        throw new AppError('INVALID_STATE', `payment ${p.id} is not a pending bank transfer`);
      return method.present(db, p, {
        tenantId: p.tenant_id,
        siteId: p.site_id,
        description: `Order ${p.order_id ?? p.id}`,
      });
    },

    /**
     * The site's cash unit is about to take cash for a table order at the counter (cash.service.ts
     * `init`, in its transaction, before it locks anything else). The order is taken as for a new
     * attempt of the guest (`payableOrder`): locked, refused if it needs no payment, the table's own
     * pending attempts end SUPERSEDED (one pending attempt per order; a transfer part of which
     * arrived refuses, `409`). What the guest owes is returned: the subtotal plus the tip stored on
     * the order (a percent tip became an amount when the order was placed, or at the guest's last
     * initiate). The tip cannot change while the counter's session is open: initiate refuses then.
     */
    async payAtCounter(ex: Executor, tenantId: string, orderId: string) {
      const order = await payableOrder(ex, { kind: 'counter', tenantId }, orderId);
      // A pay-later order the kitchen took is paid with cash staff confirm, or on the phone: a
      // counter session could be cancelled, and would cancel an order whose food is being made.
      const cafe = await deps.cafeOrders.cafeRow(orderId, ex);
      if (cafe && cafe.sent_to_kitchen_at !== null)
        throw new AppError(
          'INVALID_STATE',
          `order ${order.orderNumber ?? orderId} is in the kitchen already (pay later): staff confirm its cash (verify), or the guest pays on the phone`,
        );
      return {
        subtotalMinor: order.subtotalMinor,
        tipMinor: order.tipMinor,
        totalMinor: order.totalMinor,
        currency: order.currency,
      };
    },

    /** True when this customer paid (or is paying) the order: their token may read it. */
    isPayer: (orderId: string, customerId: string): Promise<boolean> =>
      deps.payments.isPayer(orderId, customerId),

    /** The order's newest refund as the guest page shows it (no reason or note; null: none). */
    latestRefund: (orderId: string) => deps.payments.latestOrderRefund(orderId),

    async payment(paymentId: string, tenantId: string | null): Promise<PaymentRow> {
      const p = await deps.payments.find(paymentId);
      if (!p || (tenantId !== null && p.tenant_id !== tenantId)) throw notFound('payment', paymentId);
      return p;
    },
  };
}

export type CafePayments = ReturnType<typeof createCafePayments>;
