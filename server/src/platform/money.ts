// Money crosses the wire as integers in minor units, except on compatibility routes that
// historically took major units (₱100 = 100): these convert exactly here, never with floats kept.
// A currency's exponent comes from ISO 4217 (JPY and UGX have none, KWD has three).
export {
  currencyExponent,
  formatMinor,
  isKnownCurrency,
  majorToMinor,
  minorToMajor,
} from '@kioskhub/protocol';

export const MAX_MAJOR_AMOUNT = 100_000;
