// One mapper from thrown errors to the contract's error shape; 5xx never leak details.
import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { AppError } from '../errors.js';
import { NUL_MESSAGE, isNulInText } from '../nul.js';

interface ErrorBody {
  error: { code: string; message: string; details?: unknown; requestId?: string };
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({
      error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` },
    } satisfies ErrorBody);
  });

  app.setErrorHandler((err: FastifyError | AppError | Error, request, reply) => {
    if (err instanceof AppError) {
      const body: ErrorBody = { error: { code: err.code, message: err.message } };
      if (err.details !== undefined) body.error.details = err.details;
      if (err.status >= 500) body.error.requestId = request.id;
      if (err.retryAfterSec !== undefined) void reply.header('retry-after', String(err.retryAfterSec));
      return reply.code(err.status).send(body);
    }
    const fastifyError = err as FastifyError;
    if (fastifyError.validation) {
      return reply.code(400).send({
        error: {
          code: 'VALIDATION_FAILED',
          message: describeValidation(fastifyError),
          details: fastifyError.validation.map((v) => ({
            path: `${fastifyError.validationContext ?? ''}${v.instancePath}`,
            message: v.message,
            ...(v.keyword === 'additionalProperties'
              ? { field: (v.params as { additionalProperty?: string }).additionalProperty }
              : {}),
          })),
        },
      } satisfies ErrorBody);
    }
    const status = fastifyError.statusCode ?? 500;
    if (status === 415) {
      // VALIDATION_FAILED is a 400 (CONTRACTS §2); say what to send instead.
      const sent = String(request.headers['content-type'] ?? '').slice(0, 100);
      return reply.code(400).send({
        error: {
          code: 'VALIDATION_FAILED',
          message: `unsupported Content-Type "${sent}": send JSON with Content-Type: application/json`,
        },
      } satisfies ErrorBody);
    }
    if (status === 413) {
      lingerForTheRest(request.raw, reply);
      return reply.code(400).send({
        error: {
          code: 'VALIDATION_FAILED',
          message:
            'request body is too large (at most 1 MB; 64 KB on the mobile-money, USSD, SMS and bank webhooks)',
        },
      } satisfies ErrorBody);
    }
    if (status >= 400 && status < 500) {
      // 413 and 415 were answered above; the rest map by status.
      const code = status === 400 ? 'VALIDATION_FAILED' : codeFor(status);
      return reply.code(status).send({
        error: { code, message: fastifyError.message },
      } satisfies ErrorBody);
    }
    if (isNulInText(err)) {
      // A route without a schema for that text (a provider's body): still bad input, not a fault.
      return reply.code(400).send({
        error: { code: 'VALIDATION_FAILED', message: `text ${NUL_MESSAGE}` },
      } satisfies ErrorBody);
    }
    if (isDatabaseUnavailable(err)) {
      // Never a guess: the caller retries (Razorpay retries any non-2xx) once storage is back.
      request.log.warn({ err: err.message }, 'database unavailable');
      return reply
        .code(503)
        .header('retry-after', '2')
        .send({
          error: {
            code: 'UNAVAILABLE',
            message: 'storage is unavailable; try again shortly',
            requestId: request.id,
          },
        } satisfies ErrorBody);
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send({
      error: { code: 'INTERNAL', message: 'internal error', requestId: request.id },
    } satisfies ErrorBody);
  });
}

/** How long a client refused for a too-large body has to finish sending it, ms. */
const LINGER_MS = 5_000;

/**
 * Fastify answers a body over its limit at once and closes the connection while the client is
 * still sending the rest: the client's next write meets a reset (EPIPE / ECONNRESET) and it never
 * reads the answer that says why. Instead the rest of the body is read and dropped (Node does so
 * for a request its answer did not read) on a connection kept open, as RFC 9112 §9.6 asks of a
 * server that answers before the request ended; a client still sending after LINGER_MS is cut off.
 */
function lingerForTheRest(raw: IncomingMessage, reply: FastifyReply): void {
  reply.removeHeader('connection');
  if (raw.complete) return;
  const cutOff = setTimeout(() => raw.socket.destroy(), LINGER_MS);
  cutOff.unref();
  raw.once('end', () => clearTimeout(cutOff));
  raw.once('close', () => clearTimeout(cutOff));
  raw.resume();
}

// PostgreSQL went away (restart, failover, network): connection-class errors, not query bugs.
const PG_UNAVAILABLE = new Set([
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '53300',
]);
const NET_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
]);

export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e) return false;
  if (
    typeof e.code === 'string' &&
    (PG_UNAVAILABLE.has(e.code) || NET_UNAVAILABLE.has(e.code) || e.code === 'SQLITE_BUSY')
  )
    return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection/i.test(
    message,
  );
}

function codeFor(status: number): string {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 429) return 'RATE_LIMITED';
  return 'VALIDATION_FAILED';
}

function describeValidation(err: FastifyError): string {
  const first = err.validation?.[0];
  if (!first) return err.message;
  const where = `${err.validationContext ?? 'request'}${first.instancePath.replaceAll('/', '.')}`;
  if (first.keyword === 'additionalProperties') {
    return `${where}: unknown field "${(first.params as { additionalProperty?: string }).additionalProperty}"`;
  }
  if (first.keyword === 'enum') {
    // Say which values are allowed (a handful: statuses, roles, kinds), not only that one is not.
    const allowed = (first.params as { allowedValues?: unknown[] }).allowedValues ?? [];
    if (allowed.length > 0 && allowed.length <= 30)
      return `${where} must be one of: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  if (first.keyword === 'const') {
    // A union of literals (an action, a method): each branch refused the value with its constant.
    const allowed = [
      ...new Set(
        err
          .validation!.filter((e) => e.keyword === 'const' && e.instancePath === first.instancePath)
          .map((e) => (e.params as { allowedValue?: unknown }).allowedValue),
      ),
    ];
    if (allowed.length === 1) return `${where} must be ${JSON.stringify(allowed[0])}`;
    if (allowed.length > 1 && allowed.length <= 30)
      return `${where} must be one of: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  if (first.keyword === 'format' && (first.params as { format?: string }).format === 'date-time')
    return `${where} must be a date and time in ISO 8601 with a time zone, e.g. 2026-03-01T00:00:00Z`;
  return `${where} ${first.message ?? 'is invalid'}`;
}
