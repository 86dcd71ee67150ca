// Where the water path's database time goes, statement by statement: the real app in this
// process on a SQLite file (200 kiosks, 500 customers with sealed PINs on a subscription), 100
// verify → settle loops in flight over HTTP for a few seconds, every better-sqlite3 statement
// timed. Prints each statement's count per verify+settle pair and its time per pair.
//
//   npx tsx bench/src/water-sql-timing.ts [seconds] [--inject] [--no-sql-timing] [--wall] [--cpu-prof FILE]
//
// Statements are timed in process CPU time (--wall: wall time, which includes waiting for fsync).
//
// --cpu-prof writes a V8 CPU profile of the measured seconds only (read it with profile-summary.ts).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { sql } from 'kysely';
import { buildApp } from '../../server/src/app.js';
import { loadConfig } from '../../server/src/platform/config.js';
import { seedWaterFleet } from './scenarios/water.js';
import { BENCH_LIMITS_ENV } from './lib/kioskhub.js';
import { tempDir } from './lib/temp.js';
import { timeSqliteStatements } from './lib/sqlite-timing.js';

const seconds = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 4);
const KIOSKS = 200;
const CUSTOMERS = 500;
const CONCURRENCY = 100;

const statements = timeSqliteStatements({ wall: process.argv.includes('--wall') });

const dir = tempDir('water-sql');
const config = loadConfig({
  DATA_DIR: dir.path,
  PIN_SECRET: 'bench-pin-secret-0123456789abcdef0123456789',
  ADMIN_TOKEN: 'bench-admin-token-0123456789',
  LOG_LEVEL: 'warn',
  ...BENCH_LIMITS_ENV,
  PORT: '0',
  HOST: '127.0.0.1',
});
const app = await buildApp(config, { quiet: true });
// --pragma NAME=VALUE, --sql STATEMENT (repeatable): try a SQLite setting or a schema change first.
for (let i = 0; i < process.argv.length; i += 1) {
  if (process.argv[i] === '--pragma') await sql.raw(`pragma ${process.argv[i + 1]!}`).execute(app.db);
  if (process.argv[i] === '--sql') await sql.raw(process.argv[i + 1]!).execute(app.db);
}
try {
  const { kiosks, customers: people } = await seedWaterFleet(app, {
    kiosks: KIOSKS,
    customers: CUSTOMERS,
    legacy: 0,
  });
  // --inject: requests through Fastify's inject (no sockets), so the process CPU is the server's.
  const inject = process.argv.includes('--inject');
  const url = inject ? '' : await app.listen();
  let stamp = Date.now();
  const post = async (path: string, key: string, body: unknown) => {
    if (inject) {
      const res = await app.app.inject({
        method: 'POST',
        url: path,
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
      });
      return { status: res.statusCode, body: res.json() as Record<string, unknown> };
    }
    const res = await fetch(url + path, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const loop = async (ms: number) => {
    let pairs = 0;
    const until = performance.now() + ms;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, w) => {
        let n = w;
        while (performance.now() < until) {
          n += CONCURRENCY;
          const kiosk = kiosks[(n * 31) % kiosks.length]!;
          const who = people[(n * 17) % people.length]!;
          const v = await post('/dispense-verification', kiosk.key, {
            kiosk_id: kiosk.id,
            user_id: who.phone,
            pin: who.pin,
            volume_ml: 5000,
            timestamp: (stamp += 1),
          });
          if (v.status !== 200 || !v.body['approved']) throw new Error(JSON.stringify(v.body));
          const s = await post('/v1/water/dispenses', kiosk.key, {
            authorizationId: v.body['authorization_id'],
            dispensedMl: 4500,
            kioskTxnId: `t-${kiosk.id}-${stamp}-${n}`,
          });
          if (s.status !== 200) throw new Error(JSON.stringify(s.body));
          pairs += 1;
        }
      }),
    );
    return pairs;
  };
  await loop(1500); // warm-up: accounts created, statements prepared, JIT
  const timed = process.argv.includes('--no-sql-timing') ? false : true;
  statements.measure(timed);
  const profFile = process.argv[process.argv.indexOf('--cpu-prof') + 1];
  const session = process.argv.includes('--cpu-prof') ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const cpu0 = process.cpuUsage();
  const pairs = await loop(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(profFile!, JSON.stringify(profile));
    session.disconnect();
  }
  statements.measure(false);
  console.log(
    `${pairs} pairs in ${seconds} s; process CPU (${inject ? 'server, inject' : 'server + client'}) ${((cpu.user + cpu.system) / 1000 / pairs).toFixed(3)} ms per pair; ` +
      `SQLite statements ${statements.totalPer(pairs).toFixed(1)} µs per pair`,
  );
  statements.print(pairs);
} finally {
  await app.close();
  await dir.remove();
}
