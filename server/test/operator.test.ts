// What an operator sees in the first hour (issue 13): a machine takes its site's currency;
// kiosks, cash units and printers that call over HTTP are online and last seen by their
// requests, and OFFLINE after a silence; a wrong machine key and a wrong webhook secret are
// logged (once a minute, never with the key or the secret).
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LIVE_EVENTS } from '@kioskhub/protocol';
import {
  engines,
  eventually,
  liveSocket,
  connected,
  machineSocket,
  qrCredited,
  startServer,
  type Engine,
  type TestServer,
} from './harness.js';

const key = (k: string) => ({ token: null, headers: { 'x-api-key': k } });

describe.each(engines())('operator’s first hour (%s)', (engine: Engine) => {
  let server: TestServer;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}${++seq}`;
  const machine = async (id: string) => (await server.request('GET', `/v1/machines/${id}`)).body;

  beforeAll(async () => {
    // Longer than the 2 s last-seen batch, as in production (30 s), short enough for a test.
    server = await startServer({ engine, env: { MACHINE_HEARTBEAT_TIMEOUT_MS: '4000' } });
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a machine takes the currency of its site, also when it moves to another site', async () => {
    const siteId = uid('php');
    expect(
      (await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Manila', currency: 'PHP' } }))
        .status,
    ).toBe(201);
    const kiosk = await server.createMachine(uid('KIOSK'), { kind: 'kiosk', siteId });
    expect(await machine(kiosk.id)).toMatchObject({ siteId, currency: 'PHP' });
    const vending = await server.createMachine(uid('VEND'));
    expect(await machine(vending.id)).toMatchObject({ siteId: 'default', currency: 'INR' });
    // An explicit currency still wins.
    const usd = await server.createMachine(uid('USD'), { siteId, currency: 'USD' });
    expect(await machine(usd.id)).toMatchObject({ currency: 'USD' });
    const moved = await server.request('PATCH', `/v1/machines/${vending.id}`, { body: { siteId } });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(moved.body).toMatchObject({ siteId, currency: 'PHP' });
    expect(await machine(vending.id)).toMatchObject({ currency: 'PHP' });
  });

  it('kiosks, cash units and printers are online and last seen by their HTTP requests, OFFLINE after a silence', async () => {
    const siteId = uid('http');
    expect(
      (await server.request('POST', '/v1/sites', { body: { id: siteId, name: 'Polling', currency: 'PHP' } }))
        .status,
    ).toBe(201);
    const kiosk = await server.createMachine(uid('KIOSK'), { kind: 'kiosk', siteId });
    const cash = await server.createMachine(uid('CASH'), { kind: 'cash', siteId });
    const printer = await server.createMachine(uid('PRN'), { kind: 'printer', siteId });
    for (const m of [kiosk, cash, printer])
      expect(await machine(m.id)).toMatchObject({ status: 'OFFLINE', lastSeenAt: null });

    const live = liveSocket(server.url, { token: 'test-admin-token-0123456789' });
    const statuses: { machineId: string; status: string; socketConnected: boolean }[] = [];
    live.on(LIVE_EVENTS.machineStatus, (e: { machineId: string; status: string; socketConnected: boolean }) =>
      statuses.push(e),
    );
    try {
      await connected(live);
      expect(await live.timeout(5000).emitWithAck('subscribe', { room: 'tenant:default' })).toMatchObject({
        ok: true,
      });
      const before = new Date().toISOString();
      expect((await server.request('GET', '/api/cash-payment/active-sessions', key(kiosk.key))).status).toBe(
        200,
      );
      expect((await server.request('GET', '/api/cash-payment/active-sessions', key(cash.key))).status).toBe(
        200,
      );
      expect((await server.request('GET', '/api/receipt/queue/next', key(printer.key))).status).toBe(204);
      // The kiosk keeps calling; the other two fall silent.
      const keepAlive = setInterval(
        () => void server.request('GET', '/api/cash-payment/active-sessions', key(kiosk.key)),
        300,
      );
      try {
        for (const m of [kiosk, cash, printer]) {
          const seen = await eventually(
            async () => {
              const row = await machine(m.id);
              return row.status === 'IDLE' ? row : undefined;
            },
            8000,
            `${m.id} online`,
          );
          expect(seen).toMatchObject({ socketConnected: false });
          expect(seen.lastSeenAt >= before).toBe(true);
        }
        await eventually(
          () =>
            [kiosk, cash, printer].every((m) =>
              statuses.some((s) => s.machineId === m.id && s.status === 'IDLE' && !s.socketConnected),
            ),
          5000,
          'live IDLE',
        );
        for (const m of [cash, printer]) {
          await eventually(async () => (await machine(m.id)).status === 'OFFLINE', 15_000, `${m.id} offline`);
        }
        expect(await machine(kiosk.id)).toMatchObject({ status: 'IDLE' });
        // It never went OFFLINE while it kept calling.
        expect(statuses.filter((s) => s.machineId === kiosk.id && s.status === 'OFFLINE')).toEqual([]);
      } finally {
        clearInterval(keepAlive);
      }
      await eventually(
        () => statuses.some((s) => s.machineId === cash.id && s.status === 'OFFLINE'),
        5000,
        'live OFFLINE',
      );
      // A device heard from again is online again.
      expect((await server.request('GET', '/api/cash-payment/active-sessions', key(cash.key))).status).toBe(
        200,
      );
      await eventually(
        async () => (await machine(cash.id)).status === 'IDLE',
        8000,
        'cash unit online again',
      );
    } finally {
      live.close();
    }
  });

  it('a wrong machine key is logged as a refused connection, once a minute, without the key', async () => {
    const m = await server.createMachine(uid('VM'));
    const warn = vi.spyOn(server.kioskhub.app.log, 'warn');
    for (let i = 0; i < 3; i++) {
      const socket = machineSocket(server.url, m.id, `mk_wrong_key_${i}`);
      await expect(connected(socket)).rejects.toThrow('unauthorized');
      socket.close();
    }
    const refusals = warn.mock.calls.filter(([, msg]) =>
      String(msg).startsWith('machine connection refused'),
    );
    expect(refusals).toHaveLength(1);
    expect(refusals[0]![0]).toMatchObject({ machineId: m.id, protocol: 'v2' });
    expect(JSON.stringify(refusals[0])).not.toContain('mk_wrong_key');
    expect(String(refusals[0]![1])).toContain('rotate-key');
  });

  it('a webhook with a wrong secret is logged naming RAZORPAY_WEBHOOK_SECRET, once a minute; a good one is not', async () => {
    const vm = await server.createVendingMachine(uid('WH'), 2000);
    const warn = vi.spyOn(server.kioskhub.app.log, 'warn');
    const good = await server.postWebhook(qrCredited(vm.qrCodeId, 2000));
    expect(good.status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const bad = await server.postWebhook(qrCredited(vm.qrCodeId, 2000), {
        secret: 'whsec_not_the_one_configured',
      });
      expect(bad.status).toBe(401);
      expect(bad.body.error.code).toBe('BAD_SIGNATURE');
    }
    const warnings = warn.mock.calls.filter(([, msg]) => String(msg).includes('RAZORPAY_WEBHOOK_SECRET'));
    expect(warnings).toHaveLength(1);
    expect(String(warnings[0]![1])).toContain('401 BAD_SIGNATURE');
    expect(warnings[0]![0]).toMatchObject({ signed: true });
    expect(JSON.stringify(warnings)).not.toContain('whsec_');
  });

  it('/docs shows the webhook’s body (documentation only: the signature is still checked on the raw bytes)', async () => {
    const doc = (await server.request('GET', '/openapi.json', { token: null })).body;
    const op = doc.paths['/webhooks/razorpay'].post;
    const body = op.requestBody.content['application/json'];
    expect(body.schema.properties.payload.properties.payment).toBeDefined();
    expect(JSON.stringify(body)).toContain('qr_code.credited');
    expect(JSON.stringify(op.responses['200'])).toContain('duplicate');
    // Not validated against that schema: a signed body that is not an event is still 400 from the handler.
    const res = await server.postWebhook('{"not":"an event"}');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
    expect(doc.info.description).not.toMatch(/CONTRACTS|ARCHITECTURE|PROVIDERS/);
  });
});
