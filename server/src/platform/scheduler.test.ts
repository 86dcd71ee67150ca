import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createScheduler } from './scheduler.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('scheduler', () => {
  it('runs a task at start and every period, never overlapping itself, and stop waits for a run', async () => {
    const scheduler = createScheduler({ logger });
    let runs = 0;
    let running = 0;
    let overlapped = false;
    scheduler.every('slow', 10, async () => {
      running++;
      if (running > 1) overlapped = true;
      runs++;
      await sleep(35);
      running--;
    });
    scheduler.start();
    await expect.poll(() => runs, { timeout: 2_000 }).toBeGreaterThanOrEqual(2);
    await scheduler.stop();
    expect(running).toBe(0);
    expect(overlapped).toBe(false);
    const after = runs;
    await sleep(50);
    expect(runs).toBe(after);
  });

  it('keeps running a task that throws, and refuses a name twice', async () => {
    const scheduler = createScheduler({ logger });
    let runs = 0;
    scheduler.every('flaky', 10, async () => {
      runs++;
      throw new Error('provider down');
    });
    expect(() => scheduler.every('flaky', 10, async () => undefined)).toThrow(/already exists/);
    scheduler.start();
    await expect.poll(() => runs, { timeout: 2_000 }).toBeGreaterThanOrEqual(3);
    await scheduler.stop();
  });
});
