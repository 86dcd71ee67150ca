import { describe, expect, it } from 'vitest';
import { encodeCommand, parseAcceptorLine } from './line-protocol.js';

describe('acceptor line protocol', () => {
  it('reads bills and coins in exact minor units', () => {
    expect(parseAcceptorLine('BILL:100')).toEqual({ type: 'insert', kind: 'BILL', amountMinor: 10_000 });
    expect(parseAcceptorLine('COIN:5\r')).toEqual({ type: 'insert', kind: 'COIN', amountMinor: 500 });
    expect(parseAcceptorLine('  coin: 0.25 ')).toEqual({ type: 'insert', kind: 'COIN', amountMinor: 25 });
  });

  it('reads a third decimal in thousandths (a 5-fils coin of a KWD acceptor)', () => {
    expect(parseAcceptorLine('COIN:0.005')).toEqual({
      type: 'insert',
      kind: 'COIN',
      amountMinor: 5,
      scale: 3,
    });
    expect(parseAcceptorLine('BILL:1.234')).toEqual({
      type: 'insert',
      kind: 'BILL',
      amountMinor: 1234,
      scale: 3,
    });
  });

  it('knows the status lines and comments', () => {
    expect(parseAcceptorLine('READY\r')).toEqual({ type: 'ready' });
    expect(parseAcceptorLine('PONG')).toEqual({ type: 'pong' });
    expect(parseAcceptorLine('# debug: pulses=4')).toEqual({ type: 'comment', text: 'debug: pulses=4' });
    expect(parseAcceptorLine('')).toEqual({ type: 'blank' });
    expect(parseAcceptorLine('\r')).toEqual({ type: 'blank' });
  });

  it('flags an insert whose amount cannot be read instead of ignoring it', () => {
    for (const line of [
      'BILL:',
      'BILL:abc',
      'COIN:-5',
      'BILL:0',
      'BILL:0.000',
      'BILL:1.2345',
      'BILL:999999',
    ]) {
      expect(parseAcceptorLine(line)).toMatchObject({ type: 'malformed', line });
    }
  });

  it('passes anything else through as other', () => {
    expect(parseAcceptorLine('STATS bills=3')).toEqual({ type: 'other', line: 'STATS bills=3' });
    expect(parseAcceptorLine('BILLS:3')).toEqual({ type: 'other', line: 'BILLS:3' });
  });

  it('encodes commands as lines', () => {
    expect(encodeCommand('PING')).toBe('PING\n');
    expect(encodeCommand('TEST:BILL:100')).toBe('TEST:BILL:100\n');
  });
});
