// The water part of `npm run demo`: two water kiosks in the default site, two plans, a few
// customers with PINs (a subscriber, credit holders, one unknown number), and one simulated
// kiosk per machine pouring for them through the firmware API. One kiosk loses its modem for a
// while, serves from its credential cache, and uploads its SD-card log when it is back.
import { printKioskActivity, startCustomerStream, WaterKiosk } from '@kioskhub/water-simulator';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KioskhubApp } from '../app.js';
import { nowIso } from '../platform/db/database.js';
import { AppError } from '../platform/errors.js';
import { recordAudit } from '../modules/audit/audit.service.js';
import { DEFAULT_TENANT } from '../modules/tenants/tenants.service.js';

const ACTOR = 'cli:demo';
export const WATER_KIOSKS = [
  { id: 'WDEMO1', taps: 4, offlineAfter: 2 },
  { id: 'WDEMO2', taps: 2, offlineAfter: 0 },
];
/** Registered demo customers; the last entry is a number nobody registered. */
export const WATER_CUSTOMERS = [
  { phone: '+254700000101', pin: '1111', name: 'Amina (monthly plan)', plan: 'demo-month' },
  { phone: '+254700000102', pin: '2222', name: 'Baraka (100 L credit)', plan: 'demo-100l' },
  { phone: '+254700000103', pin: '3333', name: 'Chebet (100 L credit)', plan: 'demo-100l' },
  { phone: '+254700000104', pin: '4444', name: 'Daudi (3 L credit)', plan: null },
] as const;
const UNKNOWN = { phone: '+254700000199', pin: '9999' };

interface PreparedKiosk {
  kioskId: string;
  key: string;
  cacheSecret: string | null;
  taps: number;
  offlineAfter: number;
}

async function addPlans(kioskhub: KioskhubApp): Promise<void> {
  const { customers } = kioskhub.services;
  const now = nowIso();
  const base = { tenant_id: DEFAULT_TENANT, active: 1, created_at: now, updated_at: now, currency: 'KES' };
  if (!(await customers.plan(DEFAULT_TENANT, 'demo-month')))
    await customers.repo.insertPlan({
      ...base,
      id: 'demo-month',
      name: 'Monthly water (demo)',
      kind: 'subscription',
      price_minor: 50_000,
      days: 30,
      credit_ml: null,
      daily_limit_ml: 40_000,
    });
  if (!(await customers.plan(DEFAULT_TENANT, 'demo-100l')))
    await customers.repo.insertPlan({
      ...base,
      id: 'demo-100l',
      name: '100 litres (demo)',
      kind: 'credit',
      price_minor: 20_000,
      days: null,
      credit_ml: 100_000,
      daily_limit_ml: null,
    });
}

/** A demo customer as if they had registered by USSD and bought their plan. */
async function addCustomer(kioskhub: KioskhubApp, c: (typeof WATER_CUSTOMERS)[number]): Promise<void> {
  const { customers, ledger } = kioskhub.services;
  await kioskhub.db.transaction().execute(async (tx) => {
    let row = await customers.findByPhone(DEFAULT_TENANT, c.phone, tx);
    row ??= await customers.create(
      { tenantId: DEFAULT_TENANT, phone: c.phone, fullName: c.name, actor: ACTOR },
      tx,
    );
    row = await customers.setPin(row, c.pin, ACTOR, tx, 'demo customer');
    if (c.plan === 'demo-month') {
      await customers.repo.update(
        row.id,
        {
          subscription_plan_id: 'demo-month',
          subscription_expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString(),
          daily_limit_ml: 40_000,
          pin_failures: 0,
          pin_locked_until: null,
        },
        tx,
      );
    } else {
      const wanted = c.plan === 'demo-100l' ? 100_000 : 3_000;
      const credit = await customers.waterCredit(tx, DEFAULT_TENANT, row.id);
      if (credit.balance < wanted) {
        const issued = await ledger.account(tx, {
          tenantId: DEFAULT_TENANT,
          ownerType: 'tenant',
          ownerId: DEFAULT_TENANT,
          kind: 'water_issued',
          unit: 'ml',
        });
        await ledger.transfer(tx, {
          tenantId: DEFAULT_TENANT,
          from: issued.id,
          to: credit.id,
          amount: wanted - credit.balance,
          unit: 'ml',
          cause: { type: 'demo', id: row.id },
          memo: 'demo credit',
        });
      }
    }
    await recordAudit(tx, {
      tenantId: DEFAULT_TENANT,
      actor: ACTOR,
      action: 'customer.demo_prepared',
      subjectType: 'customer',
      subjectId: row.id,
      after: { plan: c.plan },
    });
  });
}

