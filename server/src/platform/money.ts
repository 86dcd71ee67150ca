// Money crosses the wire as integers in minor units, except on compatibility routes that
// historically took major units (₱100 = 100): these convert exactly here, never with floats kept.

export const MAX_MAJOR_AMOUNT = 100_000;

/** Major units with at most 2 decimals → minor units; undefined when not exactly representable. */
export function majorToMinor(value: number): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  const scaled = value * 100;
  const rounded = Math.round(scaled);
  if (Math.abs(scaled - rounded) > 1e-6) return undefined;
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

export const minorToMajor = (minor: number): number => Math.round(minor) / 100;
