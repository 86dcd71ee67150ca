// A body over the limit is answered 400 VALIDATION_FAILED ("request body is too large"). Fastify
// used to answer it and close the connection at once, while the client was still sending: the
// client's next write met a reset (EPIPE / ECONNRESET, one request in a few dozen under load in
// `npm run soak -- --fuzz`) and it never read the answer. Now the rest of the body is read and
// dropped on a connection kept open (RFC 9112 §9.6), and a client still sending 5 s later is cut off.
// HTTP only: no storage is involved, so one engine.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './harness.js';

describe('a request body over the limit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ engine: 'sqlite' });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** POSTs 8 MB of `z` (with a Content-Length, or chunked): the client is still sending long after the answer. */
  function postBig(how: 'length' | 'chunked') {
    const size = 8_000_000;
    const chunk = new Uint8Array(64 * 1024).fill(0x7a);
    const body =
      how === 'length'
        ? 'z'.repeat(size)
        : new ReadableStream<Uint8Array>({
            start(controller) {
              for (let sent = 0; sent < size; sent += chunk.length) controller.enqueue(chunk);
              controller.close();
            },
          });
    return fetch(`${server.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      ...(how === 'chunked' ? { duplex: 'half' } : {}),
    } as RequestInit);
  }

  for (const how of ['length', 'chunked'] as const) {
    it(`(${how === 'length' ? 'Content-Length' : 'chunked'}) is answered 400 on a connection kept open`, async () => {
      for (let i = 0; i < 3; i++) {
        const res = await postBig(how);
        expect(res.status).toBe(400);
        expect(await res.json()).toEqual({
          error: {
            code: 'VALIDATION_FAILED',
            message:
              'request body is too large (at most 1 MB; 64 KB on the mobile-money, USSD, SMS and bank webhooks)',
          },
        });
        expect(res.headers.get('connection')).not.toBe('close');
      }
      // And the server is well: a small request right after.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    });
  }

  it('a client that stops sending the rest is cut off after 5 s', async () => {
    const { port } = new URL(server.url);
    const socket = await new Promise<net.Socket>((resolve) => {
      const s = net.connect(Number(port), '127.0.0.1', () => resolve(s));
    });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (answer += d));
    const closed = new Promise<number>((resolve) => {
      const start = Date.now();
      socket.on('close', () => resolve(Date.now() - start));
    });
    socket.write(
      `POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n`,
    );
    socket.write('z'.repeat(1_100_000));
    // …and nothing more: the answer comes, then the connection ends within the 5 s allowed.
    const after = await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toMatch(/request body is too large/);
    expect(after).toBeGreaterThan(4_000);
    expect(after).toBeLessThan(15_000);
  }, 20_000);
});
