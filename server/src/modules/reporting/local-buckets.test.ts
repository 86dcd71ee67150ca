import { describe, expect, it } from 'vitest';
import {
  dayStart,
  hourStart,
  isTimeZone,
  localDay,
  localDays,
  localHours,
  offsetMs,
  TIME_ZONE_PATTERN,
} from './local-buckets.js';

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

describe('local report buckets', () => {
  it('knows real zones and refuses others', () => {
    for (const z of ['UTC', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/St_Johns', 'Europe/Berlin'])
      expect(isTimeZone(z)).toBe(true);
    for (const z of ['Mars/Base', 'Asia/Nowhere', '+25:00', '']) expect(isTimeZone(z)).toBe(false);
    const pattern = new RegExp(TIME_ZONE_PATTERN);
    for (const z of ['UTC', 'Asia/Kolkata', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5'])
      expect(pattern.test(z)).toBe(true);
    for (const z of ['', '/Asia', 'Asia//Kolkata', 'Asia/Kolkata ', "Asia/K'", '../etc'])
      expect(pattern.test(z)).toBe(false);
  });

  it('in UTC, days and hours are the UTC ones', () => {
    expect(iso(dayStart(t('2026-12-05T04:30:00.000Z'), 'UTC'))).toBe('2026-12-05T00:00:00.000Z');
    expect(iso(hourStart(t('2026-12-05T04:30:59.999Z'), 'UTC'))).toBe('2026-12-05T04:00:00.000Z');
    expect(localDays(t('2026-12-04T12:00:00.000Z'), t('2026-12-06T00:00:00.000Z'), 'UTC')).toEqual([
      { day: '2026-12-04', start: '2026-12-04T00:00:00.000Z' },
      { day: '2026-12-05', start: '2026-12-05T00:00:00.000Z' },
    ]);
  });

  it('India (+05:30): the day starts at 18:30 UTC, hours at :30', () => {
    const z = 'Asia/Kolkata';
    expect(offsetMs(t('2026-12-05T00:00:00.000Z'), z)).toBe(5.5 * 3_600_000);
    expect(localDay(t('2026-12-04T18:29:59.999Z'), z)).toBe('2026-12-04');
    expect(localDay(t('2026-12-04T18:30:00.000Z'), z)).toBe('2026-12-05');
    expect(iso(dayStart(t('2026-12-05T04:30:00.000Z'), z))).toBe('2026-12-04T18:30:00.000Z');
    expect(iso(dayStart(t('2026-12-04T18:29:59.000Z'), z))).toBe('2026-12-03T18:30:00.000Z');
    expect(iso(hourStart(t('2026-12-05T04:29:00.000Z'), z))).toBe('2026-12-05T03:30:00.000Z');
    expect(iso(hourStart(t('2026-12-05T04:30:00.000Z'), z))).toBe('2026-12-05T04:30:00.000Z');
    expect(localDays(t('2026-12-04T00:00:00.000Z'), t('2026-12-05T00:00:00.000Z'), z)).toEqual([
      { day: '2026-12-04', start: '2026-12-03T18:30:00.000Z' },
      { day: '2026-12-05', start: '2026-12-04T18:30:00.000Z' },
    ]);
    expect(localHours(t('2026-12-05T04:00:00.000Z'), t('2026-12-05T06:00:00.000Z'), z)).toEqual([
      '2026-12-05T03:30:00.000Z',
      '2026-12-05T04:30:00.000Z',
      '2026-12-05T05:30:00.000Z',
    ]);
  });

  it('Nepal (+05:45): the day starts at 18:15 UTC, hours at :15', () => {
    const z = 'Asia/Kathmandu';
    expect(iso(dayStart(t('2026-12-05T10:00:00.000Z'), z))).toBe('2026-12-04T18:15:00.000Z');
    expect(iso(hourStart(t('2026-12-05T10:14:59.000Z'), z))).toBe('2026-12-05T09:15:00.000Z');
    expect(iso(hourStart(t('2026-12-05T10:15:00.000Z'), z))).toBe('2026-12-05T10:15:00.000Z');
  });

  it('Newfoundland (−03:30 in winter, −02:30 in summer)', () => {
    const z = 'America/St_Johns';
    expect(iso(dayStart(t('2026-12-05T10:00:00.000Z'), z))).toBe('2026-12-05T03:30:00.000Z');
    expect(iso(dayStart(t('2026-07-05T10:00:00.000Z'), z))).toBe('2026-07-05T02:30:00.000Z');
    expect(iso(hourStart(t('2026-12-05T10:29:00.000Z'), z))).toBe('2026-12-05T09:30:00.000Z');
  });

  it('Berlin: a 23-hour day in March and a 25-hour day in October', () => {
    const z = 'Europe/Berlin';
    // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    const march = localDays(t('2026-03-28T12:00:00.000Z'), t('2026-03-30T12:00:00.000Z'), z);
    expect(march).toEqual([
      { day: '2026-03-28', start: '2026-03-27T23:00:00.000Z' },
      { day: '2026-03-29', start: '2026-03-28T23:00:00.000Z' },
      { day: '2026-03-30', start: '2026-03-29T22:00:00.000Z' },
    ]);
    expect(t(march[2]!.start) - t(march[1]!.start)).toBe(23 * 3_600_000);
    // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    const october = localDays(t('2026-10-24T12:00:00.000Z'), t('2026-10-26T12:00:00.000Z'), z);
    expect(october).toEqual([
      { day: '2026-10-24', start: '2026-10-23T22:00:00.000Z' },
      { day: '2026-10-25', start: '2026-10-24T22:00:00.000Z' },
      { day: '2026-10-26', start: '2026-10-25T23:00:00.000Z' },
    ]);
    expect(t(october[2]!.start) - t(october[1]!.start)).toBe(25 * 3_600_000);
    // A day start asked for from late in the long and the short day.
    expect(iso(dayStart(t('2026-10-25T22:59:59.000Z'), z))).toBe('2026-10-24T22:00:00.000Z');
    expect(iso(dayStart(t('2026-03-29T21:59:59.000Z'), z))).toBe('2026-03-28T23:00:00.000Z');
    // Hours of the two change days: 23 and 25 of them, the repeated 02:00 twice.
    expect(localHours(t(march[1]!.start), t(march[2]!.start), z)).toHaveLength(23);
    const long = localHours(t(october[1]!.start), t(october[2]!.start), z);
    expect(long).toHaveLength(25);
    expect(long.slice(1, 5)).toEqual([
      '2026-10-24T23:00:00.000Z',
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T01:00:00.000Z', // 02:00 CET
      '2026-10-25T02:00:00.000Z',
    ]);
    expect(iso(hourStart(t('2026-10-25T01:59:00.000Z'), z))).toBe('2026-10-25T01:00:00.000Z');
    expect(iso(hourStart(t('2026-03-29T01:00:00.000Z'), z))).toBe('2026-03-29T01:00:00.000Z');
    expect(iso(hourStart(t('2026-03-29T00:59:59.000Z'), z))).toBe('2026-03-29T00:00:00.000Z');
  });

  it('a year of Kolkata days and Berlin hours', () => {
    expect(
      localDays(t('2026-01-01T00:00:00.000Z'), t('2027-01-01T00:00:00.000Z'), 'Asia/Kolkata'),
    ).toHaveLength(366);
    const hours = localHours(t('2026-01-01T00:00:00.000Z'), t('2027-01-01T00:00:00.000Z'), 'Europe/Berlin');
    expect(hours).toHaveLength(8760);
    for (let i = 1; i < hours.length; i++) expect(t(hours[i]!) - t(hours[i - 1]!)).toBe(3_600_000);
  });
});
