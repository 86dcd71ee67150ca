// Wakes long-polling printers of a site when a job is queued. In-process; other processes
// are reached through the outbox relay and the cluster kick.

export interface PrintWakeUp {
  /** Resolves at once if the site was woken since `listen`, else at the next wake-up or after `ms`. */
  wait(ms: number, abort?: AbortSignal): Promise<void>;
  /** Stops listening (and ends a wait in progress). */
  close(): void;
}

export function createPrintNotifier() {
  const listeners = new Map<string, Set<() => void>>();
  const key = (tenantId: string, siteId: string) => `${tenantId}|${siteId}`;

  return {
    /**
     * Starts listening for the site's wake-ups. Listen before looking at the queue: a job queued
     * between an empty look and the wait then still ends the wait at once.
     */
    listen(tenantId: string, siteId: string): PrintWakeUp {
      const k = key(tenantId, siteId);
      const set = listeners.get(k) ?? new Set();
      listeners.set(k, set);
      let woken = false;
      let endWait: (() => void) | undefined;
      const wake = () => {
        woken = true;
        endWait?.();
      };
      set.add(wake);
      return {
        wait(ms, abort) {
          return new Promise((resolve) => {
            if (woken || abort?.aborted) return resolve();
            const done = () => {
              clearTimeout(timer);
              abort?.removeEventListener('abort', done);
              endWait = undefined;
              resolve();
            };
            const timer = setTimeout(done, ms);
            abort?.addEventListener('abort', done);
            endWait = done;
          });
        },
        close() {
          set.delete(wake);
          if (set.size === 0 && listeners.get(k) === set) listeners.delete(k);
          endWait?.();
        },
      };
    },
    notify(tenantId: string, siteId: string): void {
      const set = listeners.get(key(tenantId, siteId));
      if (set) for (const wake of [...set]) wake();
    },
    waiting: (): number => [...listeners.values()].reduce((n, s) => n + s.size, 0),
  };
}

export type PrintNotifier = ReturnType<typeof createPrintNotifier>;
