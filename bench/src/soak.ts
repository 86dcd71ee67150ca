// `npm run soak [-- --minutes 30]` (`--minutes 2` for a smoke run): the whole product at once on
// one server on its embedded database: vending webhooks with repeats to machines that drop their
// connection, restaurant cash kiosks with repeated bill reports, receipt printers that jam and
// reboot, water kiosks verifying and settling, cafe tables paying by bank transfer, with one
// `kill -9` and restart half-way.
// Afterwards an exactly-once audit of the database, and RSS, heap, event-loop delay and open
// handles sampled every 10 s and checked to be flat after warm-up. Writes an HTML report and the
// raw samples next to the run (bench/reports/soak-<time>/). Exit code 1 when a check fails.
// `npm run soak -- --fuzz 100000` is the long fuzz mode instead (soak/fuzz.ts).
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { userDirectory } from '../../server/src/cli/cli-kit.js';
import { openDatabase } from '../../server/src/platform/db/database.js';
import { installSignalHandlers } from './lib/cleanup.js';
import { runAsWorker } from './lib/launcher.js';
import { cpuModel } from './lib/machine-info.js';
import { repoPath } from './lib/paths.js';
import { printTable } from './lib/table.js';
import { tempDir } from './lib/temp.js';
import { sleep } from './lib/wait.js';
import { auditDatabase } from './soak/audit.js';
import { BANK_SECRET, CAFE_SITE, cafeFlow } from './soak/cafe.js';
import { CASH_SITE, cashFlow } from './soak/cash.js';
import { callStats } from './soak/client.js';
import type { AuditLine, Flow, FlowContext } from './soak/flow.js';
import { runFuzz } from './soak/fuzz.js';
import { renderReport } from './soak/report.js';
import { FLATNESS_METHOD, checkFlat, flatVerdict, startSampler, warmupEnds } from './soak/sampler.js';
import { startSoakServer } from './soak/server.js';
import { printFlow } from './soak/print.js';
import { vendingFlow } from './soak/vending.js';
import { waterFlow } from './soak/water.js';
import { loadavg } from 'node:os';

const USAGE = `Usage: npm run soak -- [--minutes N] [--out DIR]
       npm run soak -- --fuzz N

  --minutes N   how long the whole product runs at once, 1..1440 (default 30; 2 for a smoke run)
  --out DIR     where the HTML report and the raw samples go, relative to where you ran npm
                (default bench/reports/soak-<time> in the repository)
  --fuzz N      the long fuzz mode instead: N generated inputs over every route and socket
                event, 1..10000000; fails on any 5xx
  -h, --help    this text

Exit code 1 when a check fails; more in bench/README.md (Soak).`;

