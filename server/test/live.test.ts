// Live updates for browsers on /live (CONTRACTS.md §8): handshake auth, subscribing to rooms
// of one's own tenant, the order and machine events a paid vending order produces, and
// tenant isolation.
import type { DispenseCommand } from '@kioskhub/protocol';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  connected,
  engines,
  eventually,
  liveSocket,
  machineSocket,
  qrCredited,
  startServer,
  type TestServer,
} from './harness.js';

interface LiveEvent {
  event: string;
  data: any;
}

/** A browser on /live that records every event it receives. */
class Viewer {
  readonly socket: Socket;
  readonly events: LiveEvent[] = [];

  constructor(url: string, auth: Record<string, string>) {
    this.socket = liveSocket(url, auth);
    this.socket.onAny((event: string, data: unknown) => this.events.push({ event, data }));
  }

  async open(): Promise<this> {
    await connected(this.socket);
    return this;
  }

  subscribe(payload: unknown): Promise<any> {
    return this.socket.timeout(5_000).emitWithAck('subscribe', payload);
  }

  async join(room: string): Promise<void> {
    expect(await this.subscribe({ room })).toMatchObject({ ok: true });
  }

  of(event: string, match: (data: any) => boolean = () => true): any[] {
    return this.events.filter((e) => e.event === event && match(e.data)).map((e) => e.data);
  }

  /** Waits for an event matching `match` and returns its payload. */
  waitFor(event: string, match: (data: any) => boolean, what = event): Promise<any> {
    return eventually(() => this.of(event, match)[0], 10_000, `${what} on ${this.socket.id ?? 'viewer'}`);
  }

  close(): void {
    this.socket.disconnect();
  }
}

