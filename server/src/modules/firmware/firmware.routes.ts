// Operator routes of firmware over the air (CONTRACTS.md §15): signed artifacts (multipart upload)
// and staged campaigns. Parse, authorize, call one service function.
import multipart from '@fastify/multipart';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { AppError, validation } from '../../platform/errors.js';
import {
  actingExistingTenant,
  actingTenant,
  tenantFilter,
  type Principal,
} from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { Cursor, EntityId, errors, expectNoBody, Limit } from '../../platform/http/schemas.js';
import type { ArtifactStore, StagedImage } from './artifact-store.js';
import type { Artifacts, UploadFields } from './artifacts.service.js';
import type { CampaignAction, Campaigns } from './campaigns.service.js';

/** The lists page newest first: `limit` (1–200, default 50) and the `nextCursor` of a page. */
const ListQuery = Type.Object(
  { limit: Limit, cursor: Type.Optional(Cursor) },
  { additionalProperties: false },
);

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Wave = Type.Object(
  {
    percent: Type.Integer({ minimum: 1, maximum: 100 }),
    soakMinutes: Type.Number({ minimum: 0, maximum: 43_200 }),
    approval: Type.Union([Type.Literal('auto'), Type.Literal('manual')]),
  },
  { additionalProperties: false },
);
const CampaignBody = Type.Object(
  {
    artifactId: EntityId,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    target: Type.Object(
      {
        machineIds: Type.Optional(Type.Array(EntityId, { minItems: 1, maxItems: 10_000, uniqueItems: true })),
        siteIds: Type.Optional(Type.Array(EntityId, { minItems: 1, maxItems: 1_000, uniqueItems: true })),
        kinds: Type.Optional(
          Type.Array(Type.String({ minLength: 1, maxLength: 32 }), {
            minItems: 1,
            maxItems: 10,
            uniqueItems: true,
          }),
        ),
        hwModel: Name,
      },
      { additionalProperties: false },
    ),
    waves: Type.Array(Wave, { minItems: 1, maxItems: 10 }),
    maxConcurrent: Type.Integer({ minimum: 1, maximum: 100_000 }),
    failureThresholdPercent: Type.Integer({ minimum: 0, maximum: 100 }),
    minFinishedForThreshold: Type.Integer({ minimum: 1, maximum: 100_000 }),
    deviceTimeoutMinutes: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 43_200 })),
    downloadRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 20 })),
    allowDowngrade: Type.Optional(Type.Boolean()),
    tenantId: Type.Optional(EntityId),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: EntityId });
const ACTIONS: CampaignAction[] = ['start', 'pause', 'resume', 'approve', 'abort', 'retry-failed'];
const UPLOAD_FIELDS = new Set(['manifest', 'signature', 'keyId', 'tenantId']);

export interface FirmwareRouteDeps {
  artifacts: Artifacts;
  campaigns: Campaigns;
  store: ArtifactStore;
  maxBytes: number;
  /** Whether a tenant exists (ADMIN_TOKEN uploading for a tenant it names). */
  tenantExists(tenantId: string): Promise<boolean>;
}

/** Reads the multipart upload: the image streams to a staged file, the other fields are text. */
async function readUpload(request: FastifyRequest, store: ArtifactStore, maxBytes: number) {
  const fields: UploadFields & { tenantId?: string } = {};
  let image: StagedImage | undefined;
  let staging = false;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image' || image) {
          part.file.resume();
          throw validation(`multipart: unexpected file field "${part.fieldname}" (send one file, "image")`);
        }
        staging = true;
        image = await store.stage(part.file);
        staging = false;
        if (part.file.truncated) throw validation(`image: larger than FIRMWARE_MAX_BYTES (${maxBytes})`);
      } else {
        if (!UPLOAD_FIELDS.has(part.fieldname))
          throw validation(`multipart: unknown field "${part.fieldname}"`);
        if (typeof part.value !== 'string') throw validation(`${part.fieldname}: must be text`);
        fields[part.fieldname as keyof typeof fields] = part.value;
      }
    }
  } catch (err) {
    await image?.discard();
    const code = (err as { code?: string }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE')
      throw validation(`image: larger than FIRMWARE_MAX_BYTES (${maxBytes})`);
    if (
      code === 'FST_INVALID_MULTIPART_CONTENT_TYPE' ||
      code === 'FST_FILES_LIMIT' ||
      code === 'FST_FIELDS_LIMIT' ||
      code === 'FST_PARTS_LIMIT'
    )
      throw validation(
        `multipart: ${(err as Error).message}; send multipart/form-data with image, manifest, signature, keyId`,
      );
    // The parser's own complaints about the bytes (a truncated or boundary-less body: "Unexpected
    // end of multipart data") are the client's mistake; a failure to store the image is ours.
    if (err instanceof AppError || (staging && !(err as Error).message?.includes('multipart'))) throw err;
    throw validation(
      `multipart: ${(err as Error).message}; send multipart/form-data with image, manifest, signature, keyId`,
    );
  }
  return { fields, image };
}

