// Scenario `water`: 600 water kiosks and 1,000 PIN customers on the embedded SQLite file; 100
// verifications in flight at once (closed loop), each followed by its settlement, as
// `POST /dispense-verification` + `POST /v1/water/dispenses` from a random kiosk's key. PINs are
// sealed (checked in microseconds); 200 more customers keep PINs as argon2 hashes (set before
// seals), and their first verifications, 100 in flight, measure the one-time upgrade. Baseline in
// the same run: `GET /healthz` of the same server, same client, same concurrency.
import { loadavg } from 'node:os';
import argon2 from 'argon2';
import { buildApp, type KioskhubApp } from '../../../server/src/app.js';
import { loadConfig } from '../../../server/src/platform/config.js';
import { ADMIN_TOKEN, startKioskhub } from '../lib/kioskhub.js';
import { openLoop } from '../lib/open-loop.js';
import { mapLimit } from '../lib/pool.js';
import { cpuMs } from '../lib/proc.js';
import { summarize, type Summary } from '../lib/stats.js';
import { fmt, int, ms, printTable, ratio, verdict } from '../lib/table.js';
import { tempDir } from '../lib/temp.js';

const KIOSKS = 600;
const CUSTOMERS = 1000;
/** Customers whose PIN is still an argon2id hash, as every PIN was before seals. */
const LEGACY_CUSTOMERS = 200;
const CONCURRENCY = 100;
/** The paced run: each of the 600 kiosks asks about once every 6 s, each answer settled. */
const PACED_PER_SECOND = 100;
const PIN_SECRET = 'bench-pin-secret-0123456789abcdef0123456789';
const TENANT = 'default';

interface Person {
  phone: string;
  pin: string;
}
export interface Fleet {
  kiosks: { id: string; key: string }[];
  customers: Person[];
  legacy: Person[];
}

const phoneOf = (i: number) => `+2547${String(10_000_000 + i).padStart(8, '0')}`;
const pinOf = (i: number) => String(1000 + ((i * 7919) % 9000));
const load1 = () => loadavg()[0]!.toFixed(2);

/** Seeds kiosks and customers in-process into `dataDir`, before the server child opens it. */
async function seed(dataDir: string): Promise<Fleet> {
  const config = loadConfig({ DATA_DIR: dataDir, PIN_SECRET, ADMIN_TOKEN, LOG_LEVEL: 'warn' });
  const app = await buildApp(config, { quiet: true });
  try {
    return await seedWaterFleet(app, { kiosks: KIOSKS, customers: CUSTOMERS, legacy: LEGACY_CUSTOMERS });
  } finally {
    await app.close();
  }
}

/**
 * Water kiosks (`WK0001`…) and customers with a subscription for 30 days and PINs, through the
 * app's own services; the last `legacy` customers keep an argon2id hash as every PIN was before
 * seals (the app's PIN_SECRET must be `PIN_SECRET` here). Also used by `water-sql-timing.ts`.
 */
export async function seedWaterFleet(
  app: KioskhubApp,
  counts: { kiosks: number; customers: number; legacy: number },
): Promise<Fleet> {
  const { machines, customers } = app.services;
  const kiosks = await mapLimit(
    Array.from({ length: counts.kiosks }, (_, i) => `WK${String(i + 1).padStart(4, '0')}`),
    20,
    async (id) => ({
      id,
      key: (await machines.create({ id, tenantId: TENANT, name: `Bench ${id}`, kind: 'water' }, 'bench')).key,
    }),
  );
  const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const people = await mapLimit(
    Array.from({ length: counts.customers + counts.legacy }, (_, i) => i),
    4,
    async (i) => {
      const phone = phoneOf(i);
      const legacy = i >= counts.customers;
      // The hash the server wrote before seals (argon2id, 8 MiB, 2 passes, PIN_SECRET as secret).
      const legacyHash = legacy
        ? await argon2.hash(pinOf(i), {
            type: argon2.argon2id,
            memoryCost: 8192,
            timeCost: 2,
            parallelism: 1,
            secret: Buffer.from(PIN_SECRET),
          })
        : null;
      await app.db.transaction().execute(async (tx) => {
        const row = await customers.create({ tenantId: TENANT, phone, actor: 'bench' }, tx);
        if (!legacy) await customers.setPin(row, pinOf(i), 'bench', tx);
        await customers.repo.update(
          row.id,
          { subscription_expires_at: expiresAt, ...(legacyHash ? { pin_hash: legacyHash } : {}) },
          tx,
        );
      });
      return { phone, pin: pinOf(i) };
    },
  );
  return { kiosks, customers: people.slice(0, counts.customers), legacy: people.slice(counts.customers) };
}

