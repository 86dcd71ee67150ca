// Firmware over the air (CONTRACTS.md §15): what devices, the simulator and the dashboard share.

/** A deployment's state on one device, in the order it moves forward. */
export const OTA_PROGRESS_STATES = [
  'PENDING',
  'NOTIFIED',
  'DOWNLOADING',
  'DOWNLOADED',
  'VERIFIED',
  'INSTALLING',
  'REBOOTING',
] as const;
/** Where a deployment ends. */
export const OTA_FINAL_STATES = [
  'SUCCEEDED',
  'FAILED',
  'ROLLED_BACK',
  'TIMED_OUT',
  'SKIPPED',
  'CANCELLED',
] as const;
export type OtaDeviceState = (typeof OTA_PROGRESS_STATES)[number] | (typeof OTA_FINAL_STATES)[number];
export const OTA_DEVICE_STATES: readonly OtaDeviceState[] = [...OTA_PROGRESS_STATES, ...OTA_FINAL_STATES];

/** States a device may report (the others are the server's). */
export const OTA_REPORTED_STATES = [
  'DOWNLOADING',
  'DOWNLOADED',
  'VERIFIED',
  'INSTALLING',
  'REBOOTING',
  'SUCCEEDED',
  'FAILED',
  'ROLLED_BACK',
] as const;
export type OtaReportedState = (typeof OTA_REPORTED_STATES)[number];

export type CampaignStatus = 'DRAFT' | 'RUNNING' | 'PAUSED' | 'COMPLETED' | 'ABORTED' | 'CANCELLED';
export type WaveStatus = 'PENDING' | 'AWAITING_APPROVAL' | 'RUNNING' | 'SOAKING' | 'COMPLETED';

/** The signed manifest (its exact bytes are what the signature covers). */
export interface FirmwareManifest {
  product: string;
  hwModels: string[];
  version: string;
  sha256: string;
  size: number;
  minFromVersion?: string;
  allowDowngrade: boolean;
}

/** `GET /api/device/v1/ota/next` (200), also the payload of the `ota.install` command. */
export interface OtaNext {
  deploymentId: string;
  /** The manifest's exact signed text. */
  manifest: string;
  /** Base64 signature over the manifest's bytes. */
  signature: string;
  keyId: string;
  sigAlg: 'ed25519' | 'ecdsa-p256-sha256';
  /** Where to download the image (HTTP Range supported). */
  url: string;
  pollAfterSec: number;
  /** The campaign allows installing a version older than the running one (a rollback). */
  allowDowngrade: boolean;
}

/** `POST /api/device/v1/ota/<deploymentId>/status` (also MQTT `kh/v1/<id>/up/ota` with `deploymentId`). */
export interface OtaStatusReport {
  seq: number;
  state: OtaReportedState;
  bytes?: number;
  total?: number;
  code?: string;
  message?: string;
  currentVersion: string;
  confirmed?: boolean;
}

/** Socket.IO event (v2, /machines) carrying an `OtaNext`; the machine acks `{ok: true}`. */
export const OTA_INSTALL_EVENT = 'ota.install';

export interface FirmwareCampaignEvent {
  tenantId: string;
  campaignId: string;
  status: CampaignStatus;
  currentWave: number;
}
export interface FirmwareDeviceEvent {
  tenantId: string;
  campaignId: string;
  deploymentId: string;
  machineId: string;
  state: OtaDeviceState;
  code: string | null;
  currentVersion: string | null;
  bytes: number | null;
  total: number | null;
}
