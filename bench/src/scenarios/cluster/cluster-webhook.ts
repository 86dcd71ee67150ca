// Scenario `cluster-webhook`: Razorpay webhook throughput and p99 on 1 and on 3 Kioskhub
// processes sharing one PostgreSQL schema and one Redis, against a bare Fastify route measured
// in the same run. autocannon runs in the bench process (50 connections in all; for 3 processes
// one autocannon per process in parallel, the connections split between them). Every request is
// a fresh signed qr_code.credited with a unique payment id. Each node runs with --cpu-prof; the
// profile of one node per run is summarized (top self-time functions), and the CPU time of the
// nodes, PostgreSQL, Redis and the load generator over the measured window is reported.
import { startChild, waitForHttp } from '../../lib/child.js';
import { printHeaderNote, verifyWebhookOrders } from '../../lib/cluster/report.js';
import {
  cpuByCommand,
  cpuDelta,
  monotonicUs,
  printProfile,
  profilesIn,
  summarizeProfile,
  systemCpu,
  type ProfileSummary,
} from '../../lib/cluster/cpu.js';
import { insertMachines, loadAvg, runTag, startCluster, type Cluster } from '../../lib/cluster/cluster.js';
import { WEBHOOK_SECRET } from '../../lib/kioskhub.js';
import { benchPath } from '../../lib/paths.js';
import { freePort } from '../../lib/ports.js';
import { cpuMs } from '../../lib/proc.js';
import { fmt, int, ms, printTable, ratio, verdict } from '../../lib/table.js';
import { runWebhookLoad, type WebhookLoadResult } from '../../lib/webhook-load.js';

const CONNECTIONS = 50;
const WARMUP = 500;

interface Run {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  bad: number;
  durationSec: number;
  /** CPU seconds over the measured window. */
  nodesCpu: number;
  pgCpu: number;
  redisCpu: number;
  benchCpu: number;
  boxBusyPct: number;
  load: string;
  checks: string[];
  verified: boolean;
  profile?: ProfileSummary;
}

function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

async function measureWindow<T>(
  pids: number[],
  work: () => Promise<T>,
): Promise<{
  result: T;
  nodesCpu: number;
  pgCpu: number;
  redisCpu: number;
  benchCpu: number;
  boxBusyPct: number;
}> {
  const nodes0 = pids.reduce((a, p) => a + cpuMs(p), 0);
  const comm0 = cpuByCommand();
  const sys0 = systemCpu();
  const bench0 = process.cpuUsage();
  const result = await work();
  const bench = process.cpuUsage(bench0);
  const sys1 = systemCpu();
  const comm = cpuDelta(comm0, cpuByCommand(), ['postgres', 'redis-server']);
  const nodesCpu = (pids.reduce((a, p) => a + cpuMs(p), 0) - nodes0) / 1000;
  return {
    result,
    nodesCpu,
    pgCpu: comm['postgres'] ?? 0,
    redisCpu: comm['redis-server'] ?? 0,
    benchCpu: (bench.user + bench.system) / 1e6,
    boxBusyPct: (100 * (sys1.busyMs - sys0.busyMs)) / Math.max(1, sys1.totalMs - sys0.totalMs),
  };
}

