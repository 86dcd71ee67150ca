// Aligned text tables and number formatting for the scenario reports.

export type Cell = string | number;

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export const int = (value: number): string => fmt(value, 0);
export const ms = (value: number): string => `${fmt(value, value < 10 ? 2 : 1)} ms`;
export const pct = (part: number, whole: number): string =>
  whole > 0 && Number.isFinite(part) ? `${fmt((100 * part) / whole, 0)}%` : '—';
export const ratio = (a: number, b: number): string =>
  b > 0 && Number.isFinite(a) ? `${fmt(a / b, 2)}×` : '—';

/** Prints a title and rows as columns; numbers right-aligned, text left-aligned. */
export function printTable(title: string, header: string[], rows: Cell[][]): void {
  const text = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) =>
    rows.every(
      (r) =>
        typeof r[i] === 'number' || /^[\d,.—%×<>=≤≥ +-]+(ms|KB|MB|s|req\/s|tx\/s)?$/.test(String(r[i] ?? '')),
    ),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const r of text) console.log(line(r));
}

/** A target checked in this run; `goal` names the performance issue's goal it reports on. */
export interface Verdict {
  label: string;
  ok: boolean;
  detail: string;
  goal?: string;
}

const verdicts: Verdict[] = [];

/** Prints a target's MET / NOT MET line and keeps it for the run's closing summary. */
export function verdict(label: string, ok: boolean, detail: string, goal?: string): void {
  verdicts.push({ label, ok, detail, ...(goal ? { goal } : {}) });
  console.log(`${ok ? 'MET    ' : 'NOT MET'}  ${label}: ${detail}`);
}

/** Every target checked so far in this run, in the order they were printed. */
export const recordedVerdicts = (): readonly Verdict[] => verdicts;
