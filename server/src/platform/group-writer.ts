// Group commit for small writes that arrive in storms (machines connecting, disconnecting):
// at most one write is in progress; everything submitted meanwhile goes into the next one.
// A quiet system writes at once (after the current tick); a storm of N submissions costs a
// handful of statements instead of N. Each submitter waits for the write holding its entry.

export interface GroupWriter<V, R> {
  /** Queues `value` under `key` (a later value for the same key replaces an unwritten one). */
  submit(key: string, value: V): Promise<R | undefined>;
  /** Resolves when everything submitted so far has been written (or has failed). */
  drain(): Promise<void>;
}

export function createGroupWriter<V, R>(
  write: (batch: ReadonlyMap<string, V>) => Promise<ReadonlyMap<string, R> | void>,
  maxBatch = 1_000,
): GroupWriter<V, R> {
  type Waiter = { resolve(r: R | undefined): void; reject(err: unknown): void };
  let pending = new Map<string, { value: V; waiters: Waiter[] }>();
  let running: Promise<void> | undefined;

  async function run(): Promise<void> {
    // Let the submissions of this tick join the first group.
    await Promise.resolve();
    while (pending.size > 0) {
      let group = pending;
      if (group.size > maxBatch) {
        const keys = [...group.keys()].slice(0, maxBatch);
        group = new Map(keys.map((k) => [k, pending.get(k)!]));
        for (const k of keys) pending.delete(k);
      } else pending = new Map();
      try {
        const results = await write(new Map([...group].map(([k, e]) => [k, e.value])));
        for (const [k, e] of group)
          for (const w of e.waiters) w.resolve(results ? results.get(k) : undefined);
      } catch (err) {
        for (const e of group.values()) for (const w of e.waiters) w.reject(err);
      }
    }
  }

  function start(): void {
    if (running) return;
    running = run().finally(() => {
      running = undefined;
      if (pending.size > 0) start();
    });
  }

  return {
    submit(key, value) {
      return new Promise<R | undefined>((resolve, reject) => {
        const entry = pending.get(key);
        if (entry) {
          entry.value = value;
          entry.waiters.push({ resolve, reject });
        } else pending.set(key, { value, waiters: [{ resolve, reject }] });
        start();
      });
    },
    async drain() {
      while (running) await running;
    },
  };
}
