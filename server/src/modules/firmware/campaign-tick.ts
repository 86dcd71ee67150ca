// The tick job of a running campaign: one row in the job table per campaign, re-enqueued by
// each run, so a restart resumes where the database says it was. A tick times out silent
// devices, pauses on the failure threshold, moves waves on (soak, approval) and releases
// devices up to maxConcurrent, each only once no other deployment holds its machine
// (machine-turns.ts).
import type { Logger } from 'pino';
import type { Db, Executor } from '../../platform/db/database.js';
import type { FirmwareCampaignRow } from '../../platform/db/schema.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import { FAILURES, IN_PROGRESS, thresholdReached, type WaveProgress } from './campaign-rules.js';
import { campaignUpdated, deviceUpdated } from './firmware.events.js';
import { heldMachines, lockReleases, olderWaiting, timeOutSilent } from './machine-turns.js';

declare module '../../platform/outbox.js' {
  interface OutboxTopics {
    /** Advance one running firmware campaign (`seq`: its tick chain's number; others are stale). */
    firmware_tick: { tenantId: string; campaignId: string; seq: number };
    /** Tell a machine (Socket.IO, MQTT) that a firmware deployment is waiting for it. */
    firmware_notify: { tenantId: string; machineId: string; deploymentId: string };
  }
}

