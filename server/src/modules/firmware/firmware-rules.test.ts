// Pure rules of firmware over the air: version order, wave assignment, the threshold, Range.
import { describe, expect, it } from 'vitest';
import {
  assignWaves,
  checkWaves,
  isDownloadError,
  stateBeforeTimeout,
  thresholdReached,
  timeoutMessage,
} from './campaign-rules.js';
import { parseRange } from './device.routes.js';
import { compareVersions, parseManifest } from './manifest.js';

describe('firmware rules', () => {
  it('orders versions part by part, numerically, pre-releases first', () => {
    expect(compareVersions('1.10.0', '1.9.3')).toBe(1);
    expect(compareVersions('2.0', '2.0.0')).toBe(0);
    expect(compareVersions('2.0.0-rc1', '2.0.0')).toBe(-1);
    expect(compareVersions('1.0.0', '1.0.1')).toBe(-1);
  });

  it('gives each wave its cumulative share, in a stable order per campaign', () => {
    const ids = Array.from({ length: 10 }, (_, i) => `M${i}`);
    const waves = [
      { percent: 10, soakMinutes: 0, approval: 'auto' as const },
      { percent: 50, soakMinutes: 0, approval: 'manual' as const },
      { percent: 100, soakMinutes: 0, approval: 'auto' as const },
    ];
    const plan = assignWaves('c1', ids, waves);
    expect(plan.map((p) => p.wave)).toEqual([0, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(assignWaves('c1', [...ids].reverse(), waves)).toEqual(plan);
    expect(assignWaves('c2', ids, waves).map((p) => p.machineId)).not.toEqual(plan.map((p) => p.machineId));
    expect(assignWaves('c1', ['only'], waves)[0]).toMatchObject({ wave: 0 });
    expect(checkWaves([{ percent: 50, soakMinutes: 0, approval: 'auto' }])).toMatch(/100/);
    expect(checkWaves(waves)).toBeUndefined();
  });

  it('pauses only on enough finished devices, net of acknowledged failures', () => {
    const policy = { failureThresholdPercent: 20, minFinishedForThreshold: 5, acknowledgedFailures: 0 };
    expect(thresholdReached(policy, { failed: 2, succeeded: 2 })).toBe(false);
    expect(thresholdReached(policy, { failed: 1, succeeded: 4 })).toBe(true);
    expect(thresholdReached({ ...policy, acknowledgedFailures: 1 }, { failed: 1, succeeded: 10 })).toBe(
      false,
    );
    expect(thresholdReached({ ...policy, failureThresholdPercent: 0 }, { failed: 0, succeeded: 9 })).toBe(
      false,
    );
    expect(isDownloadError('DOWNLOAD_FAILED')).toBe(true);
    expect(isDownloadError('INSTALL_FAILED')).toBe(false);
  });

  it('parses Range headers', () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-5', 100)).toEqual({ start: 95, end: 99 });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=9-3', 100)).toBeUndefined(); // invalid: ignored, the whole image
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
  });

  it('refuses manifests with unknown or malformed fields', () => {
    const ok = {
      product: 'p',
      hwModels: ['h'],
      version: '1.0.0',
      sha256: 'a'.repeat(64),
      size: 1,
      allowDowngrade: false,
    };
    expect(parseManifest(JSON.stringify(ok))).toEqual(ok);
    expect(() => parseManifest(JSON.stringify({ ...ok, extra: 1 }))).toThrow(/unknown field/);
    expect(() => parseManifest(JSON.stringify({ ...ok, sha256: 'XYZ' }))).toThrow(/sha256/);
    expect(() => parseManifest(JSON.stringify({ ...ok, hwModels: [] }))).toThrow(/hwModels/);
    expect(() => parseManifest('[]')).toThrow(/object/);
  });

  it('a timeout keeps the state it happened in; unknown reads as NOTIFIED (a late report skips nothing)', () => {
    for (const state of ['NOTIFIED', 'DOWNLOADING', 'INSTALLING', 'REBOOTING'])
      expect(stateBeforeTimeout(state)).toBe(state);
    expect(timeoutMessage('REBOOTING', 0.5)).toBe('no report for 0.5 minutes; timed out in REBOOTING');
    expect(stateBeforeTimeout(null)).toBe('NOTIFIED');
    // Only a state a deployment can time out in.
    expect(stateBeforeTimeout('SUCCEEDED')).toBe('NOTIFIED');
    expect(stateBeforeTimeout('PENDING')).toBe('NOTIFIED');
  });
});
