// Alerts about standing conditions (a silent water kiosk, a tap in fault, a payment stuck
// PENDING, water credit below zero): the scheduler queues a `water_alerts` job every
// WATER_ALERT_SWEEP_MS; the job raises an alert for each new condition and resolves the alerts
// whose condition has cleared. One open alert per condition, however many sweeps see it, even
// sweeps running at the same moment in several processes.
import type { Db } from '../../platform/db/database.js';
import { enqueueOutbox, hasQueuedJob } from '../../platform/outbox.js';
import type { AlertsService } from '../alerts/alerts.service.js';
import {
  WATER_ALERT_KINDS,
  type AlertResume,
  type WaterStatsService,
} from '../reporting/water-stats.service.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** Check water kiosks, stuck payments and water credit; raise and resolve their alerts. */
    water_alerts: { at?: string };
  }
}

export function createWaterAlerts(deps: {
  db: Db;
  alerts: Pick<AlertsService, 'raiseUnlessOpen' | 'unresolved' | 'resolve'>;
  conditions: Pick<WaterStatsService, 'alertConditions'>;
  paymentStuckGraceMs: number;
}) {
  const { db } = deps;
  const keyOf = (a: { tenantId: string; kind: string; subjectId: string }) =>
    `${a.tenantId}|${a.kind}|${a.subjectId}`;

  // Where the kinds with more conditions than one sweep lists go on (this process's sweeps).
  let resume: AlertResume = {};

  async function sweepOnce(now = Date.now()): Promise<{ raised: number; resolved: number }> {
    const listing = await deps.conditions.alertConditions(now, deps.paymentStuckGraceMs, resume);
    const { conditions: current, capped } = listing;
    resume = listing.resume;
    const open = await deps.alerts.unresolved(WATER_ALERT_KINDS);
    const openKeys = new Set(open.map(keyOf));
    const currentKeys = new Set(current.map(keyOf));
    let raised = 0;
    for (const c of current) {
      if (openKeys.has(keyOf(c))) continue;
      // Another process sweeping at the same moment may have raised it since `open` was read.
      // (Raising it also tells the tenant's screens: `alert_raised`.)
      const fresh = await db.transaction().execute((tx) => deps.alerts.raiseUnlessOpen(tx, c));
      if (fresh) raised++;
    }
    // A kind cut at its cap lists only some of its conditions: an unlisted one may still stand.
    const partial = new Set<string>(capped);
    // An alert raised after `now` (by a sweep in another process) is about a condition that may
    // have begun after this sweep's conditions were read: the next sweep judges it.
    const asOf = new Date(now).toISOString();
    const cleared = open
      .filter((a) => a.createdAt <= asOf && !partial.has(a.kind) && !currentKeys.has(keyOf(a)))
      .map((a) => a.id);
    await deps.alerts.resolve(db, cleared);
    return { raised, resolved: cleared.length };
  }

  return {
    sweepOnce,
    /** The scheduler's task: queue one sweep unless one is already waiting. */
    async queueSweep(): Promise<void> {
      if (!(await hasQueuedJob(db, 'water_alerts')))
        await enqueueOutbox(db, 'water_alerts', { at: new Date().toISOString() });
    },
  };
}

export type WaterAlerts = ReturnType<typeof createWaterAlerts>;
