// Where a Razorpay webhook's database time goes, statement by statement: the real app in this
// process on a SQLite file, five machines with fixed-amount QR profiles, 50 connections posting
// signed qr_code.credited deliveries (autocannon, in this process too) for a few seconds, every
// better-sqlite3 statement timed. Prints each statement's count and time per webhook.
//
//   npx tsx bench/src/webhook-sql-timing.ts [seconds] [--wall] [--pragma NAME=VALUE]
//
// Statements are timed in process CPU time (--wall: wall time, which includes waiting for fsync).
// --pragma (repeatable) tries a SQLite setting first. This is how the statement journal's writes
// to a temporary file (fixed by temp_store=MEMORY) showed up: every insert cost 30–50 µs.
import { sql } from 'kysely';
import { buildApp } from '../../server/src/app.js';
import { loadConfig } from '../../server/src/platform/config.js';
import { ADMIN_TOKEN, BENCH_LIMITS_ENV, createMachines, WEBHOOK_SECRET } from './lib/kioskhub.js';
import { timeSqliteStatements } from './lib/sqlite-timing.js';
import { tempDir } from './lib/temp.js';
import { runWebhookLoad } from './lib/webhook-load.js';

const seconds = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 5);
const statements = timeSqliteStatements({ wall: process.argv.includes('--wall') });

const dir = tempDir('webhook-sql');
const config = loadConfig({
  DATA_DIR: dir.path,
  ADMIN_TOKEN,
  RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
  LOG_LEVEL: 'warn',
  NODE_ENV: 'production',
  ...BENCH_LIMITS_ENV,
  PORT: '0',
  HOST: '127.0.0.1',
});
const app = await buildApp(config, { quiet: true });
for (let i = 0; i < process.argv.length; i += 1)
  if (process.argv[i] === '--pragma') await sql.raw(`pragma ${process.argv[i + 1]!}`).execute(app.db);
try {
  const url = await app.listen();
  const qrCodeIds = (await createMachines(url, 5, { prefix: 'WH' })).map((m) => m.qrCodeId);
  // Warm-up: accounts created, statements prepared, JIT.
  await runWebhookLoad({ url, qrCodeIds, secret: WEBHOOK_SECRET, connections: 10, amount: 2_000 });
  statements.measure(true);
  const load = await runWebhookLoad({
    url,
    qrCodeIds,
    secret: WEBHOOK_SECRET,
    connections: 50,
    durationSec: seconds,
  });
  statements.measure(false);
  const n = load.ok2xx;
  console.log(
    `${n} webhooks in ${seconds} s (${Math.round(load.requestsPerSec)}/s, p99 ${load.p99} ms, load generator in this process); ` +
      `SQLite statements ${statements.totalPer(n).toFixed(1)} µs per webhook`,
  );
  statements.print(n, 3);
} finally {
  await app.close();
  await dir.remove();
}
