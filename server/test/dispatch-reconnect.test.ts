// Dispatch across a reconnect (docs/api.md §12): a machine whose last report was ERROR (or
// BUSY) gets no command it has never seen at its next connection until it says IDLE, while the
// command in flight still goes out again; and a command sent over v2 to a machine that comes
// back on v1 (older firmware after a rollback) is never stranded: v1 cannot de-duplicate, so it
// is not sent again and goes to review after DISPATCH_RESULT_TIMEOUT_MS, and the next order goes
// out on v1.
import type { DispenseCommand } from '@kioskhub/protocol';
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  machineSocket,
  nextEvent,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Received {
  command: DispenseCommand;
  ack: (answer: unknown) => void;
}

/** A v2 machine whose every answer is decided by the test. */
class V2Machine {
  readonly socket: Socket;
  readonly received: Received[] = [];

  constructor(url: string, machineId: string, key: string) {
    this.socket = machineSocket(url, machineId, key);
    this.socket.on('machine:dispense', (command: DispenseCommand, ack: (answer: unknown) => void) => {
      this.received.push({ command, ack: typeof ack === 'function' ? ack : () => undefined });
    });
  }

  async open(): Promise<this> {
    await connected(this.socket);
    return this;
  }

  heartbeat(status: 'IDLE' | 'BUSY' | 'ERROR'): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('machine:heartbeat', { status });
  }

  done(command: DispenseCommand): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('machine:done', {
      commandId: command.commandId,
      orderId: command.orderId,
      status: 'SUCCESS',
    });
  }

  nth(n: number, timeoutMs = 10_000): Promise<Received> {
    return eventually(() => this.received[n], timeoutMs, `machine:dispense #${n + 1}`);
  }

  close(): void {
    this.socket.disconnect();
  }
}

/** A v1 machine as the earlier vending firmware speaks (no acks on dispense, results by order). */
class V1Machine {
  readonly socket: Socket;
  readonly dispenses: { type: string; orderId: string }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    url: string,
    readonly machineId: string,
    private readonly key: string,
  ) {
    this.socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.socket.on('machine:dispense', (payload: { type: string; orderId: string }) =>
      this.dispenses.push(payload),
    );
  }

  async open(): Promise<this> {
    const welcome = nextEvent(this.socket, 'machine:welcome', 10_000);
    await connected(this.socket);
    await welcome;
    const ack = await this.socket
      .timeout(5_000)
      .emitWithAck('machine:connect', { machineId: this.machineId, token: this.key });
    expect(ack).toMatchObject({ ok: true, machineId: this.machineId });
    this.timer = setInterval(
      () => this.socket.emit('machine:heartbeat', { machineId: this.machineId, ts: Date.now() }),
      100,
    );
    return this;
  }

  done(orderId: string): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('machine:done', { orderId, result: 'SUCCESS' });
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.disconnect();
  }
}

function helpers(get: () => TestServer) {
  const open: { close(): void }[] = [];
  return {
    track<T extends { close(): void }>(s: T): T {
      open.push(s);
      return s;
    },
    closeAll(): void {
      for (const s of open.splice(0)) s.close();
    },
    async pay(qrCodeId: string): Promise<string> {
      const res = await get().postWebhook(qrCredited(qrCodeId, 2000));
      expect(res.status).toBe(200);
      return res.body.orderId as string;
    },
    async order(id: string): Promise<any> {
      const res = await get().request('GET', `/v1/orders/${id}`);
      expect(res.status).toBe(200);
      return res.body;
    },
    async offline(machineId: string): Promise<void> {
      await eventually(
        async () => (await get().request('GET', `/v1/machines/${machineId}`)).body.status === 'OFFLINE',
        5_000,
        `${machineId} OFFLINE`,
      );
    },
    async outboxDrained(): Promise<void> {
      await eventually(
        async () => (await get().kioskhub.db.selectFrom('outbox').select('id').execute()).length === 0,
        5_000,
        'outbox drained',
      );
    },
    commands(orderId: string) {
      return get().kioskhub.services.commands.listForOrder(orderId);
    },
  };
}

