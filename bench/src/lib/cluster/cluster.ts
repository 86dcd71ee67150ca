// N real Kioskhub server processes (server/src/main.ts, the composition root) sharing one fresh
// PostgreSQL schema (DATABASE_SCHEMA) and one Redis, as `npm run cluster` and
// server/test/cluster/helpers.ts run them. Every child, schema and temp dir is registered for
// cleanup (bench/src/lib/cleanup.ts), so a failure or Ctrl-C leaves nothing behind.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { sha256 } from '../../../../server/src/platform/http/auth.js';
import { openDatabase } from '../../../../server/src/platform/db/database.js';
import { startChild, waitForHttp, type Child } from '../child.js';
import { BENCH_LIMITS_ENV } from '../kioskhub.js';
import { raiseNoFile } from '../limits.js';
import {
  ADMIN_TOKEN,
  AMOUNT_PAISE,
  createMachines,
  freshPgSchema,
  pgUrlFromEnv,
  WEBHOOK_SECRET,
  type MachineCredentials,
} from '../kioskhub.js';
import { repoPath } from '../paths.js';
import { freePort } from '../ports.js';
import { tempDir } from '../temp.js';

export const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export const clusterPgUrl = (): string => pgUrlFromEnv() ?? DEFAULT_PG_URL;
export const clusterRedisUrl = (): string =>
  process.env['BENCH_REDIS_URL'] || process.env['TEST_REDIS_URL'] || DEFAULT_REDIS_URL;

/** "2.31 1.80 1.52" — noted next to every figure (other work on this box skews them). */
export const loadAvg = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** A short tag that keeps this run's machine ids apart from anyone else's on the shared Redis. */
export const runTag = (): string => randomBytes(2).toString('hex').toUpperCase();

export interface ClusterNode {
  index: number;
  url: string;
  port: number;
  child: Child;
  warnings: string[];
}

