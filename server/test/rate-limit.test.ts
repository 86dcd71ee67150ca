import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './harness.js';

describe('rate limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ env: { RATE_LIMIT_PER_MINUTE: '30' } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('password logins are limited per email with RATE_LIMITED', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await server.request('POST', '/v1/auth/login', {
        token: null,
        body: { email: 'nobody@example.com', password: 'wrong-password' },
      });
      codes.push(res.status);
      if (res.status === 429) expect(res.body.error.code).toBe('RATE_LIMITED');
    }
    expect(codes.slice(0, 10).every((c) => c === 401)).toBe(true);
    expect(codes.slice(10)).toEqual([429, 429]);
  });

  it('API calls are limited per credential; webhooks and health probes are not', async () => {
    let limited = 0;
    // The first call is counted against the address: a credential gets its own bucket only
    // once it has authenticated (random credentials would otherwise each get a fresh bucket).
    for (let i = 0; i < 36; i++) if ((await server.request('GET', '/v1/machines')).status === 429) limited++;
    expect(limited).toBe(5);
    for (let i = 0; i < 35; i++) expect((await server.request('GET', '/healthz')).status).toBe(200);
    const other = await server.request('GET', '/v1/machines', { token: 'some-other-token-that-is-wrong' });
    expect(other.status).toBe(401);
  });
});
