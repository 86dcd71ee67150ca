// Graceful stop with clients still talking. The field agents (cash reader, print client) poll
// over a kept-alive connection. A connection that had a request in flight when the stop began
// is not idle, so closing the HTTP server does not drop it; if the server then keeps answering
// the agent's next polls on it normally, the stop waits for as long as the agent polls (the CI
// saw 30 s). The server must answer them 503 + `Connection: close` instead (Fastify's drain).
import http from 'node:http';
import net from 'node:net';
import { SimulatedMachine } from '@kioskhub/machine-simulator';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, engines, eventually, startServer } from './harness.js';

const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));

describe.each(engines())('graceful stop (%s)', (engine) => {
  it('finishes while an agent keeps polling on a connection that was busy when the stop began', async () => {
    const server = await startServer({ engine });
    const m = await server.createVendingMachine('STOP1', 2000);
    const machine = new SimulatedMachine({ url: server.url, machineId: m.id, key: m.key, heartbeatMs: 1000 });
    await machine.start();
    await eventually(async () => (await server.request('GET', '/v1/machines/STOP1')).body.status === 'IDLE');

    // One kept-alive connection, as an agent's pool has.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<number | string>((resolve) => {
        http
          .get(new URL(path, server.url), { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      });
    expect(await get('/healthz')).toBe(200);

    // A request in flight on that connection when the stop begins: its body is still coming.
    const body = JSON.stringify({ id: 'x' });
    const slow = new Promise<number | string>((resolve) => {
      const req = http.request(new URL('/v1/sites', server.url), {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          'content-type': 'application/json',
          'content-length': body.length,
        },
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      req.flushHeaders();
      // The rest of the body once the stop has begun (the port no longer listens).
      const finish = () => (server.kioskhub.app.server.listening ? setTimeout(finish, 10) : req.end(body));
      finish();
    });
    await sleep(100);
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });

    // The agent goes on polling every 100 ms, as the cash reader does.
    const answers: (number | string)[] = [await slow];
    const deadline = Date.now() + 10_000;
    while (!closed && Date.now() < deadline) {
      answers.push(await get('/healthz'));
      await sleep(100);
    }
    const stoppedWhilePolling = closed;
    agent.destroy();
    machine.stop();
    await closing;

    expect(stoppedWhilePolling, 'the stop finished while the agent was still polling').toBe(true);
    // The request that was in flight got its answer (400: the site body is incomplete) …
    expect(answers[0]).toBe(400);
    // … and a poll after it was refused, by the drain's 503 or a closed port, not served.
    expect(answers.slice(1).every((a) => a === 503 || a === 'ECONNREFUSED' || a === 'ECONNRESET')).toBe(true);
  });
});

describe('graceful stop with a WebSocket that never finishes connecting', () => {
  it('ends within the drain time though the peer holds an engine connection and never answers', async () => {
    const server = await startServer();
    const { port } = new URL(server.url);
    // A raw WebSocket upgrade to the engine with no namespace joined, from a peer that never reads
    // a frame (so it never completes a close handshake either).
    const peer = net.connect(Number(port), '127.0.0.1');
    const upgraded = new Promise<string>((resolve) => {
      let head = '';
      peer.on('data', (chunk) => {
        head += chunk.toString('latin1');
        if (head.includes('\r\n\r\n')) resolve(head.split('\r\n')[0]!);
      });
    });
    const peerClosed = new Promise<void>((resolve) => peer.on('close', () => resolve()));
    peer.on('error', () => undefined);
    peer.write(
      [
        'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1',
        `Host: 127.0.0.1:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version: 13',
        '',
        '',
      ].join('\r\n'),
    );
    expect(await upgraded).toBe('HTTP/1.1 101 Switching Protocols');

    const started = Date.now();
    const outcome = await Promise.race([server.close().then(() => 'closed' as const), sleep(20_000)]);
    const tookMs = Date.now() - started;
    peer.destroy();
    // The drain time is 5 s; before the fix the stop waited for Socket.IO's 45 s connect timeout.
    expect(outcome).toBe('closed');
    expect(tookMs).toBeLessThan(10_000);
    await peerClosed;
  });
});