/** autocannon against each URL in parallel, connections split between them; results combined. */
async function loadAll(
  urls: string[],
  qrCodeIds: string[],
  options: { durationSec?: number; amount?: number },
): Promise<WebhookLoadResult & { perTarget: WebhookLoadResult[] }> {
  const conns = split(CONNECTIONS, urls.length);
  const amounts = options.amount ? split(options.amount, urls.length) : [];
  const perTarget = await Promise.all(
    urls.map((url, i) =>
      runWebhookLoad({
        url,
        qrCodeIds,
        secret: WEBHOOK_SECRET,
        connections: conns[i]!,
        ...(options.amount ? { amount: amounts[i]! } : { durationSec: options.durationSec ?? 10 }),
      }),
    ),
  );
  const merge = <K extends 'created' | 'unexpected' | 'sent'>(k: K) =>
    new Set(perTarget.flatMap((r) => [...r[k]]));
  const statusCodes: Record<string, number> = {};
  for (const r of perTarget)
    for (const [c, n] of Object.entries(r.statusCodes)) statusCodes[c] = (statusCodes[c] ?? 0) + n;
  return {
    requestsPerSec: perTarget.reduce((a, r) => a + r.requestsPerSec, 0),
    // Per-target histograms cannot be merged exactly: p50 is the mean of the targets', p99 the worst target's.
    p50: perTarget.reduce((a, r) => a + r.p50, 0) / perTarget.length,
    p99: Math.max(...perTarget.map((r) => r.p99)),
    ok2xx: perTarget.reduce((a, r) => a + r.ok2xx, 0),
    non2xx: perTarget.reduce((a, r) => a + r.non2xx, 0),
    errors: perTarget.reduce((a, r) => a + r.errors, 0),
    timeouts: perTarget.reduce((a, r) => a + r.timeouts, 0),
    durationSec: Math.max(...perTarget.map((r) => r.durationSec)),
    created: merge('created'),
    unexpected: merge('unexpected'),
    sent: merge('sent'),
    statusCodes,
    perTarget,
  };
}

async function bareRun(durationSec: number): Promise<Run> {
  console.log(
    '\n[cluster-webhook] baseline: bare Fastify route (same HMAC check and body parsing, no storage)…',
  );
  const port = await freePort();
  const child = startChild({
    name: 'bare-webhook',
    script: benchPath('baselines/bare-webhook.ts'),
    env: { PORT: String(port), WEBHOOK_SECRET },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(child, `${url}/healthz`);
    await runWebhookLoad({
      url,
      qrCodeIds: ['qr_bare'],
      secret: WEBHOOK_SECRET,
      connections: CONNECTIONS,
      amount: WARMUP,
    });
    const load = loadAvg();
    const w = await measureWindow([child.pid], () =>
      runWebhookLoad({
        url,
        qrCodeIds: ['qr_bare'],
        secret: WEBHOOK_SECRET,
        connections: CONNECTIONS,
        durationSec,
      }),
    );
    const r = w.result;
    return {
      label: 'bare Fastify route (1 process)',
      rps: r.requestsPerSec,
      p50: r.p50,
      p99: r.p99,
      ok: r.ok2xx,
      bad: r.non2xx + r.errors + r.timeouts,
      durationSec: r.durationSec,
      nodesCpu: w.nodesCpu,
      pgCpu: w.pgCpu,
      redisCpu: w.redisCpu,
      benchCpu: w.benchCpu,
      boxBusyPct: w.boxBusyPct,
      load,
      checks: [],
      verified: true,
    };
  } finally {
    await child.stop();
  }
}

async function clusterRun(nodes: number, durationSec: number): Promise<Run> {
  console.log(
    `\n[cluster-webhook] Kioskhub, ${nodes} process${nodes > 1 ? 'es' : ''} on PostgreSQL + Redis (--cpu-prof on each)…`,
  );
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster({ nodes, label: `kioskhub×${nodes}`, cpuProfile: true });
    console.log(`  schema ${cluster.schema}; nodes on ${cluster.nodes.map((n) => n.port).join(', ')}`);
    // Five machines with fixed-amount QR profiles, none connected: orders queue (webhook path only).
    const creds = await insertMachines(cluster, 5, `CW${runTag()}`);
    const qr = creds.map((c) => c.qrCodeId);
    const urls = cluster.nodes.map((n) => n.url);
    const warm = await loadAll(urls, qr, { amount: WARMUP });
    const load = loadAvg();
    const startUs = monotonicUs();
    const w = await measureWindow(
      cluster.nodes.map((n) => n.child.pid),
      () => loadAll(urls, qr, { durationSec }),
    );
    const endUs = monotonicUs();
    const r = w.result;
    if (nodes > 1)
      console.log(
        `  per process: ${r.perTarget.map((t, i) => `node${i + 1} ${int(t.requestsPerSec)} req/s p99 ${ms(t.p99)}`).join('; ')}`,
      );
    const warnings = cluster.nodes.flatMap((n) => n.warnings);
    await cluster.stopNodes();
    const verified = await verifyWebhookOrders(cluster, [warm, r], CONNECTIONS);
    const { checks } = verified;
    const failedAnswers = warm.non2xx + warm.errors + warm.timeouts + r.non2xx + r.errors + r.timeouts;
    if (failedAnswers > 0 || r.ok2xx === 0)
      checks.push(
        `FAILED: ${failedAnswers} non-2xx/errors/timeouts (status codes ${JSON.stringify(r.statusCodes)}), ${r.ok2xx} 2xx in the measured run`,
      );
    const ok = verified.ok && failedAnswers === 0 && r.ok2xx > 0;
    if (warnings.length)
      checks.push(
        `servers printed ${warnings.length} warning/error lines, first: ${warnings[0]!.slice(0, 300)}`,
      );
    const prof = profilesIn(cluster.cpuProfDir!).sort()[0];
    return {
      label: `Kioskhub, ${nodes} process${nodes > 1 ? 'es' : ''} (PostgreSQL + Redis)`,
      rps: r.requestsPerSec,
      p50: r.p50,
      p99: r.p99,
      ok: r.ok2xx,
      bad: r.non2xx + r.errors + r.timeouts,
      durationSec: r.durationSec,
      nodesCpu: w.nodesCpu,
      pgCpu: w.pgCpu,
      redisCpu: w.redisCpu,
      benchCpu: w.benchCpu,
      boxBusyPct: w.boxBusyPct,
      load,
      checks,
      verified: ok,
      ...(prof ? { profile: summarizeProfile(prof, 15, { startUs, endUs }) } : {}),
    };
  } finally {
    await cluster?.stopNodes();
    await cluster?.drop();
  }
}

