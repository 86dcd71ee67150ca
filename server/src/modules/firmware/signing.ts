// Offline signing of firmware (npm run firmware:sign): a key pair whose public half goes into
// FIRMWARE_SIGNING_KEYS, and manifests signed over their exact bytes. Used by the CLI and tests.
import { createHash, createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import type { FirmwareManifest } from '@kioskhub/protocol';

export function generateSigningKey(keyId: string) {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    /** The FIRMWARE_SIGNING_KEYS entry of this key. */
    entry: `${keyId}:${spki}`,
  };
}

/** The manifest of an image, as compact JSON text (the bytes that are signed). */
export function manifestFor(
  image: Buffer,
  info: {
    product: string;
    hwModels: string[];
    version: string;
    minFromVersion?: string;
    allowDowngrade?: boolean;
  },
): string {
  const manifest: FirmwareManifest = {
    product: info.product,
    hwModels: info.hwModels,
    version: info.version,
    sha256: createHash('sha256').update(image).digest('hex'),
    size: image.length,
    ...(info.minFromVersion ? { minFromVersion: info.minFromVersion } : {}),
    allowDowngrade: info.allowDowngrade ?? false,
  };
  return JSON.stringify(manifest);
}

/** Base64 signature over the manifest text's UTF-8 bytes (Ed25519, or ECDSA P-256 with SHA-256). */
export function signManifest(privateKeyPem: string, manifestText: string): string {
  const key = createPrivateKey(privateKeyPem);
  const algorithm = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return sign(algorithm, Buffer.from(manifestText, 'utf8'), key).toString('base64');
}
