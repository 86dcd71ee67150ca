// MTN MoMo's callback (PUT or POST /webhooks/momo/:paymentId?key=<secret>): unsigned, so it is
// only stored once in the inbox and schedules a status check; the status API alone settles.
import { Type } from '@sinclair/typebox';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { EntityId, errors } from '../../platform/http/schemas.js';
import { callbackKeyMatches } from '../../modules/mobile-money/callback-key.js';
import type { MobileMoney } from '../../modules/mobile-money/mobile-money.service.js';

/** The status a callback body claims (never trusted; it only names the inbox row). */
export function momoReportedStatus(raw: string): string {
  try {
    const body = JSON.parse(raw) as { status?: unknown };
    return typeof body.status === 'string' ? body.status.toUpperCase().slice(0, 40) : 'UNKNOWN';
  } catch {
    return 'UNKNOWN';
  }
}

export function momoCallbackRoutes(
  app: FastifyTypebox,
  deps: {
    callbackSecret: string | undefined;
    mobileMoney: Pick<MobileMoney, 'recordCallback'>;
    afterCommit(): void;
  },
): void {
  // Whatever MoMo sends (JSON, or nothing) is read as bytes: a malformed body still counts as a nudge.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 65_536 }, (_request, body, done) =>
    done(null, body),
  );

  app.route({
    method: ['PUT', 'POST'],
    url: '/webhooks/momo/:paymentId',
    onRequest: async (request) => {
      if (!deps.callbackSecret) throw new AppError('PROVIDER_NOT_CONFIGURED', 'MOMO_CALLBACK_KEY is not set');
      const key = (request.query as { key?: unknown } | undefined)?.key;
      if (!callbackKeyMatches(key, deps.callbackSecret))
        throw new AppError('FORBIDDEN', 'the callback key is missing or wrong');
    },
    schema: {
      tags: ['webhooks'],
      summary:
        'MTN MoMo RequestToPay callback (unsigned: confirmed with the status API before anything is credited)',
      params: Type.Object({ paymentId: EntityId }),
      querystring: Type.Object({ key: Type.Optional(Type.String({ maxLength: 200 })) }),
      response: {
        200: Type.Object({ ok: Type.Literal(true), outcome: Type.String() }),
        ...errors(400, 403, 503),
      },
    },
    handler: async (request) => {
      const { paymentId } = request.params as { paymentId: string };
      const raw = typeof request.body === 'string' ? request.body : '';
      const outcome = await deps.mobileMoney.recordCallback('momo', paymentId, momoReportedStatus(raw), raw);
      deps.afterCommit();
      return { ok: true as const, outcome };
    },
  });
}
