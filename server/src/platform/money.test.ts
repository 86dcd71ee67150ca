import { describe, expect, it } from 'vitest';
import { currencyExponent, formatMinor, majorToMinor, minorToMajor } from './money.js';

describe('major/minor unit conversion (PHP, two decimals as before)', () => {
  it('converts amounts with up to two decimals exactly', () => {
    expect(majorToMinor(100, 'PHP')).toBe(10_000);
    expect(majorToMinor(0.1, 'PHP')).toBe(10);
    expect(majorToMinor(19.99, 'PHP')).toBe(1999);
    expect(majorToMinor(1.005 * 2, 'PHP')).toBe(201);
  });
  it('refuses more than two decimals and non-numbers', () => {
    expect(majorToMinor(10.005, 'PHP')).toBeUndefined();
    expect(majorToMinor(0.001, 'PHP')).toBeUndefined();
    expect(majorToMinor(Number.NaN, 'PHP')).toBeUndefined();
    expect(majorToMinor(Number.POSITIVE_INFINITY, 'PHP')).toBeUndefined();
  });
  it('goes back to major units', () => {
    expect(minorToMajor(25_050, 'PHP')).toBe(250.5);
    expect(minorToMajor(1, 'PHP')).toBe(0.01);
  });
});

describe('currency exponents (ISO 4217)', () => {
  it('knows the codes without two decimals and validates the rest', () => {
    expect(['UGX', 'JPY', 'KRW', 'XOF'].map(currencyExponent)).toEqual([0, 0, 0, 0]);
    expect(['KWD', 'BHD', 'IQD', 'TND'].map(currencyExponent)).toEqual([3, 3, 3, 3]);
    expect(['CLF', 'UYW'].map(currencyExponent)).toEqual([4, 4]);
    expect(['PHP', 'INR', 'USD', 'EUR', 'KES'].map(currencyExponent)).toEqual([2, 2, 2, 2, 2]);
    expect(() => currencyExponent('ABC')).toThrow(RangeError);
    expect(() => currencyExponent('php')).toThrow(RangeError);
  });

  it('UGX, JPY and KWD amounts round-trip exactly', () => {
    const misses: string[] = [];
    for (let minor = 0; minor <= 10_000_000; minor += 997) {
      for (const currency of ['UGX', 'JPY', 'KWD', 'PHP', 'CLF']) {
        if (majorToMinor(minorToMajor(minor, currency), currency) !== minor)
          misses.push(`${minor} ${currency}`);
      }
    }
    expect(misses).toEqual([]);
    expect(majorToMinor(50_000, 'UGX')).toBe(50_000);
    expect(minorToMajor(50_000, 'UGX')).toBe(50_000);
    expect(majorToMinor(1500, 'JPY')).toBe(1500);
    expect(majorToMinor(1.25, 'KWD')).toBe(1250);
    expect(majorToMinor(0.005, 'KWD')).toBe(5);
    expect(minorToMajor(1_234_567, 'KWD')).toBe(1234.567);
    expect(majorToMinor(1234.567, 'KWD')).toBe(1_234_567);
  });

  it('refuses digits the currency does not have', () => {
    expect(majorToMinor(0.5, 'UGX')).toBeUndefined();
    expect(majorToMinor(10.5, 'JPY')).toBeUndefined();
    expect(majorToMinor(1.0005, 'KWD')).toBeUndefined();
    expect(majorToMinor(1.005, 'PHP')).toBeUndefined();
    expect(majorToMinor(Number.NaN, 'PHP')).toBeUndefined();
    expect(majorToMinor(Number.POSITIVE_INFINITY, 'UGX')).toBeUndefined();
  });

  it('PHP and INR convert as before (two decimals)', () => {
    expect(majorToMinor(250, 'PHP')).toBe(25_000);
    expect(majorToMinor(0.29, 'PHP')).toBe(29);
    expect(majorToMinor(19.99, 'INR')).toBe(1999);
    expect(minorToMajor(1999, 'INR')).toBe(19.99);
  });

  it('formats minor units with exactly the currency decimals', () => {
    expect(formatMinor(25_000, 'PHP')).toBe('250.00');
    expect(formatMinor(5, 'PHP')).toBe('0.05');
    expect(formatMinor(5000, 'UGX')).toBe('5000');
    expect(formatMinor(1250, 'KWD')).toBe('1.250');
    expect(formatMinor(-1050, 'KWD')).toBe('-1.050');
    expect(formatMinor(7, 'CLF')).toBe('0.0007');
  });
});
