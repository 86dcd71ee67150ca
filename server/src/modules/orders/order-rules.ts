// The order state machine: which status may follow which. Pure, unit-tested.
import type { OrderStatus } from '@kioskhub/protocol';

const NEXT: Record<OrderStatus, readonly OrderStatus[]> = {
  // A cafe order of a pay-later site goes to the kitchen before it is paid.
  CREATED: ['PAID', 'CANCELLED', 'FAILED', 'PREPARING', 'READY', 'SERVED'],
  PAID: ['DISPATCHED', 'COMPLETED', 'FAILED', 'NEEDS_REVIEW', 'REFUNDED', 'PREPARING', 'READY', 'SERVED'],
  // The cafe kitchen moves forward only; staff may skip a step (straight to READY).
  PREPARING: ['READY', 'SERVED', 'REFUNDED'],
  READY: ['SERVED', 'REFUNDED'],
  SERVED: ['REFUNDED'],
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
