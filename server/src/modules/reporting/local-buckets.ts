// Report buckets in an operator's local time (an IANA zone such as Asia/Kolkata), computed with
// Intl only, so both database engines bucket the same way without time-zone support of their
// own. A day bucket starts at local midnight (or at the first instant of the local day when
// midnight does not exist), an hour bucket at the local hour; both follow DST, so Europe/Berlin
// has a 23-hour and a 25-hour day, and its repeated 02:00 hour in October is two buckets (the
// one at +02:00, then the one at +01:00). Instants are epoch milliseconds; zones' offsets and
// changes fall on whole seconds, so everything is computed at second precision.

import { Type } from '@sinclair/typebox';

const HOUR = 3_600_000;

/** Longest an IANA zone name can be (the longest today has 30 characters). */
export const TIME_ZONE_MAX_LENGTH = 64;
/** What a zone name may look like; the zone must also be one Intl knows (isTimeZone). */
export const TIME_ZONE_PATTERN = '^[A-Za-z][A-Za-z0-9_+\\-]*(/[A-Za-z0-9_+\\-]+)*$';
/** The `timeZone` query parameter of the reports (checked against Intl by the service too). */
export const TimeZoneParam = Type.String({
  minLength: 1,
  maxLength: TIME_ZONE_MAX_LENGTH,
  pattern: TIME_ZONE_PATTERN,
  description: 'IANA time zone (Asia/Kolkata) of the report’s days and hours; default UTC',
});

const formats = new Map<string, Intl.DateTimeFormat>();
function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    if (formats.size > 500) formats.clear();
    formats.set(timeZone, f);
  }
  return f;
}

/** Whether Intl knows the zone (`Asia/Kolkata`, `UTC`; not `Mars/Base`). */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone });
    return true;
  } catch {
    return false;
  }
}

interface Wall {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
}

const floorSecond = (t: number): number => t - (((t % 1000) + 1000) % 1000);

function wall(t: number, timeZone: string): Wall {
  const w: Wall = { y: 0, mo: 0, d: 0, h: 0, mi: 0, s: 0 };
  for (const p of format(timeZone).formatToParts(t)) {
    if (p.type === 'year') w.y = Number(p.value);
    else if (p.type === 'month') w.mo = Number(p.value);
    else if (p.type === 'day') w.d = Number(p.value);
    else if (p.type === 'hour') w.h = Number(p.value);
    else if (p.type === 'minute') w.mi = Number(p.value);
    else if (p.type === 'second') w.s = Number(p.value);
  }
  return w;
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The zone's offset from UTC at an instant, in milliseconds (+05:30 is 19 800 000). */
export function offsetMs(t: number, timeZone: string): number {
  const w = wall(t, timeZone);
  return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - floorSecond(t);
}

/** The local date of an instant, `YYYY-MM-DD`. */
export function localDay(t: number, timeZone: string): string {
  const w = wall(t, timeZone);
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}`;
}

/** The local hour of an instant with the offset then: the repeated hour of a DST end is two. */
function hourLabel(t: number, timeZone: string): string {
  const w = wall(t, timeZone);
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}T${pad(w.h)}${offsetMs(t, timeZone)}`;
}

/** The first second in (lo, hi] where `inside` holds, given it is false at lo and true from there to hi. */
function firstInside(lo: number, hi: number, inside: (t: number) => boolean): number {
  while (hi - lo > 1000) {
    const mid = floorSecond(lo + Math.floor((hi - lo) / 2000) * 1000);
    if (inside(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** The UTC instant the local day of `t` starts at (local midnight, DST-correct). */
export function dayStart(t: number, timeZone: string): number {
  const s = floorSecond(t);
  const w = wall(s, timeZone);
  const key = `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}`;
  // The wall clock's time since midnight, unless a change of offset lies in between.
  const guess = s - ((w.h * 60 + w.mi) * 60 + w.s) * 1000;
  if (localDay(guess, timeZone) === key && localDay(guess - 1000, timeZone) !== key) return guess;
  return firstInside(s - 50 * HOUR, s, (x) => localDay(x, timeZone) >= key);
}

/** The UTC instant the local hour of `t` starts at (at :30 UTC in India, at :45 in Nepal). */
export function hourStart(t: number, timeZone: string): number {
  const s = floorSecond(t);
  const w = wall(s, timeZone);
  const guess = s - (w.mi * 60 + w.s) * 1000;
  const label = hourLabel(s, timeZone);
  if (hourLabel(guess, timeZone) === label) return guess;
  return firstInside(s - 2 * HOUR, s, (x) => hourLabel(x, timeZone) === label);
}

/** The start of the bucket (`hour` or `day`) holding `t`, in the zone. */
export function bucketStart(t: number, bucket: 'hour' | 'day', timeZone: string): number {
  return bucket === 'hour' ? hourStart(t, timeZone) : dayStart(t, timeZone);
}

/**
 * Every local day that overlaps [from, to): its date and the UTC instant it starts at (the first
 * may start before `from`). At most `max` days; more is an error of the caller.
 */
export function localDays(
  from: number,
  to: number,
  timeZone: string,
  max = 400,
): { day: string; start: string }[] {
  const out: { day: string; start: string }[] = [];
  for (let b = dayStart(from, timeZone); b < to; b = dayStart(b + 36 * HOUR, timeZone)) {
    if (out.length >= max) throw new RangeError(`more than ${max} days`);
    out.push({ day: localDay(b, timeZone), start: new Date(b).toISOString() });
  }
  return out;
}

/** Every local hour start that overlaps [from, to), as UTC instants (ISO). */
export function localHours(from: number, to: number, timeZone: string, max = 10_000): string[] {
  const out: string[] = [];
  let b = hourStart(from, timeZone);
  while (b < to) {
    if (out.length >= max) throw new RangeError(`more than ${max} hours`);
    out.push(new Date(b).toISOString());
    // The next hour starts within the hour (earlier only where the offset changes).
    const next = b + HOUR;
    const label = hourLabel(b, timeZone);
    b =
      hourLabel(next - 1000, timeZone) === label
        ? next
        : firstInside(b, next, (x) => hourLabel(x, timeZone) !== label);
  }
  return out;
}
