// The `Needs review` list (v1 dispenses without a result, amount mismatches, failed dispenses
// after payment) and the operator's two decisions on it, each an order transition through the
// orders service and an audit entry in the same transaction, which also resolves the order's
// dispense alert (the sweep's DISPENSE_FAILED / DISPENSE_NO_RESULT): the decision is its answer.
import type { OrderStatus, Page, ReviewOrderView, ReviewReason } from '@kioskhub/protocol';
import type { Db } from '../../platform/db/database.js';
import { AppError } from '../../platform/errors.js';
import type { Refunds } from '../payments/refunds.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { Order, OrdersService } from '../orders/orders.service.js';
import { markDispenseAnswered } from './sweeper.js';

export interface ReviewFilter {
  tenantId: string | null;
  siteId?: string;
  machineId?: string;
  cursor?: string;
  limit: number;
}

export function reviewReason(order: Pick<Order, 'status' | 'failureCode'>): ReviewReason {
  if (order.status === 'NEEDS_REVIEW') return 'NO_RESULT';
  return order.failureCode === 'AMOUNT_MISMATCH' ? 'AMOUNT_MISMATCH' : 'DISPENSE_FAILED';
}

/** The sweep's alerts about an order's dispense (sweeper.ts), answered by a review decision. */
const DISPENSE_ALERT_KINDS = ['DISPENSE_FAILED', 'DISPENSE_NO_RESULT'] as const;

const needsReview = (o: Pick<Order, 'status' | 'paidAt'>): boolean =>
  o.status === 'NEEDS_REVIEW' || (o.status === 'FAILED' && o.paidAt !== null);

export function createReviewService(deps: {
  db: Db;
  orders: Pick<OrdersService, 'get' | 'transition' | 'needingReview'>;
  refunds: Pick<Refunds, 'refundDueForOrder'>;
  alerts: Pick<AlertsService, 'resolveSubject'>;
  afterCommit(): void;
}) {
  const { db, orders } = deps;

  async function decide(
    orderId: string,
    tenantId: string | null,
    to: Extract<OrderStatus, 'COMPLETED' | 'REFUNDED'>,
    from: OrderStatus[],
    meta: { actor: string; note?: string; event: string; action: string },
  ): Promise<ReviewOrderView> {
    const before = await orders.get(orderId, tenantId);
    if (!needsReview(before) || !from.includes(before.status)) {
      throw new AppError(
        'INVALID_STATE',
        `order ${orderId} is ${before.status}${before.status === 'FAILED' && to === 'COMPLETED' ? ': a failed dispense can only be marked refund due' : ': it is not waiting for this review decision'}`,
      );
    }
    const after = await db.transaction().execute(async (tx) => {
      const moved = await orders.transition(tx, orderId, to, {
        actor: meta.actor,
        event: meta.event,
        detail: { reviewReason: reviewReason(before), ...(meta.note ? { note: meta.note } : {}) },
      });
      if (!moved)
        throw new AppError(
          'INVALID_STATE',
          `order ${orderId} changed while it was being reviewed; reload it`,
        );
      // The customer paid and got nothing: what they paid becomes a refund owed (handed back by staff).
      if (to === 'REFUNDED') {
        await deps.refunds.refundDueForOrder(tx, orderId, {
          reason: `review: ${reviewReason(before)}${meta.note ? ` (${meta.note})` : ''}`,
          actor: meta.actor,
        });
      }
      // The mark first: a sweep raising this order's alert in a transaction still open waits for
      // this one (or this one for it, on PostgreSQL), so the resolve below sees what it committed.
      await markDispenseAnswered(tx, orderId, before.tenantId);
      for (const kind of DISPENSE_ALERT_KINDS) await deps.alerts.resolveSubject(tx, kind, orderId);
      await recordAudit(tx, {
        tenantId: before.tenantId,
        actor: meta.actor,
        action: meta.action,
        subjectType: 'order',
        subjectId: orderId,
        before: { status: before.status, failureCode: before.failureCode },
        after: { status: to, ...(meta.note ? { note: meta.note } : {}) },
      });
      return moved;
    });
    deps.afterCommit();
    return { ...after, reviewReason: reviewReason(before) };
  }

  return {
    async list(filter: ReviewFilter): Promise<Page<ReviewOrderView>> {
      const page = await orders.needingReview(filter);
      const items = page.items.map((o) => ({ ...o, reviewReason: reviewReason(o) }));
      return { items, nextCursor: page.nextCursor };
    },

    /** The machine did dispense after all (checked on site): NEEDS_REVIEW → COMPLETED. */
    markDispensed: (orderId: string, tenantId: string | null, actor: string, note?: string) =>
      decide(orderId, tenantId, 'COMPLETED', ['NEEDS_REVIEW'], {
        actor,
        event: 'marked_dispensed',
        action: 'order.mark_dispensed',
        ...(note ? { note } : {}),
      }),

    /** The customer paid and got nothing: NEEDS_REVIEW or FAILED → REFUNDED (refund owed). */
    refundDue: (orderId: string, tenantId: string | null, actor: string, note?: string) =>
      decide(orderId, tenantId, 'REFUNDED', ['NEEDS_REVIEW', 'FAILED'], {
        actor,
        event: 'refund_due',
        action: 'order.refund_due',
        ...(note ? { note } : {}),
      }),
  };
}

export type ReviewService = ReturnType<typeof createReviewService>;
