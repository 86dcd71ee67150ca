// Standalone runner for the cluster scenarios until run.ts registers them:
//   node --import tsx bench/src/scenarios/cluster/main.ts cluster-webhook [--quick] [--machines N]
// (node --import tsx rather than the tsx CLI, which SIGKILLs a child that is slow to take Ctrl-C.)
// Prints the same header as run.ts and cleans up children, schemas and temp dirs at the end,
// on failure and on Ctrl-C.
import { cleanupAll, installSignalHandlers, wasInterrupted } from '../../lib/cleanup.js';
import { clusterPgUrl, clusterRedisUrl } from '../../lib/cluster/cluster.js';
import { printHeader } from '../../lib/machine-info.js';
import { CLUSTER_SCENARIOS, type ClusterScenarioName } from './index.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const mIndex = argv.indexOf('--machines');
  const machines = mIndex >= 0 ? Number(argv[mIndex + 1]) : undefined;
  const names = argv.filter((a) => a in CLUSTER_SCENARIOS) as ClusterScenarioName[];
  if (names.length === 0 || (machines !== undefined && !(Number.isInteger(machines) && machines > 0))) {
    console.error(`usage: node --import tsx bench/src/scenarios/cluster/main.ts ${Object.keys(CLUSTER_SCENARIOS).join('|')} [--quick] [--machines N]`);
    process.exit(2);
  }
  installSignalHandlers();
  printHeader([`PostgreSQL (${new URL(clusterPgUrl()).host}) + Redis (${new URL(clusterRedisUrl()).host})`], quick);
  const failed: string[] = [];
  for (const name of names) {
    console.log(`\n=== ${name} ${'='.repeat(60 - name.length)}`);
    const started = Date.now();
    try {
      if (!(await CLUSTER_SCENARIOS[name]({ quick, ...(machines ? { machines } : {}) }))) failed.push(name);
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

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanupAll();
    // lib/open-loop.ts leaves its drain timer (up to drainTimeoutMs) running; do not wait for it.
    process.exit();
  });
