// Waiting without busy loops: abortable sleeps, a wake-up signal for idle workers, and
// capped, jittered exponential backoff for retries.

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Lets a worker sleep until there is something to do (or `ms` passes). */
export function createWakeup() {
  let waiters: (() => void)[] = [];
  let pending = false;
  return {
    wake(): void {
      pending = true;
      const current = waiters;
      waiters = [];
      for (const resolve of current) resolve();
    },
    async wait(ms: number, signal?: AbortSignal): Promise<void> {
      if (pending) {
        pending = false;
        return;
      }
      const controller = new AbortController();
      const stop = () => controller.abort();
      signal?.addEventListener('abort', stop, { once: true });
      waiters.push(stop);
      await sleep(ms, controller.signal);
      signal?.removeEventListener('abort', stop);
      waiters = waiters.filter((w) => w !== stop);
      pending = false;
    },
  };
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Delay before retry number `attempt` (0-based): doubling up to `maxMs`, with half of it random. */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
