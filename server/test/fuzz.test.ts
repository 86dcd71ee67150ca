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
import { ADMIN_TOKEN, startServer, type TestServer } from './harness.js';

interface Route {
  method: string;
  /** OpenAPI path, `{name}` for path parameters. */
  path: string;
  query: string[];
  hasBody: boolean;
}

interface Shot {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

type Credential = 'none' | 'admin' | 'machine' | 'garbage';

const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

/** Garbage for one path parameter: plausible ids, odd strings, traversal, huge, unicode. */
const pathParam = (ids: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(...ids),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.constantFrom(
      '..',
      '%2e%2e',
      '../../etc/passwd',
      ' ',
      '%00',
      'null',
      '-1',
      '0',
      '1e309',
      "'; drop table orders; --",
      '<script>',
      'a'.repeat(5_000),
    ),
    fc.integer().map(String),
  );

/** Query strings: declared names with garbage values, plus names nobody declared. */
const queryString = (names: string[]): fc.Arbitrary<string> =>
  fc
    .array(
      fc.tuple(
        fc.oneof(names.length ? fc.constantFrom(...names) : fc.constant('x'), fc.string({ maxLength: 10 })),
        fc.oneof(
          fc.string({ maxLength: 30 }),
          fc.integer().map(String),
          fc.constantFrom('', 'true', 'null', '-1', '1e999', '9'.repeat(40), '[]', '{}', 'a'.repeat(3_000)),
        ),
      ),
      { maxLength: 4 },
    )
    // A long-poll route holds the request up to `wait` seconds: never ask it to wait.
    .map((pairs) => pairs.filter(([k]) => k !== 'wait'))
    .map((pairs) =>
      pairs.length
        ? `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`
        : '',
    );

/** A body and the content type it is sent with. */
type Body = { body?: string | Uint8Array; contentType?: string };
const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .jsonValue({ maxDepth: 4 })
      .map((v) => ({ body: JSON.stringify(v), contentType: 'application/json' })),
  },
  {
    weight: 3,
    arbitrary: fc
      .anything({
        maxDepth: 3,
        withNullPrototype: true,
        withBoxedValues: true,
        withMap: true,
        withSet: true,
        withDate: true,
        withTypedArray: true,
        withSparseArray: true,
      })
      .map((v) => ({ body: JSON.stringify(v) ?? 'undefined', contentType: 'application/json' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 200 })
      .map((bytes) => ({ body: bytes, contentType: 'application/json' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '{',
        '{"a":',
        '[1,]',
        '{"a":1}}',
        'nul',
        '"\\ud800"',
        '{"__proto__":{"admin":true}}',
        '{"constructor":{"prototype":{"x":1}}}',
        '\u0000',
        '',
      )
      .map((body) => ({ body, contentType: 'application/json' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(deepArray(20_000), deepObject(20_000), deepArray(200))
      .map((body) => ({ body, contentType: 'application/json' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        JSON.stringify({ id: 'x'.repeat(300_000), name: 'y'.repeat(300_000) }),
        'z'.repeat(1_200_000),
      )
      .map((body) => ({ body, contentType: 'application/json' })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=zz',
          'application/xml',
          'application/json; charset=latin1',
          'application/octet-stream',
          ';;;',
          'application/json, text/plain',
        ),
      )
      .map(([v, contentType]) => ({ body: JSON.stringify(v), contentType })),
  },
  { weight: 1, arbitrary: fc.constant<Body>({}) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => ({ body: JSON.stringify(v) })) },
);

describe('fuzz: every HTTP route and socket event with garbage', () => {
  let server: TestServer;
  let routes: Route[] = [];
  let machine: { id: string; key: string; qrCodeId: string };
  const results = { requests: 0, byStatus: {} as Record<number, number>, emits: 0, acks: 0 };

  beforeAll(async () => {
    // Garbage as fast as it goes: the per-socket event limit is not what this is about.
    // Callback secrets set, so those routes are fuzzed past their 503 PROVIDER_NOT_CONFIGURED.
    server = await startServer({
      env: {
        SOCKET_EVENTS_PER_SECOND: '100000',
        AT_CALLBACK_KEY: 'fuzz-at-callback-key-0917',
        MOMO_CALLBACK_KEY: 'fuzz-momo-callback-key-0917',
        AIRTEL_CALLBACK_KEY: 'fuzz-airtel-callback-key-0917',
      },
    });
    machine = await server.createVendingMachine('FUZZ1', 2000);
    const doc = await server.request('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    for (const [path, ops] of Object.entries(doc.body.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const params = (op.parameters ?? []) as { in: string; name: string }[];
        routes.push({
          method: method.toUpperCase(),
          path,
          query: params.filter((p) => p.in === 'query').map((p) => p.name),
          hasBody: op.requestBody !== undefined,
        });
      }
    }
    routes = routes.filter((r) => !r.path.startsWith('/docs'));
  }, 60_000);

  afterAll(async () => {
    console.log(
      `[fuzz] ${routes.length} routes; ${results.requests} requests ${JSON.stringify(results.byStatus)}; ${results.emits} socket emits, ${results.acks} acks`,
    );
    await server?.close();
  });

  const credentialArb = fc.constantFrom<Credential>('none', 'admin', 'machine', 'garbage');

  function shotArb(route: Route): fc.Arbitrary<Shot> {
    const names = [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
    const ids = [machine.id, 'default', 'FUZZ1', 'nope'];
    return fc
      .record({
        params: fc.tuple(...names.map(() => pathParam(ids))),
        query: queryString(route.query),
        body: route.hasBody || route.method !== 'GET' ? bodyArb : fc.oneof(fc.constant<Body>({}), bodyArb),
        credential: credentialArb,
      })
      .map(({ params, query, body, credential }) => {
        let i = 0;
        const path = route.path.replace(/\{[^}]+\}/g, () => encodeURIComponent(params[i++]!));
        const headers: Record<string, string> = {};
        if (credential === 'admin') headers['authorization'] = `Bearer ${ADMIN_TOKEN}`;
        if (credential === 'machine') headers['x-api-key'] = machine.key;
        if (credential === 'garbage') headers['authorization'] = 'Bearer eyJhbGciOiJub25lIn0.e30.';
        if (body.contentType) headers['content-type'] = body.contentType;
        // GET bodies are not allowed by fetch: send those as POST-less GETs.
        const withBody = route.method !== 'GET' && body.body !== undefined;
        return { method: route.method, url: path + query, headers, ...(withBody ? { body: body.body } : {}) };
      });
  }

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
    const where = `${shot.method} ${shot.url.slice(0, 200)} → ${res.status} ${res.text.slice(0, 300)}`;
    expect(res.status, where).toBeLessThan(500);
    if (res.status >= 400) {
      let body: any;
      try {
        body = JSON.parse(res.text);
      } catch {
        throw new Error(`4xx without a JSON body: ${where}`);
      }
      expect(typeof body?.error?.code, where).toBe('string');
      expect(typeof body?.error?.message, where).toBe('string');
      expect(body.error.code, where).toMatch(/^[A-Z_]+$/);
      expect(res.text, where).not.toMatch(/\bat .+\.(ts|js):\d+/); // never a stack trace
    }
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

  const payloadArb: fc.Arbitrary<unknown[]> = fc.oneof(
    fc.tuple(fc.jsonValue({ maxDepth: 4 })),
    fc.tuple(
      fc
        .anything({ maxDepth: 2, withBoxedValues: false })
        .map((v) => JSON.parse(JSON.stringify(v) ?? 'null') as unknown),
    ),
    fc.tuple(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
    fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
    fc.constantFrom<unknown[]>(
      [],
      [null],
      [{ status: 'IDLE', extra: 1 }],
      [{ commandId: 'x'.repeat(10_000), orderId: 'y', status: 'SUCCESS' }],
      [{ room: 'tenant:'.padEnd(5_000, 'x') }],
      [{ room: { toString: 'x' } }],
      [JSON.parse(deepObject(50))],
    ),
  );

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
