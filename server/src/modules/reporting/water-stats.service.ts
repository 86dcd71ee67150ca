// Water reporting (read-only, like stats.service.ts): the water kiosks overview (heartbeat state
// from water_kiosks, today's litres from water_dispenses, today's approvals and denials from
// water_verifications) and the water charts (litres per day, verifications by code, plan revenue).
// Payments are the payments module's to count (what is paid, what is stuck): it is asked.
import {
  currencyExponent,
  type WaterKioskOverview,
  type WaterStatsView,
  type WaterTapView,
} from '@kioskhub/protocol';
import { type RawBuilder, sql } from 'kysely';
import type { Db } from '../../platform/db/database.js';
import type { CustomersService } from '../customers/customers.service.js';
import type { PaymentQueries } from '../payments/payment-queries.js';
import { localDayBounds } from '../water/usage.js';
import { reasonOf } from '../water-ops/verifications.js';
import { readableAmount } from '../../platform/money.js';
import { localDay } from './local-buckets.js';
import { checkTimeZone, cmp, isLocal, localBuckets, resolveRange, type Zoned } from './stats.service.js';

/** A kiosk is OFFLINE after this long without a heartbeat (docs/water.md). */
export const WATER_KIOSK_SILENT_MS = 5 * 60_000;
/** Tap statuses that are not a fault; anything else a tap reports is one. */
const TAP_OK = new Set(['OK', 'IDLE', 'READY', 'DISPENSING', 'BUSY', 'ONLINE']);
export const isTapFault = (status: string): boolean => !TAP_OK.has(status.trim().toUpperCase());
/** Water that left a tap: settled approvals and offline uploads. */
const DISPENSED = ['SETTLED', 'OFFLINE'];

/** The taps a heartbeat reported (JSON text), tolerant of what older firmware sends. */
export function parseTaps(json: string | null): WaterTapView[] {
  if (!json) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(raw)) return [];
  const taps: WaterTapView[] = [];
  for (const t of raw as unknown[]) {
    if (typeof t !== 'object' || t === null) continue;
    const r = t as Record<string, unknown>;
    const tap = Number(r['tap']);
    if (!Number.isInteger(tap)) continue;
    const status = typeof r['status'] === 'string' ? r['status'] : 'UNKNOWN';
    const total = r['totalMl'] ?? r['total_ml'];
    taps.push({
      tap,
      status,
      fault: isTapFault(status),
      totalMl: typeof total === 'number' && Number.isFinite(total) ? total : null,
    });
  }
  return taps.sort((a, b) => a.tap - b.tap);
}

/** A standing condition that needs an operator; its alert resolves when it is no longer listed. */
export interface AlertCondition {
  tenantId: string;
  kind: WaterAlertKind;
  subjectType: string;
  subjectId: string;
  message: string;
}
export const WATER_ALERT_KINDS = [
  'WATER_KIOSK_SILENT',
  'WATER_TAP_FAULT',
  'PAYMENT_STUCK',
  'WATER_CREDIT_NEGATIVE',
] as const;
export type WaterAlertKind = (typeof WATER_ALERT_KINDS)[number];
/** Where each kind's listing goes on in the next sweep (its last key), for kinds cut at the cap. */
export type AlertResume = Partial<Record<WaterAlertKind, string>>;
/** Conditions listed per kind and sweep at most. */
const CONDITIONS_PER_KIND = 500;
/** Kiosks read per query while looking for conditions (every kiosk is looked at). */
const KIOSK_PAGE = 500;

