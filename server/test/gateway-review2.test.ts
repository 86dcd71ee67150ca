// A machine may report a result only for a command that was sent to it (docs/api.md §10, §11):
// a machine:done, v1 or v2, for an order still queued, declined back into the queue, cancelled by
// a refund or expired before it went out is refused, changes nothing, and is logged as a warning;
// the command then goes out as usual and the machine's result for it counts.
import { randomBytes } from 'node:crypto';
import type { DispenseCommand } from '@kioskhub/protocol';
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  machineSocket,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex').toUpperCase()}`;
const REFUSED_LOG = 'machine result refused';

/** The server's warnings, as parsed log lines. */
function warnings() {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    logStream: {
      write(line: string) {
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          if (Number(parsed['level']) >= 40) lines.push(parsed);
        } catch {
          /* not a log line */
        }
      },
    },
  };
}

function common(get: () => TestServer) {
  const sockets: Socket[] = [];
  return {
    sockets,
    closeAll() {
      for (const s of sockets.splice(0)) s.disconnect();
    },
    async pay(qrCodeId: string): Promise<string> {
      const res = await get().postWebhook(qrCredited(qrCodeId, 2000));
      expect(res.status).toBe(200);
      return res.body.orderId as string;
    },
    async order(id: string): Promise<any> {
      return (await get().request('GET', `/v1/orders/${id}`)).body;
    },
    async timeline(id: string): Promise<unknown[]> {
      return (await get().request('GET', `/v1/orders/${id}/timeline`)).body.items as unknown[];
    },
    commands(orderId: string) {
      return get().kioskhub.services.commands.listForOrder(orderId);
    },
    /** Everything a refused result must leave as it was. */
    async snapshot(orderId: string) {
      return {
        order: await this.order(orderId),
        timeline: await this.timeline(orderId),
        commands: await this.commands(orderId),
      };
    },
    reaches(orderId: string, status: string) {
      return eventually(
        async () => ((await this.order(orderId)).status === status ? true : undefined),
        10_000,
        `order ${orderId} ${status}`,
      );
    },
  };
}

describe.each(engines())('v1 machine:done only for an order sent to the machine (%s)', (engine) => {
  let server: TestServer;
  const log = warnings();
  const h = common(() => server);
  beforeAll(async () => {
    server = await startServer({ engine, logStream: log.logStream });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  /** A v1 machine as the earlier firmware is built, that reports only when the test says so. */
  async function v1Machine(id: string, key: string) {
    const socket = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    h.sockets.push(socket);
    const dispensed: string[] = [];
    socket.on('machine:dispense', (payload: { orderId: string }) => dispensed.push(payload.orderId));
    await connected(socket);
    const ack = await socket.timeout(5_000).emitWithAck('machine:connect', { machineId: id, token: key });
    expect(ack).toMatchObject({ ok: true, machineId: id });
    const done = (orderId: string, result: 'SUCCESS' | 'FAILED' = 'SUCCESS'): Promise<any> =>
      socket.timeout(5_000).emitWithAck('machine:done', { orderId, result });
    return { socket, dispensed, done };
  }
  const notSent = (orderId: string) => ({
    ok: false,
    error: { code: 'ORDER_NOT_FOUND', message: `order ${orderId} was not sent to this machine` },
  });

  it('refuses a result for its own order still queued behind the one in flight, and logs it', async () => {
    const vm = await server.createVendingMachine(uid('R2V1Q'), 2000);
    const m = await v1Machine(vm.id, vm.key);
    const o1 = await h.pay(vm.qrCodeId);
    await eventually(() => m.dispensed.includes(o1), 5_000, 'o1 dispensed');
    const o2 = await h.pay(vm.qrCodeId);
    expect((await h.commands(o2))[0]).toMatchObject({ status: 'QUEUED' });
    const before = await h.snapshot(o2);

    expect(await m.done(o2, 'SUCCESS')).toEqual(notSent(o2));
    expect(await m.done(o2, 'FAILED')).toEqual(notSent(o2));
    expect(await h.snapshot(o2)).toEqual(before);
    expect(before.order.status).toBe('PAID');
    expect(log.lines).toContainEqual(
      expect.objectContaining({ msg: expect.stringContaining(REFUSED_LOG), machineId: vm.id, orderId: o2 }),
    );

    // The machine finishes what it was sent; then o2 goes out, once, and its result counts.
    expect(await m.done(o1)).toEqual({ ok: true, orderId: o1 });
    await h.reaches(o1, 'COMPLETED');
    await eventually(() => m.dispensed.includes(o2), 5_000, 'o2 dispensed');
    expect(await m.done(o2)).toEqual({ ok: true, orderId: o2 });
    await h.reaches(o2, 'COMPLETED');
    expect(m.dispensed).toEqual([o1, o2]);
  });

  it('refuses a result for another machine’s queued order', async () => {
    const a = await server.createVendingMachine(uid('R2V1A'), 2000);
    const b = await server.createVendingMachine(uid('R2V1B'), 2000);
    const ma = await v1Machine(a.id, a.key);
    const oB = await h.pay(b.qrCodeId); // B is offline: its order waits in the queue
    const before = await h.snapshot(oB);
    expect(await ma.done(oB)).toEqual(notSent(oB));
    expect(await h.snapshot(oB)).toEqual(before);
  });

  it('refuses a result for an order whose queued dispense a refund cancelled', async () => {
    const vm = await server.createVendingMachine(uid('R2V1R'), 2000);
    const orderId = await h.pay(vm.qrCodeId);
    const payment = (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items[0];
    const refund = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'machine offline', to: 'refund_due' },
    });
    expect(refund.status).toBe(201);
    const m = await v1Machine(vm.id, vm.key);
    const before = await h.snapshot(orderId);
    expect(before.order.status).toBe('REFUNDED');
    expect(await m.done(orderId)).toEqual(notSent(orderId));
    expect(await h.snapshot(orderId)).toEqual(before);
    expect(m.dispensed).toEqual([]);
  });

  it('refuses a result for an order that went to review before it was ever sent', async () => {
    const vm = await server.createVendingMachine(uid('R2V1E'), 2000);
    const orderId = await h.pay(vm.qrCodeId);
    const [command] = await h.commands(orderId);
    // Expired while the machine stayed away (the expiry sweep's own call).
    expect(
      await server.kioskhub.services.commands.expire(command!.id, new Date().toISOString(), ['QUEUED']),
    ).toBe(true);
    const m = await v1Machine(vm.id, vm.key);
    const before = await h.snapshot(orderId);
    expect(before.order.status).toBe('NEEDS_REVIEW');
    expect(await m.done(orderId)).toEqual(notSent(orderId));
    expect(await h.snapshot(orderId)).toEqual(before);
  });
});

