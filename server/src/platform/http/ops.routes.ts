// Liveness, readiness, metrics and the OpenAPI document. Metrics count every tenant's
// payments and queues, so they need METRICS_TOKEN or ADMIN_TOKEN.
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from './fastify.js';
import type { Metrics } from '../metrics.js';
import { AppError, forbidden } from '../errors.js';
import { constantTimeEqual, sha256, type Authenticator } from './auth.js';
import { presentedCredential } from './rate-limit.js';
import { errors } from './schemas.js';

export interface OpsDeps {
  metrics: Metrics;
  ping(): Promise<void>;
  auth: Authenticator;
  metricsToken?: string;
}

export function opsRoutes(app: FastifyTypebox, deps: OpsDeps): void {
  const metricsTokenHash = deps.metricsToken === undefined ? undefined : sha256(deps.metricsToken);
  // A refused scrape says which token opens /metrics (same statuses and codes as any route).
  const need =
    metricsTokenHash === undefined
      ? 'send Authorization: Bearer <ADMIN_TOKEN>, or set METRICS_TOKEN on the server and send that'
      : 'send Authorization: Bearer <METRICS_TOKEN> (ADMIN_TOKEN works too)';
  async function requireMetricsReader(
    headers: Parameters<Authenticator['fromHeaders']>[0],
    presented: string | undefined,
  ): Promise<void> {
    let principal;
    try {
      principal = await deps.auth.fromHeaders(headers);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'UNAUTHORIZED') throw err;
      throw new AppError(
        'UNAUTHORIZED',
        presented === undefined
          ? `/metrics needs a token: ${need}`
          : `that token is neither METRICS_TOKEN nor ADMIN_TOKEN: ${need}`,
      );
    }
    if (principal.kind !== 'admin') {
      throw forbidden(
        `${principal.kind === 'machine' ? 'a machine key' : 'a staff token'} does not open /metrics: ${need}`,
      );
    }
  }
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['ops'],
        summary: 'The process is up',
        response: { 200: Type.Object({ ok: Type.Boolean() }) },
      },
    },
    async () => ({ ok: true }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['ops'],
        summary: 'The database answers',
        response: { 200: Type.Object({ ok: Type.Boolean() }), 503: Type.Unknown() },
      },
    },
    async () => {
      try {
        await deps.ping();
      } catch {
        throw new AppError('UNAVAILABLE', 'the database does not answer');
      }
      return { ok: true };
    },
  );
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['ops'],
        summary: 'Prometheus metrics (Bearer METRICS_TOKEN or ADMIN_TOKEN)',
        response: errors(401, 403),
      },
    },
    async (request, reply) => {
      const presented = presentedCredential(request.headers);
      const byMetricsToken =
        presented !== undefined &&
        metricsTokenHash !== undefined &&
        constantTimeEqual(sha256(presented), metricsTokenHash);
      if (!byMetricsToken) await requireMetricsReader(request.headers, presented);
      const body = await deps.metrics.registry.metrics();
      return reply.type(deps.metrics.registry.contentType).send(body);
    },
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
