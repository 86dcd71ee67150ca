// Several real Kioskhub server processes (exactly as `npm start` runs them) sharing one fresh
// PostgreSQL schema and one Redis, for multi-node and fault tests. Also private, throw-away
// PostgreSQL and Redis instances that a fault test may restart or stop without disturbing any
// other test that uses the machine's shared ones.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, freePortRun } from '../ports.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const ADMIN_TOKEN = 'cluster-admin-token-0123456789';
export const WEBHOOK_SECRET = 'whsec_cluster_secret';
/** tsx compiles the whole server at start-up: 5–30 s on a busy 2-core box, sometimes more. */
export const START_TIMEOUT_MS = 150_000;
const run = promisify(execFile);

// ---- prerequisites ---------------------------------------------------------------------

export interface SharedServices {
  databaseUrl: string;
  redisUrl: string;
}

/** PostgreSQL and Redis from the environment, or undefined with a visible notice. */
export function sharedServices(what: string): SharedServices | undefined {
  const databaseUrl = process.env['TEST_DATABASE_URL'];
  const redisUrl = process.env['TEST_REDIS_URL'];
  if (!databaseUrl || !redisUrl) {
    console.warn(`NOTICE: TEST_DATABASE_URL and TEST_REDIS_URL are not both set: ${what} SKIPPED.`);
    return undefined;
  }
  return { databaseUrl, redisUrl };
}

// ---- small utilities -------------------------------------------------------------------

export { freePort, freePortRun };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value (or throws after `timeoutMs`). */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  what = 'condition',
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    await sleep(everyMs);
  }
}

export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

/** One HTTP request; JSON in and out, the admin token unless `token` says otherwise (null: none). */
export async function http(
  url: string,
  method: string,
  path: string,
  options: {
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    token?: string | null;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const body = options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined);
  if (body !== undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(url + path, {
    method,
    headers,
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export const signRazorpay = (raw: string, secret = WEBHOOK_SECRET): string =>
  createHmac('sha256', secret).update(raw).digest('hex');

export const newPaymentId = (): string => `pay_${randomBytes(7).toString('hex')}`;

/** A `qr_code.credited` event as Razorpay sends it (PROVIDERS.md §1.2), trimmed to what matters. */
export function qrCredited(qrCodeId: string, amountPaise: number, paymentId = newPaymentId()) {
  const now = Math.floor(Date.now() / 1000);
  return {
    entity: 'event',
    account_id: 'acc_TEST0000000001',
    event: 'qr_code.credited',
    contains: ['payment', 'qr_code'],
    payload: {
      payment: {
        entity: {
          id: paymentId,
          entity: 'payment',
          amount: amountPaise,
          currency: 'INR',
          status: 'captured',
          captured: true,
          method: 'upi',
          vpa: 'gauri.kumar@okhdfcbank',
          notes: {},
          created_at: now,
        },
      },
      qr_code: {
        entity: {
          id: qrCodeId,
          entity: 'qr_code',
          name: 'Vending',
          usage: 'multiple_use',
          type: 'upi_qr',
          payment_amount: amountPaise,
          status: 'active',
          fixed_amount: true,
          notes: {},
          created_at: now - 3600,
        },
      },
    },
    created_at: now,
  };
}

/** Posts a signed Razorpay webhook (never throws on a network error: status 0 then). */
export async function postWebhook(
  url: string,
  event: unknown,
  options: { eventId?: string; timeoutMs?: number } = {},
): Promise<Reply & { error?: string }> {
  const raw = JSON.stringify(event);
  const headers: Record<string, string> = { 'x-razorpay-signature': signRazorpay(raw) };
  if (options.eventId) headers['x-razorpay-event-id'] = options.eventId;
  try {
    return await http(url, 'POST', '/webhooks/razorpay', {
      raw,
      token: null,
      headers,
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    });
  } catch (err) {
    return { status: 0, body: undefined, headers: new Headers(), error: String(err) };
  }
}

/** A machine with a Razorpay QR profile at a fixed amount; returns its key and QR id. */
export async function createVendingMachine(
  url: string,
  id: string,
  amountPaise = 2000,
): Promise<{ id: string; key: string; qrCodeId: string }> {
  const created = await http(url, 'POST', '/v1/machines', { body: { id } });
  if (created.status !== 201)
    throw new Error(`create machine ${id}: ${created.status} ${JSON.stringify(created.body)}`);
  const qrCodeId = `qr_${id}_${randomBytes(4).toString('hex')}`;
  const profile = await http(url, 'PUT', `/v1/machines/${id}/payment-profile`, {
    body: { provider: 'razorpay', qrCodeId, fixedAmountPaise: amountPaise },
  });
  if (profile.status !== 200)
    throw new Error(`payment profile ${id}: ${profile.status} ${JSON.stringify(profile.body)}`);
  return { id, key: created.body.key as string, qrCodeId };
}

export const orderStatus = async (url: string, orderId: string): Promise<string | undefined> =>
  (await http(url, 'GET', `/v1/orders/${orderId}`)).body?.status as string | undefined;

/** Runs `work` over `items` with at most `concurrency` in flight. */
export async function pool<T, R>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!, i);
      }
    }),
  );
  return results;
}

