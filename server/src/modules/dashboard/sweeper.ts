// Background work of the dashboard, run every DASHBOARD_SWEEP_MS: a sample of machines online
// per site (for the charts), and alerts for machines offline longer than MACHINE_OFFLINE_ALERT_MS
// (once per outage) and for failed or unanswered dispenses (once per order). A mark row written
// in the same transaction as the alert makes each fire once, across restarts and processes. It
// also deletes the orders export's one-time links once spent or expired (export-links.ts).
import type { Logger } from 'pino';
import { nowIso, type Db, type Executor } from '../../platform/db/database.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import type { CommandsService } from '../commands/commands.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import { deleteSpentExportLinks } from './export-links.js';

const SAMPLE_RETENTION_MS = 90 * 86_400_000;
/** Failed dispenses older than this when first seen (e.g. after a long stop) raise nothing. */
const DISPENSE_LOOKBACK_MS = 86_400_000;
/** Alerts raised per kind and sweep at most; the rest wait for the next sweep. */
const ALERTS_PER_SWEEP = 500;
/** Subject ids per marks query (one parameter each). */
const MARKS_CHUNK = 500;

export interface SweepResult {
  sampledSites: number;
  offlineAlerts: number;
  dispenseAlerts: number;
  /** One-time export links deleted (spent or expired). */
  exportLinksDeleted: number;
}

/**
 * Records that an order's dispense needs no alert any more (an operator decided its review), so a
 * sweep that has not seen the failure yet never raises one after the decision.
 */
export async function markDispenseAnswered(ex: Executor, orderId: string, tenantId: string): Promise<void> {
  await ex
    .insertInto('dashboard_alert_marks')
    .values({ kind: 'DISPENSE', subject_id: orderId, mark: '', tenant_id: tenantId, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['kind', 'subject_id', 'mark']).doNothing())
    .execute();
}