export async function clusterWebhookScenario(options: { quick: boolean }): Promise<boolean> {
  const durationSec = options.quick ? 3 : 10;
  printHeaderNote(
    'cluster-webhook',
    `autocannon ${CONNECTIONS} connections, ${durationSec} s after ${WARMUP} warm-up requests; machines inserted directly into the schema (batches of 1,000, server's sha256 key hashing)`,
  );
  const bare = await bareRun(durationSec);
  const one = await clusterRun(1, durationSec);
  const three = await clusterRun(3, durationSec);
  const row = (r: Run) => [
    r.label,
    int(r.rps),
    ms(r.p50),
    ms(r.p99),
    int(r.ok),
    int(r.bad),
    ratio(r.rps, bare.rps),
    fmt(r.nodesCpu, 1),
    fmt(r.pgCpu, 1),
    fmt(r.redisCpu, 1),
    fmt(r.benchCpu, 1),
    `${fmt(r.boxBusyPct, 0)}%`,
    r.load,
  ];
  printTable(
    `Webhook throughput — ${CONNECTIONS} connections, ${durationSec} s, unique signed qr_code.credited per request (CPU columns: CPU seconds over the window)`,
    [
      'run',
      'req/s',
      'p50',
      'p99',
      '2xx',
      'non-2xx/err',
      'vs bare',
      'server CPU s',
      'postgres CPU s',
      'redis CPU s',
      'bench CPU s',
      'box busy',
      'load avg (1/5/15)',
    ],
    [row(bare), row(one), row(three)],
  );
  console.log(
    `  1 → 3 processes: throughput ${ratio(three.rps, one.rps)}, p99 ${ratio(three.p99, one.p99)} (2 cores shared by every process, PostgreSQL, Redis and autocannon: not linear here)`,
  );
  console.log("  3-process p50 is the mean of the per-process p50s, p99 the worst process's p99.");
  for (const r of [one, three]) {
    console.log(`  ${r.label}:`);
    for (const c of r.checks) console.log(`    ${c}`);
    console.log(
      `    ${r.verified ? 'verified: every request answered 2xx, every 2xx has its order, no order without a sent payment' : 'MISMATCH or failed requests: see the checks above'}`,
    );
  }
  for (const r of [one, three])
    if (r.profile)
      printProfile(
        `CPU profile — ${r.label}, node1, samples inside the measured load window only`,
        r.profile,
      );
  verdict(
    '1 and 3 processes: every webhook answered 2xx, no lost or invented orders',
    one.verified && three.verified,
    `${one.verified ? 'ok' : 'mismatch'} / ${three.verified ? 'ok' : 'mismatch'}`,
  );
  return one.verified && three.verified;
}
