import { describe, expect, it } from 'vitest';
import { buildUpiLink, formatRupees, isValidVpa } from './upi-link.js';

describe('UPI deep link (PROVIDERS.md §5)', () => {
  it('builds a fixed-amount static link with pa, pn, am, cu=INR, tr and tn', () => {
    expect(
      buildUpiLink({
        vpa: 'kiosk.hub@okaxis',
        payeeName: 'Kiosk Hub Vending',
        amountPaise: 2000,
        reference: 'M01',
        note: 'Kioskhub M01',
      }),
    ).toBe('upi://pay?pa=kiosk.hub@okaxis&pn=Kiosk%20Hub%20Vending&am=20.00&cu=INR&tr=M01&tn=Kioskhub%20M01');
  });

  it('encodes spaces as %20 (never +) and escapes reserved characters in values', () => {
    const link = buildUpiLink({
      vpa: 'shop@upi',
      payeeName: 'A&B Snacks + Co',
      amountPaise: 1,
      reference: 'M_01-x',
      note: 'a=b?',
    });
    expect(link).toBe(
      'upi://pay?pa=shop@upi&pn=A%26B%20Snacks%20%2B%20Co&am=0.01&cu=INR&tr=M_01-x&tn=a%3Db%3F',
    );
    expect(link).not.toContain('+');
    const params = new URL(link.replace('upi://pay', 'https://x/pay')).searchParams;
    expect(params.get('pn')).toBe('A&B Snacks + Co');
    expect(params.get('am')).toBe('0.01');
  });

  it('leaves tn out when there is no note', () => {
    expect(buildUpiLink({ vpa: 'shop@upi', payeeName: 'Shop', amountPaise: 150, reference: 'M9' })).toBe(
      'upi://pay?pa=shop@upi&pn=Shop&am=1.50&cu=INR&tr=M9',
    );
  });

  it('formats paise as rupees with two decimals without floating point', () => {
    expect(formatRupees(0)).toBe('0.00');
    expect(formatRupees(5)).toBe('0.05');
    expect(formatRupees(2050)).toBe('20.50');
    expect(formatRupees(10_000_000)).toBe('100000.00');
    expect(formatRupees(Number.MAX_SAFE_INTEGER)).toBe('90071992547409.91');
    expect(() => formatRupees(1.5)).toThrow(RangeError);
    expect(() => formatRupees(-1)).toThrow(RangeError);
  });

  it('rejects what would make a broken or unpayable link', () => {
    expect(() =>
      buildUpiLink({ vpa: 'not-a-vpa', payeeName: 'Shop', amountPaise: 100, reference: 'M1' }),
    ).toThrow(/not a UPI VPA/);
    expect(() =>
      buildUpiLink({ vpa: 'shop@upi', payeeName: ' ', amountPaise: 100, reference: 'M1' }),
    ).toThrow(/payee name/);
    expect(() =>
      buildUpiLink({ vpa: 'shop@upi', payeeName: 'Shop', amountPaise: 0, reference: 'M1' }),
    ).toThrow(/at least 1 paisa/);
    expect(() =>
      buildUpiLink({ vpa: 'shop@upi', payeeName: 'Shop', amountPaise: 100, reference: '' }),
    ).toThrow(/reference/);
  });

  it('recognises VPAs', () => {
    expect(isValidVpa('shop@okaxis')).toBe(true);
    expect(isValidVpa('9876543210@ybl')).toBe(true);
    expect(isValidVpa('a.b-c_d@oksbi')).toBe(true);
    expect(isValidVpa('shop')).toBe(false);
    expect(isValidVpa('shop@')).toBe(false);
    expect(isValidVpa('sh op@upi')).toBe(false);
    expect(isValidVpa('shop@upi&pn=x')).toBe(false);
  });
});
