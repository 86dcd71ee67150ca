// Issue 12, Socket.IO (items 6, 8, 10, 15): unauthenticated sockets dropped and capped per
// address, machine event floods refused and status flips written at a bounded rate, a rotated
// key's sockets evicted, and browser handshakes only from allowed origins.
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  dropSchema,
  engines,
  eventually,
  liveSocket,
  machineSocket,
  newSchemaName,
  startServer,
  type TestServer,
} from '../harness.js';

const sockets: Socket[] = [];
const track = (socket: Socket): Socket => {
  sockets.push(socket);
  return socket;
};
afterEach(() => {
  for (const s of sockets.splice(0)) s.disconnect();
});

const v1Socket = (url: string) =>
  track(io(url, { transports: ['websocket'], reconnection: false, forceNew: true }));
const disconnectedWithin = (socket: Socket, ms: number) =>
  new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('disconnect', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });

/**
 * The server's next key check of `machineId` answers only after `during` has run: a key rotation
 * landing while a socket's key is being checked. Returns the undo.
 */
function keyCheckThen(server: TestServer, machineId: string, during: () => Promise<unknown>): () => void {
  const machines = server.kioskhub.services.machines;
  const findRow = machines.findRow;
  let armed = true;
  machines.findRow = async (id, ex) => {
    const row = await findRow(id, ex);
    if (armed && id === machineId) {
      armed = false;
      await during();
    }
    return row;
  };
  return () => {
    machines.findRow = findRow;
  };
}

/** A machine socket whose key check races a rotation made through `rotateVia`; resolves once it settled. */
async function raceRotation(
  server: TestServer,
  rotateVia: TestServer,
  protocol: 'v1' | 'v2',
  machine: { id: string; key: string },
): Promise<{ dropped: boolean; rotated: boolean }> {
  let rotated = false;
  const restore = keyCheckThen(server, machine.id, async () => {
    rotated = (await rotateVia.request('POST', `/v1/machines/${machine.id}/rotate-key`)).status === 200;
  });
  try {
    const socket =
      protocol === 'v2' ? track(machineSocket(server.url, machine.id, machine.key)) : v1Socket(server.url);
    if (protocol === 'v1') {
      await connected(socket);
      socket.emit('machine:connect', { machineId: machine.id, token: machine.key });
    }
    const dropped = await disconnectedWithin(socket, 5_000);
    return { dropped, rotated };
  } finally {
    restore();
  }
}

