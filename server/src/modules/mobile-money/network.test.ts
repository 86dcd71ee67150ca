// Which wallet a number pays with, the callback key comparison, and the low-credit notice rule.
import { describe, expect, it } from 'vitest';
import { callbackKeyMatches } from './callback-key.js';
import { chooseWallet } from './network.js';
import { createWaterNotices } from '../water-messaging/notices.js';

describe('chooseWallet', () => {
  it('picks MTN and Airtel from Ugandan prefixes', () => {
    expect(chooseWallet('+256772123456')).toEqual({ wallet: 'momo', country: 'UG' });
    expect(chooseWallet('+256782123456')).toEqual({ wallet: 'momo', country: 'UG' });
    expect(chooseWallet('+256762123456')).toEqual({ wallet: 'momo', country: 'UG' });
    expect(chooseWallet('+256702123456')).toEqual({ wallet: 'airtel', country: 'UG' });
    expect(chooseWallet('+256752123456')).toEqual({ wallet: 'airtel', country: 'UG' });
    expect(chooseWallet('+256742123456')).toEqual({ wallet: 'airtel', country: 'UG' });
  });
  it('lets a known network code decide (a ported number), and refuses Safaricom', () => {
    expect(chooseWallet('+256772123456', '64101')).toEqual({ wallet: 'airtel', country: 'UG' });
    expect(chooseWallet('+256702123456', '64110')).toEqual({ wallet: 'momo', country: 'UG' });
    expect(chooseWallet('+254712345678', '63902')).toBeNull();
    expect(chooseWallet('+254712345678')).toBeNull();
    expect(chooseWallet('+254733123456')).toEqual({ wallet: 'airtel', country: 'KE' });
    // The sandbox's network code says nothing: the prefix decides.
    expect(chooseWallet('+256772123456', '99999')).toEqual({ wallet: 'momo', country: 'UG' });
  });
  it('picks Airtel for every Kenyan Airtel range (0730–0739, 0750–0756, 0785–0789, 0100–0102)', () => {
    for (const ndc of ['730', '739', '750', '753', '756', '785', '787', '789', '100', '101', '102']) {
      expect(chooseWallet(`+254${ndc}123456`)).toEqual({ wallet: 'airtel', country: 'KE' });
    }
    // Safaricom's neighbouring ranges stay refused.
    for (const ndc of ['757', '758', '759', '722', '110', '111']) {
      expect(chooseWallet(`+254${ndc}123456`)).toBeNull();
    }
  });
  it('knows no wallet for other countries', () => {
    expect(chooseWallet('+919876543210')).toBeNull();
    expect(chooseWallet('+4915123456789', '64110')).toBeNull();
  });
});

describe('callbackKeyMatches', () => {
  it('matches only the exact key, whatever the lengths', () => {
    expect(callbackKeyMatches('abcdefghijklmnop', 'abcdefghijklmnop')).toBe(true);
    expect(callbackKeyMatches('abcdefghijklmno', 'abcdefghijklmnop')).toBe(false);
    expect(callbackKeyMatches('abcdefghijklmnopq', 'abcdefghijklmnop')).toBe(false);
    expect(callbackKeyMatches('', 'abcdefghijklmnop')).toBe(false);
    expect(callbackKeyMatches(undefined, 'abcdefghijklmnop')).toBe(false);
    expect(callbackKeyMatches(['abcdefghijklmnop'], 'abcdefghijklmnop')).toBe(false);
  });
});

describe('low-credit notice', () => {
  it('is sent once, when the credit crosses below the threshold', async () => {
    const sent: { text: string; kind: string }[] = [];
    const notices = createWaterNotices({
      sms: { queue: async (_ex, sms) => void sent.push(sms) },
      lowCreditMl: 20_000,
    });
    const customer = { tenant_id: 't', phone: '+256772123456' };
    const ex = {} as never;
    expect(await notices.lowCredit(ex, customer, { beforeMl: 25_000, afterMl: 21_000 })).toBe(false);
    expect(await notices.lowCredit(ex, customer, { beforeMl: 21_000, afterMl: 12_000 })).toBe(true);
    expect(await notices.lowCredit(ex, customer, { beforeMl: 12_000, afterMl: 5_000 })).toBe(false);
    expect(sent).toEqual([
      {
        tenantId: 't',
        to: '+256772123456',
        kind: 'low_credit',
        text: 'Your water credit is low: 12.0 L left. Reply BUY to top up.',
      },
    ]);
  });
});
