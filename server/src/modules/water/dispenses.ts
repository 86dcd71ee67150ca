// What kiosks report they dispensed (CONTRACTS §11): a settlement of an approval's hold, the
// SD-card log uploaded after an outage, and holds released when no settlement came in time.
// Each kiosk transaction id counts once per kiosk (a unique key on water_dispenses), and water
// that already left a kiosk is always recorded: a credit may go negative then, and is flagged.
import { LIVE_EVENTS } from '@kioskhub/protocol';
import { inGroup } from '../../platform/db/group-commit.js';
import { newId, type Db, type Executor } from '../../platform/db/database.js';
import { isUniqueViolation } from '../../platform/db/errors.js';
import type { CustomerRow, WaterDispenseRow } from '../../platform/db/schema.js';
import { AppError, notFound } from '../../platform/errors.js';
import { enqueueOutbox, enqueueOutboxJobs, outboxJob } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CustomersService } from '../customers/customers.service.js';
import { subscriptionCovers } from '../customers/subscription-run.js';
import type { WaterNotices } from '../water-messaging/notices.js';
import { siteTimeZone } from '../catalog/sites.service.js';
import { offsetMs } from '../reporting/local-buckets.js';
import { usedTodayMl } from './usage.js';
import type { Kiosk } from './verification.js';
import type { WaterLedger } from './water-ledger.js';
import type { WaterRepo } from './water.repo.js';

export interface DispensesDeps {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  repo: WaterRepo;
  water: WaterLedger;
  customers: Pick<CustomersService, 'get' | 'findByPhone' | 'lockForUpdate'>;
  notices: Pick<WaterNotices, 'lowCredit'>;
  alerts: Pick<AlertsService, 'raise'>;
  now?: () => number;
}

export interface Settlement {
  authorizationId: string;
  dispensedMl: number;
  kioskTxnId: string;
  tap?: number | undefined;
}

export interface BatchItem {
  kioskTxnId: string;
  userId: string;
  dispensedMl: number;
  at: string | number;
  tap?: number | undefined;
  authorizationId?: string | undefined;
}

export type BatchResult = { kioskTxnId: string; status: 'applied' | 'duplicate' | 'rejected'; code?: string };

/** How a kiosk transaction id already used is judged: the same water again, or another use of it. */
/** `hint`: what the kiosk should do instead (default: send a new kioskTxnId). */
type Seen = { duplicate: true; creditsMl: number } | { conflict: string; hint?: string };

/** Thrown when a concurrent request took the kiosk transaction id first: judged against it instead. */
class TxnIdTaken extends Error {}

const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * A kiosk time: ISO text, or Unix seconds or milliseconds (as a number or digits). ISO text must
 * name a real day and time (30 February is no time) in years 0000–9999 once in UTC. Without a UTC
 * offset it is the wall clock of `timeZone` (the kiosk's site's zone), never the server host's.
 */
