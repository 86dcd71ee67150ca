// `npm run bench [-- webhook|dispatch|memory|cash|water|mqtt|cafe|all|goals] [--quick]`: runs the scenarios and
// prints each one's table with its same-run baseline, then every target of the run and the
// performance goals (lib/goals.ts). Never part of `npm test`. Runs as a worker
// behind a thin launcher (lib/launcher.ts) so Ctrl-C always cleans up.
import { fileURLToPath } from 'node:url';
import { cleanupAll, installSignalHandlers, wasInterrupted } from './lib/cleanup.js';
import { runAsWorker } from './lib/launcher.js';
import { answers, printRunSummary } from './lib/goals.js';
import { printHeader } from './lib/machine-info.js';
import { pgUrlFromEnv } from './lib/kioskhub.js';
import { cafeScenario } from './scenarios/cafe.js';
import { cashScenario } from './scenarios/cash.js';
import { clusterPgUrl, clusterRedisUrl } from './lib/cluster/cluster.js';
import { CLUSTER_SCENARIOS } from './scenarios/cluster/index.js';
import { dispatchScenario } from './scenarios/dispatch.js';
import { memoryScenario } from './scenarios/memory.js';
import { mqttScenario } from './scenarios/mqtt.js';
import { waterScenario } from './scenarios/water.js';
import { webhookScenario } from './scenarios/webhook.js';

const SCENARIOS = {
  webhook: webhookScenario,
  dispatch: dispatchScenario,
  memory: memoryScenario,
  cash: cashScenario,
  // Not part of `all` (seeding 1,000 argon2 PINs takes a while): `npm run bench -- water`.
  water: waterScenario,
  // Not part of `all` (10,000 machines on three transports): `npm run bench -- mqtt`.
  mqtt: mqttScenario,
  // Not part of `all` (1,000 tables to set up): `npm run bench -- cafe`.
  cafe: cafeScenario,
  // Several processes on PostgreSQL + Redis (bench/CLUSTER.md); not part of `all`.
  ...CLUSTER_SCENARIOS,
} as const;
type ScenarioName = keyof typeof SCENARIOS;

const USAGE = `Usage: npm run bench -- [scenario ...] [--quick] [--machines N]

Scenarios (default: webhook dispatch memory cash, then cluster-dispatch and cluster-machines on
one process when PostgreSQL and Redis answer):
  webhook            webhook throughput
  dispatch           webhook → machine:dispense latency
  memory             server RSS per connected machine
  cash               restaurant cash kiosks: insert → customer screen, paid → printed receipt
  water              water kiosk verifications and settlements (not part of all)
  mqtt               the same fleet on Socket.IO, embedded MQTT and Mosquitto (not part of all)
  cafe               cafe tables ordering and paying by card (not part of all)
  all                webhook dispatch memory cash
  goals              the performance goals only: webhook cluster-dispatch cluster-machines
  cluster-webhook, cluster-dispatch, cluster-machines, cluster-drain
                     several processes on PostgreSQL + Redis (bench/CLUSTER.md)

Options:
  --quick            short runs
  --machines N       connected machines for memory and mqtt, 1..30000
  -h, --help         this text

BENCH_DATABASE_URL (or TEST_DATABASE_URL) adds PostgreSQL runs; more in bench/README.md.`;

/** A mistake in the command line: the message and the usage on stderr, exit code 2. */
function usage(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/** The scenarios that need PostgreSQL and Redis; skipped with a notice in the default run. */
const NEEDS_SERVERS: readonly ScenarioName[] = ['cluster-dispatch', 'cluster-machines'];
const GOAL_SCENARIOS: readonly ScenarioName[] = ['webhook', 'cluster-dispatch', 'cluster-machines'];
const ALL: readonly ScenarioName[] = ['webhook', 'dispatch', 'memory', 'cash'];

interface Args {
  names: ScenarioName[];
  quick: boolean;
  machines?: number;
  /** The default run or `goals`: cluster-machines measures one process only. */
  goalRun: boolean;
}

function parseArgs(argv: string[]): Args {
  let quick = false;
  let machines: number | undefined;
  let goalRun = false;
  const names: ScenarioName[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === '--machines') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1 || n > 30_000) usage('--machines needs a whole number 1..30000');
      machines = n;
    } else if (arg === 'all') names.push(...ALL);
    else if (arg === 'goals') {
      names.push(...GOAL_SCENARIOS);
      goalRun = true;
    } else if (arg in SCENARIOS) names.push(arg as ScenarioName);
    else usage(`unknown argument "${arg}"`);
  }
  if (names.length === 0) {
    names.push(...ALL, ...NEEDS_SERVERS);
    goalRun = true;
  }
  return { names: [...new Set(names)], quick, goalRun, ...(machines ? { machines } : {}) };
}

/** In a goal run, the cluster scenarios are left out with a reason when their servers are down. */
async function missingServers(): Promise<string | undefined> {
  const pg = clusterPgUrl();
  const redis = clusterRedisUrl();
  const down = [
    ...((await answers(pg, 5432)) ? [] : [`PostgreSQL (${new URL(pg).host})`]),
    ...((await answers(redis, 6379)) ? [] : [`Redis (${new URL(redis).host})`]),
  ];
  return down.length ? `${down.join(' and ')} did not answer` : undefined;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  installSignalHandlers();
  const pg = pgUrlFromEnv();
  printHeader(['SQLite (embedded file)', ...(pg ? [`PostgreSQL (${new URL(pg).host})`] : [])], args.quick);
  const failed: string[] = [];
  const notRun = new Map<string, string>();
  if (!pg) notRun.set('3', 'not run: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL database');
  if (args.goalRun && args.names.some((n) => NEEDS_SERVERS.includes(n))) {
    const reason = await missingServers();
    if (reason) {
      console.log(`\nNOTICE: ${NEEDS_SERVERS.join(' and ')} skipped: ${reason} (bench/CLUSTER.md)`);
      args.names = args.names.filter((n) => !NEEDS_SERVERS.includes(n));
      for (const goal of ['4', '5']) notRun.set(goal, `not run: ${reason}`);
    }
  }
  for (const name of args.names) {
    console.log(`\n=== ${name} ${'='.repeat(60 - name.length)}`);
    const started = Date.now();
    try {
      const ok = await SCENARIOS[name]({
        quick: args.quick,
        ...(args.machines ? { machines: args.machines } : {}),
        ...(args.goalRun ? { oneProcessOnly: true } : {}),
      });
      if (!ok) failed.push(name);
    } catch (err) {
      if (wasInterrupted()) return;
      console.error(`[${name}] failed: ${(err as Error).stack ?? String(err)}`);
      failed.push(name);
    } finally {
      await cleanupAll();
    }
    console.log(`[${name}] took ${Math.round((Date.now() - started) / 1000)} s`);
  }
  printRunSummary(notRun, args.quick);
  if (failed.length) {
    console.error(`\nscenarios with failed checks: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

runAsWorker(fileURLToPath(import.meta.url), main);
