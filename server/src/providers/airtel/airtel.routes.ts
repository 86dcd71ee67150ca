// Airtel Money's callback (POST /webhooks/airtel?key=<secret>): its optional hash is not relied
// on (the hashed bytes are not documented), so the callback is only stored once in the inbox and
// schedules a status enquiry; the enquiry alone settles.
import { Type } from '@sinclair/typebox';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { errors } from '../../platform/http/schemas.js';
import { callbackKeyMatches } from '../../modules/mobile-money/callback-key.js';
import type { MobileMoney } from '../../modules/mobile-money/mobile-money.service.js';

/** `{transaction: {id, status_code, airtel_money_id, message}}` → our payment id and the claimed status. */
export function parseAirtelCallback(raw: string): { paymentId: string; reportedStatus: string } | undefined {
  try {
    const body = JSON.parse(raw) as { transaction?: { id?: unknown; status_code?: unknown } };
    const id = body.transaction?.id;
    if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
    const status = body.transaction?.status_code;
    return {
      paymentId: id,
      reportedStatus: typeof status === 'string' ? status.toUpperCase().slice(0, 40) : 'UNKNOWN',
    };
  } catch {
    return undefined;
  }
}

export function airtelCallbackRoutes(
  app: FastifyTypebox,
  deps: {
    callbackSecret: string | undefined;
    mobileMoney: Pick<MobileMoney, 'recordCallback'>;
    afterCommit(): void;
  },
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 65_536 }, (_request, body, done) =>
    done(null, body),
  );

  app.post(
    '/webhooks/airtel',
    {
      onRequest: async (request) => {
        if (!deps.callbackSecret)
          throw new AppError('PROVIDER_NOT_CONFIGURED', 'AIRTEL_CALLBACK_KEY is not set');
        const key = (request.query as { key?: unknown } | undefined)?.key;
        if (!callbackKeyMatches(key, deps.callbackSecret))
          throw new AppError('FORBIDDEN', 'the callback key is missing or wrong');
      },
      schema: {
        tags: ['webhooks'],
        summary:
          'Airtel Money collection callback (confirmed with the status enquiry before anything is credited)',
        querystring: Type.Object({ key: Type.Optional(Type.String({ maxLength: 200 })) }),
        response: {
          200: Type.Object({ ok: Type.Literal(true), outcome: Type.String() }),
          ...errors(400, 403, 503),
        },
      },
    },
    async (request) => {
      const raw = typeof request.body === 'string' ? request.body : '';
      const parsed = parseAirtelCallback(raw);
      if (!parsed)
        throw new AppError(
          'VALIDATION_FAILED',
          'the body is not an Airtel callback ({transaction: {id, status_code}})',
        );
      const outcome = await deps.mobileMoney.recordCallback(
        'airtel',
        parsed.paymentId,
        parsed.reportedStatus,
        raw,
      );
      deps.afterCommit();
      return { ok: true as const, outcome };
    },
  );
}
