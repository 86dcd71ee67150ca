// One deployment per machine at a time (docs/firmware.md "One machine, one deployment at a
// time"). When several campaigns target the same machine, a deployment is released only while no
// other deployment of that machine is in progress; until then it stays PENDING: it is not offered,
// holds no maxConcurrent slot and cannot time out. Only two things put a deployment in progress, a
// tick releasing it and a late report reviving a TIMED_OUT one, and both take `lockReleases` first
// (PostgreSQL; SQLite runs one transaction at a time), so two campaigns never both take a machine.
// Several campaigns waiting for one machine take it in the order they were created: a tick leaves
// a free machine to an older running campaign whose deployment waits for it (`olderWaiting`). The
// operator's actions (start, pause, resume, approve, abort, retry-failed) change who waits, and
// take the lock too, so a tick never decides on a campaign half-way through one.
import { sql } from 'kysely';
import type { Executor } from '../../platform/db/database.js';
import type { FirmwareDeploymentRow } from '../../platform/db/schema.js';
import { IN_PROGRESS, timeoutMessage, type WaveProgress } from './campaign-rules.js';
import { deviceUpdated } from './firmware.events.js';

/**
 * Serialises, per tenant, the transactions that may put a deployment in progress or change which
 * campaigns wait for a machine, until the caller's transaction ends. Take it before writing any
 * deployment row: a tick holds only its own campaign's row by then (claimed), an operator's action
 * only the campaign's row it acts on, a late report at most its own campaign's row (taken first as
 * well, when it un-accepts a failure); no holder of this lock then waits for another campaign's
 * row, so waiting for it never closes a cycle with the row locks of other writers.
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

/** The deployment another one waits for: the API's `waitingFor`. */
export interface Turn {
  campaignId: string;
  deploymentId: string;
}

interface CampaignKey {
  id: string;
  tenant_id: string;
  created_at: string;
}

/** Campaign `a` was created before `b` (the same millisecond: the smaller id). */
const olderThan = (a: Omit<CampaignKey, 'tenant_id'>, b: Omit<CampaignKey, 'tenant_id'>): boolean =>
  a.created_at < b.created_at || (a.created_at === b.created_at && a.id < b.id);

/**
 * Per machine with a PENDING deployment in campaign `c`: the deployment of the oldest campaign
 * created before `c` that waits for the same machine (PENDING, in a wave its RUNNING campaign has
 * reached and runs). The machine is that one's turn first. A paused campaign, or one whose wave
 * with the machine has not started (or awaits approval), waits for nothing yet and holds no turn.
 */
export async function olderWaiting(ex: Executor, c: CampaignKey): Promise<Map<string, Turn>> {
  const rows = await ex
    .selectFrom('firmware_deployments as p')
    .innerJoin('firmware_campaigns as pc', 'pc.id', 'p.campaign_id')
    .select([
      'p.id',
      'p.machine_id',
      'p.wave',
      'pc.id as campaign_id',
      'pc.created_at',
      'pc.current_wave',
      'pc.waves',
    ])
    .where('p.tenant_id', '=', c.tenant_id)
    .where('p.campaign_id', '!=', c.id)
    .where('p.state', '=', 'PENDING')
    .where('pc.status', '=', 'RUNNING')
    .where((eb) =>
      eb.or([
        eb('pc.created_at', '<', c.created_at),
        eb.and([eb('pc.created_at', '=', c.created_at), eb('pc.id', '<', c.id)]),
      ]),
    )
    .where('p.machine_id', 'in', (eb) =>
      eb
        .selectFrom('firmware_deployments as q')
        .select('q.machine_id')
        .where('q.campaign_id', '=', c.id)
        .where('q.state', '=', 'PENDING'),
    )
    .execute();
  const first = new Map<string, Turn & { created_at: string }>();
  for (const r of rows) {
    const current = Number(r.current_wave);
    const waves = JSON.parse(r.waves) as WaveProgress[];
    if (Number(r.wave) > current || waves[current]?.status !== 'RUNNING') continue;
    const seen = first.get(r.machine_id);
    const mine = { id: r.campaign_id, created_at: r.created_at };
    if (!seen || olderThan(mine, { id: seen.campaignId, created_at: seen.created_at }))
      first.set(r.machine_id, { campaignId: r.campaign_id, deploymentId: r.id, created_at: r.created_at });
  }
  return new Map([...first].map(([m, t]) => [m, { campaignId: t.campaignId, deploymentId: t.deploymentId }]));
}

/**
 * What each PENDING deployment of campaign `c` waits for, by machine: the deployment of another
 * campaign holding the machine (in progress), else the older campaign's deployment whose turn it
 * is first (`olderWaiting`). Read only (a holder silent past its timeout is named until a tick
 * times it out).
 */
export async function waitingFor(ex: Executor, c: CampaignKey): Promise<Map<string, Turn>> {
  const holders = await ex
    .selectFrom('firmware_deployments as o')
    .select(['o.id', 'o.machine_id', 'o.campaign_id'])
    .where('o.tenant_id', '=', c.tenant_id)
    .where('o.campaign_id', '!=', c.id)
    .where('o.state', 'in', IN_PROGRESS)
    .where('o.machine_id', 'in', (eb) =>
      eb
        .selectFrom('firmware_deployments as p')
        .select('p.machine_id')
        .where('p.campaign_id', '=', c.id)
        .where('p.state', '=', 'PENDING'),
    )
    .orderBy('o.notified_at')
    .orderBy('o.id')
    .execute();
  const out = await olderWaiting(ex, c);
  const named = new Set<string>();
  for (const h of holders) {
    if (named.has(h.machine_id)) continue;
    named.add(h.machine_id);
    out.set(h.machine_id, { campaignId: h.campaign_id, deploymentId: h.id });
  }
  return out;
}
