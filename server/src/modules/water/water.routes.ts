// HTTP routes of the water kiosk firmware API (CONTRACTS §11): the earlier firmware's
// `POST /dispense-verification`, and the `/v1/water/*` routes a kiosk calls with its own key
// (settle, offline batch, credential cache, heartbeat), plus two staff routes (kiosk list, and
// the kiosk secret handed over at provisioning).
import { Type } from '@sinclair/typebox';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, forbidden, notFound } from '../../platform/errors.js';
import { requireStaff, tenantFilter, type Authenticator } from '../../platform/http/auth.js';
import { isDatabaseUnavailable } from '../../platform/http/errors-plugin.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { EntityId, errors } from '../../platform/http/schemas.js';
import { recordAudit } from '../audit/audit.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import { parseKioskTime } from './dispenses.js';
import type { Kiosk } from './verification.js';
import type { Water } from './water.module.js';
import {
  BatchBody,
  BatchResponse,
  CacheQuery,
  CacheResponse,
  DispenseResponse,
  DispenseVerificationBody,
  HeartbeatBody,
  KioskStatusSchema,
  SettleBody,
  SettleResponse,
} from './water.schema.js';

const TAGS = ['water kiosks'];

export function waterRoutes(
  app: FastifyTypebox,
  deps: {
    auth: Authenticator;
    machines: Pick<MachinesService, 'findRow'>;
    water: Water;
    db: Parameters<typeof recordAudit>[0];
  },
): void {
  const { water } = deps;

  /** The water kiosk a request's own key belongs to; any other caller is refused. */
  async function kioskOf(request: FastifyRequest): Promise<Kiosk> {
    const principal = await deps.auth.fromHeaders(request.headers);
    if (principal.kind !== 'machine')
      throw forbidden('water kiosk routes take the kiosk’s own key (X-API-Key)');
    // The key's own row said which machine and of what kind: no second read.
    if (principal.machineKind !== 'water')
      throw forbidden(`machine ${principal.machineId} is not a water kiosk`);
    return { machineId: principal.machineId, tenantId: principal.tenantId, siteId: principal.siteId };
  }

  // The earlier firmware reads `approved` on every answer: errors here say `approved: false` too,
  // and a database that cannot be reached is a 503, never a guess. The PIN is never echoed.
  function refusal(request: FastifyRequest, reply: FastifyReply, err: FastifyError | AppError | Error) {
    const body = (request.body ?? {}) as Record<string, unknown>;
    let status = 500;
    let code = 'INTERNAL';
    let message = 'internal error';
    if (err instanceof AppError) [status, code, message] = [err.status, err.code, err.message];
    else if ((err as FastifyError).validation)
      [status, code, message] = [400, 'VALIDATION_FAILED', `request ${err.message}`];
    else if (isDatabaseUnavailable(err))
      [status, code, message] = [503, 'UNAVAILABLE', 'storage is unavailable; try again shortly'];
    else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500) {
      // Rate limits and the like keep their status; a body that is not JSON is a 400.
      const given = (err as FastifyError).statusCode!;
      const known: Record<number, string> = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 429: 'RATE_LIMITED' };
      if (known[given]) [status, code, message] = [given, known[given], err.message];
      else [status, code, message] = [400, 'VALIDATION_FAILED', 'send the request as a JSON body'];
    }
    if (status >= 500)
      request.log.warn({ err: status === 503 ? err.message : err }, 'dispense verification failed');
    if (status === 503) void reply.header('retry-after', '2');
    const echo = (v: unknown) =>
      typeof v === 'string' || typeof v === 'number' ? String(v).slice(0, 64) : undefined;
    return reply.code(status).send({
      type: 'dispense_response',
      approved: false,
      code,
      reason: message,
      timestamp: new Date().toISOString(),
      ...(echo(body['kiosk_id']) !== undefined ? { kiosk_id: echo(body['kiosk_id']) } : {}),
      ...(echo(body['user_id']) !== undefined ? { user_id: echo(body['user_id']) } : {}),
      ...(typeof body['volume_ml'] === 'number' ? { volume_ml: body['volume_ml'] } : {}),
      error: { code, message, ...(status >= 500 ? { requestId: request.id } : {}) },
    });
  }

  app.post(
    '/dispense-verification',
    {
      schema: {
        tags: TAGS,
        summary: 'The earlier firmware’s verification: may this phone + PIN take volume_ml now? (holds it)',
        body: DispenseVerificationBody,
        response: { 200: DispenseResponse },
      },
      errorHandler: (err, request, reply) => refusal(request, reply, err),
    },
    async (request) => {
      const kiosk = await kioskOf(request);
      const b = request.body;
      if (b.kiosk_id !== kiosk.machineId)
        throw forbidden(`this key belongs to kiosk ${kiosk.machineId}, not ${b.kiosk_id}`);
      // No timestamp (the earlier hardware server's documented request has none): nothing marks
      // a retry, so the request is a new one.
      const timestampMs = b.timestamp === undefined ? null : parseKioskTime(b.timestamp);
      if (b.timestamp !== undefined && timestampMs === null)
        throw new AppError('VALIDATION_FAILED', 'timestamp: an ISO time, or Unix seconds or milliseconds');
      // A PIN sent as a number lost its leading zeros: 0042 arrives as 42.
      const pin = typeof b.pin === 'number' ? String(b.pin).padStart(4, '0') : b.pin;
      const userId = String(b.user_id);
      const result = await water.verification.verify(kiosk, {
        userId,
        pin,
        volumeMl: b.volume_ml,
        timestampMs,
      });
      return {
        type: 'dispense_response' as const,
        user_id: userId,
        volume_ml: b.volume_ml,
        approved: result.approved,
        reason: result.reason,
        code: result.code,
        ...(result.authorizationId ? { authorization_id: result.authorizationId } : {}),
        timestamp: new Date().toISOString(),
        kiosk_id: kiosk.machineId,
        ...(result.userData ? { user_data: result.userData } : {}),
      };
    },
  );

  app.post(
    '/v1/water/dispenses',
    {
      schema: {
        tags: TAGS,
        summary: 'Settle an approval with what the tap dispensed (a repeated kioskTxnId counts once)',
        body: SettleBody,
        response: { 200: SettleResponse, ...errors(400, 401, 403, 404, 409, 503) },
      },
    },
    async (request) => water.dispenses.settle(await kioskOf(request), request.body),
  );

  app.post(
    '/v1/water/transactions::batch',
    {
      schema: {
        tags: TAGS,
        summary: 'Upload the kiosk’s SD-card log (up to 500): each applied once, never dropped',
        body: BatchBody,
        response: { 200: BatchResponse, ...errors(400, 401, 403, 503) },
      },
    },
    async (request) => ({
      results: await water.dispenses.batch(await kioskOf(request), request.body.transactions),
    }),
  );

  app.get(
    '/v1/water/credential-cache',
    {
      schema: {
        tags: TAGS,
        summary: 'The customers this kiosk may serve offline, changes since ?since=<version>, signed',
        querystring: CacheQuery,
        response: { 200: CacheResponse, ...errors(400, 401, 403, 503) },
      },
    },
    async (request) => water.cache.build(await kioskOf(request), request.query.since),
  );

  app.post(
    '/v1/water/heartbeat',
    {
      schema: {
        tags: TAGS,
        summary: 'The kiosk is alive (every ~2 minutes); OFFLINE after 5 minutes of silence',
        body: HeartbeatBody,
        response: { 200: KioskStatusSchema, ...errors(400, 401, 403, 503) },
      },
    },
    async (request) => water.kiosks.heartbeat(await kioskOf(request), request.body),
  );

  app.get(
    '/v1/water/kiosks',
    {
      schema: {
        tags: TAGS,
        summary: 'Water kiosks and their last heartbeat (staff)',
        response: { 200: Type.Object({ items: Type.Array(KioskStatusSchema) }), ...errors(401, 403) },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireStaff(principal);
      return { items: await water.kiosks.list(tenantFilter(principal)) };
    },
  );

  app.post(
    '/v1/water/kiosks/:machineId/secret',
    {
      schema: {
        tags: TAGS,
        summary: 'The kiosk’s credential-cache secret, for provisioning it (admin; audited)',
        params: Type.Object({ machineId: EntityId }),
        body: Type.Optional(
          Type.Object(
            { reason: Type.Optional(Type.String({ maxLength: 500 })) },
            { additionalProperties: false },
          ),
        ),
        response: {
          200: Type.Object({
            kioskId: Type.String(),
            kioskSecret: Type.String({ description: '32 bytes, hex' }),
          }),
          ...errors(401, 403, 404),
        },
      },
    },
    async (request) => {
      const principal = await deps.auth.fromHeaders(request.headers);
      requireStaff(principal, ['admin']);
      const row = await deps.machines.findRow(request.params.machineId);
      const tenant = tenantFilter(principal);
      if (!row || (tenant !== null && row.tenant_id !== tenant))
        throw notFound('machine', request.params.machineId);
      if (row.kind !== 'water') throw new AppError('INVALID_STATE', `machine ${row.id} is not a water kiosk`);
      await recordAudit(deps.db, {
        tenantId: row.tenant_id,
        actor: principal.actor,
        action: 'water.kiosk_secret_issued',
        subjectType: 'machine',
        subjectId: row.id,
        ...(request.body?.reason ? { after: { reason: request.body.reason } } : {}),
      });
      return { kioskId: row.id, kioskSecret: water.keys.kioskSecret(row.tenant_id, row.id).toString('hex') };
    },
  );
}
