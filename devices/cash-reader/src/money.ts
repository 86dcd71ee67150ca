// Exact conversions between the acceptor's major-unit amounts ("100", "0.25") and the minor
// units the agent stores. Strings are parsed digit by digit: no float ever holds money here.

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

/**
 * Minor units → the JSON number the compatibility route takes (2550 → 25.5). Dividing an
 * integer by 100 gives the double whose shortest decimal form is exact, which is what the
 * server parses back.
 */
export function minorToMajor(minor: number): number {
  if (!Number.isSafeInteger(minor) || minor <= 0)
    throw new RangeError(`not a positive minor amount: ${minor}`);
  return minor / 100;
}

/** 2550 → "25.50", for logs. */
export function formatMinor(minor: number): string {
  return `${Math.trunc(minor / 100)}.${String(Math.abs(minor % 100)).padStart(2, '0')}`;
}
