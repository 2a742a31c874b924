/**
 * The figures a campaign's HTML report shows (issue 12 §5), computed from its counters (the totals: they count calls
 * whose records have expired too) and its records (everything measured per call: talk time, attempts, when calls
 * ended). Pure: the same input gives the same figures, so a test compares them to the store.
 */
import type { CallRecord, CampaignCounters } from '../../core/callStore.js';
import { OUTCOMES, type Outcome } from '../../core/outcomes.js';
import { DAY, HOUR, MINUTE, SECOND } from '../../core/time.js';
import { pickUpRate, wasDialed, type PickUpRate } from '../campaignReport.js';

/** The chart's time step: the smallest of these that fits the campaign's span in at most MAX_BUCKETS bars. */
const BUCKET_STEPS_MS = [MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, DAY, 7 * DAY] as const;
/** The widest step: a campaign longer than MAX_BUCKETS weeks gets more bars. */
const LONGEST_STEP_MS = 7 * DAY;
/** More bars than this would be thinner than a few pixels on a laptop screen. */
export const MAX_BUCKETS = 60;
/** A rate per hour over less than this would be noise (three calls in ten seconds is not 1,080 an hour). */
const MIN_RATE_SPAN_MS = 5 * MINUTE;

/** Ended calls of one time step, by outcome. `startMs`: the step's start (epoch ms). */
export interface OutcomeBucket {
  startMs: number;
  counts: Partial<Record<Outcome, number>>;
  total: number;
}

/** Outcomes over time: ended calls counted per step of `stepMs` by the time they ended. */
export interface OutcomeTimeline {
  stepMs: number;
  buckets: OutcomeBucket[];
}

/** Everything the report's summary shows; undefined where nothing can be said yet (no call ended, no talk). */
export interface ReportStats {
  /** Calls enqueued (counters: records that expired included). */
  total: number;
  /** Not ended yet. */
  pending: number;
  byOutcome: Partial<Record<Outcome, number>>;
  /** People reached over the ended calls dialed at least once (pickUpRate: voicemail does not count). */
  pickUp: PickUpRate | undefined;
  /** Voicemail over dialed calls that ended, in %. */
  voicemail: { count: number; percent: number | undefined };
  transfers: number;
  /** Mean seconds connected over the calls on record that were (the agent's measure). */
  averageTalkS: number | undefined;
  /** Mean attempts of the dialed calls on record that ended. */
  attemptsPerCall: number | undefined;
  /** Dialed calls ended per hour, from the first attempt on record to the last end (at least MIN_RATE_SPAN_MS). */
  callsPerHour: number | undefined;
  /** When the first attempt started and the last call ended (epoch ms), as far as records show. */
  firstAttemptMs: number | undefined;
  lastEndMs: number | undefined;
  timeline: OutcomeTimeline;
  /** Records read (fewer than `total` once records expired: RECORD_RETENTION_DAYS). */
  recordsOnFile: number;
}

const PERCENT = 100;

/** When a terminal record ended (its endedAt, else its last update: records from before endedAt existed). */
export function endedAtMs(record: CallRecord): number | undefined {
  if (record.state !== 'terminal' || !record.outcome) return undefined;
  return record.endedAt ?? record.updatedAt;
}

/** The figures of a campaign (see ReportStats). */
export function reportStats(counters: CampaignCounters, records: readonly CallRecord[]): ReportStats {
  const byOutcome = counters.byOutcome;
  const pickUp = pickUpRate(counters);
  const dialedEnded = pickUp?.dialed ?? 0;
  const voicemailCount = byOutcome.voicemail ?? 0;

  let talkMs = 0;
  let talked = 0;
  let attempts = 0;
  let dialedOnFile = 0;
  let firstAttemptMs: number | undefined;
  let lastEndMs: number | undefined;
  const ends: { at: number; outcome: Outcome }[] = [];
  for (const record of records) {
    const started = record.attemptLog[0]?.startedAt ?? record.attemptStartedAt;
    if (started !== undefined && started > 0) firstAttemptMs = Math.min(firstAttemptMs ?? started, started);
    const ended = endedAtMs(record);
    if (ended === undefined || !record.outcome) continue;
    ends.push({ at: ended, outcome: record.outcome });
    if (!wasDialed(record)) continue;
    lastEndMs = Math.max(lastEndMs ?? ended, ended);
    dialedOnFile += 1;
    attempts += record.attempts;
    const durationMs = record.details?.durationMs;
    if (durationMs !== undefined && durationMs > 0) {
      talkMs += durationMs;
      talked += 1;
    }
  }
  const spanMs = firstAttemptMs !== undefined && lastEndMs !== undefined ? Math.max(MIN_RATE_SPAN_MS, lastEndMs - firstAttemptMs) : undefined;
  return {
    total: counters.total,
    pending: Math.max(0, counters.total - counters.terminal),
    byOutcome,
    pickUp,
    voicemail: { count: voicemailCount, percent: dialedEnded > 0 ? (PERCENT * voicemailCount) / dialedEnded : undefined },
    transfers: byOutcome.transferred ?? 0,
    averageTalkS: talked > 0 ? talkMs / talked / SECOND : undefined,
    attemptsPerCall: dialedOnFile > 0 ? attempts / dialedOnFile : undefined,
    callsPerHour: spanMs !== undefined ? (dialedOnFile * HOUR) / spanMs : undefined,
    firstAttemptMs,
    lastEndMs,
    timeline: outcomeTimeline(ends),
    recordsOnFile: records.length,
  };
}

/** Ended calls per time step, by outcome, from the first end to the last (empty steps included, so time reads evenly). */
export function outcomeTimeline(ends: readonly { at: number; outcome: Outcome }[]): OutcomeTimeline {
  if (ends.length === 0) return { stepMs: HOUR, buckets: [] };
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const { at } of ends) {
    first = Math.min(first, at);
    last = Math.max(last, at);
  }
  const stepMs = BUCKET_STEPS_MS.find((step) => Math.floor(last / step) - Math.floor(first / step) + 1 <= MAX_BUCKETS) ?? LONGEST_STEP_MS;
  const firstBucket = Math.floor(first / stepMs);
  const count = Math.floor(last / stepMs) - firstBucket + 1;
  const buckets: OutcomeBucket[] = Array.from({ length: count }, (_, i) => ({ startMs: (firstBucket + i) * stepMs, counts: {}, total: 0 }));
  for (const { at, outcome } of ends) {
    const bucket = buckets[Math.floor(at / stepMs) - firstBucket];
    if (!bucket) continue; // cannot happen: every end lies between first and last
    bucket.counts[outcome] = (bucket.counts[outcome] ?? 0) + 1;
    bucket.total += 1;
  }
  return { stepMs, buckets };
}

/** Outcomes in the order the report lists them (OUTCOMES' order). */
export const REPORT_OUTCOMES: readonly Outcome[] = OUTCOMES;
