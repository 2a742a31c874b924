/**
 * Calling windows: the local hours (and weekdays) in the callee's time zone when a call may ring, as dialers and
 * calling rules require ("not before 9 or after 8 their time"). A window whose end is before its start spans
 * midnight; equal start and end means the whole day.
 */
import { z } from 'zod';
import { InvalidInputError } from './errors.js';
import { MINUTE, SECOND } from './time.js';

const MINUTES_PER_HOUR = 60;
const SECONDS_PER_MINUTE = 60;
const DAYS_PER_WEEK = 7;
const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;
/** ISO weekday numbers: 1 = Monday … 7 = Sunday. */
const WEEKDAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const WEEKDAY_NUMBER: Readonly<Record<string, number>> = Object.fromEntries(WEEKDAY_NAMES.map((name, i) => [name, i + 1]));

/** Zones already checked: a 100,000-row import names the same few zones over and over. */
const knownTimeZones = new Set<string>();

/** True when `timeZone` is an IANA zone this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  if (knownTimeZones.has(timeZone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    return false;
  }
  knownTimeZones.add(timeZone);
  return true;
}

export const callWindowSchema = z.object({
  /** Local start, `HH:MM` (24 h). */
  from: z.string().regex(HH_MM, 'from must be HH:MM (24 h)'),
  /** Local end (exclusive), `HH:MM`; before `from` for a window across midnight. */
  to: z.string().regex(HH_MM, 'to must be HH:MM (24 h)'),
  /** IANA time zone of the callee, e.g. America/New_York. */
  timeZone: z.string().refine(isTimeZone, 'timeZone must be an IANA time zone such as America/New_York'),
  /** ISO weekdays the window applies to (1 = Monday … 7 = Sunday); every day when absent. */
  days: z.array(z.number().int().min(1).max(DAYS_PER_WEEK)).min(1).optional(),
});
export type CallWindow = z.infer<typeof callWindowSchema>;

function minutesOf(hhmm: string): number {
  const match = HH_MM.exec(hhmm);
  if (!match?.[1] || !match[2]) throw new InvalidInputError(`not a HH:MM time: ${hhmm}`);
  return Number(match[1]) * MINUTES_PER_HOUR + Number(match[2]);
}

/** `9:00-20:00` / `09:00-20:00` → from/to. */
function parseHours(spec: string): { from: string; to: string } {
  const match = /^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$/.exec(spec);
  const pad = (t: string) => t.padStart('HH:MM'.length, '0');
  if (!match?.[1] || !match[2] || !HH_MM.test(pad(match[1])) || !HH_MM.test(pad(match[2]))) {
    throw new InvalidInputError(`call window must look like 09:00-20:00, not "${spec}"`);
  }
  return { from: pad(match[1]), to: pad(match[2]) };
}

/** `mon-fri`, `sat,sun`, `mon-wed,fri` → ISO weekday numbers. */
export function parseWeekdays(spec: string): number[] {
  const days = new Set<number>();
  for (const part of spec.toLowerCase().split(',').map((p) => p.trim())) {
    const [first, last] = part.split('-').map((d) => WEEKDAY_NUMBER[d.trim().slice(0, 3)]);
    if (first === undefined || (part.includes('-') && last === undefined)) {
      throw new InvalidInputError(`weekdays must look like mon-fri or sat,sun, not "${spec}"`);
    }
    const end = last ?? first;
    for (let d = first; ; d = (d % DAYS_PER_WEEK) + 1) {
      days.add(d);
      if (d === end) break;
    }
  }
  return [...days].sort((a, b) => a - b);
}

/** Builds a validated window from the CLI/env forms: hours `09:00-20:00`, an IANA zone, weekdays `mon-fri`. */
export function parseCallWindow(hours: string, timeZone: string, weekdays?: string): CallWindow {
  if (!isTimeZone(timeZone)) throw new InvalidInputError(`unknown time zone "${timeZone}" (use an IANA name such as America/New_York)`);
  return { ...parseHours(hours), timeZone, ...(weekdays ? { days: parseWeekdays(weekdays) } : {}) };
}

interface LocalTime {
  year: number;
  month: number;
  day: number;
  /** ISO weekday, 1 = Monday. */
  weekday: number;
  /** Minutes since local midnight, fractional. */
  minuteOfDay: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

function localTime(epochMs: number, timeZone: string): LocalTime {
  const parts = Object.fromEntries(formatterFor(timeZone).formatToParts(epochMs).map((p) => [p.type, p.value]));
  const millis = ((epochMs % SECOND) + SECOND) % SECOND;
  const seconds = Number(parts.second) + millis / SECOND;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: WEEKDAY_NUMBER[String(parts.weekday).toLowerCase()] ?? 1,
    minuteOfDay: Number(parts.hour) * MINUTES_PER_HOUR + Number(parts.minute) + seconds / SECONDS_PER_MINUTE,
  };
}

/** The instant a local wall-clock time happens in `timeZone` (a time skipped by DST lands just after the gap). */
function zonedToEpoch(year: number, month: number, day: number, minuteOfDay: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day) + minuteOfDay * MINUTE;
  const offsetAt = (instant: number) => {
    const local = localTime(instant, timeZone);
    return Date.UTC(local.year, local.month - 1, local.day) + Math.round(local.minuteOfDay * MINUTE) - instant;
  };
  const first = wall - offsetAt(wall);
  const second = wall - offsetAt(first);
  return Math.max(first, second);
}

function allowed(window: CallWindow, weekday: number): boolean {
  return window.days === undefined || window.days.includes(weekday);
}

function previousWeekday(weekday: number): number {
  return weekday === 1 ? DAYS_PER_WEEK : weekday - 1;
}

/** True when `now` falls inside the window in its time zone. */
export function isInsideWindow(window: CallWindow, now: number): boolean {
  const local = localTime(now, window.timeZone);
  const from = minutesOf(window.from);
  const to = minutesOf(window.to);
  if (from === to) return allowed(window, local.weekday);
  if (from < to) return allowed(window, local.weekday) && local.minuteOfDay >= from && local.minuteOfDay < to;
  // Across midnight: the evening part belongs to today's window, the early-morning part to yesterday's.
  return (allowed(window, local.weekday) && local.minuteOfDay >= from) || (allowed(window, previousWeekday(local.weekday)) && local.minuteOfDay < to);
}

/** When the window next opens after `now` (epoch ms), or undefined when `now` is inside it. */
export function nextWindowOpening(window: CallWindow, now: number): number | undefined {
  if (isInsideWindow(window, now)) return undefined;
  const from = minutesOf(window.from);
  const today = localTime(now, window.timeZone);
  // Walk local calendar days from today; a week plus one covers every weekday pattern.
  for (let offset = 0; offset <= DAYS_PER_WEEK; offset += 1) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + offset));
    const weekday = ((today.weekday - 1 + offset) % DAYS_PER_WEEK) + 1;
    if (!allowed(window, weekday)) continue;
    const opening = zonedToEpoch(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), from, window.timeZone);
    if (opening > now) return opening;
  }
  throw new Error('unreachable: a call window with at least one weekday opens within a week');
}

/** A short description for logs and errors: `09:00-20:00 America/New_York mon,tue,…`. */
export function describeWindow(window: CallWindow): string {
  const days = window.days ? ` ${window.days.map((d) => WEEKDAY_NAMES[d - 1]).join(',')}` : '';
  return `${window.from}-${window.to} ${window.timeZone}${days}`;
}
