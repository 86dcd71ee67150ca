// A hard kill (SIGKILL, no shutdown code runs) of the real server process, then a restart on
// the same storage: a paid order is never forgotten and never dispensed twice (ARCHITECTURE.md
// invariant 2). The server runs as a child process exactly as `npm start` runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SimulatedMachine, type CommandHandling } from '@kioskhub/machine-simulator';
import { afterAll, describe, expect, it } from 'vitest';
import { signRazorpayBody } from '../src/providers/razorpay/razorpay.webhook.js';
import {
  ADMIN_TOKEN,
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  qrCredited,
  tempDir,
  WEBHOOK_SECRET,
  type Engine,
} from './harness.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const START_TIMEOUT_MS = 45_000;

/** A port nobody listens on right now: bind port 0, read it, close. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

type Reply = { status: number; body: any };

async function http(
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
  const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

/** Every child process group this file started; killed in afterAll whatever happened. */
const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // tsx runs the server in a child of its own: the whole group goes, as in a power cut.
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGKILL to the process group; resolves once the process has exited. */
  hardKill(): Promise<void>;
}

async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(TSX, ['server/src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? ROOT, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
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
        const res = await fetch(`${url}/healthz`);
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

interface Storage {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

async function storageFor(engine: Engine): Promise<Storage> {
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

async function createVendingMachine(
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

function postWebhook(url: string, event: unknown): Promise<Reply> {
  const raw = JSON.stringify(event);
  return http(url, 'POST', '/webhooks/razorpay', {
    raw,
    token: null,
    headers: { 'x-razorpay-signature': signRazorpayBody(raw, WEBHOOK_SECRET) },
  });
}

const orderStatus = async (url: string, orderId: string): Promise<string> =>
  (await http(url, 'GET', `/v1/orders/${orderId}`)).body?.status as string;

describe.each(engines())('hard kill with a paid order queued for an offline machine (%s)', (engine) => {
  it(
    'after the restart the order is still there and is dispensed exactly once',
    { timeout: 180_000 },
    async () => {
      const storage = await storageFor(engine);
      const machines: SimulatedMachine[] = [];
      let server: ServerProcess | undefined;
      try {
        server = await startServerProcess(storage.env);
        const m = await createVendingMachine(server.url, 'CRASH1');
        const paymentId = `pay_${randomBytes(7).toString('hex')}`;
        const event = qrCredited(m.qrCodeId, 2000, paymentId);
        const paid = await postWebhook(server.url, event);
        expect(paid.status).toBe(200);
        const orderId = paid.body.orderId as string;
        expect((await http(server.url, 'GET', `/v1/orders/${orderId}`)).body).toMatchObject({
          status: 'PAID',
          dispatchPending: true,
        });

        await server.hardKill();
        server = await startServerProcess(storage.env);

        // Everything committed before the kill is there.
        expect((await http(server.url, 'GET', `/v1/orders/${orderId}`)).body).toMatchObject({
          status: 'PAID',
          dispatchPending: true,
          providerPaymentId: paymentId,
        });
        expect(
          (await http(server.url, 'GET', `/v1/payment-events/razorpay/${paymentId}`)).body,
        ).toMatchObject({ status: 'PROCESSED', orderId, dispatch: 'PENDING' });
        // Razorpay retrying the delivery after the crash is still a duplicate.
        expect((await postWebhook(server.url, event)).body).toEqual({ ok: true, duplicate: true, orderId });

        const machine = new SimulatedMachine({
          url: server.url,
          machineId: m.id,
          key: m.key,
          dispenseDelayMs: 20,
          heartbeatMs: 500,
        });
        machines.push(machine);
        await machine.start();
        await eventually(
          async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
          20_000,
          'the order to complete after the restart',
        );
        expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId]);

        // Give the dispatcher more chances to (wrongly) send it again: a reconnect, then a new
        // payment that is dispensed after it (commands go out oldest first).
        const reconnected = new Promise<void>((done) => machine.once('connect', () => done()));
        machine.disconnectNow();
        await reconnected;
        const next = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
        expect(next.status).toBe(200);
        await eventually(
          async () => (await orderStatus(server!.url, next.body.orderId as string)) === 'COMPLETED',
          20_000,
          'the next order to complete',
        );
        expect(machine.dispensed.map((d) => d.orderId)).toEqual([orderId, next.body.orderId]);
        const timeline = await http(server.url, 'GET', `/v1/orders/${orderId}/timeline`);
        expect(timeline.body.items.filter((e: any) => e.type === 'dispensed')).toHaveLength(1);
        expect(await orderStatus(server.url, orderId)).toBe('COMPLETED');
      } finally {
        for (const machine of machines) machine.stop();
        await server?.hardKill();
        await storage.cleanup();
      }
    },
  );
});

describe('hard kill while a machine is in the middle of a dispense (sqlite)', () => {
  it(
    'after the restart the command is re-sent with the same commandId and dispensed once',
    { timeout: 180_000 },
    async () => {
      const storage = await storageFor('sqlite');
      const machines: SimulatedMachine[] = [];
      let server: ServerProcess | undefined;
      try {
        const startedAt = Date.now();
        server = await startServerProcess(storage.env);
        const startupMs = Date.now() - startedAt;
        const m = await createVendingMachine(server.url, 'CRASH2');

        // The dispense must outlast the kill, the restart and the machine's reconnect backoff
        // (socket.io-client: at most ~7.5 s between attempts), so it scales with this host's start-up.
        const dispenseDelayMs = Math.max(10_000, 2 * startupMs + 8_000);
        const machine = new SimulatedMachine({
          url: server.url,
          machineId: m.id,
          key: m.key,
          dispenseDelayMs,
          heartbeatMs: 500,
        });
        machines.push(machine);
        let restarted = false;
        const afterRestart: { commandId: string; handling: CommandHandling }[] = [];
        machine.on('command', ({ command, handling }) => {
          if (restarted && command) afterRestart.push({ commandId: command.commandId, handling });
        });
        const firstDispense = new Promise<string>((done) =>
          machine.once('dispense', ({ command }) => done(command.commandId)),
        );
        await machine.start();

        const paid = await postWebhook(server.url, qrCredited(m.qrCodeId, 2000));
        expect(paid.status).toBe(200);
        const orderId = paid.body.orderId as string;
        const commandId = await firstDispense;
        // The server has recorded the machine's acceptance before it dies.
        await eventually(
          async () => (await orderStatus(server!.url, orderId)) === 'DISPATCHED',
          20_000,
          'the order to be DISPATCHED',
        );
        expect(machine.dispensed).toEqual([]);

        restarted = true;
        await server.hardKill();
        server = await startServerProcess(storage.env);

        await eventually(
          () => afterRestart.some((c) => c.commandId === commandId),
          dispenseDelayMs + 20_000,
          'the command to be re-sent after the restart',
        );
        expect(
          afterRestart
            .filter((c) => c.commandId === commandId)
            .every((c) => c.handling === 'in-progress' || c.handling === 'repeat'),
        ).toBe(true);
        expect(afterRestart.every((c) => c.commandId === commandId)).toBe(true);

        await eventually(
          async () => (await orderStatus(server!.url, orderId)) === 'COMPLETED',
          dispenseDelayMs + 20_000,
          'the order to complete',
        );
        expect(machine.dispensed).toHaveLength(1);
        expect(machine.dispensed[0]).toMatchObject({ commandId, orderId, status: 'SUCCESS' });
        const timeline = await http(server.url, 'GET', `/v1/orders/${orderId}/timeline`);
        const types = (timeline.body.items as { type: string }[]).map((e) => e.type);
        expect(types.filter((t) => t === 'dispensed')).toHaveLength(1);
        expect(types.at(-1)).toBe('dispensed');
        for (const e of timeline.body.items.filter((x: any) => x.type !== 'payment_received'))
          expect(e.detail.commandId).toBe(commandId);
      } finally {
        for (const machine of machines) machine.stop();
        await server?.hardKill();
        await storage.cleanup();
      }
    },
  );
});
