// Pure rules of staged campaigns: which wave each device belongs to, which states count as in
// progress or failed, and whether a wave's failures reach the threshold.
import { createHash } from 'node:crypto';
import type { OtaDeviceState, WaveStatus } from '@kioskhub/protocol';

export interface WavePlan {
  percent: number;
  soakMinutes: number;
  approval: 'auto' | 'manual';
}
export interface WaveProgress extends WavePlan {
  status: WaveStatus;
  startedAt: string | null;
  soakUntil: string | null;
  completedAt: string | null;
}

/** Released to the device and not finished: these hold a `maxConcurrent` slot. */
export const IN_PROGRESS: readonly OtaDeviceState[] = [
  'NOTIFIED',
  'DOWNLOADING',
  'DOWNLOADED',
  'VERIFIED',
  'INSTALLING',
  'REBOOTING',
];
export const FAILURES: readonly OtaDeviceState[] = ['FAILED', 'ROLLED_BACK', 'TIMED_OUT'];
export const FINAL: readonly OtaDeviceState[] = [
  'SUCCEEDED',
  'FAILED',
  'ROLLED_BACK',
  'TIMED_OUT',
  'SKIPPED',
  'CANCELLED',
];
/** Before installing starts, an abort still stops the device. */
export const ABORTABLE: readonly OtaDeviceState[] = [
  'PENDING',
  'NOTIFIED',
  'DOWNLOADING',
  'DOWNLOADED',
  'VERIFIED',
];

const RANK: Record<string, number> = {
  PENDING: 0,
  NOTIFIED: 1,
  DOWNLOADING: 2,
  DOWNLOADED: 3,
  VERIFIED: 4,
  INSTALLING: 5,
  REBOOTING: 6,
  SUCCEEDED: 7,
  FAILED: 7,
  ROLLED_BACK: 7,
  TIMED_OUT: 7,
  SKIPPED: 7,
  CANCELLED: 7,
};
export const stateRank = (s: string): number => RANK[s] ?? -1;

/** The message of a deployment timed out in `state` (what the dashboard shows). */
export const timeoutMessage = (state: string, minutes: number): string =>
  `no report for ${minutes} minutes; timed out in ${state}`;

/**
 * The state a TIMED_OUT deployment was in when it timed out (its `timed_out_in`). Unknown (timed
 * out before that was stored): NOTIFIED, the earliest a released deployment can be, so a late
 * report can never skip a step it may not have made (such as REBOOTING).
 */
export function stateBeforeTimeout(timedOutIn: string | null): OtaDeviceState {
  return timedOutIn !== null && IN_PROGRESS.includes(timedOutIn as OtaDeviceState)
    ? (timedOutIn as OtaDeviceState)
    : 'NOTIFIED';
}

/** A transport error while downloading: the only failures retried automatically. */
export const isDownloadError = (code: string | undefined): boolean =>
  code !== undefined && /^DOWNLOAD_/.test(code);

/**
 * Orders the devices (a stable shuffle by campaign, so the canary is not always the same
 * machines) and gives each its wave: wave k holds devices up to ceil(n × percent_k / 100).
 */
export function assignWaves(campaignId: string, machineIds: readonly string[], waves: readonly WavePlan[]) {
  const order = [...machineIds].sort((a, b) => {
    const ha = createHash('sha256').update(`${campaignId}:${a}`).digest('hex');
    const hb = createHash('sha256').update(`${campaignId}:${b}`).digest('hex');
    return ha < hb ? -1 : ha > hb ? 1 : 0;
  });
  const n = order.length;
  const bounds = waves.map((w) => Math.ceil((n * w.percent) / 100));
  return order.map((machineId, ordinal) => {
    const wave = bounds.findIndex((b) => ordinal < b);
    return { machineId, ordinal, wave: wave < 0 ? waves.length - 1 : wave };
  });
}

/** Waves must reach further each time and end at 100 %. */
export function checkWaves(waves: readonly WavePlan[]): string | undefined {
  let last = 0;
  for (const [i, w] of waves.entries()) {
    if (w.percent <= last) return `waves[${i}].percent: must be more than the wave before (${last})`;
    last = w.percent;
  }
  if (last !== 100) return 'waves: the last wave must reach 100 percent';
  return undefined;
}

/** Failures since the operator last resumed past them reach the threshold. */
export function thresholdReached(
  c: { failureThresholdPercent: number; minFinishedForThreshold: number; acknowledgedFailures: number },
  counts: { failed: number; succeeded: number },
): boolean {
  const failed = Math.max(0, counts.failed - c.acknowledgedFailures);
  const finished = failed + counts.succeeded;
  if (failed === 0 || finished < c.minFinishedForThreshold) return false;
  return failed * 100 >= c.failureThresholdPercent * finished;
}
