// Drives SimulatedMachine against a tiny real Socket.IO server speaking the v2 gateway protocol.
import { createServer } from 'node:http';
import type { AddressInfo, Socket as NetSocket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Server, type Socket } from 'socket.io';
import type { DispenseAck, DispenseCommand, DonePayload } from '@kioskhub/protocol';
import { SimulatedMachine, type SimulatedMachineOptions } from './machine.js';
import { createFleet } from './fleet.js';

const KEYS: Record<string, string> = { M01: 'key-1', M02: 'key-2' };

interface FakeGateway {
  url: string;
  dones: DonePayload[];
  heartbeats: unknown[];
  /** Resolves with the machine's socket on its next (re)connection. */
  nextConnection(machineId: string): Promise<Socket>;
  close(): Promise<void>;
}

async function startGateway(): Promise<FakeGateway> {
  const http = createServer();
  // Closing ends every connection at once, so a teardown never waits on a WebSocket closing handshake.
  const connections = new Set<NetSocket>();
  http.on('connection', (connection) => {
    connections.add(connection);
    connection.once('close', () => connections.delete(connection));
  });
  const io = new Server(http, { transports: ['websocket'] });
  const dones: DonePayload[] = [];
  const heartbeats: unknown[] = [];
  const waiters = new Map<string, (socket: Socket) => void>();
  const nsp = io.of('/machines');
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth as { machineId?: unknown; key?: unknown };
    const ok = typeof auth.machineId === 'string' && KEYS[auth.machineId] === auth.key;
    next(ok ? undefined : new Error('unauthorized'));
  });
  nsp.on('connection', (socket) => {
    const machineId = String((socket.handshake.auth as { machineId: string }).machineId);
    socket.on('machine:heartbeat', (payload: unknown, ack: (a: unknown) => void) => {
      heartbeats.push(payload);
      ack({ ok: true, serverTime: new Date().toISOString() });
    });
    socket.on('machine:done', (payload: DonePayload, ack: (a: unknown) => void) => {
      dones.push(payload);
      ack({ ok: true });
    });
    waiters.get(machineId)?.(socket);
    waiters.delete(machineId);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dones,
    heartbeats,
    nextConnection: (machineId) => new Promise((resolve) => waiters.set(machineId, resolve)),
    close: () =>
      new Promise((resolve) => {
        void io.close(() => resolve());
        for (const connection of connections) connection.destroy();
      }),
  };
}

function command(commandId: string, orderId = `order-${commandId}`): DispenseCommand {
  return { commandId, orderId, amountMinor: 2000, currency: 'INR', issuedAt: new Date().toISOString() };
}

function dispense(socket: Socket, cmd: DispenseCommand): Promise<DispenseAck> {
  return socket.timeout(2000).emitWithAck('machine:dispense', cmd) as Promise<DispenseAck>;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error('condition not met in time');
}

