// Firmware over the air settings (CONTRACTS.md §15): the public keys that may sign firmware, where
// images are kept, and how often running campaigns advance.
import { createPublicKey, type KeyObject } from 'node:crypto';

export interface FirmwareSigningKey {
  keyId: string;
  key: KeyObject;
  /** `ed25519` or `ecdsa-p256-sha256` (a P-256 signature in DER or raw r||s). */
  sigAlg: 'ed25519' | 'ecdsa-p256-sha256';
}

export interface FirmwareConfig {
  /** FIRMWARE_SIGNING_KEYS: `<keyId>:<base64 SPKI DER>`, comma-separated (several during rotation). */
  signingKeys: Map<string, FirmwareSigningKey>;
  /** FIRMWARE_DIR, default `<DATA_DIR>/firmware`: images stored by their sha256. */
  dir: string;
  /** FIRMWARE_MAX_BYTES: the largest image accepted. */
  maxBytes: number;
  /** FIRMWARE_TICK_MS: how often a running campaign advances (releases devices, times out, soaks). */
  tickMs: number;
  /** FIRMWARE_POLL_SEC: `pollAfterSec` told to devices. */
  pollAfterSec: number;
}

type ConfigErrorCtor = new (variable: string, message: string) => Error;

export function parseSigningKeys(raw: string | undefined, fail: (message: string) => Error) {
  const keys = new Map<string, FirmwareSigningKey>();
  for (const entry of (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    const keyId = colon > 0 ? entry.slice(0, colon) : '';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(keyId))
      throw fail(`each entry must be <keyId>:<base64 SPKI DER>; got "${entry.slice(0, 40)}"`);
    if (keys.has(keyId)) throw fail(`key id "${keyId}" is listed twice`);
    let key: KeyObject;
    try {
      key = createPublicKey({
        key: Buffer.from(entry.slice(colon + 1), 'base64'),
        format: 'der',
        type: 'spki',
      });
    } catch {
      throw fail(`key "${keyId}" is not a base64 SPKI DER public key`);
    }
    const type = key.asymmetricKeyType;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (type === 'ed25519') keys.set(keyId, { keyId, key, sigAlg: 'ed25519' });
    else if (type === 'ec' && curve === 'prime256v1')
      keys.set(keyId, { keyId, key, sigAlg: 'ecdsa-p256-sha256' });
    else throw fail(`key "${keyId}" must be Ed25519 or ECDSA P-256, got ${type ?? 'unknown'}`);
  }
  return keys;
}

export function firmwareConfig(
  env: Record<string, string | undefined>,
  dataDir: string,
  integer: (name: string, fallback: number, min: number, max: number) => number,
  ConfigError: ConfigErrorCtor,
): FirmwareConfig {
  const dir = env['FIRMWARE_DIR']?.trim();
  return {
    signingKeys: parseSigningKeys(
      env['FIRMWARE_SIGNING_KEYS'],
      (m) => new ConfigError('FIRMWARE_SIGNING_KEYS', m),
    ),
    dir: dir ? dir : `${dataDir}/firmware`,
    maxBytes: integer('FIRMWARE_MAX_BYTES', 256 * 1024 * 1024, 1, 4 * 1024 * 1024 * 1024),
    tickMs: integer('FIRMWARE_TICK_MS', 5_000, 20, 3_600_000),
    pollAfterSec: integer('FIRMWARE_POLL_SEC', 300, 1, 86_400),
  };
}
