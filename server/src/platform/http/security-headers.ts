// Browser-facing hardening on every response (a content security policy with no inline
// script, nosniff, no referrer, no framing), and log serializers that keep secrets out of
// logs: request paths without their query (the cash screen's ?token=), database errors
// without the values of their parameters.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { stdSerializers } from 'pino';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // The dashboard's charts and Swagger UI set style attributes; no script can run from them.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob: https:",
  "connect-src 'self'",
  "font-src 'self' data:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('referrer-policy', 'no-referrer');
    void reply.header('x-frame-options', 'DENY');
    return payload;
  });
}

/** A request line for the log: the path only, since query strings can carry tokens. */
function request(req: FastifyRequest) {
  return {
    method: req.method,
    url: req.url.split('?')[0] ?? '',
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

// Fields of a PostgreSQL error that quote the row's values (`Key (email)=(a@b.c) already exists`).
const VALUE_FIELDS = ['detail', 'where', 'internalQuery', 'hint', 'parameters'] as const;

/** Database errors keep their code, table, column and constraint; never the values involved. */
function error(err: Error): { type: string; message: string; stack: string; [key: string]: unknown } {
  const out = stdSerializers.err(err) as {
    type: string;
    message: string;
    stack: string;
    [key: string]: unknown;
  };
  const e = err as Error & { severity?: unknown; code?: unknown };
  const fromPostgres = typeof e.severity === 'string' && typeof e.code === 'string';
  const fromSqlite = e.name === 'SqliteError';
  if (!fromPostgres && !fromSqlite) return out;
  for (const field of VALUE_FIELDS) delete out[field];
  // Data exceptions (class 22) quote the offending input in the message itself.
  out.message = String(out.message).replace(/"[^"]*"/g, '"[redacted]"');
  out.stack = String(out.stack).replace(/"[^"]*"/g, '"[redacted]"');
  return out;
}

export const logSerializers = { req: request, err: error };
