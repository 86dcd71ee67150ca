// The v2 machine gateway on /machines (CONTRACTS.md §5): handshake auth, heartbeats, the
// per-machine command queue (oldest first, one in flight), retransmission, results and
// payload validation, spoken by a raw socket.io-client so every ack is under the test's control.
import type { DispenseCommand } from '@kioskhub/protocol';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
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

interface Received {
  command: DispenseCommand;
  ack: (answer: unknown) => void;
}

/** A v2 machine whose every answer is decided by the test. */
class RawMachine {
  readonly socket: Socket;
  readonly received: Received[] = [];
  onDispense: ((r: Received) => void) | undefined;

  constructor(url: string, machineId: string, key: string) {
    this.socket = machineSocket(url, machineId, key);
    this.socket.on('machine:dispense', (command: DispenseCommand, ack: (answer: unknown) => void) => {
      const r = { command, ack: typeof ack === 'function' ? ack : () => undefined };
      this.received.push(r);
      this.onDispense?.(r);
    });
  }

  async open(): Promise<this> {
    await connected(this.socket);
    return this;
  }

  emit(event: string, ...args: unknown[]): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck(event, ...args);
  }

  heartbeat(status: 'IDLE' | 'BUSY' | 'ERROR' = 'IDLE', extra: Record<string, unknown> = {}): Promise<any> {
    return this.emit('machine:heartbeat', { status, ...extra });
  }

  done(
    command: DispenseCommand,
    status: 'SUCCESS' | 'FAILED' = 'SUCCESS',
    extra: Record<string, unknown> = {},
  ): Promise<any> {
    return this.emit('machine:done', {
      commandId: command.commandId,
      orderId: command.orderId,
      status,
      ...extra,
    });
  }

  /** The (n+1)-th machine:dispense this socket received. */
  nth(n: number, timeoutMs = 10_000): Promise<Received> {
    return eventually(() => this.received[n], timeoutMs, `machine:dispense #${n + 1}`);
  }

  /** The first machine:dispense for `orderId`. */
  forOrder(orderId: string, timeoutMs = 10_000): Promise<Received> {
    return eventually(
      () => this.received.find((r) => r.command.orderId === orderId),
      timeoutMs,
      `machine:dispense for ${orderId}`,
    );
  }

  /** Heartbeats IDLE every `ms` until stopped (or closed). */
  keepAlive(ms: number): () => void {
    const timer = setInterval(() => {
      if (this.socket.connected) this.socket.emit('machine:heartbeat', { status: 'IDLE' }, () => undefined);
    }, ms);
    this.stopKeepAlive = () => clearInterval(timer);
    return this.stopKeepAlive;
  }

  private stopKeepAlive: () => void = () => undefined;

  close(): void {
    this.stopKeepAlive();
    this.socket.disconnect();
  }
}

