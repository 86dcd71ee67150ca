// Machines connected on /machines (v2) or over MQTT hear of a waiting firmware deployment at once:
// `ota.install` carries the same answer as `GET /api/device/v1/ota/next` (CONTRACTS.md §15), as a
// Socket.IO event or an MQTT device command. Best effort by design: the device also polls `next`,
// is offered it again on its next connection, and its status reports drive the deployment.
import { OTA_INSTALL_EVENT, type OtaNext } from '@kioskhub/protocol';
import type { Presence } from './presence.js';

export function createOtaPush(deps: {
  presence: Pick<Presence, 'local'>;
  notifyOthers(machineId: string, next: OtaNext): void;
  /** Sends `ota.install` over MQTT (when the MQTT transport is on). */
  sendMqtt?(machineId: string, next: OtaNext): Promise<boolean>;
}) {
  return {
    /** Offers the deployment where the machine's connection is on this process; otherwise asks the others. */
    offer(machineId: string, next: OtaNext): boolean | Promise<boolean> {
      const conn = deps.presence.local(machineId);
      if (!conn) {
        deps.notifyOthers(machineId, next);
        return false;
      }
      if (conn.protocol === 'mqtt') return deps.sendMqtt?.(machineId, next) ?? false;
      if (conn.protocol !== 'v2' || !conn.socket) return false;
      conn.socket.emit(OTA_INSTALL_EVENT, next);
      return true;
    },
  };
}
