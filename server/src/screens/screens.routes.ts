// Plain, fast pages served by the server: the customer cash screen and the kitchen display.
// Data comes from the API and /live; the pages hold no secrets.
import { readFileSync } from 'node:fs';
import { Type } from '@sinclair/typebox';
import type { FastifyTypebox } from '../platform/http/fastify.js';

const page = (name: string) => readFileSync(new URL(`./${name}`, import.meta.url), 'utf8');

export function screensRoutes(app: FastifyTypebox): void {
  const cash = page('cash-screen.html');
  const kitchen = page('kitchen.html');
  // The pages' scripts are files, not inline: the content security policy allows no inline script.
  const scripts: Record<string, string> = {
    'cash-screen.js': page('cash-screen.js'),
    'kitchen.js': page('kitchen.js'),
  };
  const scriptHeaders = { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' };
  const headers = {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
  };
  app.get(
    '/kiosk/cash/:orderNumber',
    {
      schema: {
        tags: ['screens'],
        summary: 'Customer cash screen (?token=<orderToken>)',
        params: Type.Object({ orderNumber: Type.String({ minLength: 1, maxLength: 64 }) }),
        querystring: Type.Object({ token: Type.Optional(Type.String({ maxLength: 4096 })) }),
      },
    },
    async (_request, reply) => reply.headers(headers).send(cash),
  );
  app.get(
    '/screens/:file',
    {
      schema: { hide: true, params: Type.Object({ file: Type.String({ maxLength: 64 }) }) },
    },
    async (request, reply) => {
      if (!Object.hasOwn(scripts, request.params.file)) return reply.callNotFound();
      return reply.headers(scriptHeaders).send(scripts[request.params.file]);
    },
  );
  app.get(
    '/kitchen/:siteId',
    {
      schema: {
        tags: ['screens'],
        summary: 'Kitchen display (staff sign-in)',
        params: Type.Object({ siteId: Type.String({ minLength: 1, maxLength: 64 }) }),
      },
    },
    async (_request, reply) => reply.headers(headers).send(kitchen),
  );
}
