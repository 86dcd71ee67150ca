// Cash sessions for kiosk orders (CONTRACTS.md §9). Each bill or coin is a row, de-duplicated
// by the device's eventId within its order (the same id for another order is another bill);
// totals are always summed from rows. Money that cannot be applied (late, unknown order, wrong
// site) is recorded as unallocated, never dropped. A session's currency is its order's, fixed
// when it opens: a later change of the site's currency does not reach its amounts. A cafe table
// order is paid at the counter for what its guest owes, the tip included (the cafe says how much).
import { LIVE_EVENTS, type CashSessionView } from '@kioskhub/protocol';
import { sql } from 'kysely';
import { AppError } from '../../platform/errors.js';
import { nowIso, type Db, type Executor, newId } from '../../platform/db/database.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { inGroup } from '../../platform/db/group-commit.js';
import type { CashSessionRow, OrderRow } from '../../platform/db/schema.js';
import { formatMinor, minorToMajor } from '../../platform/money.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CafePayments } from '../cafe/cafe-payments.js';
import type { CatalogService } from '../catalog/catalog.service.js';
import type { LedgerService } from '../ledger/ledger.service.js';
import type { OrdersService } from '../orders/orders.service.js';
import type { PaymentsService } from '../payments/payments.service.js';
import type { Settlement } from '../payments/settlement.js';
import type { Refunds } from '../payments/refunds.js';
import { parkUnallocated, toUnallocatedView } from './unallocated.js';

/** A cash session holding money got none for CASH_SESSION_IDLE_MS; resolved when it is paid or cancelled. */
export const CASH_SESSION_STALE = 'CASH_SESSION_STALE';

export interface CashScope {
  tenantId: string;
  siteId: string;
  machineId: string | null;
  actor: string;
}

/** The dashboard's cash-session view plus what devices and the cash screen need. */
export interface SessionView extends CashSessionView {
  change: number;
  status: 'PENDING' | 'PAID' | 'CANCELLED';
  completedAt: string | null;
  cancelledAt: string | null;
  refundDue: number;
  /** The machine whose key opened the session (the kiosk); null when staff opened it. */
  kioskId: string | null;
}

export interface InsertInput {
  orderNumber: string;
  amountMinor: number;
  eventId?: string;
  kind?: string;
}

export type UnallocatedReason =
  | 'UNKNOWN_ORDER'
  | 'SESSION_PAID'
  | 'SESSION_CANCELLED'
  | 'NO_OPEN_SESSION'
  | 'WRONG_SITE'
  // A bank transfer beyond the amount due, or for a payment that no longer takes money, or the
  // part of one that had arrived when its payment ended unpaid (expired).
  | 'OVERPAID'
  | 'PAYMENT_NOT_PENDING'
  | 'PART_PAID_ENDED';

export type InsertOutcome =
  | { kind: 'applied'; view: SessionView }
  | {
      kind: 'unallocated';
      reason: UnallocatedReason;
      amountMinor: number;
      currency: string;
      orderNumber: string;
    };

async function retryOnDuplicateEvent<T>(eventId: string | undefined, run: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (eventId === undefined || attempt >= 2 || !isUniqueViolation(err)) throw err;
    }
  }
}

