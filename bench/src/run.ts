// `npm run bench [-- webhook|dispatch|memory|cash|water|mqtt|cafe|all] [--quick]`: runs the scenarios and prints
// each one's table with its same-run baseline. Never part of `npm test`. Runs as a worker
// behind a thin launcher (lib/launcher.ts) so Ctrl-C always cleans up.
import { fileURLToPath } from 'node:url';
import { cleanupAll, installSignalHandlers, wasInterrupted } from './lib/cleanup.js';
import { runAsWorker } from './lib/launcher.js';
import { printHeader } from './lib/machine-info.js';
import { pgUrlFromEnv } from './lib/kioskhub.js';
import { cafeScenario } from './scenarios/cafe.js';
import { cashScenario } from './scenarios/cash.js';
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

Scenarios (default: webhook dispatch memory cash):
  webhook            webhook throughput
  dispatch           webhook → machine:dispense latency
  memory             server RSS per connected machine
  cash               restaurant cash kiosks: insert → customer screen, paid → printed receipt
  water              water kiosk verifications and settlements (not part of all)
  mqtt               the same fleet on Socket.IO, embedded MQTT and Mosquitto (not part of all)
  cafe               cafe tables ordering and paying by card (not part of all)
  all                webhook dispatch memory cash
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

function parseArgs(argv: string[]): { names: ScenarioName[]; quick: boolean; machines?: number } {
  let quick = false;
  let machines: number | undefined;
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
    } else if (arg === 'all') names.push('webhook', 'dispatch', 'memory', 'cash');
    else if (arg in SCENARIOS) names.push(arg as ScenarioName);
    else usage(`unknown argument "${arg}"`);
  }
  return {
    names: names.length ? [...new Set(names)] : ['webhook', 'dispatch', 'memory', 'cash'],
    quick,
    ...(machines ? { machines } : {}),
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  installSignalHandlers();
  const pg = pgUrlFromEnv();
  printHeader(['SQLite (embedded file)', ...(pg ? [`PostgreSQL (${new URL(pg).host})`] : [])], args.quick);
  const failed: string[] = [];
  for (const name of args.names) {
    console.log(`\n=== ${name} ${'='.repeat(60 - name.length)}`);
    const started = Date.now();
    try {
      const ok = await SCENARIOS[name]({
        quick: args.quick,
        ...(args.machines ? { machines: args.machines } : {}),
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
  if (failed.length) {
    console.error(`\nscenarios with failed checks: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

runAsWorker(fileURLToPath(import.meta.url), main);
