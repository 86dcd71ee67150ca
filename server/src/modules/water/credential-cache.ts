// The offline credential cache of one water kiosk (docs/water.md "Credential cache"): the
// customers it may serve (at most 1500, most recently active first) with a PIN verifier keyed by
// that kiosk's own secret, incremental by a per-kiosk version, signed with the same secret.
// Versions are found, not announced: each request compares every entry's digest with what the
// kiosk was last sent, so a change made by any module (credit, plan, PIN, suspension) shows up.
import type { Db } from '../../platform/db/database.js';
import type { WaterKeys } from './water-keys.js';
import { pinVerifier, sha256Hex, signCache } from './water-keys.js';
import { siteDay } from './usage.js';
import type { Kiosk } from './verification.js';
import type { WaterRepo } from './water.repo.js';

export const CACHE_MAX_CUSTOMERS = 1500;

export interface CacheCustomer {
  accountId: string;
  phone: string;
  /** hex HMAC-SHA256(kioskSecret, "<accountId>:<pin>") */
  verifier: string;
  /** `active`, `inactive` (suspended) or `locked` (too many wrong PINs). */
  status: 'active' | 'inactive' | 'locked';
  subscriptionExpiresAt: string | null;
  creditsMl: number;
  dailyLimitMl: number | null;
  /** Water counted against today's (UTC, of generatedAt) limit so far. */
  usedTodayMl: number;
}

export interface CredentialCache {
  kioskId: string;
  version: number;
  generatedAt: string;
  /** true: the whole cache (replace yours); false: changes after `since`. */
  full: boolean;
  customers: CacheCustomer[];
  removed: string[];
  signature: string;
}

/** The exact text the signature covers (docs/water.md): one line per field, `-` for null. */
export function canonicalCache(c: Omit<CredentialCache, 'signature'>): string {
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

export function createCredentialCache(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  repo: WaterRepo;
  keys: WaterKeys;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;

  return {
    async build(kiosk: Kiosk, since: number | undefined): Promise<CredentialCache> {
      const secret = deps.keys.kioskSecret(kiosk.tenantId, kiosk.machineId);
      return deps.db.transaction().execute(async (tx) => {
        await deps.repo.ensureKiosk(tx, {
          machine_id: kiosk.machineId,
          tenant_id: kiosk.tenantId,
          site_id: kiosk.siteId,
        });
        // One cache build per kiosk at a time, so versions are handed out in order.
        const row = await deps.repo.kiosk(tx, kiosk.machineId, deps.dialect === 'postgres');
        const at = new Date(now());
        const candidates = await deps.repo.candidatesForKiosk(tx, {
          tenantId: kiosk.tenantId,
          siteId: kiosk.siteId,
          limit: CACHE_MAX_CUSTOMERS,
        });
        const day = await siteDay(tx, kiosk.tenantId, kiosk.siteId, at);
        const used = await deps.repo.usedTodayByCustomer(tx, kiosk.tenantId, day);
        const current: { customerId: string; entry: CacheCustomer; digest: string }[] = [];
        for (const c of candidates) {
          const pin = deps.keys.open(kiosk.tenantId, c.id, c.sealed);
          if (pin === null) continue; // sealed under another PIN_SECRET: served online only
          const locked = c.pin_locked_until !== null && Date.parse(c.pin_locked_until) > at.getTime();
          const entry: CacheCustomer = {
            accountId: c.account_id,
            phone: c.phone,
            verifier: pinVerifier(secret, c.account_id, pin),
            status: c.active !== 1 ? 'inactive' : locked ? 'locked' : 'active',
            subscriptionExpiresAt: c.subscription_expires_at,
            creditsMl: Number(c.credit_ml ?? 0),
            dailyLimitMl: c.daily_limit_ml === null ? null : Number(c.daily_limit_ml),
            usedTodayMl: used.get(c.id) ?? 0,
          };
          current.push({ customerId: c.id, entry, digest: sha256Hex(JSON.stringify(entry)) });
        }
        const stored = new Map(
          (await deps.repo.cacheEntries(tx, kiosk.machineId)).map((e) => [e.customer_id, e]),
        );
        const changed = current.filter((c) => {
          const s = stored.get(c.customerId);
          return !s || s.removed === 1 || s.digest !== c.digest;
        });
        const inCache = new Set(current.map((c) => c.customerId));
        const gone = [...stored.values()].filter((s) => s.removed === 0 && !inCache.has(s.customer_id));
        let version = Number(row?.cache_issued_version ?? 0);
        if (changed.length > 0 || gone.length > 0 || version === 0) {
          version += 1;
          for (const c of changed) {
            await deps.repo.putCacheEntry(tx, {
              machine_id: kiosk.machineId,
              customer_id: c.customerId,
              account_id: c.entry.accountId,
              digest: c.digest,
              version,
              removed: 0,
            });
          }
          for (const g of gone) {
            await deps.repo.putCacheEntry(tx, { ...g, version, removed: 1 });
          }
          await deps.repo.updateKiosk(tx, kiosk.machineId, { cache_issued_version: version });
          for (const c of changed)
            stored.set(c.customerId, {
              machine_id: kiosk.machineId,
              customer_id: c.customerId,
              account_id: c.entry.accountId,
              digest: c.digest,
              version,
              removed: 0,
            });
          for (const g of gone) stored.set(g.customer_id, { ...g, version, removed: 1 });
        }
        // An unknown or future `since` (a server restored from backup) gets the whole cache.
        const full = since === undefined || since <= 0 || since > version;
        const body = {
          kioskId: kiosk.machineId,
          version,
          generatedAt: at.toISOString(),
          full,
          customers: current
            .filter((c) => full || Number(stored.get(c.customerId)!.version) > since)
            .map((c) => c.entry),
          removed: full
            ? []
            : [...stored.values()]
                .filter((s) => s.removed === 1 && Number(s.version) > since)
                .map((s) => s.account_id),
        };
        return { ...body, signature: signCache(secret, canonicalCache(body)) };
      });
    },
  };
}

export type CredentialCacheService = ReturnType<typeof createCredentialCache>;
