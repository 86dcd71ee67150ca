// Scenario `memory`: server RSS per connected v2 machine. The server (Kioskhub, then a bare
// Socket.IO baseline) runs as a child; RSS is read from /proc with 0 machines and with N light
// machine connections held by 1–4 client processes. Readings follow a forced GC in the child
// (--expose-gc + SIGUSR2 via child-preload.ts); the median of 5 is used.
import { startChild, waitForHttp, type Child } from '../lib/child.js';
import { createMachines, startKioskhub } from '../lib/kioskhub.js';
import { requireOpenFiles } from '../lib/limits.js';
import { benchPath } from '../lib/paths.js';
import { freePort } from '../lib/ports.js';
import { settledRssKb } from '../lib/proc.js';
import { connectMachineClients } from '../lib/machine-clients.js';
import { tempDir } from '../lib/temp.js';
import { fmt, int, printTable, ratio, verdict } from '../lib/table.js';

interface MemoryRun {
  label: string;
  rss0: number;
  rssN: number;
  connected: number;
  failed: number;
  perMachineKb: number;
  heap0: number;
  heapN: number;
  heapPerMachineKb: number;
  connectSeconds: number;
  clientRssKb: number[];
  disconnects: number;
  readings0: number[];
  readingsN: number[];
}

const sleep = (msDelay: number) => new Promise((r) => setTimeout(r, msDelay));

async function measure(
  label: string,
  child: Child,
  url: string,
  clients: { machineId: string; key: string }[],
  workers: number,
  memoryFile: string,
): Promise<MemoryRun> {
  // Warm-up is whatever the server did before (machine creation). Then it stays idle long
  // enough for V8's memory reducer to hand the slack of that burst back to the OS; otherwise
  // new connections would fill already-resident pages and look free.
  await sleep(12_000);
  const zero = await settledRssKb(child.pid, { gc: true, memoryFile });
  console.log(
    `  RSS with 0 machines: ${int(zero.median / 1024)} MB (readings ${zero.readings.map((r) => int(r / 1024)).join(', ')} MB), heap ${int(zero.heapMedian / 1024)} MB`,
  );
  // One heartbeat each at connect (the server then knows it IDLE), none after: RSS, not CPU.
  const fleet = await connectMachineClients(
    clients.map((c) => ({ url, ...c })),
    {
      perWorker: Math.ceil(clients.length / workers),
      concurrencyPerWorker: 50,
      heartbeatMs: 0,
      label: `${label} connections`,
    },
  );
  try {
    if (fleet.failed > 0)
      console.log(`  ${fleet.failed} connections failed, e.g. ${fleet.errors.join('; ')}`);
    // Let post-connect work (presence writes, batched last-seen flushes) finish, then idle.
    await sleep(12_000);
    const full = await settledRssKb(child.pid, { gc: true, memoryFile });
    console.log(
      `  RSS with ${fleet.connected} machines: ${int(full.median / 1024)} MB (readings ${full.readings.map((r) => int(r / 1024)).join(', ')} MB), heap ${int(full.heapMedian / 1024)} MB`,
    );
    const closed = await fleet.close();
    const perMachineKb = fleet.connected > 0 ? (full.median - zero.median) / fleet.connected : Number.NaN;
    return {
      label,
      rss0: zero.median,
      rssN: full.median,
      connected: fleet.connected,
      failed: fleet.failed,
      perMachineKb,
      heap0: zero.heapMedian,
      heapN: full.heapMedian,
      heapPerMachineKb:
        fleet.connected > 0 ? (full.heapMedian - zero.heapMedian) / fleet.connected : Number.NaN,
      connectSeconds: fleet.seconds,
      clientRssKb: fleet.workerRssKb,
      disconnects: closed.disconnects,
      readings0: zero.readings,
      readingsN: full.readings,
    };
  } catch (err) {
    await fleet.close();
    throw err;
  }
}

