// Money crosses the wire as integers in minor units, except on compatibility routes that
// historically took major units (₱100 = 100): these convert exactly here, never with floats kept.
// A currency's exponent comes from ISO 4217 (JPY and UGX have none, KWD has three).
import { formatMinor } from '@kioskhub/protocol';

export {
  currencyExponent,
  formatMinor,
  isKnownCurrency,
  majorToMinor,
  minorToMajor,
} from '@kioskhub/protocol';

export const MAX_MAJOR_AMOUNT = 100_000;

/**
 * An amount for a person to read, in alert messages: "50.00 INR", "5000 UGX", "1.250 KWD" (the
 * currency's ISO 4217 decimals); a code that is not ISO 4217 in minor units ("1250 XYZ minor units").
 */
export function readableAmount(minor: number, currency: string): string {
  try {
    return `${formatMinor(minor, currency)} ${currency}`;
  } catch {
    return `${minor} ${currency} minor units`;
  }
}
