// The Socket.IO server shared by the machine gateway and live updates; with REDIS_URL it
// uses the Redis adapter so rooms, evictions and kicks reach every process. Handshakes from
// browsers of other origins (CORS_ORIGINS aside) and beyond SOCKET_MAX_PER_ADDRESS are refused.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Server } from 'socket.io';
import { clientAddress, type TrustFunction } from './http/client-address.js';
import { throttledWarning } from './http/throttled-warning.js';

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
const CAP_WARNING_INTERVAL_MS = 60_000;
const REDIS_WARNING_INTERVAL_MS = 60_000;

export interface RealtimeOptions {
  redisUrl?: string;
  logger: Logger;
  trust: TrustFunction;
  /** Browser origins besides the server's own (and PUBLIC_URL's) that may connect. */
  corsOrigins: string[];
  publicUrl?: string;
  maxPerAddress: number;
  /** A client that has not joined a namespace this long after its handshake is dropped. */
  authTimeoutMs: number;
}

/** Same origin as the request's Host, PUBLIC_URL, or CORS_ORIGINS; no Origin (a device) is fine. */
function originAllowed(req: IncomingMessage, allowed: Set<string>): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed.has(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function createRealtime(httpServer: HttpServer, options: RealtimeOptions): Realtime {
  let accepting = true;
  const publicOrigin = options.publicUrl ? [new URL(options.publicUrl).origin] : [];
  const allowed = new Set([...options.corsOrigins, ...publicOrigin]);
  const perAddress = new Map<string, number>();
  // A refusal the client only sees as a failed upgrade: say so in the log, once a minute per
  // address with the count, so an operator behind one NAT (or a bench) knows what to raise.
  const capRefusals = new Map<string, { since: number; count: number }>();
  const refusedForCap = (address: string): void => {
    const now = Date.now();
    const seen = capRefusals.get(address);
    if (seen && now - seen.since < CAP_WARNING_INTERVAL_MS) {
      seen.count += 1;
      return;
    }
    const refused = (seen?.count ?? 0) + 1;
    capRefusals.set(address, { since: now, count: 0 });
    if (capRefusals.size > 10_000) capRefusals.clear();
    options.logger.warn(
      { address, limit: options.maxPerAddress, refused },
      'Socket.IO connections refused: this address holds SOCKET_MAX_PER_ADDRESS connections to this process (raise it for many devices behind one address)',
    );
  };
  const io = new Server(httpServer, {
    serveClient: true,
    maxHttpBufferSize: 100_000,
    connectTimeout: options.authTimeoutMs,
    // Only listed origins get CORS headers; the server's own pages need none.
    cors: { origin: [...allowed], credentials: true },
    allowRequest: (req, answer) => {
      if (!accepting) return answer('shutting down', false);
      if (!originAllowed(req, allowed)) return answer('origin not allowed', false);
      const address = clientAddress(req, options.trust);
      if ((perAddress.get(address) ?? 0) >= options.maxPerAddress) {
        refusedForCap(address);
        return answer('too many connections from this address', false);
      }
      answer(null, true);
    },
  });
  // Engine connections per client address, for the cap above.
  // (`on`, not `once`, for events that come once per connection: each `once` would keep a
  // wrapper and its state for as long as the connection lives, tens of thousands of them.)
  type EngineSocket = { request: IncomingMessage; on(event: 'close', listener: () => void): void };
  io.engine.on('connection', (socket: EngineSocket) => {
    const address = clientAddress(socket.request, options.trust);
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    socket.on('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });
  // Upgraded connections are not the HTTP server's any more: closeAllConnections() skips them.
  const upgraded = new Set<Duplex>();
  httpServer.on('upgrade', (_req, socket: Duplex) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
  });
  const clients: Redis[] = [];
  const reconnectListeners: (() => void)[] = [];
  let subscriber: Redis | undefined;
  let lost = false;
  if (options.redisUrl) {
    const pub = new Redis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    const sub = pub.duplicate();
    subscriber = sub;
    // While Redis is away this process keeps serving the machines connected to it, and each
    // client retries every couple of seconds: one warning a minute (with how many were held back)
    // says so without flooding the log.
    const warnAdapter = throttledWarning(
      options.logger,
      'redis connection problem',
      REDIS_WARNING_INTERVAL_MS,
      'suppressedSinceLastWarning',
    );
    for (const client of [pub, sub]) {
      client.on('error', (err: Error) => warnAdapter({ err: err.message }));
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
    const limits = new Redis(options.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 1_000,
    });
    const warnLimits = throttledWarning(
      options.logger,
      'redis connection problem (rate limits)',
      REDIS_WARNING_INTERVAL_MS,
      'suppressedSinceLastWarning',
    );
    limits.on('error', (err: Error) => warnLimits({ err: err.message }));
    clients.push(limits);
  }
  // Every connection of this process (/, /machines, /live), closed at the transport:
  // `io.disconnectSockets()` would go through the Redis adapter and drop every other process's
  // sockets too, and a server's `disconnect` leaves a socket.io client waiting for its own code to
  // reconnect (the earlier vending firmware never does). A closed connection is one a client
  // reconnects by itself: to this process restarted, or to another one.
  const disconnectLocalSockets = () => {
    for (const nsp of io._nsps.values()) for (const socket of nsp.sockets.values()) socket.conn.close();
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
