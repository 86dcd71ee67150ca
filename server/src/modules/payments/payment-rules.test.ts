// The payment state machine, model-level: unit tests of the transition table and a property test
// that runs 10,000 generated histories (provider answers, money arriving, expiry, refunds of any
// size, duplicates and late events) through the pure rules and checks what must always hold.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyArrival,
  canMovePayment,
  decideRefund,
  refundableMinor,
  refundBase,
  undoRefund,
  wasTaken,
  paymentSourcesOf,
  type AmountRule,
  type PaymentStatus,
} from './payment-rules.js';

const STATUSES: PaymentStatus[] = [
  'PENDING',
  'SUCCEEDED',
  'FAILED',
  'EXPIRED',
  'PARTIALLY_REFUNDED',
  'REFUNDED',
];
// The expected table, written out independently of the implementation.
const ALLOWED: Record<PaymentStatus, PaymentStatus[]> = {
  PENDING: ['SUCCEEDED', 'FAILED', 'EXPIRED'],
  SUCCEEDED: ['PARTIALLY_REFUNDED', 'REFUNDED'],
  PARTIALLY_REFUNDED: ['PARTIALLY_REFUNDED', 'REFUNDED'],
  FAILED: [],
  EXPIRED: [],
  REFUNDED: [],
};

describe('payment transitions', () => {
  it.each(STATUSES.flatMap((from) => STATUSES.map((to) => [from, to] as const)))('%s → %s', (from, to) => {
    expect(canMovePayment(from, to)).toBe(ALLOWED[from].includes(to));
  });
  it('names the sources of every status', () => {
    expect(paymentSourcesOf('SUCCEEDED')).toEqual(['PENDING']);
    expect(paymentSourcesOf('REFUNDED').sort()).toEqual(['PARTIALLY_REFUNDED', 'SUCCEEDED']);
    expect(paymentSourcesOf('PENDING')).toEqual([]);
  });
});

describe('amount rules', () => {
  it('an exact-amount channel settles only on the amount', () => {
    expect(applyArrival('exact', 2000, 0, 2000)).toEqual({
      kind: 'settle',
      receivedMinor: 2000,
      surplusMinor: 0,
    });
    expect(applyArrival('exact', 2000, 0, 1500)).toEqual({ kind: 'mismatch', receivedMinor: 1500 });
    expect(applyArrival('exact', 2000, 0, 2500)).toEqual({ kind: 'mismatch', receivedMinor: 2500 });
  });
  it('a cumulative channel waits when underpaid and records a surplus when overpaid', () => {
    expect(applyArrival('cumulative', 25000, 10000, 10000)).toEqual({
      kind: 'wait',
      receivedMinor: 20000,
      missingMinor: 5000,
    });
    expect(applyArrival('cumulative', 25000, 20000, 10000)).toEqual({
      kind: 'settle',
      receivedMinor: 30000,
      surplusMinor: 5000,
    });
  });
  it('refuses refunds past what remains, of nothing, or of fractions', () => {
    const p = { status: 'SUCCEEDED' as const, amountMinor: 1000, receivedMinor: 1000, refundedMinor: 400 };
    expect(decideRefund(p, 601)).toEqual({ ok: false, remainingMinor: 600 });
    expect(decideRefund(p, 0).ok).toBe(false);
    expect(decideRefund(p, 1.5).ok).toBe(false);
    expect(decideRefund(p, 600)).toEqual({
      ok: true,
      status: 'REFUNDED',
      refundedMinor: 1000,
      remainingMinor: 0,
    });
    expect(decideRefund({ ...p, status: 'FAILED' }, 100)).toMatchObject({ ok: true, status: 'FAILED' });
  });
  it('takes back a refund that gave nothing back: its amount is refundable again', () => {
    const p = { status: 'REFUNDED' as const, amountMinor: 1000, receivedMinor: 1000, refundedMinor: 1000 };
    expect(undoRefund(p, 1000)).toEqual({ status: 'SUCCEEDED', refundedMinor: 0 });
    expect(undoRefund(p, 600)).toEqual({ status: 'PARTIALLY_REFUNDED', refundedMinor: 400 });
    const undone = { ...p, ...undoRefund(p, 600) };
    expect(refundableMinor(undone)).toBe(600);
    expect(decideRefund(undone, 600)).toMatchObject({ ok: true, status: 'REFUNDED' });
    // A payment never taken keeps its status.
    expect(undoRefund({ ...p, status: 'FAILED', refundedMinor: 700 }, 700)).toEqual({
      status: 'FAILED',
      refundedMinor: 0,
    });
    expect(() => undoRefund(p, 1001)).toThrow();
    expect(() => undoRefund(p, 0)).toThrow();
  });
  it('refunds what a taken payment kept, not the change handed back or a surplus sent elsewhere', () => {
    // ₱150 inserted for a ₱100 order: ₱50 change came out of the kiosk.
    const cash = {
      status: 'SUCCEEDED' as const,
      amountMinor: 10_000,
      receivedMinor: 15_000,
      refundedMinor: 0,
    };
    expect(refundBase(cash)).toBe(10_000);
    expect(refundableMinor(cash)).toBe(10_000);
    expect(decideRefund(cash, 10_001)).toEqual({ ok: false, remainingMinor: 10_000 });
    expect(decideRefund(cash, 10_000)).toEqual({
      ok: true,
      status: 'REFUNDED',
      refundedMinor: 10_000,
      remainingMinor: 0,
    });
    expect(decideRefund(cash, 4_000)).toMatchObject({
      ok: true,
      status: 'PARTIALLY_REFUNDED',
      remainingMinor: 6_000,
    });
    // A payment never taken (another amount arrived, a cash session cancelled) owes all it received.
    const mismatch = {
      status: 'FAILED' as const,
      amountMinor: 2_000,
      receivedMinor: 1_500,
      refundedMinor: 0,
    };
    expect(refundableMinor(mismatch)).toBe(1_500);
    expect(decideRefund(mismatch, 1_500)).toEqual({
      ok: true,
      status: 'FAILED',
      refundedMinor: 1_500,
      remainingMinor: 0,
    });
    expect(refundableMinor({ ...mismatch, status: 'EXPIRED', receivedMinor: 0 })).toBe(0);
    expect(wasTaken('REFUNDED')).toBe(true);
    expect(wasTaken('PENDING')).toBe(false);
    // What arrived on a pending payment still counts towards it: nothing to refund yet.
    const pending = { status: 'PENDING' as const, amountMinor: 850, receivedMinor: 500, refundedMinor: 0 };
    expect(refundableMinor(pending)).toBe(0);
    expect(decideRefund(pending, 500)).toEqual({ ok: false, remainingMinor: 0 });
  });
});

