// The device side of firmware over the air (CONTRACTS.md §15): what a machine should install
// next, its status reports (idempotent on seq, states only forward), and the versions it reports
// in heartbeats. Any transport calls these: HTTP here, `ota.install` on Socket.IO, MQTT `up/ota`.
import { DEVICE_COMMAND_PREFIX, type OtaNext, type OtaStatusReport } from '@kioskhub/protocol';
import { nowIso, type Db } from '../../platform/db/database.js';
import type { FirmwareArtifactRow, FirmwareDeploymentRow } from '../../platform/db/schema.js';
import { AppError, notFound, validation } from '../../platform/errors.js';
import { recordAudit } from '../audit/audit.service.js';
import { FAILURES, IN_PROGRESS, isDownloadError, stateBeforeTimeout, stateRank } from './campaign-rules.js';
import { deviceUpdated } from './firmware.events.js';
import { lockReleases, othersHolding } from './machine-turns.js';
import { compareVersions } from './manifest.js';

export interface StatusOutcome {
  ok: true;
  state: string;
  duplicate?: true;
  /** A download error that will be tried again: fetch `next` and download again. */
  retry?: true;
}

/** What a device said of itself: the version it runs and its hardware model, when it said. */
export interface DeviceReport {
  current?: string;
  hw?: string;
}

type ActiveRow = FirmwareDeploymentRow & { campaign_hw: string; campaign_downgrade: number };

/** The campaign or the image lets a device go to an older version. */
const allowsDowngrade = (
  d: Pick<ActiveRow, 'campaign_downgrade'>,
  a: Pick<FirmwareArtifactRow, 'allow_downgrade'>,
): boolean => d.campaign_downgrade === 1 || a.allow_downgrade === 1;

/** Why this device must not take this image (docs/firmware.md "Skips"), or undefined. */
export function skipReason(
  d: Pick<ActiveRow, 'campaign_hw' | 'campaign_downgrade'>,
  a: Pick<FirmwareArtifactRow, 'version' | 'min_from_version' | 'allow_downgrade'>,
  reported: DeviceReport,
): { code: string; message: string } | undefined {
  if (reported.hw !== undefined && reported.hw !== d.campaign_hw)
    return { code: 'HW_MISMATCH', message: `device is ${reported.hw}, campaign is for ${d.campaign_hw}` };
  const current = reported.current;
  if (current === undefined) return undefined;
  const cmp = compareVersions(current, a.version);
  if (cmp === 0) return { code: 'ALREADY_CURRENT', message: `device already runs ${a.version}` };
  if (cmp > 0 && !allowsDowngrade(d, a))
    return { code: 'DOWNGRADE_NOT_ALLOWED', message: `device runs ${current}, newer than ${a.version}` };
  if (a.min_from_version && compareVersions(current, a.min_from_version) < 0)
    return {
      code: 'VERSION_TOO_OLD',
      message: `firmware ${a.version} needs at least ${a.min_from_version}`,
    };
  return undefined;
}