async function post(
  url: string,
  path: string,
  key: string,
  body: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

interface RunResult {
  verify: Summary;
  settle: Summary;
  settlementsPerSecond: number;
  refused: number;
  errors: number;
  cpuMsPerPair: number;
}

let stamp = Date.now();

/** A verification of `volumeMl` for `who` at `kiosk`, timed into `times`. */
async function timedVerify(
  url: string,
  kiosk: Fleet['kiosks'][number],
  who: Person,
  volumeMl: number,
  times: number[],
) {
  const t0 = performance.now();
  const v = await post(url, '/dispense-verification', kiosk.key, {
    kiosk_id: kiosk.id,
    user_id: who.phone,
    pin: who.pin,
    volume_ml: volumeMl,
    timestamp: (stamp += 1),
  });
  times.push(performance.now() - t0);
  return v;
}

/** Request n's verification of 5 litres (kiosk and customer picked from n), timed into `times`. */
async function verifyOnce(url: string, fleet: Fleet, n: number, times: number[]) {
  const kiosk = fleet.kiosks[(n * 31) % fleet.kiosks.length]!;
  const who = fleet.customers[(n * 17) % fleet.customers.length]!;
  return { kiosk, v: await timedVerify(url, kiosk, who, 5000, times) };
}

/** CONCURRENCY workers, each verify → settle in a loop for `seconds`. */
async function load(url: string, fleet: Fleet, seconds: number, pid: number): Promise<RunResult> {
  const verify: number[] = [];
  const settle: number[] = [];
  let refused = 0;
  let errors = 0;
  let settled = 0;
  const cpu0 = cpuMs(pid);
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      let n = w;
      while (performance.now() < until) {
        n += CONCURRENCY;
        const { kiosk, v } = await verifyOnce(url, fleet, n, verify);
        if (v.status !== 200) {
          errors += 1;
          continue;
        }
        if (!v.body.approved) {
          refused += 1;
          continue;
        }
        const t1 = performance.now();
        const s = await post(url, '/v1/water/dispenses', kiosk.key, {
          authorizationId: v.body.authorization_id,
          dispensedMl: 4500,
          kioskTxnId: `bench-${kiosk.id}-${stamp}-${n}`,
          tap: 1 + (n % 4),
        });
        settle.push(performance.now() - t1);
        if (s.status === 200 && s.body.ok) settled += 1;
        else errors += 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return {
    verify: summarize(verify),
    settle: summarize(settle),
    settlementsPerSecond: settled / elapsed,
    refused,
    errors,
    cpuMsPerPair: settled ? (cpuMs(pid) - cpu0) / settled : Number.NaN,
  };
}

/** The same server's bare route under the same concurrency. */
async function baseline(
  url: string,
  seconds: number,
  pid: number,
): Promise<{ lat: Summary; rps: number; cpuMsPerRequest: number }> {
  const lat: number[] = [];
  const cpu0 = cpuMs(pid);
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        await fetch(`${url}/healthz`).then((r) => r.text());
        lat.push(performance.now() - t0);
      }
    }),
  );
  return {
    lat: summarize(lat),
    rps: lat.length / ((performance.now() - started) / 1000),
    cpuMsPerRequest: (cpuMs(pid) - cpu0) / lat.length,
  };
}

/** Open loop: verifications start on schedule whatever the server's speed, each then settled. */
async function paced(url: string, fleet: Fleet, seconds: number) {
  const verify: number[] = [];
  let errors = 0;
  let settled = 0;
  const run = await openLoop({
    rate: PACED_PER_SECOND,
    seconds,
    fire: async (n) => {
      const { kiosk, v } = await verifyOnce(url, fleet, n, verify);
      if (v.status !== 200 || !v.body.approved) {
        errors += 1;
        return;
      }
      const s = await post(url, '/v1/water/dispenses', kiosk.key, {
        authorizationId: v.body.authorization_id,
        dispensedMl: 4500,
        kioskTxnId: `paced-${kiosk.id}-${stamp}-${n}`,
      });
      if (s.status === 200 && s.body.ok) settled += 1;
      else errors += 1;
    },
  });
  return {
    verify: summarize(verify),
    errors,
    settlementsPerSecond: settled / run.seconds,
    maxLagMs: run.maxLagMs,
  };
}

/** Each legacy customer verified once, CONCURRENCY at a time: argon2 once, then sealed. */
async function upgradeLegacy(
  url: string,
  fleet: Fleet,
): Promise<{ lat: Summary; refused: number; errors: number }> {
  const lat: number[] = [];
  let refused = 0;
  let errors = 0;
  await mapLimit(fleet.legacy, CONCURRENCY, async (who, i) => {
    const kiosk = fleet.kiosks[(i * 31) % fleet.kiosks.length]!;
    const v = await timedVerify(url, kiosk, who, 1, lat);
    if (v.status !== 200) errors += 1;
    else if (!v.body.approved) refused += 1;
  });
  return { lat: summarize(lat), refused, errors };
}

