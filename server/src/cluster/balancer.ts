// A small TCP round-robin balancer for trying a local cluster: it forwards whole connections,
// so HTTP, long-polls and WebSocket upgrades all pass through untouched. Backends that refuse
// a connection are skipped. (Production uses a real load balancer; see docs/operations.md.)
import net from 'node:net';

export interface Backend {
  host: string;
  port: number;
}

export function startBalancer(options: {
  host: string;
  port: number;
  backends: Backend[];
  log?: (line: string) => void;
}): Promise<net.Server> {
  let next = 0;
  const server = net.createServer((client) => {
    client.pause();
    const tryBackend = (attempt: number) => {
      if (attempt >= options.backends.length) {
        client.destroy();
        return;
      }
      const backend = options.backends[next++ % options.backends.length]!;
      const upstream = net.connect(backend.port, backend.host);
      upstream.once('connect', () => {
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      upstream.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED' && !client.destroyed) return tryBackend(attempt + 1);
        client.destroy();
      });
      client.once('error', () => upstream.destroy());
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
    };
    tryBackend(0);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      options.log?.(
        `balancer on ${options.host}:${options.port} → ${options.backends.map((b) => b.port).join(', ')}`,
      );
      resolve(server);
    });
  });
}
