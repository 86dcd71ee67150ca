// Signed firmware manifests (CONTRACTS.md §15): parsing the exact signed text into a manifest,
// checking its signature against FIRMWARE_SIGNING_KEYS, and comparing versions.
import { verify } from 'node:crypto';
import type { FirmwareManifest } from '@kioskhub/protocol';
import type { FirmwareSigningKey } from '../../platform/config-firmware.js';
import { validation } from '../../platform/errors.js';

const MANIFEST_FIELDS = new Set([
  'product',
  'hwModels',
  'version',
  'sha256',
  'size',
  'minFromVersion',
  'allowDowngrade',
]);
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Parses the manifest's text; anything malformed is a VALIDATION_FAILED naming the field. */
export function parseManifest(text: string): FirmwareManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw validation('manifest: not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw validation('manifest: must be a JSON object');
  const m = raw as Record<string, unknown>;
  for (const field of Object.keys(m))
    if (!MANIFEST_FIELDS.has(field)) throw validation(`manifest: unknown field "${field}"`);
  const bad = (field: string, rule: string) => validation(`manifest.${field}: ${rule}`);
  if (typeof m['product'] !== 'string' || !NAME.test(m['product']))
    throw bad('product', 'a name of 1–64 letters, digits, . _ -');
  const hw = m['hwModels'];
  if (
    !Array.isArray(hw) ||
    hw.length === 0 ||
    hw.length > 50 ||
    !hw.every((h) => typeof h === 'string' && NAME.test(h))
  )
    throw bad('hwModels', 'a non-empty array of hardware model names');
  if (typeof m['version'] !== 'string' || !VERSION.test(m['version']))
    throw bad('version', 'a version such as 1.4.2');
  if (typeof m['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(m['sha256']))
    throw bad('sha256', '64 lowercase hex digits');
  const size = m['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1)
    throw bad('size', 'a positive whole number of bytes');
  const min = m['minFromVersion'];
  if (min !== undefined && (typeof min !== 'string' || !VERSION.test(min)))
    throw bad('minFromVersion', 'a version such as 1.0.0');
  if (typeof m['allowDowngrade'] !== 'boolean') throw bad('allowDowngrade', 'true or false');
  return {
    product: m['product'],
    hwModels: hw as string[],
    version: m['version'],
    sha256: m['sha256'],
    size,
    ...(min !== undefined ? { minFromVersion: min as string } : {}),
    allowDowngrade: m['allowDowngrade'],
  };
}

/** Checks the base64 signature over the manifest's exact bytes with the named key. */
export function verifyManifestSignature(
  keys: ReadonlyMap<string, FirmwareSigningKey>,
  keyId: string,
  manifestText: string,
  signatureB64: string,
): FirmwareSigningKey {
  const key = keys.get(keyId);
  if (!key) throw validation(`keyId: "${keyId}" is not one of FIRMWARE_SIGNING_KEYS`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signatureB64)) throw validation('signature: not base64');
  const signature = Buffer.from(signatureB64, 'base64');
  const bytes = Buffer.from(manifestText, 'utf8');
  let ok = false;
  try {
    ok =
      key.sigAlg === 'ed25519'
        ? verify(null, bytes, key.key, signature)
        : verify('sha256', bytes, key.key, signature) ||
          (signature.length === 64 &&
            verify('sha256', bytes, { key: key.key, dsaEncoding: 'ieee-p1363' }, signature));
  } catch {
    ok = false;
  }
  if (!ok) throw validation(`signature: does not verify with key "${keyId}" over the manifest's bytes`);
  return key;
}

/**
 * Compares two versions part by part (`1.10.0` > `1.9.3`); numeric parts numerically, others as
 * text; a pre-release suffix (`-rc1`) sorts before the release.
 */
export function compareVersions(a: string, b: string): number {
  const [coreA = '', preA] = splitPre(a);
  const [coreB = '', preB] = splitPre(b);
  const pa = coreA.split('.');
  const pb = coreB.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return Math.sign(c);
  }
  if (preA === preB) return 0;
  if (preA === undefined) return 1;
  if (preB === undefined) return -1;
  return Math.sign(preA.localeCompare(preB));
}

function splitPre(v: string): [string, string | undefined] {
  const cut = v.replace(/\+.*$/, '');
  const i = cut.indexOf('-');
  return i < 0 ? [cut, undefined] : [cut.slice(0, i), cut.slice(i + 1)];
}
