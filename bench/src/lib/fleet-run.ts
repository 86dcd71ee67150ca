// One transport's run for the `mqtt` scenario: with a Kioskhub child already started, reads its
// RSS with no machines, connects N light machines (Socket.IO v2 or MQTT) from client processes,
// reads RSS again, then posts signed payments open-loop, round-robin over the machines, and
// times each one from sending the webhook to its command arriving at the machine
// (`machine:dispense`, or a message on `down/cmd/<commandId>`). Send and arrival times are wall
// clock with sub-millisecond resolution (performance.timeOrigin + now()) in different processes.
import http from 'node:http';
import type { Child } from './child.js';
import { AMOUNT_PAISE, WEBHOOK_SECRET, type MachineCredentials } from './kioskhub.js';
import type { Arrival, LightTransport } from './light-machine.js';
import { connectMachineClients } from './machine-clients.js';
import { openLoop, postJson, type OpenLoopResult } from './open-loop.js';
import { cpuMs, rssKb, settledRssKb, type MemoryReading } from './proc.js';
import { summarize, type Summary } from './stats.js';
import { int } from './table.js';
import { sleep } from './wait.js';
import { signedDelivery } from './webhook-body.js';

export interface FleetRunOptions {
  label: string;
  transport: LightTransport;
  /** Where machines connect: the server (Socket.IO) or the broker (MQTT). */
  connectUrl: string;
  serverUrl: string;
  server: Child;
  memoryFile: string;
  /** A broker in its own process (Mosquitto): its RSS is read too. */
  brokerPid?: number;
  machines: MachineCredentials[];
  rate: number;
  seconds: number;
}

export interface FleetRun {
  label: string;
  connected: number;
  failed: number;
  errors: string[];
  connectSeconds: number;
  rss0: MemoryReading;
  rssN: MemoryReading;
  brokerRss0?: number;
  brokerRssN?: number;
  latency: Summary;
  http: Summary;
  loop: OpenLoopResult;
  /** order id → what the machines saw; orders paid (2xx with an orderId) in `paid`. */
  paid: string[];
  arrivals: Arrival[];
  failedRequests: number;
  serverCpuPerOrderMs: number;
  brokerCpuPerOrderMs?: number;
  disconnects: number;
  drainSeconds: number;
  drained: boolean;
}

const wallClock = () => performance.timeOrigin + performance.now();
const IDLE_MS = 12_000;

