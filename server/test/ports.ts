// Free TCP ports on 127.0.0.1 for servers, brokers and clusters that tests start.
import { createServer } from 'node:net';

/** A port nobody listens on right now: bind port 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

/**
 * The first of `count` consecutive ports that all bind right now (a cluster's nodes listen on
 * --base-port, +1, …). They are taken below Linux's ephemeral range (32768 and up), where the
 * outgoing connections of every test pick their local ports: a run found there can lose a port to
 * one of them before the cluster binds it.
 */
export async function freePortRun(count: number): Promise<number> {
  const bind = (port: number) =>
    new Promise<ReturnType<typeof createServer>>((bound, refused) => {
      const probe = createServer();
      probe.once('error', refused);
      probe.listen(port, '127.0.0.1', () => bound(probe));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (12_000 - count));
    const probes: ReturnType<typeof createServer>[] = [];
    try {
      for (let i = 0; i < count; i++) probes.push(await bind(base + i));
      return base;
    } catch {
      // One of them is taken: another run.
    } finally {
      await Promise.all(probes.map((p) => new Promise((closed) => p.close(closed))));
    }
  }
  throw new Error(`no ${count} consecutive free ports found between 20000 and 32000`);
}
