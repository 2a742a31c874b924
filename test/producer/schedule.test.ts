import { describe, expect, it } from 'vitest';
import { DAY, HOUR, MINUTE, SECOND, parseDuration, parseInstant, resolveSchedule } from '../../src/core/time.js';

describe('one duration parser for --delay and delay cells', () => {
  it.each<[string, number | undefined]>([
    // the examples: compact units combined, ISO 8601, bare numbers as seconds
    ['1h30m', 90 * MINUTE],
    ['PT5M', 5 * MINUTE],
    ['90', 90 * SECOND],
    // beyond them
    ['90s', 90 * SECOND],
    ['5m', 5 * MINUTE],
    ['2h', 2 * HOUR],
    ['2d', 2 * DAY],
    ['250ms', 250],
    ['1.5h', 90 * MINUTE],
    ['1d2h3m4s', DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND],
    ['1h 30m', 90 * MINUTE],
    [' 45 ', 45 * SECOND],
    ['2.5', 2500],
    ['pt5m', 5 * MINUTE],
    ['P1DT2H', DAY + 2 * HOUR],
    ['PT1.5H', 90 * MINUTE],
    ['P1W', 7 * DAY],
    ['PT0S', 0],
    ['0', 0],
    // refused
    ['', undefined],
    ['soon', undefined],
    ['-5m', undefined],
    ['5 minutes', undefined],
    ['30m1h', undefined], // units largest first
    ['P', undefined],
    ['P1M', undefined], // months and years have no fixed length
    ['P1Y', undefined],
    ['1h30', undefined],
    ['m', undefined],
  ])('%j → %s ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});

describe('one time parser for --at, --expires-at and their columns', () => {
  it.each<[string, string, string | undefined]>([
    ['2030-01-31T09:30:00Z', 'America/New_York', '2030-01-31T09:30:00.000Z'],
    ['2030-01-31T09:30:00+02:00', 'UTC', '2030-01-31T07:30:00.000Z'],
    ['2030-01-31T09:30', 'America/New_York', '2030-01-31T14:30:00.000Z'], // no offset: wall clock in the zone
    ['2030-07-31T09:30', 'America/New_York', '2030-07-31T13:30:00.000Z'], // daylight saving time
    ['2030-01-31 09:30', 'Europe/Berlin', '2030-01-31T08:30:00.000Z'], // as spreadsheets write it
    ['2030-01-31 09:30:15', 'UTC', '2030-01-31T09:30:15.000Z'],
    ['20300131T0930Z', 'UTC', '2030-01-31T09:30:00.000Z'],
    ['2030-01-31', 'UTC', undefined], // a date alone is not a time
    ['31/01/2030 09:30', 'UTC', undefined],
    ['2030-02-30T10:00:00Z', 'UTC', undefined],
    ['tomorrow', 'UTC', undefined],
  ])('%j in %s → %s', (text, zone, iso) => {
    const ms = parseInstant(text, zone);
    expect(ms === undefined ? undefined : new Date(ms).toISOString()).toBe(iso);
  });

  const now = Date.parse('2030-06-01T12:00:00Z');

  it('bounds every schedule the same way and names the input (flag or column) in the message', () => {
    expect(resolveSchedule({ delay: '90' }, now, 'UTC')).toEqual({ notBefore: now + 90 * SECOND, expiresAt: undefined });
    expect(resolveSchedule({ at: '2030-06-01T11:56:00Z' }, now, 'UTC')).toEqual({ notBefore: undefined, expiresAt: undefined });
    expect(() => resolveSchedule({ at: '2030-06-01T11:54:00Z' }, now, 'UTC')).toThrow(/--at: .* is in the past/);
    expect(() => resolveSchedule({ delay: '91d' }, now, 'UTC')).toThrow(/--delay: "91d" is more than 90 days/);
    expect(resolveSchedule({ delay: '90d' }, now, 'UTC').notBefore).toBe(now + 90 * DAY);
    expect(() => resolveSchedule({ expiresAt: '2030-06-01T11:00:00Z' }, now, 'UTC')).toThrow(/--expires-at is in the past/);
    expect(() => resolveSchedule({ delay: '2h', expiresAt: '2030-06-01T13:00:00Z' }, now, 'UTC')).toThrow(/--expires-at is not after the call may start/);
    const columns = { at: 'at', delay: 'delay', expiresAt: 'expires_at' };
    expect(() => resolveSchedule({ at: 'x' }, now, 'UTC', columns)).toThrow(/^at: expected a date and time/);
    expect(() => resolveSchedule({ at: '2030-06-02T00:00:00Z', delay: '5m' }, now, 'UTC', columns)).toThrow('use either at or delay, not both');
  });
});