export function createWaterStatsService(deps: {
  db: Db;
  payments: Pick<PaymentQueries, 'planRevenue' | 'stuckPending'>;
  customers: Pick<CustomersService, 'planNames'>;
}) {
  const { db } = deps;

  /** Every water kiosk with today's figures: today is the UTC day, or the local day of `timeZone`. */
  async function overview(
    tenantId: string | null,
    now = Date.now(),
    timeZone?: string,
  ): Promise<WaterKioskOverview[]> {
    const zone = checkTimeZone(timeZone);
    // [start, end): water an offline kiosk logged with tomorrow's date (a clock running ahead) is not today's.
    const day = localDayBounds(new Date(now), isLocal(zone) ? zone : 'UTC');
    let kiosks = db
      .selectFrom('machines as m')
      .leftJoin('water_kiosks as k', 'k.machine_id', 'm.id')
      .select([
        'm.id',
        'm.name',
        'm.site_id',
        'm.firmware as machine_firmware',
        'k.firmware',
        'k.taps',
        'k.signal_dbm',
        'k.sd_free_mb',
        'k.cache_version',
        'k.last_heartbeat_at',
      ])
      .where('m.kind', '=', 'water')
      .orderBy('m.id');
    if (tenantId !== null) kiosks = kiosks.where('m.tenant_id', '=', tenantId);
    let dispensed = db
      .selectFrom('water_dispenses')
      .select(['kiosk_id', (eb) => eb.fn.sum<string | number>('dispensed_ml').as('ml')])
      .where('at', '>=', day.start)
      .where('at', '<', day.end)
      .where('status', 'in', DISPENSED)
      .groupBy('kiosk_id');
    if (tenantId !== null) dispensed = dispensed.where('tenant_id', '=', tenantId);
    let verified = db
      .selectFrom('water_verifications')
      .select(['kiosk_id', 'approved', (eb) => eb.fn.countAll<string | number>().as('n')])
      .where('at', '>=', day.start)
      .where('at', '<', day.end)
      .groupBy(['kiosk_id', 'approved']);
    if (tenantId !== null) verified = verified.where('tenant_id', '=', tenantId);
    const [rows, ml, counts] = await Promise.all([kiosks.execute(), dispensed.execute(), verified.execute()]);
    const mlOf = new Map(ml.map((r) => [r.kiosk_id, Number(r.ml ?? 0)]));
    const approvals = new Map<string, number>();
    const denials = new Map<string, number>();
    for (const c of counts) {
      const into = Number(c.approved) === 1 ? approvals : denials;
      into.set(c.kiosk_id, (into.get(c.kiosk_id) ?? 0) + Number(c.n));
    }
    const silentBefore = new Date(now - WATER_KIOSK_SILENT_MS).toISOString();
    return rows.map((r) => ({
      kioskId: r.id,
      name: r.name,
      siteId: r.site_id,
      status: r.last_heartbeat_at && r.last_heartbeat_at >= silentBefore ? 'ONLINE' : 'OFFLINE',
      firmware: r.firmware ?? r.machine_firmware ?? null,
      lastHeartbeatAt: r.last_heartbeat_at ?? null,
      cacheVersion:
        r.cache_version === null || r.cache_version === undefined ? null : Number(r.cache_version),
      signalDbm: r.signal_dbm === null || r.signal_dbm === undefined ? null : Number(r.signal_dbm),
      sdFreeMb: r.sd_free_mb === null || r.sd_free_mb === undefined ? null : Number(r.sd_free_mb),
      taps: parseTaps(r.taps ?? null),
      dispensedTodayMl: mlOf.get(r.id) ?? 0,
      approvalsToday: approvals.get(r.id) ?? 0,
      denialsToday: denials.get(r.id) ?? 0,
    }));
  }

  /** Plan revenue per plan and currency, across the tenants asked for, with the plan's name. */
  async function revenueByPlan(q: { tenantId: string | null; from: string; to: string }) {
    const rows = await deps.payments.planRevenue(q);
    const names = await deps.customers.planNames(
      rows.flatMap((r) => (r.planId === null ? [] : [{ tenantId: r.tenantId, planId: r.planId }])),
    );
    const byPlan = new Map<string, WaterStatsView['revenueByPlan'][number]>();
    for (const r of rows) {
      const key = `${r.planId ?? ''}\u0000${r.currency}`;
      const name = r.planId === null ? undefined : names.get(`${r.tenantId}/${r.planId}`);
      const sum = byPlan.get(key) ?? {
        planId: r.planId ?? '',
        planName: null,
        currency: r.currency,
        exponent: exponentOf(r.currency),
        amountMinor: 0,
        payments: 0,
      };
      sum.amountMinor += r.amountMinor;
      sum.payments += r.payments;
      // Like max(name) over the plans joined: one plan id may name plans of several tenants.
      if (name !== undefined && (sum.planName === null || name > sum.planName)) sum.planName = name;
      byPlan.set(key, sum);
    }
    return [...byPlan.values()].sort((a, b) => cmp(a.planId, b.planId) || cmp(a.currency, b.currency));
  }

  async function stats(q: {
    tenantId: string | null;
    from?: string;
    to?: string;
    timeZone?: string;
  }): Promise<Zoned<WaterStatsView>> {
    const timeZone = checkTimeZone(q.timeZone);
    const { from, to } = resolveRange({ ...q, bucket: 'day' });
    const litres = (day: RawBuilder<string>) => {
      let query = db
        .selectFrom('water_dispenses')
        .select([
          day.as('day'),
          (eb) => eb.fn.sum<string | number>('dispensed_ml').as('ml'),
          (eb) => eb.fn.countAll<string | number>().as('n'),
          (eb) => eb.fn.min<string>('at').as('lo'),
          (eb) => eb.fn.max<string>('at').as('hi'),
        ])
        .where('at', '>=', from)
        .where('at', '<', to)
        .where('status', 'in', DISPENSED)
        .groupBy(day)
        .orderBy(day);
      if (q.tenantId !== null) query = query.where('tenant_id', '=', q.tenantId);
      return query.execute();
    };
    const litresPerDay = async (): Promise<WaterStatsView['litresPerDay']> => {
      if (!isLocal(timeZone)) {
        const rows = await litres(sql<string>`substr(${sql.ref('at')}, 1, 10)`);
        return rows.map((x) => ({ day: x.day, litres: Number(x.ml ?? 0) / 1000, dispenses: Number(x.n) }));
      }
      const perDay = new Map<string, { day: string; ml: number; dispenses: number }>();
      for (const x of await localBuckets('at', { timeZone, bucket: 'day', from, to }, litres)) {
        const day = localDay(x.start, timeZone);
        const sum = perDay.get(day) ?? { day, ml: 0, dispenses: 0 };
        sum.ml += Number(x.ml ?? 0);
        sum.dispenses += Number(x.n);
        perDay.set(day, sum);
      }
      return [...perDay.values()]
        .sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0))
        .map((x) => ({ day: x.day, litres: x.ml / 1000, dispenses: x.dispenses }));
    };
    let codes = db
      .selectFrom('water_verifications')
      .select(['code', 'approved', (eb) => eb.fn.countAll<string | number>().as('n')])
      .where('at', '>=', from)
      .where('at', '<', to)
      .groupBy(['code', 'approved'])
      .orderBy('code');
    if (q.tenantId !== null) codes = codes.where('tenant_id', '=', q.tenantId);
    const [l, c, r] = await Promise.all([
      litresPerDay(),
      codes.execute(),
      revenueByPlan({ tenantId: q.tenantId, from, to }),
    ]);
    return {
      from,
      to,
      litresPerDay: l,
      verificationsByCode: c.map((x) => ({
        code: x.code,
        reason: reasonOf(x.code),
        approved: Number(x.approved) === 1,
        count: Number(x.n),
      })),
      revenueByPlan: r,
      ...(timeZone !== undefined ? { timeZone } : {}),
    };
  }

  /** Every water kiosk that has sent a heartbeat, read in pages by id (a fleet may be large). */
  async function heardKiosks() {
    const kiosks: {
      id: string;
      tenant_id: string;
      name: string;
      taps: string;
      last_heartbeat_at: string | null;
    }[] = [];
    for (let after: string | undefined; ;) {
      let page = db
        .selectFrom('water_kiosks as k')
        .innerJoin('machines as m', 'm.id', 'k.machine_id')
        .select(['m.id', 'm.tenant_id', 'm.name', 'k.taps', 'k.last_heartbeat_at'])
        .where('m.kind', '=', 'water')
        .where('k.last_heartbeat_at', 'is not', null)
        .orderBy('m.id')
        .limit(KIOSK_PAGE);
      if (after !== undefined) page = page.where('m.id', '>', after);
      const rows = await page.execute();
      kiosks.push(...rows);
      if (rows.length < KIOSK_PAGE) return kiosks;
      after = rows[rows.length - 1]!.id;
    }
  }

  /**
   * Silent kiosks, faulty taps, payments stuck PENDING and negative water credit, now: at most
   * CONDITIONS_PER_KIND of each kind, each kind listed after its `resume` key (the `resume` of the
   * sweep before). A kind with more than that standing is listed a window at a time, sweep after
   * sweep, so every condition gets its turn. `capped` names the kinds not listed whole, whose
   * unlisted alerts may still stand and so must not be resolved.
   */
  async function alertConditions(
    now: number,
    paymentStuckGraceMs: number,
    resume: AlertResume = {},
  ): Promise<{ conditions: AlertCondition[]; capped: WaterAlertKind[]; resume: AlertResume }> {
    const silentBefore = new Date(now - WATER_KIOSK_SILENT_MS).toISOString();
    const stuckBefore = new Date(now - paymentStuckGraceMs).toISOString();
    let negativeQuery = db
      .selectFrom('ledger_accounts as a')
      .leftJoin('customers as c', 'c.id', 'a.owner_id')
      .select(['a.id', 'a.tenant_id', 'a.owner_id', 'a.balance', 'c.account_id', 'c.phone'])
      .where('a.kind', '=', 'water_credit')
      .where('a.owner_type', '=', 'customer')
      .where('a.balance', '<', 0)
      .orderBy('a.id')
      .limit(CONDITIONS_PER_KIND);
    if (resume.WATER_CREDIT_NEGATIVE !== undefined)
      negativeQuery = negativeQuery.where('a.id', '>', resume.WATER_CREDIT_NEGATIVE);
    const [kiosks, stuck, negative] = await Promise.all([
      heardKiosks(),
      deps.payments.stuckPending(stuckBefore, CONDITIONS_PER_KIND, resume.PAYMENT_STUCK),
      negativeQuery.execute(),
    ]);
    const byKind = new Map<WaterAlertKind, { key: string; condition: AlertCondition }[]>(
      WATER_ALERT_KINDS.map((k) => [k, []]),
    );
    const add = (key: string, c: AlertCondition) => byKind.get(c.kind)!.push({ key, condition: c });
    for (const k of kiosks) {
      const label = k.name === k.id ? k.id : `${k.name} (${k.id})`;
      if (k.last_heartbeat_at! < silentBefore) {
        add(k.id, {
          tenantId: k.tenant_id,
          kind: 'WATER_KIOSK_SILENT',
          subjectType: 'machine',
          subjectId: k.id,
          message: `Water kiosk ${label} has sent no heartbeat since ${k.last_heartbeat_at}`,
        });
      }
      for (const t of parseTaps(k.taps)) {
        if (!t.fault) continue;
        add(`${k.id}/${t.tap}`, {
          tenantId: k.tenant_id,
          kind: 'WATER_TAP_FAULT',
          subjectType: 'water_tap',
          subjectId: `${k.id}/${t.tap}`,
          message: `Tap ${t.tap} of water kiosk ${label} reports ${t.status}`,
        });
      }
    }
    for (const p of stuck) {
      add(p.id, {
        tenantId: p.tenant_id,
        kind: 'PAYMENT_STUCK',
        subjectType: 'payment',
        subjectId: p.id,
        message:
          `Payment ${p.id} (${p.purpose}, ${p.method}, ${readableAmount(Number(p.amount_minor), p.currency)}) ` +
          `is still PENDING ${p.expires_at ? `after its expiry at ${p.expires_at}` : `since ${p.created_at}`}`,
      });
    }
    for (const a of negative) {
      add(a.id, {
        tenantId: a.tenant_id,
        kind: 'WATER_CREDIT_NEGATIVE',
        subjectType: 'customer',
        subjectId: a.owner_id,
        message: `Customer ${a.account_id ?? a.owner_id} (${a.phone ?? 'unknown phone'}) has ${(Number(a.balance) / 1000).toFixed(1)} L of water credit (water dispensed offline or beyond a hold)`,
      });
    }
    const out: AlertCondition[] = [];
    const capped: WaterAlertKind[] = [];
    const next: AlertResume = {};
    for (const [kind, all] of byKind) {
      // The kiosk kinds are found here, the others are already a window read after their key.
      const from = resume[kind];
      const listed =
        kind === 'WATER_KIOSK_SILENT' || kind === 'WATER_TAP_FAULT'
          ? all
              .sort((a, b) => cmp(a.key, b.key))
              .filter((c) => from === undefined || c.key > from)
              .slice(0, CONDITIONS_PER_KIND)
          : all;
      out.push(...listed.map((c) => c.condition));
      // A full window: more may follow, the next sweep goes on from its last. A window that began
      // after a key missed those before it (the next sweep starts again from the first).
      if (listed.length >= CONDITIONS_PER_KIND) next[kind] = listed[listed.length - 1]!.key;
      if (listed.length >= CONDITIONS_PER_KIND || from !== undefined) capped.push(kind);
    }
    return { conditions: out, capped, resume: next };
  }

  return { overview, stats, alertConditions };
}

function exponentOf(currency: string): number {
  try {
    return currencyExponent(currency);
  } catch {
    return 2;
  }
}

export type WaterStatsService = ReturnType<typeof createWaterStatsService>;
