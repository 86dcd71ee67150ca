// Scenario `mqtt`: the same fleet of N machines (10,000; 2,000 quick) on each transport in one
// run: Socket.IO v2 (the baseline), MQTT on the embedded broker (aedes inside Kioskhub) and MQTT
// on Mosquitto with dynamic security. Each transport gets its own Kioskhub child on the same
// SQLite file; for each: server RSS per connected machine (after GC, as `memory`) and payment →
// command-at-the-machine latency with the whole fleet connected, and an exactly-once check.
import { readOrderStatuses, seedMachines, startKioskhub } from '../lib/kioskhub.js';
import { runFleet, type FleetRun } from '../lib/fleet-run.js';
import type { LightTransport } from '../lib/light-machine.js';
import { ensureOpenFiles } from '../lib/limits.js';
import { machineMosquittoUnusable, privateMosquittoMissing, startBenchMosquitto } from '../lib/mosquitto.js';
import { freePort } from '../lib/ports.js';
import { fmt, int, ms, printTable, ratio, verdict } from '../lib/table.js';
import { tempDir } from '../lib/temp.js';

// Well below what one server sustains on 2 shared cores (≈ 10 ms of CPU per paid order when
// busy), so the figure is the path to the machine, not a queue; `dispatch` measures saturation.
const RATE = 25;

interface Checked {
  run: FleetRun;
  ok: boolean;
  lines: string[];
}

function check(run: FleetRun, n: number, statuses: Record<string, number>): Checked {
  const byOrder = new Map<string, { commands: Set<string>; dispensed: number; deliveries: number }>();
  for (const a of run.arrivals) {
    const o = byOrder.get(a.orderId) ?? { commands: new Set<string>(), dispensed: 0, deliveries: 0 };
    o.commands.add(a.commandId);
    o.dispensed += a.dispensed;
    o.deliveries += a.deliveries;
    byOrder.set(a.orderId, o);
  }
  const paid = new Set(run.paid);
  const missing = run.paid.filter((id) => !byOrder.has(id)).length;
  const twice = [...byOrder.values()].filter((o) => o.dispensed > 1 || o.commands.size > 1).length;
  const strangers = [...byOrder.keys()].filter((id) => !paid.has(id)).length;
  const resent = [...byOrder.values()].reduce((a, o) => a + o.deliveries - o.commands.size, 0);
  const completed = statuses['COMPLETED'] ?? 0;
  const ok =
    run.connected === n &&
    missing === 0 &&
    twice === 0 &&
    strangers === 0 &&
    run.failedRequests === 0 &&
    completed === run.paid.length;
  return {
    run,
    ok,
    lines: [
      `${run.label}: ${int(run.connected)}/${int(n)} connected in ${fmt(run.connectSeconds)} s, ${run.disconnects} dropped while held; ${int(run.paid.length)} paid orders (${run.failedRequests} failed webhooks), ${missing} never arrived, ${twice} dispensed twice, ${strangers} unknown; ${resent} re-sent deliveries (de-duplicated by the machine); orders by status ${JSON.stringify(statuses)}; last arrival ${fmt(run.drainSeconds)} s after the load`,
    ],
  };
}

interface Variant {
  label: string;
  transport: LightTransport;
  mosquitto?: boolean;
}

export async function mqttScenario(options: { quick: boolean; machines?: number }): Promise<boolean> {
  const n = options.machines ?? (options.quick ? 2_000 : 10_000);
  const seconds = options.quick ? 8 : 20;
  // The server (or Mosquitto) holds one descriptor per machine, plus the database, logs, HTTP.
  console.log(`[mqtt] ${ensureOpenFiles(n + 1_024, `${int(n)} machine connections in one process`)}`);
  const unusable = await machineMosquittoUnusable();
  const missing = privateMosquittoMissing();
  console.log(
    `[mqtt] the machine's Mosquitto: ${unusable ?? 'usable'}; ${missing ? `no private Mosquitto either (${missing}): the Mosquitto run is SKIPPED` : 'a private Mosquitto with dynamic security is started for the Mosquitto run'}`,
  );
  const variants: Variant[] = [
    { label: 'Socket.IO v2', transport: 'socketio' },
    { label: 'MQTT, embedded broker', transport: 'mqtt' },
    ...(missing ? [] : [{ label: 'MQTT, Mosquitto', transport: 'mqtt' as const, mosquitto: true }]),
  ];
  const data = tempDir('mqtt-data');
  const memDir = tempDir('mqtt-mem');
  console.log(`[mqtt] seeding ${int(n)} machines with QR payment profiles (in-process, server services)…`);
  const seedStarted = Date.now();
  const creds = await seedMachines(data.path, n, 'MQ');
  console.log(`  ${int(n)} machines in ${fmt((Date.now() - seedStarted) / 1000)} s`);
  const results: Checked[] = [];
  let seedSeconds: number | undefined;
  let brokerVersion = '';
  for (const v of variants) {
    console.log(`\n[mqtt] ${v.label}: Kioskhub (SQLite file, ${int(n)} machines)…`);
    const broker = v.mosquitto ? await startBenchMosquitto(creds, n + 1_024) : undefined;
    if (broker) {
      seedSeconds = broker.seedSeconds;
      brokerVersion = broker.version;
      console.log(
        `  ${broker.version} on ${broker.url}, ${int(n)} clients seeded in ${fmt(broker.seedSeconds)} s`,
      );
    }
    const mqttPort = v.transport === 'mqtt' && !broker ? await freePort() : undefined;
    const memoryFile = `${memDir.path}/${v.transport}${broker ? '-mosquitto' : ''}.json`;
    const server = await startKioskhub({
      engine: 'sqlite',
      exposeGc: true,
      dataDir: data.path,
      env: {
        // Machines send one heartbeat (MQTT: a birth) and then stay silent.
        MACHINE_HEARTBEAT_TIMEOUT_MS: '3600000',
        BENCH_MEMORY_FILE: memoryFile,
        ...(mqttPort ? { MQTT_PORT: String(mqttPort) } : {}),
        ...(broker ? { MQTT_URL: broker.adminUrl } : {}),
      },
    });
    try {
      const run = await runFleet({
        label: v.label,
        transport: v.transport,
        connectUrl: broker ? broker.url : mqttPort ? `mqtt://127.0.0.1:${mqttPort}` : server.url,
        serverUrl: server.url,
        server: server.child,
        memoryFile,
        ...(broker ? { brokerPid: broker.pid } : {}),
        machines: creds,
        rate: RATE,
        seconds,
      });
      await server.child.stop();
      const checked = check(run, n, await readOrderStatuses(server.storage, run.paid));
      if (server.warnings.length)
        checked.lines.push(
          `  server printed ${server.warnings.length} warning/error lines, first: ${server.warnings[0]!.slice(0, 300)}`,
        );
      results.push(checked);
    } finally {
      await server.stop();
      await broker?.stop();
    }
  }
  return report(results, n, seconds, seedSeconds, brokerVersion);
}

