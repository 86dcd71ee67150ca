// What MQTT devices publish is parsed at the edge: the contract's shapes pass, anything else is
// refused with a reason (and then only logged).
import { describe, expect, it } from 'vitest';
import { MAX_PAYLOAD_BYTES, parseUpMessage } from './mqtt.messages.js';

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('parseUpMessage', () => {
  it('reads command reports, status, events, telemetry and OTA reports', () => {
    expect(parseUpMessage('cmd/01ABC', json({ phase: 'received' }))).toEqual({
      ok: true,
      message: { kind: 'report', commandId: '01ABC', report: { phase: 'received' } },
    });
    expect(
      parseUpMessage('cmd/01ABC', json({ phase: 'done', status: 'FAILED', failureCode: 'JAM' })).ok,
    ).toBe(true);
    expect(parseUpMessage('cmd/01ABC', json({ phase: 'rejected', reason: 'EXPIRED' })).ok).toBe(true);
    expect(parseUpMessage('status', json({ online: true, firmware: '1.0', bootId: 'b1' })).ok).toBe(true);
    expect(parseUpMessage('status', json({ online: false })).ok).toBe(true);
    expect(parseUpMessage('evt', json({ eventId: 'e1', type: 'door', open: true })).ok).toBe(true);
    expect(parseUpMessage('tel', json({ status: 'BUSY', tempC: 4 })).ok).toBe(true);
    expect(parseUpMessage('ota', json({ state: 'DOWNLOADING' })).ok).toBe(true);
  });

  it.each([
    ['cmd/01ABC', Buffer.from('not json')],
    ['cmd/01ABC', json({ phase: 'done', status: 'MAYBE' })],
    ['cmd/01ABC', json({ phase: 'exploded' })],
    ['cmd/../x', json({ phase: 'received' })],
    ['cmd/a/b', json({ phase: 'received' })],
    ['status', json({ online: 'yes' })],
    ['evt', json({ type: 'no id' })],
    ['tel', json({ status: 'ASLEEP' })],
    ['ota', json([1, 2])],
    ['nonsense', json({})],
    ['tel', Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 32)],
  ])('refuses up/%s with a reason', (rest, payload) => {
    const parsed = parseUpMessage(rest, payload);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason.length).toBeGreaterThan(0);
  });
});
