// Scenario `cluster-drain`: a reconnect storm. 10,000 paid orders (1,000 with --quick) are
// queued for 1,000 offline machines (200 with --quick), 10 per machine, through signed webhooks
// spread over 3 Kioskhub processes (PostgreSQL + Redis); then every machine reconnects at once
// (SimulatedMachine, spread over the 3 processes) and the time until the last order is
// dispensed is measured. Exactly-once is checked from each machine's `dispensed` list and the
// orders table. Baseline in the same run, same cluster, same machines: the same storm with empty
// queues (connect + first heartbeat only), and the serial lower bound (orders per machine ×
// the simulated 5 ms dispense).
import { createFleet, type Fleet } from '@kioskhub/machine-simulator';
import { onCleanup } from '../../lib/cleanup.js';
import {
  insertMachines,
  loadAvg,
  readClusterOrders,
  runTag,
  startCluster,
  type Cluster,
} from '../../lib/cluster/cluster.js';
import { printHeaderNote } from '../../lib/cluster/report.js';
import { WEBHOOK_SECRET } from '../../lib/kioskhub.js';
import { requireOpenFiles } from '../../lib/limits.js';
import { summarize } from '../../lib/stats.js';
import { fmt, int, ms, printTable, verdict } from '../../lib/table.js';
import { runWebhookLoad } from '../../lib/webhook-load.js';

const NODES = 3;
const DISPENSE_MS = 5;
const sleep = (msDelay: number) => new Promise((r) => setTimeout(r, msDelay));

