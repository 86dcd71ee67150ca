// Which mobile-money wallet a phone number can pay from: MTN MoMo or Airtel Money, from the
// USSD gateway's `networkCode` when it names a known network, else from the number's prefix.
// Pure rules, no I/O. A number on another network (Safaricom's M-Pesa in Kenya) gets neither.

export type Wallet = 'momo' | 'airtel';

/** Mobile network codes (MCC+MNC) as Africa's Talking sends them in `networkCode`. */
const NETWORK_CODES: Record<string, Wallet | 'other'> = {
  '64110': 'momo', // MTN Uganda
  '64101': 'airtel', // Airtel Uganda
  '64502': 'momo', // MTN Zambia
  '64501': 'airtel', // Airtel Zambia
  '63510': 'momo', // MTN Rwanda
  '63513': 'airtel', // Airtel Rwanda
  '63902': 'other', // Safaricom Kenya (M-Pesa)
  '63903': 'airtel', // Airtel Kenya
};

/** E.164 prefixes (without `+`) of each wallet's numbers, per supported country. */
export const WALLET_PREFIXES: { country: string; wallet: Wallet; prefixes: string[] }[] = [
  { country: 'UG', wallet: 'momo', prefixes: ['25677', '25678', '25676', '25679', '25631', '25639'] },
  { country: 'UG', wallet: 'airtel', prefixes: ['25670', '25675', '25674', '25620'] },
  { country: 'ZM', wallet: 'momo', prefixes: ['26096', '26076'] },
  { country: 'ZM', wallet: 'airtel', prefixes: ['26097', '26077'] },
  { country: 'RW', wallet: 'momo', prefixes: ['25078', '25079'] },
  { country: 'RW', wallet: 'airtel', prefixes: ['25072', '25073'] },
  // Kenya: Airtel holds 0730–0739, 0750–0756, 0785–0789 and 0100–0102; 0757–0759 are Safaricom's.
  {
    country: 'KE',
    wallet: 'airtel',
    prefixes: [
      '25473',
      '25410',
      '254750',
      '254751',
      '254752',
      '254753',
      '254754',
      '254755',
      '254756',
      '254785',
      '254786',
      '254787',
      '254788',
      '254789',
    ],
  },
];

/** Calling codes of the countries above (Airtel's `subscriber.msisdn` drops it). */
export const CALLING_CODES: Record<string, string> = { UG: '256', ZM: '260', RW: '250', KE: '254' };

export interface WalletChoice {
  wallet: Wallet;
  country: string;
}

/** The wallet for `phone` (E.164), or null when the number is on no supported network. */
export function chooseWallet(phone: string, networkCode?: string | null): WalletChoice | null {
  const digits = phone.replace(/^\+/, '');
  const byPrefix = WALLET_PREFIXES.find((row) => row.prefixes.some((p) => digits.startsWith(p)));
  const fromNetwork = networkCode ? NETWORK_CODES[networkCode.trim()] : undefined;
  if (fromNetwork === 'other') return null;
  // A number ported to another network keeps its prefix: the network code, when known, decides.
  if (fromNetwork) {
    const country = Object.entries(CALLING_CODES).find(([, code]) => digits.startsWith(code))?.[0];
    return country ? { wallet: fromNetwork, country } : null;
  }
  return byPrefix ? { wallet: byPrefix.wallet, country: byPrefix.country } : null;
}

export const WALLET_NAMES: Record<Wallet, string> = { momo: 'MTN MoMo', airtel: 'Airtel Money' };
