// Review 6 of the earlier vending firmware (Socket.IO v1 on `/`) against Kioskhub, with a client
// written exactly as the earlier backend's public simulator (Ashwinv007/vending-machine-simulator,
// machine-simulator/src/index.js): `io(url, {transports: ['websocket'], reconnection: true})`,
// machine:connect on every `connect`, heartbeats without an ack while connected, machine:done
// with an ack after a dispense delay. It has no `disconnect` handler beyond a log line, so it never
// calls `socket.connect()` itself.
//
// socket.io-client reconnects by itself after a lost link ("transport close"), but NOT after the
// server sends a namespace DISCONNECT packet ("io server disconnect"): then it waits for the
// application to call `socket.connect()`, which the earlier firmware never does. Every server-side
// `socket.disconnect(true)` of a v1 socket sends that packet, so each one leaves an unchanged field
// machine offline for good (until someone power-cycles it), with its paid orders queued.
import { createServer } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  dropSchema,
  engines,
  eventually,
  newSchemaName,
  qrCredited,
  startServer,
  tempDir,
  type TestServer,
} from './harness.js';

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The earlier backend's machine, as index.js is written (only the timings are shortened). */
class EarlierVendingMachine {
  readonly socket: Socket;
  readonly connectAcks: any[] = [];
  readonly dispenses: any[] = [];
  readonly doneAcks: { orderId: string; ack: any }[] = [];
  readonly disconnects: string[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(url: string, machineId: string, token: string) {
    this.socket = io(url, {
      transports: ['websocket'],
      reconnection: true,
      // index.js keeps socket.io-client's defaults (1 s to 5 s); shortened for the test only.
      reconnectionDelay: 200,
      reconnectionDelayMax: 400,
      forceNew: true,
    });
    this.socket.on('connect', () => {
      this.socket.emit('machine:connect', { machineId, token }, (ack: any) => this.connectAcks.push(ack));
    });
    // index.js: `socket.on("disconnect", (reason) => console.log(..., reason))`, nothing else.
    this.socket.on('disconnect', (reason) => this.disconnects.push(reason));
    this.socket.on('machine:dispense', async (payload: any = {}) => {
      const { orderId } = payload;
      if (!orderId) return;
      this.dispenses.push(payload);
      await wait(20);
      this.socket.emit('machine:done', { orderId, result: 'SUCCESS' }, (ack: any) =>
        this.doneAcks.push({ orderId, ack }),
      );
    });
    this.heartbeat = setInterval(() => {
      if (!this.socket.connected) return;
      this.socket.emit('machine:heartbeat', { machineId, ts: Date.now() });
    }, 200);
  }

  registrations(): number {
    return this.connectAcks.filter((a) => a?.ok === true).length;
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.socket.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

describe.each(engines())('earlier vending firmware after a server-side disconnect (%s)', (engine) => {
  const machines: EarlierVendingMachine[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const m of machines.splice(0)) m.close();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const pay = async (server: TestServer, qrCodeId: string): Promise<string> => {
    const res = await server.postWebhook(qrCredited(qrCodeId, 2000));
    expect(res.status).toBe(200);
    return res.body.orderId as string;
  };
  const orderStatus = async (server: TestServer, id: string) =>
    (await server.request('GET', `/v1/orders/${id}`)).body.status as string;

  // Promise: docs/api.md §11 "Machines built for the earlier vending backend keep working unchanged
  // on the default namespace"; docs/operations.md §1 (systemd unit) "SIGTERM: stop accepting, drop
  // this process's sockets and write them OFFLINE" — a deploy or restart, after which machines
  // come back (docs/operations.md §6: "its machines reconnect through the balancer").
  // Code at fault: server/src/platform/realtime.ts:181 (`nsp.local.disconnectSockets(true)` on every
  // namespace, `/` included, from close() and stopSockets()): each v1 socket is sent a DISCONNECT
  // packet, so the earlier firmware's client sees "io server disconnect" and never reconnects.
  // Fix: on shutdown close the v1 sockets' transports (`socket.conn.close()` / `io.engine.close()`)
  // without a namespace DISCONNECT, so the client sees "transport close" and reconnects by itself.
  it('a v1 machine reconnects and dispenses again after the server is restarted', async () => {
    const port = await freePort();
    const dir = tempDir('kioskhub-vr6-');
    const schema = engine === 'postgres' ? newSchemaName() : undefined;
    cleanups.push(() => dir.remove());
    if (schema) cleanups.push(() => dropSchema(schema));
    const options = {
      engine,
      env: { PORT: String(port) },
      ...(engine === 'sqlite' ? { dataDir: dir.path } : {}),
      ...(schema ? { schema } : {}),
    };
    let server = await startServer(options);
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await server.close();
    });
    const vm = await server.createVendingMachine('VR6RESTART');
    const m = new EarlierVendingMachine(server.url, vm.id, vm.key);
    machines.push(m);
    await eventually(() => m.registrations() === 1, 5_000, 'first machine:connect ack');

    // A deploy: the process shuts down gracefully and a new one starts on the same address.
    closed = true;
    await server.close();
    server = await startServer(options);
    closed = false;

    await eventually(() => m.registrations() === 2, 8_000, 'machine reconnected after the restart').catch(
      () => {
        throw new Error(
          `the earlier firmware never came back: connected=${m.socket.connected}, ` +
            `disconnect reasons ${JSON.stringify(m.disconnects)}`,
        );
      },
    );
    const orderId = await pay(server, vm.qrCodeId);
    await eventually(async () => (await orderStatus(server, orderId)) === 'COMPLETED', 5_000, 'dispensed');
  });

  // Promise: docs/api.md §5 "A move disconnects the machine's sockets on every process: it
  // reconnects as a machine of its new site"; §11 "keep working unchanged".
  // Code at fault: server/src/app.ts:290 (dropConnections → presence.local(id).link.disconnect())
  // → server/src/modules/gateway/machine-link.ts:57 `this.socket.disconnect(true)`: a namespace
  // DISCONNECT packet, after which the earlier firmware does not reconnect.
  // Fix: for v1 sockets, drop the connection by closing its transport (`socket.conn.close()`), so
  // the client reconnects by itself ("transport close"); v2 firmware may keep the current packet.
  it('a v1 machine moved to another site reconnects as a machine of its new site', async () => {
    const server = await startServer({ engine });
    cleanups.push(() => server.close());
    const site = await server.request('POST', '/v1/sites', { body: { id: 'annex', name: 'Annex' } });
    expect(site.status).toBe(201);
    const vm = await server.createVendingMachine('VR6MOVE');
    const m = new EarlierVendingMachine(server.url, vm.id, vm.key);
    machines.push(m);
    await eventually(() => m.registrations() === 1, 5_000, 'first machine:connect ack');

    const moved = await server.request('PATCH', `/v1/machines/${vm.id}`, { body: { siteId: 'annex' } });
    expect(moved.status).toBe(200);
    expect(moved.body.siteId).toBe('annex');

    await eventually(() => m.registrations() === 2, 5_000, 'machine reconnected after the move').catch(() => {
      throw new Error(
        `the moved machine never came back: connected=${m.socket.connected}, ` +
          `disconnect reasons ${JSON.stringify(m.disconnects)}`,
      );
    });
    const row = await eventually(
      async () => {
        const r = (await server.request('GET', `/v1/machines/${vm.id}`)).body;
        return r.socketConnected === true ? r : undefined;
      },
      5_000,
      'online again',
    );
    expect(row.siteId).toBe('annex');
    const orderId = await pay(server, vm.qrCodeId);
    await eventually(async () => (await orderStatus(server, orderId)) === 'COMPLETED', 5_000, 'dispensed');
  });

  // Promise: docs/api.md §11 "keep working unchanged"; docs/operations.md §6 "PostgreSQL restarts
  // or fails over … The processes reconnect by themselves" (a storage hiccup is passing).
  // Code at fault: server/src/modules/gateway/machine-gateway.ts:341-346 answers a failed
  // registration `{ok: false, error: {code: "INTERNAL", message: "try again"}}`, which index.js only
  // logs ("connect rejected"); then the auth timer (machine-gateway.ts:280-282) calls
  // `socket.disconnect(true)`, a DISCONNECT packet after which index.js never reconnects: a passing
  // storage error during the handshake takes the machine offline for good.
  // Fix: after a failed v1 registration (or at the auth timeout) close the transport
  // (`socket.conn.close()`) instead of a namespace disconnect, so the client reconnects and sends
  // machine:connect again.
  it('a v1 machine whose machine:connect met a passing storage error is registered after all', async () => {
    const server = await startServer({ engine, env: { SOCKET_AUTH_TIMEOUT_MS: '500' } });
    cleanups.push(() => server.close());
    const vm = await server.createVendingMachine('VR6HICCUP');
    const presence = server.kioskhub.services.presence;
    const original = presence.register;
    let failures = 1;
    presence.register = async (...args: Parameters<typeof original>) => {
      if (failures-- > 0) throw new Error('storage away (injected)');
      return original(...args);
    };
    cleanups.push(() => {
      presence.register = original;
    });
    const m = new EarlierVendingMachine(server.url, vm.id, vm.key);
    machines.push(m);
    await eventually(() => m.connectAcks.length >= 1, 5_000, 'first machine:connect answer');
    expect(m.connectAcks[0]).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });

    await eventually(() => m.registrations() >= 1, 5_000, 'machine registered after the hiccup').catch(() => {
      throw new Error(
        `the machine never got registered: connected=${m.socket.connected}, ` +
          `disconnect reasons ${JSON.stringify(m.disconnects)}, answers ${JSON.stringify(m.connectAcks)}`,
      );
    });
    const orderId = await pay(server, vm.qrCodeId);
    await eventually(async () => (await orderStatus(server, orderId)) === 'COMPLETED', 5_000, 'dispensed');
  });
});