type Event =
  | { t: 'arrive'; amount: number }
  | { t: 'provider'; answer: 'SUCCEEDED' | 'FAILED' }
  | { t: 'expire' }
  | { t: 'refund'; amount: number };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ t: fc.constant('arrive' as const), amount: fc.integer({ min: 1, max: 6000 }) }),
  fc.record({
    t: fc.constant('provider' as const),
    answer: fc.constantFrom('SUCCEEDED' as const, 'FAILED' as const),
  }),
  fc.constant({ t: 'expire' as const }),
  fc.record({ t: fc.constant('refund' as const), amount: fc.integer({ min: -5, max: 6000 }) }),
);

interface Model {
  status: PaymentStatus;
  receivedMinor: number;
  refundedMinor: number;
  refunds: number[];
  settledTimes: number;
}

/** Runs one history through the rules exactly as the services apply them. */
function run(
  rule: AmountRule,
  amountMinor: number,
  events: Event[],
): { model: Model; moves: [PaymentStatus, PaymentStatus][] } {
  const m: Model = { status: 'PENDING', receivedMinor: 0, refundedMinor: 0, refunds: [], settledTimes: 0 };
  const moves: [PaymentStatus, PaymentStatus][] = [];
  const move = (to: PaymentStatus) => {
    // The services' conditional update: applies only from a source status of `to`.
    if (!paymentSourcesOf(to).includes(m.status)) return false;
    moves.push([m.status, to]);
    m.status = to;
    return true;
  };
  for (const e of events) {
    if (e.t === 'arrive') {
      if (m.status !== 'PENDING') continue; // late money on a finished payment is not this one's
      const out = applyArrival(rule, amountMinor, m.receivedMinor, e.amount);
      if (out.kind === 'settle') {
        m.receivedMinor = out.receivedMinor;
        if (move('SUCCEEDED')) m.settledTimes += 1;
      } else if (out.kind === 'wait') m.receivedMinor = out.receivedMinor;
      else {
        m.receivedMinor = out.receivedMinor;
        move('FAILED');
      }
    } else if (e.t === 'provider') {
      if (e.answer === 'SUCCEEDED') {
        if (m.status === 'PENDING') {
          m.receivedMinor = amountMinor;
          if (move('SUCCEEDED')) m.settledTimes += 1;
        }
      } else move('FAILED');
    } else if (e.t === 'expire') move('EXPIRED');
    else {
      const d = decideRefund({ ...m, amountMinor }, e.amount);
      if (!d.ok) continue;
      if (d.status !== m.status && !move(d.status)) continue;
      m.refundedMinor = d.refundedMinor;
      m.refunds.push(e.amount);
    }
  }
  return { model: m, moves };
}

describe('payment state machine (model, 10,000 generated histories)', () => {
  it('never settles twice, never refunds past what arrived, never leaves a final state', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<AmountRule>('exact', 'cumulative'),
        fc.integer({ min: 1, max: 5000 }),
        fc.array(eventArb, { maxLength: 40 }),
        (rule, amountMinor, events) => {
          const { model: m, moves } = run(rule, amountMinor, events);
          expect(m.settledTimes).toBeLessThanOrEqual(1);
          for (const [from, to] of moves) expect(canMovePayment(from, to)).toBe(true);
          expect(m.refundedMinor).toBe(m.refunds.reduce((a, b) => a + b, 0));
          expect(m.refundedMinor).toBeLessThanOrEqual(m.receivedMinor);
          expect(m.refunds.every((r) => Number.isSafeInteger(r) && r > 0)).toBe(true);
          // Never more than the payment kept (taken) or received (never taken).
          const base = refundBase({ ...m, amountMinor });
          expect(m.refundedMinor).toBeLessThanOrEqual(base);
          if (m.status === 'REFUNDED') expect(m.refundedMinor).toBe(base);
          if (m.status === 'PARTIALLY_REFUNDED') expect(m.refundedMinor).toBeLessThan(base);
          if (m.settledTimes === 1 && rule === 'exact') expect(m.receivedMinor).toBe(amountMinor);
          if (m.settledTimes === 1) expect(m.receivedMinor).toBeGreaterThanOrEqual(amountMinor);
          // Once FAILED or EXPIRED, a payment never became paid.
          const ended = moves.findIndex(([, to]) => to === 'FAILED' || to === 'EXPIRED');
          if (ended >= 0) expect(moves.slice(ended + 1).some(([, to]) => to === 'SUCCEEDED')).toBe(false);
        },
      ),
      { numRuns: 10_000 },
    );
  });
});
