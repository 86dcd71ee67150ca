// Text with a NUL character (U+0000), which PostgreSQL cannot store, is bad input everywhere: a
// clear 400 VALIDATION_FAILED (a socket's VALIDATION_FAILED), never a 500, and nothing changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connected,
  engines,
  machineSocket,
  qrCredited,
  startServer,
  type Engine,
  type TestServer,
} from './harness.js';

describe.each(engines())('NUL characters in text (%s)', (engine: Engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  const refused = (res: { status: number; body: any }, what: string) => {
    expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(400);
    expect(res.body.error.code, what).toBe('VALIDATION_FAILED');
    expect(res.body.error.message, what).toContain('NUL');
  };

  it('HTTP bodies, path parameters and query strings are refused with 400, changing nothing', async () => {
    const machine = await server.createMachine(`NUL${engine}`, { kind: 'vending' });
    const before = await server.request('GET', `/v1/machines/${machine.id}`);
    refused(
      await server.request('POST', '/v1/auth/login', {
        body: { email: 'a\u0000@example.com', password: 'x'.repeat(12) },
        token: null,
      }),
      'login email',
    );
    refused(await server.request('GET', '/v1/orders/%00'), 'order id in the path');
    refused(await server.request('GET', '/v1/orders/%00/timeline'), 'timeline path');
    refused(await server.request('POST', '/v1/orders/%00/refund-due', { body: {} }), 'refund-due path');
    refused(await server.request('GET', '/v1/audit?actor=%00'), 'audit actor');
    refused(await server.request('GET', '/v1/audit?subjectId=a%00b'), 'audit subject');
    refused(
      await server.request('PATCH', `/v1/machines/${machine.id}`, { body: { name: 'Soda\u0000' } }),
      'machine name',
    );
    refused(
      await server.request('POST', '/v1/machines', { body: { id: `NEW${engine}`, name: 'x\u0000' } }),
      'new machine name',
    );
    expect((await server.request('GET', `/v1/machines/${machine.id}`)).body).toEqual(before.body);
    expect((await server.request('GET', `/v1/machines/NEW${engine}`)).status).toBe(404);
  });

  it('a signed webhook whose payment id holds a NUL is a 400, and no order is made', async () => {
    const vm = await server.createVendingMachine(`NULV${engine}`, 2000);
    const res = await server.postWebhook(qrCredited(vm.qrCodeId, 2000, 'pay_a\u0000b'));
    refused(res, 'webhook payment id');
    const orders = await server.request('GET', `/v1/orders?machineId=${vm.id}`);
    expect(orders.body.items).toEqual([]);
  });

  it('a socket event with a NUL in its payload is answered VALIDATION_FAILED', async () => {
    const machine = await server.createMachine(`NULS${engine}`, { kind: 'vending' });
    const socket = machineSocket(server.url, machine.id, machine.key);
    try {
      await connected(socket);
      const answer = await socket
        .timeout(5_000)
        .emitWithAck('machine:done', { commandId: 'a\u0000', orderId: 'o1', status: 'SUCCESS' });
      expect(answer).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      expect(answer.error.message).toContain('commandId must not contain NUL');
    } finally {
      socket.close();
    }
  });
});
