// Firmware over the air, assembled (CONTRACTS.md §15): artifacts, campaigns and their tick job,
// the device protocol, and the hooks transports use. Socket.IO pushes `ota.install` through
// `onNotify`; the MQTT transport adds its own listener and calls `device.applyStatus` for
// `kh/v1/<id>/up/ota` reports.
import type { OtaNext } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import type { FirmwareConfig } from '../../platform/config-firmware.js';
import type { Db } from '../../platform/db/database.js';
import type { Authenticator } from '../../platform/http/auth.js';
import type { FastifyTypebox } from '../../platform/http/fastify.js';
import type { MachinesService } from '../machines/machines.service.js';
import { createArtifactStore } from './artifact-store.js';
import { createArtifacts } from './artifacts.service.js';
import { createCampaignTick } from './campaign-tick.js';
import { createCampaigns } from './campaigns.service.js';
import { deviceFirmwareRoutes } from './device.routes.js';
import { firmwareRoutes } from './firmware.routes.js';
import { createOtaDevice } from './ota-device.js';

/** Told when a machine has a firmware deployment waiting; returns true when it reached the device. */
export type OtaNotifier = (machineId: string, next: OtaNext) => boolean | Promise<boolean>;

export function createFirmware(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  logger: Logger;
  config: FirmwareConfig;
  publicUrl: string | undefined;
  machines: Pick<MachinesService, 'listForTarget'>;
  tenantExists(tenantId: string): Promise<boolean>;
  /** Runs due jobs soon (the next tick is due in `tickMs`). */
  wake(): void;
}) {
  const store = createArtifactStore(deps.config.dir);
  const artifacts = createArtifacts({ db: deps.db, signingKeys: deps.config.signingKeys });
  const campaigns = createCampaigns({ db: deps.db, dialect: deps.dialect, machines: deps.machines });
  const tick = createCampaignTick({
    db: deps.db,
    dialect: deps.dialect,
    logger: deps.logger,
    tickMs: deps.config.tickMs,
  });
  const device = createOtaDevice({
    db: deps.db,
    dialect: deps.dialect,
    publicUrl: deps.publicUrl,
    pollAfterSec: deps.config.pollAfterSec,
  });
  const notifiers: OtaNotifier[] = [];

  return {
    artifacts,
    campaigns,
    device,
    /** Adds a transport that can tell a machine about a waiting deployment (Socket.IO, MQTT). */
    onNotify(notifier: OtaNotifier): void {
      notifiers.push(notifier);
    },
    jobs: {
      async firmware_tick(p: { tenantId: string; campaignId: string; seq: number }): Promise<void> {
        await tick.run(p);
        const timer = setTimeout(deps.wake, deps.config.tickMs + 5);
        timer.unref();
      },
      /** Best effort: devices also poll `next` every pollAfterSec, so a missed notice only delays. */
      async firmware_notify(p: { tenantId: string; machineId: string; deploymentId: string }): Promise<void> {
        const next = await device.offerFor(p.machineId, p.deploymentId);
        if (!next) return;
        for (const notify of notifiers) {
          try {
            await notify(p.machineId, next);
          } catch (err) {
            deps.logger.warn({ err, machineId: p.machineId }, 'could not notify a machine of firmware');
          }
        }
      },
    },
    async routes(app: FastifyTypebox, auth: Authenticator): Promise<void> {
      await firmwareRoutes(app, {
        artifacts,
        campaigns,
        store,
        maxBytes: deps.config.maxBytes,
        tenantExists: deps.tenantExists,
      });
      deviceFirmwareRoutes(app, { auth, device, artifacts, store });
    },
  };
}

export type Firmware = ReturnType<typeof createFirmware>;
