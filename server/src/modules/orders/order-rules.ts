// The order state machine: which status may follow which. Pure, unit-tested.
import type { OrderStatus } from '@kioskhub/protocol';

const NEXT: Record<OrderStatus, readonly OrderStatus[]> = {
  CREATED: ['PAID', 'CANCELLED', 'FAILED'],
  PAID: ['DISPATCHED', 'COMPLETED', 'FAILED', 'NEEDS_REVIEW', 'REFUNDED'],
  DISPATCHED: ['COMPLETED', 'FAILED', 'NEEDS_REVIEW'],
  // A late result from the machine, or an operator's decision, settles a review.
  NEEDS_REVIEW: ['COMPLETED', 'FAILED', 'REFUNDED'],
  FAILED: ['REFUNDED'],
  COMPLETED: [],
  CANCELLED: [],
  REFUNDED: [],
};

export const canTransition = (from: OrderStatus, to: OrderStatus): boolean => NEXT[from].includes(to);

/** Statuses from which `to` may be reached. */
export const sourcesOf = (to: OrderStatus): OrderStatus[] =>
  (Object.keys(NEXT) as OrderStatus[]).filter((from) => NEXT[from].includes(to));