function helpers(get: () => TestServer) {
  const sockets: { close(): void }[] = [];
  return {
    track<T extends { close(): void }>(s: T): T {
      sockets.push(s);
      return s;
    },
    closeAll(): void {
      for (const s of sockets.splice(0)) s.close();
    },
    async pay(qrCodeId: string, amount = 2000): Promise<string> {
      const res = await get().postWebhook(qrCredited(qrCodeId, amount));
      expect(res.status).toBe(200);
      expect(res.body.ok).toBe(true);
      expect(typeof res.body.orderId).toBe('string');
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
    async timeline(id: string): Promise<any[]> {
      const res = await get().request('GET', `/v1/orders/${id}/timeline`);
      expect(res.status).toBe(200);
      return res.body.items as any[];
    },
    async commands(orderId: string) {
      return get().kioskhub.services.commands.listForOrder(orderId);
    },
  };
}

describe.each(engines())('v2 machine gateway (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, machine, timeline, track } = h;
  const statusOf = async (id: string) => (await order(id)).status as string;
  const reaches = (orderId: string, status: string) =>
    eventually(async () => (await statusOf(orderId)) === status, 5_000, `${orderId} ${status}`);
  /** A v2 machine that has accepted one paid order (DISPATCHED): the start of the tests about what follows. */
  async function dispatchedOne(id: string) {
    const m = await server.createVendingMachine(id, 2000);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const o1 = await pay(m.qrCodeId);
    const r = await raw.nth(0);
    r.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');
    return { m, raw, o1, r };
  }

  beforeAll(async () => {
    server = await startServer({ engine, env: { DISPATCH_ACK_TIMEOUT_MS: '300' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('refuses a handshake without auth, with a wrong key, another machine’s key or an unknown id', async () => {
    const a = await server.createMachine('V2AUTH1');
    const b = await server.createMachine('V2AUTH2');
    const attempts: Socket[] = [
      io(`${server.url}/machines`, { transports: ['websocket'], reconnection: false, forceNew: true }),
      io(`${server.url}/machines`, {
        auth: { machineId: a.id },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      }),
      io(`${server.url}/machines`, {
        auth: { machineId: a.id, key: 42 },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      }),
      machineSocket(server.url, a.id, 'mk_wrong_key_0000000000000000000000'),
      machineSocket(server.url, a.id, b.key),
      machineSocket(server.url, 'V2AUTH_NOPE', a.key),
    ];
    for (const s of attempts) track({ close: () => s.disconnect() });
    // Listen on every socket at once: a refusal may come before the previous one is checked.
    const outcomes = await Promise.all(
      attempts.map((s) =>
        connected(s).then(
          () => 'connected',
          (err: Error) => err.message,
        ),
      ),
    );
    expect(outcomes).toEqual(attempts.map(() => 'unauthorized'));
    for (const s of attempts) expect(s.connected).toBe(false);
    const row = await machine(a.id);
    expect(row.status).toBe('OFFLINE');
    expect(row.socketConnected).toBe(false);
  });

  it('answers an event it does not take (asked with an ack) with UNKNOWN_EVENT, and stays connected', async () => {
    const m = await server.createMachine('V2UNK');
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const answer = await raw.emit('machine:status', { status: 'IDLE' });
    expect(answer).toMatchObject({ ok: false, error: { code: 'UNKNOWN_EVENT' } });
    expect(answer.error.message).toMatch(
      /"machine:status" is not an event here; .*machine:heartbeat, machine:done/,
    );
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
  });

  it('acknowledges heartbeats with {ok, serverTime} and shows the reported status', async () => {
    const m = await server.createMachine('V2HB');
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    await eventually(async () => (await machine(m.id)).socketConnected === true, 5_000, 'socketConnected');

    const ack = await raw.heartbeat('IDLE', { firmware: 'fw-2.1', metrics: { tempC: 4 } });
    expect(ack.ok).toBe(true);
    expect(typeof ack.serverTime).toBe('string');
    expect(Number.isNaN(Date.parse(ack.serverTime))).toBe(false);
    let row = await machine(m.id);
    expect(row.status).toBe('IDLE');
    expect(row.firmware).toBe('fw-2.1');
    expect(row.lastSeenAt).toEqual(expect.any(String));

    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    row = await machine(m.id);
    expect(row.status).toBe('BUSY');
    expect(row.socketConnected).toBe(true);

    expect((await raw.heartbeat('ERROR')).ok).toBe(true);
    expect((await machine(m.id)).status).toBe('ERROR');

    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    expect((await machine(m.id)).status).toBe('IDLE');

    raw.close();
    row = await eventually(
      async () => {
        const r = await machine(m.id);
        return r.socketConnected === false ? r : undefined;
      },
      5_000,
      'disconnect recorded',
    );
    expect(row.status).toBe('OFFLINE');
  });

  it('sends orders paid while offline oldest first, one at a time, even to a slow machine that acks and says IDLE', async () => {
    const m = await server.createVendingMachine('V2QUEUE', 2000);
    const orderIds: string[] = [];
    for (let i = 0; i < 3; i++) orderIds.push(await pay(m.qrCodeId));
    for (const id of orderIds) {
      const o = await order(id);
      expect(o.status).toBe('PAID');
      expect(o.dispatchPending).toBe(true);
    }

    const raw = track(new RawMachine(server.url, m.id, m.key));
    const violations: string[] = [];
    let outstanding: string | null = null;
    raw.onDispense = ({ command }) => {
      if (outstanding !== null && command.commandId !== outstanding)
        violations.push(`${command.orderId} sent while ${outstanding} was in flight`);
    };
    await raw.open();

    for (let i = 0; i < 3; i++) {
      const r = await raw.nth(i);
      expect(r.command).toMatchObject({ orderId: orderIds[i], amountMinor: 2000, currency: 'INR' });
      expect(r.command.commandId).toEqual(expect.any(String));
      expect(Number.isNaN(Date.parse(r.command.issuedAt))).toBe(false);
      outstanding = r.command.commandId;
      r.ack({ accepted: true });
      await eventually(
        async () => (await statusOf(orderIds[i]!)) === 'DISPATCHED',
        5_000,
        `order ${i + 1} DISPATCHED`,
      );
      expect((await order(orderIds[i]!)).dispatchPending).toBe(false);

      // Slow to dispense, and even says IDLE meanwhile: still nothing else may go out.
      expect((await raw.heartbeat('IDLE')).ok).toBe(true);
      expect((await raw.heartbeat('IDLE')).ok).toBe(true);
      for (const later of orderIds.slice(i + 1)) expect(await statusOf(later)).toBe('PAID');
      expect(raw.received).toHaveLength(i + 1);

      outstanding = null;
      const ack = await raw.done(r.command, 'SUCCESS');
      expect(ack.ok).toBe(true);
      await eventually(
        async () => (await statusOf(orderIds[i]!)) === 'COMPLETED',
        5_000,
        `order ${i + 1} COMPLETED`,
      );
    }
    expect(violations).toEqual([]);
    expect(raw.received.map((r) => r.command.orderId)).toEqual(orderIds);
    expect(new Set(raw.received.map((r) => r.command.commandId)).size).toBe(3);
  });

  it('re-sends the same commandId after the ack timeout and on a new connection, and nothing else meanwhile', async () => {
    const m = await server.createVendingMachine('V2RETX', 2000);
    const first = track(new RawMachine(server.url, m.id, m.key));
    await first.open();
    const o1 = await pay(m.qrCodeId);
    const o2 = await pay(m.qrCodeId);

    const sent = await first.nth(0);
    expect(sent.command.orderId).toBe(o1);
    // No ack: the same command comes again after DISPATCH_ACK_TIMEOUT_MS.
    const again = await first.nth(1);
    expect(again.command).toEqual(sent.command);
    const third = await first.nth(2);
    expect(third.command.commandId).toBe(sent.command.commandId);
    expect(first.received.every((r) => r.command.orderId === o1)).toBe(true);
    const pending = await order(o1);
    expect(pending.status).toBe('PAID');
    expect(pending.dispatchPending).toBe(true);
    expect(await statusOf(o2)).toBe('PAID');

    // The connection drops without an ack: the next connection gets the same command first.
    first.close();
    await eventually(async () => (await machine(m.id)).socketConnected === false, 5_000, 'first socket gone');
    const second = track(new RawMachine(server.url, m.id, m.key));
    await second.open();
    const resent = await second.nth(0);
    expect(resent.command.commandId).toBe(sent.command.commandId);
    expect(resent.command.orderId).toBe(o1);
    resent.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');
    expect((await second.done(resent.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');

    const next = await second.forOrder(o2);
    expect(next.command.commandId).not.toBe(sent.command.commandId);
    // Everything before o2's command was o1's command again, never o2 early.
    const before = second.received.slice(0, second.received.indexOf(next));
    expect(before.every((r) => r.command.commandId === sent.command.commandId)).toBe(true);
    next.ack({ accepted: true });
    expect((await second.done(next.command)).ok).toBe(true);
    await reaches(o2, 'COMPLETED');
    const rows = await h.commands(o1);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.attempts).toBeGreaterThanOrEqual(4);
  });

  it('accepted:false keeps the order PAID and queued; it goes out again after a heartbeat with IDLE', async () => {
    const m = await server.createVendingMachine('V2DECL', 2000);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const o1 = await pay(m.qrCodeId);

    const first = await raw.nth(0);
    first.ack({ accepted: false, reason: 'BUSY' });
    await eventually(
      async () => (await timeline(o1)).some((e) => e.type === 'command_declined'),
      5_000,
      'decline recorded',
    );
    let o = await order(o1);
    expect(o.status).toBe('PAID');
    expect(o.dispatchPending).toBe(true);

    // Still busy: nothing is sent.
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    expect(raw.received).toHaveLength(1);
    expect((await order(o1)).status).toBe('PAID');

    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const second = await raw.nth(1);
    expect(second.command.commandId).toBe(first.command.commandId);
    expect(second.command.orderId).toBe(o1);
    second.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');
    expect((await raw.done(second.command)).ok).toBe(true);
    o = await eventually(
      async () => {
        const x = await order(o1);
        return x.status === 'COMPLETED' ? x : undefined;
      },
      5_000,
      'COMPLETED',
    );
    expect(o.dispatchPending).toBe(false);
  });

  it('a malformed dispense ack counts as not accepted', async () => {
    const m = await server.createVendingMachine('V2BADACK', 2000);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const o1 = await pay(m.qrCodeId);
    const first = await raw.nth(0);
    first.ack({ accepted: 'yes' });
    await eventually(
      async () => (await timeline(o1)).some((e) => e.type === 'command_declined'),
      5_000,
      'decline recorded',
    );
    const o = await order(o1);
    expect(o.status).toBe('PAID');
    expect(o.dispatchPending).toBe(true);
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const second = await raw.nth(1);
    expect(second.command.commandId).toBe(first.command.commandId);
    second.ack({ accepted: true });
    expect((await raw.done(second.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
  });

  it('answers a repeated machine:done with ok and changes nothing', async () => {
    const { m, raw, o1, r } = await dispatchedOne('V2REP');
    expect((await raw.done(r.command, 'SUCCESS')).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
    const orderBefore = await order(o1);
    const timelineBefore = await timeline(o1);

    // The machine is busy with something of its own when it repeats the old result.
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    expect((await machine(m.id)).status).toBe('BUSY');

    const repeat = await raw.done(r.command, 'SUCCESS');
    expect(repeat.ok).toBe(true);
    const contradicting = await raw.done(r.command, 'FAILED', { failureCode: 'MOTOR_JAM' });
    expect(contradicting.ok).toBe(true);

    const orderAfter = await order(o1);
    expect(orderAfter.status).toBe('COMPLETED');
    expect(orderAfter.failureCode).toBeNull();
    expect(orderAfter.updatedAt).toBe(orderBefore.updatedAt);
    expect(await timeline(o1)).toEqual(timelineBefore);
    expect((await machine(m.id)).status).toBe('BUSY');

    // Still BUSY as far as the server is concerned: a new order waits for IDLE.
    const o2 = await pay(m.qrCodeId);
    await eventually(async () => (await timeline(o2)).length > 0, 5_000, 'o2 recorded');
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    expect(raw.received).toHaveLength(1);
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const next = await raw.forOrder(o2);
    next.ack({ accepted: true });
    expect((await raw.done(next.command)).ok).toBe(true);
    await reaches(o2, 'COMPLETED');
  });

  it('machine:done FAILED makes the order FAILED with its failureCode, and the next order goes out', async () => {
    const m = await server.createVendingMachine('V2FAIL', 2000);
    const o1 = await pay(m.qrCodeId);
    const o2 = await pay(m.qrCodeId);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const r = await raw.nth(0);
    expect(r.command.orderId).toBe(o1);
    r.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');
    const ack = await raw.done(r.command, 'FAILED', { failureCode: 'MOTOR_JAM', details: { slot: 3 } });
    expect(ack.ok).toBe(true);
    const failed = await eventually(
      async () => {
        const x = await order(o1);
        return x.status === 'FAILED' ? x : undefined;
      },
      5_000,
      'FAILED',
    );
    expect(failed.failureCode).toBe('MOTOR_JAM');
    expect(failed.dispatchPending).toBe(false);

    const next = await raw.forOrder(o2);
    next.ack({ accepted: true });
    expect((await raw.done(next.command, 'SUCCESS')).ok).toBe(true);
    await reaches(o2, 'COMPLETED');
    expect((await order(o1)).status).toBe('FAILED');
  });

  it('machine:done for an unknown command or another machine’s command is refused and changes nothing', async () => {
    const a = await server.createVendingMachine('V2FOREIGNA', 2000);
    const b = await server.createVendingMachine('V2FOREIGNB', 2000);
    const rawA = track(new RawMachine(server.url, a.id, a.key));
    const rawB = track(new RawMachine(server.url, b.id, b.key));
    await rawA.open();
    await rawB.open();
    const oB = await pay(b.qrCodeId);
    const rB = await rawB.nth(0);
    rB.ack({ accepted: true });
    await reaches(oB, 'DISPATCHED');
    const timelineBefore = await timeline(oB);

    const foreign = await rawA.done(rB.command, 'SUCCESS');
    expect(foreign.ok).toBe(false);
    expect(foreign.error.code).toEqual(expect.any(String));
    const foreignFail = await rawA.done(rB.command, 'FAILED', { failureCode: 'MOTOR_JAM' });
    expect(foreignFail.ok).toBe(false);
    // B's own command, but naming another order: not this command's result.
    const mismatched = await rawB.emit('machine:done', {
      commandId: rB.command.commandId,
      orderId: '01JOTHERORDER0000000000000',
      status: 'SUCCESS',
    });
    expect(mismatched.ok).toBe(false);
    expect(mismatched.error.code).toBe('NOT_FOUND');
    const unknown = await rawA.emit('machine:done', {
      commandId: '01JUNKNOWNCOMMAND000000000',
      orderId: oB,
      status: 'SUCCESS',
    });
    expect(unknown.ok).toBe(false);
    expect(unknown.error.code).toEqual(expect.any(String));

    const after = await order(oB);
    expect(after.status).toBe('DISPATCHED');
    expect(after.failureCode).toBeNull();
    expect(await timeline(oB)).toEqual(timelineBefore);
    const [command] = await h.commands(oB);
    expect(command!.status).toBe('ACCEPTED');

    // B's own result still counts.
    expect((await rawB.done(rB.command)).ok).toBe(true);
    await reaches(oB, 'COMPLETED');
  });

  it('rejects bad heartbeat and done payloads with VALIDATION_FAILED and changes nothing', async () => {
    const { m, raw, o1, r } = await dispatchedOne('V2VALID');
    expect((await raw.heartbeat('BUSY', { firmware: 'fw-1' })).ok).toBe(true);
    const machineBefore = await machine(m.id);
    const orderBefore = await order(o1);
    const timelineBefore = await timeline(o1);
    const { commandId, orderId } = r.command;

    const badHeartbeats: unknown[][] = [
      [],
      [null],
      ['IDLE'],
      [42],
      [['IDLE']],
      [true],
      [{}],
      [{ status: 'SLEEPING' }],
      [{ status: 'OFFLINE' }],
      [{ status: 'idle' }],
      [{ status: 1 }],
      [{ status: null }],
      [{ status: 'IDLE', firmware: 7 }],
      [{ status: 'IDLE', firmware: 'x'.repeat(65) }],
      [{ status: 'IDLE', metrics: 'hot' }],
      [{ status: 'IDLE', metrics: [1, 2] }],
      [{ status: 'IDLE', unknown: true }],
      [{ status: 'IDLE', machineId: m.id }],
    ];
    for (const args of badHeartbeats) {
      const ack = await raw.emit('machine:heartbeat', ...args);
      expect(ack, JSON.stringify(args)).toMatchObject({
        ok: false,
        error: { code: 'VALIDATION_FAILED', message: expect.any(String) },
      });
    }

    const badDones: unknown[][] = [
      [],
      [null],
      ['SUCCESS'],
      [7],
      [[commandId, orderId, 'SUCCESS']],
      [{}],
      [{ orderId, status: 'SUCCESS' }],
      [{ commandId, status: 'SUCCESS' }],
      [{ commandId, orderId }],
      [{ commandId: 123, orderId, status: 'SUCCESS' }],
      [{ commandId, orderId: { id: orderId }, status: 'SUCCESS' }],
      [{ commandId, orderId, status: 'OK' }],
      [{ commandId, orderId, status: 'success' }],
      [{ commandId, orderId, status: true }],
      [{ commandId: '', orderId, status: 'SUCCESS' }],
      [{ commandId, orderId: '', status: 'SUCCESS' }],
      [{ commandId, orderId, status: 'FAILED', failureCode: 12 }],
      [{ commandId, orderId, status: 'FAILED', failureCode: '' }],
      [{ commandId, orderId, status: 'SUCCESS', result: 'SUCCESS' }],
      [{ commandId, orderId, status: 'SUCCESS', machineId: m.id }],
    ];
    for (const args of badDones) {
      const ack = await raw.emit('machine:done', ...args);
      expect(ack, JSON.stringify(args)).toMatchObject({
        ok: false,
        error: { code: 'VALIDATION_FAILED', message: expect.any(String) },
      });
    }

    const machineAfter = await machine(m.id);
    expect(machineAfter.status).toBe('BUSY');
    expect(machineAfter.firmware).toBe(machineBefore.firmware);
    expect(machineAfter.socketConnected).toBe(true);
    const orderAfter = await order(o1);
    expect(orderAfter.status).toBe('DISPATCHED');
    expect(orderAfter.updatedAt).toBe(orderBefore.updatedAt);
    expect(await timeline(o1)).toEqual(timelineBefore);
    const [command] = await h.commands(o1);
    expect(command!.status).toBe('ACCEPTED');
    expect(raw.socket.connected).toBe(true);

    // The same connection still works with a valid result.
    expect((await raw.done(r.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
  });

  it('keeps one live socket per machine: a new connection replaces the old one and gets the in-flight command', async () => {
    const m = await server.createVendingMachine('V2ONE', 2000);
    const s1 = track(new RawMachine(server.url, m.id, m.key));
    await s1.open();
    const o1 = await pay(m.qrCodeId);
    const r1 = await s1.nth(0);
    r1.ack({ accepted: true });
    await reaches(o1, 'DISPATCHED');

    const dropped = nextEvent<string>(s1.socket, 'disconnect', 5_000);
    const s2 = track(new RawMachine(server.url, m.id, m.key));
    await s2.open();
    expect(await dropped).toBe('io server disconnect');
    expect(s1.socket.connected).toBe(false);
    expect(s2.socket.connected).toBe(true);

    // Not finished yet, so the new connection gets the same command again.
    const r2 = await s2.nth(0);
    expect(r2.command.commandId).toBe(r1.command.commandId);
    r2.ack({ accepted: true });
    expect((await s2.heartbeat('IDLE')).ok).toBe(true);
    const row = await eventually(
      async () => {
        const x = await machine(m.id);
        return x.socketConnected === true && x.status === 'IDLE' ? x : undefined;
      },
      5_000,
      'machine online via the new socket',
    );
    expect(row.socketConnected).toBe(true);

    // A third connection replaces the second too.
    const dropped2 = nextEvent<string>(s2.socket, 'disconnect', 5_000);
    const s3 = track(new RawMachine(server.url, m.id, m.key));
    await s3.open();
    expect(await dropped2).toBe('io server disconnect');
    const r3 = await s3.nth(0);
    expect(r3.command.commandId).toBe(r1.command.commandId);
    r3.ack({ accepted: true });
    expect((await s3.done(r3.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
    expect(s1.received).toHaveLength(1);
    await eventually(async () => (await machine(m.id)).socketConnected === true, 5_000, 'still connected');
  });

  it('claims the command with the payment when the machine is connected and IDLE, and queues it otherwise', async () => {
    const m = await server.createVendingMachine('V2FAST');
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    // Hold the machine's dispense acks: the states below are those the payments left behind.
    const first = await pay(m.qrCodeId);
    const [claimed] = await h.commands(first);
    // Claimed in the payment's own transaction (a claim by the dispatcher would show attempts 1
    // before the send): at most the send that followed it has been counted since.
    expect(claimed).toMatchObject({ status: 'SENT', protocol: 'v2' });
    const sent = await raw.forOrder(first);
    expect(sent.command.commandId).toBe(claimed!.id);
    await eventually(
      async () => (await h.commands(first))[0]!.attempts === 1,
      5_000,
      'the send counted once',
    );
    // One in flight: the second payment is queued behind it.
    const second = await pay(m.qrCodeId);
    expect((await h.commands(second))[0]).toMatchObject({ status: 'QUEUED', attempts: 0 });
    sent.ack({ accepted: true });
    expect((await raw.done(sent.command)).ok).toBe(true);
    const next = await raw.forOrder(second);
    next.ack({ accepted: true });
    expect((await raw.done(next.command)).ok).toBe(true);
    await reaches(second, 'COMPLETED');
    expect(raw.received.map((r) => r.command.orderId)).toEqual([first, second]);
    // A BUSY machine is not claimed for at payment time.
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    const third = await pay(m.qrCodeId);
    expect((await h.commands(third))[0]).toMatchObject({ status: 'QUEUED', attempts: 0 });
    const sends = (await timeline(first)).filter((e) => e.type === 'command_sent');
    expect(sends).toHaveLength(1);
    expect(sends[0].detail).toMatchObject({ commandId: claimed!.id, claimedWithPayment: true });
    const queuedSends = (await timeline(second)).filter((e) => e.type === 'command_sent');
    expect(queuedSends).toHaveLength(1);
    expect(queuedSends[0].detail.claimedWithPayment).toBeUndefined();
  });

  it('a result that arrives before its ack still passes DISPATCHED (timeline command_accepted), and the late ack changes nothing', async () => {
    const m = await server.createVendingMachine('V2RACE');
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const o = await pay(m.qrCodeId);
    const sent = await raw.forOrder(o);
    expect((await raw.done(sent.command)).ok).toBe(true);
    await reaches(o, 'COMPLETED');
    sent.ack({ accepted: true });
    await new Promise((r) => setTimeout(r, 200));
    const items = await timeline(o);
    expect(items.map((e) => e.type)).toEqual([
      'payment_received',
      'command_sent',
      'command_accepted',
      'dispensed',
    ]);
    expect(items[2].detail).toMatchObject({ commandId: sent.command.commandId, impliedByResult: true });
    expect((await order(o)).status).toBe('COMPLETED');
    expect((await h.commands(o))[0]).toMatchObject({
      status: 'DONE',
      result: 'SUCCESS',
      accepted_at: expect.any(String),
    });
  });

  it('sends nothing to a machine that reported BUSY until it reports IDLE', async () => {
    const m = await server.createVendingMachine('V2BUSY', 2000);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    const o1 = await pay(m.qrCodeId);
    // The payment's dispatch notice has been relayed (the outbox is empty) and two more BUSY
    // heartbeats went round: still nothing sent.
    await eventually(
      async () => (await server.kioskhub.db.selectFrom('outbox').select('id').execute()).length === 0,
      5_000,
      'outbox drained',
    );
    expect((await raw.heartbeat('BUSY')).ok).toBe(true);
    expect((await raw.heartbeat('ERROR')).ok).toBe(true);
    expect(raw.received).toHaveLength(0);
    const waiting = await order(o1);
    expect(waiting.status).toBe('PAID');
    expect(waiting.dispatchPending).toBe(true);
    expect((await h.commands(o1))[0]!.status).toBe('QUEUED');

    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const r = await raw.nth(0);
    expect(r.command.orderId).toBe(o1);
    r.ack({ accepted: true });
    expect((await raw.done(r.command)).ok).toBe(true);
    await reaches(o1, 'COMPLETED');
  });

  it('a BUSY heartbeat sent right after machine:done stands: the next order waits for IDLE', async () => {
    const { m, raw, r } = await dispatchedOne('V2DONEBUSY');
    const o2 = await pay(m.qrCodeId);
    expect((await h.commands(o2))[0]).toMatchObject({ status: 'QUEUED' });

    // The machine reports its result and at once starts something of its own: the BUSY comes
    // while the result is still being recorded.
    const [done, busy] = await Promise.all([raw.done(r.command), raw.heartbeat('BUSY')]);
    expect(done.ok).toBe(true);
    expect(busy.ok).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(raw.received).toHaveLength(1);
    expect(server.kioskhub.services.presence.local(m.id)?.status).toBe('BUSY');
    expect((await machine(m.id)).status).toBe('BUSY');
    expect(await statusOf(o2)).toBe('PAID');

    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const next = await raw.forOrder(o2);
    next.ack({ accepted: true });
    expect((await raw.done(next.command)).ok).toBe(true);
    await reaches(o2, 'COMPLETED');
    expect(raw.received).toHaveLength(2);
  });
});

describe.each(engines())('v2 machine whose row lags behind its reports (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, track } = h;

  beforeAll(async () => {
    server = await startServer({ engine, env: { STATUS_WRITE_INTERVAL_MS: '3000' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('a command claimed with its payment on the row’s IDLE is not sent while the machine’s last report is BUSY', async () => {
    const m = await server.createVendingMachine('V2LAG', 2000);
    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    // Five changes use up the burst of status writes (the last one written says IDLE); the BUSY
    // after them is written only once STATUS_WRITE_INTERVAL_MS has passed.
    for (const status of ['ERROR', 'BUSY', 'ERROR', 'BUSY', 'IDLE', 'BUSY'] as const)
      expect((await raw.heartbeat(status)).ok).toBe(true);
    const row = await server.kioskhub.db
      .selectFrom('machines')
      .select('status')
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('IDLE');
    expect(server.kioskhub.services.presence.local(m.id)?.status).toBe('BUSY');

    const o1 = await pay(m.qrCodeId);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(raw.received).toHaveLength(0);
    expect((await order(o1)).status).toBe('PAID');
    // Claimed in the payment's transaction on the row's word, and never sent.
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'SENT', attempts: 0 });

    // The machine says IDLE: now the command goes out, once.
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const r = await raw.nth(0);
    expect(r.command.orderId).toBe(o1);
    r.ack({ accepted: true });
    expect((await raw.done(r.command)).ok).toBe(true);
    await eventually(async () => (await order(o1)).status === 'COMPLETED', 5_000, 'COMPLETED');
    expect(raw.received).toHaveLength(1);
    expect((await h.commands(o1))[0]).toMatchObject({ status: 'DONE', attempts: 1 });
  });
});

describe.each(engines())('v2 machine heartbeat timeout (%s)', (engine) => {
  let server: TestServer;
  const h = helpers(() => server);
  const { pay, order, machine, track } = h;

  beforeAll(async () => {
    server = await startServer({ engine, env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '400' } });
  });
  afterEach(() => h.closeAll());
  afterAll(async () => {
    h.closeAll();
    await server?.close();
  });

  it('drops a silent machine, marks it OFFLINE, lets it connect again and re-sends its unfinished command', async () => {
    const m = await server.createVendingMachine('V2SILENT', 2000);
    const alive = await server.createMachine('V2ALIVE');
    const sim = new SimulatedMachine({
      url: server.url,
      machineId: alive.id,
      key: alive.key,
      heartbeatMs: 80,
      autoReconnect: false,
    });
    track({ close: () => sim.stop() });
    let simDisconnects = 0;
    sim.on('disconnect', () => simDisconnects++);
    await sim.start();

    const raw = track(new RawMachine(server.url, m.id, m.key));
    await raw.open();
    const stopHeartbeats = raw.keepAlive(80);
    expect((await raw.heartbeat('IDLE')).ok).toBe(true);
    const o1 = await pay(m.qrCodeId);
    const r1 = await raw.nth(0);
    r1.ack({ accepted: true });
    await eventually(async () => (await order(o1)).status === 'DISPATCHED', 5_000, 'DISPATCHED');
    expect(raw.socket.connected).toBe(true);

    // From here on the machine says nothing.
    stopHeartbeats();
    const reason = await nextEvent<string>(raw.socket, 'disconnect', 10_000);
    // Closed at the transport, so that a machine that is only slow connects again by itself.
    expect(reason).toBe('transport close');
    const offline = await eventually(
      async () => {
        const x = await machine(m.id);
        return x.status === 'OFFLINE' && x.socketConnected === false ? x : undefined;
      },
      5_000,
      'OFFLINE',
    );
    expect(offline.lastSeenAt).toEqual(expect.any(String));

    // The machine that kept heartbeating was left alone.
    expect(simDisconnects).toBe(0);
    expect(sim.connected).toBe(true);
    expect((await machine(alive.id)).socketConnected).toBe(true);

    // It comes back, gets the unfinished command again, and finishes it.
    const back = track(new RawMachine(server.url, m.id, m.key));
    await back.open();
    back.keepAlive(80);
    expect((await back.heartbeat('IDLE')).ok).toBe(true);
    await eventually(
      async () => {
        const x = await machine(m.id);
        return x.socketConnected === true && x.status === 'IDLE';
      },
      5_000,
      'online again',
    );
    const r2 = await back.nth(0);
    expect(r2.command.commandId).toBe(r1.command.commandId);
    r2.ack({ accepted: true });
    expect((await back.done(r2.command)).ok).toBe(true);
    await eventually(async () => (await order(o1)).status === 'COMPLETED', 5_000, 'COMPLETED');
  });
});

describe.each(engines())('v2 dispatch sweep for lost notices (%s)', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    // Heartbeats trust "nothing to do" for 10 min; the sweep runs every 300 ms.
    server = await startServer({
      engine,
      env: { DISPATCH_SWEEP_MS: '300', DISPATCH_IDLE_RECHECK_MS: '600000' },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('dispatches a command whose notice was lost, though the machine heartbeats IDLE and trusts "nothing to do"', async () => {
    const m = await server.createVendingMachine('SWEEP1');
    const machine = new SimulatedMachine({
      url: server.url,
      machineId: m.id,
      key: m.key,
      heartbeatMs: 200,
      dispenseDelayMs: 10,
    });
    await machine.start();
    try {
      const { presence, orders, commands } = server.kioskhub.services;
      await eventually(
        () => presence.local('SWEEP1')?.noWorkSince !== undefined,
        5_000,
        'the machine checked and found nothing',
      );

      // What another process leaves behind when it dies after committing a payment and relaying
      // its outbox row, with its notice stuck in its own Redis offline queue: the order and the
      // command are committed, no kick or notice ever reaches this process.
      const row = await server.kioskhub.db
        .selectFrom('machines')
        .select(['tenant_id', 'site_id', 'currency'])
        .where('id', '=', 'SWEEP1')
        .executeTakeFirstOrThrow();
      const paidAt = new Date(Date.now() - 10_000).toISOString();
      const orderId = await server.kioskhub.db.transaction().execute(async (tx) => {
        const order = await orders.create(tx, {
          tenantId: row.tenant_id,
          machineId: 'SWEEP1',
          siteId: row.site_id,
          amount: 2000,
          currency: row.currency,
          source: 'upi_qr',
          status: 'PAID',
          requiresDispense: true,
          actor: 'test:other-process',
        });
        await commands.enqueue(tx, {
          tenantId: row.tenant_id,
          machineId: 'SWEEP1',
          orderId: order.id,
          amountMinor: 2000,
          currency: row.currency,
          queuedAt: paidAt,
        });
        await tx.deleteFrom('outbox').where('topic', '=', 'dispatch').execute();
        return order.id;
      });

      await eventually(
        () => machine.dispensed.some((d) => d.orderId === orderId),
        10_000,
        'the sweep to dispatch the forgotten command',
      );
      await eventually(
        async () => (await server.request('GET', `/v1/orders/${orderId}`)).body.status === 'COMPLETED',
        5_000,
        'the order completed',
      );
      await new Promise((r) => setTimeout(r, 700)); // a few more sweeps and heartbeats
      // Sent once (the simulator would hide a repeat: it de-duplicates by commandId).
      const [command, ...more] = await commands.listForOrder(orderId);
      expect(more).toEqual([]);
      expect(command).toMatchObject({ status: 'DONE', attempts: 1 });
      const timeline = (await server.request('GET', `/v1/orders/${orderId}/timeline`)).body.items as {
        type: string;
      }[];
      expect(timeline.filter((e) => e.type === 'command_sent')).toHaveLength(1);
      expect(machine.dispensed.filter((d) => d.orderId === orderId)).toHaveLength(1);
    } finally {
      machine.stop();
    }
  });
});