describe.each(engines())('v2 machine:done only for a command sent to the machine (%s)', (engine) => {
  let server: TestServer;
  const log = warnings();
  const h = common(() => server);
  beforeAll(async () => {
    server = await startServer({ engine, logStream: log.logStream, env: { DISPATCH_ACK_TIMEOUT_MS: '300' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  /** A v2 machine whose every ack and result is the test's. */
  async function v2Machine(id: string, key: string) {
    const socket = machineSocket(server.url, id, key);
    h.sockets.push(socket);
    const received: { command: DispenseCommand; ack: (a: unknown) => void }[] = [];
    socket.on('machine:dispense', (command: DispenseCommand, ack: (a: unknown) => void) => {
      received.push({ command, ack: typeof ack === 'function' ? ack : () => undefined });
    });
    await connected(socket);
    const emit = (event: string, payload: unknown): Promise<any> =>
      socket.timeout(5_000).emitWithAck(event, payload);
    const done = (commandId: string, orderId: string, status: 'SUCCESS' | 'FAILED' = 'SUCCESS') =>
      emit('machine:done', { commandId, orderId, status });
    const forOrder = (orderId: string) =>
      eventually(() => received.find((r) => r.command.orderId === orderId), 10_000, `dispense ${orderId}`);
    return { socket, received, emit, done, forOrder };
  }
  const notSent = (commandId: string, orderId: string) => ({
    ok: false,
    error: {
      code: 'NOT_FOUND',
      message: `command ${commandId} for order ${orderId} was not sent to this machine`,
    },
  });

  it('refuses a result for its own command still queued behind the one in flight, and logs it', async () => {
    const vm = await server.createVendingMachine(uid('R2V2Q'), 2000);
    const m = await v2Machine(vm.id, vm.key);
    const o1 = await h.pay(vm.qrCodeId);
    const r1 = await m.forOrder(o1);
    r1.ack({ accepted: true });
    await h.reaches(o1, 'DISPATCHED');
    const o2 = await h.pay(vm.qrCodeId);
    const [queued] = await h.commands(o2);
    expect(queued).toMatchObject({ status: 'QUEUED' });
    const before = await h.snapshot(o2);

    expect(await m.done(queued!.id, o2)).toEqual(notSent(queued!.id, o2));
    expect(await m.done(queued!.id, o2, 'FAILED')).toEqual(notSent(queued!.id, o2));
    expect(await h.snapshot(o2)).toEqual(before);
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        msg: expect.stringContaining(REFUSED_LOG),
        machineId: vm.id,
        orderId: o2,
        commandId: queued!.id,
      }),
    );

    expect((await m.done(r1.command.commandId, o1)).ok).toBe(true);
    const r2 = await m.forOrder(o2);
    expect(r2.command.commandId).toBe(queued!.id);
    r2.ack({ accepted: true });
    expect((await m.done(queued!.id, o2)).ok).toBe(true);
    await h.reaches(o2, 'COMPLETED');
  });

  it('refuses a result for a command it declined (back in the queue); once sent again, its result counts', async () => {
    const vm = await server.createVendingMachine(uid('R2V2D'), 2000);
    const m = await v2Machine(vm.id, vm.key);
    const orderId = await h.pay(vm.qrCodeId);
    const r = await m.forOrder(orderId);
    r.ack({ accepted: false, reason: 'BUSY' });
    await eventually(
      async () => ((await h.commands(orderId))[0]?.status === 'QUEUED' ? true : undefined),
      5_000,
      'declined',
    );
    const before = await h.snapshot(orderId);
    expect(await m.done(r.command.commandId, orderId)).toEqual(notSent(r.command.commandId, orderId));
    expect(await h.snapshot(orderId)).toEqual(before);

    expect((await m.emit('machine:heartbeat', { status: 'IDLE' })).ok).toBe(true);
    await eventually(() => m.received.length === 2, 5_000, 'sent again');
    m.received[1]!.ack({ accepted: true });
    expect((await m.done(r.command.commandId, orderId)).ok).toBe(true);
    await h.reaches(orderId, 'COMPLETED');
  });

  it('refuses a result for another machine’s queued command', async () => {
    const a = await server.createVendingMachine(uid('R2V2A'), 2000);
    const b = await server.createVendingMachine(uid('R2V2B'), 2000);
    const ma = await v2Machine(a.id, a.key);
    const oB = await h.pay(b.qrCodeId); // B is offline: its command waits in the queue
    const [command] = await h.commands(oB);
    const before = await h.snapshot(oB);
    const ack = await ma.done(command!.id, oB);
    expect(ack).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await h.snapshot(oB)).toEqual(before);
  });
});
