// Water kiosk heartbeats (CONTRACTS §11): firmware, taps, signal, SD space and the credential
// cache version, one row per kiosk in water_kiosks. OFFLINE is derived on read after 5 minutes
// of silence, so no sweeper has to write it.
import type { Db } from '../../platform/db/database.js';
import type { WaterKioskRow } from '../../platform/db/schema.js';
import type { Kiosk } from './verification.js';
import type { WaterRepo } from './water.repo.js';

export const KIOSK_OFFLINE_AFTER_MS = 5 * 60_000;

export interface Heartbeat {
  firmware: string;
  taps: { tap: number; status: string; totalMl?: number | undefined }[];
  signalDbm?: number | undefined;
  sdFreeMb?: number | undefined;
  cacheVersion?: number | undefined;
}

export interface WaterKioskStatus {
  machineId: string;
  siteId: string;
  status: 'ONLINE' | 'OFFLINE';
  firmware: string | null;
  taps: Heartbeat['taps'];
  signalDbm: number | null;
  sdFreeMb: number | null;
  cacheVersion: number | null;
  cacheIssuedVersion: number;
  lastHeartbeatAt: string | null;
}

/** ONLINE while the last heartbeat is under 5 minutes old. */
export const kioskStatus = (lastHeartbeatAt: string | null, now = Date.now()): 'ONLINE' | 'OFFLINE' =>
  lastHeartbeatAt !== null && now - Date.parse(lastHeartbeatAt) < KIOSK_OFFLINE_AFTER_MS
    ? 'ONLINE'
    : 'OFFLINE';

export const toKioskStatus = (r: WaterKioskRow, now = Date.now()): WaterKioskStatus => ({
  machineId: r.machine_id,
  siteId: r.site_id,
  status: kioskStatus(r.last_heartbeat_at, now),
  firmware: r.firmware,
  taps: JSON.parse(r.taps) as Heartbeat['taps'],
  signalDbm: r.signal_dbm,
  sdFreeMb: r.sd_free_mb,
  cacheVersion: r.cache_version,
  cacheIssuedVersion: Number(r.cache_issued_version),
  lastHeartbeatAt: r.last_heartbeat_at,
});

export function createWaterKiosks(deps: { db: Db; repo: WaterRepo; now?: () => number }) {
  const now = deps.now ?? Date.now;
  return {
    async heartbeat(kiosk: Kiosk, hb: Heartbeat): Promise<WaterKioskStatus> {
      return deps.db.transaction().execute(async (tx) => {
        await deps.repo.ensureKiosk(tx, {
          machine_id: kiosk.machineId,
          tenant_id: kiosk.tenantId,
          site_id: kiosk.siteId,
        });
        await deps.repo.updateKiosk(tx, kiosk.machineId, {
          site_id: kiosk.siteId,
          firmware: hb.firmware,
          taps: JSON.stringify(
            hb.taps.map((t) => ({
              tap: t.tap,
              status: t.status,
              ...(t.totalMl !== undefined ? { totalMl: t.totalMl } : {}),
            })),
          ),
          signal_dbm: hb.signalDbm ?? null,
          sd_free_mb: hb.sdFreeMb ?? null,
          cache_version: hb.cacheVersion ?? null,
          last_heartbeat_at: new Date(now()).toISOString(),
        });
        return toKioskStatus((await deps.repo.kiosk(tx, kiosk.machineId))!, now());
      });
    },

    async list(tenantId: string | null): Promise<WaterKioskStatus[]> {
      const at = now();
      return (await deps.repo.kiosks(deps.db, tenantId)).map((r) => toKioskStatus(r, at));
    },
  };
}

export type WaterKiosks = ReturnType<typeof createWaterKiosks>;
