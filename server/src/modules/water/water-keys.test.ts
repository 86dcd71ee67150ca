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
});
