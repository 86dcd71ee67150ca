// The payment state machine and its money rules, pure: which status may follow which, what an
// amount that arrived does to a pending payment, and what a refund may take. The services apply
// them with conditional updates (`where status in sourcesOf(to)`); the model-level property test
// runs them over generated histories.

export type PaymentStatus =
  'PENDING' | 'SUCCEEDED' | 'FAILED' | 'EXPIRED' | 'PARTIALLY_REFUNDED' | 'REFUNDED';

const NEXT: Record<PaymentStatus, readonly PaymentStatus[]> = {
  PENDING: ['SUCCEEDED', 'FAILED', 'EXPIRED'],
  SUCCEEDED: ['PARTIALLY_REFUNDED', 'REFUNDED'],
  PARTIALLY_REFUNDED: ['PARTIALLY_REFUNDED', 'REFUNDED'],
  // A failed or expired payment never becomes paid; money it took (an amount mismatch, a cancelled
  // cash session) is refunded without changing its status.
  FAILED: [],
  EXPIRED: [],
  REFUNDED: [],
};

export const canMovePayment = (from: PaymentStatus, to: PaymentStatus): boolean => NEXT[from].includes(to);

/** Statuses from which `to` may be reached (the `where status in (…)` of a conditional update). */
export const paymentSourcesOf = (to: PaymentStatus): PaymentStatus[] =>
  (Object.keys(NEXT) as PaymentStatus[]).filter((from) => NEXT[from].includes(to));

/** How a channel's money meets the amount due. */
export type AmountRule =
  /** A fixed-amount QR: exactly the amount, else FAILED with AMOUNT_MISMATCH. */
  | 'exact'
  /** Cash, bank transfers: amounts add up; under stays pending, over completes with a surplus. */
  | 'cumulative';

export type ArrivalOutcome =
  | { kind: 'settle'; receivedMinor: number; surplusMinor: number }
  | { kind: 'wait'; receivedMinor: number; missingMinor: number }
  | { kind: 'mismatch'; receivedMinor: number };

/** What `arrivedMinor` more does to a pending payment that has `receivedMinor` so far. */
export function applyArrival(
  rule: AmountRule,
  amountMinor: number,
  receivedMinor: number,
  arrivedMinor: number,
): ArrivalOutcome {
  const total = receivedMinor + arrivedMinor;
  if (rule === 'exact') {
    return total === amountMinor
      ? { kind: 'settle', receivedMinor: total, surplusMinor: 0 }
      : { kind: 'mismatch', receivedMinor: total };
  }
  if (total < amountMinor) return { kind: 'wait', receivedMinor: total, missingMinor: amountMinor - total };
  return { kind: 'settle', receivedMinor: total, surplusMinor: total - amountMinor };
}

export type RefundDecision =
  | { ok: true; status: PaymentStatus; refundedMinor: number; remainingMinor: number }
  | { ok: false; remainingMinor: number };

/**
 * A refund of `amountMinor` against a payment: never more than it received minus what was refunded.
 * Only a payment that was taken moves to (PARTIALLY_)REFUNDED; a failed or pending one keeps its
 * status and shows what was given back.
 */
export function decideRefund(
  payment: { status: PaymentStatus; receivedMinor: number; refundedMinor: number },
  amountMinor: number,
): RefundDecision {
  const remaining = payment.receivedMinor - payment.refundedMinor;
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0 || amountMinor > remaining) {
    return { ok: false, remainingMinor: remaining };
  }
  const refunded = payment.refundedMinor + amountMinor;
  const taken = payment.status === 'SUCCEEDED' || payment.status === 'PARTIALLY_REFUNDED';
  const status: PaymentStatus = taken
    ? refunded >= payment.receivedMinor
      ? 'REFUNDED'
      : 'PARTIALLY_REFUNDED'
    : payment.status;
  return { ok: true, status, refundedMinor: refunded, remainingMinor: payment.receivedMinor - refunded };
}