describe.each(engines())('live updates on /live (%s)', (engine) => {
  let server: TestServer;
  let staffA: string;
  let staffB: string;
  const open: { close(): void }[] = [];
  const viewer = async (auth: Record<string, string>) => {
    const v = new Viewer(server.url, auth);
    open.push(v);
    return v.open();
  };

  async function login(email: string, tenantId?: string): Promise<string> {
    const password = 'correct horse battery';
    const created = await server.request('POST', '/v1/users', {
      body: { email, password, role: 'staff', ...(tenantId ? { tenantId } : {}) },
    });
    expect(created.status).toBe(201);
    const res = await server.request('POST', '/v1/auth/login', { body: { email, password }, token: null });
    expect(res.status).toBe(200);
    return res.body.token as string;
  }

  beforeAll(async () => {
    server = await startServer({ engine });
    expect(
      (await server.request('POST', '/v1/tenants', { body: { id: 'tenantb', name: 'Tenant B' } })).status,
    ).toBe(201);
    staffA = await login('staff.a@example.com');
    staffB = await login('staff.b@example.com', 'tenantb');
  });
  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });
  afterAll(async () => {
    for (const s of open.splice(0)) s.close();
    await server?.close();
  });

  it('refuses a handshake without auth, with a bad token, with a machine key or a bad orderToken', async () => {
    const m = await server.createMachine('LIVEKEY');
    const refused: Record<string, string>[] = [
      {},
      { token: 'not-a-token' },
      { token: `${staffA}x` },
      { token: m.key },
      { orderToken: 'nope' },
      { token: '' },
    ];
    for (const auth of refused) {
      const v = new Viewer(server.url, auth);
      open.push(v);
      await expect(connected(v.socket), JSON.stringify(auth)).rejects.toThrow('unauthorized');
    }
  });

  it('says why a handshake was refused (connect_error data), keeping the message unauthorized', async () => {
    const m = await server.createMachine('LIVEWHY');
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /no credential: connect with auth: \{token\}.*or auth: \{orderToken\}/],
      [{ token: 'not-a-token' }, /the token is not valid .*sign in again/],
      [{ token: m.key }, /a machine key does not open \/live/],
      [{ orderToken: 'nope' }, /the orderToken is not valid/],
    ];
    for (const [auth, why] of cases) {
      const v = new Viewer(server.url, auth);
      open.push(v);
      const err = (await connected(v.socket).then(
        () => undefined,
        (e: unknown) => e,
      )) as Error & { data?: { code: string; message: string } };
      expect(err?.message, JSON.stringify(auth)).toBe('unauthorized');
      expect(err.data?.code).toBe('UNAUTHORIZED');
      expect(err.data?.message, JSON.stringify(auth)).toMatch(why);
      expect(err.data?.message).not.toContain(m.key);
    }
  });

  it('answers an event it does not take (asked with an ack) with UNKNOWN_EVENT', async () => {
    const v = await viewer({ token: staffA });
    const answer = await v.socket.timeout(5_000).emitWithAck('join', { room: 'tenant:default' });
    expect(answer).toMatchObject({ ok: false, error: { code: 'UNKNOWN_EVENT' } });
    expect(answer.error.message).toMatch(/takes subscribe, unsubscribe/);
  });

  it('lets staff and ADMIN_TOKEN subscribe to rooms of their own tenant', async () => {
    const a = await server.createVendingMachine('LIVEOWN', 2000);
    const paid = await server.postWebhook(qrCredited(a.qrCodeId, 2000));
    const orderId = paid.body.orderId as string;
    const b = await server.createMachine('LIVEOWNB', { tenantId: 'tenantb' });

    const staff = await viewer({ token: staffA });
    for (const room of ['tenant:default', `machine:${a.id}`, `order:${orderId}`, 'kitchen:default']) {
      expect(await staff.subscribe({ room }), room).toEqual({ ok: true, room });
    }
    const admin = await viewer({ token: ADMIN_TOKEN });
    for (const room of [
      'tenant:default',
      `machine:${a.id}`,
      `order:${orderId}`,
      'tenant:tenantb',
      `machine:${b.id}`,
    ]) {
      expect(await admin.subscribe({ room }), room).toEqual({ ok: true, room });
    }
    const staffOfB = await viewer({ token: staffB });
    for (const room of ['tenant:tenantb', `machine:${b.id}`]) {
      expect(await staffOfB.subscribe({ room }), room).toEqual({ ok: true, room });
    }
  });

  it('rejects bad subscribe payloads with VALIDATION_FAILED', async () => {
    const v = await viewer({ token: staffA });
    const bad: unknown[][] = [
      [],
      [null],
      ['tenant:default'],
      [42],
      [['tenant:default']],
      [{}],
      [{ room: 5 }],
      [{ room: null }],
      [{ room: { id: 'default' } }],
      [{ room: '' }],
      [{ room: 'tenant:' }],
      [{ room: 'tenant' }],
      [{ room: 'default' }],
      [{ room: 'shop:default' }],
      [{ room: 'TENANT:default' }],
      [{ room: 'tenant:de fault' }],
      [{ room: `tenant:${'x'.repeat(129)}` }],
      [{ rooms: ['tenant:default'] }],
    ];
    for (const args of bad) {
      const ack = await v.socket.timeout(5_000).emitWithAck('subscribe', ...args);
      expect(ack, JSON.stringify(args)).toMatchObject({
        ok: false,
        error: { code: 'VALIDATION_FAILED', message: expect.any(String) },
      });
    }
    // The socket is still usable.
    await v.join('tenant:default');
  });

  it('streams order_created and order_status_updated to tenant, order and machine rooms as a paid order completes', async () => {
    const vm = await server.createVendingMachine('LIVEFLOW', 2000);
    const tenantRoom = await viewer({ token: staffA });
    await tenantRoom.join('tenant:default');
    const machineRoom = await viewer({ token: staffA });
    await machineRoom.join(`machine:${vm.id}`);
    const adminTenant = await viewer({ token: ADMIN_TOKEN });
    await adminTenant.join('tenant:default');

    // Paid while the machine is offline, so the order room can be joined before anything moves.
    const res = await server.postWebhook(qrCredited(vm.qrCodeId, 2000));
    expect(res.status).toBe(200);
    const orderId = res.body.orderId as string;
    const orderRoom = await viewer({ token: staffA });
    await orderRoom.join(`order:${orderId}`);

    const isOrder = (d: any) => d.orderId === orderId;
    for (const v of [tenantRoom, machineRoom, adminTenant]) {
      const created = await v.waitFor('order_created', isOrder);
      expect(created).toMatchObject({
        tenantId: 'default',
        orderId,
        machineId: vm.id,
        status: 'PAID',
        amount: 2000,
        currency: 'INR',
        source: 'upi_qr',
      });
    }

    // The machine connects, takes the command and, once it is DISPATCHED, completes it.
    const machine = machineSocket(server.url, vm.id, vm.key);
    open.push({ close: () => machine.disconnect() });
    machine.on('machine:dispense', (command: DispenseCommand, ack: (a: unknown) => void) => {
      ack({ accepted: true });
      void tenantRoom
        .waitFor('order_status_updated', (d) => isOrder(d) && d.status === 'DISPATCHED', 'DISPATCHED')
        .then(() =>
          machine.timeout(5_000).emitWithAck('machine:done', {
            commandId: command.commandId,
            orderId: command.orderId,
            status: 'SUCCESS',
          }),
        );
    });
    await connected(machine);

    for (const v of [tenantRoom, machineRoom, orderRoom, adminTenant]) {
      const completed = await v.waitFor(
        'order_status_updated',
        (d) => isOrder(d) && d.status === 'COMPLETED',
        'COMPLETED',
      );
      expect(completed).toEqual({ tenantId: 'default', orderId, machineId: vm.id, status: 'COMPLETED' });
      const statuses = v.of('order_status_updated', isOrder).map((d) => d.status);
      expect(statuses).toEqual(['DISPATCHED', 'COMPLETED']);
      for (const d of v.of('order_status_updated', isOrder))
        expect(d).toMatchObject({ tenantId: 'default', orderId, machineId: vm.id });
    }
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('COMPLETED');
  });

  it('carries failureCode in order_status_updated when a dispense fails', async () => {
    const vm = await server.createVendingMachine('LIVEFAIL', 2000);
    const tenantRoom = await viewer({ token: staffA });
    await tenantRoom.join('tenant:default');
    const machine = machineSocket(server.url, vm.id, vm.key);
    open.push({ close: () => machine.disconnect() });
    machine.on('machine:dispense', (command: DispenseCommand, ack: (a: unknown) => void) => {
      ack({ accepted: true });
      void machine.timeout(5_000).emitWithAck('machine:done', {
        commandId: command.commandId,
        orderId: command.orderId,
        status: 'FAILED',
        failureCode: 'MOTOR_JAM',
      });
    });
    await connected(machine);
    const orderId = (await server.postWebhook(qrCredited(vm.qrCodeId, 2000))).body.orderId as string;
    const failed = await tenantRoom.waitFor(
      'order_status_updated',
      (d) => d.orderId === orderId && d.status === 'FAILED',
      'FAILED',
    );
    expect(failed).toEqual({
      tenantId: 'default',
      orderId,
      machineId: vm.id,
      status: 'FAILED',
      failureCode: 'MOTOR_JAM',
    });
  });

  it('announces machine_status when a machine connects and disconnects', async () => {
    const created = await server.createMachine('LIVESTATUS');
    const tenantRoom = await viewer({ token: staffA });
    await tenantRoom.join('tenant:default');
    const machineRoom = await viewer({ token: staffA });
    await machineRoom.join(`machine:${created.id}`);

    const machine = machineSocket(server.url, created.id, created.key);
    open.push({ close: () => machine.disconnect() });
    await connected(machine);
    const isMine = (d: any) => d.machineId === created.id;
    for (const v of [tenantRoom, machineRoom]) {
      const online = await v.waitFor(
        'machine_status',
        (d) => isMine(d) && d.socketConnected === true,
        'online',
      );
      expect(online).toEqual({
        tenantId: 'default',
        machineId: created.id,
        status: 'IDLE',
        socketConnected: true,
        lastSeenAt: expect.any(String),
      });
      expect(Number.isNaN(Date.parse(online.lastSeenAt))).toBe(false);
    }

    // A reported status change is announced too.
    expect(await machine.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'BUSY' })).toMatchObject({
      ok: true,
    });
    for (const v of [tenantRoom, machineRoom]) {
      const busy = await v.waitFor('machine_status', (d) => isMine(d) && d.status === 'BUSY', 'BUSY');
      expect(busy).toMatchObject({ tenantId: 'default', machineId: created.id, socketConnected: true });
    }

    machine.disconnect();
    for (const v of [tenantRoom, machineRoom]) {
      const offline = await v.waitFor(
        'machine_status',
        (d) => isMine(d) && d.socketConnected === false,
        'offline',
      );
      expect(offline).toEqual({
        tenantId: 'default',
        machineId: created.id,
        status: 'OFFLINE',
        socketConnected: false,
        lastSeenAt: expect.any(String),
      });
    }
  });

  it('keeps tenants apart: tenant B can join none of tenant A’s rooms and receives none of its events', async () => {
    const vmA = await server.createVendingMachine('LIVEISOA', 2000);
    const vmB = await server.createVendingMachine('LIVEISOB', 2000, 'tenantb');
    const resA = await server.postWebhook(qrCredited(vmA.qrCodeId, 2000));
    const orderA = resA.body.orderId as string;

    const spy = await viewer({ token: staffB });
    for (const room of [
      'tenant:default',
      `machine:${vmA.id}`,
      `order:${orderA}`,
      'tenant:nosuchtenant',
      'machine:NOSUCHMACHINE',
      'order:NOSUCHORDER',
    ]) {
      const ack = await spy.subscribe({ room });
      expect(ack, room).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    }
    // Site ids are per tenant: B's `kitchen:default` is B's own kitchen, not A's.
    await spy.join('kitchen:default');
    // Trying with a tenant hint changes nothing.
    expect(await spy.subscribe({ room: `order:${orderA}`, tenantId: 'default' })).toMatchObject({
      ok: false,
      error: { code: 'FORBIDDEN' },
    });
    await spy.join('tenant:tenantb');
    await spy.join(`machine:${vmB.id}`);
    const watcherA = await viewer({ token: staffA });
    await watcherA.join('tenant:default');
    await watcherA.join(`order:${orderA}`);
    for (const room of ['tenant:tenantb', `machine:${vmB.id}`]) {
      expect(await watcherA.subscribe({ room }), room).toMatchObject({
        ok: false,
        error: { code: 'FORBIDDEN' },
      });
    }

    // Tenant A's machine connects and dispenses; tenant A's viewer sees it all.
    const machineA = machineSocket(server.url, vmA.id, vmA.key);
    open.push({ close: () => machineA.disconnect() });
    machineA.on('machine:dispense', (command: DispenseCommand, ack: (a: unknown) => void) => {
      ack({ accepted: true });
      void machineA.timeout(5_000).emitWithAck('machine:done', {
        commandId: command.commandId,
        orderId: command.orderId,
        status: 'SUCCESS',
      });
    });
    await connected(machineA);
    await watcherA.waitFor(
      'order_status_updated',
      (d) => d.orderId === orderA && d.status === 'COMPLETED',
      'A COMPLETED',
    );
    await watcherA.waitFor('machine_status', (d) => d.machineId === vmA.id, 'A online');
    const orderB = (await server.postWebhook(qrCredited(vmB.qrCodeId, 2000))).body.orderId as string;
    machineA.disconnect();
    await watcherA.waitFor(
      'machine_status',
      (d) => d.machineId === vmA.id && d.socketConnected === false,
      'A offline',
    );

    // Barrier: an event of tenant B reaches the spy after everything of A was emitted.
    const machineB = machineSocket(server.url, vmB.id, vmB.key);
    open.push({ close: () => machineB.disconnect() });
    await connected(machineB);
    await spy.waitFor(
      'machine_status',
      (d) => d.machineId === vmB.id && d.socketConnected === true,
      'B online',
    );
    await spy.waitFor('order_created', (d) => d.orderId === orderB, 'B order');

    expect(spy.events.length).toBeGreaterThan(0);
    for (const { event, data } of spy.events) {
      expect(data.tenantId, event).toBe('tenantb');
      expect(data.machineId, event).not.toBe(vmA.id);
      expect(data.orderId, event).not.toBe(orderA);
    }
    // And tenant A never saw B's.
    for (const { event, data } of watcherA.events) {
      expect(data.tenantId, event).toBe('default');
    }
  });
});
