// The seed-compatible v1 machine protocol on the default namespace (CONTRACTS.md §5 v1),
// spoken by a client that behaves exactly like the earlier vending backend's simulator:
// default namespace, websocket only, machine:connect with an ack, heartbeats without an
// ack, no ack for machine:dispense, machine:done with an ack.
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  eventually,
  nextEvent,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';

interface V1Dispense {
  type: string;
  orderId: string;
}
type Answer = 'SUCCESS' | 'FAILED' | 'silent';

/** A v1 vending machine as the seed backend's simulator is built. */
class V1Machine {
  readonly socket: Socket;
  readonly welcome: Promise<{ ts: number; socketId: string }>;
  readonly dispenses: V1Dispense[] = [];
  readonly dispenseArgs: unknown[][] = [];
  readonly doneAcks: unknown[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(
    url: string,
    readonly machineId: string,
    private readonly token: string,
    public answer: Answer = 'SUCCESS',
  ) {
    this.socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    this.welcome = nextEvent(this.socket, 'machine:welcome', 10_000);
    this.socket.on('machine:dispense', (...args: unknown[]) => {
      this.dispenseArgs.push(args);
      const payload = args[0] as V1Dispense;
      this.dispenses.push(payload);
      const answer = this.answer;
      if (answer === 'silent') return;
      // The reference machine "dispenses" for a moment, then reports.
      setTimeout(() => {
        void this.done(payload.orderId, answer).then((ack) => this.doneAcks.push(ack));
      }, 20);
    });
  }

  async open(): Promise<this> {
    await connected(this.socket);
    return this;
  }

  /** machine:connect {machineId, token} with an ack. */
  register(token = this.token): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('machine:connect', { machineId: this.machineId, token });
  }

  /** The reference client's heartbeat: no ack callback. */
  heartbeat(): void {
    this.socket.emit('machine:heartbeat', { machineId: this.machineId, ts: Date.now() });
  }

  startHeartbeats(ms: number): void {
    this.heartbeatTimer = setInterval(() => this.heartbeat(), ms);
  }

  done(orderId: string, result: 'SUCCESS' | 'FAILED'): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('machine:done', { orderId, result });
  }

  dispensesFor(orderId: string): number {
    return this.dispenses.filter((d) => d.orderId === orderId).length;
  }

  close(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.socket.disconnect();
  }
}

