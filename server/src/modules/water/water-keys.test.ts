import { describe, expect, it } from 'vitest';
import { parseKioskTime } from './dispenses.js';
import { createWaterKeys, pinVerifier } from './water-keys.js';

describe('water credential-cache keys', () => {
  const keys = createWaterKeys(Buffer.from('a'.repeat(64)));

  it('opens a seal only for its own tenant and customer, and not under another PIN_SECRET', () => {
    const sealed = keys.seal('t1', 'c1', '0042');
    expect(sealed).not.toContain('0042');
    expect(keys.open('t1', 'c1', sealed)).toBe('0042');
    expect(keys.open('t1', 'c2', sealed)).toBeNull();
    expect(keys.open('t2', 'c1', sealed)).toBeNull();
    expect(createWaterKeys(Buffer.from('b'.repeat(64))).open('t1', 'c1', sealed)).toBeNull();
    expect(keys.open('t1', 'c1', 'garbage')).toBeNull();
  });

  it('gives every kiosk its own secret, so verifiers differ per kiosk', () => {
    const a = keys.kioskSecret('t1', 'W1');
    const b = keys.kioskSecret('t1', 'W2');
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
    expect(keys.kioskSecret('t2', 'W1').equals(a)).toBe(false);
    expect(pinVerifier(a, 'TSFAAAAAA', '1234')).not.toBe(pinVerifier(b, 'TSFAAAAAA', '1234'));
    expect(pinVerifier(a, 'TSFAAAAAA', '1234')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('parseKioskTime', () => {
  it('reads ISO text, Unix seconds and Unix milliseconds as the same instant', () => {
    const ms = Date.UTC(2026, 11, 3, 10, 0, 0);
    expect(parseKioskTime('2026-12-03T10:00:00Z')).toBe(ms);
    expect(parseKioskTime(ms / 1000)).toBe(ms);
    expect(parseKioskTime(ms)).toBe(ms);
    expect(parseKioskTime(String(ms / 1000))).toBe(ms);
  });
  it('refuses what is not a time', () => {
    for (const bad of ['yesterday', '', '-5', 0, -1]) expect(parseKioskTime(bad)).toBeNull();
  });
  it('refuses a day or time that does not exist, and a year past 9999 in UTC', () => {
    for (const bad of [
      '2026-02-30T10:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-12-03T24:00:00Z',
      '2026-12-03T10:60:00Z',
      '2026-12-03T10:00:60Z',
      '9999-12-31T23:00:00-05:00',
      '2026-12-03T10:00:00+25:00',
    ])
      expect(parseKioskTime(bad), bad).toBeNull();
  });
  it('reads offsets, and a time without one as the wall clock of the zone given (UTC by default)', () => {
    const ms = Date.UTC(2026, 11, 3, 10, 0, 0);
    expect(parseKioskTime('2026-12-03T15:30:00+05:30')).toBe(ms);
    expect(parseKioskTime('2026-12-03T15:30:00+0530')).toBe(ms);
    expect(parseKioskTime('2026-12-03T05:00:00-05')).toBe(ms);
    expect(parseKioskTime('2026-12-03 10:00:00.250')).toBe(ms + 250);
    expect(parseKioskTime('2026-12-03T15:30:00', 'Asia/Kolkata')).toBe(ms);
    // Across a DST change: 8 March 2026, New York goes from −5 to −4 at 02:00.
    expect(parseKioskTime('2026-03-08T12:00:00', 'America/New_York')).toBe(Date.UTC(2026, 2, 8, 16));
    expect(parseKioskTime('2026-03-07T12:00:00', 'America/New_York')).toBe(Date.UTC(2026, 2, 7, 17));
  });
});
