import { describe, expect, it } from 'vitest';
import { epcPayload, EpcError } from './epc-qr.js';
import { checkSignature, signatureHeader } from './bank.signature.js';
import { normaliseRfReference, rfReference, rfReferenceForPayment } from './rf-reference.js';

describe('ISO 11649 RF creditor reference', () => {
  it('computes the check digits of the standard example', () => {
    expect(rfReference('539007547034')).toBe('RF18539007547034');
    expect(normaliseRfReference('RF18 5390 0754 7034')).toBe('RF18539007547034');
    expect(normaliseRfReference('rf18539007547034')).toBe('RF18539007547034');
  });

  it('refuses a mistyped reference and bad bodies', () => {
    expect(normaliseRfReference('RF19539007547034')).toBeNull();
    expect(normaliseRfReference('RF18539007547043')).toBeNull();
    expect(normaliseRfReference('XX18539007547034')).toBeNull();
    expect(() => rfReference('')).toThrow();
    expect(() => rfReference('A'.repeat(22))).toThrow();
    expect(() => rfReference('AB-12')).toThrow();
  });

  it('gives every payment its own valid reference, letters included', () => {
    const ids = ['01KBN3Z7Q0ABCDEFGHJKMNPQRS', '01KBN3Z7Q0ABCDEFGHJKMNPQRT', '01KBN3Z7Q1ZZZZZZZZZZZZZZZZ'];
    const refs = ids.map(rfReferenceForPayment);
    expect(new Set(refs).size).toBe(3);
    for (const ref of refs) {
      expect(ref).toMatch(/^RF\d{2}[0-9A-Z]{12}$/);
      expect(normaliseRfReference(ref)).toBe(ref);
    }
  });
});

describe('EPC069-12 payload', () => {
  const transfer = {
    name: 'Corner Cafe',
    iban: 'DE89 3704 0044 0532 0130 00',
    amountMinor: 850,
    currency: 'EUR',
    reference: 'RF18539007547034',
  };

  it('is version 002, UTF-8, SCT, optional BIC, the exact amount and the RF reference in line 10', () => {
    expect(epcPayload(transfer)).toBe(
      'BCD\n002\n1\nSCT\n\nCorner Cafe\nDE89370400440532013000\nEUR8.50\n\nRF18539007547034',
    );
    const lines = epcPayload({ ...transfer, bic: 'COBADEFFXXX', amountMinor: 1 }).split('\n');
    expect(lines[4]).toBe('COBADEFFXXX');
    expect(lines[7]).toBe('EUR0.01');
    expect(lines).toHaveLength(10);
    expect(epcPayload({ ...transfer, amountMinor: 99_999_999_999 }).split('\n')[7]).toBe('EUR999999999.99');
  });

  it('refuses what a banking app could not pay exactly', () => {
    expect(() => epcPayload({ ...transfer, currency: 'GBP' })).toThrow(EpcError);
    expect(() => epcPayload({ ...transfer, amountMinor: 0 })).toThrow(EpcError);
    expect(() => epcPayload({ ...transfer, amountMinor: 100_000_000_000 })).toThrow(EpcError);
    expect(() => epcPayload({ ...transfer, amountMinor: 8.5 })).toThrow(EpcError);
    expect(() => epcPayload({ ...transfer, name: ' ' })).toThrow(EpcError);
  });

  it('keeps the name to 70 characters and the payload within 331 bytes', () => {
    const payload = epcPayload({ ...transfer, name: 'Ä'.repeat(100) });
    expect(payload.split('\n')[5]).toHaveLength(70);
    expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(331);
  });
});

describe('Kioskhub-Signature', () => {
  const secret = 'bank-webhook-secret-0123';
  const body = Buffer.from('{"eventId":"e1"}');
  const now = 1_700_000_000;

  it('accepts the signature of the raw bytes, with any of several v1 values', () => {
    const header = signatureHeader(body, secret, now);
    expect(checkSignature(body, header, [secret], now)).toBe('ok');
    const rotated = `${header.replace(/v1=/, 'v1=' + '0'.repeat(64) + ',v1=')}`;
    expect(checkSignature(body, rotated, [secret], now)).toBe('ok');
    expect(checkSignature(body, header, ['old-secret-0123456789', secret], now)).toBe('ok');
  });

  it('refuses forged, altered, expired, future, missing and malformed signatures', () => {
    const header = signatureHeader(body, secret, now);
    expect(checkSignature(body, signatureHeader(body, 'another-secret-0123', now), [secret], now)).toBe(
      'mismatch',
    );
    expect(checkSignature(Buffer.from('{"eventId":"e2"}'), header, [secret], now)).toBe('mismatch');
    expect(checkSignature(body, header, [secret], now + 301)).toBe('expired');
    expect(checkSignature(body, header, [secret], now - 301)).toBe('expired');
    expect(checkSignature(body, header, [secret], now + 300)).toBe('ok');
    expect(checkSignature(body, undefined, [secret], now)).toBe('missing');
    expect(checkSignature(body, 'v1=abc', [secret], now)).toBe('malformed');
    expect(checkSignature(body, `t=${now}`, [secret], now)).toBe('malformed');
  });
});
