// A refund of a vending order's payment and its dispense command (docs/api.md §8): a full refund
// while the command is still QUEUED (the machine offline) cancels it and ends the order, so a
// machine that comes back later never dispenses what was refunded; a partial refund then, or any
// refund while the machine holds the command (sent, no result yet), is refused and changes nothing.
import { randomBytes } from 'node:crypto';
import type { DispenseCommand } from '@kioskhub/protocol';
import type { Socket } from 'socket.io-client';
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
import { ledgerInvariants } from './ledger-invariants.js';

const uid = (p: string) => `${p}${randomBytes(3).toString('hex').toUpperCase()}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(engines())('a refund of a vending order and its dispense command (%s)', (engine) => {
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

  /** A v2 machine that records every dispense it is sent (and never answers unless told). */
  async function machine(id: string, key: string) {
    const socket = machineSocket(server.url, id, key);
    sockets.push(socket);
    const received: { command: DispenseCommand; ack: (a: unknown) => void }[] = [];
    socket.on('machine:dispense', (command: DispenseCommand, ack: (a: unknown) => void) => {
      received.push({ command, ack: typeof ack === 'function' ? ack : () => undefined });
    });
    await connected(socket);
    expect((await socket.timeout(5_000).emitWithAck('machine:heartbeat', { status: 'IDLE' })).ok).toBe(true);
    return { socket, received };
  }
  const paidOffline = async () => {
    const m = await server.createVendingMachine(uid('RD'), 2000);
    const res = await server.postWebhook(qrCredited(m.qrCodeId, 2000));
    expect(res.status).toBe(200);
    const orderId = res.body.orderId as string;
    const payment = (await server.request('GET', `/v1/payments?orderId=${orderId}`)).body.items[0];
    return { m, orderId, payment };
  };
  const commands = (orderId: string) => server.kioskhub.services.commands.listForOrder(orderId);
  const snapshot = async (orderId: string, paymentId: string) => ({
    order: (await server.request('GET', `/v1/orders/${orderId}`)).body,
    payment: (await server.request('GET', `/v1/payments/${paymentId}`)).body,
    refunds: (await server.request('GET', `/v1/payments/${paymentId}/refunds`)).body.items,
    commands: await commands(orderId),
  });

  it('a full refund while the machine is offline cancels the queued dispense: it never dispenses', async () => {
    const { m, orderId, payment } = await paidOffline();
    expect((await commands(orderId))[0]).toMatchObject({ status: 'QUEUED' });
    const res = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'machine offline', to: 'refund_due' },
    });
    expect(res.status).toBe(201);

    const back = await machine(m.id, m.key);
    await sleep(1_000);
    expect(back.received.map((r) => r.command.orderId)).toEqual([]);
    expect((await commands(orderId))[0]).toMatchObject({ status: 'DONE' });
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('REFUNDED');
    expect(await ledgerInvariants(server.kioskhub.db)).toEqual({ drift: [], units: [] });
  });

  it('a partial refund of an order whose dispense is queued is refused and changes nothing', async () => {
    const { orderId, payment } = await paidOffline();
    const before = await snapshot(orderId, payment.id);
    for (const path of [`/v1/payments/${payment.id}/refunds`, `/api/payments/${payment.id}/refund`]) {
      const res = await server.request('POST', path, {
        body: { amountMinor: 500, reason: 'half', to: 'refund_due' },
      });
      expect(res.status, path).toBe(409);
      expect(res.body.error).toMatchObject({
        code: 'INVALID_STATE',
        details: { orderId, commandStatus: 'QUEUED' },
      });
    }
    expect(await snapshot(orderId, payment.id)).toEqual(before);
  });

  it('a refund while the machine holds the command (sent, no result yet) is refused and changes nothing', async () => {
    const { m, orderId, payment } = await paidOffline();
    const back = await machine(m.id, m.key);
    const sent = await eventually(() => back.received[0], 10_000, 'machine:dispense');
    expect(sent.command.orderId).toBe(orderId);
    await eventually(
      async () => ['SENT', 'ACCEPTED'].includes((await commands(orderId))[0]!.status),
      5_000,
      'command in flight',
    );
    const before = await snapshot(orderId, payment.id);
    const res = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { reason: 'too slow', to: 'refund_due' },
    });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'INVALID_STATE', details: { orderId } });
    expect(res.body.error.message).toMatch(/dispensing/);
    expect(await snapshot(orderId, payment.id)).toEqual(before);

    // Its result settles it; a refund after that is an ordinary refund.
    sent.ack({ accepted: true });
    const done = await back.socket.timeout(5_000).emitWithAck('machine:done', {
      commandId: sent.command.commandId,
      orderId,
      status: 'SUCCESS',
    });
    expect(done.ok).toBe(true);
    await eventually(
      async () => (await server.request('GET', `/v1/orders/${orderId}`)).body.status === 'COMPLETED',
      5_000,
      'COMPLETED',
    );
    const after = await server.request('POST', `/v1/payments/${payment.id}/refunds`, {
      body: { amountMinor: 500, reason: 'half a cup', to: 'refund_due' },
    });
    expect(after.status).toBe(201);
    expect((await server.request('GET', `/v1/orders/${orderId}`)).body.status).toBe('COMPLETED');
  });
});
