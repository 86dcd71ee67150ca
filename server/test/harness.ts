// Starts the real server on an ephemeral port with a real database, for integration tests.
// Every storage test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set
// (a fresh schema per server, dropped afterwards).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { io, type Socket } from 'socket.io-client';
import { buildApp, type KioskhubApp } from '../src/app.js';
import { loadConfig } from '../src/platform/config.js';
import { qrCreditedEvent } from '../src/providers/razorpay/razorpay.events.js';
import { signRazorpayBody } from '../src/providers/razorpay/razorpay.webhook.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const WEBHOOK_SECRET = 'whsec_test_secret';

export type Engine = 'sqlite' | 'postgres';

const pgUrl = process.env['TEST_DATABASE_URL'];
let noticeShown = false;

/** The engines every storage test runs on. Prints a visible notice when PostgreSQL is skipped. */
export function engines(): Engine[] {
  if (!pgUrl && !noticeShown) {
    noticeShown = true;
    console.warn(
      'NOTICE: TEST_DATABASE_URL is not set; PostgreSQL variants of the storage tests are SKIPPED.',
    );
  }
  return pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];
}

export interface TestServer {
  url: string;
  engine: Engine;
  kioskhub: KioskhubApp;
  close(): Promise<void>;
  /** JSON request with the admin token unless `token` says otherwise (null: no auth). */
  request(
    method: string,
    path: string,
    options?: { body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  createMachine(id: string, extra?: Record<string, unknown>): Promise<{ id: string; key: string }>;
  /** Creates a machine with a Razorpay QR profile (fixed amount), returns its key and QR id. */
  createVendingMachine(
    id: string,
    amountPaise?: number,
    tenantId?: string,
  ): Promise<{ id: string; key: string; qrCodeId: string }>;
  postWebhook(
    body: unknown,
    options?: { secret?: string; eventId?: string; signature?: string | null },
  ): Promise<{ status: number; body: any }>;
}

export interface StartOptions {
  engine?: Engine;
  env?: Record<string, string>;
  /** Use this SQLite file instead of memory (restart tests). */
  dataDir?: string;
  schema?: string;
  /** Receive the server's log lines (request logs included). */
  logStream?: { write(line: string): void };
}

export function newSchemaName(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  if (!pgUrl) return;
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await client.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await client.end();
  }
}

export function tempDir(prefix = 'kioskhub-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function baseEnv(engine: Engine, options: StartOptions = {}): Record<string, string> {
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_TOKEN,
    RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: 'warn',
    // Staff passwords at argon2id's least cost (19 MiB, 2 passes: 85 ms of CPU a hash here against
    // 430 ms at the 64 MiB default); the suite hashes and checks hundreds. password-hash-cost.test.ts
    // checks the setting itself and the default.
    PASSWORD_HASH_MEMORY_KIB: '19456',
    PASSWORD_HASH_TIME_COST: '2',
  };
  if (engine === 'postgres') env['DATABASE_URL'] = pgUrl!;
  else if (options.dataDir) env['DATA_DIR'] = options.dataDir;
  else env['DATABASE_URL'] = 'memory://';
  return { ...env, ...options.env };
}

export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const engine = options.engine ?? 'sqlite';
  const schema = engine === 'postgres' ? (options.schema ?? newSchemaName()) : undefined;
  const config = loadConfig(baseEnv(engine, options));
  const logging = options.logStream ? { logStream: options.logStream } : { quiet: true };
  const kioskhub = await buildApp(config, { ...logging, ...(schema ? { databaseSchema: schema } : {}) });
  const url = await kioskhub.listen();

  const request: TestServer['request'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
    if (token !== null) headers['authorization'] ??= `Bearer ${token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };

  const server: TestServer = {
    url,
    engine,
    kioskhub,
    request,
    async close() {
      await kioskhub.close();
      if (schema && !options.schema) await dropSchema(schema);
    },
    async createMachine(id, extra = {}) {
      const res = await request('POST', '/v1/machines', { body: { id, ...extra } });
      if (res.status !== 201)
        throw new Error(`createMachine ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      return { id, key: res.body.key as string };
    },
    async createVendingMachine(id, amountPaise = 2000, tenantId) {
      const machine = await server.createMachine(id, tenantId ? { tenantId } : {});
      const qrCodeId = `qr_${id}_${randomBytes(4).toString('hex')}`;
      const res = await request('PUT', `/v1/machines/${id}/payment-profile`, {
        body: {
          provider: 'razorpay',
          qrCodeId,
          fixedAmountPaise: amountPaise,
          qrImageUrl: `https://rzp.io/i/${id}`,
        },
      });
      if (res.status !== 200)
        throw new Error(`payment profile ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      return { ...machine, qrCodeId };
    },
    async postWebhook(body, opts = {}) {
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const signature =
        opts.signature === undefined ? signRazorpayBody(raw, opts.secret ?? WEBHOOK_SECRET) : opts.signature;
      if (signature !== null) headers['x-razorpay-signature'] = signature;
      if (opts.eventId) headers['x-razorpay-event-id'] = opts.eventId;
      return request('POST', '/webhooks/razorpay', { raw, token: null, headers });
    },
  };
  return server;
}

let paymentSeq = 0;
/** A `qr_code.credited` event as Razorpay sends it (PROVIDERS.md §1.2). */
export function qrCredited(
  qrCodeId: string,
  amountPaise: number,
  paymentId = `pay_${Date.now().toString(36)}${(paymentSeq++).toString(36)}${randomBytes(3).toString('hex')}`,
) {
  return qrCreditedEvent({ qrCodeId, amountPaise, paymentId, notes: { machine: 'vending' } });
}

/** A v2 machine socket (raw socket.io-client) for protocol-level tests. */
export function machineSocket(url: string, machineId: string, key: string): Socket {
  return io(`${url}/machines`, {
    auth: { machineId, key },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
}

export function liveSocket(url: string, auth: Record<string, string>): Socket {
  return io(`${url}/live`, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
}

export function connected(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.connected) return resolve();
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
}

/** Polls `check` until it returns a truthy value (or throws after `timeoutMs`). */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 10_000,
  what = 'condition',
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
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function nextEvent<T = any>(socket: Socket, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/**
 * A vending order's dispense sent to its machine and reported done, as the machine's socket
 * would (a machine's result counts only for a command it was sent).
 */
export async function dispensed(server: TestServer, machineId: string, orderId: string): Promise<void> {
  const { commands } = server.kioskhub.services;
  const claim = await commands.claimNext(machineId, 'v2');
  if (claim.kind === 'none' || claim.command.order_id !== orderId)
    throw new Error(`order ${orderId} is not the next dispense of ${machineId}`);
  const { outcome } = await commands.recordResult(machineId, { orderId }, 'SUCCESS', undefined);
  if (outcome !== 'recorded') throw new Error(`dispense of ${orderId}: ${outcome}`);
}
