// One deployment per machine at a time (docs/firmware.md "One machine, one deployment at a
// time"). When several campaigns target the same machine, a deployment is released only while no
// other deployment of that machine is in progress; until then it stays PENDING: it is not offered,
// holds no maxConcurrent slot and cannot time out. Only two things put a deployment in progress, a
// tick releasing it and a late report reviving a TIMED_OUT one, and both take `lockReleases` first
// (PostgreSQL; SQLite runs one transaction at a time), so two campaigns never both take a machine.
import { sql } from 'kysely';
import type { Executor } from '../../platform/db/database.js';
import type { FirmwareDeploymentRow } from '../../platform/db/schema.js';
import { IN_PROGRESS, timeoutMessage } from './campaign-rules.js';
import { deviceUpdated } from './firmware.events.js';

/**
 * Serialises, per tenant, the transactions that may put a deployment in progress, until the
 * caller's transaction ends. Take it before writing any deployment row: a tick holds only its own
 * campaign's row by then (claimed; no holder of this lock waits for that one), a late report holds
 * nothing, so waiting for it never closes a cycle with the row locks of other writers.
 */
export async function lockReleases(
  ex: Executor,
  dialect: 'sqlite' | 'postgres',
  tenantId: string,
): Promise<void> {
  if (dialect !== 'postgres') return;
  await sql`select pg_advisory_xact_lock(hashtext(${`firmware-release:${tenantId}`}))`.execute(ex);
}

export interface SilentCandidate {
  id: string;
  state: string;
  active_at: string | null;
  /** The deviceTimeoutMinutes of the deployment's own campaign. */
  minutes: number;
}

/**
 * Deployments silent for longer than their campaign's deviceTimeoutMinutes become TIMED_OUT
 * (`NO_PROGRESS`), each remembering the state it was in (`timed_out_in`: a late report continues
 * from there). Conditional on the state and the silence read: a report that came meanwhile wins.
 */
export async function timeOutSilent(
  tx: Executor,
  candidates: readonly SilentCandidate[],
  now: number,
): Promise<FirmwareDeploymentRow[]> {
  const nowText = new Date(now).toISOString();
  const out: FirmwareDeploymentRow[] = [];
  for (const d of candidates) {
    const cutoff = new Date(now - d.minutes * 60_000).toISOString();
    if (d.active_at === null || d.active_at >= cutoff) continue;
    const row = await tx
      .updateTable('firmware_deployments')
      .set({
        state: 'TIMED_OUT',
        code: 'NO_PROGRESS',
        message: timeoutMessage(d.state, d.minutes),
        timed_out_in: d.state,
        finished_at: nowText,
        updated_at: nowText,
      })
      .where('id', '=', d.id)
      .where('state', '=', d.state)
      .where('active_at', '<', cutoff)
      .returningAll()
      .executeTakeFirst();
    if (!row) continue;
    await deviceUpdated(tx, row);
    out.push(row);
  }
  return out;
}

/**
 * The machines with a PENDING deployment in this campaign that another deployment (of another
 * campaign) holds: in progress, and not silent past its own campaign's timeout. One silent past it
 * is timed out here, whatever its campaign's status (a paused or aborted campaign runs no tick of
 * its own), so a device that vanished never holds a machine for good.
 */
export async function heldMachines(tx: Executor, campaignId: string, now: number): Promise<Set<string>> {
  const holders = await tx
    .selectFrom('firmware_deployments as o')
    .innerJoin('firmware_campaigns as oc', 'oc.id', 'o.campaign_id')
    .select(['o.id', 'o.machine_id', 'o.state', 'o.active_at', 'oc.device_timeout_minutes'])
    .where('o.campaign_id', '!=', campaignId)
    .where('o.state', 'in', IN_PROGRESS)
    .where('o.machine_id', 'in', (eb) =>
      eb
        .selectFrom('firmware_deployments as p')
        .select('p.machine_id')
        .where('p.campaign_id', '=', campaignId)
        .where('p.state', '=', 'PENDING'),
    )
    .execute();
  if (holders.length === 0) return new Set();
  const gone = await timeOutSilent(
    tx,
    holders.map((h) => ({ ...h, minutes: Number(h.device_timeout_minutes) })),
    now,
  );
  const freed = new Set(gone.map((r) => r.id));
  return new Set(holders.filter((h) => !freed.has(h.id)).map((h) => h.machine_id));
}

/**
 * The other deployments holding this machine (in progress, not silent past their own campaign's
 * timeout; one silent past it is timed out here, as in `heldMachines`). A late report's revival
 * checks them.
 */
export async function othersHolding(
  tx: Executor,
  machineId: string,
  deploymentId: string,
  now: number,
): Promise<FirmwareDeploymentRow[]> {
  const others = await tx
    .selectFrom('firmware_deployments as o')
    .innerJoin('firmware_campaigns as oc', 'oc.id', 'o.campaign_id')
    .selectAll('o')
    .select('oc.device_timeout_minutes')
    .where('o.machine_id', '=', machineId)
    .where('o.id', '!=', deploymentId)
    .where('o.state', 'in', IN_PROGRESS)
    .execute();
  if (others.length === 0) return [];
  const gone = await timeOutSilent(
    tx,
    others.map((o) => ({ ...o, minutes: Number(o.device_timeout_minutes) })),
    now,
  );
  const freed = new Set(gone.map((r) => r.id));
  return others.filter((o) => !freed.has(o.id)).map(({ device_timeout_minutes: _, ...row }) => row);
}
