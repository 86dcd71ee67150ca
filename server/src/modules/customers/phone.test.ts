import { describe, expect, it } from 'vitest';
import { isE164, maskPhone, msisdn, nationalNumber, needsCountryCode, normalisePhone } from './phone.js';

describe('normalisePhone', () => {
  it('reads local, international and +-forms of one Kenyan number as the same E.164', () => {
    for (const form of [
      '0712345678',
      '0712 345 678',
      '254712345678',
      '+254712345678',
      '+254 (712) 345-678',
      '00254712345678',
      '712345678',
    ]) {
      expect(normalisePhone(form, '254'), form).toBe('+254712345678');
    }
  });
  it('keeps another country’s international number as it is', () => {
    expect(normalisePhone('+256772123456', '254')).toBe('+256772123456');
    expect(normalisePhone('00256772123456', '254')).toBe('+256772123456');
  });
  it('needs an international form when the tenant has no calling code', () => {
    expect(normalisePhone('0712345678', null)).toBeNull();
    expect(normalisePhone('+919876543210', null)).toBe('+919876543210');
    expect(normalisePhone('919876543210', null)).toBe('+919876543210');
  });
  it('says when the calling code cannot change the answer (international forms)', () => {
    const forms = [
      '+254712345678',
      ' +254 (712) 345-678',
      '00254712345678',
      '(00) 256 772 123456',
      '+0712',
      '00',
    ];
    for (const form of forms) {
      expect(needsCountryCode(form), form).toBe(false);
      for (const code of ['254', '1', '44', null])
        expect(normalisePhone(form, code), `${form} with ${code}`).toBe(normalisePhone(form, null));
    }
    for (const form of ['0712345678', '254712345678', '712345678', ''])
      expect(needsCountryCode(form), form).toBe(true);
    expect(normalisePhone('0712345678', '254')).not.toBe(normalisePhone('0712345678', null));
  });
  it('refuses what is not a phone number', () => {
    for (const bad of [
      '',
      '   ',
      'abc',
      '+',
      '+0712345678',
      '12',
      '+1234567890123456',
      '0712;drop',
      'TSF12AB34',
    ]) {
      expect(normalisePhone(bad, '254'), bad).toBeNull();
    }
  });
  it('gives the forms the providers want', () => {
    expect(isE164('+254712345678')).toBe(true);
    expect(msisdn('+256772123456')).toBe('256772123456');
    expect(nationalNumber('+256772123456', '256')).toBe('772123456');
    expect(maskPhone('+254712345678')).toBe('+2547•••••678');
  });
});
