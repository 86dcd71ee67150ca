// Waiting for a run to finish without timing it out while it still makes progress.

export const sleep = (msDelay: number): Promise<void> => new Promise((r) => setTimeout(r, msDelay));

/**
 * Waits for `done` while `progress()` keeps moving: an overloaded server is slow, not stuck,
 * so give up only after `stallMs` without progress (or `capMs` in all).
 */
export async function untilStalled(
  done: () => boolean,
  progress: () => number,
  stallMs: number,
  capMs: number,
): Promise<{ ok: boolean; seconds: number }> {
  const started = Date.now();
  let last = progress();
  let lastChange = Date.now();
  while (!done()) {
    const now = Date.now();
    const p = progress();
    if (p !== last) {
      last = p;
      lastChange = now;
    }
    if (now - lastChange > stallMs || now - started > capMs)
      return { ok: false, seconds: (now - started) / 1000 };
    await sleep(100);
  }
  return { ok: true, seconds: (Date.now() - started) / 1000 };
}
