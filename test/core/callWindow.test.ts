import { describe, expect, it } from 'vitest';
import { callWindowSchema, describeWindow, isInsideWindow, nextWindowOpening, parseCallWindow, parseWeekdays, type CallWindow } from '../../src/core/callWindow.js';
import { loadConfig } from '../../src/core/config.js';
import { ConfigError, InvalidInputError } from '../../src/core/errors.js';

const at = (iso: string) => Date.parse(iso);
const NEW_YORK_DAYTIME: CallWindow = { from: '09:00', to: '20:00', timeZone: 'America/New_York' };

describe('calling windows', () => {
  it('is open between its hours in the callee’s time zone, not the server’s', () => {
    // 2026-06-15 is a Monday; New York is UTC-4 in summer.
    expect(isInsideWindow(NEW_YORK_DAYTIME, at('2026-06-15T13:00:00Z'))).toBe(true); // 09:00 there
    expect(isInsideWindow(NEW_YORK_DAYTIME, at('2026-06-15T12:59:59Z'))).toBe(false); // 08:59:59
    expect(isInsideWindow(NEW_YORK_DAYTIME, at('2026-06-15T23:59:59Z'))).toBe(true); // 19:59:59
    expect(isInsideWindow(NEW_YORK_DAYTIME, at('2026-06-16T00:00:00Z'))).toBe(false); // 20:00, the end is exclusive
  });

  it('before the window opens today, it opens at today’s start; after it closed, at tomorrow’s', () => {
    expect(nextWindowOpening(NEW_YORK_DAYTIME, at('2026-06-15T10:00:00Z'))).toBe(at('2026-06-15T13:00:00Z'));
    expect(nextWindowOpening(NEW_YORK_DAYTIME, at('2026-06-16T01:30:00Z'))).toBe(at('2026-06-16T13:00:00Z'));
    expect(nextWindowOpening(NEW_YORK_DAYTIME, at('2026-06-15T14:00:00Z'))).toBeUndefined();
  });

  it('skips the weekdays it does not cover: Friday evening waits for Monday morning', () => {
    const weekdays = { ...NEW_YORK_DAYTIME, days: parseWeekdays('mon-fri') };
    // Friday 2026-06-19 21:00 in New York.
    expect(nextWindowOpening(weekdays, at('2026-06-20T01:00:00Z'))).toBe(at('2026-06-22T13:00:00Z'));
    // Saturday noon there: closed all day.
    expect(isInsideWindow(weekdays, at('2026-06-20T16:00:00Z'))).toBe(false);
  });

  it('follows daylight-saving changes: the same local hour is a different UTC hour in winter', () => {
    // 2026-11-01: New York falls back to UTC-5. Before the window on Nov 1 at 06:00 UTC (01:00 EST… EDT).
    expect(nextWindowOpening(NEW_YORK_DAYTIME, at('2026-11-01T06:00:00Z'))).toBe(at('2026-11-01T14:00:00Z'));
    // 2026-03-08: spring forward to UTC-4.
    expect(nextWindowOpening(NEW_YORK_DAYTIME, at('2026-03-08T06:00:00Z'))).toBe(at('2026-03-08T13:00:00Z'));
  });

  it('a window whose end is before its start spans midnight, and belongs to the day it starts on', () => {
    const night: CallWindow = { from: '22:00', to: '02:00', timeZone: 'UTC', days: [5] }; // Friday night
    expect(isInsideWindow(night, at('2026-06-19T23:00:00Z'))).toBe(true); // Friday 23:00
    expect(isInsideWindow(night, at('2026-06-20T01:00:00Z'))).toBe(true); // Saturday 01:00, still Friday's window
    expect(isInsideWindow(night, at('2026-06-20T23:00:00Z'))).toBe(false); // Saturday 23:00
    expect(nextWindowOpening(night, at('2026-06-20T03:00:00Z'))).toBe(at('2026-06-26T22:00:00Z'));
  });

  it('equal start and end is the whole day', () => {
    const always: CallWindow = { from: '00:00', to: '00:00', timeZone: 'Asia/Tokyo' };
    expect(nextWindowOpening(always, at('2026-06-20T03:00:00Z'))).toBeUndefined();
  });

  it('parses the CLI and environment forms, and refuses bad ones with a readable error', () => {
    expect(parseCallWindow('9:00-20:00', 'Europe/Paris', 'mon-fri')).toEqual({ from: '09:00', to: '20:00', timeZone: 'Europe/Paris', days: [1, 2, 3, 4, 5] });
    expect(parseWeekdays('sat,sun')).toEqual([6, 7]);
    expect(parseWeekdays('fri-mon')).toEqual([1, 5, 6, 7]);
    expect(() => parseCallWindow('9-20', 'Europe/Paris')).toThrow(InvalidInputError);
    expect(() => parseCallWindow('09:00-25:00', 'Europe/Paris')).toThrow(/09:00-20:00/);
    expect(() => parseCallWindow('09:00-20:00', 'Mars/Olympus')).toThrow(/unknown time zone/);
    expect(() => parseWeekdays('weekdays')).toThrow(/mon-fri/);
    expect(callWindowSchema.safeParse({ from: '09:00', to: '20:00', timeZone: 'Nowhere/City' }).success).toBe(false);
    expect(describeWindow({ ...NEW_YORK_DAYTIME, days: [1, 2] })).toBe('09:00-20:00 America/New_York mon,tue');
  });
});

describe('the default calling window (settings)', () => {
  it('DIAL_CALL_WINDOW, DIAL_CALL_DAYS and DIAL_TIME_ZONE make the window of calls that carry none; bad values name the variable', () => {
    expect(loadConfig({}).dial.callWindow).toBeUndefined();
    expect(loadConfig({ DIAL_CALL_WINDOW: '08:30-19:00', DIAL_CALL_DAYS: 'mon-sat', DIAL_TIME_ZONE: 'America/Denver' }).dial.callWindow).toEqual({
      from: '08:30',
      to: '19:00',
      timeZone: 'America/Denver',
      days: [1, 2, 3, 4, 5, 6],
    });
    expect(() => loadConfig({ DIAL_CALL_WINDOW: 'business hours' })).toThrow(/DIAL_CALL_WINDOW: call window must look like 09:00-20:00/);
    expect(() => loadConfig({ DIAL_CALL_WINDOW: '09:00-17:00', DIAL_CALL_DAYS: 'weekdays' })).toThrow(/DIAL_CALL_DAYS: weekdays must look like mon-fri/);
    expect(() => loadConfig({ DIAL_CALL_DAYS: 'mon-fri' })).toThrow(/DIAL_CALL_DAYS: needs DIAL_CALL_WINDOW/);
    expect(() => loadConfig({ DIAL_TIME_ZONE: 'Eastern' })).toThrow(ConfigError);
  });
});