// ---- server processes ------------------------------------------------------------------

/** Every process group started here; killed when the worker exits, whatever happened. */
const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) killGroup(child, 'SIGKILL');
});

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // tsx runs the server in a child of its own: the whole group goes, as in a power cut.
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

export interface ServerProcess {
  url: string;
  port: number;
  child: ChildProcess;
  readonly alive: boolean;
  output(): string;
  /** SIGKILL to the process group (no shutdown code runs); resolves once it has exited. */
  hardKill(): Promise<void>;
  /** SIGTERM (a graceful stop, as a process manager does it); resolves with the exit code. */
  terminate(): Promise<number | null>;
}

/** Waits until GET /readyz answers 200 (the database answers too). */
export async function waitReady(
  url: string,
  timeoutMs = START_TIMEOUT_MS,
  isAlive: () => boolean = () => true,
  describe: () => string = () => '',
): Promise<void> {
  await eventually(
    async () => {
      if (!isAlive()) throw new Error('the process exited');
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5_000) });
      return res.status === 200;
    },
    timeoutMs,
    `${url}/readyz${describe()}`,
    200,
  );
}

/** Starts `tsx server/src/main.ts` with `env` (plus PATH/HOME) and waits for /readyz. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = Number(env['PORT']);
  // node --import tsx, not the tsx CLI: the CLI relays a SIGTERM and, when the child does not
  // confirm it within 30 ms (a loaded box), SIGKILLs it, so a graceful stop could not be tested.
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? ROOT, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.add(child);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  void exited.then(() => started.delete(child));
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const isAlive = () => child.exitCode === null && child.signalCode === null;
  let killed = false;
  child.once('exit', (code, signal) => {
    // A process that dies on its own is a finding: show why.
    if (!killed)
      console.warn(
        `[cluster] server process on port ${port} exited by itself (${signal ?? code}); last output:\n${output.slice(-8_000)}`,
      );
  });
  const server: ServerProcess = {
    url,
    port,
    child,
    get alive() {
      return isAlive();
    },
    output: () => output,
    async hardKill() {
      killed = true;
      killGroup(child, 'SIGKILL');
      await exited;
    },
    async terminate() {
      killed = true;
      killGroup(child, 'SIGTERM');
      await exited;
      return child.exitCode;
    },
  };
  try {
    await waitReady(url, START_TIMEOUT_MS, isAlive);
  } catch (err) {
    killed = true;
    killGroup(child, 'SIGKILL');
    throw new Error(`${String(err)}\n--- server output ---\n${output}`);
  }
  return server;
}

export interface Cluster {
  schema: string;
  nodes: ServerProcess[];
  url(i: number): string;
  /** kill -9 node i (its whole process group). */
  kill(i: number): Promise<void>;
  /** Starts node i again on the same port and environment; resolves once /readyz answers. */
  restart(i: number): Promise<void>;
  /** SQL on the cluster's schema (for counts a paging API would make slow). */
  query<R extends Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Kills every node and drops the schema. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes: number;
  databaseUrl: string;
  /** Unset: the processes do not share Redis (no cross-process fan-out). */
  redisUrl?: string;
  env?: Record<string, string>;
  schema?: string;
}