describe.each(engines())('security: Socket.IO (%s)', (engine) => {
  let server: TestServer;
  const logLines: string[] = [];
  beforeAll(async () => {
    server = await startServer({
      engine,
      logStream: { write: (line) => void logLines.push(line) },
      env: {
        SOCKET_AUTH_TIMEOUT_MS: '500',
        SOCKET_MAX_PER_ADDRESS: '6',
        SOCKET_EVENTS_PER_SECOND: '10',
        STATUS_WRITE_INTERVAL_MS: '1000',
      },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 6: a v1 socket that never sends machine:connect is dropped; connections per address are capped', async () => {
    const idle = v1Socket(server.url);
    await connected(idle);
    expect(await disconnectedWithin(idle, 3_000)).toBe(true);

    const open = Array.from({ length: 6 }, () => v1Socket(server.url));
    await Promise.all(open.map(connected));
    const extra = v1Socket(server.url);
    await expect(connected(extra)).rejects.toThrow();
    // The client only sees a failed upgrade; the server's log says which limit refused it.
    await expect(connected(v1Socket(server.url))).rejects.toThrow();
    const warned = logLines
      .map((l) => JSON.parse(l) as { msg: string; limit?: number; refused?: number })
      .filter((l) => l.msg.includes('SOCKET_MAX_PER_ADDRESS'));
    expect(warned).toHaveLength(1); // once a minute per address, not once per refusal
    expect(warned[0]).toMatchObject({ limit: 6, refused: 1 });
    // Dropped after the timeout, the slots are free again.
    await eventually(() => open.every((s) => !s.connected), 5_000, 'idle sockets dropped');
    await connected(v1Socket(server.url));
  });

  it('item 8: a machine flooding events is refused, and a flip-flopping status is written at a bounded rate', async () => {
    const machine = await server.createMachine(`sec-flood-${engine}`);
    const socket = track(machineSocket(server.url, machine.id, machine.key));
    await connected(socket);
    const live = track(liveSocket(server.url, { token: 'test-admin-token-0123456789' }));
    await connected(live);
    expect((await live.emitWithAck('subscribe', { room: `machine:${machine.id}` })).ok).toBe(true);
    const statuses: string[] = [];
    live.on('machine_status', (p: { status: string }) => statuses.push(p.status));

    // 20 flips inside the event allowance (2 × 10 per second): all answered; a burst of 5 is
    // written at once, the rest as one write of the latest status a second later.
    const acks = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: i % 2 === 0 ? 'BUSY' : 'IDLE' }),
      ),
    );
    expect(acks.every((a: { ok: boolean }) => a.ok)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(statuses.length).toBeGreaterThanOrEqual(1);
    expect(statuses.length).toBeLessThanOrEqual(7);
    const row = (await server.request('GET', `/v1/machines/${machine.id}`)).body;
    expect(row.status).toBe('IDLE');

    // Beyond the bucket and its queue (as long as the burst): refused with RATE_LIMITED.
    const flood = await Promise.all(
      Array.from({ length: 100 }, () =>
        socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'IDLE' }),
      ),
    );
    const refused = flood.filter(
      (a: { ok: boolean; error?: { code: string } }) => !a.ok && a.error?.code === 'RATE_LIMITED',
    );
    // At most the bucket (20) and its queue (20), plus what refills meanwhile, get through.
    expect(refused.length).toBeGreaterThan(50);
    expect(flood.filter((a: { ok: boolean }) => a.ok).length).toBeGreaterThanOrEqual(20);
  });

  it('item 10: rotating a key disconnects the sockets that logged in with the old key', async () => {
    const machine = await server.createMachine(`sec-rotate-${engine}`);
    const socket = track(machineSocket(server.url, machine.id, machine.key));
    await connected(socket);
    const dropped = disconnectedWithin(socket, 3_000);
    expect((await server.request('POST', `/v1/machines/${machine.id}/rotate-key`)).status).toBe(200);
    expect(await dropped).toBe(true);
    const again = track(machineSocket(server.url, machine.id, machine.key));
    await expect(connected(again)).rejects.toThrow('unauthorized');
  });

  it.each(['v2', 'v1'] as const)(
    'item 10: a %s socket whose old key was checked just before the rotation is disconnected once registered',
    async (protocol) => {
      const machine = await server.createMachine(`sec-race-${protocol}-${engine}`);
      expect(await raceRotation(server, server, protocol, machine)).toEqual({ dropped: true, rotated: true });
      await eventually(
        async () =>
          (await server.request('GET', `/v1/machines/${machine.id}`)).body.socketConnected === false,
        5_000,
        'the machine offline',
      );
    },
  );
});

describe.skipIf(!process.env['TEST_DATABASE_URL'] || !process.env['TEST_REDIS_URL'])(
  'security: Socket.IO, two processes (item 10)',
  () => {
    const schema = newSchemaName();
    const nodes: TestServer[] = [];
    beforeAll(async () => {
      const env = { REDIS_URL: process.env['TEST_REDIS_URL']! };
      nodes.push(await startServer({ engine: 'postgres', schema, env }));
      nodes.push(await startServer({ engine: 'postgres', schema, env }));
    });
    afterAll(async () => {
      for (const node of nodes) await node.close();
      await dropSchema(schema);
    });

    it.each(['v2', 'v1'] as const)(
      'a %s socket on one process whose key check races a rotation on the other is disconnected',
      async (protocol) => {
        const [a, b] = nodes as [TestServer, TestServer];
        const machine = await a.createMachine(`sec-race2-${protocol}`);
        expect(await raceRotation(b, a, protocol, machine)).toEqual({ dropped: true, rotated: true });
        // A socket already registered on the other process is still dropped by a rotation.
        const { key } = (await a.request('POST', `/v1/machines/${machine.id}/rotate-key`)).body as {
          key: string;
        };
        const socket = track(machineSocket(b.url, machine.id, key));
        await connected(socket);
        const dropped = disconnectedWithin(socket, 5_000);
        expect((await a.request('POST', `/v1/machines/${machine.id}/rotate-key`)).status).toBe(200);
        expect(await dropped).toBe(true);
      },
    );
  },
);

describe('security: Socket.IO origins (item 15)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ env: { CORS_ORIGINS: 'https://ops.example.com' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const handshake = (origin?: string) =>
    fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: origin ? { origin } : {} });

  it('item 15: handshakes from other origins are refused and their origin is never echoed', async () => {
    const evil = await handshake('https://evil.example');
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();

    const listed = await handshake('https://ops.example.com');
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe('https://ops.example.com');

    expect((await handshake(server.url)).status).toBe(200); // the server's own pages
    expect((await handshake()).status).toBe(200); // devices send no Origin
  });
});
