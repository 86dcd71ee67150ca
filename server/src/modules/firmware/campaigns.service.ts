// Firmware campaigns (CONTRACTS.md §15): creating one (its devices and waves are fixed then),
// reading it with counts and devices, and the operator's actions. Every action is audited and
// every state is a row: the tick job (campaign-tick.ts) advances running campaigns.
import type { CampaignStatus, OtaDeviceState } from '@kioskhub/protocol';
import { newId, nowIso, type Db, type Executor } from '../../platform/db/database.js';
import { knownCursor } from '../../platform/db/pages.js';
import type { FirmwareCampaignRow, FirmwareDeploymentRow } from '../../platform/db/schema.js';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { enqueueOutbox } from '../../platform/outbox.js';
import { recordAudit } from '../audit/audit.service.js';
import type { MachinesService } from '../machines/machines.service.js';
import {
  ABORTABLE,
  FAILURES,
  assignWaves,
  checkWaves,
  type WavePlan,
  type WaveProgress,
} from './campaign-rules.js';
import { campaignUpdated, deviceUpdated } from './firmware.events.js';
import { lockReleases, waitingFor, type Turn } from './machine-turns.js';

export interface CampaignInput {
  artifactId: string;
  name?: string;
  target: { machineIds?: string[]; siteIds?: string[]; kinds?: string[]; hwModel: string };
  waves: WavePlan[];
  maxConcurrent: number;
  failureThresholdPercent: number;
  minFinishedForThreshold: number;
  deviceTimeoutMinutes?: number;
  downloadRetries?: number;
  allowDowngrade?: boolean;
}

export type CampaignAction = 'start' | 'pause' | 'resume' | 'approve' | 'abort' | 'retry-failed';