export async function runFleet(o: FleetRunOptions): Promise<FleetRun> {
  const n = o.machines.length;
  // Idle first, so V8 hands back the slack of machine creation / start-up (see memory.ts).
  await sleep(IDLE_MS);
  const rss0 = await settledRssKb(o.server.pid, { gc: true, memoryFile: o.memoryFile });
  const brokerRss0 = o.brokerPid ? rssKb(o.brokerPid) : undefined;
  console.log(`  RSS with 0 machines: ${int(rss0.median / 1024)} MB, heap ${int(rss0.heapMedian / 1024)} MB`);
  const fleet = await connectMachineClients(
    o.machines.map((m) => ({ url: o.connectUrl, machineId: m.machineId, key: m.key })),
    {
      perWorker: 2_500,
      concurrencyPerWorker: 50,
      heartbeatMs: 0,
      label: `${o.label} connections`,
      transport: o.transport,
      respond: { dispenseDelayMs: 5 },
    },
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  try {
    if (fleet.failed > 0)
      console.log(`  ${fleet.failed} connections failed, e.g. ${fleet.errors.join('; ')}`);
    await sleep(IDLE_MS);
    const rssN = await settledRssKb(o.server.pid, { gc: true, memoryFile: o.memoryFile });
    const brokerRssN = o.brokerPid ? rssKb(o.brokerPid) : undefined;
    console.log(
      `  RSS with ${int(fleet.connected)} machines: ${int(rssN.median / 1024)} MB, heap ${int(rssN.heapMedian / 1024)} MB${brokerRssN ? `; Mosquitto ${int(brokerRss0! / 1024)} → ${int(brokerRssN / 1024)} MB` : ''}`,
    );

    const sends = new Map<string, { t0: number; tResponse: number; measured: boolean }>();
    let failedRequests = 0;
    let next = 0;
    const fire = (measured: boolean) => async () => {
      const machine = o.machines[next++ % n]!;
      const delivery = signedDelivery(machine.qrCodeId, AMOUNT_PAISE, WEBHOOK_SECRET);
      const t0 = wallClock();
      const res = await postJson(
        agent,
        o.serverUrl,
        '/webhooks/razorpay',
        delivery.body,
        delivery.headers,
      ).catch(() => ({ status: 0, body: '' }));
      const tResponse = wallClock();
      const orderId =
        res.status === 200 ? (JSON.parse(res.body) as { orderId?: string; duplicate?: boolean }) : undefined;
      if (!orderId?.orderId || orderId.duplicate) failedRequests += 1;
      else sends.set(orderId.orderId, { t0, tResponse, measured });
    };
    console.log(
      `  warm-up: 1 s at ${Math.ceil(o.rate / 2)} payments/s; load: ${o.rate}/s for ${o.seconds} s`,
    );
    await openLoop({ rate: Math.ceil(o.rate / 2), seconds: 1, fire: fire(false) });
    const cpu0 = cpuMs(o.server.pid);
    const brokerCpu0 = o.brokerPid ? cpuMs(o.brokerPid) : 0;
    const loop = await openLoop({
      rate: o.rate,
      seconds: o.seconds,
      fire: fire(true),
      drainTimeoutMs: 120_000,
    });

    // Collect what the machines saw until every paid order has arrived somewhere, giving up after
    // 20 s without progress (or 180 s in all): an overloaded server is slow, not stuck.
    let arrivals: Arrival[] = [];
    const started = Date.now();
    let done = false;
    let lastCount = -1;
    let lastChange = Date.now();
    for (;;) {
      arrivals = await fleet.arrivals();
      const arrivedOrders = new Set(arrivals.map((a) => a.orderId));
      done = [...sends.keys()].every((id) => arrivedOrders.has(id));
      if (arrivedOrders.size !== lastCount) {
        lastCount = arrivedOrders.size;
        lastChange = Date.now();
      }
      if (done || Date.now() - lastChange > 20_000 || Date.now() - started > 180_000) break;
      await sleep(1_000);
    }
    // The machines' results (5 ms after each arrival) reach the server.
    await sleep(2_000);
    arrivals = await fleet.arrivals();
    const measured = [...sends.values()].filter((s) => s.measured).length;
    const serverCpuPerOrderMs = (cpuMs(o.server.pid) - cpu0) / Math.max(1, measured);
    const brokerCpuPerOrderMs = o.brokerPid
      ? (cpuMs(o.brokerPid) - brokerCpu0) / Math.max(1, measured)
      : undefined;
    const firstAt = new Map<string, number>();
    for (const a of arrivals) firstAt.set(a.orderId, Math.min(a.firstAt, firstAt.get(a.orderId) ?? Infinity));
    const latencies: number[] = [];
    const httpTimes: number[] = [];
    for (const [orderId, s] of sends) {
      if (!s.measured) continue;
      httpTimes.push(s.tResponse - s.t0);
      const t = firstAt.get(orderId);
      if (t !== undefined) latencies.push(t - s.t0);
    }
    const closed = await fleet.close();
    return {
      label: o.label,
      connected: fleet.connected,
      failed: fleet.failed,
      errors: fleet.errors,
      connectSeconds: fleet.seconds,
      rss0,
      rssN,
      ...(brokerRss0 !== undefined ? { brokerRss0 } : {}),
      ...(brokerRssN !== undefined ? { brokerRssN } : {}),
      latency: summarize(latencies),
      http: summarize(httpTimes),
      loop,
      paid: [...sends.keys()],
      arrivals,
      failedRequests,
      serverCpuPerOrderMs,
      ...(brokerCpuPerOrderMs !== undefined ? { brokerCpuPerOrderMs } : {}),
      disconnects: closed.disconnects,
      drainSeconds: (Date.now() - started) / 1000,
      drained: done,
    };
  } catch (err) {
    await fleet.close();
    throw err;
  } finally {
    agent.destroy();
  }
}
