// How a customer's PIN is kept and checked (docs/water.md "How PINs are stored and checked").
// A PIN is sealed with AES-256-GCM under a key derived from PIN_SECRET, bound to its tenant and
// customer: a check opens the seal and compares in constant time (microseconds, so it can run
// inside the verification's transaction). PINs set before seals existed are argon2id hashes; a
// right PIN upgrades one to a seal, and until then its argon2 run happens outside transactions.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import argon2 from 'argon2';

const SEAL_PREFIX = 'pinseal1.';

export function createPinVerifier(pinKey: Buffer) {
  const key = Buffer.from(
    hkdfSync('sha256', pinKey, Buffer.from('kioskhub'), Buffer.from('customer-pin-seal-v1'), 32),
  );
  const aad = (tenantId: string, customerId: string) => Buffer.from(`customer-pin|${tenantId}|${customerId}`);

  function open(tenantId: string, customerId: string, stored: string): string | null {
    const [iv, tag, body] = stored.slice(SEAL_PREFIX.length).split('.');
    if (!iv || !tag || body === undefined) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(aad(tenantId, customerId));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      return null; // not this customer's seal, or sealed under another PIN_SECRET
    }
  }

  return {
    /** What `customers.pin_hash` holds for a new PIN: a fresh seal (a new IV every time). */
    seal(tenantId: string, customerId: string, pin: string): string {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(aad(tenantId, customerId));
      const body = Buffer.concat([cipher.update(pin, 'utf8'), cipher.final()]);
      return SEAL_PREFIX + [iv, cipher.getAuthTag(), body].map((b) => b.toString('base64url')).join('.');
    },

    isSealed: (stored: string): boolean => stored.startsWith(SEAL_PREFIX),

    /** A sealed PIN against a typed one, in constant time for PINs of the same length. */
    sealMatches(tenantId: string, customerId: string, stored: string, pin: string): boolean {
      const opened = open(tenantId, customerId, stored);
      if (opened === null) return false;
      const a = Buffer.from(opened);
      const b = Buffer.from(pin);
      return a.length === b.length && timingSafeEqual(a, b);
    },

    /** A PIN set before seals: argon2id with the server key as argon2's secret (~8 ms of CPU). */
    legacyMatches: (stored: string, pin: string): Promise<boolean> =>
      argon2.verify(stored, pin, { secret: pinKey }).catch(() => false),
  };
}

export type PinVerifier = ReturnType<typeof createPinVerifier>;
