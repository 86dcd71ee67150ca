// Issue 12, denial of service over HTTP (items 4, 5, 7, 9): sign-in limits that forged
// X-Forwarded-For, fresh emails or fresh credentials do not escape, bounded password work,
// slow requests cut off, and sign-in refused while the shared limit store is away.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, startServer, type TestServer } from '../harness.js';

const login = (server: TestServer, email: string, headers: Record<string, string> = {}) =>
  server.request('POST', '/v1/auth/login', {
    token: null,
    headers,
    body: { email, password: 'wrong-password' },
  });

/** Sends `head` then one body byte every `everyMs`; resolves with ms until the server closes. */
function trickle(
  url: string,
  everyMs: number,
  giveUpMs: number,
): Promise<{ closedAfterMs: number | null; answer: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const started = Date.now();
    const socket: Socket = connect(Number(port), hostname);
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    const done = (closedAfterMs: number | null) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ closedAfterMs, answer });
    };
    const giveUp = setTimeout(() => done(null), giveUpMs);
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => done(Date.now() - started));
    socket.on('error', () => undefined);
    socket.write(
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    if (everyMs > 0) timer = setInterval(() => socket.write(' '), everyMs);
  });
}

describe.each(engines())('security: HTTP limits (%s)', (engine) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ engine });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 4: an invented X-Forwarded-For on each attempt does not escape the per-email login limit', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      codes.push(
        (await login(server, 'victim@example.com', { 'x-forwarded-for': `203.0.113.${i + 1}` })).status,
      );
    }
    expect(codes).toEqual([...Array.from({ length: 10 }, () => 401), 429, 429]);
  });

  it('item 5: logins per address are capped whatever the email', async () => {
    // Per address: 20 a minute (LOGIN_MAX_PER_ADDRESS); the 12 above came from this address too.
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) codes.push((await login(server, `junk${i}@example.com`)).status);
    expect(codes.slice(0, 8).every((c) => c === 401)).toBe(true);
    expect(codes.slice(8)).toEqual([429, 429]);
  });
});

describe('security: password work is bounded (item 5)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({
      // Password checks at the production cost (the harness lowers it): the queue must fill.
      env: {
        LOGIN_CONCURRENCY: '1',
        LOGIN_QUEUE: '2',
        LOGIN_MAX_PER_ADDRESS: '1000',
        PASSWORD_HASH_MEMORY_KIB: '65536',
        PASSWORD_HASH_TIME_COST: '3',
      },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 5: parallel junk logins beyond the queue are refused at once instead of piling up', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => login(server, `flood${i}@example.com`)),
    );
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(5);
    expect(refused[0]!.body.error.code).toBe('RATE_LIMITED');
    expect(answers.filter((a) => a.status === 401).length).toBeGreaterThanOrEqual(1);
  });
});

describe("security: unknown credentials share their address's limit (item 9)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ env: { RATE_LIMIT_PER_MINUTE: '5' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 9b: a random bearer credential per request does not escape the global limit', async () => {
    expect((await server.request('GET', '/v1/auth/me')).status).toBe(200);
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) {
      codes.push(
        (await server.request('GET', '/v1/machines', { token: `random-${i}-${Math.random().toString(36)}` }))
          .status,
      );
    }
    expect(codes.filter((c) => c === 429).length).toBeGreaterThan(0);
    // A credential that works keeps its own bucket.
    expect((await server.request('GET', '/v1/auth/me')).status).toBe(200);
  });
});

describe('security: slow requests are cut off (item 7)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ env: { REQUEST_TIMEOUT_MS: '1000', CONNECTION_TIMEOUT_MS: '1500' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 7: a body trickled byte by byte, or a silent connection, does not hold the connection', async () => {
    const [trickled, silent] = await Promise.all([
      trickle(server.url, 200, 8_000),
      trickle(server.url, 0, 8_000),
    ]);
    expect(trickled.closedAfterMs).not.toBeNull();
    expect(trickled.closedAfterMs!).toBeLessThan(4_000);
    expect(silent.closedAfterMs).not.toBeNull();
    expect(silent.closedAfterMs!).toBeLessThan(5_000);
  });
});

describe('security: sign-in fails closed without Redis (item 9)', () => {
  let server: TestServer;
  beforeAll(async () => {
    // Nothing listens on port 1: the shared limit store is unreachable from the start.
    server = await startServer({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('item 9a: login is refused while the limit store is unreachable; the rest of the API is served', async () => {
    const res = await login(server, 'someone@example.com');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('UNAVAILABLE');
    expect((await server.request('GET', '/v1/machines')).status).toBe(200);
    expect((await server.request('GET', '/healthz', { token: null })).status).toBe(200);
  });
});

const redisUrl = process.env['TEST_REDIS_URL'];
describe.skipIf(!redisUrl)('security: sign-in limits shared through Redis (items 4, 9)', () => {
  let first: TestServer;
  let second: TestServer;
  beforeAll(async () => {
    // The request limit's counter for 127.0.0.1 lives in the same Redis as every other test
    // server's that uses it at the same moment: lift it, this test is about the sign-in limit.
    const env = { REDIS_URL: redisUrl!, LOGIN_MAX_PER_ADDRESS: '1000', RATE_LIMIT_PER_MINUTE: '10000000' };
    first = await startServer({ env });
    second = await startServer({ env });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
  });

  it('items 4 and 9: attempts on two processes, from invented addresses, share one per-email limit', async () => {
    const email = `shared-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const forged = { 'x-forwarded-for': `198.51.100.${i + 1}` };
      codes.push((await login(i % 2 === 0 ? first : second, email, forged)).status);
    }
    expect(codes).toEqual([...Array.from({ length: 10 }, () => 401), 429, 429]);
  });
});
