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

/** A payment that was taken: its money was booked (the site's revenue, or paid from a wallet). */
export const wasTaken = (status: PaymentStatus): boolean =>
  status === 'SUCCEEDED' || status === 'PARTIALLY_REFUNDED' || status === 'REFUNDED';

export interface RefundablePayment {
  status: PaymentStatus;
  amountMinor: number;
  receivedMinor: number;
  refundedMinor: number;
}

/**
 * What refunds may give back in all. A taken payment: what it cost, the money kept. The change a
 * cash kiosk handed back and a transfer's surplus (already in the payer's wallet or with staff)
 * were never kept, so they are not refunded a second time. A payment never taken (another amount,
 * a cancelled cash session, money after it ended): everything it received. A pending payment:
 * nothing yet, as what arrived still counts towards it (it is dealt with once the payment ends).
 */
export function refundBase(payment: Omit<RefundablePayment, 'refundedMinor'>): number {
  if (payment.status === 'PENDING') return 0;
  return wasTaken(payment.status)
    ? Math.min(payment.receivedMinor, payment.amountMinor)
    : payment.receivedMinor;
}

/** What is left to refund. */
export const refundableMinor = (payment: RefundablePayment): number =>
  Math.max(0, refundBase(payment) - payment.refundedMinor);

/**
 * A refund of `amountMinor` against a payment: never more than is left to refund
 * (`refundableMinor`). Only a payment that was taken moves to (PARTIALLY_)REFUNDED; a failed or
 * pending one keeps its status and shows what was given back.
 */
export function decideRefund(payment: RefundablePayment, amountMinor: number): RefundDecision {
  const remaining = refundableMinor(payment);
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0 || amountMinor > remaining) {
    return { ok: false, remainingMinor: remaining };
  }
  const refunded = payment.refundedMinor + amountMinor;
  const base = refundBase(payment);
  const status: PaymentStatus = wasTaken(payment.status)
    ? refunded >= base
      ? 'REFUNDED'
      : 'PARTIALLY_REFUNDED'
    : payment.status;
  return { ok: true, status, refundedMinor: refunded, remainingMinor: base - refunded };
}

/**
 * A refund of `amountMinor` that gave nothing back (its provider refused it, or never answered)
 * taken off the payment again: what it refunded comes back to be kept, and refundable. The one way
 * a payment leaves REFUNDED (not a move of the state machine above: no settlement may take it).
 */
export function undoRefund(
  payment: RefundablePayment,
  amountMinor: number,
): { status: PaymentStatus; refundedMinor: number } {
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0 || amountMinor > payment.refundedMinor) {
    throw new Error(`cannot take back ${amountMinor} of a payment that refunded ${payment.refundedMinor}`);
  }
  const refunded = payment.refundedMinor - amountMinor;
  const status: PaymentStatus = wasTaken(payment.status)
    ? refunded === 0
      ? 'SUCCEEDED'
      : 'PARTIALLY_REFUNDED'
    : payment.status;
  return { status, refundedMinor: refunded };
}
