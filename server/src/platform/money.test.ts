import { describe, expect, it } from 'vitest';
import { majorToMinor, minorToMajor } from './money.js';

describe('major/minor unit conversion', () => {
  it('converts amounts with up to two decimals exactly', () => {
    expect(majorToMinor(100)).toBe(10_000);
    expect(majorToMinor(0.1)).toBe(10);
    expect(majorToMinor(19.99)).toBe(1999);
    expect(majorToMinor(1.005 * 2)).toBe(201);
  });
  it('refuses more than two decimals and non-numbers', () => {
    expect(majorToMinor(10.005)).toBeUndefined();
    expect(majorToMinor(0.001)).toBeUndefined();
    expect(majorToMinor(Number.NaN)).toBeUndefined();
    expect(majorToMinor(Number.POSITIVE_INFINITY)).toBeUndefined();
  });
  it('goes back to major units', () => {
    expect(minorToMajor(25_050)).toBe(250.5);
    expect(minorToMajor(1)).toBe(0.01);
  });
});
