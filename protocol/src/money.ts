// Currency exponents (decimal places of the minor unit) from ISO 4217, shared by the server and
// the dashboard. Only codes whose exponent is not 2 are listed; any other code is checked
// against the runtime's list of ISO currencies. CLDR's display digits differ for a few codes
// (IQD, for one), so these numbers are never taken from Intl.NumberFormat.

const EXPONENTS: Readonly<Record<string, number>> = {
  ...Object.fromEntries(
    ['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG']
      .concat(['RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'])
      .map((c) => [c, 0]),
  ),
  ...Object.fromEntries(['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND'].map((c) => [c, 3])),
  CLF: 4,
  UYW: 4,
};

let known: ReadonlySet<string> | undefined;

/** True for an ISO 4217 code this runtime knows (or that the exponent table lists). */
export function isKnownCurrency(code: string): boolean {
  if (!/^[A-Z]{3}$/.test(code)) return false;
  if (code in EXPONENTS) return true;
  known ??= new Set(typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('currency') : []);
  return known.size === 0 || known.has(code);
}

/** Decimal places of a currency's minor unit; throws a RangeError for a code that is not ISO 4217. */
export function currencyExponent(code: string): number {
  if (!isKnownCurrency(code)) throw new RangeError(`"${code}" is not an ISO 4217 currency code`);
  return EXPONENTS[code] ?? 2;
}

/** Major units → integer minor units; undefined when not exactly representable with the exponent. */
export function majorToMinor(value: number, currency: string): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  const scaled = value * 10 ** currencyExponent(currency);
  const rounded = Math.round(scaled);
  // Binary floats carry a tiny error (0.29 * 100 = 28.999999999999996); anything larger is a
  // digit the currency does not have.
  if (Math.abs(scaled - rounded) > Math.max(1e-6, Math.abs(scaled) * 1e-12)) return undefined;
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

/** Integer minor units → major units (the nearest double to the exact decimal). */
export const minorToMajor = (minor: number, currency: string): number =>
  Math.round(minor) / 10 ** currencyExponent(currency);

/** Minor units as a fixed-point decimal string with exactly the currency's decimals ("-1.050"). */
export function formatMinor(minor: number, currency: string): string {
  const exponent = currencyExponent(currency);
  const digits = String(Math.abs(Math.round(minor))).padStart(exponent + 1, '0');
  const sign = minor < 0 ? '-' : '';
  if (exponent === 0) return sign + digits;
  return `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}