export interface Cluster {
  nodes: ClusterNode[];
  schema: string;
  pgUrl: string;
  redisUrl: string;
  /** CPU profiles (.cpuprofile) land here when the nodes exit, if profiling was asked for. */
  cpuProfDir?: string;
  /** Stops every node (graceful SIGTERM, so CPU profiles get written). The schema is dropped at cleanup or by drop(). */
  stopNodes(): Promise<void>;
  drop(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  label: string;
  env?: Record<string, string>;
  /** Write a V8 CPU profile of each node (node --cpu-prof) into a temp dir. */
  cpuProfile?: boolean;
  exposeGc?: boolean;
  /** Raise each node's open-file limit to this (for 20,000+ sockets in one process). */
  noFile?: number;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const pgUrl = clusterPgUrl();
  const redisUrl = clusterRedisUrl();
  const fresh = await freshPgSchema(pgUrl, 'clu');
  // BENCH_CPU_PROF keeps every node's profile there, as for a single server.
  const profDir = options.cpuProfile ? tempDir('cpuprof').path : process.env['BENCH_CPU_PROF'];
  const nodes: ClusterNode[] = [];
  const start = async (index: number): Promise<ClusterNode> => {
    const port = await freePort();
    const dir = tempDir(`node${index + 1}`);
    const warnings: string[] = [];
    const child = startChild({
      name: `${options.label} node${index + 1}:${port}`,
      script: repoPath('server/src/main.ts'),
      env: {
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dir.path,
        DATABASE_URL: pgUrl,
        DATABASE_SCHEMA: fresh.schema,
        REDIS_URL: redisUrl,
        ADMIN_TOKEN,
        RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
        LOG_LEVEL: 'warn',
        ...BENCH_LIMITS_ENV,
        NODE_ENV: 'production',
        JWT_SECRET: 'bench-cluster-jwt-secret-0123456789abcdef',
        ...options.env,
      },
      ...(options.exposeGc ? { exposeGc: true } : {}),
      ...(profDir ? { cpuProfDir: profDir } : {}),
      onLine: (line) => {
        if (/"level":(40|50|60)/.test(line) && warnings.length < 1_000) warnings.push(line);
      },
    });
    if (options.noFile) raiseNoFile(child.pid, options.noFile);
    const url = `http://127.0.0.1:${port}`;
    // tsx compiles the whole server at start-up: 5–30 s on a busy 2-core box.
    await waitForHttp(child, `${url}/readyz`, 150_000);
    return { index, url, port, child, warnings };
  };
  try {
    // The schema was migrated by freshPgSchema, so the nodes can start together.
    nodes.push(...(await Promise.all(Array.from({ length: options.nodes }, (_, i) => start(i)))));
  } catch (err) {
    await Promise.all(nodes.map((n) => n.child.stop()));
    await fresh.drop();
    throw err;
  }
  return {
    nodes,
    schema: fresh.schema,
    pgUrl,
    redisUrl,
    ...(profDir ? { cpuProfDir: profDir } : {}),
    async stopNodes() {
      await Promise.all(nodes.map((n) => n.child.stop()));
    },
    drop: () => fresh.drop(),
  };
}

/** Opens the cluster's schema with the server's own database layer (Kysely over node-postgres). */
export async function openClusterDb(cluster: Pick<Cluster, 'pgUrl' | 'schema'>) {
  return openDatabase({ kind: 'postgres', url: cluster.pgUrl }, { schema: cluster.schema });
}

/**
 * Inserts `count` machines straight into the schema's `machines` table, in batches of 1,000,
 * with a fixed-amount Razorpay QR profile each and the same key hashing the server uses
 * (`sha256` from server/src/platform/http/auth.ts). Creating 20,000+ machines through the HTTP
 * API takes many minutes here; this takes seconds. One seed machine is created through the API
 * first, to learn the default tenant and site (and prove the API path works).
 */
export async function insertMachines(
  cluster: Cluster,
  count: number,
  prefix: string,
): Promise<MachineCredentials[]> {
  const [seed] = await createMachines(cluster.nodes[0]!.url, 1, { prefix: `${prefix}S`, concurrency: 1 });
  const opened = await openClusterDb(cluster);
  try {
    const row = await opened.db
      .selectFrom('machines')
      .select(['tenant_id', 'site_id'])
      .where('id', '=', seed!.machineId)
      .executeTakeFirstOrThrow();
    const creds: MachineCredentials[] = [];
    const now = new Date().toISOString();
    for (let start = 0; start < count; start += 1_000) {
      const batch = [];
      for (let i = start; i < Math.min(count, start + 1_000); i++) {
        const machineId = `${prefix}${String(i + 1).padStart(5, '0')}`;
        const key = `mk_${randomBytes(24).toString('base64url')}`;
        const qrCodeId = `qr_bench_${machineId}`;
        creds.push({ machineId, key, qrCodeId });
        batch.push({
          id: machineId,
          tenant_id: row.tenant_id,
          site_id: row.site_id,
          name: `Bench ${machineId}`,
          kind: 'vending',
          key_hash: sha256(key),
          status: 'OFFLINE',
          socket_connected: 0,
          connection_id: null,
          protocol: null,
          last_seen_at: null,
          firmware: null,
          payment_provider: 'razorpay',
          payment_qr_code_id: qrCodeId,
          payment_qr_image_url: null,
          payment_qr_short_url: null,
          payment_fixed_amount_minor: AMOUNT_PAISE,
          payment_qr_content: null,
          currency: 'INR',
          created_at: now,
          updated_at: now,
        });
      }
      await opened.db
        .insertInto('machines')
        .values(batch as never)
        .execute();
    }
    return creds;
  } finally {
    await opened.close();
  }
}

/** Orders by status and commands per order, read from the cluster's schema. */
export async function readClusterOrders(cluster: Pick<Cluster, 'pgUrl' | 'schema'>): Promise<{
  count: number;
  byStatus: Record<string, number>;
  paymentIds: Set<string>;
  orderIds: Set<string>;
}> {
  const opened = await openClusterDb(cluster);
  try {
    const rows = await opened.db
      .selectFrom('orders')
      .select(['id', 'provider_payment_id', 'status'])
      .execute();
    const byStatus: Record<string, number> = {};
    const paymentIds = new Set<string>();
    const orderIds = new Set<string>();
    for (const r of rows) {
      byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      orderIds.add(r.id);
      if (r.provider_payment_id) paymentIds.add(r.provider_payment_id);
    }
    return { count: rows.length, byStatus, paymentIds, orderIds };
  } finally {
    await opened.close();
  }
}
