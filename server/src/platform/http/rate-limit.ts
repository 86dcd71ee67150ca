// Request rate limits: per credential (or per IP without one), shared across processes
// through Redis when REDIS_URL is set. Provider webhooks and health probes are not limited.
import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';

const EXEMPT = /^\/(webhooks\/|healthz|readyz|metrics|socket\.io\/)/;

function callerKey(request: FastifyRequest): string {
  const credential = request.headers['x-api-key'] ?? request.headers['authorization'];
  if (typeof credential === 'string' && credential.length > 0) {
    return `c:${createHash('sha256').update(credential).digest('base64url').slice(0, 22)}`;
  }
  return `ip:${request.ip}`;
}

export async function installRateLimits(app: FastifyInstance, options: { perMinute: number; redis?: Redis }): Promise<void> {
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
      new AppError('RATE_LIMITED', `too many requests: at most ${context.max} per minute; retry in ${Math.ceil(context.ttl / 1000)} s`),
  });
}

/** Route option for password logins: a few attempts per minute per address and email. */
export const loginRateLimit = {
  max: 10,
  timeWindow: 60_000,
  // After parsing: at the default onRequest hook there is no body yet, so every email of one
  // address would share a single bucket.
  hook: 'preHandler' as const,
  keyGenerator: (request: FastifyRequest) => {
    const email = (request.body as { email?: unknown } | undefined)?.email;
    return `login:${request.ip}:${typeof email === 'string' ? email.toLowerCase().slice(0, 254) : ''}`;
  },
};
