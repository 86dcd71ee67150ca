// The simulator on its own, against a tiny fake of the firmware API: the credential cache is
// trusted only with the right signature, PINs are checked offline by verifier, and the SD card
// keeps everything the server did not answer applied or duplicate.
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalCacheText, CredentialCache, pinVerifier } from './credential-cache.js';
import { SdCardLog } from './sd-card.js';
import { WaterKiosk } from './water-kiosk.js';
import type { CachedCustomer, CredentialCacheResponse } from './wire.js';

const secret = randomBytes(32);
const customer = (over: Partial<CachedCustomer> = {}): CachedCustomer => ({
  accountId: 'TSFABC234',
  phone: '+254712345678',
  verifier: pinVerifier(secret, 'TSFABC234', '2468'),
  status: 'active',
  subscriptionExpiresAt: null,
  creditsMl: 10_000,
  dailyLimitMl: 20_000,
  usedTodayMl: 0,
  ...over,
});

function signed(body: Omit<CredentialCacheResponse, 'signature'>, key = secret): CredentialCacheResponse {
  return { ...body, signature: createHmac('sha256', key).update(canonicalCacheText(body)).digest('hex') };
}

const cacheBody = (customers: CachedCustomer[], over: Partial<CredentialCacheResponse> = {}) =>
  signed({
    kioskId: 'W01',
    version: 1,
    generatedAt: new Date().toISOString(),
    full: true,
    customers,
    removed: [],
    ...over,
  });

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  for (const s of servers.splice(0)) s.close();
});

describe('credential cache (kiosk side)', () => {
  it('trusts only a copy signed with its own secret, for its own kiosk', () => {
    const cache = new CredentialCache(secret, 'W01');
    expect(cache.apply(signed({ ...cacheBody([customer()]), kioskId: 'W02' }))).toBe(false);
    expect(cache.apply(cacheBody([customer()]))).toBe(true);
    const other = new CredentialCache(randomBytes(32), 'W01');
    expect(other.apply(cacheBody([customer()]))).toBe(false);
    const tampered = { ...cacheBody([customer()]) };
    tampered.customers = [customer({ creditsMl: 999_999 })];
    expect(new CredentialCache(secret, 'W01').apply(tampered)).toBe(false);
    expect(new CredentialCache(null, 'W01').apply(cacheBody([customer()]))).toBe(false);
  });

  it('checks the PIN by verifier and applies the server rules offline', () => {
    const cache = new CredentialCache(secret, 'W01');
    expect(cache.apply(cacheBody([customer()]))).toBe(true);
    expect(cache.decide('0712345678', '2468', 5000).code).toBe('VERIFIED');
    expect(cache.decide('0712345678', '1111', 5000).code).toBe('INVALID_PIN');
    expect(cache.decide('0799999999', '2468', 5000).code).toBe('UNKNOWN_CUSTOMER');
    cache.recordOffline('+254712345678', 8000);
    expect(cache.decide('254712345678', '2468', 5000).code).toBe('INSUFFICIENT_CREDIT');
    expect(cache.apply(cacheBody([customer({ status: 'locked' })], { version: 2, full: false }))).toBe(true);
    expect(cache.decide('0712345678', '2468', 1000).code).toBe('PIN_LOCKED');
    expect(cache.apply(cacheBody([], { version: 3, full: false, removed: ['TSFABC234'] }))).toBe(true);
    expect(cache.decide('0712345678', '2468', 1000).code).toBe('UNKNOWN_CUSTOMER');
  });
});

describe('SD card and batch upload', () => {
  it('removes only what the server applied or already had; a torn last line is skipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'water-sim-'));
    dirs.push(dir);
    const seen: unknown[] = [];
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d));
      req.on('end', () => {
        const body = JSON.parse(raw) as { transactions: { kioskTxnId: string }[] };
        seen.push(...body.transactions);
        const status = (id: string) =>
          id.endsWith('1') ? 'applied' : id.endsWith('2') ? 'duplicate' : 'rejected';
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            results: body.transactions.map((t) => ({
              kioskTxnId: t.kioskTxnId,
              status: status(t.kioskTxnId),
              code: 'X',
            })),
          }),
        );
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const kiosk = new WaterKiosk({
      url: `http://127.0.0.1:${port}`,
      kioskId: 'W01',
      key: 'k',
      sdCardPath: join(dir, 'sd.jsonl'),
    });
    for (const id of ['t1', 't2', 't3'])
      kiosk.sd.append({
        kioskTxnId: id,
        userId: '+254712345678',
        dispensedMl: 500,
        at: new Date().toISOString(),
      });
    const { appendFileSync } = await import('node:fs');
    appendFileSync(join(dir, 'sd.jsonl'), '{"kioskTxnId":"t4","us');
    const report = await kiosk.uploadBacklog();
    expect(seen).toHaveLength(3);
    expect(report).toMatchObject({ sent: 3, applied: 1, duplicate: 1, left: 1 });
    expect(new SdCardLog(join(dir, 'sd.jsonl')).entries().map((t) => t.kioskTxnId)).toEqual(['t3']);
  });
});