export function createCampaignTick(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  logger: Logger;
  tickMs: number;
}) {
  const { db } = deps;

  async function advance(tx: Executor, c: FirmwareCampaignRow): Promise<FirmwareCampaignRow> {
    const now = Date.now();
    const nowText = new Date(now).toISOString();
    // 1. Devices silent for longer than the in-progress timeout free their slot: TIMED_OUT (the
    // message keeps the state each was in: a late report continues from there).
    const minutes = Number(c.device_timeout_minutes);
    const cutoff = new Date(now - minutes * 60_000).toISOString();
    const silent = await tx
      .selectFrom('firmware_deployments')
      .select(['id', 'state', 'active_at'])
      .where('campaign_id', '=', c.id)
      .where('state', 'in', IN_PROGRESS)
      .where('active_at', '<', cutoff)
      .execute();
    await timeOutSilent(
      tx,
      silent.map((d) => ({ ...d, minutes })),
      now,
    );

    const devices = await tx
      .selectFrom('firmware_deployments')
      .select(['id', 'wave', 'state', 'ordinal', 'machine_id'])
      .where('campaign_id', '=', c.id)
      .execute();
    const waves = JSON.parse(c.waves) as WaveProgress[];
    let current = Number(c.current_wave);
    const set: Partial<FirmwareCampaignRow> = {};
    const released = (w: number) => devices.filter((d) => Number(d.wave) <= w);

    // 2. The failure threshold pauses (never an automatic rollback).
    const upTo = released(current);
    const counts = {
      failed: upTo.filter((d) => FAILURES.includes(d.state as never)).length,
      succeeded: upTo.filter((d) => d.state === 'SUCCEEDED').length,
    };
    const policy = {
      failureThresholdPercent: Number(c.failure_threshold_percent),
      minFinishedForThreshold: Number(c.min_finished_for_threshold),
      acknowledgedFailures: Number(c.acknowledged_failures),
    };
    if (thresholdReached(policy, counts)) {
      set.status = 'PAUSED';
      set.pause_reason = 'FAILURE_THRESHOLD';
      await recordAudit(tx, {
        tenantId: c.tenant_id,
        actor: 'system',
        action: 'firmware.campaign.threshold_pause',
        subjectType: 'firmware_campaign',
        subjectId: c.id,
        before: { status: c.status },
        after: { status: 'PAUSED', ...counts, ...policy },
      });
    } else {
      // 3. Waves: run, soak, complete; the next wave starts at once or waits for approval.
      for (let guard = 0; guard <= waves.length; guard++) {
        const wave = waves[current]!;
        const open = () =>
          released(current).some((d) => d.state === 'PENDING' || IN_PROGRESS.includes(d.state as never));
        // A soaking wave whose devices are not all finished any more (failed ones retried, a
        // timed-out one reporting again) runs again, and soaks afresh once they have finished.
        if (wave.status === 'SOAKING' && open()) {
          wave.status = 'RUNNING';
          wave.soakUntil = null;
        }
        if (wave.status === 'RUNNING') {
          if (open()) break;
          wave.status = 'SOAKING';
          wave.soakUntil = new Date(now + wave.soakMinutes * 60_000).toISOString();
        }
        if (wave.status === 'SOAKING') {
          if (wave.soakUntil !== null && Date.parse(wave.soakUntil) > now) break;
          wave.status = 'COMPLETED';
          wave.completedAt = nowText;
          if (current === waves.length - 1) {
            set.status = 'COMPLETED';
            set.finished_at = nowText;
            break;
          }
          current++;
          const next = waves[current]!;
          next.status = next.approval === 'manual' ? 'AWAITING_APPROVAL' : 'RUNNING';
          next.startedAt = nowText;
          continue;
        }
        break;
      }
      set.waves = JSON.stringify(waves);
      set.current_wave = current;

      // 4. Release waiting devices of the waves reached, up to maxConcurrent in progress. A device
      // whose machine another campaign's deployment holds waits, PENDING: it takes no slot, is
      // offered nothing and cannot time out; a later tick releases it once that one has ended,
      // unless an older campaign's deployment waits for the same machine (its turn comes first).
      if (set.status === undefined && waves[current]!.status === 'RUNNING') {
        // `devices` was read after step 1: the devices just timed out are no longer in progress.
        const busy = devices.filter((d) => IN_PROGRESS.includes(d.state as never)).length;
        const slots = Number(c.max_concurrent) - busy;
        const pending = released(current).filter((d) => d.state === 'PENDING');
        const held = pending.length > 0 && slots > 0 ? await heldMachines(tx, c.id, now) : new Set<string>();
        // A free machine is an older campaign's first when its deployment waits for it too.
        if (pending.length > 0 && slots > 0) for (const m of (await olderWaiting(tx, c)).keys()) held.add(m);
        const waiting = pending
          .filter((d) => !held.has(d.machine_id))
          .sort((a, b) => Number(a.ordinal) - Number(b.ordinal))
          .slice(0, Math.max(0, slots));
        if (waiting.length > 0) {
          const notified = await tx
            .updateTable('firmware_deployments')
            .set({ state: 'NOTIFIED', notified_at: nowText, active_at: nowText, updated_at: nowText })
            .where(
              'id',
              'in',
              waiting.map((d) => d.id),
            )
            .where('state', '=', 'PENDING')
            .returningAll()
            .execute();
          for (const d of notified) {
            await deviceUpdated(tx, d);
            await enqueueOutbox(tx, 'firmware_notify', {
              tenantId: d.tenant_id,
              machineId: d.machine_id,
              deploymentId: d.id,
            });
          }
        }
      }
    }
    const changed =
      set.status !== undefined || set.current_wave !== Number(c.current_wave) || set.waves !== c.waves;
    if (!changed) return c;
    const updated = await tx
      .updateTable('firmware_campaigns')
      .set({ ...set, updated_at: nowText })
      .where('id', '=', c.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    await campaignUpdated(tx, updated);
    return updated;
  }

  return {
    /** The `firmware_tick` job. A stale tick (an older chain, or a repeat after a crash) does nothing. */
    async run(p: { tenantId: string; campaignId: string; seq: number }): Promise<void> {
      await db.transaction().execute(async (tx) => {
        const claimed = await tx
          .updateTable('firmware_campaigns')
          .set({ tick_seq: p.seq + 1 })
          .where('id', '=', p.campaignId)
          .where('tick_seq', '=', p.seq)
          .where('status', '=', 'RUNNING')
          .returningAll()
          .executeTakeFirst();
        if (!claimed) return;
        // Before any other write: this tick may release devices (one deployment per machine).
        await lockReleases(tx, deps.dialect, claimed.tenant_id);
        const after = await advance(tx, claimed);
        if (after.status === 'RUNNING') {
          await enqueueOutbox(
            tx,
            'firmware_tick',
            { tenantId: p.tenantId, campaignId: p.campaignId, seq: p.seq + 1 },
            { runAt: new Date(Date.now() + deps.tickMs).toISOString() },
          );
        }
      });
    },
  };
}

export type CampaignTick = ReturnType<typeof createCampaignTick>;
