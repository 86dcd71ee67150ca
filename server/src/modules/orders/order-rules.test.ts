// Unit tests for the order state machine: every (from, to) pair is either allowed or not.
import { ORDER_STATUSES, type OrderStatus } from '@kioskhub/protocol';
import { describe, expect, it } from 'vitest';
import { canTransition, sourcesOf } from './order-rules.js';

// The expected table, written out independently of the implementation.
const ALLOWED: Record<OrderStatus, OrderStatus[]> = {
  CREATED: ['PAID', 'CANCELLED', 'FAILED', 'PREPARING', 'READY', 'SERVED'],
  PAID: ['DISPATCHED', 'COMPLETED', 'FAILED', 'NEEDS_REVIEW', 'REFUNDED', 'PREPARING', 'READY', 'SERVED'],
  PREPARING: ['READY', 'SERVED', 'REFUNDED'],
  READY: ['SERVED', 'REFUNDED'],
  SERVED: ['REFUNDED'],
  DISPATCHED: ['COMPLETED', 'FAILED', 'NEEDS_REVIEW'],
  NEEDS_REVIEW: ['COMPLETED', 'FAILED', 'REFUNDED'],
  FAILED: ['REFUNDED'],
  COMPLETED: [],
  CANCELLED: [],
  REFUNDED: [],
};

const pairs = ORDER_STATUSES.flatMap((from) => ORDER_STATUSES.map((to) => [from, to] as const));
const allowedPairs = pairs.filter(([from, to]) => ALLOWED[from].includes(to));
const forbiddenPairs = pairs.filter(([from, to]) => !ALLOWED[from].includes(to));

describe('order transitions', () => {
  it('covers every status of the contract', () => {
    expect([...ORDER_STATUSES].sort()).toEqual(Object.keys(ALLOWED).sort());
    expect(allowedPairs.length + forbiddenPairs.length).toBe(121);
  });

  it.each(allowedPairs)('%s → %s is allowed', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
  });

  it.each(forbiddenPairs)('%s → %s is forbidden', (from, to) => {
    expect(canTransition(from, to)).toBe(false);
  });

  it('never stays in place', () => {
    for (const s of ORDER_STATUSES) expect(canTransition(s, s)).toBe(false);
  });

  it('never goes back to CREATED, and a paid order is never un-paid', () => {
    for (const s of ORDER_STATUSES) expect(canTransition(s, 'CREATED')).toBe(false);
    for (const s of ['DISPATCHED', 'COMPLETED', 'FAILED', 'NEEDS_REVIEW', 'REFUNDED'] as const) {
      expect(canTransition(s, 'PAID')).toBe(false);
    }
  });

  it('dispenses only a paid order (DISPATCHED only from PAID)', () => {
    expect(sourcesOf('DISPATCHED')).toEqual(['PAID']);
  });

  it('terminal statuses have no way out', () => {
    for (const terminal of ['COMPLETED', 'CANCELLED', 'REFUNDED'] as const) {
      for (const to of ORDER_STATUSES) expect(canTransition(terminal, to)).toBe(false);
    }
  });
});

describe('sourcesOf', () => {
  it.each([...ORDER_STATUSES])('lists exactly the statuses that may reach %s', (to) => {
    const expected = ORDER_STATUSES.filter((from) => ALLOWED[from].includes(to));
    expect([...sourcesOf(to)].sort()).toEqual([...expected].sort());
  });

  it('a cancelled order can only have been CREATED', () => {
    expect(sourcesOf('CANCELLED')).toEqual(['CREATED']);
    expect(sourcesOf('CREATED')).toEqual([]);
  });
});
