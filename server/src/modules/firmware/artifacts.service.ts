// Firmware artifacts (CONTRACTS.md §15): an upload is accepted only with a manifest signed by a
// key of FIRMWARE_SIGNING_KEYS and an image whose sha256 and size are the manifest's; then the
// image is renamed into the content-addressed store and its row written. Nothing else is kept.
import type { FirmwareManifest } from '@kioskhub/protocol';
import type { FirmwareSigningKey } from '../../platform/config-firmware.js';
import { newId, nowIso, type Db } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import { knownCursor, pageOf } from '../../platform/db/pages.js';
import type { FirmwareArtifactRow } from '../../platform/db/schema.js';
import { AppError, validation } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.service.js';
import type { StagedImage } from './artifact-store.js';
import { parseManifest, verifyManifestSignature } from './manifest.js';

export interface UploadFields {
  manifest?: string;
  signature?: string;
  keyId?: string;
}

export function createArtifacts(deps: { db: Db; signingKeys: ReadonlyMap<string, FirmwareSigningKey> }) {
  const { db } = deps;

  return {
    /** Checks everything before anything is stored; the staged image is discarded on any refusal. */
    async accept(tenantId: string, actor: string, fields: UploadFields, image: StagedImage | undefined) {
      try {
        if (!image) throw validation('image: the firmware file is missing (multipart field "image")');
        if (fields.manifest === undefined)
          throw validation('manifest: missing (multipart field "manifest", JSON text)');
        if (fields.signature === undefined || fields.signature.trim() === '')
          throw validation('signature: missing; firmware must be signed (npm run firmware:sign)');
        if (fields.keyId === undefined) throw validation('keyId: missing');
        if (deps.signingKeys.size === 0)
          throw validation(
            'no signing keys are configured (FIRMWARE_SIGNING_KEYS): no firmware can be accepted',
          );
        const key = verifyManifestSignature(
          deps.signingKeys,
          fields.keyId,
          fields.manifest,
          fields.signature.trim(),
        );
        const manifest: FirmwareManifest = parseManifest(fields.manifest);
        if (manifest.sha256 !== image.sha256)
          throw validation(`image: sha256 is ${image.sha256}, the manifest says ${manifest.sha256}`);
        if (manifest.size !== image.size)
          throw validation(`image: ${image.size} bytes, the manifest says ${manifest.size}`);
        const row: FirmwareArtifactRow = {
          id: newId(),
          tenant_id: tenantId,
          sha256: manifest.sha256,
          size: manifest.size,
          product: manifest.product,
          version: manifest.version,
          hw_models: JSON.stringify(manifest.hwModels),
          min_from_version: manifest.minFromVersion ?? null,
          allow_downgrade: manifest.allowDowngrade ? 1 : 0,
          manifest: fields.manifest,
          signature: fields.signature.trim(),
          key_id: key.keyId,
          sig_alg: key.sigAlg,
          created_by: actor,
          created_at: nowIso(),
        };
        const exists = await db
          .selectFrom('firmware_artifacts')
          .select('id')
          .where('tenant_id', '=', tenantId)
          .where('sha256', '=', row.sha256)
          .executeTakeFirst();
        if (exists) throw new AppError('CONFLICT', `this image is already stored as firmware ${exists.id}`);
        // The file first: a row never names an image that is not on disk.
        await image.commit();
        try {
          await db.transaction().execute(async (tx) => {
            await tx.insertInto('firmware_artifacts').values(row).execute();
            await recordAudit(tx, {
              tenantId,
              actor,
              action: 'firmware.artifact.upload',
              subjectType: 'firmware_artifact',
              subjectId: row.id,
              after: {
                sha256: row.sha256,
                version: row.version,
                hwModels: manifest.hwModels,
                keyId: row.key_id,
              },
            });
          });
        } catch (err) {
          if (isUniqueViolation(err)) throw new AppError('CONFLICT', 'this image is already stored');
          throw err;
        }
        return toView(row);
      } catch (err) {
        await image?.discard();
        throw err;
      }
    },

    /** Newest first (ids grow with time), a page of `limit` after `cursor`. */
    async list(tenantId: string | null, page: { limit: number; cursor?: string }) {
      const scoped = () => {
        const q = db.selectFrom('firmware_artifacts').selectAll();
        return tenantId === null ? q : q.where('tenant_id', '=', tenantId);
      };
      await knownCursor(page.cursor, (id) => scoped().where('id', '=', id).executeTakeFirst());
      let q = scoped()
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      return pageOf(await q.execute(), page.limit, toView);
    },

    /** An image a machine of this tenant may download. */
    findForDevice(tenantId: string, sha256: string) {
      return db
        .selectFrom('firmware_artifacts')
        .select(['sha256', 'size'])
        .where('tenant_id', '=', tenantId)
        .where('sha256', '=', sha256)
        .executeTakeFirst();
    },
  };
}

export function toView(a: FirmwareArtifactRow) {
  return {
    id: a.id,
    tenantId: a.tenant_id,
    sha256: a.sha256,
    size: Number(a.size),
    product: a.product,
    version: a.version,
    hwModels: JSON.parse(a.hw_models) as string[],
    minFromVersion: a.min_from_version,
    allowDowngrade: a.allow_downgrade === 1,
    keyId: a.key_id,
    sigAlg: a.sig_alg,
    createdBy: a.created_by,
    createdAt: a.created_at,
  };
}

export type Artifacts = ReturnType<typeof createArtifacts>;