export async function memoryScenario(options: { quick: boolean; machines?: number }): Promise<boolean> {
  const n = options.machines ?? (options.quick ? 2_000 : 10_000);
  const workers = Math.min(4, Math.max(1, Math.ceil(n / 2_500)));
  requireOpenFiles(n);
  console.log(`\n[memory] ${n} machines, client connections spread over ${workers} process(es)`);

  const memDir = tempDir('memory');
  console.log('[memory] Kioskhub server (SQLite)…');
  // Machines send one heartbeat and then stay silent: the timeout is raised so none is dropped.
  const server = await startKioskhub({
    engine: 'sqlite',
    exposeGc: true,
    env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '3600000', BENCH_MEMORY_FILE: `${memDir.path}/kioskhub.json` },
  });
  let kioskhub: MemoryRun;
  let creds: { machineId: string; key: string }[];
  try {
    const created = await createMachines(server.url, n, { prefix: 'MM', profile: false, concurrency: 50 });
    creds = created.map((c) => ({ machineId: c.machineId, key: c.key }));
    kioskhub = await measure(
      'Kioskhub',
      server.child,
      server.url,
      creds,
      workers,
      `${memDir.path}/kioskhub.json`,
    );
    if (server.warnings.length)
      console.log(
        `  server printed ${server.warnings.length} warning/error log lines, first: ${server.warnings[0]!.slice(0, 300)}`,
      );
  } finally {
    await server.stop();
  }

  console.log('[memory] baseline: bare Socket.IO server…');
  const port = await freePort();
  const bare = startChild({
    name: 'bare-socketio',
    script: benchPath('baselines/bare-socketio.ts'),
    env: { PORT: String(port), BENCH_MEMORY_FILE: `${memDir.path}/bare.json` },
    exposeGc: true,
  });
  let baseline: MemoryRun;
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(bare, `${url}/healthz`);
    baseline = await measure('bare Socket.IO', bare, url, creds, workers, `${memDir.path}/bare.json`);
  } finally {
    await bare.stop();
  }

  const rows = [kioskhub, baseline].map((r) => [
    r.label,
    int(r.connected),
    `${fmt(r.rss0 / 1024)} MB`,
    `${fmt(r.rssN / 1024)} MB`,
    `${fmt(r.perMachineKb)} KB`,
    `${fmt(r.heapPerMachineKb)} KB`,
    `${fmt(r.connectSeconds)} s`,
    int(r.disconnects),
    r === kioskhub ? ratio(kioskhub.perMachineKb, baseline.perMachineKb) : '1.00×',
  ]);
  printTable(
    `Server RSS per connected machine — ${n} v2 connections (1 heartbeat each), median of 5 readings after GC`,
    [
      'server',
      'connected',
      'RSS 0',
      `RSS N`,
      'RSS/machine',
      'heap/machine',
      'connect time',
      'dropped',
      'RSS vs bare',
    ],
    rows,
  );
  console.log(
    'heap/machine: V8 heap used + external after GC, reported by the child; RSS can grow less than the heap when pages freed earlier (e.g. while creating machines) are reused.',
  );
  console.log(
    `client processes: ${workers}, RSS each ${kioskhub.clientRssKb.map((k) => `${int(k / 1024)} MB`).join(', ')} (≈ ${fmt(kioskhub.clientRssKb.reduce((a, b) => a + b, 0) / Math.max(1, kioskhub.connected))} KB per client socket)`,
  );
  verdict(
    'Kioskhub ≤ 30 KB per connected machine',
    kioskhub.perMachineKb <= 30,
    `${fmt(kioskhub.perMachineKb)} KB (bare Socket.IO ${fmt(baseline.perMachineKb)} KB)`,
  );
  const allConnected = kioskhub.connected === n && baseline.connected === n;
  if (!allConnected)
    console.log(
      `MISMATCH: not every machine connected (Kioskhub ${kioskhub.connected}/${n}, bare ${baseline.connected}/${n})`,
    );
  return allConnected;
}
