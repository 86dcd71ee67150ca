// Serves the built dashboard (dashboard/dist) at `/`, with client routes falling back to
// index.html, and the cafe guest app (guest.html, its own small bundle) at `/t/<tableToken>`. Paths that belong to the server (API, webhooks, sockets, docs, device and screen
// routes) are never answered with the app: unknown ones keep their JSON 404.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export const DEFAULT_DIST = fileURLToPath(new URL('../../../../dashboard/dist/', import.meta.url));

/** First path segments the app must never shadow. */
export const RESERVED = [
  'v1',
  'api',
  'webhooks',
  'socket.io',
  'docs',
  'openapi.json',
  'metrics',
  'healthz',
  'readyz',
  'kiosk',
  'kitchen',
  'screens',
  'sites',
  'dispense-verification',
];

const notBuilt = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Kioskhub: dashboard not built</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:10vh auto;padding:0 1rem;line-height:1.5}code{background:#eee;padding:.1em .3em;border-radius:4px}</style></head>
<body><h1>The dashboard has not been built</h1>
<p>Kioskhub is running: the API is at <a href="/docs">/docs</a>. The operator dashboard is a web app that is built once, and <code>npm install</code> normally does it. Build it from the project folder with</p>
<pre><code>npm run build -w dashboard</code></pre>
<p>then reload this page (no restart needed).</p></body></html>`;

export async function serveDashboard(
  app: FastifyInstance,
  options: { distDir?: string } = {},
): Promise<void> {
  const dist = options.distDir ?? DEFAULT_DIST;
  await app.register(async (scope) => {
    await scope.register(fastifyStatic, { serve: false });
    scope.get('/*', { schema: { hide: true } }, async (request, reply) => {
      const path = (request.params as { '*'?: string })['*'] ?? '';
      const first = path.split('/')[0] ?? '';
      if (RESERVED.includes(first)) return reply.callNotFound();
      // Checked per request, so a build made while the server runs is picked up.
      if (!existsSync(`${dist}/index.html`)) {
        return reply
          .code(503)
          .header('content-type', 'text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .send(notBuilt);
      }
      // `/t/<tableToken>` and `/t/order/<id>` are the guest app, a bundle apart from the dashboard
      // (a table token is a JWT: its dots do not make it a file).
      const guest = first === 't';
      const last = path.split('/').at(-1) ?? '';
      if (!guest && last.includes('.')) {
        // A file: hashed bundles are immutable; anything else is revalidated.
        const hashed = first === 'assets';
        return reply.sendFile(path, dist, hashed ? { maxAge: '365d', immutable: true } : { maxAge: 0 });
      }
      const html = guest && existsSync(`${dist}/guest.html`) ? 'guest.html' : 'index.html';
      return reply
        .header('cache-control', 'no-cache')
        .header('x-frame-options', 'DENY')
        .sendFile(html, dist, { maxAge: 0, cacheControl: false });
    });
  });
}
