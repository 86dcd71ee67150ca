import { MACHINE_KINDS } from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import { forbidden } from '../../platform/errors.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import {
  actingTenant,
  requireAdmin,
  requireStaff,
  tenantFilter,
  type Authenticator,
} from '../../platform/http/auth.js';
import {
  Currency,
  Cursor,
  EntityId,
  errors,
  expectNoBody,
  Limit,
  Page,
} from '../../platform/http/schemas.js';
import type { MachinesService } from './machines.service.js';

const Kind = Type.Union(MACHINE_KINDS.map((k) => Type.Literal(k)));
const PaymentProfile = Type.Object({
  provider: Type.String(),
  qrCodeId: Type.String(),
  qrImageUrl: Type.Union([Type.String(), Type.Null()]),
  qrShortUrl: Type.Union([Type.String(), Type.Null()]),
  fixedAmountPaise: Type.Union([Type.Integer(), Type.Null()]),
  qrContent: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});
export const MachineSchema = Type.Object({
  id: Type.String(),
  tenantId: Type.String(),
  siteId: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  status: Type.String({ enum: ['OFFLINE', 'IDLE', 'BUSY', 'ERROR'] }),
  socketConnected: Type.Boolean(),
  lastSeenAt: Type.Union([Type.String(), Type.Null()]),
  firmware: Type.Union([Type.String(), Type.Null()]),
  protocol: Type.Union([Type.String(), Type.Null()]),
  currency: Type.String(),
  paymentProfile: Type.Optional(PaymentProfile),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
const IdParams = Type.Object({ id: EntityId });

export function machinesRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; machines: MachinesService },
): void {
  const { auth, machines } = deps;

  app.post(
    '/v1/machines',
    {
      schema: {
        tags: ['machines'],
        summary: 'Register a machine; its secret key is in this answer only',
        body: Type.Object(
          {
            id: EntityId,
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            kind: Type.Optional(Kind),
            siteId: Type.Optional(EntityId),
            currency: Type.Optional(Currency),
            tenantId: Type.Optional(EntityId),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Intersect([MachineSchema, Type.Object({ key: Type.String() })]),
          ...errors(400, 401, 403, 404, 409),
        },
      },
    },
    async (request, reply) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const { tenantId: requested, ...input } = request.body;
      const created = await machines.create(
        { ...input, tenantId: actingTenant(principal, requested) },
        principal.actor,
      );
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/v1/machines',
    {
      schema: {
        tags: ['machines'],
        summary: 'List machines of the caller’s tenant',
        querystring: Type.Object(
          {
            limit: Limit,
            cursor: Type.Optional(Cursor),
            status: Type.Optional(Type.String({ enum: ['OFFLINE', 'IDLE', 'BUSY', 'ERROR'] })),
            siteId: Type.Optional(EntityId),
            kind: Type.Optional(Kind),
          },
          { additionalProperties: false },
        ),
        response: { 200: Page(MachineSchema), ...errors(400, 401, 403) },
      },
    },
    async (request) => {
      const principal = await request.staff();
      const q = request.query;
      return machines.list({
        tenantId: tenantFilter(principal),
        limit: q.limit,
        ...(q.cursor ? { cursor: q.cursor } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.siteId ? { siteId: q.siteId } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
      });
    },
  );

  app.get(
    '/v1/machines/:id',
    {
      schema: {
        tags: ['machines'],
        summary: 'One machine',
        params: IdParams,
        response: { 200: MachineSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      if (principal.kind === 'machine') {
        if (principal.machineId !== request.params.id)
          throw forbidden('a machine key acts only as its own machine');
        return machines.get(request.params.id, principal.tenantId);
      }
      requireStaff(principal);
      return machines.get(request.params.id, tenantFilter(principal));
    },
  );

  app.patch(
    '/v1/machines/:id',
    {
      schema: {
        tags: ['machines'],
        summary: 'Rename a machine or move it to another site of its tenant',
        params: IdParams,
        body: Type.Object(
          {
            name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            siteId: Type.Optional(EntityId),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: MachineSchema, ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      return machines.update(request.params.id, tenantFilter(principal), request.body, principal.actor);
    },
  );

  app.post(
    '/v1/machines/:id/rotate-key',
    {
      schema: {
        tags: ['machines'],
        summary: 'Issue a new key; the old one stops working at once',
        params: IdParams,
        response: { 200: Type.Object({ key: Type.String() }), ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => {
      expectNoBody(request.body);
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      return machines.rotateKey(request.params.id, tenantFilter(principal), principal.actor);
    },
  );

  app.put(
    '/v1/machines/:id/payment-profile',
    {
      schema: {
        tags: ['machines'],
        summary: 'Set the payment profile and the qrCodeId → machine mapping',
        params: IdParams,
        body: Type.Object(
          {
            provider: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_-]+$' }),
            qrCodeId: Type.String({ minLength: 1, maxLength: 128 }),
            qrImageUrl: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
            qrShortUrl: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
            fixedAmountPaise: Type.Optional(
              Type.Union([Type.Integer({ minimum: 1, maximum: 100_000_000 }), Type.Null()]),
            ),
            // The UPI string the QR encodes (what the dashboard draws); 512 characters always fit
            // one QR code (2,331 bytes at error correction M, even at 4 bytes a character).
            qrContent: Type.Optional(
              Type.Union([Type.String({ minLength: 1, maxLength: 512 }), Type.Null()]),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: MachineSchema, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await auth.fromHeaders(request.headers);
      requireAdmin(principal);
      const b = request.body;
      return machines.setPaymentProfile(
        request.params.id,
        tenantFilter(principal),
        {
          provider: b.provider,
          qrCodeId: b.qrCodeId,
          qrImageUrl: b.qrImageUrl ?? null,
          qrShortUrl: b.qrShortUrl ?? null,
          fixedAmountPaise: b.fixedAmountPaise ?? null,
          qrContent: b.qrContent ?? null,
        },
        principal.actor,
      );
    },
  );
}
