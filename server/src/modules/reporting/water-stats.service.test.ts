import { describe, expect, it } from 'vitest';
import { isTapFault, parseTaps } from './water-stats.service.js';

describe('water kiosk taps from a heartbeat', () => {
  it('reads taps in order, with faults and totals, and skips what is not a tap', () => {
    const json = JSON.stringify([
      { tap: 2, status: 'valve_fault', totalMl: 500 },
      { tap: 1, status: 'ok', total_ml: 1200 },
      { tap: 'x', status: 'OK' },
      null,
      { tap: 3 },
    ]);
    expect(parseTaps(json)).toEqual([
      { tap: 1, status: 'ok', fault: false, totalMl: 1200 },
      { tap: 2, status: 'valve_fault', fault: true, totalMl: 500 },
      { tap: 3, status: 'UNKNOWN', fault: true, totalMl: null },
    ]);
  });

  it('takes nothing from text that is not a JSON array', () => {
    for (const bad of [null, '', 'not json', '{"tap":1}', '42']) expect(parseTaps(bad)).toEqual([]);
  });

  it('counts every status but the working ones as a fault', () => {
    for (const ok of ['OK', 'idle', ' Ready ', 'DISPENSING', 'busy', 'online'])
      expect(isTapFault(ok)).toBe(false);
    for (const bad of ['FAULT', 'LEAK', 'VALVE_STUCK', 'OFFLINE', 'ERROR', ''])
      expect(isTapFault(bad)).toBe(true);
  });
});