describe('SimulatedMachine', () => {
  let gateway: FakeGateway;
  const machines: SimulatedMachine[] = [];

  const connect = async (options: Partial<SimulatedMachineOptions> = {}) => {
    const machine = new SimulatedMachine({
      url: gateway.url,
      machineId: 'M01',
      key: KEYS.M01 ?? '',
      dispenseDelayMs: 20,
      ...options,
    });
    machines.push(machine);
    const socket = gateway.nextConnection(machine.machineId);
    await machine.start();
    return { machine, socket: await socket };
  };

  beforeEach(async () => {
    gateway = await startGateway();
  });
  afterEach(async () => {
    for (const machine of machines.splice(0)) machine.stop();
    await gateway.close();
  });

  it('connects with a heartbeat carrying status and firmware', async () => {
    const { machine } = await connect({ firmware: 'test-fw' });
    expect(machine.connected).toBe(true);
    expect(machine.status).toBe('IDLE');
    expect(gateway.heartbeats[0]).toEqual({ status: 'IDLE', firmware: 'test-fw' });
  });

  it('dispenses a repeated command once and answers both with the same result', async () => {
    const { machine, socket } = await connect();
    const cmd = command('c1');
    expect(await dispense(socket, cmd)).toEqual({ accepted: true });
    await waitFor(() => gateway.dones.length === 1);
    expect(await dispense(socket, cmd)).toEqual({ accepted: true });
    await waitFor(() => gateway.dones.length === 2);
    expect(gateway.dones[0]).toEqual({ commandId: 'c1', orderId: 'order-c1', status: 'SUCCESS' });
    expect(gateway.dones[1]).toEqual(gateway.dones[0]);
    expect(machine.dispensed).toHaveLength(1);
    expect(machine.dispensed[0]).toMatchObject({ commandId: 'c1', orderId: 'order-c1', status: 'SUCCESS' });
  });

  it('refuses a different command while busy and accepts a repeat of the current one', async () => {
    const { machine, socket } = await connect();
    // Emitted back to back: the machine handles them in order, so the first is still dispensing.
    const [first, repeat, other] = await Promise.all([
      dispense(socket, command('c1')),
      dispense(socket, command('c1')),
      dispense(socket, command('c2')),
    ]);
    expect(first).toEqual({ accepted: true });
    expect(repeat).toEqual({ accepted: true });
    expect(other).toEqual({ accepted: false, reason: 'BUSY' });
    await waitFor(() => gateway.dones.length === 1);
    expect(machine.dispensed.map((d) => d.commandId)).toEqual(['c1']);
    expect(machine.status).toBe('IDLE');
  });

  it('reports FAILED with MOTOR_JAM according to failureRate', async () => {
    const { machine, socket } = await connect({ failureRate: 1 });
    await dispense(socket, command('c1'));
    await waitFor(() => gateway.dones.length === 1);
    expect(gateway.dones[0]).toEqual({
      commandId: 'c1',
      orderId: 'order-c1',
      status: 'FAILED',
      failureCode: 'MOTOR_JAM',
    });
    expect(machine.dispensed[0]?.status).toBe('FAILED');
  });

  it('keeps a result finished while offline and delivers it after reconnecting', async () => {
    const { machine, socket } = await connect({ dispenseDelayMs: 100 });
    const events: string[] = [];
    machine.on('dispense', ({ command: c }) => events.push(`dispense ${c.commandId}`));
    machine.on('done', ({ result }) => events.push(`done ${result.status}`));
    expect(await dispense(socket, command('c1'))).toEqual({ accepted: true });
    const reconnected = gateway.nextConnection('M01');
    machine.disconnectNow();
    const newSocket = await reconnected;
    await waitFor(() => gateway.dones.length >= 1);
    // The server re-sends an unfinished command on reconnection; the machine repeats its result.
    expect(await dispense(newSocket, command('c1'))).toEqual({ accepted: true });
    await waitFor(() => gateway.dones.length >= 2);
    expect(new Set(gateway.dones.map((d) => JSON.stringify(d))).size).toBe(1);
    expect(machine.dispensed).toHaveLength(1);
    expect(events).toEqual(['dispense c1', 'done SUCCESS']);
  });

  it('rejects start() on a wrong key when autoReconnect is false', async () => {
    const machine = new SimulatedMachine({
      url: gateway.url,
      machineId: 'M01',
      key: 'wrong',
      autoReconnect: false,
    });
    machines.push(machine);
    await expect(machine.start()).rejects.toThrow('unauthorized');
    expect(machine.connected).toBe(false);
  });

  it('a wrong key says which key to check and how to rotate it; a wrong URL says it cannot reach the server', async () => {
    const lines: string[] = [];
    const refused = new SimulatedMachine({
      url: gateway.url,
      machineId: 'M01',
      key: 'mk_typo_123',
      autoReconnect: false,
      logger: (l) => lines.push(l),
    });
    machines.push(refused);
    await expect(refused.start()).rejects.toThrow('unauthorized');
    expect(lines).toContain(
      `[M01] refused by ${gateway.url}: the server does not know machine M01 or its key is wrong. Check the key in MACHINE_KEYS ` +
        '(machine-simulator/.env) or --keys: it is shown once, when the machine is created. ' +
        'A new one: POST /v1/machines/M01/rotate-key, or "Rotate key" on its dashboard page.',
    );
    expect(lines.join('\n')).not.toContain('mk_typo_123');

    const closed = await startGateway();
    await closed.close(); // nothing listens there any more
    const unreachable = new SimulatedMachine({
      url: closed.url,
      machineId: 'M01',
      key: 'key-1',
      autoReconnect: false,
      logger: (l) => lines.push(l),
    });
    machines.push(unreachable);
    await expect(unreachable.start()).rejects.toThrow();
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^\\[M01\\] cannot reach the server at ${closed.url.replace(/\./g, '\\.')} \\(.+\\): check --url / KIOSKHUB_URL`,
      ),
    );
  });
});

describe('createFleet', () => {
  it('connects every machine and reports a failed one by id', async () => {
    const gateway = await startGateway();
    try {
      const fleet = createFleet({
        url: gateway.url,
        machines: [
          { machineId: 'M01', key: 'key-1' },
          { machineId: 'M02', key: 'key-2' },
        ],
        connectConcurrency: 1,
      });
      await fleet.start();
      expect(fleet.machines.every((m) => m.connected)).toBe(true);
      fleet.stop();

      const bad = createFleet({
        url: gateway.url,
        machines: [{ machineId: 'M02', key: 'nope' }],
        autoReconnect: false,
      });
      await expect(bad.start()).rejects.toThrow(/M02: unauthorized/);

      // A server that keeps refusing a machine is retried without end; with stallTimeoutMs the
      // fleet gives up instead of hanging, and says which machine and why.
      const lines: string[] = [];
      const refused = createFleet({
        url: gateway.url,
        machines: [
          { machineId: 'M01', key: 'key-1' },
          { machineId: 'M02', key: 'nope' },
        ],
        connectConcurrency: 2,
        stallTimeoutMs: 1_500,
        progress: (line) => lines.push(line),
      });
      await expect(refused.start()).rejects.toThrow(
        /^fleet stalled: 1\/2 machines connected, no progress for \d+ s; still trying: M02 \(unauthorized\)$/,
      );
      expect(refused.machines.every((m) => !m.connected)).toBe(true); // stopped
    } finally {
      await gateway.close();
    }
  });
});
