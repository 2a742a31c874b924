import { DateTime, Duration } from 'luxon';
import { InvalidInputError } from './errors.js';

/** Units of time in milliseconds, so durations read as `30 * SECOND`. */
export const MILLISECOND = 1;
export const SECOND = 1000 * MILLISECOND;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;

/** Cancels a timer set with Clock.setTimer; harmless after it fired or was cancelled. */
export type CancelTimer = () => void;

/**
 * Time as code reads and waits on it: "now" in epoch milliseconds, sleeps and one-shot timers. Production passes
 * systemClock; tests pass a clock they move forward themselves (test/helpers/testClock.ts) instead of waiting.
 */
export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time, or rejects with `signal.reason` once `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `callback` once, `ms` from now. The timer never keeps the process alive (a Node timer it sets is unref'd):
   * whoever sets one also owns what ends the process.
   */
  setTimer(ms: number, callback: () => void): CancelTimer;
}

/** Resolves after `ms`, or early (rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The wall clock, Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep,
  setTimer(ms, callback) {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * A clock that reads "now" from `now` and waits as `base` does: a fixed or shifted time over real waits (tests that set
 * the date, tools that replay a day).
 */
export function clockReading(now: () => number, base: Clock = systemClock): Clock {
  return { now, sleep: (ms, signal) => base.sleep(ms, signal), setTimer: (ms, callback) => base.setTimer(ms, callback) };
}

export const DAY = 24 * HOUR;

/**
 * Latest start a call may be given from now (`--delay`, `--at`, a CSV `delay`/`at` cell), and latest `--expires-at`:
 * further ahead is most likely a typo (`--delay 10000d`), and a call that far out belongs in a later import.
 */
export const MAX_SCHEDULE_AHEAD_MS = 90 * DAY;
/**
 * An `--at` at most this far in the past means "now" (a reminder list prepared a few minutes early, clocks a little
 * apart); further back is refused, as a past `--expires-at` is, instead of dialing a stale call at once.
 */
export const PAST_START_TOLERANCE_MS = 5 * MINUTE;

/** Compact durations as people type them: units largest first, each at most once (`1h30m`, `2d`, `90s`, `250ms`). */
const COMPACT_DURATION = /^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;
const BARE_SECONDS = /^\d+(?:\.\d+)?$/;
/** What a duration may look like, for messages. */
export const DURATION_FORMS = '90 (seconds), 90s, 5m, 1h30m, 2d, 250ms, or ISO 8601 such as PT5M';

/**
 * Parses a duration into milliseconds; undefined when malformed. Forms: a bare number is **seconds** (`90`); compact
 * units largest first (`1h30m`, `2d`, `5m`, `90s`, `250ms`, spaces allowed between parts); ISO 8601 (`PT5M`,
 * `P1DT2H`, `P1W`), read by luxon's Duration.fromISO. Months and years are refused (their length varies).
 */
export function parseDuration(text: string): number | undefined {
  const compact = text.trim().replace(/\s+/g, '').toLowerCase();
  if (compact === '') return undefined;
  if (BARE_SECONDS.test(compact)) return Math.round(Number(compact) * SECOND);
  const parts = COMPACT_DURATION.exec(compact);
  if (parts && parts.slice(1).some((p) => p !== undefined)) {
    const [days, hours, minutes, seconds, milliseconds] = parts.slice(1).map((p) => Number(p ?? 0));
    return Math.round(Duration.fromObject({ days, hours, minutes, seconds, milliseconds }).toMillis());
  }
  if (!compact.startsWith('p')) return undefined;
  const iso = Duration.fromISO(compact.toUpperCase());
  const { years, months, ...rest } = iso.isValid ? iso.toObject() : { years: undefined, months: undefined };
  if (!iso.isValid || years || months || Object.keys(rest).length === 0) return undefined;
  return Math.round(iso.toMillis());
}

/** A date with a time of day: `2030-01-31T09:30`, `2030-01-31 09:30`, basic `20300131T0930`, with or without a zone. */
const HAS_TIME_OF_DAY = /^\d{4}-?\d{2}-?\d{2}[T ]\d{2}/i;
/** Example instants, for messages. */
export const INSTANT_FORMS = '2030-01-31T09:30:00Z, 2030-01-31T09:30+01:00, or 2030-01-31 09:30 (local to the time zone)';

/**
 * Parses a date and time of day (ISO 8601, or SQL-style with a space) into epoch ms; undefined when malformed or
 * without a time of day. An offset (`Z`, `+02:00`) fixes the instant; without one it is wall-clock time in `timeZone`
 * (IANA), read by luxon (a time skipped by a daylight-saving change moves forward).
 */
export function parseInstant(text: string, timeZone: string): number | undefined {
  const trimmed = text.trim();
  if (!HAS_TIME_OF_DAY.test(trimmed)) return undefined;
  const iso = DateTime.fromISO(trimmed, { zone: timeZone });
  const parsed = iso.isValid ? iso : DateTime.fromSQL(trimmed, { zone: timeZone });
  return parsed.isValid ? parsed.toMillis() : undefined;
}

/** When a call may start and when it expires, as given (flags, or a CSV row's cells). */
export interface ScheduleInput {
  at?: string;
  delay?: string;
  expiresAt?: string;
}

/** Names the inputs in messages: `--at` on the command line, `at` for a CSV column. */
export interface ScheduleNames {
  at: string;
  delay: string;
  expiresAt: string;
}

export const SCHEDULE_FLAGS: ScheduleNames = { at: '--at', delay: '--delay', expiresAt: '--expires-at' };

const humanDays = (ms: number) => `${Math.round(ms / DAY)} days`;

/**
 * Turns `at`/`delay`/`expiresAt` into epoch ms, with the bounds every input shares: a start at most
 * MAX_SCHEDULE_AHEAD_MS ahead (an `at` up to PAST_START_TOLERANCE_MS in the past means now, earlier is refused), an
 * expiry in the future, after the start and within the same bound. Offset-less times are local to `timeZone`.
 * `notBefore` is undefined for "now". Throws InvalidInputError naming the input.
 */
export function resolveSchedule(
  input: ScheduleInput,
  now: number,
  timeZone: string,
  names: ScheduleNames = SCHEDULE_FLAGS,
): { notBefore?: number; expiresAt?: number } {
  if (input.at !== undefined && input.delay !== undefined) throw new InvalidInputError(`use either ${names.at} or ${names.delay}, not both`);
  let notBefore: number | undefined;
  if (input.at !== undefined) {
    const at = parseInstant(input.at, timeZone);
    if (at === undefined) throw new InvalidInputError(`${names.at}: expected a date and time such as ${INSTANT_FORMS}, got "${input.at}"`);
    if (at < now - PAST_START_TOLERANCE_MS) {
      throw new InvalidInputError(`${names.at}: "${input.at}" is in the past (${new Date(at).toISOString()}); leave it out to dial now`);
    }
    notBefore = at > now ? at : undefined;
  }
  if (input.delay !== undefined) {
    const delay = parseDuration(input.delay);
    if (delay === undefined) throw new InvalidInputError(`${names.delay}: expected a duration such as ${DURATION_FORMS}, got "${input.delay}"`);
    if (delay > MAX_SCHEDULE_AHEAD_MS) throw new InvalidInputError(`${names.delay}: "${input.delay}" is more than ${humanDays(MAX_SCHEDULE_AHEAD_MS)}`);
    notBefore = delay > 0 ? now + delay : undefined;
  }
  if (notBefore !== undefined && notBefore > now + MAX_SCHEDULE_AHEAD_MS) {
    throw new InvalidInputError(`${names.at}: "${input.at}" is more than ${humanDays(MAX_SCHEDULE_AHEAD_MS)} ahead`);
  }
  let expiresAt: number | undefined;
  if (input.expiresAt !== undefined) {
    expiresAt = parseInstant(input.expiresAt, timeZone);
    if (expiresAt === undefined) {
      throw new InvalidInputError(`${names.expiresAt}: expected a date and time such as ${INSTANT_FORMS}, got "${input.expiresAt}"`);
    }
    if (expiresAt <= now) throw new InvalidInputError(`${names.expiresAt} is in the past ("${input.expiresAt}")`);
    if (notBefore !== undefined && expiresAt <= notBefore) throw new InvalidInputError(`${names.expiresAt} is not after the call may start`);
    if (expiresAt > now + MAX_SCHEDULE_AHEAD_MS) {
      throw new InvalidInputError(`${names.expiresAt}: "${input.expiresAt}" is more than ${humanDays(MAX_SCHEDULE_AHEAD_MS)} ahead`);
    }
  }
  return { notBefore, expiresAt };
}