export function parseKioskTime(value: string | number, timeZone = 'UTC'): number | null {
  const n = typeof value === 'number' ? value : /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (Number.isFinite(n)) {
    if (n <= 0 || !Number.isSafeInteger(Math.trunc(n))) return null;
    return n < 100_000_000_000 ? Math.trunc(n * 1000) : Math.trunc(n);
  }
  // ISO 8601 only: Date.parse alone reads almost anything ("-5" is a date in 2001).
  const m = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (!m) return null;
  const part = (i: number): number => Number(m[i] ?? 0);
  const [year, month, day, hour, minute, second] = [part(1), part(2), part(3), part(4), part(5), part(6)];
  const fraction = Number(`0.${m[7] ?? '0'}`);
  const wall = Date.UTC(year, month - 1, day, hour, minute, second) + Math.floor(fraction * 1000);
  const check = new Date(wall);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  )
    return null;
  const zone = m[8];
  let ms: number;
  if (zone === undefined) {
    // The wall clock of the zone: its offset at that moment (twice, across a DST change).
    const first = wall - offsetMs(wall, timeZone);
    ms = wall - offsetMs(first, timeZone);
  } else if (zone.toUpperCase() === 'Z') ms = wall;
  else {
    const digits = zone.slice(1).replace(':', '');
    const [oh, om] = [Number(digits.slice(0, 2)), Number(digits.slice(2, 4) || 0)];
    if (oh > 23 || om > 59) return null;
    ms = wall - (zone[0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  if (Number.isNaN(ms)) return null;
  const utcYear = new Date(ms).getUTCFullYear();
  return utcYear >= 0 && utcYear <= 9999 ? ms : null;
}

export function createDispenses(deps: DispensesDeps) {
  const now = deps.now ?? Date.now;
  const iso = () => new Date(now()).toISOString();

  async function lock(ex: Executor, id: string): Promise<WaterDispenseRow | undefined> {
    let q = ex.selectFrom('water_dispenses').selectAll().where('id', '=', id);
    if (deps.dialect === 'postgres') q = q.forUpdate();
    return q.executeTakeFirst();
  }

  /** The customer's row; on PostgreSQL locked, so a verification deciding on their credit waits for this change. */
  async function customerForCredit(ex: Executor, tenantId: string, customerId: string): Promise<CustomerRow> {
    if (deps.dialect !== 'postgres') return deps.customers.get(tenantId, customerId, ex);
    return (
      (await deps.customers.lockForUpdate(customerId, ex)) ?? deps.customers.get(tenantId, customerId, ex)
    );
  }

  function announce(ex: Executor, kiosk: Kiosk, customerId: string, data: Record<string, unknown>) {
    const rooms = [`tenant:${kiosk.tenantId}`, `site:${kiosk.siteId}`];
    // Both in one statement.
    return enqueueOutboxJobs(ex, [
      outboxJob('live', {
        tenantId: kiosk.tenantId,
        rooms,
        event: LIVE_EVENTS.waterDispensed,
        data: { tenantId: kiosk.tenantId, kioskId: kiosk.machineId, customerId, ...data },
      }),
      outboxJob('live', {
        tenantId: kiosk.tenantId,
        rooms,
        event: LIVE_EVENTS.customerUpdated,
        data: { tenantId: kiosk.tenantId, customerId, reason: 'water_dispensed' },
      }),
    ]);
  }

  /** Settles a HELD (or expired, RELEASED) approval with what the kiosk actually dispensed. */
  async function settleRow(
    ex: Executor,
    kiosk: Kiosk,
    d: WaterDispenseRow,
    s: { dispensedMl: number; kioskTxnId: string; tap: number | null; actor: string },
  ): Promise<number> {
    const customerId = d.customer_id;
    const held = d.status === 'HELD' ? Number(d.held_ml) : 0;
    const byCredit = d.funding === 'credit';
    // Only water paid from credit moves the ledger or may warn of low credit: only then is the
    // customer's row read (and locked before the credit is read).
    const customer = byCredit ? await customerForCredit(ex, kiosk.tenantId, customerId) : undefined;
    const creditBefore = await deps.water.creditMl(ex, kiosk.tenantId, customerId);
    // Credit and holds, read after the customer's lock: takers of this customer's water cross the
    // low-credit threshold in turn.
    const balanceBefore = customer
      ? creditBefore + (await deps.water.heldMl(ex, kiosk.tenantId, customerId))
      : 0;
    let flagged = s.dispensedMl > Number(d.held_ml);
    if (customer) {
      if (held > 0) {
        await deps.water.settleHold(ex, kiosk.tenantId, customer.id, {
          heldMl: held,
          takenMl: s.dispensedMl,
          dispenseId: d.id,
        });
      }
      const beyond = s.dispensedMl - held;
      if (beyond > 0) {
        const after = await deps.water.takeCredit(
          ex,
          kiosk.tenantId,
          customer.id,
          beyond,
          d.id,
          'water dispensed beyond the hold',
        );
        if (after.afterMl < 0) flagged = true;
      }
    }
    const updated = await deps.repo.settleIfStatus(ex, {
      id: d.id,
      from: d.status,
      dispensedMl: s.dispensedMl,
      kioskTxnId: s.kioskTxnId,
      tap: s.tap,
      flagged: flagged ? 1 : 0,
      settledAt: iso(),
    });
    if (!updated) throw new AppError('CONFLICT', `authorization ${d.id} changed meanwhile; send it again`);
    // A subscription's water moves no credit: the balance read above is still the balance.
    const creditAfter = customer ? await deps.water.creditMl(ex, kiosk.tenantId, customerId) : creditBefore;
    if (customer) {
      await deps.notices.lowCredit(ex, customer, {
        beforeMl: balanceBefore,
        afterMl: balanceBefore - s.dispensedMl,
        creditMl: creditAfter,
      });
    }
    await recordAudit(ex, {
      tenantId: kiosk.tenantId,
      actor: s.actor,
      action: flagged ? 'water.dispensed_flagged' : 'water.dispensed',
      subjectType: 'customer',
      subjectId: customerId,
      before: {
        authorizationId: d.id,
        status: d.status,
        heldMl: Number(d.held_ml),
        creditsMl: creditBefore + held,
      },
      after: { dispensedMl: s.dispensedMl, kioskTxnId: s.kioskTxnId, creditsMl: creditAfter, flagged },
    });
    await announce(ex, kiosk, customerId, {
      authorizationId: d.id,
      dispensedMl: s.dispensedMl,
      tap: s.tap,
      flagged,
    });
    return creditAfter;
  }

  /** Water the kiosk dispensed without an approval the server knows (its offline log). */
  async function recordOffline(
    ex: Executor,
    kiosk: Kiosk,
    customer: CustomerRow,
    item: BatchItem,
  ): Promise<boolean> {
    if (deps.dialect === 'postgres') {
      // Locked before anything is read: a verification racing this upload sees its result.
      customer = (await deps.customers.lockForUpdate(customer.id, ex)) ?? customer;
    }
    const parsed = parseKioskTime(item.at, await siteTimeZone(ex, kiosk.tenantId, kiosk.siteId));
    // A kiosk clock a day ahead, or a day before the customer existed (never set: 1970), is not
    // trusted: the water is recorded now, flagged, so no subscription long ended pays for it.
    const earliest = Date.parse(customer.created_at) - 86_400_000;
    const trusted = parsed !== null && parsed <= now() + 86_400_000 && parsed >= earliest;
    const atMs = trusted ? parsed : now();
    const at = new Date(atMs);
    // Paid by the subscription only inside it: water dated before it was bought is not its.
    const funding = subscriptionCovers(customer, atMs) ? 'subscription' : 'credit';
    let flagged = parsed === null || parsed !== atMs;
    const id = newId();
    const limit = customer.daily_limit_ml === null ? null : Number(customer.daily_limit_ml);
    if (
      limit !== null &&
      (await usedTodayMl(ex, kiosk.tenantId, customer.id, kiosk.siteId, at)) + item.dispensedMl > limit
    )
      flagged = true;
    const inserted = await deps.repo.insertDispense(ex, {
      id,
      tenant_id: kiosk.tenantId,
      kiosk_id: kiosk.machineId,
      customer_id: customer.id,
      tap: item.tap ?? null,
      held_ml: 0,
      dispensed_ml: item.dispensedMl,
      status: 'OFFLINE',
      request_key: null,
      kiosk_txn_id: item.kioskTxnId,
      flagged: 0,
      at: at.toISOString(),
      hold_expires_at: null,
      settled_at: iso(),
      funding,
    });
    if (!inserted) return false;
    let credit = { beforeMl: 0, afterMl: 0 };
    if (funding === 'credit') {
      const balanceBefore = await deps.water.balanceMl(ex, kiosk.tenantId, customer.id);
      credit = await deps.water.takeCredit(
        ex,
        kiosk.tenantId,
        customer.id,
        item.dispensedMl,
        id,
        'water dispensed offline',
      );
      if (credit.afterMl < 0) flagged = true;
      await deps.notices.lowCredit(ex, customer, {
        beforeMl: balanceBefore,
        afterMl: balanceBefore - item.dispensedMl,
        creditMl: credit.afterMl,
      });
    }
    if (flagged) await deps.repo.updateIfStatus(ex, id, ['OFFLINE'], { flagged: 1 });
    await recordAudit(ex, {
      tenantId: kiosk.tenantId,
      actor: `machine:${kiosk.machineId}`,
      action: flagged ? 'water.offline_dispense_flagged' : 'water.offline_dispense',
      subjectType: 'customer',
      subjectId: customer.id,
      ...(funding === 'credit' ? { before: { creditsMl: credit.beforeMl } } : {}),
      after: {
        dispenseId: id,
        dispensedMl: item.dispensedMl,
        kioskTxnId: item.kioskTxnId,
        at: at.toISOString(),
        funding,
        flagged,
      },
    });
    await announce(ex, kiosk, customer.id, {
      dispensedMl: item.dispensedMl,
      tap: item.tap ?? null,
      flagged,
      offline: true,
    });
    return true;
  }

  /**
   * Runs `work` in a transaction (group-committed on SQLite) unless this kiosk used `kioskTxnId`
   * already: then `judge` tells the same water sent again (a duplicate) from another use of the id
   * (a conflict, alerted to staff), even when the earlier use committed concurrently.
   */
  async function once<T>(
    kiosk: Kiosk,
    kioskTxnId: string,
    work: (tx: Executor) => Promise<T>,
    judge: (tx: Executor, earlier: WaterDispenseRow) => Promise<Seen | T>,
  ): Promise<T | Seen> {
    const run = () =>
      inGroup(
        deps.db,
        async (tx): Promise<T | Seen> => {
          const earlier = await deps.repo.byKioskTxn(tx, kiosk.machineId, kioskTxnId);
          const seen = earlier ? await judge(tx, earlier) : await work(tx);
          if (typeof seen === 'object' && seen !== null && 'conflict' in seen) {
            await deps.alerts.raise(tx, {
              tenantId: kiosk.tenantId,
              kind: 'WATER_TXN_REUSED',
              subjectType: 'machine',
              subjectId: kiosk.machineId,
              message: `Kiosk ${kiosk.machineId} sent kioskTxnId ${kioskTxnId} ${seen.conflict}; nothing was charged for it`,
            });
          }
          return seen;
        },
        { replayable: true },
      );
    try {
      return await run();
    } catch (err) {
      // The same id committed meanwhile by another request: judge this one against it.
      if (
        (err instanceof TxnIdTaken || isUniqueViolation(err)) &&
        (await deps.repo.byKioskTxn(deps.db, kiosk.machineId, kioskTxnId))
      ) {
        return run();
      }
      throw err;
    }
  }

  /**
   * A settlement sent again under its kioskTxnId with another `dispensedMl` than the one applied:
   * not a duplicate (the difference would go unbilled, or be billed twice), and not to be applied
   * again (the authorization is settled). The first amount stands; staff are told to put it right.
   */
  const otherAmount = (settled: WaterDispenseRow, s: Settlement): Seen | undefined =>
    Number(settled.dispensed_ml) === s.dispensedMl
      ? undefined
      : {
          conflict: `used already to settle authorization ${settled.id} with ${String(settled.dispensed_ml)} ml, not ${s.dispensedMl} ml`,
          hint: `the first amount stands (staff are told to put the difference right); do not send it again`,
        };

  const creditOf = (ex: Executor, kiosk: Kiosk, customerId: string) =>
    deps.water.creditMl(ex, kiosk.tenantId, customerId);

  return {
    parseKioskTime,

    async settle(kiosk: Kiosk, s: Settlement): Promise<{ ok: true; duplicate?: true; creditsMl: number }> {
      const result = await once(
        kiosk,
        s.kioskTxnId,
        async (tx) => {
          const d = await deps.repo.byIdLocked(tx, deps.dialect, kiosk.tenantId, s.authorizationId);
          if (!d || d.kiosk_id !== kiosk.machineId) throw notFound('authorization', s.authorizationId);
          // The same settlement, sent again while the first was still being applied (it waited on
          // this row's lock, and the first has committed since): a duplicate, not a conflict.
          if (d.status === 'SETTLED' && d.kiosk_txn_id === s.kioskTxnId)
            return (
              otherAmount(d, s) ?? {
                duplicate: true as const,
                creditsMl: await creditOf(tx, kiosk, d.customer_id),
              }
            );
          if (d.status !== 'HELD' && d.status !== 'RELEASED') {
            throw new AppError(
              'INVALID_STATE',
              `authorization ${d.id} was settled already with another kioskTxnId`,
            );
          }
          const tap = s.tap ?? null;
          return {
            creditsMl: await settleRow(tx, kiosk, d, {
              dispensedMl: s.dispensedMl,
              kioskTxnId: s.kioskTxnId,
              tap,
              actor: `machine:${kiosk.machineId}`,
            }),
          };
        },
        async (tx, earlier): Promise<Seen> => {
          const d = await deps.repo.byIdLocked(tx, deps.dialect, kiosk.tenantId, s.authorizationId);
          if (!d || d.kiosk_id !== kiosk.machineId) throw notFound('authorization', s.authorizationId);
          // This settlement again, but with another amount: the first one stands, staff are told.
          if (earlier.id === d.id) {
            const other = otherAmount(earlier, s);
            if (other) return other;
          }
          // The same water: this settlement, or the kiosk's log of it uploaded first without the
          // authorization (offline water of the same customer and amount). Another authorization
          // settled under this id is other water, whatever its amount: this one stays open.
          const same =
            earlier.id === d.id ||
            (earlier.status === 'OFFLINE' &&
              earlier.customer_id === d.customer_id &&
              Number(earlier.dispensed_ml) === s.dispensedMl);
          if (same) return { duplicate: true, creditsMl: await creditOf(tx, kiosk, earlier.customer_id) };
          return { conflict: `used already for other water than authorization ${d.id}` };
        },
      );
      if ('conflict' in result) {
        throw new AppError(
          'CONFLICT',
          `kioskTxnId ${s.kioskTxnId} was ${result.conflict}; nothing was charged: ${result.hint ?? 'send a new kioskTxnId'}`,
        );
      }
      if ('duplicate' in result) return { ok: true, duplicate: true, creditsMl: result.creditsMl };
      return { ok: true, creditsMl: result.creditsMl };
    },

    /** The kiosk's SD-card log: each item applied once, in its own transaction. */
    async batch(kiosk: Kiosk, items: BatchItem[]): Promise<BatchResult[]> {
      const results: BatchResult[] = [];
      for (const item of items) {
        /**
         * The item names authorization `d`, settled already (online or by an earlier upload): the
         * same water again is a duplicate; another amount or customer is rejected, and staff told.
         */
        const settledAlready = async (
          tx: Executor,
          d: WaterDispenseRow,
          customer: { id: string } | undefined,
        ): Promise<BatchResult> => {
          if (Number(d.dispensed_ml) === item.dispensedMl && (!customer || customer.id === d.customer_id))
            return { kioskTxnId: item.kioskTxnId, status: 'duplicate' };
          await deps.alerts.raise(tx, {
            tenantId: kiosk.tenantId,
            kind: 'WATER_ALREADY_SETTLED',
            subjectType: 'machine',
            subjectId: kiosk.machineId,
            message: `Kiosk ${kiosk.machineId} logged ${item.dispensedMl} ml (txn ${item.kioskTxnId}) for authorization ${d.id}, settled already with ${String(d.dispensed_ml)} ml; nothing was charged for it`,
          });
          return { kioskTxnId: item.kioskTxnId, status: 'rejected', code: 'ALREADY_SETTLED' };
        };
        const result = await once(
          kiosk,
          item.kioskTxnId,
          async (tx): Promise<BatchResult> => {
            const applied: BatchResult = { kioskTxnId: item.kioskTxnId, status: 'applied' };
            const customer = await deps.customers.findByPhone(kiosk.tenantId, item.userId, tx);
            if (item.authorizationId) {
              const found = await lock(tx, item.authorizationId);
              const d =
                found && found.tenant_id === kiosk.tenantId && found.kiosk_id === kiosk.machineId
                  ? found
                  : undefined;
              if (d && (d.status === 'SETTLED' || d.status === 'OFFLINE'))
                return settledAlready(tx, d, customer);
              if (
                d &&
                (d.status === 'HELD' || d.status === 'RELEASED') &&
                (!customer || customer.id === d.customer_id)
              ) {
                await settleRow(tx, kiosk, d, {
                  dispensedMl: item.dispensedMl,
                  kioskTxnId: item.kioskTxnId,
                  tap: item.tap ?? null,
                  actor: `machine:${kiosk.machineId}`,
                });
                return applied;
              }
            }
            if (!customer) {
              // Water nobody can be charged for is still never silent: staff see it.
              await deps.alerts.raise(tx, {
                tenantId: kiosk.tenantId,
                kind: 'WATER_UNKNOWN_CUSTOMER',
                subjectType: 'machine',
                subjectId: kiosk.machineId,
                message: `Kiosk ${kiosk.machineId} logged ${item.dispensedMl} ml (txn ${item.kioskTxnId}) for an unknown customer`,
              });
              return { kioskTxnId: item.kioskTxnId, status: 'rejected', code: 'UNKNOWN_CUSTOMER' };
            }
            if (await recordOffline(tx, kiosk, customer, item)) return applied;
            throw new TxnIdTaken(`kioskTxnId ${item.kioskTxnId} was taken meanwhile`);
          },
          async (tx, earlier): Promise<Seen | BatchResult> => {
            const customer = await deps.customers.findByPhone(kiosk.tenantId, item.userId, tx);
            // The authorization it names, settled under this id: the same water if the same amount
            // (and customer), else settled already with another (never charged twice, staff told).
            if (earlier.id === item.authorizationId) return settledAlready(tx, earlier, customer);
            // An item naming no authorization: the same water is the same customer and amount.
            const same =
              item.authorizationId === undefined &&
              customer !== undefined &&
              earlier.customer_id === customer.id &&
              Number(earlier.dispensed_ml) === item.dispensedMl;
            // A batch answers no credit.
            if (same) return { duplicate: true, creditsMl: 0 };
            return { conflict: `used already for other water than this item's ${item.dispensedMl} ml` };
          },
        );
        if ('conflict' in result)
          results.push({ kioskTxnId: item.kioskTxnId, status: 'rejected', code: 'KIOSK_TXN_REUSED' });
        else if ('duplicate' in result) results.push({ kioskTxnId: item.kioskTxnId, status: 'duplicate' });
        else results.push(result);
      }
      return results;
    },

    /** The job `water_hold_expire`: an approval nobody settled gives its water back. */
    async expireHold(job: { tenantId: string; dispenseId: string }): Promise<void> {
      await deps.db.transaction().execute(async (tx) => {
        const d = await lock(tx, job.dispenseId);
        if (!d || d.tenant_id !== job.tenantId || d.status !== 'HELD') return;
        if (d.hold_expires_at !== null && Date.parse(d.hold_expires_at) > now()) {
          await enqueueOutbox(tx, 'water_hold_expire', job, { runAt: d.hold_expires_at });
          return;
        }
        if (!(await deps.repo.updateIfStatus(tx, d.id, ['HELD'], { status: 'RELEASED', settled_at: iso() })))
          return;
        if (d.funding === 'credit') {
          await deps.water.settleHold(tx, d.tenant_id, d.customer_id, {
            heldMl: Number(d.held_ml),
            takenMl: 0,
            dispenseId: d.id,
          });
        }
        await recordAudit(tx, {
          tenantId: d.tenant_id,
          actor: 'system',
          action: 'water.hold_released',
          subjectType: 'customer',
          subjectId: d.customer_id,
          after: { authorizationId: d.id, releasedMl: Number(d.held_ml) },
        });
        await enqueueOutbox(tx, 'live', {
          tenantId: d.tenant_id,
          rooms: [`tenant:${d.tenant_id}`],
          event: LIVE_EVENTS.customerUpdated,
          data: { tenantId: d.tenant_id, customerId: d.customer_id, reason: 'water_hold_released' },
        });
      });
    },
  };
}

export type Dispenses = ReturnType<typeof createDispenses>;
