// The keys of the water kiosks' offline credential cache (docs/water.md "Credential cache"):
// every key is derived from the server's PIN key (PIN_SECRET) with HKDF under its own label, so
// nothing new needs configuring and no derived key is ever stored. Pure functions, no I/O.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';

const derive = (ikm: Buffer, salt: string, info: string): Buffer =>
  Buffer.from(hkdfSync('sha256', ikm, Buffer.from(salt), Buffer.from(info), 32));

export function createWaterKeys(pinKey: Buffer) {
  const cacheRoot = derive(pinKey, 'kioskhub', 'water-cache-root-v1');
  const sealKey = derive(pinKey, 'kioskhub', 'water-pin-seal-v1');
  const ussdHopKey = derive(pinKey, 'kioskhub', 'ussd-hop-v1');
  const aad = (tenantId: string, customerId: string) => Buffer.from(`${tenantId}|${customerId}`);

  return {
    /**
     * The secret one kiosk shares with the server: handed to it once at provisioning, never in a
     * cache. It keys that kiosk's verifiers and the cache signature.
     */
    kioskSecret: (tenantId: string, machineId: string): Buffer =>
      derive(cacheRoot, tenantId, `kiosk:${machineId}`),

    /**
     * What a USSD session keeps of its last hop's text, to know the same hop sent again: a keyed
     * digest, since the text holds the PIN the customer typed (`1*5678*5678`).
     */
    ussdHop: (text: string): string => createHmac('sha256', ussdHopKey).update(text).digest('base64url'),

    /** The PIN sealed for this customer only (AES-256-GCM, the ids as associated data). */
    seal(tenantId: string, customerId: string, pin: string): string {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', sealKey, iv);
      cipher.setAAD(aad(tenantId, customerId));
      const body = Buffer.concat([cipher.update(pin, 'utf8'), cipher.final()]);
      return ['v1', iv, cipher.getAuthTag(), body]
        .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
        .join('.');
    },

    /** The PIN of a seal, or null when it is not this customer's (or the key changed). */
    open(tenantId: string, customerId: string, sealed: string): string | null {
      const [version, iv, tag, body] = sealed.split('.');
      if (version !== 'v1' || !iv || !tag || body === undefined) return null;
      try {
        const decipher = createDecipheriv('aes-256-gcm', sealKey, Buffer.from(iv, 'base64url'));
        decipher.setAAD(aad(tenantId, customerId));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
          'utf8',
        );
      } catch {
        return null;
      }
    },
  };
}

export type WaterKeys = ReturnType<typeof createWaterKeys>;

/** What a kiosk stores per customer: hex HMAC-SHA256(kioskSecret, "<accountId>:<pin>"). */
export const pinVerifier = (kioskSecret: Buffer, accountId: string, pin: string): string =>
  createHmac('sha256', kioskSecret).update(`${accountId}:${pin}`).digest('hex');

/** The cache signature: hex HMAC-SHA256(kioskSecret, the canonical text of the cache). */
export const signCache = (kioskSecret: Buffer, canonical: string): string =>
  createHmac('sha256', kioskSecret).update(canonical).digest('hex');

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');
