// Times every better-sqlite3 statement this process runs, by statement text (for the
// `*-sql-timing.ts` tools): in process CPU time, or wall time (which includes waiting for fsync).
import SqliteDatabase from 'better-sqlite3';

export function timeSqliteStatements(options: { wall: boolean }) {
  // Every statement of every database shares this prototype: wrap its three runners.
  const probe = new SqliteDatabase(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, unknown>;
  probe.close();
  const timing = new Map<string, { n: number; ns: bigint }>();
  let measuring = false;
  const clock = (): bigint => {
    if (options.wall) return process.hrtime.bigint();
    // CPU time (getrusage) rather than wall time: a busy box deschedules the process mid-statement.
    const u = process.cpuUsage();
    return BigInt(u.user + u.system) * 1000n;
  };
  for (const name of ['all', 'run', 'get']) {
    const original = proto[name] as (...args: unknown[]) => unknown;
    proto[name] = function timed(this: { source: string }, ...args: unknown[]) {
      if (!measuring) return original.apply(this, args);
      const t0 = clock();
      try {
        return original.apply(this, args);
      } finally {
        const key = this.source.replace(/\s+/g, ' ').slice(0, 150);
        const e = timing.get(key) ?? { n: 0, ns: 0n };
        e.n += 1;
        e.ns += clock() - t0;
        timing.set(key, e);
      }
    };
  }
  return {
    measure(on: boolean): void {
      measuring = on;
    },
    /** Microseconds of all statements per unit of work. */
    totalPer(units: number): number {
      let total = 0n;
      for (const e of timing.values()) total += e.ns;
      return Number(total) / 1e3 / units;
    },
    /** One line per statement text, the most expensive first: µs and count per unit of work. */
    print(units: number, digits = 2): void {
      for (const [text, e] of [...timing].sort((a, b) => Number(b[1].ns - a[1].ns)))
        console.log(
          `${(Number(e.ns) / 1e3 / units).toFixed(1).padStart(8)} µs ${(e.n / units).toFixed(digits).padStart(6)}×  ${text}`,
        );
    },
  };
}
