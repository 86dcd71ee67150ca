// Review 4 of dispatch: paid orders becoming machine commands, executed exactly once.
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connected, engines, eventually, qrCredited, startServer, type TestServer } from './harness.js';

describe.each(engines())('dispatch review 4 (%s)', (engine) => {
  let server: TestServer;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.disconnect();
  });
  afterAll(async () => {
    for (const s of sockets.splice(0)) s.disconnect();
    await server?.close();
  });

  const pay = async (qrCodeId: string) => {
    const res = await server.postWebhook(qrCredited(qrCodeId, 2000));
    expect(res.status).toBe(200);
    return res.body.orderId as string;
  };

  // docs/api.md §11: machine:connect → {ok: true, machineId} and then machine:authenticated; the
  // gateway answers a failed registration `INTERNAL: try again` (machine-gateway.ts). A machine that
  // does try again must then be registered for real (or refused), not told ok while nothing works.
  it('v1: a machine:connect retried after an INTERNAL "try again" registers the machine for real', async () => {
    const m = await server.createVendingMachine('R4V1RETRY', 2000);
    const presence = server.kioskhub.services.presence;
    const original = presence.register;
    let failures = 1;
    presence.register = async (...args: Parameters<typeof original>) => {
      if (failures-- > 0) throw new Error('storage away (injected)');
      return original(...args);
    };
    try {
      const socket = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true });
      sockets.push(socket);
      const dispenses: { orderId: string }[] = [];
      socket.on('machine:dispense', (p: { orderId: string }) => dispenses.push(p));
      await connected(socket);
      const connect = () =>
        socket.timeout(5_000).emitWithAck('machine:connect', { machineId: m.id, token: m.key });
      const first = await connect();
      expect(first).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
      // The machine does as it was told: it tries again.
      const second = await connect();
      if (second.ok === true) {
        // Told it is connected: it must be, as a heartbeat and a paid order show.
        const hb = await socket
          .timeout(5_000)
          .emitWithAck('machine:heartbeat', { machineId: m.id, ts: Date.now() });
        expect(hb).toMatchObject({ ok: true });
        const orderId = await pay(m.qrCodeId);
        await eventually(() => dispenses.some((d) => d.orderId === orderId), 3_000, 'dispense sent');
      } else {
        // Or refused and dropped so that it reconnects afresh: never left half-registered.
        await eventually(() => !socket.connected, 3_000, 'socket dropped');
      }
    } finally {
      presence.register = original;
    }
  });
});
