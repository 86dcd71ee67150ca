// Africa's Talking callbacks (unsigned: the URL carries a secret, compared in constant time):
// POST /webhooks/africastalking/ussd → `CON …`/`END …` as text/plain, and
// POST /webhooks/africastalking/sms (incoming messages). Both are form posts and name their
// tenant with `&tenant=<id>` (default `default`).
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { EntityId, errors } from '../../platform/http/schemas.js';
import { callbackKeyMatches } from '../../modules/mobile-money/callback-key.js';
import type { SmsCommands } from '../../modules/water-messaging/sms-commands.js';
import type { Ussd } from '../../modules/water-messaging/ussd.js';

const CallbackQuery = Type.Object({
  key: Type.Optional(Type.String({ maxLength: 200 })),
  tenant: Type.Optional(EntityId),
});

const UssdBody = Type.Object(
  {
    sessionId: Type.String({ minLength: 1, maxLength: 128 }),
    serviceCode: Type.String({ maxLength: 64 }),
    phoneNumber: Type.String({ minLength: 1, maxLength: 32 }),
    // Every reply of the session joined by `*`: no limit of its own beyond the body's (64 KB), since
    // a long session is still a phone's input and must get a screen, never a JSON 400.
    text: Type.Optional(Type.String()),
    networkCode: Type.Optional(Type.String({ maxLength: 16 })),
  },
  { additionalProperties: true },
);

const SmsBody = Type.Object(
  {
    from: Type.String({ minLength: 1, maxLength: 32 }),
    to: Type.Optional(Type.String({ maxLength: 32 })),
    text: Type.String({ maxLength: 2000 }),
    date: Type.Optional(Type.String({ maxLength: 64 })),
    id: Type.String({ minLength: 1, maxLength: 128 }),
    networkCode: Type.Optional(Type.String({ maxLength: 16 })),
  },
  { additionalProperties: true },
);

export function africasTalkingRoutes(
  app: FastifyTypebox,
  deps: {
    callbackSecret: string | undefined;
    tenantExists(id: string): Promise<boolean>;
    ussd: Pick<Ussd, 'answer'>;
    smsCommands: Pick<SmsCommands, 'receive'>;
    afterCommit(): void;
  },
): void {
  // Africa's Talking posts application/x-www-form-urlencoded (all fields are strings).
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 65_536 },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  // The secret is checked before the body is read: a caller without it learns nothing.
  async function authorised(request: FastifyRequest): Promise<void> {
    if (!deps.callbackSecret) {
      throw new AppError(
        'PROVIDER_NOT_CONFIGURED',
        "AT_CALLBACK_KEY is not set: Africa's Talking callbacks are off",
      );
    }
    const key = (request.query as { key?: unknown } | undefined)?.key;
    if (!callbackKeyMatches(key, deps.callbackSecret)) {
      throw new AppError('FORBIDDEN', 'the callback key is missing or wrong');
    }
  }

  async function tenantOf(query: { tenant?: string | undefined }): Promise<string> {
    const tenantId = query.tenant ?? 'default';
    if (!(await deps.tenantExists(tenantId)))
      throw new AppError('NOT_FOUND', `tenant "${tenantId}" does not exist`);
    return tenantId;
  }

  app.post(
    '/webhooks/africastalking/ussd',
    {
      onRequest: authorised,
      schema: {
        tags: ['webhooks'],
        summary: "Africa's Talking USSD callback: answers CON/END screens of at most 182 characters",
        querystring: CallbackQuery,
        body: UssdBody,
        response: { 200: Type.String(), ...errors(400, 403, 404, 503) },
      },
    },
    async (request, reply) => {
      const tenantId = await tenantOf(request.query);
      const b = request.body;
      const screen = await deps.ussd.answer({
        tenantId,
        sessionId: b.sessionId,
        serviceCode: b.serviceCode,
        phoneNumber: b.phoneNumber,
        text: b.text ?? '',
        networkCode: b.networkCode,
      });
      deps.afterCommit();
      return reply.code(200).type('text/plain; charset=utf-8').send(screen);
    },
  );

  app.post(
    '/webhooks/africastalking/sms',
    {
      onRequest: authorised,
      schema: {
        tags: ['webhooks'],
        summary: "Africa's Talking incoming SMS: MENU, HELP, START, REGISTER, STATUS, BALANCE, BUY [planId]",
        querystring: CallbackQuery,
        body: SmsBody,
        response: {
          200: Type.Object({ ok: Type.Literal(true), outcome: Type.String() }),
          ...errors(400, 403, 404, 503),
        },
      },
    },
    async (request) => {
      const tenantId = await tenantOf(request.query);
      const b = request.body;
      const outcome = await deps.smsCommands.receive({
        tenantId,
        id: b.id,
        from: b.from,
        to: b.to,
        text: b.text,
        date: b.date,
        networkCode: b.networkCode,
      });
      deps.afterCommit();
      return { ok: true as const, outcome };
    },
  );
}
