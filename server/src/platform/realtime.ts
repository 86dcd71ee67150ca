// The Socket.IO server shared by the machine gateway and live updates; with REDIS_URL it
// uses the Redis adapter so rooms, evictions and kicks reach every process.
import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Server } from 'socket.io';

export interface Realtime {
  io: Server;
  clustered: boolean;
  /**
   * A Redis connection for rate limits (undefined without REDIS_URL). It fails fast while Redis
   * is away (no offline queue, a command timeout) so requests are served, not held.
   */
  redis: Redis | undefined;
  close(): Promise<void>;
}

export function createRealtime(httpServer: HttpServer, options: { redisUrl?: string; logger: Logger }): Realtime {
  const io = new Server(httpServer, {
    serveClient: true,
    maxHttpBufferSize: 100_000,
    cors: { origin: true, credentials: true },
  });
  const clients: Redis[] = [];
  if (options.redisUrl) {
    const pub = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    const sub = pub.duplicate();
    for (const client of [pub, sub]) {
      // While Redis is away this process keeps serving the machines connected to it.
      client.on('error', (err: Error) => options.logger.warn({ err: err.message }, 'redis connection problem'));
      clients.push(client);
    }
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 2_000 }));
    // The adapter's clients queue commands until Redis is back (fan-out is only delayed); a
    // rate-limit check queued like that would hold every API request for the whole outage.
    const limits = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1_000 });
    limits.on('error', (err: Error) => options.logger.warn({ err: err.message }, 'redis connection problem (rate limits)'));
    clients.push(limits);
  }
  return {
    io,
    clustered: clients.length > 0,
    redis: clients[2],
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => {
        void io.close(() => resolve());
      });
      for (const client of clients) client.disconnect();
    },
  };
}