export const newSchemaName = (): string => `c_${randomBytes(6).toString('hex')}`;

/**
 * Starts `nodes` processes on one fresh schema: the first alone (it runs the migrations and
 * creates the default tenant), then the others together.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const schema = options.schema ?? newSchemaName();
  const envs: Record<string, string>[] = [];
  for (let i = 0; i < options.nodes; i++) {
    envs.push({
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      DATABASE_URL: options.databaseUrl,
      DATABASE_SCHEMA: schema,
      ADMIN_TOKEN,
      RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
      LOG_LEVEL: 'warn',
      ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
      ...options.env,
    });
  }
  const nodes: ServerProcess[] = [];
  const sqlPool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 2,
    options: `-c search_path=${schema}`,
  });
  sqlPool.on('error', () => undefined);
  const cluster: Cluster = {
    schema,
    nodes,
    url: (i) => nodes[i]!.url,
    async kill(i) {
      await nodes[i]!.hardKill();
    },
    async restart(i) {
      if (nodes[i]!.alive) await nodes[i]!.hardKill();
      nodes[i] = await startServerProcess(envs[i]!);
    },
    async query(text, params = []) {
      return (await sqlPool.query(text, params)).rows;
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.hardKill()));
      await sqlPool.end().catch(() => undefined);
      await dropSchema(options.databaseUrl, schema);
    },
  };
  try {
    nodes.push(await startServerProcess(envs[0]!));
    nodes.push(...(await Promise.all(envs.slice(1).map((env) => startServerProcess(env)))));
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    throw err;
  }
  return cluster;
}

export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`);
  } catch (err) {
    console.warn(`could not drop schema ${schema}: ${String(err)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Scrapes one Prometheus sample (first match, labels ignored) from /metrics. */
export async function metric(url: string, name: string): Promise<number | undefined> {
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const res = await fetch(`${url}/metrics`, { headers, signal: AbortSignal.timeout(10_000) });
  const line = (await res.text())
    .split('\n')
    .find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').at(-1)) : undefined;
}

// ---- private PostgreSQL and Redis for fault tests ---------------------------------------

export interface ServiceController {
  url: string;
  /** Restart (PostgreSQL) or stop-then-start (Redis); resolves once it answers again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Removes a private instance (no-op for the shared ones, which are left running). */
  destroy(): Promise<void>;
}

function pgBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'initdb'))) return join(base, v, 'bin');
  return undefined;
}

/** PostgreSQL refuses to run as root: run its tools as the postgres user then. */
async function asPostgres(file: string, args: string[]): Promise<void> {
  const root = process.getuid?.() === 0;
  await run(root ? 'runuser' : file, root ? ['-u', 'postgres', '--', file, ...args] : args, {
    timeout: 60_000,
  });
}

async function pgAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A private PostgreSQL cluster (initdb in a temp folder, its own port), so a test can restart
 * it without breaking every other test using the machine's shared one. Undefined (with a
 * notice) when the server binaries are not installed.
 */