function report(
  results: Checked[],
  n: number,
  seconds: number,
  seedSeconds: number | undefined,
  brokerVersion: string,
): boolean {
  const base = results[0]?.run;
  const perMachine = (r: FleetRun) => (r.rssN.median - r.rss0.median) / Math.max(1, r.connected);
  const heapPerMachine = (r: FleetRun) => (r.rssN.heapMedian - r.rss0.heapMedian) / Math.max(1, r.connected);
  const brokerPerMachine = (r: FleetRun) =>
    r.brokerRssN !== undefined ? (r.brokerRssN - r.brokerRss0!) / Math.max(1, r.connected) : undefined;
  printTable(
    `Server memory per connected machine — ${int(n)} machines per transport, median of 5 readings after GC`,
    [
      'transport',
      'connected',
      'connect',
      'RSS 0',
      'RSS N',
      'RSS/machine',
      'heap/machine',
      'broker RSS/machine',
      'vs Socket.IO',
    ],
    results.map(({ run: r }) => [
      r.label,
      int(r.connected),
      `${fmt(r.connectSeconds)} s`,
      `${fmt(r.rss0.median / 1024)} MB`,
      `${fmt(r.rssN.median / 1024)} MB`,
      `${fmt(perMachine(r))} KB`,
      `${fmt(heapPerMachine(r))} KB`,
      brokerPerMachine(r) !== undefined ? `${fmt(brokerPerMachine(r)!)} KB` : '—',
      base ? ratio(perMachine(r) + (brokerPerMachine(r) ?? 0), perMachine(base)) : '—',
    ]),
  );
  printTable(
    `Payment → command at the machine (Socket.IO: machine:dispense; MQTT: down/cmd) — ${RATE} payments/s for ${seconds} s, round-robin over ${int(n)} connected machines`,
    [
      'transport',
      'orders',
      'p50',
      'p95',
      'p99',
      'max',
      'HTTP p99',
      'server CPU/order',
      'broker CPU/order',
      'p99 vs Socket.IO',
    ],
    results.map(({ run: r }) => [
      r.label,
      int(r.latency.count),
      ms(r.latency.p50),
      ms(r.latency.p95),
      ms(r.latency.p99),
      ms(r.latency.max),
      ms(r.http.p99),
      ms(r.serverCpuPerOrderMs),
      r.brokerCpuPerOrderMs !== undefined ? ms(r.brokerCpuPerOrderMs) : '—',
      base ? ratio(r.latency.p99, base.latency.p99) : '—',
    ]),
  );
  for (const c of results) for (const line of c.lines) console.log(`  ${line}`);
  if (seedSeconds !== undefined)
    console.log(
      `  ${brokerVersion}: its ${int(n)} dynamic-security clients were written into its file before start (${fmt(seedSeconds)} s); through the control topic Mosquitto 2.0 rewrites the whole file per change (bench/README.md)`,
    );
  console.log(
    'latency: webhook sent (bench process) → command received (client process), wall clock in both; RSS/machine: server process only; the Mosquitto row adds the broker process in "vs Socket.IO"',
  );
  for (const { run: r } of results.slice(1)) {
    verdict(
      `${r.label}: p99 ≤ 10 ms`,
      r.latency.p99 <= 10,
      `${ms(r.latency.p99)} (Socket.IO ${base ? ms(base.latency.p99) : '—'})`,
    );
    const total = perMachine(r) + (brokerPerMachine(r) ?? 0);
    verdict(
      `${r.label}: ≤ 30 KB per connected machine${r.brokerRssN !== undefined ? ' (Kioskhub + Mosquitto)' : ''}`,
      total <= 30,
      `${fmt(total)} KB (Socket.IO ${base ? fmt(perMachine(base)) : '—'} KB)`,
    );
  }
  const ok = results.every((c) => c.ok);
  console.log(
    ok
      ? 'verified: every transport connected every machine and dispensed every paid order exactly once'
      : 'MISMATCH: see the checks above',
  );
  return ok;
}
