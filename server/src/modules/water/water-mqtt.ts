// Water kiosks on MQTT (CONTRACTS §11, §14): the §11 heartbeat travels as telemetry on
// kh/v1/<id>/up/tel and is recorded exactly like `POST /v1/water/heartbeat`. Verification,
// settlement, the offline batch and the credential cache stay HTTP (request and answer).
import type { MqttTelemetry } from '@kioskhub/protocol';
import type { Logger } from 'pino';
import { socketValidator } from '../../platform/socket-validation.js';
import type { WaterKiosks } from './kiosks.js';
import { HeartbeatBody } from './water.schema.js';

const parseHeartbeat = socketValidator(HeartbeatBody);

export function waterTelemetry(deps: { kiosks: Pick<WaterKiosks, 'heartbeat'>; logger: Logger }) {
  return async (
    machine: { machineId: string; tenantId: string; siteId: string; kind: string },
    telemetry: MqttTelemetry,
  ): Promise<void> => {
    if (machine.kind !== 'water') return;
    // `status` is the transport's (like a v2 heartbeat's); the rest is the §11 heartbeat.
    const { status: _status, ...heartbeat } = telemetry;
    if (Object.keys(heartbeat).length === 0) return;
    const parsed = parseHeartbeat(heartbeat);
    if (!parsed.ok) {
      deps.logger.warn(
        { machineId: machine.machineId, topic: 'up/tel', reason: parsed.message },
        'mqtt: bad message from a device ignored',
      );
      return;
    }
    await deps.kiosks.heartbeat(
      { machineId: machine.machineId, tenantId: machine.tenantId, siteId: machine.siteId },
      parsed.value,
    );
  };
}