export async function firmwareRoutes(app: FastifyTypebox, deps: FirmwareRouteDeps): Promise<void> {
  await app.register(multipart, {
    limits: { fileSize: deps.maxBytes, files: 1, fields: 10, fieldSize: 64 * 1024, parts: 12 },
  });
  const admin = (request: FastifyRequest): Promise<Principal> => request.staff(['admin']);

  app.post(
    '/v1/firmware',
    {
      schema: {
        tags: ['firmware'],
        summary: 'Upload a signed firmware image (multipart: image, manifest, signature, keyId)',
        consumes: ['multipart/form-data'],
        response: { ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const principal = await admin(request);
      if (!request.isMultipart())
        throw validation('send multipart/form-data with image, manifest, signature, keyId');
      const { fields, image } = await readUpload(request, deps.store, deps.maxBytes);
      let tenantId: string;
      try {
        tenantId = await actingExistingTenant(principal, fields.tenantId, deps.tenantExists);
      } catch (err) {
        await image?.discard();
        throw err;
      }
      const created = await deps.artifacts.accept(tenantId, principal.actor, fields, image);
      return reply.code(201).send(created);
    },
  );

  app.get(
    '/v1/firmware',
    {
      schema: {
        tags: ['firmware'],
        summary: 'Firmware artifacts of the caller’s tenant, newest first',
        querystring: ListQuery,
        response: { ...errors(400, 401, 403) },
      },
    },
    async (request) => deps.artifacts.list(tenantFilter(await request.staff()), request.query),
  );

  app.post(
    '/v1/firmware/campaigns',
    {
      schema: {
        tags: ['firmware'],
        summary: 'Create a staged firmware campaign (DRAFT)',
        body: CampaignBody,
        response: { ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const principal = await admin(request);
      const { tenantId: requested, ...input } = request.body;
      const row = await deps.campaigns.create(actingTenant(principal, requested), principal.actor, input);
      return reply.code(201).send(await deps.campaigns.get(row.id, row.tenant_id));
    },
  );

  app.get(
    '/v1/firmware/campaigns',
    {
      schema: {
        tags: ['firmware'],
        summary: 'Firmware campaigns, newest first',
        querystring: ListQuery,
        response: { ...errors(400, 401, 403) },
      },
    },
    async (request) => deps.campaigns.list(tenantFilter(await request.staff()), request.query),
  );

  app.get(
    '/v1/firmware/campaigns/:id',
    {
      schema: {
        tags: ['firmware'],
        summary: 'A campaign with its waves, counts per device state and devices',
        params: IdParams,
        response: { ...errors(400, 401, 403, 404) },
      },
    },
    async (request) => deps.campaigns.get(request.params.id, tenantFilter(await request.staff())),
  );

  app.post(
    '/v1/firmware/campaigns/:id/:action',
    {
      schema: {
        tags: ['firmware'],
        summary: 'start, pause, resume, approve (the waiting wave), abort, retry-failed',
        params: Type.Object({ id: EntityId, action: Type.Union(ACTIONS.map((a) => Type.Literal(a))) }),
        response: { ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const principal = await admin(request);
      expectNoBody(request.body);
      return deps.campaigns.act(
        request.params.id,
        tenantFilter(principal),
        principal.actor,
        request.params.action,
      );
    },
  );
}
