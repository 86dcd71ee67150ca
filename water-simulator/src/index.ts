// Public API of @kioskhub/water-simulator (server tests, the demo and the bench import from here).
export { WaterKiosk } from './water-kiosk.js';
export type {
  Customer,
  ServeResult,
  UploadReport,
  WaterKioskEvents,
  WaterKioskOptions,
} from './water-kiosk.js';
export { CredentialCache, canonicalCacheText, pinVerifier } from './credential-cache.js';
export { createFirmwareApi, FirmwareApiError, KioskOfflineError } from './firmware-api.js';
export type { FirmwareApi } from './firmware-api.js';
export { SdCardLog } from './sd-card.js';
export { WaterMqttLink } from './mqtt-link.js';
export type { WaterMqttOptions } from './mqtt-link.js';
export * from './wire.js';
export { printKioskActivity, startCustomerStream } from './customer-stream.js';
export type { CustomerStreamOptions, CustomerStreamStats } from './customer-stream.js';