export async function startPrivatePostgres(): Promise<ServiceController | undefined> {
  const bin = pgBinDir();
  if (
    !bin ||
    (process.getuid?.() === 0 &&
      !(await run('id', ['-u', 'postgres']).then(
        () => true,
        () => false,
      )))
  ) {
    console.warn(
      'NOTICE: PostgreSQL server binaries (initdb, pg_ctl) not found; the PostgreSQL fault test is SKIPPED.',
    );
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'kioskhub-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(uid.trim()), Number(gid.trim()));
  }
  const port = await freePort();
  const data = join(dir, 'data');
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=100`;
  await asPostgres(join(bin, 'initdb'), [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  const pgCtl = (args: string[]) =>
    asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', serverOptions, ...args]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const waitUp = () => eventually(() => pgAnswers(url), 60_000, 'PostgreSQL to answer', 100);
  await pgCtl(['-w', 'start']);
  await waitUp();
  return {
    url,
    async restart() {
      await pgCtl(['-w', '-m', 'fast', 'restart']);
      await waitUp();
    },
    async stop() {
      await pgCtl(['-w', '-m', 'fast', 'stop']);
    },
    async start() {
      await pgCtl(['-w', 'start']);
      await waitUp();
    },
    async destroy() {
      await pgCtl(['-w', '-m', 'immediate', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The machine's shared PostgreSQL, restarted with pg_ctlcluster (KIOSKHUB_FAULTS_SHARED=1). */
export function sharedPostgres(databaseUrl: string): ServiceController {
  const cluster = async (action: string) => {
    const version = readdirSync('/etc/postgresql')[0]!;
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { timeout: 120_000 });
  };
  const waitUp = () => eventually(() => pgAnswers(databaseUrl), 120_000, 'PostgreSQL to answer', 100);
  return {
    url: databaseUrl,
    restart: async () => {
      await cluster('restart');
      await waitUp();
    },
    stop: () => cluster('stop'),
    start: async () => {
      await cluster('start').catch(() => undefined);
      await waitUp();
    },
    destroy: async () => {
      // Whatever happened, leave the shared server running.
      if (!(await pgAnswers(databaseUrl))) await cluster('start').catch(() => undefined);
    },
  };
}

async function redisAnswers(port: number): Promise<boolean> {
  try {
    const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'ping'], {
      timeout: 5_000,
    });
    return stdout.trim() === 'PONG';
  } catch {
    return false;
  }
}

/** A private redis-server on its own port (stopping it disturbs nobody else). */
export async function startPrivateRedis(): Promise<ServiceController | undefined> {
  if (
    !(await run('redis-server', ['--version']).then(
      () => true,
      () => false,
    ))
  ) {
    console.warn('NOTICE: redis-server not found; the Redis fault test is SKIPPED.');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'kioskhub-redis-'));
  const port = await freePort();
  const start = async () => {
    await run('redis-server', [
      '--daemonize',
      'yes',
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--logfile',
      join(dir, 'redis.log'),
      '--pidfile',
      join(dir, 'redis.pid'),
    ]);
    await eventually(() => redisAnswers(port), 30_000, 'Redis to answer', 100);
  };
  const stop = async () => {
    await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'shutdown', 'nosave']).catch(
      () => undefined,
    );
    await eventually(async () => !(await redisAnswers(port)), 30_000, 'Redis to stop', 100);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
    start,
    async destroy() {
      await stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The machine's shared Redis on 6379, stopped and started as CI does (KIOSKHUB_FAULTS_SHARED=1). */
export function sharedRedis(redisUrl: string): ServiceController {
  const port = Number(new URL(redisUrl).port || 6379);
  const start = async () => {
    if (!(await redisAnswers(port))) {
      await run('redis-server', [
        '--daemonize',
        'yes',
        '--bind',
        '127.0.0.1',
        '-::1',
        '--port',
        String(port),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        '/var/lib/redis',
        '--logfile',
        '/var/log/redis/ci.log',
      ]);
    }
    await eventually(() => redisAnswers(port), 30_000, 'Redis to answer', 100);
  };
  const stop = async () => {
    await run('redis-cli', ['-p', String(port), 'shutdown', 'nosave']).catch(() => undefined);
    await eventually(async () => !(await redisAnswers(port)), 30_000, 'Redis to stop', 100);
  };
  return {
    url: redisUrl,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
    start,
    destroy: async () => {
      await start().catch(() => undefined);
    },
  };
}
