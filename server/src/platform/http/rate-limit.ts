// Request rate limits: per credential that has authenticated here (anything else per address,
// so a fresh random credential on each request gains nothing), shared across processes through
// Redis when REDIS_URL is set. Provider webhooks and health probes are not limited.
import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';

const EXEMPT = /^\/(webhooks\/|healthz|readyz|socket\.io\/)/;

/** The bearer or X-API-Key credential of a request, as the authenticator reads it. */
export function presentedCredential(headers: FastifyRequest['headers']): string | undefined {
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.length > 0) return apiKey;
  const authorization = headers['authorization'];
  if (typeof authorization !== 'string') return undefined;
  return /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1];
}

export async function installRateLimits(
  app: FastifyInstance,
  options: { perMinute: number; redis?: Redis; knownCredential(token: string): boolean },
): Promise<void> {
  const callerKey = (request: FastifyRequest): string => {
    const credential = presentedCredential(request.headers);
    if (credential !== undefined && options.knownCredential(credential)) {
      return `c:${createHash('sha256').update(credential).digest('base64url').slice(0, 22)}`;
    }
    return `ip:${request.ip}`;
  };
  await app.register(rateLimit, {
    global: true,
    max: options.perMinute,
    timeWindow: 60_000,
    keyGenerator: callerKey,
    allowList: (request) => EXEMPT.test(request.url),
    ...(options.redis ? { redis: options.redis, nameSpace: 'kioskhub:rl:' } : {}),
    // When Redis is away, serve rather than refuse.
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new AppError(
        'RATE_LIMITED',
        `too many requests: at most ${context.max} per minute; retry in ${Math.ceil(context.ttl / 1000)} s`,
      ),
  });
}
