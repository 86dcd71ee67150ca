// The body of a device's firmware status report (CONTRACTS.md §15), one schema for every
// transport: HTTP `POST /api/device/v1/ota/<deploymentId>/status` and MQTT `kh/v1/<id>/up/ota`.
import { OTA_REPORTED_STATES } from '@kioskhub/protocol';
import { Type } from '@sinclair/typebox';
import { EntityId } from '../../platform/http/schemas.js';

export const FirmwareVersion = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]*$',
});

const statusFields = {
  seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  state: Type.Union(OTA_REPORTED_STATES.map((s) => Type.Literal(s))),
  bytes: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  total: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  code: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Z0-9_]+$' })),
  message: Type.Optional(Type.String({ maxLength: 500 })),
  currentVersion: FirmwareVersion,
  confirmed: Type.Optional(Type.Boolean()),
};

export const OtaStatusBody = Type.Object(statusFields, { additionalProperties: false });

/** MQTT carries the deployment in the payload (HTTP has it in the path). */
export const MqttOtaReportBody = Type.Object(
  { deploymentId: EntityId, ...statusFields },
  { additionalProperties: false },
);