describe.each(engines())('dispatch after a reconnect of a machine that reported ERROR (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, track } = h;
  const reaches = (orderId: string, status: string) =>
    eventually(async () => (await order(orderId)).status === status, 5_000, `${orderId} ${status}`);

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('an order paid while it was away is not sent at reconnect, only after a heartbeat says IDLE', async () => {
    const m = await server.createVendingMachine('RCERRAWAY', 2000);
    const first = track(await new V2Machine(server.url, m.id, m.key).open());
    expect((await first.heartbeat('ERROR')).ok).toBe(true);
    first.close();
    await h.offline(m.id);

    const o1 = await pay(m.qrCodeId);
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'QUEUED' });

    // It comes back: the connection is no IDLE report, and its last report said ERROR.
    const back = track(new V2Machine(server.url, m.id, m.key));
    await back.open();
    await h.outboxDrained();
    await sleep(500);
    expect(back.received).toHaveLength(0);
    expect((await order(o1)).status).toBe('PAID');
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'QUEUED' });

    expect((await back.heartbeat('IDLE')).ok).toBe(true);
    const r = await back.nth(0);
    expect(r.command.orderId).toBe(o1);
    r.ack({ accepted: true });
    expect((await back.done(r.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
    expect(back.received).toHaveLength(1);
  });

  it('an order paid right after the reconnect (claimed with its payment on the row’s IDLE) waits for IDLE too', async () => {
    const m = await server.createVendingMachine('RCERRPAY', 2000);
    const first = track(await new V2Machine(server.url, m.id, m.key).open());
    expect((await first.heartbeat('ERROR')).ok).toBe(true);
    first.close();
    await h.offline(m.id);

    const back = track(await new V2Machine(server.url, m.id, m.key).open());
    await eventually(
      async () => (await server.request('GET', `/v1/machines/${m.id}`)).body.socketConnected === true,
      5_000,
      'online again',
    );
    const o1 = await pay(m.qrCodeId);
    await h.outboxDrained();
    await sleep(500);
    expect(back.received).toHaveLength(0);
    expect((await order(o1)).status).toBe('PAID');

    expect((await back.heartbeat('IDLE')).ok).toBe(true);
    const r = await back.nth(0);
    expect(r.command.orderId).toBe(o1);
    r.ack({ accepted: true });
    expect((await back.done(r.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
    expect(back.received).toHaveLength(1);
  });

  it('the command in flight still goes out again at reconnect (the machine has seen it), the next one only after IDLE', async () => {
    const m = await server.createVendingMachine('RCERRFLY', 2000);
    const first = track(await new V2Machine(server.url, m.id, m.key).open());
    const o1 = await pay(m.qrCodeId);
    const r1 = await first.nth(0);
    r1.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');
    const o2 = await pay(m.qrCodeId);
    expect((await first.heartbeat('ERROR')).ok).toBe(true);
    first.close();
    await h.offline(m.id);

    const back = track(await new V2Machine(server.url, m.id, m.key).open());
    const again = await back.nth(0);
    expect(again.command.commandId).toBe(r1.command.commandId);
    again.ack({ accepted: true });
    // Its result counts the machine IDLE (api.md §12): the next order goes out.
    expect((await back.done(again.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
    const r2 = await back.nth(1);
    expect(r2.command.orderId).toBe(o2);
  });
});

describe.each(engines())('a v2 command of a machine that comes back on v1 (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, track } = h;

  beforeAll(async () => {
    server = await startServer({ engine, env: { DISPATCH_RESULT_TIMEOUT_MS: '500' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('is never sent on v1, goes to review after DISPATCH_RESULT_TIMEOUT_MS, and the next order goes out on v1', async () => {
    const m = await server.createVendingMachine('RCV2V1', 2000);
    const v2 = track(await new V2Machine(server.url, m.id, m.key).open());
    const o1 = await pay(m.qrCodeId);
    const r1 = await v2.nth(0);
    r1.ack({ accepted: true });
    await eventually(async () => (await order(o1)).status === 'DISPATCHED', 5_000, 'o1 DISPATCHED');
    const o2 = await pay(m.qrCodeId);
    expect((await h.commands(o2))[0]).toMatchObject({ status: 'QUEUED' });

    // Rolled back to firmware that speaks v1: it comes back without a result for o1.
    v2.close();
    await h.offline(m.id);
    const v1 = track(await new V1Machine(server.url, m.id, m.key).open());

    // o1 goes to an operator (it may have been dispensed) instead of staying in flight for ever
    // and holding back o2.
    await eventually(async () => (await order(o1)).status === 'NEEDS_REVIEW', 5_000, 'o1 NEEDS_REVIEW');
    expect((await order(o1)).failureCode).toBe('NO_RESULT');
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'NEEDS_REVIEW' });
    await eventually(() => v1.dispenses.length > 0, 5_000, 'a dispense on v1');
    expect(v1.dispenses).toEqual([{ type: 'DISPENSE', orderId: o2 }]);
    expect(await v1.done(o2)).toMatchObject({ ok: true, orderId: o2 });
    await eventually(async () => (await order(o2)).status === 'COMPLETED', 5_000, 'o2 COMPLETED');
    expect(v1.dispenses.filter((d) => d.orderId === o1)).toHaveLength(0);
  });

  it('a command sent over v2 and never acknowledged (order still PAID) is not sent on v1 either: it is reviewed', async () => {
    const m = await server.createVendingMachine('RCV2V1NOACK', 2000);
    const v2 = track(await new V2Machine(server.url, m.id, m.key).open());
    const o1 = await pay(m.qrCodeId);
    const r1 = await v2.nth(0);
    expect(r1.command.orderId).toBe(o1);
    // No ack: the machine is rolled back before it answers.
    v2.close();
    await h.offline(m.id);
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'SENT', protocol: 'v2' });
    expect((await order(o1)).status).toBe('PAID');

    const v1 = track(await new V1Machine(server.url, m.id, m.key).open());
    await eventually(async () => (await order(o1)).status === 'NEEDS_REVIEW', 5_000, 'o1 NEEDS_REVIEW');
    const o2 = await pay(m.qrCodeId);
    await eventually(() => v1.dispenses.length > 0, 5_000, 'a dispense on v1');
    expect(v1.dispenses).toEqual([{ type: 'DISPENSE', orderId: o2 }]);
  });
});