export async function waterScenario(options: { quick: boolean }): Promise<boolean> {
  const seconds = options.quick ? 4 : 10;
  const dir = tempDir('water');
  try {
    console.log(
      `[water] seeding ${KIOSKS} water kiosks, ${CUSTOMERS} customers with sealed PINs and ${LEGACY_CUSTOMERS} with argon2 PINs…`,
    );
    const fleet = await seed(dir.path);
    const server = await startKioskhub({
      engine: 'sqlite',
      name: 'kioskhub (water)',
      env: { DATA_DIR: dir.path, PIN_SECRET },
    });
    const rows: (string | number)[][] = [];
    let ok = true;
    try {
      console.log(
        `[water] first use of ${LEGACY_CUSTOMERS} argon2 PINs, ${CONCURRENCY} in flight (load ${load1()})…`,
      );
      const up = await upgradeLegacy(server.url, fleet);
      ok &&= up.errors === 0 && up.refused === 0;
      rows.push([
        'verify: first use of an argon2 PIN (hashed outside the transaction, then sealed)',
        int(up.lat.count),
        ms(up.lat.p50),
        ms(up.lat.p99),
        ms(up.lat.max),
        '',
        '',
        `${up.refused}/${up.errors}`,
      ]);
      console.log('[water] warm-up: every customer once…');
      await mapLimit(fleet.customers, 20, async (who, i) => {
        const kiosk = fleet.kiosks[i % fleet.kiosks.length]!;
        await post(server.url, '/dispense-verification', kiosk.key, {
          kiosk_id: kiosk.id,
          user_id: who.phone,
          pin: who.pin,
          volume_ml: 1,
          timestamp: (stamp += 1),
        });
      });
      const loadBefore = load1();
      console.log(`[water] ${seconds} s at ${CONCURRENCY} verifications in flight (load ${loadBefore})…`);
      const r = await load(server.url, fleet, seconds, server.child.pid);
      ok &&= r.errors === 0 && r.refused === 0;
      rows.push(
        [
          'verify: sealed PIN, then hold',
          int(r.verify.count),
          ms(r.verify.p50),
          ms(r.verify.p99),
          ms(r.verify.max),
          `${fmt(r.settlementsPerSecond)}/s`,
          `${fmt(r.cpuMsPerPair, 2)} ms`,
          `${r.refused}/${r.errors}`,
        ],
        ['settle', int(r.settle.count), ms(r.settle.p50), ms(r.settle.p99), ms(r.settle.max), '', '', ''],
      );
      console.log(`[water] ${seconds} s paced at ${PACED_PER_SECOND} verifications/s (load ${load1()})…`);
      const p = await paced(server.url, fleet, seconds);
      ok &&= p.errors === 0;
      rows.push([
        `verify: paced, ${PACED_PER_SECOND}/s from ${KIOSKS} kiosks (open loop, each settled)`,
        int(p.verify.count),
        ms(p.verify.p50),
        ms(p.verify.p99),
        ms(p.verify.max),
        `${fmt(p.settlementsPerSecond)}/s`,
        '',
        `-/${p.errors}`,
      ]);
      if (p.maxLagMs > 100)
        console.log(`[water] the paced sender fell ${ms(p.maxLagMs)} behind: the bench itself was starved`);
      const bare = await baseline(server.url, seconds, server.child.pid);
      rows.push([
        'baseline: GET /healthz, same server',
        int(bare.lat.count),
        ms(bare.lat.p50),
        ms(bare.lat.p99),
        ms(bare.lat.max),
        `${fmt(bare.rps)} req/s`,
        `${fmt(bare.cpuMsPerRequest, 3)} ms per request`,
        '',
      ]);
      printTable(
        `Water kiosks — ${KIOSKS} kiosks, ${CUSTOMERS} + ${LEGACY_CUSTOMERS} customers, ${CONCURRENCY} verifications in flight, SQLite (file, synchronous=FULL); load average ${loadBefore} at the start, ${load1()} at the end`,
        [
          'path',
          'samples',
          'p50',
          'p99',
          'max',
          'settlements/s',
          'server CPU per verify+settle',
          'refused/errors',
        ],
        rows,
      );
      console.log(
        `verify p99 vs /healthz p99: ${ratio(r.verify.p99, bare.lat.p99)}; settlements/s vs /healthz req/s: ${ratio(r.settlementsPerSecond, bare.rps)}; ` +
          `server CPU per verify+settle vs two /healthz requests: ${ratio(r.cpuMsPerPair, 2 * bare.cpuMsPerRequest)}`,
      );
      verdict(`verification p99 ≤ 20 ms, ${CONCURRENCY} in flight`, r.verify.p99 <= 20, ms(r.verify.p99));
      verdict(`verification p99 ≤ 20 ms, paced ${PACED_PER_SECOND}/s`, p.verify.p99 <= 20, ms(p.verify.p99));
    } finally {
      await server.stop();
    }
    return ok;
  } finally {
    await dir.remove();
  }
}