export function createCampaigns(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  machines: Pick<MachinesService, 'listForTarget'>;
}) {
  const { db } = deps;

  async function scoped(
    ex: Executor,
    id: string,
    tenantId: string | null,
    lock = false,
  ): Promise<FirmwareCampaignRow> {
    let q = ex.selectFrom('firmware_campaigns').selectAll().where('id', '=', id);
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    // An action and a tick of the same campaign never interleave (SQLite runs one transaction at a time).
    if (lock && deps.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw notFound('campaign', id);
    return row;
  }

  /** Starts a new chain of ticks (an older chain still queued sees a newer number and stops). */
  async function scheduleTick(ex: Executor, c: FirmwareCampaignRow): Promise<FirmwareCampaignRow> {
    const updated = await ex
      .updateTable('firmware_campaigns')
      .set((eb) => ({ tick_seq: eb('tick_seq', '+', 1) }))
      .where('id', '=', c.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const seq = Number(updated.tick_seq);
    await enqueueOutbox(ex, 'firmware_tick', { tenantId: c.tenant_id, campaignId: c.id, seq });
    return updated;
  }

  async function view(c: FirmwareCampaignRow) {
    const devices = await db
      .selectFrom('firmware_deployments')
      .selectAll()
      .where('campaign_id', '=', c.id)
      .orderBy('ordinal')
      .execute();
    const artifact = await db
      .selectFrom('firmware_artifacts')
      .select(['version', 'sha256', 'product'])
      .where('id', '=', c.artifact_id)
      .executeTakeFirst();
    const counts: Partial<Record<OtaDeviceState, number>> = {};
    for (const d of devices) counts[d.state as OtaDeviceState] = (counts[d.state as OtaDeviceState] ?? 0) + 1;
    const waves = JSON.parse(c.waves) as WaveProgress[];
    // A PENDING deployment of a campaign that runs (or would, resumed) may wait for another
    // campaign's deployment on its machine: which one (one machine, one deployment at a time).
    const turns =
      (c.status === 'RUNNING' || c.status === 'PAUSED') && devices.some((d) => d.state === 'PENDING')
        ? await waitingFor(db, c)
        : new Map<string, Turn>();
    return {
      ...summary(c),
      artifact: artifact ?? null,
      waves: waves.map((w, i) => ({
        ...w,
        devices: devices.filter((d) => Number(d.wave) === i).length,
      })),
      counts,
      devices: devices.map((d) => ({
        ...toDeviceView(d),
        waitingFor: (d.state === 'PENDING' ? turns.get(d.machine_id) : undefined) ?? null,
      })),
    };
  }

  async function transition(
    id: string,
    tenantId: string | null,
    actor: string,
    action: CampaignAction,
  ): Promise<FirmwareCampaignRow> {
    return db.transaction().execute(async (tx) => {
      const c = await scoped(tx, id, tenantId, true);
      // Every action changes which campaigns want their machines (a campaign starts, resumes or
      // stops running; failed devices wait again): taken before any write, as a tick takes it
      // after its own campaign's row, so a tick deciding whose turn a machine is sees it done or
      // not begun (machine-turns.ts).
      await lockReleases(tx, deps.dialect, c.tenant_id);
      const status = c.status as CampaignStatus;
      const waves = JSON.parse(c.waves) as WaveProgress[];
      const now = nowIso();
      const refuse = (why: string) =>
        new AppError(
          'INVALID_STATE',
          `cannot ${action} ${/^[AEIOU]/.test(status) ? 'an' : 'a'} ${status} campaign: ${why}`,
        );
      const set: Partial<FirmwareCampaignRow> = { updated_at: now };
      let tick = false;
      switch (action) {
        case 'start': {
          if (status !== 'DRAFT') throw refuse('only a DRAFT campaign starts');
          const first = waves[0]!;
          first.status = first.approval === 'manual' ? 'AWAITING_APPROVAL' : 'RUNNING';
          first.startedAt = now;
          Object.assign(set, { status: 'RUNNING', started_at: now, waves: JSON.stringify(waves) });
          tick = true;
          break;
        }
        case 'pause':
          if (status !== 'RUNNING') throw refuse('only a RUNNING campaign pauses');
          Object.assign(set, { status: 'PAUSED', pause_reason: 'MANUAL' });
          break;
        case 'resume': {
          if (status !== 'PAUSED') throw refuse('only a PAUSED campaign resumes');
          // Resuming past a threshold pause accepts the failures seen so far; newer ones count again.
          const failed = await countStates(tx, c.id, FAILURES);
          Object.assign(set, { status: 'RUNNING', pause_reason: null, acknowledged_failures: failed });
          // Each accepted failure is marked: one coming back later (a late report after
          // TIMED_OUT) leaves the count (ota-device.ts).
          await tx
            .updateTable('firmware_deployments')
            .set({ failure_acknowledged: 1 })
            .where('campaign_id', '=', c.id)
            .where('state', 'in', FAILURES)
            .execute();
          tick = true;
          break;
        }
        case 'approve': {
          const wave = waves[Number(c.current_wave)];
          if ((status !== 'RUNNING' && status !== 'PAUSED') || wave?.status !== 'AWAITING_APPROVAL')
            throw refuse('no wave is waiting for approval');
          wave.status = 'RUNNING';
          wave.startedAt = now;
          set.waves = JSON.stringify(waves);
          tick = status === 'RUNNING';
          break;
        }
        case 'abort': {
          if (status !== 'DRAFT' && status !== 'RUNNING' && status !== 'PAUSED')
            throw refuse('the campaign has ended');
          Object.assign(set, { status: status === 'DRAFT' ? 'CANCELLED' : 'ABORTED', finished_at: now });
          // Devices that have not begun installing stop; one installing or rebooting finishes.
          const stopped = await tx
            .updateTable('firmware_deployments')
            .set({ state: 'CANCELLED', code: 'CAMPAIGN_ABORTED', finished_at: now, updated_at: now })
            .where('campaign_id', '=', c.id)
            .where('state', 'in', ABORTABLE)
            .returningAll()
            .execute();
          for (const d of stopped) if (d.notified_at !== null) await deviceUpdated(tx, d);
          break;
        }
        case 'retry-failed': {
          if (status !== 'RUNNING' && status !== 'PAUSED' && status !== 'COMPLETED')
            throw refuse('only a RUNNING, PAUSED or COMPLETED campaign retries');
          const again = await tx
            .updateTable('firmware_deployments')
            .set({
              state: 'PENDING',
              code: null,
              message: null,
              retries: 0,
              notified_at: null,
              active_at: null,
              finished_at: null,
              updated_at: now,
              failure_acknowledged: 0,
            })
            .where('campaign_id', '=', c.id)
            .where('state', 'in', FAILURES)
            .returningAll()
            .execute();
          if (again.length === 0) throw refuse('no device has failed');
          for (const d of again) await deviceUpdated(tx, d);
          set.acknowledged_failures = 0;
          if (status === 'COMPLETED') {
            // The last wave runs again for the devices put back.
            const last = waves[waves.length - 1]!;
            Object.assign(last, { status: 'RUNNING', soakUntil: null, completedAt: null });
            Object.assign(set, { status: 'RUNNING', finished_at: null, waves: JSON.stringify(waves) });
          }
          tick = status !== 'PAUSED';
          break;
        }
      }
      let updated = await tx
        .updateTable('firmware_campaigns')
        .set(set)
        .where('id', '=', c.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      if (tick) updated = await scheduleTick(tx, updated);
      await recordAudit(tx, {
        tenantId: c.tenant_id,
        actor,
        action: `firmware.campaign.${action}`,
        subjectType: 'firmware_campaign',
        subjectId: c.id,
        before: { status: c.status, currentWave: c.current_wave },
        after: { status: updated.status, currentWave: updated.current_wave },
      });
      await campaignUpdated(tx, updated);
      return updated;
    });
  }

  return {
    async create(tenantId: string, actor: string, input: CampaignInput) {
      const waveProblem = checkWaves(input.waves);
      if (waveProblem) throw validation(waveProblem);
      const artifact = await db
        .selectFrom('firmware_artifacts')
        .selectAll()
        .where('id', '=', input.artifactId)
        .where('tenant_id', '=', tenantId)
        .executeTakeFirst();
      if (!artifact) throw validation(`artifactId: no firmware "${input.artifactId}" in this tenant`);
      const hwModels = JSON.parse(artifact.hw_models) as string[];
      if (!hwModels.includes(input.target.hwModel))
        throw validation(
          `target.hwModel: firmware ${artifact.version} is for ${hwModels.join(', ')}, not ${input.target.hwModel}`,
        );
      const { machineIds, siteIds, kinds } = input.target;
      if (!machineIds && !siteIds && !kinds)
        throw validation('target: name machineIds, siteIds or kinds (all of the fleet is never implied)');
      const filter = {
        ...(machineIds ? { machineIds } : {}),
        ...(siteIds ? { siteIds } : {}),
        ...(kinds ? { kinds } : {}),
      };
      const machines = await deps.machines.listForTarget(tenantId, filter);
      if (machineIds) {
        const found = new Set(machines.map((m) => m.id));
        const unknown = machineIds.filter((m) => !found.has(m));
        if (unknown.length > 0 && !siteIds && !kinds)
          throw validation(`target.machineIds: no machine ${unknown.slice(0, 5).join(', ')} in this tenant`);
      }
      if (machines.length === 0) throw validation('target: matches no machine of this tenant');
      const id = newId();
      const now = nowIso();
      const waves: WaveProgress[] = input.waves.map((w) => ({
        percent: w.percent,
        soakMinutes: w.soakMinutes,
        approval: w.approval,
        status: 'PENDING',
        startedAt: null,
        soakUntil: null,
        completedAt: null,
      }));
      const firmwareOf = new Map(machines.map((m) => [m.id, m.firmware]));
      return db.transaction().execute(async (tx) => {
        const row = await tx
          .insertInto('firmware_campaigns')
          .values({
            id,
            tenant_id: tenantId,
            artifact_id: artifact.id,
            name: input.name ?? null,
            status: 'DRAFT',
            target: JSON.stringify(input.target),
            hw_model: input.target.hwModel,
            waves: JSON.stringify(waves),
            max_concurrent: input.maxConcurrent,
            failure_threshold_percent: input.failureThresholdPercent,
            min_finished_for_threshold: input.minFinishedForThreshold,
            device_timeout_minutes: input.deviceTimeoutMinutes ?? 60,
            download_retries: input.downloadRetries ?? 3,
            allow_downgrade: input.allowDowngrade ? 1 : 0,
            pause_reason: null,
            created_by: actor,
            created_at: now,
            updated_at: now,
            started_at: null,
            finished_at: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        const plan = assignWaves(
          id,
          machines.map((m) => m.id),
          input.waves,
        );
        for (let i = 0; i < plan.length; i += 200) {
          await tx
            .insertInto('firmware_deployments')
            .values(
              plan.slice(i, i + 200).map((p) => ({
                id: newId(),
                tenant_id: tenantId,
                campaign_id: id,
                machine_id: p.machineId,
                wave: p.wave,
                ordinal: p.ordinal,
                state: 'PENDING',
                code: null,
                message: null,
                from_version: firmwareOf.get(p.machineId) ?? null,
                current_version: firmwareOf.get(p.machineId) ?? null,
                bytes: null,
                total: null,
                notified_at: null,
                active_at: null,
                finished_at: null,
                updated_at: now,
              })),
            )
            .execute();
        }
        await recordAudit(tx, {
          tenantId,
          actor,
          action: 'firmware.campaign.create',
          subjectType: 'firmware_campaign',
          subjectId: id,
          after: {
            artifactId: artifact.id,
            version: artifact.version,
            devices: plan.length,
            waves: input.waves,
          },
        });
        await campaignUpdated(tx, row);
        return row;
      });
    },

    /** Newest first (ids grow with time), a page of `limit` after `cursor`, with counts per state. */
    async list(tenantId: string | null, page: { limit: number; cursor?: string }) {
      const inScope = () => {
        const q = db.selectFrom('firmware_campaigns').selectAll();
        return tenantId === null ? q : q.where('tenant_id', '=', tenantId);
      };
      await knownCursor(page.cursor, (id) => inScope().where('id', '=', id).executeTakeFirst());
      let q = inScope()
        .orderBy('id', 'desc')
        .limit(page.limit + 1);
      if (page.cursor !== undefined) q = q.where('id', '<', page.cursor);
      const found = await q.execute();
      const rows = found.slice(0, page.limit);
      const counts = rows.length
        ? await db
            .selectFrom('firmware_deployments')
            .select(['campaign_id', 'state', (eb) => eb.fn.countAll<number>().as('n')])
            .where(
              'campaign_id',
              'in',
              rows.map((r) => r.id),
            )
            .groupBy(['campaign_id', 'state'])
            .execute()
        : [];
      return {
        items: rows.map((r) => ({
          ...summary(r),
          counts: Object.fromEntries(
            counts.filter((x) => x.campaign_id === r.id).map((x) => [x.state, Number(x.n)]),
          ),
        })),
        nextCursor: found.length > page.limit ? (rows.at(-1)?.id ?? null) : null,
      };
    },

    async get(id: string, tenantId: string | null) {
      return view(await scoped(db, id, tenantId));
    },

    /**
     * At start-up: every running campaign gets a fresh tick chain. Its queued tick normally
     * survives a restart anyway; this also revives one whose tick job failed for good.
     */
    async resumeRunning(): Promise<number> {
      const running = await db
        .selectFrom('firmware_campaigns')
        .selectAll()
        .where('status', '=', 'RUNNING')
        .execute();
      for (const c of running) await db.transaction().execute((tx) => scheduleTick(tx, c));
      return running.length;
    },

    async act(id: string, tenantId: string | null, actor: string, action: CampaignAction) {
      return view(await transition(id, tenantId, actor, action));
    },
  };
}

async function countStates(ex: Executor, campaignId: string, states: readonly string[]): Promise<number> {
  const row = await ex
    .selectFrom('firmware_deployments')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('campaign_id', '=', campaignId)
    .where('state', 'in', states)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

function summary(c: FirmwareCampaignRow) {
  return {
    id: c.id,
    tenantId: c.tenant_id,
    name: c.name,
    status: c.status as CampaignStatus,
    artifactId: c.artifact_id,
    target: JSON.parse(c.target) as CampaignInput['target'],
    currentWave: Number(c.current_wave),
    maxConcurrent: Number(c.max_concurrent),
    failureThresholdPercent: Number(c.failure_threshold_percent),
    minFinishedForThreshold: Number(c.min_finished_for_threshold),
    deviceTimeoutMinutes: Number(c.device_timeout_minutes),
    downloadRetries: Number(c.download_retries),
    allowDowngrade: c.allow_downgrade === 1,
    pauseReason: c.pause_reason,
    createdBy: c.created_by,
    createdAt: c.created_at,
    updatedAt: c.updated_at,
    startedAt: c.started_at,
    finishedAt: c.finished_at,
  };
}

export function toDeviceView(d: FirmwareDeploymentRow) {
  return {
    deploymentId: d.id,
    machineId: d.machine_id,
    wave: Number(d.wave),
    state: d.state as OtaDeviceState,
    code: d.code,
    message: d.message,
    fromVersion: d.from_version,
    currentVersion: d.current_version,
    bytes: d.bytes === null ? null : Number(d.bytes),
    total: d.total === null ? null : Number(d.total),
    retries: Number(d.retries),
    updatedAt: d.updated_at,
  };
}

export type Campaigns = ReturnType<typeof createCampaigns>;
