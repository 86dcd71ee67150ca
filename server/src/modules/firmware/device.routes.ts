// Device routes of firmware over the air (CONTRACTS.md §15), with the machine's own key: what to
// install next, status reports, and the image download with HTTP Range so a cut 4G download
// resumes where it stopped.
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { AppError, forbidden, notFound } from '../../platform/errors.js';
import type { Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import { EntityId, errors } from '../../platform/http/schemas.js';
import type { ArtifactStore } from './artifact-store.js';
import type { Artifacts } from './artifacts.service.js';
import type { OtaDevice } from './ota-device.js';
import { FirmwareVersion, OtaStatusBody } from './ota.schema.js';

const Version = FirmwareVersion;

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → an inclusive range; 'unsatisfiable'; or undefined (serve whole). */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, or another unit: the whole image is a correct answer.
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  // A last byte before the first is an invalid range (RFC 9110 §14.1.2): ignored, the whole image.
  if (b !== '' && Number(b) < start) return undefined;
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export function deviceFirmwareRoutes(
  app: FastifyTypebox,
  deps: { auth: Authenticator; device: OtaDevice; artifacts: Artifacts; store: ArtifactStore },
): void {
  async function machine(request: FastifyRequest) {
    const principal = await deps.auth.fromHeaders(request.headers);
    if (principal.kind !== 'machine') throw forbidden('this route is for devices: use the machine’s key');
    return principal;
  }

  app.get(
    '/api/device/v1/ota/next',
    {
      schema: {
        tags: ['device'],
        summary: 'The firmware this machine should install now (204: none)',
        querystring: Type.Object(
          {
            current: Type.Optional(Version),
            hw: Type.Optional(
              Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { ...errors(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const m = await machine(request);
      const next = await deps.device.next(
        m.machineId,
        request.query,
        `${request.protocol}://${request.host}`,
      );
      if (!next) return reply.code(204).send();
      return next;
    },
  );

  app.post(
    '/api/device/v1/ota/:deploymentId/status',
    {
      schema: {
        tags: ['device'],
        summary: 'Report a deployment’s progress (idempotent on seq; states only move forward)',
        params: Type.Object({ deploymentId: EntityId }),
        body: OtaStatusBody,
        response: { ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const m = await machine(request);
      return deps.device.applyStatus(m.machineId, request.params.deploymentId, request.body);
    },
  );

  app.route({
    method: ['GET', 'HEAD'],
    url: '/api/device/v1/artifacts/:sha256',
    schema: {
      tags: ['device'],
      summary: 'Download a firmware image (HTTP Range, ETag "<sha256>", If-Range)',
      params: Type.Object({ sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
    },
    handler: async (request, reply) => {
      const m = await machine(request);
      const { sha256 } = request.params as { sha256: string };
      const artifact = await deps.artifacts.findForDevice(m.tenantId, sha256);
      const size = artifact ? await deps.store.size(sha256) : undefined;
      if (artifact && size === undefined) {
        // Known to the database, missing on this host's disk: the database was restored without
        // FIRMWARE_DIR, or several hosts do not share it (docs/operations.md). Say so.
        request.log.error(
          { sha256, firmwareDir: deps.store.dir, machineId: m.machineId },
          'firmware image is in the database but not in FIRMWARE_DIR on this process: every process must ' +
            'read one FIRMWARE_DIR (shared storage), and it is backed up and restored with the database',
        );
      }
      if (!artifact || size === undefined) throw notFound('firmware image', sha256);
      const etag = `"${sha256}"`;
      void reply
        .header('etag', etag)
        .header('accept-ranges', 'bytes')
        .header('cache-control', 'private, max-age=31536000, immutable');
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      // If-Range: the range applies only to the same image; otherwise the whole of it.
      const ifRange = request.headers['if-range'];
      const rangeHeader = ifRange === undefined || ifRange === etag ? request.headers.range : undefined;
      const range = parseRange(rangeHeader, size);
      if (range === 'unsatisfiable') {
        void reply.header('content-range', `bytes */${size}`);
        throw new AppError(
          'RANGE_NOT_SATISFIABLE',
          `range ${rangeHeader ?? ''} is outside the image (${size} bytes)`,
        );
      }
      void reply.header('content-type', 'application/octet-stream');
      if (range) {
        void reply
          .code(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
          .header('content-length', String(range.end - range.start + 1));
      } else {
        void reply.header('content-length', String(size));
      }
      if (request.method === 'HEAD') return reply.send();
      return reply.send(deps.store.open(sha256, range));
    },
  });
}
