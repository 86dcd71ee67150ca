// Spreads N heartbeating light machines (machine-worker.ts; Socket.IO v2 or MQTT) over several
// client processes, each holding at most `perWorker` connections, and lets the caller pause/resume
// their heartbeats, read how many were acknowledged and collect the commands they received. (One Node process holding 10,000 sockets spends its time on
// its own event loop and would slow the handshakes, hence several.)
import { startChild, type Child } from './child.js';
import { raiseNoFile } from './limits.js';
import { benchPath } from './paths.js';
import type { Arrival, LightTransport } from './light-machine.js';
import type {
  MachineWorkerCommand,
  MachineWorkerReport,
  WorkerClient,
  WorkerStats,
} from './machine-worker.js';

export interface MachineClients {
  connected: number;
  failed: number;
  errors: string[];
  workerRssKb: number[];
  seconds: number;
  setHeartbeats(on: boolean): void;
  stats(): Promise<WorkerStats>;
  /** Every command the machines received (with `respond`), from all client processes. */
  arrivals(): Promise<Arrival[]>;
  close(): Promise<WorkerStats>;
}

function request<T extends MachineWorkerReport['type']>(
  child: Child,
  command: MachineWorkerCommand,
  answer: T,
  timeoutMs: number,
): Promise<Extract<MachineWorkerReport, { type: T }> | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.process.off('message', onMessage);
      resolve(undefined);
    }, timeoutMs);
    const onMessage = (report: MachineWorkerReport) => {
      if (report.type !== answer) return;
      clearTimeout(timer);
      child.process.off('message', onMessage);
      resolve(report as Extract<MachineWorkerReport, { type: T }>);
    };
    child.process.on('message', onMessage);
    if (child.process.connected) child.process.send(command);
    else {
      clearTimeout(timer);
      resolve(undefined);
    }
  });
}

const sum = (list: (WorkerStats | undefined)[]): WorkerStats => ({
  acked: list.reduce((a, s) => a + (s?.acked ?? 0), 0),
  failed: list.reduce((a, s) => a + (s?.failed ?? 0), 0),
  disconnects: list.reduce((a, s) => a + (s?.disconnects ?? 0), 0),
});

export async function connectMachineClients(
  clients: WorkerClient[],
  options: {
    perWorker?: number;
    concurrencyPerWorker?: number;
    heartbeatMs: number;
    label: string;
    transport?: LightTransport;
    respond?: { dispenseDelayMs: number };
  },
): Promise<MachineClients> {
  const started = Date.now();
  const workers = Math.max(1, Math.ceil(clients.length / (options.perWorker ?? 2_500)));
  const shares = Array.from({ length: workers }, (_, w) => clients.filter((_, i) => i % workers === w));
  const children = shares.map((_, w) => {
    const child = startChild({
      name: `machine clients ${w + 1}/${workers}`,
      script: benchPath('lib/machine-worker.ts'),
    });
    raiseNoFile(child.pid, 65_536);
    return child;
  });
  const progress = new Map<number, { connected: number; failed: number }>();
  let lastPrint = 0;
  const print = (final: boolean) => {
    if (!final && Date.now() - lastPrint < 5_000) return;
    lastPrint = Date.now();
    let c = 0;
    let f = 0;
    for (const p of progress.values()) {
      c += p.connected;
      f += p.failed;
    }
    console.log(
      `  ${options.label}: ${c}/${clients.length} connected${f ? `, ${f} failed` : ''} (${Math.round((Date.now() - started) / 1000)} s)`,
    );
  };
  const ready = children.map(
    (child, w) =>
      new Promise<Extract<MachineWorkerReport, { type: 'ready' }>>((resolve, reject) => {
        child.process.on('message', (report: MachineWorkerReport) => {
          if (report.type === 'progress' || report.type === 'ready') {
            progress.set(w, report);
            print(false);
          }
          if (report.type === 'ready') resolve(report);
        });
        void child.exited.then((code) =>
          reject(new Error(`${child.name} exited (${code}) before connecting:\n${child.tail()}`)),
        );
        child.process.send({
          type: 'connect',
          clients: shares[w]!,
          concurrency: options.concurrencyPerWorker ?? 25,
          heartbeatMs: options.heartbeatMs,
          ...(options.transport ? { transport: options.transport } : {}),
          ...(options.respond ? { respond: options.respond } : {}),
        } satisfies MachineWorkerCommand);
      }),
  );
  let reports: Extract<MachineWorkerReport, { type: 'ready' }>[];
  try {
    reports = await Promise.all(ready);
  } catch (err) {
    await Promise.all(children.map((c) => c.stop(3_000)));
    throw err;
  }
  print(true);
  return {
    connected: reports.reduce((a, r) => a + r.connected, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    errors: reports.flatMap((r) => r.errors).slice(0, 5),
    workerRssKb: reports.map((r) => r.rssKb),
    seconds: (Date.now() - started) / 1000,
    setHeartbeats(on) {
      for (const c of children)
        if (c.process.connected) c.process.send({ type: 'heartbeats', on } satisfies MachineWorkerCommand);
    },
    async stats() {
      return sum(await Promise.all(children.map((c) => request(c, { type: 'stats' }, 'stats', 5_000))));
    },
    async arrivals() {
      const reports = await Promise.all(
        children.map((c) => request(c, { type: 'arrivals' }, 'arrivals', 30_000)),
      );
      if (reports.some((r) => r === undefined))
        throw new Error('a client process did not report its arrivals');
      return reports.flatMap((r) => r!.arrivals);
    },
    async close() {
      const closed = sum(
        await Promise.all(children.map((c) => request(c, { type: 'close' }, 'closed', 5_000))),
      );
      await Promise.all(children.map((c) => c.stop(3_000)));
      return closed;
    },
  };
}
