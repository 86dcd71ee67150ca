// The real Kioskhub server as a child process (server/src/main.ts, the composition root),
// on a fresh embedded SQLite file or a fresh PostgreSQL schema, plus the admin calls the
// scenarios need (machines with QR payment profiles).
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openDatabase } from '../../../server/src/platform/db/database.js';
import { startChild, waitForHttp, type Child } from './child.js';
import { onCleanup } from './cleanup.js';
import { repoPath } from './paths.js';
import { mapLimit } from './pool.js';
import { freePort } from './ports.js';
import { tempDir } from './temp.js';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
export const WEBHOOK_SECRET = 'whsec_bench_secret';
export const AMOUNT_PAISE = 2000;

export type Engine = 'sqlite' | 'postgres';

/** Where the server keeps its data, so a scenario can count rows afterwards. */
export type Storage =
  { engine: 'sqlite'; file: string } | { engine: 'postgres'; url: string; schema: string };

export interface KioskhubServer {
  url: string;
  child: Child;
  storage: Storage;
  /** pino lines at warn level or above that the server printed. */
  warnings: string[];
  stop(): Promise<void>;
}

export interface MachineCredentials {
  machineId: string;
  key: string;
  qrCodeId: string;
}

export function pgUrlFromEnv(): string | undefined {
  return process.env['BENCH_DATABASE_URL'] || process.env['TEST_DATABASE_URL'] || undefined;
}

/** A URL whose connections use `schema` (pg reads `options` from the query string). */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

/** Creates a fresh PostgreSQL schema with the Kioskhub tables; dropped at cleanup. */
export async function freshPgSchema(
  url: string,
  prefix: string,
): Promise<{ schema: string; drop: () => Promise<void> }> {
  const schema = `bench_${prefix}_${randomBytes(4).toString('hex')}`;
  const opened = await openDatabase({ kind: 'postgres', url }, { schema });
  await opened.close();
  const dropNow = async () => {
    const db = await openDatabase({ kind: 'postgres', url }, { schema });
    try {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(db.db);
    } finally {
      await db.close();
    }
  };
  const drop = onCleanup(`pg schema ${schema}`, dropNow);
  return { schema, drop };
}

/**
 * Limits that guard production and would throttle a bench: the bench creates thousands of
 * machines with one admin token (the API allows 6,000 requests/min per credential by default),
 * and every simulated machine connects from 127.0.0.1 (200 Socket.IO connections per address
 * and process by default). Every bench server, single or clustered, starts with these.
 */
export const BENCH_LIMITS_ENV = {
  RATE_LIMIT_PER_MINUTE: '10000000',
  SOCKET_MAX_PER_ADDRESS: '1000000',
} as const;

export async function startKioskhub(options: {
  engine: Engine;
  pgUrl?: string;
  env?: Record<string, string>;
  exposeGc?: boolean;
  name?: string;
  /** An existing DATA_DIR (SQLite) to start on, kept when the server stops; default a fresh temp dir. */
  dataDir?: string;
}): Promise<KioskhubServer> {
  const port = await freePort();
  const dir = options.dataDir
    ? { path: options.dataDir, remove: () => Promise.resolve() }
    : tempDir('server');
  let storage: Storage;
  let dropSchema: (() => Promise<void>) | undefined;
  const env: Record<string, string | undefined> = {
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dir.path,
    ADMIN_TOKEN,
    RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: 'warn',
    DATABASE_URL: undefined,
    REDIS_URL: undefined,
    JWT_SECRET: undefined,
    NODE_ENV: 'production',
    ...BENCH_LIMITS_ENV,
  };
  if (options.engine === 'postgres') {
    if (!options.pgUrl) throw new Error('postgres engine needs a URL');
    const fresh = await freshPgSchema(options.pgUrl, 'srv');
    dropSchema = fresh.drop;
    env['DATABASE_URL'] = withSearchPath(options.pgUrl, fresh.schema);
    storage = { engine: 'postgres', url: options.pgUrl, schema: fresh.schema };
  } else {
    storage = { engine: 'sqlite', file: `${dir.path}/kioskhub.db` };
  }
  const warnings: string[] = [];
  const cpuProfDir = process.env['BENCH_CPU_PROF'];
  const child = startChild({
    name: options.name ?? `kioskhub (${options.engine})`,
    script: repoPath('server/src/main.ts'),
    env: { ...env, ...options.env },
    ...(options.exposeGc ? { exposeGc: true } : {}),
    ...(cpuProfDir ? { cpuProfDir } : {}),
    onLine: (line) => {
      if (/"level":(40|50|60)/.test(line) && warnings.length < 1_000) warnings.push(line);
    },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(child, `${url}/healthz`);
  } catch (err) {
    await child.stop();
    await dropSchema?.();
    await dir.remove();
    throw err;
  }
  return {
    url,
    child,
    storage,
    warnings,
    async stop() {
      await child.stop();
      await dropSchema?.();
      await dir.remove();
    },
  };
}

async function adminCall(url: string, method: string, path: string, body: unknown): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (res.ok) return text ? JSON.parse(text) : undefined;
    // Rate limited anyway (an older server without RATE_LIMIT_PER_MINUTE): wait as told.
    if (res.status === 429 && attempt < 5) {
      const wait = Math.min(60, Number(res.headers.get('retry-after') ?? 5) || 5);
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    // The embedded database may be busy for a moment under load; anything else is a bug.
    if (res.status >= 500 && attempt < 3) continue;
    throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  }
}

