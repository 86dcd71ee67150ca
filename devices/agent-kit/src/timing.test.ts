import { describe, expect, it } from 'vitest';
import { backoffDelay, createWakeup, sleep } from './timing.js';

describe('backoff', () => {
  it('doubles from the base, stays under the cap, and is jittered in its upper half', () => {
    const opts = { baseMs: 500, maxMs: 30_000 };
    expect(backoffDelay(0, opts, () => 0)).toBe(250);
    expect(backoffDelay(0, opts, () => 1)).toBe(500);
    expect(backoffDelay(3, opts, () => 1)).toBe(4000);
    expect(backoffDelay(10, opts, () => 1)).toBe(30_000);
    expect(backoffDelay(1000, opts, () => 0)).toBe(15_000);
    for (let attempt = 0; attempt < 20; attempt++) {
      const d = backoffDelay(attempt, opts);
      expect(d).toBeGreaterThanOrEqual(250);
      expect(d).toBeLessThanOrEqual(30_000);
    }
  });
});

describe('wakeup', () => {
  it('wakes a waiter early and remembers a wake that came first', async () => {
    const wakeup = createWakeup();
    const started = Date.now();
    const waiting = wakeup.wait(5000);
    wakeup.wake();
    await waiting;
    wakeup.wake();
    await wakeup.wait(5000);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('sleep ends at once on abort', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const slept = sleep(5000, controller.signal);
    controller.abort();
    await slept;
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