/** The kiosk's credential-cache secret, as an admin provisions it (`POST /v1/water/kiosks/:id/secret`). */
async function cacheSecretOf(url: string, adminToken: string, kioskId: string): Promise<string | null> {
  const res = await fetch(`${url}/v1/water/kiosks/${kioskId}/secret`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ reason: 'demo kiosk provisioning' }),
  });
  if (!res.ok) return null;
  return ((await res.json()) as { kioskSecret?: string }).kioskSecret ?? null;
}

/** Creates (or re-keys) the demo water kiosks, plans and customers. */
export async function prepareWaterDemo(
  kioskhub: KioskhubApp,
  url: string,
  adminToken: string,
): Promise<PreparedKiosk[]> {
  const { machines } = kioskhub.services;
  await addPlans(kioskhub);
  for (const c of WATER_CUSTOMERS) await addCustomer(kioskhub, c);
  const prepared: PreparedKiosk[] = [];
  for (const k of WATER_KIOSKS) {
    let key: string;
    try {
      key = (
        await machines.create(
          { id: k.id, tenantId: DEFAULT_TENANT, name: `Water ${k.id}`, kind: 'water' },
          ACTOR,
        )
      ).key;
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'CONFLICT')) throw err;
      key = (await machines.rotateKey(k.id, DEFAULT_TENANT, ACTOR)).key;
    }
    prepared.push({ kioskId: k.id, key, cacheSecret: await cacheSecretOf(url, adminToken, k.id), ...k });
  }
  return prepared;
}

export interface WaterTotals {
  served: number;
  offlineServed: number;
  refused: number;
  litres: number;
  uploaded: { applied: number; duplicate: number; rejected: number };
  leftOnCards: number;
}

/** Runs one simulated kiosk per prepared machine, printing through `log`. */
export async function startWaterKiosks(url: string, prepared: PreparedKiosk[], log: (line: string) => void) {
  const sdDir = mkdtempSync(join(tmpdir(), 'kioskhub-demo-sd-'));
  const uploaded = { applied: 0, duplicate: 0, rejected: 0 };
  // Regulars come twice as often as the stranger whose number nobody registered.
  const regulars = WATER_CUSTOMERS.map(({ phone, pin }) => ({ phone, pin }));
  const customers = [...regulars, ...regulars, UNKNOWN];
  const running: { kiosk: WaterKiosk; stream: ReturnType<typeof startCustomerStream> }[] = [];
  for (const p of prepared) {
    const kiosk = new WaterKiosk({
      url,
      kioskId: p.kioskId,
      key: p.key,
      cacheSecret: p.cacheSecret,
      taps: p.taps,
      heartbeatMs: 30_000,
      sdCardPath: join(sdDir, `${p.kioskId}.jsonl`),
      flowMlPerSecond: 2000,
      pulseTickMs: 250,
    });
    printKioskActivity(kiosk, log);
    kiosk.on('uploaded', (r) => {
      uploaded.applied += r.applied;
      uploaded.duplicate += r.duplicate;
      uploaded.rejected += r.rejected.length;
    });
    await kiosk.start();
    const stream = startCustomerStream(
      kiosk,
      {
        customers,
        everyMs: 1500,
        volumesMl: [1000, 2000, 5000],
        walkAwayRate: 0.15,
        offlineAfter: p.offlineAfter,
        offlineFor: 2,
      },
      (err) => log(`${p.kioskId}  ${err.message}`),
    );
    running.push({ kiosk, stream });
  }
  return {
    kiosks: running.map((r) => r.kiosk),
    /** Stops the customers, brings any kiosk still offline back (uploading its card), stops heartbeats. */
    async stop(): Promise<WaterTotals> {
      await Promise.all(running.map((r) => r.stream.stop()));
      for (const r of running) {
        if (r.kiosk.offline) await r.kiosk.goOnline().catch(() => undefined);
        else if (r.kiosk.sd.entries().length > 0) await r.kiosk.uploadBacklog().catch(() => undefined);
      }
      const totals: WaterTotals = {
        served: 0,
        offlineServed: 0,
        refused: 0,
        litres: 0,
        uploaded,
        leftOnCards: 0,
      };
      for (const r of running) {
        r.kiosk.stop();
        totals.served += r.stream.stats.served;
        totals.offlineServed += r.stream.stats.offlineServed;
        totals.refused += r.stream.stats.refused;
        totals.litres += r.stream.stats.litres;
        totals.leftOnCards += r.kiosk.sd.entries().length;
      }
      rmSync(sdDir, { recursive: true, force: true });
      return totals;
    },
  };
}
