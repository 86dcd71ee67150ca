// MQTT device transport (CONTRACTS §14): topic layout and payloads shared by the server, the
// simulator and firmware authors. Everything a device sends is under kh/v1/<id>/up/, everything
// it receives under kh/v1/<id>/down/.

import type { OtaStatusReport } from './ota.js';

export const MQTT_TOPIC_ROOT = 'kh/v1';
/** The shared subscription group every Kioskhub process joins on an external broker. */
export const MQTT_SHARE_GROUP = 'kioskhub';

export const mqttTopics = {
  upPrefix: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/up/`,
  downPrefix: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/down/`,
  command: (machineId: string, commandId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/down/cmd/${commandId}`,
  commandReport: (machineId: string, commandId: string) =>
    `${MQTT_TOPIC_ROOT}/${machineId}/up/cmd/${commandId}`,
  event: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/up/evt`,
  eventAck: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/down/ack`,
  telemetry: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/up/tel`,
  status: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/up/status`,
  ota: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/up/ota`,
  /** The server's answer to each up/ota report (an addition to §14: MQTT has no request/response). */
  otaAnswer: (machineId: string) => `${MQTT_TOPIC_ROOT}/${machineId}/down/ota`,
} as const;

/** Device commands outside the order queue (ota.install) have command ids starting with this. */
export const DEVICE_COMMAND_PREFIX = 'dev-';

export type MqttCommandKind = 'dispense' | 'ota.install';

/** kh/v1/<id>/down/cmd/<commandId> */
export interface MqttCommand {
  commandId: string;
  /** Set for order commands (dispense); absent for device commands such as ota.install. */
  orderId?: string;
  kind: MqttCommandKind;
  amountMinor?: number;
  currency?: string;
  items?: { sku: string; qty: number }[];
  volumeMl?: number;
  /** After this the device must not execute the command (it reports `rejected`, reason `EXPIRED`). */
  expiresAt?: string;
  /** 1 for the first send, counting every re-send. */
  attempt: number;
  /** ota.install: the same answer as GET /api/device/v1/ota/next (CONTRACTS §15). */
  ota?: Record<string, unknown>;
}

/** kh/v1/<id>/up/cmd/<commandId> */
export type MqttCommandReport =
  | { phase: 'received' }
  | { phase: 'done'; status: 'SUCCESS' | 'FAILED'; failureCode?: string }
  | { phase: 'rejected'; reason?: string };

/** kh/v1/<id>/up/status (retained birth, or the last will) */
export type MqttStatus = { online: true; firmware?: string; bootId?: string } | { online: false };

/** kh/v1/<id>/up/evt, re-sent by the device until kh/v1/<id>/down/ack names its eventId. */
export interface MqttDeviceEvent {
  eventId: string;
  type: string;
  [field: string]: unknown;
}

/** kh/v1/<id>/down/ack */
export interface MqttEventAck {
  eventIds: string[];
}

/** kh/v1/<id>/up/tel (QoS 0): `status` is read like a v2 heartbeat's. */
/**
 * kh/v1/<id>/up/ota: a §15 status report (`POST /api/device/v1/ota/<deploymentId>/status`'s body)
 * with the deployment it is about.
 */
export type MqttOtaReport = OtaStatusReport & { deploymentId: string };

/**
 * kh/v1/<id>/down/ota: the answer to one up/ota report, named by its deploymentId and seq. The
 * same as the HTTP answer: `ok` with the state (and `duplicate`, `retry`), or the error's code.
 */
export type MqttOtaAnswer =
  | { deploymentId: string; seq: number; ok: true; state: string; duplicate?: true; retry?: true }
  | { deploymentId: string; seq: number; ok: false; error: { code: string; message: string } };

export interface MqttTelemetry {
  status?: 'IDLE' | 'BUSY' | 'ERROR';
  [field: string]: unknown;
}