/** A mistake in the command line: the message and the usage on stderr, exit code 2. */
function usage(message: string): never {
  console.error(`soak: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv: string[]): { minutes: number; out?: string; fuzz?: number } {
  let minutes = 30;
  let out: string | undefined;
  let fuzz: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--minutes') {
      minutes = Number(argv[++i]);
      if (!Number.isFinite(minutes) || minutes < 1 || minutes > 1_440)
        usage('--minutes needs a number 1..1440');
    } else if (arg === '--fuzz') {
      fuzz = Number(argv[++i]);
      if (!Number.isInteger(fuzz) || fuzz < 1 || fuzz > 10_000_000)
        usage('--fuzz needs a whole number 1..10000000');
    } else if (arg === '--out') out = argv[++i] ?? usage('--out needs a folder');
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else usage(`unknown argument "${arg}"`);
  }
  return { minutes, ...(out ? { out } : {}), ...(fuzz ? { fuzz } : {}) };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  installSignalHandlers();
  if (args.fuzz) {
    if (!(await runFuzz(args.fuzz))) process.exitCode = 1;
    return;
  }
  const startedAt = new Date().toISOString();
  // A folder given is taken from where npm was run (npm runs this in the repository root).
  const out = args.out
    ? resolve(userDirectory(), args.out)
    : repoPath('bench/reports', `soak-${startedAt.replace(/[:.]/g, '-')}`);
  mkdirSync(out, { recursive: true });
  const totalMs = args.minutes * 60_000;
  console.log(
    `soak: ${args.minutes} min on ${cpuModel()}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );

  const data = tempDir('soak');
  // Short enough that leases lapsed by a rebooting printer and holds of customers who walked
  // away come back within the run; long enough that no healthy printer or kiosk meets them.
  const leaseMs = 8_000;
  const holdMs = 20_000;
  const server = await startSoakServer(data.path, {
    BANK_WEBHOOK_SECRET: BANK_SECRET,
    PRINT_JOB_LEASE_MS: String(leaseMs),
    WATER_HOLD_MS: String(holdMs),
  });
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  let isStopped = false;
  void stopped.then(() => (isStopped = true));
  const problems: string[] = [];
  const ctx: FlowContext = {
    url: server.url,
    stopped,
    isStopped: () => isStopped,
    log: (line) => {
      if (problems.length < 100) problems.push(line);
      console.log(`  ${line}`);
    },
  };
  const flows: Flow[] = [
    vendingFlow({ machines: 6, gapMs: 150, dropEveryMs: 5_000 }),
    cashFlow({ kiosks: 6, gapMs: 400 }),
    cafeFlow({ tables: 4, gapMs: 600 }),
    waterFlow({ kiosks: 3, customers: 12, gapMs: 400, holdMs }),
    printFlow({ sites: [CASH_SITE, CAFE_SITE], leaseMs }),
  ];
  for (const f of flows) {
    console.log(`setting up: ${f.name}`);
    await f.setup(ctx);
  }
  const sampler = startSampler({
    url: server.url,
    everyMs: 10_000,
    counts: () => Object.fromEntries(flows.map((f) => [f.name, f.count()])),
  });
  const t0 = Date.now();
  const restarts: number[] = [];
  const progress = setInterval(() => {
    const s = sampler.samples.at(-1);
    console.log(
      `  ${Math.round((Date.now() - t0) / 1000)} s: ${flows.map((f) => `${f.name} ${f.count()}`).join(', ')}` +
        (s
          ? ` · RSS ${s.rssMb.toFixed(0)} MB, heap ${s.heapMb.toFixed(0)} MB, loop p99 ${s.loopP99Ms.toFixed(1)} ms, handles ${s.handles}`
          : ''),
    );
  }, 30_000);
  const running = Promise.all(
    flows.map((f) => f.run(ctx).catch((err: Error) => ctx.log(`${f.name} stopped: ${err.message}`))),
  );
  await sleep(totalMs / 2);
  console.log('kill -9 of the server, then a restart on the same data…');
  restarts.push(Math.round((Date.now() - t0) / 1000));
  const { downMs } = await server.killAndRestart();
  console.log(`  back after ${downMs} ms`);
  await sleep(totalMs / 2);
  stop();
  await running;
  clearInterval(progress);
  // Resources are judged under traffic only: the quiet drain would flatter the trend.
  sampler.stop();
  console.log('traffic stopped; draining in-flight dispenses and prints…');
  for (const f of flows) await f.drain(ctx);
  for (const f of flows) await f.close();
  await server.stop();

  const opened = await openDatabase({ kind: 'sqlite-file', file: `${data.path}/kioskhub.db` });
  const audit: AuditLine[] = [];
  try {
    for (const f of flows) audit.push(...(await f.audit(opened.db)));
    audit.push(...(await auditDatabase(opened.db)));
  } finally {
    await opened.close();
  }
  const errors = server.warnings.filter((l) => /"level":(50|60)/.test(l));
  audit.push({
    check: 'no 5xx answer except 503 while restarting',
    ok: callStats.serverErrors.length === 0,
    detail: `${callStats.requests} requests, ${callStats.retries} retried${callStats.serverErrors.length ? `; ${callStats.serverErrors.slice(0, 3).join(' | ')}` : ''}`,
  });
  audit.push({
    check: 'traffic completed without a flow error',
    ok: problems.length === 0,
    detail: problems.length ? problems.slice(0, 3).join(' | ') : 'none',
  });
  const flat = checkFlat(sampler.samples, 120);
  const warmups = [...warmupEnds(sampler.samples, 120).values()];
  const totals = Object.fromEntries(flows.map((f) => [f.name, f.count()]));
  const extra = [
    `server down for ${downMs} ms across the kill -9; ${server.warnings.length} warn-level and ${errors.length} error-level log lines`,
    `load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  ];
  writeFileSync(
    `${out}/samples.json`,
    JSON.stringify(
      {
        startedAt,
        minutes: args.minutes,
        samples: sampler.samples,
        audit,
        flat,
        flatness: flatVerdict(flat),
      },
      null,
      2,
    ),
  );
  writeFileSync(
    `${out}/report.html`,
    renderReport({
      minutes: args.minutes,
      startedAt,
      samples: sampler.samples,
      restarts,
      warmups,
      flat,
      audit,
      totals,
      extra,
    }),
  );
  await data.remove();

  printTable(
    'Exactly-once audit',
    ['check', 'result', 'detail'],
    audit.map((a) => [a.check, a.ok ? 'PASS' : 'FAIL', a.detail]),
  );
  printTable(
    'Flat after warm-up',
    ['series', 'result', 'detail'],
    flat.map((f) => [f.series, flatVerdict([f]), f.detail]),
  );
  console.log(`flat after warm-up: ${flatVerdict(flat)}\n  (${FLATNESS_METHOD})`);
  for (const e of extra) console.log(e);
  console.log(`report: ${out}/report.html`);
  console.log(`exactly-once audit: ${audit.every((a) => a.ok) ? 'PASS' : 'FAIL'}`);
  if (audit.some((a) => !a.ok) || flatVerdict(flat) === 'FAIL') process.exitCode = 1;
}

runAsWorker(fileURLToPath(import.meta.url), main);
