// Spreads N light machine connections over a few child processes (one Node process holding
// 10,000 sockets spends its time on its own event loop and would slow the handshakes).
import { startChild, type Child } from './child.js';
import { benchPath } from './paths.js';
import type { WorkerCommand, WorkerReport } from './socket-client-worker.js';

export interface ClientFleet {
  connected: number;
  failed: number;
  errors: string[];
  /** RSS of each client process once its sockets were connected. */
  workerRssKb: number[];
  seconds: number;
  close(): Promise<{ disconnectsWhileHeld: number }>;
}

export async function connectClients(
  url: string,
  clients: { machineId: string; key: string }[],
  options: { workers: number; concurrencyPerWorker?: number; label: string },
): Promise<ClientFleet> {
  const started = Date.now();
  const shares = Array.from({ length: options.workers }, (_, w) =>
    clients.filter((_, i) => i % options.workers === w),
  );
  const children: Child[] = shares.map((_, w) =>
    startChild({
      name: `socket clients ${w + 1}/${options.workers}`,
      script: benchPath('lib/socket-client-worker.ts'),
    }),
  );
  const progress = new Map<number, { connected: number; failed: number }>();
  let lastPrint = 0;
  const print = (final: boolean) => {
    if (!final && Date.now() - lastPrint < 2_000) return;
    lastPrint = Date.now();
    let c = 0;
    let f = 0;
    for (const p of progress.values()) {
      c += p.connected;
      f += p.failed;
    }
    console.log(`  ${options.label}: ${c}/${clients.length} connected${f ? `, ${f} failed` : ''}`);
  };
  const ready = children.map(
    (child, w) =>
      new Promise<Extract<WorkerReport, { type: 'ready' }>>((resolve, reject) => {
        child.process.on('message', (report: WorkerReport) => {
          if (report.type === 'progress' || report.type === 'ready') {
            progress.set(w, report);
            print(false);
          }
          if (report.type === 'ready') resolve(report);
        });
        void child.exited.then((code) =>
          reject(new Error(`${child.name} exited (${code}) before connecting:\n${child.tail()}`)),
        );
        const command: WorkerCommand = {
          type: 'connect',
          url,
          clients: shares[w]!,
          concurrency: options.concurrencyPerWorker ?? 50,
        };
        child.process.send(command);
      }),
  );
  let reports: Extract<WorkerReport, { type: 'ready' }>[];
  try {
    reports = await Promise.all(ready);
  } catch (err) {
    await Promise.all(children.map((c) => c.stop()));
    throw err;
  }
  print(true);
  return {
    connected: reports.reduce((a, r) => a + r.connected, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    errors: reports.flatMap((r) => r.errors).slice(0, 5),
    workerRssKb: reports.map((r) => r.rssKb),
    seconds: (Date.now() - started) / 1000,
    async close() {
      const closed = await Promise.all(
        children.map(
          (child) =>
            new Promise<number>((resolve) => {
              const timer = setTimeout(() => resolve(0), 5_000);
              child.process.on('message', (report: WorkerReport) => {
                if (report.type === 'closed') {
                  clearTimeout(timer);
                  resolve(report.disconnectsWhileHeld);
                }
              });
              if (child.process.connected) child.process.send({ type: 'close' } satisfies WorkerCommand);
              else resolve(0);
            }),
        ),
      );
      await Promise.all(children.map((c) => c.stop(3_000)));
      return { disconnectsWhileHeld: closed.reduce((a, b) => a + b, 0) };
    },
  };
}