export function createDashboardSweeper(deps: {
  db: Db;
  alerts: Pick<AlertsService, 'raise'>;
  machines: Pick<MachinesService, 'statusSnapshot' | 'offlineSince'>;
  commands: Pick<CommandsService, 'unsuccessfulSince'>;
  logger: Logger;
  everyMs: number;
  offlineAfterMs: number;
  afterCommit(): void;
}) {
  const { db } = deps;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  /** Inserts the mark; true when this call was the first (the alert is to be raised). */
  async function mark(
    ex: Executor,
    kind: string,
    subjectId: string,
    markValue: string,
    tenantId: string,
  ): Promise<boolean> {
    const row = await ex
      .insertInto('dashboard_alert_marks')
      .values({ kind, subject_id: subjectId, mark: markValue, tenant_id: tenantId, created_at: nowIso() })
      .onConflict((oc) => oc.columns(['kind', 'subject_id', 'mark']).doNothing())
      .returning('kind')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** The current marks (subject id → when its alert was raised) of these subjects. */
  async function marksOf(kind: string, subjectIds: readonly string[]): Promise<Map<string, string>> {
    const marks = new Map<string, string>();
    for (let i = 0; i < subjectIds.length; i += MARKS_CHUNK) {
      const rows = await db
        .selectFrom('dashboard_alert_marks')
        .select(['subject_id', 'created_at'])
        .where('kind', '=', kind)
        .where('mark', '=', '')
        .where('subject_id', 'in', subjectIds.slice(i, i + MARKS_CHUNK))
        .execute();
      for (const r of rows) marks.set(r.subject_id, r.created_at);
    }
    return marks;
  }

  async function sample(at: string): Promise<number> {
    const sites = new Map<string, { tenant_id: string; site_id: string; online: string[]; total: number }>();
    for (const m of await deps.machines.statusSnapshot()) {
      const key = `${m.tenant_id}|${m.site_id}`;
      const site = sites.get(key) ?? { tenant_id: m.tenant_id, site_id: m.site_id, online: [], total: 0 };
      site.total++;
      if (m.status !== 'OFFLINE') site.online.push(m.id);
      sites.set(key, site);
    }
    await db.transaction().execute(async (tx) => {
      for (const s of sites.values()) {
        await tx
          .insertInto('machine_online_samples')
          .values({
            tenant_id: s.tenant_id,
            site_id: s.site_id,
            at,
            online: s.online.length,
            total: s.total,
            online_ids: JSON.stringify(s.online),
          })
          .onConflict((oc) => oc.columns(['tenant_id', 'site_id', 'at']).doNothing())
          .execute();
      }
      await tx
        .deleteFrom('machine_online_samples')
        .where('at', '<', new Date(Date.parse(at) - SAMPLE_RETENTION_MS).toISOString())
        .execute();
    });
    return sites.size;
  }

  // One mark row per machine, stamped when its alert was raised. A machine seen after that
  // stamp has come back since, so its next long silence is a new outage. (Keyed on the stamp,
  // not on last_seen_at: batched last-seen writes may still land after the machine went offline.)
  async function offlineAlerts(now: number): Promise<number> {
    const cutoff = new Date(now - deps.offlineAfterMs).toISOString();
    const offline = await deps.machines.offlineSince(cutoff);
    const alerted = await marksOf(
      'MACHINE_OFFLINE',
      offline.map((m) => m.id),
    );
    // Not alerted yet, or alerted before its last sighting (ISO UTC text compares as time).
    const candidates = offline
      .map((m) => ({ ...m, alerted_at: alerted.get(m.id) ?? null }))
      .filter((c) => c.alerted_at === null || c.alerted_at < c.last_seen_at)
      .slice(0, ALERTS_PER_SWEEP);
    let raised = 0;
    for (const c of candidates) {
      const lastSeen = c.last_seen_at;
      await db.transaction().execute(async (tx) => {
        const stamp = nowIso();
        // Claim this outage: a fresh mark, or a stamp older than the machine's last sighting.
        const claimed =
          c.alerted_at === null
            ? await mark(tx, 'MACHINE_OFFLINE', c.id, '', c.tenant_id)
            : Number(
                (
                  await tx
                    .updateTable('dashboard_alert_marks')
                    .set({ created_at: stamp })
                    .where('kind', '=', 'MACHINE_OFFLINE')
                    .where('subject_id', '=', c.id)
                    .where('mark', '=', '')
                    .where('created_at', '<', lastSeen)
                    .executeTakeFirst()
                ).numUpdatedRows,
              ) === 1;
        if (!claimed) return;
        const minutes = Math.floor((now - Date.parse(lastSeen)) / 60_000);
        await deps.alerts.raise(tx, {
          tenantId: c.tenant_id,
          kind: 'MACHINE_OFFLINE',
          subjectType: 'machine',
          subjectId: c.id,
          message: `Machine ${c.name === c.id ? c.id : `${c.name} (${c.id})`} has been offline since ${lastSeen} (${minutes} min)`,
        });
        raised++;
      });
    }
    return raised;
  }

  async function dispenseAlerts(now: number): Promise<number> {
    const since = new Date(now - DISPENSE_LOOKBACK_MS).toISOString();
    const unsuccessful = await deps.commands.unsuccessfulSince(since);
    const alerted = await marksOf(
      'DISPENSE',
      unsuccessful.map((c) => c.order_id),
    );
    const candidates = unsuccessful.filter((c) => !alerted.has(c.order_id)).slice(0, ALERTS_PER_SWEEP);
    let raised = 0;
    for (const c of candidates) {
      await db.transaction().execute(async (tx) => {
        if (!(await mark(tx, 'DISPENSE', c.order_id, '', c.tenant_id))) return;
        const noResult = c.status === 'NEEDS_REVIEW';
        await deps.alerts.raise(tx, {
          tenantId: c.tenant_id,
          kind: noResult ? 'DISPENSE_NO_RESULT' : 'DISPENSE_FAILED',
          subjectType: 'order',
          subjectId: c.order_id,
          message: noResult
            ? `Machine ${c.machine_id} never reported a result for order ${c.order_id}: check it and resolve the order in Needs review`
            : `Machine ${c.machine_id} failed to dispense paid order ${c.order_id} (${c.failure_code ?? 'DISPENSE_FAILED'})`,
        });
        raised++;
      });
    }
    return raised;
  }

  async function sweepOnce(now = Date.now()): Promise<SweepResult> {
    const sampledSites = await sample(new Date(now).toISOString());
    const offline = await offlineAlerts(now);
    const dispense = await dispenseAlerts(now);
    if (offline + dispense > 0) deps.afterCommit();
    const exportLinksDeleted = await deleteSpentExportLinks(db, new Date(now).toISOString());
    return { sampledSites, offlineAlerts: offline, dispenseAlerts: dispense, exportLinksDeleted };
  }

  let busy = false;
  function tick(): void {
    if (busy) return; // a slow sweep is not stacked up behind itself
    busy = true;
    running = sweepOnce()
      .catch((err: unknown) => deps.logger.warn({ err }, 'dashboard sweep failed; will retry'))
      .finally(() => {
        busy = false;
      });
  }

  return {
    sweepOnce,
    start(): void {
      if (timer) return;
      tick();
      timer = setInterval(tick, deps.everyMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

export type DashboardSweeper = ReturnType<typeof createDashboardSweeper>;