export function createCashService(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  orders: OrdersService;
  catalog: CatalogService;
  alerts: AlertsService;
  ledger: LedgerService;
  payments: Pick<PaymentsService, 'open' | 'received' | 'fail' | 'row'>;
  settlement: Pick<Settlement, 'succeed'>;
  refunds: Pick<Refunds, 'record'>;
  /** Table orders (source `table`): what their guest owes and their own pending attempts. */
  tableOrders: Pick<CafePayments, 'payAtCounter'>;
}) {
  const { db, orders, catalog, alerts, payments, settlement } = deps;

  async function insertedMinor(ex: Executor, sessionId: string): Promise<number> {
    const row = await ex
      .selectFrom('cash_inserts')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('amount_minor'), eb.val(0)).as('total'))
      .where('session_id', '=', sessionId)
      .executeTakeFirstOrThrow();
    return Number(row.total);
  }

  async function view(ex: Executor, s: CashSessionRow): Promise<SessionView> {
    const inserted = await insertedMinor(ex, s.id);
    const total = Number(s.total_required_minor);
    const major = (minor: number) => minorToMajor(minor, s.currency);
    return {
      sessionId: s.id,
      orderNumber: s.order_number,
      orderId: s.order_id,
      totalRequired: major(total),
      amountInserted: major(inserted),
      remainingAmount: major(Math.max(0, total - inserted)),
      change: s.status === 'PAID' ? major(Math.max(0, inserted - total)) : 0,
      status: s.status as SessionView['status'],
      startedAt: s.started_at,
      completedAt: s.completed_at,
      cancelledAt: s.cancelled_at,
      refundDue: major(Number(s.refund_due_minor)),
      currency: s.currency,
      kioskId: s.machine_id,
    };
  }

  /** The newest session of an order number, locked for this transaction on PostgreSQL. */
  async function latestSession(
    ex: Executor,
    tenantId: string,
    orderNumber: string,
    lock: boolean,
  ): Promise<CashSessionRow | undefined> {
    let q = ex
      .selectFrom('cash_sessions')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('order_number', '=', orderNumber)
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1);
    if (lock && deps.dialect === 'postgres') q = q.modifyEnd(sql`for update`);
    return q.executeTakeFirst();
  }

  /** Cancels a PENDING session (locked by the caller) and its order; money inserted becomes a refund due. */
  async function cancelPending(
    tx: Executor,
    s: CashSessionRow,
    actor: string,
    detail: Record<string, unknown>,
    /** The session ends but its order stays as it is (a table order, still payable another way). */
    keepOrder = false,
  ): Promise<SessionView> {
    const inserted = await insertedMinor(tx, s.id);
    const current: CashSessionRow = {
      ...s,
      status: 'CANCELLED',
      cancelled_at: nowIso(),
      refund_due_minor: inserted,
    };
    await tx
      .updateTable('cash_sessions')
      .set({ status: 'CANCELLED', cancelled_at: current.cancelled_at, refund_due_minor: inserted })
      .where('id', '=', s.id)
      .execute();
    await payments.fail(tx, s.id, 'CANCELLED');
    await alerts.resolveSubject(tx, CASH_SESSION_STALE, s.order_id);
    // Money already inserted is owed back: a refund the kiosk or staff hand over.
    const payment = inserted > 0 ? await payments.row(tx, s.id) : undefined;
    if (payment)
      await deps.refunds.record(tx, payment, {
        amountMinor: inserted,
        reason: 'cash session cancelled',
        destination: 'refund_due',
        actor,
      });
    if (keepOrder)
      await orders.note(tx, s.order_id, 'cash_session_ended', actor, { sessionId: s.id, ...detail });
    else
      await orders.transition(tx, s.order_id, 'CANCELLED', {
        actor,
        detail: { refundDueMinor: inserted, ...detail },
      });
    const v = await view(tx, current);
    await announce(tx, current, v);
    return v;
  }

  async function announce(ex: Executor, s: CashSessionRow, v: SessionView): Promise<void> {
    await enqueueOutbox(ex, 'live', {
      tenantId: s.tenant_id,
      rooms: [`order:${s.order_number}`, `order:${s.order_id}`, `tenant:${s.tenant_id}`],
      event: LIVE_EVENTS.cashSessionUpdated,
      data: {
        tenantId: s.tenant_id,
        orderId: s.order_id,
        orderNumber: s.order_number,
        sessionId: s.id,
        status: v.status,
        totalRequired: v.totalRequired,
        amountInserted: v.amountInserted,
        remainingAmount: v.remainingAmount,
        change: v.change,
        currency: s.currency,
      },
    });
  }

  const recordUnallocated = (
    ex: Executor,
    scope: CashScope,
    input: InsertInput,
    why: UnallocatedReason,
    currency?: string,
  ) => parkUnallocated(ex, { catalog, alerts, ledger: deps.ledger }, scope, input, why, currency);

  /**
   * The currency a device's amount for `orderNumber` at `siteId` is in, and whose exponent
   * converts it: money for an order of this site is in the order's currency (its session's, fixed
   * when the session opened), even if the site's currency changed since; money for an order this
   * site does not have is in the site's currency. `insertIn` records money by the same rule.
   */
  async function orderCurrencyAt(
    ex: Executor,
    tenantId: string,
    siteId: string,
    orderNumber: string,
  ): Promise<string | undefined> {
    const s = await latestSession(ex, tenantId, orderNumber, false);
    if (s) return s.site_id === siteId ? s.currency : undefined;
    const order = await orders.rowByNumber(ex, tenantId, orderNumber);
    return order && (order.site_id ?? siteId) === siteId ? order.currency : undefined;
  }

  /**
   * Applies one bill or coin in the caller's transaction (see `insert`). `currency`: what the amount
   * is in when the caller knows it (money recorded earlier); a session in another one is refused.
   */
  async function insertIn(
    tx: Executor,
    scope: CashScope,
    input: InsertInput,
    options: { currency?: string } = {},
  ): Promise<InsertOutcome> {
    const s = await latestSession(tx, scope.tenantId, input.orderNumber, true);
    if (input.eventId) {
      // The eventId is a key within the order at this site: a repeat of this bill for this order
      // (its session, or what was recorded as unallocated for it) counts once; the same id for
      // any other order is another bill, counted or recorded there.
      const seen = await tx
        .selectFrom('cash_inserts as i')
        .innerJoin('cash_sessions as s', 's.id', 'i.session_id')
        .selectAll('s')
        .where('s.tenant_id', '=', scope.tenantId)
        .where('s.order_number', '=', input.orderNumber)
        .where('s.site_id', '=', scope.siteId)
        .where('i.event_id', '=', input.eventId)
        .executeTakeFirst();
      if (seen) return { kind: 'applied', view: await view(tx, seen) };
      const parked = await tx
        .selectFrom('unallocated_cash')
        .select(['reason', 'amount_minor', 'currency', 'order_number'])
        .where('tenant_id', '=', scope.tenantId)
        .where('site_id', '=', scope.siteId)
        .where('order_number', '=', input.orderNumber)
        .where('event_id', '=', input.eventId)
        .executeTakeFirst();
      if (parked)
        return {
          kind: 'unallocated',
          reason: parked.reason as 'UNKNOWN_ORDER',
          amountMinor: Number(parked.amount_minor),
          currency: parked.currency,
          orderNumber: parked.order_number,
        };
    }
    if (!s) {
      const order = await orders.rowByNumber(tx, scope.tenantId, input.orderNumber);
      if (!order) return recordUnallocated(tx, scope, input, 'UNKNOWN_ORDER');
      // Another site's order is WRONG_SITE whether or not it has a session yet (a device of this
      // site learns nothing of it, as from init).
      if ((order.site_id ?? scope.siteId) !== scope.siteId)
        return recordUnallocated(tx, scope, input, 'WRONG_SITE');
      // An order of this site: its money is in the order's currency (see orderCurrencyAt).
      return recordUnallocated(tx, scope, input, 'NO_OPEN_SESSION', order.currency);
    }
    if (s.site_id !== scope.siteId) return recordUnallocated(tx, scope, input, 'WRONG_SITE');
    if (s.status !== 'PENDING') {
      const why = s.status === 'PAID' ? 'SESSION_PAID' : 'SESSION_CANCELLED';
      return recordUnallocated(tx, scope, input, why, s.currency);
    }
    // Minor units of one currency are not those of another: there is no rate to convert them by.
    if (options.currency !== undefined && options.currency !== s.currency)
      throw new AppError(
        'CONFLICT',
        `order ${input.orderNumber} takes ${s.currency}; this money is ${options.currency}`,
        { itemCurrency: options.currency, sessionCurrency: s.currency },
      );
    await tx
      .insertInto('cash_inserts')
      .values({
        id: newId(),
        tenant_id: scope.tenantId,
        session_id: s.id,
        machine_id: scope.machineId,
        event_id: input.eventId ?? null,
        kind: input.kind ?? null,
        amount_minor: input.amountMinor,
        recorded_at: nowIso(),
      })
      .execute();
    await orders.note(tx, s.order_id, 'cash_inserted', scope.actor, {
      amountMinor: input.amountMinor,
      kind: input.kind ?? null,
      eventId: input.eventId ?? null,
    });
    const inserted = await insertedMinor(tx, s.id);
    await recordAudit(tx, {
      tenantId: scope.tenantId,
      actor: scope.actor,
      action: 'cash.inserted',
      subjectType: 'payment',
      subjectId: s.id,
      after: {
        orderNumber: s.order_number,
        amountMinor: input.amountMinor,
        kind: input.kind ?? null,
        eventId: input.eventId ?? null,
        insertedMinor: inserted,
        requiredMinor: Number(s.total_required_minor),
        currency: s.currency,
      },
    });
    let current = s;
    if (inserted >= Number(s.total_required_minor)) {
      current = { ...s, status: 'PAID', completed_at: nowIso() };
      await tx
        .updateTable('cash_sessions')
        .set({ status: 'PAID', completed_at: current.completed_at })
        .where('id', '=', s.id)
        .execute();
      // A session flagged as stale that got paid after all: the alert's condition has cleared.
      await alerts.resolveSubject(tx, CASH_SESSION_STALE, s.order_id);
      // The session's payment (same id) settles through the one path every channel uses.
      const settled = await settlement.succeed(tx, s.id, inserted, { actor: scope.actor });
      // It no longer took money (ended another way): what the box keeps after change is parked, never dropped.
      if (!settled)
        await recordUnallocated(
          tx,
          scope,
          { ...input, amountMinor: Number(s.total_required_minor) },
          'PAYMENT_NOT_PENDING',
          s.currency,
        );
    } else {
      await payments.received(tx, s.id, inserted);
    }
    const v = await view(tx, current);
    await announce(tx, current, v);
    return { kind: 'applied', view: v };
  }

  return {
    /**
     * The currency whose exponent converts a device's major-unit amounts: for an order of the
     * caller's site, the order's (its session's, fixed when it opened, whatever the site's currency
     * is now); otherwise the caller's site's; for a caller without a site (staff), the order's,
     * else the default site's.
     */
    async currencyFor(tenantId: string, siteId: string | null, orderNumber: string): Promise<string> {
      if (siteId !== null)
        return (
          (await orderCurrencyAt(db, tenantId, siteId, orderNumber)) ??
          (await catalog.siteRow(tenantId, siteId)).currency
        );
      const order = await orders.rowByNumber(db, tenantId, orderNumber);
      return order?.currency ?? (await catalog.siteRow(tenantId, 'default')).currency;
    },

    /**
     * Opens (or answers again) the cash session of an order. Staff scopes may leave the site open (null).
     * An unknown order number is refused unless the site takes ad-hoc cash orders and the caller may
     * open one (`adHocCaller`: staff, or a kiosk of that site).
     */
    async init(
      scope: Omit<CashScope, 'siteId'> & { siteId: string | null },
      input: { orderNumber: string; totalMinor: number; adHocCaller?: boolean },
    ): Promise<SessionView> {
      const checkExisting = (order: OrderRow): void => {
        if (scope.siteId !== null && order.site_id !== null && order.site_id !== scope.siteId)
          throw new AppError('NOT_FOUND', `order ${input.orderNumber} does not exist at this site`);
        // A table order's `amount` is its subtotal: what its guest owes (with the tip) is checked in
        // the session's transaction below, under the order's lock, where the tip cannot change.
        if (order.source !== 'table' && Number(order.amount) !== input.totalMinor) {
          const [has, asked] = [Number(order.amount), input.totalMinor].map((m) =>
            formatMinor(m, order.currency),
          );
          throw new AppError('CONFLICT', `order ${input.orderNumber} totals ${has}, not ${asked}`);
        }
      };
      let order = await orders.rowByNumber(db, scope.tenantId, input.orderNumber);
      if (order) {
        checkExisting(order);
      } else {
        // An order number the server has not seen: a typo, unless the site lets its kiosks price
        // orders on their own screen (adHocCashOrders).
        const site = await catalog.siteRow(scope.tenantId, scope.siteId ?? 'default');
        if (Number(site.ad_hoc_cash_orders) !== 1) {
          const why = `site ${site.id} takes no ad-hoc cash orders`;
          throw new AppError(
            'NOT_FOUND',
            `order ${input.orderNumber} does not exist; check the order number (${why})`,
          );
        }
        if (!input.adHocCaller) {
          const who = `ad-hoc cash orders are opened by staff or a kiosk of site ${site.id}`;
          throw new AppError('NOT_FOUND', `order ${input.orderNumber} does not exist; ${who}`);
        }
        await db
          .transaction()
          .execute((tx) =>
            orders.create(tx, {
              tenantId: scope.tenantId,
              siteId: site.id,
              machineId: scope.machineId,
              orderNumber: input.orderNumber,
              amount: input.totalMinor,
              currency: site.currency,
              source: 'kiosk',
              status: 'CREATED',
              actor: scope.actor,
            }),
          )
          .catch((err: unknown) => {
            if (!isUniqueViolation(err)) throw err;
          });
        // Two requests racing to create the same order number: the winner's order must match ours.
        order = await orders.rowByNumber(db, scope.tenantId, input.orderNumber);
        if (order) checkExisting(order);
      }
      return db.transaction().execute(async (tx) => {
        // A cafe table order: the guest owes its total with the tip they chose (docs/cafe.md §6).
        // The cafe locks the table's pending attempts, then the order (the order settlements lock
        // them in), and ends those attempts as a new attempt of the guest would (SUPERSEDED): the
        // session becomes the order's one pending payment, so the order is paid once.
        const owed =
          order?.source === 'table'
            ? await deps.tableOrders.payAtCounter(tx, scope.tenantId, order.id)
            : undefined;
        if (owed && owed.totalMinor !== input.totalMinor) {
          const [total, subtotal, tip, asked] = [
            owed.totalMinor,
            owed.subtotalMinor,
            owed.tipMinor,
            input.totalMinor,
          ].map((m) => formatMinor(m, owed.currency));
          throw new AppError(
            'CONFLICT',
            `order ${input.orderNumber} totals ${total} with the tip (${subtotal} + tip ${tip}), not ${asked}`,
            {
              totalMinor: owed.totalMinor,
              subtotalMinor: owed.subtotalMinor,
              tipMinor: owed.tipMinor,
              currency: owed.currency,
            },
          );
        }
        const row = await orders.rowByNumber(tx, scope.tenantId, input.orderNumber, { lock: true });
        if (!row) throw new Error(`order ${input.orderNumber} vanished while its cash session opened`);
        const existing = await latestSession(tx, scope.tenantId, input.orderNumber, false);
        if (existing?.status === 'PENDING') return view(tx, existing);
        if (row.status !== 'CREATED')
          throw new AppError(
            'INVALID_STATE',
            `order ${input.orderNumber} is ${row.status}; a cash session needs a CREATED order`,
          );
        const s: CashSessionRow = {
          id: newId(),
          tenant_id: scope.tenantId,
          site_id: row.site_id ?? scope.siteId ?? 'default',
          machine_id: scope.machineId,
          order_id: row.id,
          order_number: input.orderNumber,
          total_required_minor: owed?.totalMinor ?? Number(row.amount),
          currency: row.currency,
          status: 'PENDING',
          refund_due_minor: 0,
          started_at: nowIso(),
          completed_at: null,
          cancelled_at: null,
        };
        await tx.insertInto('cash_sessions').values(s).execute();
        await payments.open(tx, {
          id: s.id,
          tenantId: s.tenant_id,
          siteId: s.site_id,
          purpose: 'order',
          orderId: s.order_id,
          machineId: s.machine_id,
          method: 'cash',
          amountMinor: s.total_required_minor,
          currency: s.currency,
        });
        await orders.note(tx, row.id, 'cash_session_started', scope.actor, { sessionId: s.id });
        const v = await view(tx, s);
        await enqueueOutbox(tx, 'live', {
          tenantId: s.tenant_id,
          rooms: [`order:${s.order_number}`, `order:${s.order_id}`, `tenant:${s.tenant_id}`],
          event: LIVE_EVENTS.paymentInitiated,
          data: {
            tenantId: s.tenant_id,
            orderId: s.order_id,
            orderNumber: s.order_number,
            method: 'cash',
            totalRequired: v.totalRequired,
          },
        });
        await announce(tx, s, v);
        return v;
      });
    },

    /** Applies one bill or coin. A repeated eventId returns the current state and counts nothing. */
    async insert(scope: CashScope, input: InsertInput): Promise<InsertOutcome> {
      // Without a session row to lock (unknown order), two requests with the same new eventId
      // can both miss the look-up below; the loser hits the unique constraint. Run it again:
      // the look-up then answers with what the winner recorded (not a 500).
      return retryOnDuplicateEvent(input.eventId, () =>
        // Bills and coins arriving together share one commit (SQLite); each is answered after it.
        inGroup(db, (tx) => insertIn(tx, scope, input), { replayable: true }),
      );
    },

    /** The insert path inside the caller's transaction (staff applying unallocated cash). */
    insertIn,

    async cancel(
      scope: Omit<CashScope, 'siteId'> & { siteId: string | null },
      orderNumber: string,
    ): Promise<SessionView> {
      return db.transaction().execute(async (tx) => {
        const s = await latestSession(tx, scope.tenantId, orderNumber, true);
        if (!s || (scope.siteId !== null && s.site_id !== scope.siteId))
          throw new AppError('NOT_FOUND', `no cash session for order ${orderNumber}`);
        if (s.status === 'CANCELLED') return view(tx, s);
        if (s.status === 'PAID') throw new AppError('INVALID_STATE', `order ${orderNumber} is already paid`);
        return cancelPending(tx, s, scope.actor, {});
      });
    },

    /**
     * Abandoned sessions (a kiosk left with its cash session open): a PENDING session of a kiosk
     * order nobody put money into within `idleMs` of opening is cancelled with its order, as a
     * cancel at the kiosk would; one that holds money but got nothing for `idleMs` raises a
     * CASH_SESSION_STALE alert (once while it is open) for staff to finish or cancel. An earlier
     * cash reader credits the site's oldest open session, so an abandoned one would take the next
     * customers' cash. Table orders are left to the cafe's own expiry. Returns what was done.
     */
    async expireIdle(idleMs: number, now = Date.now()): Promise<{ cancelled: number; stale: number }> {
      const cutoff = new Date(now - idleMs).toISOString();
      const PAGE = 200;
      // Two lists, so that sessions left with money (waiting for staff) never crowd out the empty
      // ones; each is read to its end a page at a time, so sessions flagged already (they stay
      // PENDING) do not hide the ones behind them.
      const pendingSince = (withMoney: boolean, after?: { startedAt: string; id: string }) => {
        let q = db
          .selectFrom('cash_sessions as s')
          .select(['s.id', 's.tenant_id', 's.order_id', 's.order_number', 's.started_at'])
          .where('s.status', '=', 'PENDING')
          .where('s.started_at', '<', cutoff)
          .where((eb) => {
            const inserts = eb
              .selectFrom('cash_inserts as i')
              .select('i.id')
              .whereRef('i.session_id', '=', 's.id');
            return withMoney
              ? eb.and([eb.exists(inserts), eb.not(eb.exists(inserts.where('i.recorded_at', '>=', cutoff)))])
              : eb.not(eb.exists(inserts));
          });
        if (after)
          q = q.where((eb) =>
            eb.or([
              eb('s.started_at', '>', after.startedAt),
              eb.and([eb('s.started_at', '=', after.startedAt), eb('s.id', '>', after.id)]),
            ]),
          );
        return q.orderBy('s.started_at').orderBy('s.id').limit(PAGE).execute();
      };
      let cancelled = 0;
      let stale = 0;
      for (const withMoney of [false, true]) {
        let after: { startedAt: string; id: string } | undefined;
        for (;;) {
          const rows = await pendingSince(withMoney, after);
          for (const r of rows) {
            if (withMoney) {
              // In a transaction, under the session's lock: another process sweeping at the same
              // moment waits here and then finds the alert open (one alert, however many sweep).
              const raised = await db.transaction().execute(async (tx) => {
                const s = await latestSession(tx, r.tenant_id, r.order_number, true);
                if (!s || s.id !== r.id || s.status !== 'PENDING') return false;
                const inserted = await insertedMinor(tx, s.id);
                return alerts.raiseUnlessOpen(tx, {
                  tenantId: s.tenant_id,
                  kind: CASH_SESSION_STALE,
                  subjectType: 'order',
                  subjectId: s.order_id,
                  message:
                    `Cash session of order ${s.order_number} holds ${formatMinor(inserted, s.currency)} ` +
                    `of ${formatMinor(Number(s.total_required_minor), s.currency)} ${s.currency} and got nothing for ` +
                    `${Math.round(idleMs / 60_000)} min: finish it at the kiosk, or cancel it (the money inserted becomes a refund due)`,
                });
              });
              if (raised) stale += 1;
              continue;
            }
            const done = await db.transaction().execute(async (tx) => {
              const s = await latestSession(tx, r.tenant_id, r.order_number, true);
              // Re-read under the lock: paid, cancelled, reopened or given money meanwhile is left alone.
              if (!s || s.id !== r.id || s.status !== 'PENDING' || (await insertedMinor(tx, s.id)) > 0)
                return false;
              // A table order's counter session ends, its order stays open: the guest may still pay
              // another way, and the cafe's own expiry ends the order if nobody does.
              const table = (await orders.findRow(s.order_id, tx))?.source === 'table';
              await cancelPending(tx, s, 'system:cash-session-expiry', { reason: 'IDLE', idleMs }, table);
              return true;
            });
            if (done) cancelled += 1;
          }
          if (rows.length < PAGE) break;
          const last = rows[rows.length - 1]!;
          after = { startedAt: last.started_at, id: last.id };
        }
      }
      return { cancelled, stale };
    },

    async status(tenantId: string, siteId: string | null, orderNumber: string): Promise<SessionView> {
      const s = await latestSession(db, tenantId, orderNumber, false);
      if (!s || (siteId !== null && s.site_id !== siteId))
        throw new AppError('NOT_FOUND', `no cash session for order ${orderNumber}`);
      return view(db, s);
    },

    async activeSessions(tenantId: string, siteId: string): Promise<SessionView[]> {
      const rows = await db
        .selectFrom('cash_sessions')
        .selectAll()
        .where('tenant_id', '=', tenantId)
        .where('site_id', '=', siteId)
        .where('status', '=', 'PENDING')
        .orderBy('started_at')
        .orderBy('id')
        .limit(500)
        .execute();
      return Promise.all(rows.map((r) => view(db, r)));
    },

    /** Newest first, a page at a time; `cursor` is the last id of the previous page. */
    async listUnallocated(tenantId: string | null, page: { cursor?: string; limit: number }) {
      // Unallocated cash is never deleted: a cursor names one of the caller's, or it is made up.
      await knownCursor(page.cursor, (id) => {
        let found = db.selectFrom('unallocated_cash').select('id').where('id', '=', id);
        if (tenantId !== null) found = found.where('tenant_id', '=', tenantId);
        return found.executeTakeFirst();
      });
      let q = db
        .selectFrom('unallocated_cash')
        .selectAll()
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      return pageOf(await q.execute(), page.limit, toUnallocatedView);
    },
  };
}

export type CashService = ReturnType<typeof createCashService>;
