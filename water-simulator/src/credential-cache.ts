// The kiosk's copy of the credential cache: the customers it may serve while the server cannot
// be reached. A copy is trusted only when its signature checks out under this kiosk's cache
// secret (given to it once at provisioning); a PIN is checked against the entry's verifier under
// the same secret; and water is approved offline by the server's rules: active, not locked,
// subscription or credit, daily limit (counting what this kiosk poured since the copy).
// The signed text and the verifier are written here from docs/water.md, apart from the server's
// code, as a kiosk's firmware writes them: a change of the scheme on one side alone fails the
// simulator's tests instead of passing unnoticed.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CachedCustomer, CredentialCacheResponse } from './wire.js';

export type OfflineDecision =
  { approved: true; code: 'VERIFIED'; customer: CachedCustomer } | { approved: false; code: string };

const hmacHex = (secret: Buffer, text: string): string =>
  createHmac('sha256', secret).update(text).digest('hex');

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && x.length === y.length && timingSafeEqual(x, y);
}

/** The exact text the server signs: one line per field, `-` for null (kioskhub-water-cache v1). */
export function canonicalCacheText(c: Omit<CredentialCacheResponse, 'signature'>): string {
  const lines = [
    'kioskhub-water-cache v1',
    `kiosk ${c.kioskId}`,
    `version ${c.version}`,
    `generatedAt ${c.generatedAt}`,
    `full ${c.full ? 1 : 0}`,
  ];
  for (const x of c.customers) {
    const fields = [
      x.accountId,
      x.phone,
      x.verifier,
      x.status,
      x.subscriptionExpiresAt ?? '-',
      x.creditsMl,
      x.dailyLimitMl ?? '-',
      x.usedTodayMl,
    ];
    lines.push(`c ${fields.join('|')}`);
  }
  for (const r of c.removed) lines.push(`r ${r}`);
  return lines.join('\n');
}

/** hex HMAC-SHA256(cacheSecret, "<accountId>:<pin>"): what the kiosk compares a typed PIN with. */
export const pinVerifier = (cacheSecret: Buffer, accountId: string, pin: string): string =>
  hmacHex(cacheSecret, `${accountId}:${pin}`);

/** The last digits of a phone number: what a keypad entry and an E.164 number have in common. */
const phoneTail = (phone: string): string => phone.replace(/\D/g, '').slice(-9);

export class CredentialCache {
  private readonly byAccount = new Map<string, CachedCustomer>();
  private readonly accountByPhone = new Map<string, string>();
  /** Water poured offline since the copy was taken, per account (the server does not know it yet). */
  private readonly usedOffline = new Map<string, number>();
  version: number | undefined;

  /** `secret`: this kiosk's cache secret; without it nothing is trusted and nobody is served offline. */
  constructor(
    private readonly secret: Buffer | null,
    private readonly kioskId: string,
  ) {}

  /** Whether this kiosk has its cache secret (without it no copy can be checked or used). */
  get hasSecret(): boolean {
    return this.secret !== null;
  }

  get size(): number {
    return this.byAccount.size;
  }

  /** Checks kiosk and signature, then applies a whole copy or a delta. False: not trusted. */
  apply(body: CredentialCacheResponse): boolean {
    if (!this.secret || body.kioskId !== this.kioskId) return false;
    const { signature, ...signed } = body;
    if (
      typeof signature !== 'string' ||
      !sameHex(hmacHex(this.secret, canonicalCacheText(signed)), signature)
    )
      return false;
    if (body.full) {
      this.byAccount.clear();
      this.accountByPhone.clear();
    }
    for (const accountId of body.removed) {
      const gone = this.byAccount.get(accountId);
      if (gone) this.accountByPhone.delete(phoneTail(gone.phone));
      this.byAccount.delete(accountId);
    }
    for (const c of body.customers) {
      this.byAccount.set(c.accountId, c);
      this.accountByPhone.set(phoneTail(c.phone), c.accountId);
    }
    this.version = body.version;
    this.usedOffline.clear(); // the new copy's usedTodayMl/creditsMl include what the server has
    return true;
  }

  /** Decides offline by the server's rules, without a guess: unknown means no. */
  decide(phone: string, pin: string, volumeMl: number, now = new Date()): OfflineDecision {
    const accountId = this.accountByPhone.get(phoneTail(phone));
    const c = accountId === undefined ? undefined : this.byAccount.get(accountId);
    if (!c || !this.secret) return { approved: false, code: 'UNKNOWN_CUSTOMER' };
    if (c.status === 'inactive') return { approved: false, code: 'INACTIVE' };
    if (c.status === 'locked') return { approved: false, code: 'PIN_LOCKED' };
    if (!/^\d{4}$/.test(pin) || !sameHex(pinVerifier(this.secret, c.accountId, pin), c.verifier))
      return { approved: false, code: 'INVALID_PIN' };
    const pouredHere = this.usedOffline.get(c.accountId) ?? 0;
    if (c.dailyLimitMl !== null && c.usedTodayMl + pouredHere + volumeMl > c.dailyLimitMl)
      return { approved: false, code: 'DAILY_LIMIT' };
    const subscribed =
      c.subscriptionExpiresAt !== null && Date.parse(c.subscriptionExpiresAt) > now.getTime();
    if (!subscribed && c.creditsMl - pouredHere < volumeMl)
      return {
        approved: false,
        code: c.subscriptionExpiresAt !== null ? 'SUBSCRIPTION_EXPIRED' : 'INSUFFICIENT_CREDIT',
      };
    return { approved: true, code: 'VERIFIED', customer: c };
  }

  /** Counts water poured offline against the cached customer until the next copy. */
  recordOffline(phone: string, dispensedMl: number): void {
    const accountId = this.accountByPhone.get(phoneTail(phone));
    if (accountId !== undefined)
      this.usedOffline.set(accountId, (this.usedOffline.get(accountId) ?? 0) + dispensedMl);
  }
}
