// Generated garbage for every HTTP route and socket event, shared by the fuzz test
// (server/test/fuzz.test.ts, a few hundred inputs in every test run) and the long fuzz mode of the
// soak (`npm run soak -- --fuzz 100000`). Routes come from the server's own /openapi.json, so a
// new route is fuzzed without touching this file.
import fc from 'fast-check';

/**
 * The server under fuzz: garbage as fast as it goes (the per-socket event limit is not what this
 * is about), and callback secrets set so those routes are fuzzed past their 503
 * PROVIDER_NOT_CONFIGURED. Shared by the fuzz test and `npm run soak -- --fuzz`.
 */
export const FUZZ_SERVER_ENV: Record<string, string> = {
  SOCKET_EVENTS_PER_SECOND: '100000',
  AT_CALLBACK_KEY: 'fuzz-at-callback-key-0917',
  MOMO_CALLBACK_KEY: 'fuzz-momo-callback-key-0917',
  AIRTEL_CALLBACK_KEY: 'fuzz-airtel-callback-key-0917',
  BANK_WEBHOOK_SECRET: 'fuzz-bank-webhook-secret-0917',
  STRIPE_SECRET_KEY: 'sk_test_fuzz',
  STRIPE_WEBHOOK_SECRET: 'whsec_fuzz',
  // Nothing listens there: no fuzzed request can reach a gateway.
  STRIPE_API_BASE: 'http://127.0.0.1:9',
};

export interface Route {
  method: string;
  /** OpenAPI path, `{name}` for path parameters. */
  path: string;
  query: string[];
  hasBody: boolean;
}

export interface Shot {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

export type Credential = 'none' | 'admin' | 'machine' | 'garbage';

export const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
export const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

/** Garbage for one path parameter: plausible ids, odd strings, traversal, huge, unicode. */
export const pathParam = (ids: string[]): fc.Arbitrary<string> =>
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
export const queryString = (names: string[]): fc.Arbitrary<string> =>
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
export type Body = { body?: string | Uint8Array; contentType?: string };
export const bodyArb: fc.Arbitrary<Body> = fc.oneof(
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

/** The routes an OpenAPI document declares (the interactive docs pages left out). */
export function routesFromOpenApi(doc: { paths: Record<string, Record<string, any>> }): Route[] {
  const routes: Route[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
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
  return routes.filter((r) => !r.path.startsWith('/docs'));
}

export const credentialArb = fc.constantFrom<Credential>('none', 'admin', 'machine', 'garbage');

/** One request to `route`: garbage parameters, query, body and credential. */
export function shotArb(
  route: Route,
  creds: { adminToken: string; machineId: string; machineKey: string; ids?: string[] },
): fc.Arbitrary<Shot> {
  const names = [...route.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
  const ids = [creds.machineId, 'default', ...(creds.ids ?? []), 'nope'];
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
      if (credential === 'admin') headers['authorization'] = `Bearer ${creds.adminToken}`;
      if (credential === 'machine') headers['x-api-key'] = creds.machineKey;
      if (credential === 'garbage') headers['authorization'] = 'Bearer eyJhbGciOiJub25lIn0.e30.';
      if (body.contentType) headers['content-type'] = body.contentType;
      // GET bodies are not allowed by fetch: send those as POST-less GETs.
      const withBody = route.method !== 'GET' && body.body !== undefined;
      return { method: route.method, url: path + query, headers, ...(withBody ? { body: body.body } : {}) };
    });
}

/** What is wrong with an answer to a fuzzed request (CONTRACTS §2), or undefined when it is right. */
export function answerProblem(shot: Shot, res: { status: number; text: string }): string | undefined {
  const where = `${shot.method} ${shot.url.slice(0, 200)} → ${res.status} ${res.text.slice(0, 300)}`;
  if (res.status >= 500) return `5xx: ${where}`;
  if (res.status < 400) return undefined;
  let body: any;
  try {
    body = JSON.parse(res.text);
  } catch {
    return `4xx without a JSON body: ${where}`;
  }
  if (typeof body?.error?.code !== 'string' || typeof body?.error?.message !== 'string')
    return `4xx not in the error shape: ${where}`;
  if (!/^[A-Z_]+$/.test(body.error.code)) return `error code not UPPER_SNAKE: ${where}`;
  if (/\bat .+\.(ts|js):\d+/.test(res.text)) return `stack trace in the answer: ${where}`;
  return undefined;
}

/** Socket event arguments: JSON of every shape, binary, oversized and hostile values. */
export const payloadArb: fc.Arbitrary<unknown[]> = fc.oneof(
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
