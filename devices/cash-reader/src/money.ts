// Exact conversions between the acceptor's major-unit amounts ("100", "0.25", "0.005") and the
// minor units the agent stores. Strings are parsed digit by digit: no float ever holds money here.
// An amount is kept in hundredths (`amountMinor`), or in thousandths (`scale: 3`) when it has a
// third decimal (a 5-fils coin of a KWD, BHD or OMR acceptor): the agent does not know the site's
// currency, the server converts the major-unit number with that currency's ISO 4217 decimals.

/** The largest single amount the server accepts in one update (CONTRACTS.md §9). */
export const MAX_MAJOR_AMOUNT = 100_000;

/** "100", "0.25", "20.5" → minor units (10000, 25, 2050); undefined for anything else. */
export function parseMajorAmount(text: string): number | undefined {
  const match = /^(\d{1,6})(?:\.(\d{1,2}))?$/.exec(text);
  if (!match) return undefined;
  const minor = Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
  if (minor <= 0 || minor > MAX_MAJOR_AMOUNT * 100) return undefined;
  return minor;
}

/** How many decimals an `amountMinor` is in: 2 (hundredths, the default) or 3 (thousandths). */
export type AmountScale = 2 | 3;

/**
 * An acceptor amount in exact minor units: hundredths when it has at most 2 decimals ("0.25" →
 * {amountMinor: 25}), thousandths when it has 3 ("0.005" → {amountMinor: 5, scale: 3}).
 */
export function parseAcceptorAmount(text: string): { amountMinor: number; scale?: 3 } | undefined {
  const hundredths = parseMajorAmount(text);
  if (hundredths !== undefined) return { amountMinor: hundredths };
  const match = /^(\d{1,6})\.(\d{3})$/.exec(text);
  if (!match) return undefined;
  const minor = Number(match[1]) * 1000 + Number(match[2]);
  if (minor <= 0 || minor > MAX_MAJOR_AMOUNT * 1000) return undefined;
  return { amountMinor: minor, scale: 3 };
}

/**
 * Minor units → the JSON number the compatibility route takes (2550 → 25.5; 5 in thousandths →
 * 0.005). Dividing an integer by 100 (1000) gives the double whose shortest decimal form is
 * exact, which is what the server parses back.
 */
export function minorToMajor(minor: number, scale: AmountScale = 2): number {
  if (!Number.isSafeInteger(minor) || minor <= 0)
    throw new RangeError(`not a positive minor amount: ${minor}`);
  return minor / 10 ** scale;
}

/** 2550 → "25.50" (5 in thousandths → "0.005"), for logs. */
export function formatMinor(minor: number, scale: AmountScale = 2): string {
  const unit = 10 ** scale;
  return `${Math.trunc(minor / unit)}.${String(Math.abs(minor % unit)).padStart(scale, '0')}`;
}
