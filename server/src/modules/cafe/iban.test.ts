import { describe, expect, it } from 'vitest';
import { isBic, normaliseIban } from './iban.js';

describe('normaliseIban', () => {
  it('accepts valid IBANs in any spacing and case', () => {
    expect(normaliseIban('DE89 3704 0044 0532 0130 00')).toBe('DE89370400440532013000');
    expect(normaliseIban('gb82west12345698765432')).toBe('GB82WEST12345698765432');
    expect(normaliseIban('BE71 0961 2345 6769')).toBe('BE71096123456769');
  });
  it('refuses a wrong check digit, a wrong length and garbage', () => {
    expect(normaliseIban('DE89 3704 0044 0532 0130 01')).toBeNull();
    expect(normaliseIban('DE89 3704 0044 0532 0130')).toBeNull();
    expect(normaliseIban('not an iban')).toBeNull();
    expect(normaliseIban('')).toBeNull();
  });
  it('checks BICs', () => {
    expect(isBic('GEBABEBB')).toBe(true);
    expect(isBic('DEUTDEFF500')).toBe(true);
    expect(isBic('GEBA')).toBe(false);
  });
});