/** Creates machines `${prefix}00001…` with a fixed-amount Razorpay QR profile each. */
export async function createMachines(
  url: string,
  count: number,
  options: { prefix?: string; concurrency?: number; profile?: boolean } = {},
): Promise<MachineCredentials[]> {
  const prefix = options.prefix ?? 'BM';
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(5, '0')}`);
  return mapLimit(
    ids,
    options.concurrency ?? 50,
    async (id) => {
      const created = await adminCall(url, 'POST', '/v1/machines', { id, name: `Bench ${id}` });
      const qrCodeId = `qr_bench_${id}`;
      if (options.profile !== false) {
        await adminCall(url, 'PUT', `/v1/machines/${id}/payment-profile`, {
          provider: 'razorpay',
          qrCodeId,
          fixedAmountPaise: AMOUNT_PAISE,
          qrImageUrl: null,
        });
      }
      return { machineId: id, key: String(created.key), qrCodeId };
    },
    count >= 100 ? { label: 'creating machines' } : undefined,
  );
}

function openStorage(storage: Storage) {
  return storage.engine === 'sqlite'
    ? openDatabase({ kind: 'sqlite-file', file: storage.file })
    : openDatabase({ kind: 'postgres', url: storage.url }, { schema: storage.schema });
}

/** Counts of these orders by status (orders not found count as `missing`). */
export async function readOrderStatuses(
  storage: Storage,
  orderIds: string[],
): Promise<Record<string, number>> {
  const opened = await openStorage(storage);
  try {
    const byStatus: Record<string, number> = {};
    let found = 0;
    for (let i = 0; i < orderIds.length; i += 500) {
      const rows = await opened.db
        .selectFrom('orders')
        .select('status')
        .where('id', 'in', orderIds.slice(i, i + 500))
        .execute();
      found += rows.length;
      for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    }
    if (found < orderIds.length) byStatus['missing'] = orderIds.length - found;
    return byStatus;
  } finally {
    await opened.close();
  }
}

/** Counts of orders (and the payment ids they came from) in the server's storage. */
export async function readOrders(
  storage: Storage,
): Promise<{ count: number; byStatus: Record<string, number>; paymentIds: Set<string> }> {
  const opened = await openStorage(storage);
  try {
    const rows = await opened.db.selectFrom('orders').select(['provider_payment_id', 'status']).execute();
    const byStatus: Record<string, number> = {};
    const paymentIds = new Set<string>();
    for (const r of rows) {
      byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      if (r.provider_payment_id) paymentIds.add(r.provider_payment_id);
    }
    return { count: rows.length, byStatus, paymentIds };
  } finally {
    await opened.close();
  }
}

/**
 * The machines of `createMachines` (same ids, keys and QR profiles), written in-process through
 * the server's own services into `dataDir` before a server child opens it: 10,000 through the
 * HTTP API take minutes on a busy 2-core box, and what is measured is connections, not creation.
 */
export async function seedMachines(
  dataDir: string,
  count: number,
  prefix: string,
): Promise<MachineCredentials[]> {
  const { buildApp } = await import('../../../server/src/app.js');
  const { loadConfig } = await import('../../../server/src/platform/config.js');
  const app = await buildApp(loadConfig({ DATA_DIR: dataDir, ADMIN_TOKEN, LOG_LEVEL: 'warn' }), {
    quiet: true,
  });
  try {
    const ids = Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(5, '0')}`);
    return await mapLimit(
      ids,
      1,
      async (id) => {
        const { key } = await app.services.machines.create(
          { id, tenantId: 'default', name: `Bench ${id}` },
          'bench',
        );
        const qrCodeId = `qr_bench_${id}`;
        await app.services.machines.setPaymentProfile(
          id,
          'default',
          {
            provider: 'razorpay',
            qrCodeId,
            fixedAmountPaise: AMOUNT_PAISE,
            qrImageUrl: null,
            qrShortUrl: null,
          },
          'bench',
        );
        return { machineId: id, key, qrCodeId };
      },
      count >= 100 ? { label: 'seeding machines' } : undefined,
    );
  } finally {
    await app.close();
  }
}
