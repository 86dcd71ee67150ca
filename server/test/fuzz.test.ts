// Fuzzing every HTTP route (enumerated from GET /openapi.json, so new routes are covered without
// touching this file) and every socket event with generated garbage: JSON of every shape, values
// from fc.anything(), wrong content types, huge strings, deep nesting and raw invalid bytes,
// with and without valid credentials. Never a 5xx; every 4xx is `{error: {code, message}}`
// (CONTRACTS.md §2); socket acks always come back as objects and never take the server down;
// the server still answers /healthz and /readyz afterwards. fast-check prints the seed and the
// shrunk request of any failure.
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answerProblem,
  payloadArb,
  routesFromOpenApi,
  shotArb as kitShotArb,
  type Route,
  type Shot,
  FUZZ_SERVER_ENV,
} from './fuzz-kit.js';
import { ADMIN_TOKEN, startServer, type TestServer } from './harness.js';

describe('fuzz: every HTTP route and socket event with garbage', () => {
  let server: TestServer;
  let routes: Route[] = [];
  let machine: { id: string; key: string; qrCodeId: string };
  const results = { requests: 0, byStatus: {} as Record<number, number>, emits: 0, acks: 0 };

  beforeAll(async () => {
    server = await startServer({ env: FUZZ_SERVER_ENV });
    machine = await server.createVendingMachine('FUZZ1', 2000);
    const doc = await server.request('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    routes = routesFromOpenApi(doc.body);
  }, 60_000);

  afterAll(async () => {
    console.log(
      `[fuzz] ${routes.length} routes; ${results.requests} requests ${JSON.stringify(results.byStatus)}; ${results.emits} socket emits, ${results.acks} acks`,
    );
    await server?.close();
  });

  const shotArb = (route: Route) =>
    kitShotArb(route, {
      adminToken: ADMIN_TOKEN,
      machineId: machine.id,
      machineKey: machine.key,
      ids: ['FUZZ1'],
    });

  async function fire(shot: Shot): Promise<{ status: number; text: string; contentType: string }> {
    const res = await fetch(server.url + shot.url, {
      method: shot.method,
      headers: shot.headers,
      signal: AbortSignal.timeout(20_000),
      ...(shot.body !== undefined ? { body: shot.body } : {}),
    });
    const text = await res.text();
    results.requests++;
    results.byStatus[res.status] = (results.byStatus[res.status] ?? 0) + 1;
    return { status: res.status, text, contentType: res.headers.get('content-type') ?? '' };
  }

  function checkAnswer(shot: Shot, res: { status: number; text: string }): void {
    expect(answerProblem(shot, res)).toBeUndefined();
  }

  it(
    'every route: generated garbage, with and without credentials, never a 5xx; 4xx in the error shape',
    { timeout: 120_000 },
    async () => {
      expect(routes.length).toBeGreaterThan(20);
      // Every route at least three times, then more at random over all of them.
      for (const route of routes) {
        const shots = fc.sample(shotArb(route), {
          numRuns: 3,
          seed: route.path.length * 31 + route.method.length,
        });
        for (const shot of shots) checkAnswer(shot, await fire(shot));
      }
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...routes).chain((r) => shotArb(r)),
          async (shot) => {
            checkAnswer(shot, await fire(shot));
          },
        ),
        { numRuns: 120 },
      );
      // Paths and methods nobody declared.
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
          fc.string({ maxLength: 60 }),
          async (method, tail) => {
            const shot: Shot = {
              method,
              url: `/v1/${encodeURIComponent(tail)}/x`,
              headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
            };
            checkAnswer(shot, await fire(shot));
          },
        ),
        { numRuns: 20 },
      );
      // Raw, unencoded trouble in the URL itself: bad %-encodings, over-long parameters.
      for (const url of [
        '/v1/machines/%E0%A4%A',
        '/v1/machines/%zz',
        `/v1/orders/${'9'.repeat(500)}`,
        '/v1/machines/a%00b',
        '/sites/%/api/cash-payment/active-sessions',
        `/v1/orders?cursor=${'%'.repeat(50)}`,
      ]) {
        const shot: Shot = { method: 'GET', url, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } };
        checkAnswer(shot, await fire(shot));
      }
      expect((await server.request('GET', '/healthz')).status).toBe(200);
    },
  );

  // ---- sockets ----------------------------------------------------------------------------

  function open(url: string, auth?: unknown): Promise<Socket | Error> {
    const socket = io(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      ...(auth !== undefined ? { auth: auth as Record<string, unknown> } : {}),
    });
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(new Error('no connect within 10 s')), 10_000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('connect_error', (err) => {
        clearTimeout(timer);
        socket.disconnect();
        resolve(err);
      });
    });
  }

  /** Emits with an ack (when asked) and checks the ack is an {ok, …} object with a proper error. */
  async function emitChecked(
    socket: Socket,
    event: string,
    args: unknown[],
    withAck: boolean,
  ): Promise<void> {
    results.emits++;
    if (!withAck) {
      socket.emit(event, ...args);
      return;
    }
    let ack: any;
    try {
      ack = await socket.timeout(5_000).emitWithAck(event, ...args);
    } catch (err) {
      // A refused v1 machine:connect disconnects the socket; anything else must answer.
      if (!socket.connected) return;
      throw new Error(`no ack for ${event} ${JSON.stringify(args).slice(0, 200)}: ${String(err)}`);
    }
    results.acks++;
    const where = `${event} ${JSON.stringify(args).slice(0, 200)} → ${JSON.stringify(ack).slice(0, 300)}`;
    expect(typeof ack?.ok, where).toBe('boolean');
    if (ack.ok === false) {
      expect(typeof ack.error?.code, where).toBe('string');
      expect(typeof ack.error?.message, where).toBe('string');
      expect(ack.error.code, where).not.toBe('INTERNAL');
    }
  }

  it(
    'socket handshakes and events: garbage never crashes the server and always gets a proper ack',
    { timeout: 120_000 },
    async () => {
      const opened: Socket[] = [];
      try {
        // Handshakes with garbage auth are refused, never accepted and never fatal.
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom('/machines', '/live'),
            fc.oneof(
              fc.object({ maxDepth: 2 }),
              fc.record({ machineId: fc.string(), key: fc.string() }),
              fc.record({ token: fc.string() }),
              fc.record({ orderToken: fc.string({ maxLength: 500 }) }),
            ),
            async (nsp, auth) => {
              const s = await open(`${server.url}${nsp}`, auth);
              if (!(s instanceof Error)) {
                opened.push(s);
                throw new Error(`${nsp} accepted garbage auth ${JSON.stringify(auth)}`);
              }
              expect(s.message).toMatch(/unauthorized|unavailable/);
            },
          ),
          { numRuns: 20 },
        );

        // v2 with the machine's real credentials.
        const v2 = await open(`${server.url}/machines`, { machineId: machine.id, key: machine.key });
        if (v2 instanceof Error) throw v2;
        opened.push(v2);
        v2.on('machine:dispense', (_cmd: unknown, ack?: unknown) => {
          if (typeof ack === 'function') (ack as (a: unknown) => void)({ accepted: false, reason: 'BUSY' });
        });
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom('machine:heartbeat', 'machine:done'),
            payloadArb,
            fc.boolean(),
            async (event, args, withAck) => {
              await emitChecked(v2, event, args, withAck);
            },
          ),
          { numRuns: 60 },
        );
        expect(v2.connected).toBe(true);

        // v1: garbage machine:connect (refused, socket dropped), then a registered socket.
        await fc.assert(
          fc.asyncProperty(payloadArb, async (args) => {
            const s = await open(server.url);
            if (s instanceof Error) throw s;
            opened.push(s);
            await emitChecked(s, 'machine:connect', args, true);
            s.disconnect();
          }),
          { numRuns: 15 },
        );
        const v1 = await open(server.url);
        if (v1 instanceof Error) throw v1;
        opened.push(v1);
        // Before machine:connect: MACHINE_NOT_REGISTERED, not a crash.
        await emitChecked(v1, 'machine:heartbeat', [{ machineId: machine.id, ts: 1 }], true);
        await emitChecked(v1, 'machine:done', [{ orderId: 'x', result: 'SUCCESS' }], true);
        expect(
          await v1
            .timeout(5_000)
            .emitWithAck('machine:connect', { machineId: machine.id, token: machine.key }),
        ).toMatchObject({ ok: true });
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom('machine:heartbeat', 'machine:done'),
            payloadArb,
            fc.boolean(),
            async (event, args, withAck) => {
              await emitChecked(v1, event, args, withAck);
            },
          ),
          { numRuns: 40 },
        );
        expect(v1.connected).toBe(true);
        // A bad machine:connect on a registered socket is refused and drops it (CONTRACTS.md §5 v1).
        expect(
          await v1.timeout(5_000).emitWithAck('machine:connect', { machineId: machine.id, token: 'wrong' }),
        ).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED_MACHINE' } });

        // /live with a real token: subscribe / unsubscribe garbage.
        const live = await open(`${server.url}/live`, { token: ADMIN_TOKEN });
        if (live instanceof Error) throw live;
        opened.push(live);
        await fc.assert(
          fc.asyncProperty(
            fc.constantFrom('subscribe', 'unsubscribe', 'nonsense'),
            fc.oneof(
              payloadArb,
              fc.string({ maxLength: 80 }).map((room) => [{ room }]),
              fc.constantFrom<unknown[]>(
                [{ room: 'tenant:default' }],
                [{ room: 'order:../../x' }],
                [{ room: 'kitchen:default', tenantId: { $ne: null } }],
              ),
            ),
            async (event, args) => {
              if (event === 'nonsense') {
                results.emits++;
                live.emit(event, ...args);
                return;
              }
              await emitChecked(live, event, args, true);
            },
          ),
          { numRuns: 50 },
        );
        expect(live.connected).toBe(true);
      } finally {
        for (const s of opened) s.disconnect();
      }
      // Still alive and well.
      expect((await server.request('GET', '/healthz', { token: null })).status).toBe(200);
      expect((await server.request('GET', '/readyz', { token: null })).status).toBe(200);
      expect((await server.request('GET', `/v1/machines/${machine.id}`)).status).toBe(200);
    },
  );
});