function helpers(get: () => TestServer) {
  const open: V1Machine[] = [];
  return {
    /** Connects a v1 machine and sends machine:connect with its key. */
    async online(machineId: string, key: string, answer: Answer = 'SUCCESS'): Promise<V1Machine> {
      const m = new V1Machine(get().url, machineId, key, answer);
      open.push(m);
      await m.open();
      const ack = await m.register();
      expect(ack).toMatchObject({ ok: true, machineId });
      return m;
    },
    client(machineId: string, key: string, answer: Answer = 'SUCCESS'): V1Machine {
      const m = new V1Machine(get().url, machineId, key, answer);
      open.push(m);
      return m;
    },
    closeAll(): void {
      for (const m of open.splice(0)) m.close();
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
    async machine(id: string): Promise<any> {
      const res = await get().request('GET', `/v1/machines/${id}`);
      expect(res.status).toBe(200);
      return res.body;
    },
  };
}

describe.each(engines())('v1 machine gateway (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, machine } = h;
  const orderIn = (id: string, status: string) =>
    eventually(
      async () => {
        const o = await order(id);
        return o.status === status ? o : undefined;
      },
      5_000,
      `order ${status}`,
    );

  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('greets every connection with machine:welcome {ts, socketId}', async () => {
    const before = Date.now();
    const m = h.client('V1NOBODY', 'irrelevant');
    await m.open();
    const welcome = await m.welcome;
    expect(Number.isInteger(welcome.ts)).toBe(true);
    expect(welcome.ts).toBeGreaterThanOrEqual(before);
    expect(welcome.ts).toBeLessThanOrEqual(Date.now());
    expect(welcome.socketId).toBe(m.socket.id);
  });

  it('refuses a bad token with UNAUTHORIZED_MACHINE and disconnects the socket', async () => {
    const created = await server.createMachine('V1BADTOKEN');
    const other = await server.createMachine('V1OTHER');
    for (const [machineId, token] of [
      [created.id, 'mk_not_the_key_00000000000000000000'],
      [created.id, other.key],
      ['V1UNKNOWN', created.key],
    ] as const) {
      const m = h.client(machineId, token);
      await m.open();
      const dropped = nextEvent<string>(m.socket, 'disconnect', 5_000);
      const ack = await m.register();
      expect(ack).toMatchObject({
        ok: false,
        error: { code: 'UNAUTHORIZED_MACHINE', message: expect.any(String) },
      });
      expect(await dropped).toBe('io server disconnect');
    }
    const row = await machine(created.id);
    expect(row.status).toBe('OFFLINE');
    expect(row.socketConnected).toBe(false);
  });

  it('answers an event it does not take (asked with an ack) with UNKNOWN_EVENT', async () => {
    const created = await server.createMachine('V1UNK');
    const m = h.client(created.id, created.key);
    await m.open();
    await m.welcome;
    const answer = await m.socket.timeout(5_000).emitWithAck('machine:hello', {});
    expect(answer).toMatchObject({ ok: false, error: { code: 'UNKNOWN_EVENT' } });
    expect(await m.register()).toMatchObject({ ok: true, machineId: created.id });
  });

  it('answers a heartbeat before machine:connect with MACHINE_NOT_REGISTERED', async () => {
    const created = await server.createMachine('V1EARLY');
    const m = h.client(created.id, created.key);
    await m.open();
    await m.welcome;
    const early = await m.socket
      .timeout(5_000)
      .emitWithAck('machine:heartbeat', { machineId: created.id, ts: Date.now() });
    expect(early).toMatchObject({ ok: false, error: { code: 'MACHINE_NOT_REGISTERED' } });
    const earlyDone = await m.done('01JNOORDER0000000000000000', 'SUCCESS');
    expect(earlyDone).toMatchObject({ ok: false, error: { code: 'MACHINE_NOT_REGISTERED' } });
    expect((await machine(created.id)).socketConnected).toBe(false);

    // Registering on the same socket afterwards works, and then heartbeats are answered.
    const authenticated = nextEvent(m.socket, 'machine:authenticated', 5_000);
    expect(await m.register()).toMatchObject({ ok: true, machineId: created.id });
    await authenticated;
    const later = await m.socket
      .timeout(5_000)
      .emitWithAck('machine:heartbeat', { machineId: created.id, ts: Date.now() });
    expect(later).toMatchObject({ ok: true, ts: expect.any(Number) });
  });

  it('emits machine:authenticated after a good machine:connect and shows the machine online', async () => {
    const created = await server.createMachine('V1AUTH');
    const m = h.client(created.id, created.key);
    await m.open();
    await m.welcome;
    const authenticated = nextEvent(m.socket, 'machine:authenticated', 5_000);
    const ack = await m.register();
    expect(ack).toEqual({ ok: true, machineId: created.id });
    expect(await authenticated).toMatchObject({ ok: true, machineId: created.id, ts: expect.any(Number) });

    // Heartbeats without an ack callback are accepted silently and keep the socket open.
    m.heartbeat();
    m.heartbeat();
    const row = await eventually(
      async () => {
        const x = await machine(created.id);
        return x.socketConnected ? x : undefined;
      },
      5_000,
      'online',
    );
    expect(row.status).toBe('IDLE');
    expect(row.protocol).toBe('v1');
    expect(m.socket.connected).toBe(true);

    m.close();
    await eventually(async () => (await machine(created.id)).status === 'OFFLINE', 5_000, 'OFFLINE');
  });

  it('dispenses a paid order once and completes it; an order paid while offline goes out on connect', async () => {
    const vm = await server.createVendingMachine('V1OK', 2000);
    const offlineOrder = await pay(vm.qrCodeId);
    expect(await order(offlineOrder)).toMatchObject({ status: 'PAID', dispatchPending: true });

    const m = await h.online(vm.id, vm.key);
    m.startHeartbeats(100);
    await orderIn(offlineOrder, 'COMPLETED');

    const paid = await pay(vm.qrCodeId);
    const completed = await orderIn(paid, 'COMPLETED');
    expect(completed.failureCode).toBeNull();
    expect(completed.dispatchPending).toBe(false);

    // Exactly the seed's payload, no ack callback, once per order.
    for (const args of m.dispenseArgs) {
      expect(args).toHaveLength(1);
    }
    expect(m.dispenses).toEqual([
      { type: 'DISPENSE', orderId: offlineOrder },
      { type: 'DISPENSE', orderId: paid },
    ]);
    await eventually(() => m.doneAcks.length === 2, 5_000, 'done acks');
    expect(m.doneAcks).toEqual([
      { ok: true, orderId: offlineOrder },
      { ok: true, orderId: paid },
    ]);
    // A repeated result is answered and changes nothing.
    expect(await m.done(paid, 'FAILED')).toMatchObject({ ok: true, orderId: paid });
    expect((await order(paid)).status).toBe('COMPLETED');
    expect(m.dispensesFor(paid)).toBe(1);
  });

  it('a FAILED result makes the order FAILED with failureCode DISPENSE_FAILED', async () => {
    const vm = await server.createVendingMachine('V1FAIL', 2000);
    const m = await h.online(vm.id, vm.key, 'FAILED');
    const paid = await pay(vm.qrCodeId);
    const failed = await orderIn(paid, 'FAILED');
    expect(failed.failureCode).toBe('DISPENSE_FAILED');
    await eventually(() => m.doneAcks.length === 1, 5_000, 'done ack');
    expect(m.doneAcks[0]).toEqual({ ok: true, orderId: paid });
    expect(m.dispensesFor(paid)).toBe(1);

    // The machine is free again: the next order goes out and can succeed.
    m.answer = 'SUCCESS';
    const next = await pay(vm.qrCodeId);
    await orderIn(next, 'COMPLETED');
    expect((await order(paid)).status).toBe('FAILED');
  });

  it('refuses machine:done for an order that was not sent to this machine', async () => {
    const a = await server.createVendingMachine('V1DONEA', 2000);
    const b = await server.createVendingMachine('V1DONEB', 2000);
    const ma = await h.online(a.id, a.key, 'silent');
    const mb = await h.online(b.id, b.key, 'silent');
    const oB = await pay(b.qrCodeId);
    await eventually(() => mb.dispensesFor(oB) === 1, 5_000, 'B dispense');
    const foreign = await ma.done(oB, 'SUCCESS');
    expect(foreign.ok).toBe(false);
    expect(typeof foreign.error.code).toBe('string');
    const unknown = await ma.done('01JNOSUCHORDER000000000000', 'SUCCESS');
    expect(unknown.ok).toBe(false);
    expect((await order(oB)).status).toBe('DISPATCHED');
    expect(await mb.done(oB, 'SUCCESS')).toMatchObject({ ok: true, orderId: oB });
    await orderIn(oB, 'COMPLETED');
  });
});

