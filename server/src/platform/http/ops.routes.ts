// Liveness, readiness, metrics and the OpenAPI document.
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from './fastify.js';
import type { Metrics } from '../metrics.js';
import { AppError } from '../errors.js';

export function opsRoutes(app: FastifyTypebox, deps: { metrics: Metrics; ping(): Promise<void> }): void {
  app.get('/healthz', { schema: { tags: ['ops'], summary: 'The process is up', response: { 200: Type.Object({ ok: Type.Boolean() }) } } }, async () => ({ ok: true }));
  app.get('/readyz', {
    schema: { tags: ['ops'], summary: 'The database answers', response: { 200: Type.Object({ ok: Type.Boolean() }), 503: Type.Unknown() } },
  }, async () => {
    try {
      await deps.ping();
    } catch {
      throw new AppError('UNAVAILABLE', 'the database does not answer');
    }
    return { ok: true };
  });
  app.get('/metrics', { schema: { tags: ['ops'], summary: 'Prometheus metrics', hide: false } }, async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
