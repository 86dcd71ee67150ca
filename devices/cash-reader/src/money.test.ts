import { describe, expect, it } from 'vitest';
import { formatMinor, minorToMajor, parseAcceptorAmount, parseMajorAmount } from './money.js';

describe('amount conversion', () => {
  it('parses major units exactly into minor units', () => {
    expect(parseMajorAmount('100')).toBe(10_000);
    expect(parseMajorAmount('5')).toBe(500);
    expect(parseMajorAmount('0.25')).toBe(25);
    expect(parseMajorAmount('20.5')).toBe(2050);
    expect(parseMajorAmount('1000.01')).toBe(100_001);
    expect(parseMajorAmount('100000')).toBe(10_000_000);
  });

  it('rejects anything that is not a positive amount with at most 2 decimals', () => {
    for (const bad of [
      '',
      '0',
      '0.00',
      '-5',
      '+5',
      '1.234',
      '1e3',
      'abc',
      '1,000',
      ' 5',
      '100001',
      '.5',
      '5.',
      'NaN',
      'Infinity',
    ]) {
      expect(parseMajorAmount(bad), bad).toBeUndefined();
    }
  });

  it('turns minor units back into the major-unit number the server reads exactly', () => {
    const cases: [number, string][] = [
      [1, '0.01'],
      [25, '0.25'],
      [29, '0.29'],
      [2050, '20.5'],
      [10_000, '100'],
      [100_001, '1000.01'],
      [10_000_000, '100000'],
    ];
    for (const [minor, json] of cases) {
      expect(JSON.stringify(minorToMajor(minor))).toBe(json);
      expect(Math.round(minorToMajor(minor) * 100)).toBe(minor);
    }
    expect(() => minorToMajor(0)).toThrow(RangeError);
    expect(() => minorToMajor(1.5)).toThrow(RangeError);
  });

  it('formats for logs', () => {
    expect(formatMinor(2550)).toBe('25.50');
    expect(formatMinor(5)).toBe('0.05');
    expect(formatMinor(5, 3)).toBe('0.005');
    expect(formatMinor(1250, 3)).toBe('1.250');
  });

  it('keeps an acceptor amount with a third decimal in thousandths, sent exactly', () => {
    expect(parseAcceptorAmount('0.25')).toEqual({ amountMinor: 25 });
    expect(parseAcceptorAmount('100')).toEqual({ amountMinor: 10_000 });
    expect(parseAcceptorAmount('0.005')).toEqual({ amountMinor: 5, scale: 3 });
    expect(parseAcceptorAmount('1.250')).toEqual({ amountMinor: 1250, scale: 3 });
    expect(parseAcceptorAmount('100000.000')).toEqual({ amountMinor: 100_000_000, scale: 3 });
    for (const bad of ['0.000', '1.2345', '100000.001', '.005', '1e-3', '-0.005'])
      expect(parseAcceptorAmount(bad), bad).toBeUndefined();
    for (const [minor, json] of [
      [5, '0.005'],
      [1255, '1.255'],
      [100_001, '100.001'],
    ] as const)
      expect(JSON.stringify(minorToMajor(minor, 3))).toBe(json);
  });
});
