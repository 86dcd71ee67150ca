// The polling source tells a refused key (401/403: fix the key) from a server it cannot reach
// (fix the address or wait), with a real HTTP server answering 401 and a port nobody listens on.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '@kioskhub/agent-kit';
import { afterEach, describe, expect, it } from 'vitest';
import { createPrintQueueClient, RefusedError } from './kioskhub-client.js';
import { runPolling } from './job-sources.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Polls until `lines` has `count` entries, then stops the source. */
async function pollLines(url: string, count: number): Promise<string[]> {
  const lines: string[] = [];
  const stop = new AbortController();
  const client = createPrintQueueClient({ baseUrl: url, key: 'mk_wrong', timeoutMs: 1000 });
  const log = createLogger({ write: (line) => lines.push(line), journal: false });
  const running = runPolling(
    {
      agent: { printJob: async () => 'printed' },
      log,
      retry: { baseMs: 10, maxMs: 20 },
      failurePauseMs: 10,
      client,
      waitSeconds: 0,
      url,
    },
    stop.signal,
  );
  const deadline = Date.now() + 5000;
  while (lines.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stop.abort();
  await running;
  return lines;
}

describe('print client: refused vs unreachable', () => {
  it('a 401 from the queue says "refused (401 …): check the key", once per streak', async () => {
    const url = await listen((_req, res) => {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'unknown key' } }));
    });
    const client = createPrintQueueClient({ baseUrl: url, key: 'mk_wrong', timeoutMs: 1000 });
    await expect(client.nextJob(0)).rejects.toBeInstanceOf(RefusedError);
    const lines = await pollLines(url, 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('ERROR refused (401 UNAUTHORIZED): check the key (DEVICE_KEY)');
    expect(lines[0]).not.toContain('cannot reach');
  });

  it('a port nobody listens on says "cannot reach the server at <url>"', async () => {
    const url = await listen(() => undefined);
    await new Promise((r) => servers.pop()!.close(r)); // the port is now closed
    const client = createPrintQueueClient({ baseUrl: url, key: 'mk_any', timeoutMs: 1000 });
    const error = await client.nextJob(0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(RefusedError);
    const lines = await pollLines(url, 1);
    expect(lines[0]).toContain(`WARN cannot reach the server at ${url}; retrying`);
    expect(lines[0]).toContain('ECONNREFUSED');
    expect(lines[0]).not.toContain('refused (');
  });
});
