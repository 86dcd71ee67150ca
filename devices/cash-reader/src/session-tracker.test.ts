import { describe, expect, it } from 'vitest';
import type { ActiveSession } from './kioskhub-client.js';
import { memoryLogger } from '@kioskhub/agent-kit';
import { createSessionTracker, noSessionOrderNumber, selectOwnSession } from './session-tracker.js';

const session = (orderNumber: string, kioskId: string | undefined, startedAt: string): ActiveSession => ({
  orderNumber,
  totalRequired: 250,
  amountInserted: 0,
  remainingAmount: 250,
  startedAt,
  ...(kioskId ? { kioskId } : {}),
});

describe('choosing this kiosk’s session', () => {
  const sessions = [
    session('A-1', 'KIOSK1', '2026-01-01T10:00:00Z'),
    session('B-1', 'KIOSK2', '2026-01-01T10:01:00Z'),
    session('S-1', undefined, '2026-01-01T09:00:00Z'),
  ];

  it('never takes the first open session of the site, only one its own kiosk opened', () => {
    expect(selectOwnSession(sessions, 'KIOSK2').session?.orderNumber).toBe('B-1');
    expect(selectOwnSession(sessions, 'KIOSK1').session?.orderNumber).toBe('A-1');
    expect(selectOwnSession(sessions, 'KIOSK3')).toEqual({ session: undefined, mine: 0 });
  });

  it('takes the newest when a kiosk has left an older session open', () => {
    const both = [...sessions, session('A-2', 'KIOSK1', '2026-01-01T10:05:00Z')];
    expect(selectOwnSession(both, 'KIOSK1')).toMatchObject({ session: { orderNumber: 'A-2' }, mine: 2 });
  });

  it('names unallocated cash after the kiosk, within the order number limit', () => {
    expect(noSessionOrderNumber('KIOSK1')).toBe('NO-SESSION-KIOSK1');
    expect(noSessionOrderNumber('K'.repeat(64))).toHaveLength(64);
  });
});

describe('session tracker', () => {
  it('binds to the cached session, asks the server when none is known, and falls back to unallocated', async () => {
    let answer: ActiveSession[] | Error = [];
    let asked = 0;
    const client = {
      activeSessions: async () => {
        asked += 1;
        if (answer instanceof Error) throw answer;
        return answer;
      },
    };
    const log = memoryLogger();
    const tracker = createSessionTracker({ client, kioskId: 'KIOSK1', log, refreshTimeoutMs: 1000 });

    expect(await tracker.bindingForNewInsert()).toEqual({
      orderNumber: 'NO-SESSION-KIOSK1',
      basis: 'no-session',
    });
    expect(asked).toBe(1);

    answer = [
      session('B-1', 'KIOSK2', '2026-01-01T10:00:00Z'),
      session('A-1', 'KIOSK1', '2026-01-01T10:01:00Z'),
    ];
    expect(await tracker.bindingForNewInsert()).toEqual({ orderNumber: 'A-1', basis: 'session' });
    expect(tracker.cachedOrderNumber()).toBe('A-1');

    answer = new Error('ECONNREFUSED');
    expect(await tracker.refresh()).toBe(false);
    expect(tracker.cachedOrderNumber()).toBe('A-1'); // an outage does not forget the session
    expect(await tracker.bindingForNewInsert()).toEqual({ orderNumber: 'A-1', basis: 'session' });

    tracker.closed('A-1');
    expect(await tracker.bindingForNewInsert()).toEqual({
      orderNumber: 'NO-SESSION-KIOSK1',
      basis: 'no-session',
    });
    expect(log.lines.filter((l) => l.includes('cannot reach the server'))).toHaveLength(1);
  });
});
