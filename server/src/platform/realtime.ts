// The Socket.IO server shared by the machine gateway and live updates; with REDIS_URL it
// uses the Redis adapter so rooms, evictions and kicks reach every process.
import type { Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
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
  /** False while this process cannot receive other processes' notices (its Redis subscriber is down). */
  noticesArrive(): boolean;
  /** Called when the connection to Redis is back after a loss: notices sent meanwhile may be gone. */
  onReconnected(listener: () => void): void;
  /**
   * For a stop: drops this process's sockets (Redis stays up, so the disconnections can still be
   * announced), refuses new handshakes and closes every engine connection, also those no
   * namespace holds yet (a client still connecting), which would keep the HTTP server open.
   */
  stopSockets(): void;
  /** Destroys the WebSocket connections still open (a peer that never completes the close). */
  destroyConnections(): void;
  close(): Promise<void>;
}

const RESUBSCRIBE_GRACE_MS = 2_000;

export function createRealtime(httpServer: HttpServer, options: { redisUrl?: string; logger: Logger }): Realtime {
  let accepting = true;
  const io = new Server(httpServer, {
    serveClient: true,
    maxHttpBufferSize: 100_000,
    cors: { origin: true, credentials: true },
    allowRequest: (_req, answer) => answer(accepting ? null : 'shutting down', accepting),
  });
  // Upgraded connections are not the HTTP server's any more: closeAllConnections() skips them.
  const upgraded = new Set<Duplex>();
  httpServer.on('upgrade', (_req, socket: Duplex) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  const clients: Redis[] = [];
  const reconnectListeners: (() => void)[] = [];
  let subscriber: Redis | undefined;
  let lost = false;
  if (options.redisUrl) {
    const pub = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    const sub = pub.duplicate();
    subscriber = sub;
    for (const client of [pub, sub]) {
      // While Redis is away this process keeps serving the machines connected to it.
      client.on('error', (err: Error) => options.logger.warn({ err: err.message }, 'redis connection problem'));
      clients.push(client);
    }
    // ioredis reports `ready` before it has re-sent SUBSCRIBE: notices count as arriving again
    // (and the listeners run) only a moment later, when the subscriptions are surely back.
    let back: NodeJS.Timeout | undefined;
    sub.on('close', () => {
      lost = true;
      clearTimeout(back);
    });
    sub.on('ready', () => {
      if (!lost) return;
      clearTimeout(back);
      back = setTimeout(() => {
        lost = false;
        options.logger.info('redis is back');
        for (const listener of reconnectListeners) listener();
      }, RESUBSCRIBE_GRACE_MS);
      back.unref();
    });
    io.adapter(createAdapter(pub, sub, { requestsTimeout: 2_000 }));
    // The adapter's clients queue commands until Redis is back (fan-out is only delayed); a
    // rate-limit check queued like that would hold every API request for the whole outage.
    const limits = new Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1_000 });
    limits.on('error', (err: Error) => options.logger.warn({ err: err.message }, 'redis connection problem (rate limits)'));
    clients.push(limits);
  }
  // Every namespace (/, /machines, /live), on this process only: `io.disconnectSockets()` would
  // go through the Redis adapter and drop every other process's sockets too.
  const disconnectLocalSockets = () => {
    for (const nsp of io._nsps.values()) nsp.local.disconnectSockets(true);
  };
  return {
    io,
    clustered: clients.length > 0,
    redis: clients[2],
    noticesArrive: () => subscriber === undefined || (subscriber.status === 'ready' && !lost),
    onReconnected: (listener) => void reconnectListeners.push(listener),
    stopSockets() {
      disconnectLocalSockets();
      accepting = false;
      io.engine.close();
    },
    destroyConnections() {
      for (const socket of upgraded) socket.destroy();
    },
    async close() {
      disconnectLocalSockets();
      await new Promise<void>((resolve) => {
        void io.close(() => resolve());
      });
      for (const client of clients) client.disconnect();
    },
  };
}