describe.each(engines())('v1 dispenses without a result (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order } = h;

  beforeAll(async () => {
    server = await startServer({ engine, env: { DISPATCH_RESULT_TIMEOUT_MS: '500' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('never re-sends a v1 dispense; after DISPATCH_RESULT_TIMEOUT_MS it is NEEDS_REVIEW and the next order goes out', async () => {
    const vm = await server.createVendingMachine('V1SILENT', 2000);
    const first = await h.online(vm.id, vm.key, 'silent');
    first.startHeartbeats(100);
    const o1 = await pay(vm.qrCodeId);
    await eventually(() => first.dispensesFor(o1) === 1, 5_000, 'o1 dispensed');
    expect((await order(o1)).status).toBe('DISPATCHED');
    const o2 = await pay(vm.qrCodeId);
    expect(await order(o2)).toMatchObject({ status: 'PAID', dispatchPending: true });

    // The machine drops off without answering and comes back on a new socket.
    first.close();
    const second = await h.online(vm.id, vm.key, 'silent');
    second.startHeartbeats(100);

    // The first thing the new socket gets is o2 — o1 is never sent again, on any socket.
    await eventually(() => second.dispenses.length > 0, 10_000, 'a dispense after reconnecting');
    expect(second.dispenses[0]).toEqual({ type: 'DISPENSE', orderId: o2 });
    const review = await order(o1);
    expect(review.status).toBe('NEEDS_REVIEW');
    expect(review.dispatchPending).toBe(false);
    expect(first.dispensesFor(o1)).toBe(1);
    expect(second.dispensesFor(o1)).toBe(0);

    expect(await second.done(o2, 'SUCCESS')).toMatchObject({ ok: true, orderId: o2 });
    await eventually(async () => (await order(o2)).status === 'COMPLETED', 5_000, 'o2 COMPLETED');
    expect(second.dispensesFor(o1)).toBe(0);
    expect(first.dispenses).toHaveLength(1);
  });
});

describe.each(engines())('v1 socket closed while its key is checked (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, machine } = h;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  beforeAll(async () => {
    server = await startServer({
      engine,
      env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '400', DISPATCH_RESULT_TIMEOUT_MS: '500' },
    });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('is not registered: the machine stays offline and its paid order stays queued', async () => {
    const vm = await server.createVendingMachine('V1GONE', 2000);
    // A slow key check (a busy database): the machine's lookup takes 200 ms.
    const machines = server.kioskhub.services.machines;
    const findRow = machines.findRow;
    let lookupStarted!: () => void;
    const started = new Promise<void>((resolve) => (lookupStarted = resolve));
    let lookupDone: Promise<unknown> | undefined;
    machines.findRow = (id, ex) => {
      if (id !== vm.id) return findRow(id, ex);
      lookupStarted();
      const row = sleep(200).then(() => findRow(id, ex));
      lookupDone = row.catch(() => undefined);
      return row;
    };
    try {
      const m = h.client(vm.id, vm.key);
      await m.open();
      // No answer ever comes: the socket is gone before the key is checked.
      m.register().catch(() => undefined);
      await started;
      m.close();
      await lookupDone;
    } finally {
      machines.findRow = findRow;
    }

    // Past MACHINE_HEARTBEAT_TIMEOUT_MS (and a sweep after it): nothing of the socket is left.
    await sleep(600);
    expect(server.kioskhub.services.presence.local(vm.id)).toBeUndefined();
    const row = await machine(vm.id);
    expect(row.socketConnected).toBe(false);
    expect(row.status).toBe('OFFLINE');

    // A paid order waits for the machine instead of going into the dead socket (and from there,
    // after DISPATCH_RESULT_TIMEOUT_MS, to review).
    const paid = await pay(vm.qrCodeId);
    await sleep(800);
    expect(await order(paid)).toMatchObject({ status: 'PAID', dispatchPending: true });
    expect((await server.kioskhub.services.commands.listForOrder(paid))[0]!.status).toBe('QUEUED');
  });
});
