import { describe, expect, it } from 'vitest';
import type { CallRecord } from '../../src/core/callStore.js';
import type { Outcome } from '../../src/core/outcomes.js';
import { HOUR, MINUTE, SECOND } from '../../src/core/time.js';
import { reportNumber } from '../../src/results/report/htmlReport.js';
import { MAX_BUCKETS, outcomeTimeline, reportStats } from '../../src/results/report/reportStats.js';

const T0 = Date.UTC(2026, 0, 5, 9);

function ended(i: number, outcome: Outcome, startedAt: number, endedAt: number, extra: Partial<CallRecord> = {}): CallRecord {
  return {
    callId: `c${i}`,
    campaignId: 'c',
    phoneNumber: '+14155550100',
    state: 'terminal',
    outcome,
    attempts: 1,
    platformErrors: 0,
    metadata: {},
    attemptLog: [{ attempt: 1, room: 'r', startedAt }],
    endedAt,
    createdAt: startedAt,
    updatedAt: endedAt,
    ...extra,
  };
}

describe('report figures', () => {
  it('averages talk time over connected calls, attempts over dialed calls that ended, and rates calls per hour over the span', () => {
    const records = [
      ended(1, 'answered', T0, T0 + 2 * MINUTE, { details: { durationMs: 90 * SECOND } }),
      ended(2, 'voicemail', T0 + 10 * MINUTE, T0 + 11 * MINUTE, { details: { durationMs: 30 * SECOND } }),
      ended(3, 'busy', T0 + 20 * MINUTE, T0 + 30 * MINUTE, { attempts: 3 }),
      ended(4, 'no_answer', T0 + 40 * MINUTE, T0 + HOUR, { attempts: 2 }),
      // canceled before it rang: not dialed, left out of attempts and the rate
      ended(5, 'canceled', T0 + 50 * MINUTE, T0 + 2 * HOUR, { attempts: 0, attemptLog: [] }),
    ];
    const stats = reportStats({ total: 6, terminal: 5, byOutcome: { answered: 1, voicemail: 1, busy: 1, no_answer: 1, canceled: 1 } }, records);
    expect(stats.pending).toBe(1);
    expect(stats.pickUp).toEqual({ percent: 25, people: 1, dialed: 4 });
    expect(stats.voicemail).toEqual({ count: 1, percent: 25 });
    expect(stats.averageTalkS).toBe(60);
    expect(stats.attemptsPerCall).toBe(7 / 4);
    expect(stats.callsPerHour).toBeCloseTo(4, 5); // 4 dialed calls from 09:00 to 10:00
    expect(stats.timeline.buckets.reduce((n, b) => n + b.total, 0)).toBe(5);
  });

  it('says nothing it cannot know: no rate, talk time or pick-up before a call has ended', () => {
    const stats = reportStats({ total: 3, terminal: 0, byOutcome: {} }, []);
    expect(stats).toMatchObject({ pickUp: undefined, averageTalkS: undefined, attemptsPerCall: undefined, callsPerHour: undefined, timeline: { buckets: [] } });
  });

  it('picks the finest time step that fits the chart, keeping empty steps so time reads evenly', () => {
    const short = outcomeTimeline([{ at: T0, outcome: 'answered' }, { at: T0 + 30 * MINUTE, outcome: 'busy' }]);
    expect(short.stepMs).toBe(MINUTE);
    expect(short.buckets).toHaveLength(31);
    const long = outcomeTimeline([{ at: T0, outcome: 'answered' }, { at: T0 + 3 * 24 * HOUR, outcome: 'busy' }]);
    expect(long.stepMs).toBe(3 * HOUR);
    expect(long.buckets.length).toBeLessThanOrEqual(MAX_BUCKETS);
    expect(long.buckets[0]?.counts).toEqual({ answered: 1 });
  });

  it('masks a number to its country code and last four digits unless asked for in full', () => {
    expect(reportNumber('+14155550123', 'masked')).toBe('+1 ••••••0123');
    expect(reportNumber('+442079460958;ext=12', 'masked')).toBe('+44 ••••••0958 x12');
    expect(reportNumber('+442079460958;ext=12', 'full')).toBe('+442079460958 x12');
  });
});