export async function clusterDrainScenario(options: { quick: boolean; machines?: number }): Promise<boolean> {
  const machinesCount = options.machines ?? (options.quick ? 200 : 1_000);
  const perMachine = 10;
  const ordersCount = machinesCount * perMachine;
  requireOpenFiles(machinesCount + 200);
  printHeaderNote(
    'cluster-drain',
    `${NODES} processes, ${machinesCount} machines (inserted directly into the schema, batches of 1,000, server's sha256 key hashing), ${ordersCount} orders queued (${perMachine} per machine), all machines reconnect at once`,
  );
  let cluster: Cluster | undefined;
  const fleets: Fleet[] = [];
  const stopFleets = async () => {
    for (const f of fleets.splice(0)) f.stop();
  };
  const unregister = onCleanup('cluster-drain fleets', stopFleets, () => void stopFleets());
  const fleetFor = (creds: { machineId: string; key: string }[], nodes: { url: string }[]) =>
    nodes.map((node, n) =>
      createFleet({
        url: node.url,
        machines: creds
          .filter((_, i) => i % NODES === n)
          .map((c) => ({ machineId: c.machineId, key: c.key })),
        heartbeatMs: 30_000,
        dispenseDelayMs: DISPENSE_MS,
        // Everyone at once: the storm.
        connectConcurrency: machinesCount,
        // A machine the server keeps refusing would otherwise be retried without end.
        stallTimeoutMs: 60_000,
        progress: null,
      }),
    );
  try {
    cluster = await startCluster({
      nodes: NODES,
      label: 'drain',
      env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '90000' },
    });
    const nodes = cluster.nodes;
    console.log(`  schema ${cluster.schema}; nodes on ${nodes.map((n) => n.port).join(', ')}`);
    const creds = await insertMachines(cluster, machinesCount, `CR${runTag()}`);

    // Baseline: the same storm with nothing queued.
    const empty = fleetFor(creds, nodes);
    fleets.push(...empty);
    const loadBase = loadAvg();
    const b0 = performance.now();
    await Promise.all(empty.map((f) => f.start()));
    const emptyStormMs = performance.now() - b0;
    console.log(
      `  baseline storm (empty queues): ${machinesCount} machines connected in ${ms(emptyStormMs)} (load avg ${loadBase})`,
    );
    await stopFleets();
    await sleep(3_000); // the servers see the disconnects and mark the machines offline

    // Queue the orders while every machine is offline: each process gets a third of the machines.
    console.log(
      `  queuing ${ordersCount} paid orders through webhooks on ${NODES} processes (autocannon, 10 connections each)…`,
    );
    const q0 = performance.now();
    const loads = await Promise.all(
      nodes.map((node, n) => {
        const qr = creds.filter((_, i) => i % NODES === n).map((c) => c.qrCodeId);
        return runWebhookLoad({
          url: node.url,
          qrCodeIds: qr,
          secret: WEBHOOK_SECRET,
          connections: 10,
          amount: qr.length * perMachine,
        });
      }),
    );
    const queueSec = (performance.now() - q0) / 1000;
    const created = new Set(loads.flatMap((l) => [...l.created]));
    const badAnswers = loads.reduce((a, l) => a + l.non2xx + l.errors + l.timeouts + l.unexpected.size, 0);
    const before = await readClusterOrders(cluster);
    console.log(
      `  ${created.size} orders queued in ${fmt(queueSec, 1)} s (${int(created.size / queueSec)}/s); in DB ${before.count} ${JSON.stringify(before.byStatus)}; bad answers ${badAnswers}`,
    );

    // The storm with work: fresh simulated machines (empty `dispensed` lists), all at once.
    const drainFleets = fleetFor(creds, nodes);
    fleets.push(...drainFleets);
    const machines = drainFleets.flatMap((f) => f.machines);
    const firstSeen = new Map<string, number>();
    const arrivals: number[] = [];
    let repeats = 0;
    let disconnects = 0;
    const lastPerMachine = new Map<string, number>();
    const t0 = performance.now();
    for (const m of machines) {
      m.on('dispense', ({ command }) => {
        const t = performance.now() - t0;
        if (!firstSeen.has(command.orderId)) firstSeen.set(command.orderId, t);
        arrivals.push(t);
        lastPerMachine.set(m.machineId, t);
      });
      m.on('command', ({ handling }) => {
        if (handling !== 'dispense') repeats += 1;
      });
      m.on('disconnect', () => (disconnects += 1));
    }
    const loadDrain = loadAvg();
    let connectedMs = Number.NaN;
    const connecting = Promise.all(drainFleets.map((f) => f.start())).then(
      () => (connectedMs = performance.now() - t0),
    );
    const dispensed = () => machines.reduce((a, m) => a + m.dispensed.length, 0);
    let last = -1;
    let lastChange = Date.now();
    const capMs = options.quick ? 180_000 : 600_000;
    while (dispensed() < before.count) {
      const d = dispensed();
      if (d !== last) {
        last = d;
        lastChange = Date.now();
      }
      if (Date.now() - lastChange > 30_000 || performance.now() - t0 > capMs) break;
      await sleep(50);
    }
    const drainMs = performance.now() - t0;
    await connecting.catch((err: unknown) => console.log(`  connecting failed: ${(err as Error).message}`));
    await sleep(2_000); // results recorded; anything dispensed twice would show up now
    const total = dispensed();
    await stopFleets();
    await sleep(1_000);
    const after = await readClusterOrders(cluster);
    const warnings = nodes.flatMap((n) => n.warnings);

    let duplicateMachines = 0;
    const allOrderIds = new Map<string, number>();
    for (const m of machines) {
      const ids = new Set(m.dispensed.map((d) => d.orderId));
      const cmds = new Set(m.dispensed.map((d) => d.commandId));
      if (ids.size !== m.dispensed.length || cmds.size !== m.dispensed.length) duplicateMachines += 1;
      for (const d of m.dispensed) allOrderIds.set(d.orderId, (allOrderIds.get(d.orderId) ?? 0) + 1);
    }
    const twice = [...allOrderIds.values()].filter((n) => n > 1).length;
    const notInDb = [...allOrderIds.keys()].filter((id) => !after.orderIds.has(id)).length;
    const neverDispensed = [...after.orderIds].filter((id) => !allOrderIds.has(id)).length;
    const perMachineDone = summarize([...lastPerMachine.values()]);
    const firstDispense = Math.min(...arrivals);
    printTable(
      `Reconnect storm — ${machinesCount} machines reconnect at once to ${NODES} processes with ${before.count} orders queued (load avg at start ${loadDrain})`,
      [
        'run',
        'machines',
        'orders',
        'all connected',
        'first dispense',
        'last dispense (drained)',
        'orders/s',
        'machine done p50',
        'machine done p99',
      ],
      [
        [
          'storm with 10 queued orders per machine',
          int(machinesCount),
          int(total),
          ms(connectedMs),
          ms(firstDispense),
          ms(drainMs),
          int(total / (drainMs / 1000)),
          ms(perMachineDone.p50),
          ms(perMachineDone.p99),
        ],
        ['baseline: same storm, empty queues', int(machinesCount), '0', ms(emptyStormMs), '', '', '', '', ''],
        [
          'baseline: serial lower bound (10 × 5 ms dispense)',
          '',
          '',
          '',
          '',
          ms(perMachine * DISPENSE_MS),
          '',
          '',
          '',
        ],
      ],
    );
    const checks = [
      `orders in DB ${after.count}, by status before ${JSON.stringify(before.byStatus)}, after ${JSON.stringify(after.byStatus)}`,
      `dispensed (simulator records) ${total}; orders dispensed twice ${twice}; machines with a duplicate order or command id ${duplicateMachines}; dispenses for orders not in DB ${notInDb}; orders never dispensed ${neverDispensed}`,
      `re-sent commands seen by machines (de-duplicated by commandId) ${repeats}; disconnects ${disconnects}; bad webhook answers while queuing ${badAnswers}`,
    ];
    if (warnings.length)
      checks.push(
        `servers printed ${warnings.length} warning/error lines, first: ${warnings[0]!.slice(0, 300)}`,
      );
    for (const c of checks) console.log(`  ${c}`);
    const ok =
      total === after.count &&
      twice === 0 &&
      duplicateMachines === 0 &&
      notInDb === 0 &&
      neverDispensed === 0 &&
      badAnswers === 0 &&
      after.count === ordersCount;
    console.log(
      ok ? 'verified: every queued order dispensed exactly once' : 'MISMATCH: see the checks above',
    );
    verdict(
      `reconnect storm of ${machinesCount} machines drained, nothing dispensed twice`,
      ok,
      `${int(total)} orders in ${ms(drainMs)} (load avg ${loadDrain})`,
    );
    return ok;
  } finally {
    await unregister();
    await cluster?.stopNodes();
    await cluster?.drop();
  }
}