export function createOtaDevice(deps: {
  db: Db;
  dialect: 'sqlite' | 'postgres';
  publicUrl: string | undefined;
  pollAfterSec: number;
}) {
  const { db } = deps;

  // PUBLIC_URL when set; else the address the device used for this request; else a path the
  // device resolves against the server it talks to (a push has no request).
  function nextAnswer(
    d: FirmwareDeploymentRow,
    a: FirmwareArtifactRow,
    allowDowngrade: boolean,
    base?: string,
  ): OtaNext {
    const path = `/api/device/v1/artifacts/${a.sha256}`;
    const origin = deps.publicUrl ?? base;
    return {
      deploymentId: d.id,
      manifest: a.manifest,
      signature: a.signature,
      keyId: a.key_id,
      sigAlg: a.sig_alg as OtaNext['sigAlg'],
      // Under PUBLIC_URL's path when it has one (config keeps it without a trailing slash).
      url: origin ? `${origin.replace(/\/+$/, '')}${path}` : path,
      pollAfterSec: deps.pollAfterSec,
      allowDowngrade,
    };
  }

  /**
   * In-progress deployments of this machine in campaigns still going, oldest first: the first is
   * the one the machine is on (one at a time), the only one `next` and pushes offer.
   */
  function active(machineId: string) {
    return db
      .selectFrom('firmware_deployments as d')
      .innerJoin('firmware_campaigns as c', 'c.id', 'd.campaign_id')
      .innerJoin('firmware_artifacts as a', 'a.id', 'c.artifact_id')
      .selectAll('d')
      .select(['c.hw_model as campaign_hw', 'c.allow_downgrade as campaign_downgrade', 'a.id as artifact_id'])
      .where('d.machine_id', '=', machineId)
      .where('d.state', 'in', IN_PROGRESS)
      .where('c.status', 'in', ['RUNNING', 'PAUSED'])
      .orderBy('d.notified_at')
      .orderBy('d.id')
      .execute();
  }

  async function skip(d: FirmwareDeploymentRow, code: string, message: string, current: string | undefined) {
    await db.transaction().execute(async (tx) => {
      const now = nowIso();
      const row = await tx
        .updateTable('firmware_deployments')
        .set({
          state: 'SKIPPED',
          code,
          message,
          finished_at: now,
          updated_at: now,
          ...(current ? { current_version: current } : {}),
        })
        .where('id', '=', d.id)
        .where('state', '=', 'NOTIFIED')
        .returningAll()
        .executeTakeFirst();
      if (row) await deviceUpdated(tx, row);
    });
  }

  /**
   * The one skip decision for every transport (HTTP `next`, Socket.IO and MQTT `ota.install`):
   * true when the device, as it last described itself, must not take this image; the deployment
   * is then SKIPPED with the reason. Only before the device has started (NOTIFIED).
   */
  async function skipped(d: ActiveRow, a: FirmwareArtifactRow, reported: DeviceReport): Promise<boolean> {
    if (d.state !== 'NOTIFIED') return false;
    const reason = skipReason(d, a, reported);
    if (!reason) return false;
    await skip(d, reason.code, reason.message, reported.current);
    return true;
  }

  const device = {
    /** What this machine should install now, or null (204). */
    async next(
      machineId: string,
      query: { current?: string; hw?: string },
      base?: string,
    ): Promise<OtaNext | null> {
      for (const d of await active(machineId)) {
        const artifact = await db
          .selectFrom('firmware_artifacts')
          .selectAll()
          .where('id', '=', d.artifact_id)
          .executeTakeFirstOrThrow();
        if (await skipped(d, artifact, query)) continue;
        return nextAnswer(d, artifact, allowsDowngrade(d, artifact), base);
      }
      return null;
    },

    /** A status report for one deployment of this machine (HTTP, or MQTT `up/ota`). */
    async applyStatus(
      machineId: string,
      deploymentId: string,
      report: OtaStatusReport,
    ): Promise<StatusOutcome> {
      return db.transaction().execute(async (tx) => {
        const d = await tx
          .selectFrom('firmware_deployments')
          .selectAll()
          .where('id', '=', deploymentId)
          .where('machine_id', '=', machineId)
          .executeTakeFirst();
        if (!d) throw notFound('deployment', deploymentId);
        // Reports arrive again (lost answers, a device retrying): the same seq changes nothing.
        if (report.seq <= Number(d.seq)) return { ok: true, state: d.state, duplicate: true } as const;
        const campaign = await tx
          .selectFrom('firmware_campaigns as c')
          .innerJoin('firmware_artifacts as a', 'a.id', 'c.artifact_id')
          .select(['c.download_retries', 'c.status', 'a.version', 'a.size'])
          .where('c.id', '=', d.campaign_id)
          .executeTakeFirstOrThrow();
        // Progress is of this image: its size, and never more of it than there is.
        const size = Number(campaign.size);
        if (report.total !== undefined && report.total !== size)
          throw validation(`total must be the image's size, ${size} bytes, not ${report.total}`);
        if (report.bytes !== undefined && report.bytes > size)
          throw validation(`bytes (${report.bytes}) cannot be more than the image's ${size} bytes`);
        const from = d.state;
        const to = report.state;
        // A device that went silent (TIMED_OUT) may still come back and finish, unless its
        // campaign has ended (an aborted campaign: stop). It continues from the state it timed
        // out in, by the same rules as before the timeout: only forward, SUCCEEDED after REBOOTING.
        const revivable =
          from === 'TIMED_OUT' && (campaign.status === 'RUNNING' || campaign.status === 'PAUSED');
        if (!revivable && stateRank(from) >= 7)
          throw new AppError(
            'INVALID_STATE',
            `deployment ${deploymentId} has ended (${from})${d.code ? `: ${d.code}` : ''}`,
          );
        if (from === 'PENDING')
          throw new AppError('INVALID_STATE', `deployment ${deploymentId} has not been released yet`);
        const at = revivable ? stateBeforeTimeout(d.timed_out_in) : from;
        const where = revivable ? `${at} (where it timed out)` : at;
        if (stateRank(to) < stateRank(at))
          throw new AppError('INVALID_STATE', `state ${to} is behind ${where}: states only move forward`);
        if (to === 'SUCCEEDED') {
          if (report.confirmed !== true)
            throw validation(
              'SUCCEEDED needs confirmed: true (the device booted the new image and confirmed it)',
            );
          // Exactly the version sent: another build (`+dev`) or spelling is not this image.
          if (report.currentVersion !== campaign.version)
            throw validation(
              `SUCCEEDED needs currentVersion ${campaign.version}, got ${report.currentVersion}`,
            );
          if (at !== 'REBOOTING')
            throw new AppError(
              'INVALID_STATE',
              `SUCCEEDED only after REBOOTING (the deployment is ${where})`,
            );
        }
        const now = nowIso();
        const retry =
          to === 'FAILED' &&
          isDownloadError(report.code) &&
          Number(d.retries) < Number(campaign.download_retries);
        const final = !retry && stateRank(to) >= 7;
        // A failure the operator accepted by resuming past the failure threshold that comes back
        // (in progress again, a download retry included, or SUCCEEDED) is no longer one: it leaves
        // the accepted count, so newer failures count in full. Written before the release lock, as
        // a tick takes its campaign's row before that lock too (the same order: no deadlock).
        const unacknowledge =
          revivable && Number(d.failure_acknowledged) === 1 && (retry || !FAILURES.includes(to as never));
        if (unacknowledge)
          await tx
            .updateTable('firmware_campaigns')
            .set((eb) => ({ acknowledged_failures: eb('acknowledged_failures', '-', 1) }))
            .where('id', '=', d.campaign_id)
            .where('acknowledged_failures', '>', 0)
            .execute();
        // One deployment per machine at a time: a revival back into progress finds the machine
        // free, or given to another deployment meanwhile. One not started yet waits again
        // (PENDING, released by its campaign once this one has ended); one started keeps the
        // machine, and this late report is refused.
        const waitAgain: FirmwareDeploymentRow[] = [];
        if (revivable && !final) {
          await lockReleases(tx, deps.dialect, d.tenant_id);
          const others = await othersHolding(tx, machineId, d.id, Date.now());
          const started = others.find((o) => o.state !== 'NOTIFIED');
          if (started)
            throw new AppError(
              'INVALID_STATE',
              `deployment ${deploymentId} has ended (TIMED_OUT): the machine has since started deployment ${started.id}`,
            );
          for (const o of others) {
            const back = await tx
              .updateTable('firmware_deployments')
              .set({ state: 'PENDING', notified_at: null, active_at: null, updated_at: now })
              .where('id', '=', o.id)
              .where('state', '=', 'NOTIFIED')
              .returningAll()
              .executeTakeFirst();
            if (!back)
              throw new AppError(
                'CONFLICT',
                `deployment ${o.id} of this machine changed meanwhile; send the report again`,
              );
            await deviceUpdated(tx, back);
            waitAgain.push(back);
          }
        }
        const row = await tx
          .updateTable('firmware_deployments')
          .set({
            seq: report.seq,
            state: retry ? 'NOTIFIED' : to,
            code: report.code ?? (to === 'FAILED' ? 'FAILED' : null),
            message: report.message?.slice(0, 500) ?? null,
            current_version: report.currentVersion,
            bytes: report.bytes ?? d.bytes,
            total: report.total ?? d.total,
            retries: retry ? Number(d.retries) + 1 : d.retries,
            active_at: now,
            finished_at: final ? now : null,
            updated_at: now,
            timed_out_in: null,
            ...(unacknowledge ? { failure_acknowledged: 0 } : {}),
          })
          .where('id', '=', d.id)
          .where('seq', '=', d.seq)
          // An abort, a timeout or another report changed it meanwhile: this report lost the race.
          .where('state', '=', d.state)
          // So did a resume that accepted its failure since (`unacknowledge` was decided without it).
          .where('failure_acknowledged', '=', Number(d.failure_acknowledged))
          .returningAll()
          .executeTakeFirst();
        if (!row)
          throw new AppError(
            'CONFLICT',
            `deployment ${deploymentId} changed meanwhile; send the report again`,
          );
        await deviceUpdated(tx, row);
        // A deployment counted as failed (TIMED_OUT) goes on: who, from where, to what.
        if (revivable)
          await recordAudit(tx, {
            tenantId: d.tenant_id,
            actor: `machine:${machineId}`,
            action: 'firmware.deployment.late_report',
            subjectType: 'firmware_deployment',
            subjectId: d.id,
            before: { state: from, code: d.code, timedOutIn: at, campaignId: d.campaign_id },
            after: {
              state: row.state,
              code: row.code,
              seq: report.seq,
              ...(waitAgain.length > 0 ? { waitAgain: waitAgain.map((o) => o.id) } : {}),
            },
          });
        return { ok: true, state: row.state, ...(retry ? { retry: true as const } : {}) };
      });
    },

    /** A heartbeat (or MQTT birth) named the machine's firmware: its running deployments learn it. */
    async observeVersion(machineId: string, version: string): Promise<void> {
      await db
        .updateTable('firmware_deployments')
        .set({ current_version: version })
        .where('machine_id', '=', machineId)
        .where('state', 'in', ['PENDING', ...IN_PROGRESS])
        .execute();
    },

    /** On a new connection: the released deployment not yet started, if any (re-sent like a command). */
    async offerOnConnect(machineId: string, reported: DeviceReport = {}): Promise<OtaNext | null> {
      // One skipped (the device's version rules it out) leaves the way to the next one; one the
      // device has started holds the machine, and nothing is offered.
      for (const d of await active(machineId)) {
        if (d.state !== 'NOTIFIED') return null;
        const next = await device.offerFor(machineId, d.id, reported);
        if (next) return next;
      }
      return null;
    },

    /** The `next` answer for one released deployment (the `ota.install` command's payload). */
    async offerFor(
      machineId: string,
      deploymentId: string,
      reported: DeviceReport = {},
    ): Promise<OtaNext | null> {
      return (await device.pendingOffer(machineId, deploymentId, reported))?.next ?? null;
    },

    /**
     * A released deployment the device has not started (NOTIFIED), with the id of the one
     * `ota.install` command that offers it: the same on every process and after a restart, new
     * only when the deployment is released again (retry-failed), so a device that de-duplicates
     * commands takes a second release.
     */
    async pendingOffer(
      machineId: string,
      deploymentId: string,
      reported: DeviceReport = {},
    ): Promise<{ next: OtaNext; commandId: string } | null> {
      // One offer at a time: only the machine's oldest deployment in progress, the one `next`
      // answers (campaigns release one per machine; this guards rows from before that rule).
      const [d] = await active(machineId);
      if (!d || d.id !== deploymentId || d.state !== 'NOTIFIED') return null;
      const artifact = await db
        .selectFrom('firmware_artifacts')
        .selectAll()
        .where('id', '=', d.artifact_id)
        .executeTakeFirstOrThrow();
      // A push has no `current` query: the version the device named (its birth), else the last
      // one it reported (heartbeats, recorded on the deployment).
      const current = reported.current ?? d.current_version ?? undefined;
      if (await skipped(d, artifact, { current, hw: reported.hw })) return null;
      const releasedAt = Date.parse(String(d.notified_at));
      const release = Number.isFinite(releasedAt) ? releasedAt.toString(36) : '0';
      return {
        next: nextAnswer(d, artifact, allowsDowngrade(d, artifact)),
        commandId: `${DEVICE_COMMAND_PREFIX}ota-${d.id}-${release}`,
      };
    },
  };
  return device;
}

export type OtaDevice = ReturnType<typeof createOtaDevice>;
