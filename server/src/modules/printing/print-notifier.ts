// Wakes long-polling printers of a site when a job is queued. In-process; other processes
// are reached through the outbox relay and the cluster kick.

export function createPrintNotifier() {
  const waiters = new Map<string, Set<() => void>>();
  const key = (tenantId: string, siteId: string) => `${tenantId}|${siteId}`;

  return {
    /** Resolves when a job may be waiting for this site, or after `ms`. */
    wait(tenantId: string, siteId: string, ms: number, abort?: AbortSignal): Promise<void> {
      return new Promise((resolve) => {
        const k = key(tenantId, siteId);
        const set = waiters.get(k) ?? new Set();
        waiters.set(k, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0 && waiters.get(k) === set) waiters.delete(k);
          abort?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        abort?.addEventListener('abort', done);
        set.add(done);
      });
    },
    notify(tenantId: string, siteId: string): void {
      const set = waiters.get(key(tenantId, siteId));
      if (set) for (const wake of [...set]) wake();
    },
    waiting: (): number => [...waiters.values()].reduce((n, s) => n + s.size, 0),
  };
}

export type PrintNotifier = ReturnType<typeof createPrintNotifier>;
