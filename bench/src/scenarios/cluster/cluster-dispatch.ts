// Scenario `cluster-dispatch`: webhook → `machine:dispense` latency when the webhook lands on a
// different Kioskhub process than the one holding the machine's socket (the notice crosses
// Redis), against the same-process path measured in the same run, on the same cluster, under
// the same load: 3 processes on one PostgreSQL schema + Redis, simulated v2 machines
// (SimulatedMachine, heartbeat every 30 s, dispense takes 5 ms) spread evenly over the 3, and an
// open-loop sender alternating cross-process and same-process webhooks. Both timestamps come
// from the bench process's clock (send → the simulator's `dispense` event).
import http from 'node:http';
import { createFleet, type Fleet } from '@kioskhub/machine-simulator';
import { onCleanup } from '../../lib/cleanup.js';
import { insertMachines, loadAvg, runTag, startCluster, type Cluster } from '../../lib/cluster/cluster.js';
import { readClusterOrders } from '../../lib/cluster/cluster.js';
import { printHeaderNote } from '../../lib/cluster/report.js';
import { AMOUNT_PAISE, WEBHOOK_SECRET } from '../../lib/kioskhub.js';
import { requireOpenFiles } from '../../lib/limits.js';
import { openLoop } from '../../lib/open-loop.js';
import { summarize } from '../../lib/stats.js';
import { int, ms, printTable, ratio, verdict } from '../../lib/table.js';
import { payOnce } from '../../lib/webhook-body.js';
import { sleep, untilStalled } from '../../lib/wait.js';
import { watchFleet } from '../../lib/fleet-watch.js';

const NODES = 3;

