// What the hard-kill tests share: the real server started as a child process exactly as `npm start`
// runs it, killed with SIGKILL and started again on the same storage.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';
import { signRazorpayBody } from '../src/providers/razorpay/razorpay.webhook.js';
import {
  ADMIN_TOKEN,
  dropSchema,
  eventually,
  newSchemaName,
  tempDir,
  WEBHOOK_SECRET,
  type Engine,
} from './harness.js';
import { freePort, killGroup } from './cluster/helpers.js';

export { freePort };
import { spawnTs } from './operator-process.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const START_TIMEOUT_MS = 45_000;

export type Reply = { status: number; body: any };

/** How long one request to the server process may take before the test names it as the hang. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Resolves with `promise`, or fails naming `what` when it has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function http(
  url: string,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; headers?: Record<string, string>; token?: string | null } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? ADMIN_TOKEN : options.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const body = options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined);
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  let text: string;
  try {
    res = await fetch(url + path, {
      method,
      headers,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      ...(body !== undefined ? { body } : {}),
    });
    text = await res.text();
  } catch (err) {
    if ((err as Error).name !== 'TimeoutError') throw err;
    throw new Error(`${method} ${path} got no answer within ${REQUEST_TIMEOUT_MS} ms`);
  }
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

/** Every child process group this file started; killed in afterAll whatever happened. */
export const live = new Set<ChildProcess>();

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGKILL to the process group; resolves once the process has exited. */
  hardKill(): Promise<void>;
}

export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawnTs('server/src/main.ts', [], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? ROOT, ...env },
    detached: true,
  });
  live.add(child);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  exited.then(
    () => live.delete(child),
    () => undefined,
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${env['PORT']}`;
  const server: ServerProcess = {
    url,
    child,
    output: () => output,
    async hardKill() {
      killGroup(child, 'SIGKILL');
      await exited;
    },
  };
  try {
    await eventually(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`server exited early (${child.exitCode ?? child.signalCode}): ${output}`);
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
        return res.status === 200;
      },
      START_TIMEOUT_MS,
      'the server process to answer /healthz',
    );
  } catch (err) {
    killGroup(child, 'SIGKILL');
    throw new Error(`${String(err)}\n--- server output ---\n${output}`);
  }
  return server;
}

afterAll(() => {
  for (const child of live) killGroup(child, 'SIGKILL');
});

export interface Storage {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

export async function storageFor(engine: Engine): Promise<Storage> {
  const dir = tempDir('kioskhub-crash-');
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: String(await freePort()),
    DATA_DIR: dir.path,
    ADMIN_TOKEN,
    RAZORPAY_WEBHOOK_SECRET: WEBHOOK_SECRET,
    LOG_LEVEL: 'warn',
  };
  if (engine === 'sqlite') return { env, cleanup: async () => dir.remove() };
  const schema = newSchemaName();
  env['DATABASE_URL'] = process.env['TEST_DATABASE_URL']!;
  env['DATABASE_SCHEMA'] = schema;
  return {
    env,
    cleanup: async () => {
      dir.remove();
      await dropSchema(schema);
    },
  };
}

export async function createVendingMachine(
  url: string,
  id: string,
  amountPaise = 2000,
): Promise<{ id: string; key: string; qrCodeId: string }> {
  const created = await http(url, 'POST', '/v1/machines', { body: { id } });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const qrCodeId = `qr_${id}_${randomBytes(4).toString('hex')}`;
  const profile = await http(url, 'PUT', `/v1/machines/${id}/payment-profile`, {
    body: { provider: 'razorpay', qrCodeId, fixedAmountPaise: amountPaise },
  });
  expect(profile.status, JSON.stringify(profile.body)).toBe(200);
  return { id, key: created.body.key as string, qrCodeId };
}

export function postWebhook(url: string, event: unknown): Promise<Reply> {
  const raw = JSON.stringify(event);
  return http(url, 'POST', '/webhooks/razorpay', {
    raw,
    token: null,
    headers: { 'x-razorpay-signature': signRazorpayBody(raw, WEBHOOK_SECRET) },
  });
}

export const orderStatus = async (url: string, orderId: string): Promise<string> =>
  (await http(url, 'GET', `/v1/orders/${orderId}`)).body?.status as string;
