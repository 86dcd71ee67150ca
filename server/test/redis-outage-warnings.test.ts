// Redis going away under a running server (REDIS_URL set): its Redis clients (the Socket.IO
// adapter's two and the rate limits' one) retry every few hundred milliseconds to two seconds,
// each attempt an error. The log gets one warning per kind at most once a minute, the next one
// saying how many were held back, not one line per attempt; and 'redis is back' when it is.
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileTrust } from '../src/platform/http/client-address.js';
import { createRealtime, type Realtime } from '../src/platform/realtime.js';
import { eventually, sleep, startPrivateRedis, type ServiceController } from './cluster/helpers.js';

interface LogLine {
  level: number;
  msg: string;
  err?: string;
  suppressedSinceLastWarning?: number;
}

const WARN = 40;
const ADAPTER = 'redis connection problem';
const LIMITS = 'redis connection problem (rate limits)';

let redis: ServiceController | undefined;
let realtime: Realtime | undefined;
let httpServer: Server | undefined;

afterEach(async () => {
  vi.useRealTimers();
  await realtime?.close();
  httpServer?.close();
  await redis?.destroy();
  realtime = undefined;
  httpServer = undefined;
  redis = undefined;
});

describe('Redis going away while the server runs', { timeout: 120_000 }, () => {
  it('logs each redis connection problem at most once a minute, with how many were held back', async (ctx) => {
    redis = await startPrivateRedis();
    if (!redis) return ctx.skip('redis-server is not installed');
    const lines: LogLine[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    httpServer = createServer();
    realtime = createRealtime(httpServer, {
      redisUrl: redis.url,
      logger,
      trust: compileTrust(false),
      corsOrigins: [],
      maxPerAddress: 100,
      authTimeoutMs: 5_000,
    });
    const limits = realtime.redis!;
    await eventually(
      () => realtime!.noticesArrive() && limits.status === 'ready',
      30_000,
      'the Redis clients to connect',
    );
    let limitErrors = 0;
    limits.on('error', () => (limitErrors += 1));
    const warnings = (msg: string) => lines.filter((l) => l.level === WARN && l.msg === msg);

    await redis.stop();
    // Several reconnect attempts by each client (ioredis waits 50 ms, 100 ms, … up to 2 s).
    await eventually(() => limitErrors >= 6, 30_000, 'six failed reconnects of the rate-limit client');
    await sleep(1_000);
    expect(warnings(ADAPTER), JSON.stringify(lines)).toHaveLength(1);
    expect(warnings(LIMITS), JSON.stringify(lines)).toHaveLength(1);
    expect(warnings(ADAPTER)[0]!.err).toMatch(/ECONNREFUSED|ECONNRESET|Connection is closed/);
    expect(warnings(ADAPTER)[0]!.suppressedSinceLastWarning).toBeUndefined();

    // A minute later (the clock moved on; timers stay real, so the clients keep retrying) the
    // next attempt is logged again, with how many were held back since the first warning.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 61_000);
    await eventually(
      () => warnings(ADAPTER).length === 2 && warnings(LIMITS).length === 2,
      30_000,
      'the next warning of each kind',
    );
    expect(warnings(ADAPTER)[1]!.suppressedSinceLastWarning).toBeGreaterThanOrEqual(5);
    expect(warnings(LIMITS)[1]!.suppressedSinceLastWarning).toBeGreaterThanOrEqual(5);
    await sleep(1_500);
    expect(warnings(ADAPTER)).toHaveLength(2);
    expect(warnings(LIMITS)).toHaveLength(2);
    vi.useRealTimers();

    await redis.start();
    await eventually(() => lines.some((l) => l.msg === 'redis is back'), 30_000, "'redis is back'");
    expect(realtime.noticesArrive()).toBe(true);
  });
});