export async function clusterDispatchScenario(options: {
  quick: boolean;
  machines?: number;
}): Promise<boolean> {
  const machinesCount = options.machines ?? (options.quick ? 300 : 1_000);
  const rate = options.quick ? 20 : 40;
  const seconds = options.quick ? 5 : 15;
  requireOpenFiles(machinesCount + 200);
  printHeaderNote(
    'cluster-dispatch',
    `${NODES} processes, ${machinesCount} simulated machines (inserted directly into the schema, batches of 1,000, server's sha256 key hashing), ${rate} webhooks/s for ${seconds} s alternating cross-process / same-process`,
  );
  let cluster: Cluster | undefined;
  const fleets: Fleet[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const stopFleets = onCleanup(
    'cluster-dispatch fleets',
    () => fleets.forEach((f) => f.stop()),
    () => fleets.forEach((f) => f.stop()),
  );
  try {
    // Machines heartbeat every 30 s; the servers' silence limit is raised to 90 s to match.
    cluster = await startCluster({
      nodes: NODES,
      label: 'dispatch',
      env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '90000' },
    });
    const nodes = cluster.nodes;
    console.log(`  schema ${cluster.schema}; nodes on ${nodes.map((n) => n.port).join(', ')}`);
    const creds = await insertMachines(cluster, machinesCount, `CD${runTag()}`);
    const homeOf = (i: number) => i % NODES;
    for (let n = 0; n < NODES; n++) {
      fleets.push(
        createFleet({
          url: nodes[n]!.url,
          machines: creds
            .filter((_, i) => homeOf(i) === n)
            .map((c) => ({ machineId: c.machineId, key: c.key })),
          heartbeatMs: 30_000,
          dispenseDelayMs: 5,
          connectConcurrency: 50,
          // A machine the server keeps refusing would otherwise be retried without end.
          stallTimeoutMs: 60_000,
          progress: null,
        }),
      );
    }
    const machines = fleets.flatMap((f) => f.machines);
    const watch = watchFleet(machines);
    const { arrivals, handling } = watch;
    const connectStarted = Date.now();
    await Promise.all(fleets.map((f) => f.start()));
    console.log(
      `  ${machines.length} machines connected (${Math.ceil(machines.length / NODES)} per process) in ${((Date.now() - connectStarted) / 1000).toFixed(1)} s`,
    );
    await sleep(2_000);

    type Path = 'cross' | 'same';
    const sends = new Map<string, { t0: number; tResponse: number; measured: boolean; path: Path }>();
    let failedRequests = 0;
    let unexpected = 0;
    const fire = (measured: boolean, offset: number) => async (i: number) => {
      const m = (offset + i) % creds.length;
      const machine = creds[m]!;
      // Alternate: even sends go to a process that does not hold the machine's socket.
      const path: Path = i % 2 === 0 ? 'cross' : 'same';
      const target = nodes[path === 'same' ? homeOf(m) : (homeOf(m) + 1 + (i % 4 === 0 ? 0 : 1)) % NODES]!;
      const sent = await payOnce(agent, target.url, machine.qrCodeId, AMOUNT_PAISE, WEBHOOK_SECRET);
      if (sent === 'failed') failedRequests += 1;
      else if (sent === 'unexpected') unexpected += 1;
      else sends.set(sent.orderId, { t0: sent.t0, tResponse: sent.tResponse, measured, path });
    };
    console.log('  warm-up: 2 s at 50 webhooks/s');
    await openLoop({ rate: 50, seconds: 2, fire: fire(false, 0) });
    const load = loadAvg();
    console.log(`  load: ${rate} webhooks/s for ${seconds} s (load average ${load})`);
    const loop = await openLoop({ rate, seconds, fire: fire(true, 100), drainTimeoutMs: 60_000 });
    const pending = () => [...sends.keys()].filter((id) => !arrivals.has(id)).length;
    if (pending() > 0) console.log(`  waiting for ${pending()} paid orders still to be dispensed…`);
    const drained = await untilStalled(
      () => pending() === 0,
      () => arrivals.size,
      20_000,
      180_000,
    );
    const totalDispensed = () => machines.reduce((a, m) => a + m.dispensed.length, 0);
    const deadline = Date.now() + 10_000;
    while (totalDispensed() < sends.size && Date.now() < deadline) await sleep(100);
    await sleep(1_500); // the servers record the machine:done results
    const dispensedTotal = totalDispensed();
    let duplicateMachines = 0;
    for (const m of machines) {
      const orderIds = new Set(m.dispensed.map((d) => d.orderId));
      const commandIds = new Set(m.dispensed.map((d) => d.commandId));
      if (orderIds.size !== m.dispensed.length || commandIds.size !== m.dispensed.length)
        duplicateMachines += 1;
    }
    const multiArrivals = [...arrivals.values()].filter((l) => l.length > 1).length;
    const strangers = [...arrivals.keys()].filter((id) => !sends.has(id)).length;
    await stopFleets();
    const warnings = nodes.flatMap((n) => n.warnings);
    const orders = await readClusterOrders(cluster);

    const lat: Record<Path, number[]> = { cross: [], same: [] };
    const httpTimes: Record<Path, number[]> = { cross: [], same: [] };
    for (const [orderId, s] of sends) {
      if (!s.measured) continue;
      httpTimes[s.path].push(s.tResponse - s.t0);
      const t = arrivals.get(orderId)?.[0];
      if (t !== undefined) lat[s.path].push(t - s.t0);
    }
    const cross = summarize(lat.cross);
    const same = summarize(lat.same);
    const hc = summarize(httpTimes.cross);
    const hs = summarize(httpTimes.same);
    printTable(
      `Dispatch latency on ${NODES} processes — webhook sent → machine:dispense received, ${rate}/s for ${seconds} s, ${machinesCount} connected machines (load avg ${load})`,
      ['path', 'count', 'p50', 'p95', 'p99', 'max', 'HTTP p50', 'HTTP p99'],
      [
        [
          'cross-process (webhook on A, machine on B, via Redis)',
          int(cross.count),
          ms(cross.p50),
          ms(cross.p95),
          ms(cross.p99),
          ms(cross.max),
          ms(hc.p50),
          ms(hc.p99),
        ],
        [
          "same-process baseline (webhook on the machine's node)",
          int(same.count),
          ms(same.p50),
          ms(same.p95),
          ms(same.p99),
          ms(same.max),
          ms(hs.p50),
          ms(hs.p99),
        ],
        [
          'ratio (cross / same)',
          '',
          ratio(cross.p50, same.p50),
          ratio(cross.p95, same.p95),
          ratio(cross.p99, same.p99),
          ratio(cross.max, same.max),
          '',
          '',
        ],
      ],
    );
    const checks = [
      `sender: ${loop.sent} sent in ${loop.seconds.toFixed(1)} s, worst lag behind schedule ${ms(loop.maxLagMs)}`,
      `paid orders (2xx with orderId) ${sends.size}, orders in DB ${orders.count} (by status ${JSON.stringify(orders.byStatus)})`,
      `dispensed (simulator records) ${dispensedTotal}, orders with a dispense ${[...sends.keys()].filter((id) => arrivals.has(id)).length}${drained.ok ? '' : ` — some never arrived (gave up after ${drained.seconds.toFixed(0)} s)`}; after the load ended the last one took ${drained.seconds.toFixed(1)} s`,
      `machines with a duplicate dispense ${duplicateMachines}, orders dispensed more than once ${multiArrivals}, dispenses for unknown orders ${strangers}`,
      `non-200 or failed webhook requests ${failedRequests}, duplicate/ignored answers ${unexpected}`,
      `re-sent commands seen by machines ${JSON.stringify(handling)}, machine disconnects ${watch.disconnects}`,
    ];
    if (warnings.length)
      checks.push(
        `servers printed ${warnings.length} warning/error lines, first: ${warnings[0]!.slice(0, 300)}`,
      );
    for (const line of checks) console.log(`  ${line}`);
    const ok =
      drained.ok &&
      duplicateMachines === 0 &&
      multiArrivals === 0 &&
      strangers === 0 &&
      dispensedTotal === sends.size &&
      orders.count === sends.size &&
      failedRequests === 0 &&
      unexpected === 0;
    console.log(ok ? 'verified: every paid order dispensed exactly once' : 'MISMATCH: see the checks above');
    verdict(
      'cross-process dispense p99 ≤ 25 ms',
      cross.p99 <= 25,
      `${ms(cross.p99)} at ${rate} webhooks/s (same-process ${ms(same.p99)}; load avg ${load})`,
      '4',
    );
    return ok;
  } finally {
    await stopFleets();
    agent.destroy();
    await cluster?.stopNodes();
    await cluster?.drop();
  }
}
