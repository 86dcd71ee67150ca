import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpClient, errorCode } from './http.js';

describe('agent http client', () => {
  let server: Server;
  const seen: string[] = [];
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function start(): Promise<string> {
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers['x-api-key']}`);
      if (req.url?.includes('hold')) return; // never answers
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(req.url?.includes('missing') ? 404 : 200, { 'content-type': 'application/json' });
        res.end(
          req.url?.includes('missing')
            ? JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such job' } })
            : JSON.stringify({ echo: body ? JSON.parse(body) : null }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/base/`;
  }

  it('sends JSON with the key under the base path and parses answers', async () => {
    const http = createHttpClient({
      baseUrl: await start(),
      headers: { 'x-api-key': 'k1' },
      timeoutMs: 2000,
    });
    expect(await http.request('POST', '/api/x?wait=1', { body: { a: 1 } })).toEqual({
      status: 200,
      body: { echo: { a: 1 } },
    });
    const missing = await http.request('GET', 'api/missing');
    expect(missing.status).toBe(404);
    expect(errorCode(missing.body)).toEqual({ code: 'NOT_FOUND', message: 'no such job' });
    expect(seen.slice(-2)).toEqual(['POST /base/api/x?wait=1 k1', 'GET /base/api/missing k1']);
    http.close();
  });

  it('times out, aborts, and leaves no connection behind once closed', async () => {
    const http = createHttpClient({ baseUrl: await start(), headers: {}, timeoutMs: 2000 });
    await expect(http.request('GET', '/hold', { timeoutMs: 100 })).rejects.toThrow(/no answer within 100 ms/);
    const stop = new AbortController();
    const held = http.request('GET', '/hold/2', { signal: stop.signal });
    setTimeout(() => stop.abort(), 50);
    await expect(held).rejects.toThrow(/aborted/);
    await expect(http.request('GET', '/x', { signal: stop.signal })).rejects.toThrow(/aborted/);
    await http.request('GET', '/x');
    http.close();
    await new Promise((r) => setTimeout(r, 50));
    const open = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    expect(open).toBe(0);
  });
});
