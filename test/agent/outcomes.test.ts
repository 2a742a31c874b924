/** Exactly one outcome per call: the tracker reports once, and a second report of a call adds no job to `call-results`. */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallOutcomeTracker, type ResultSink } from '../../src/agent/outcomeTracker.js';
import type { CallResult } from '../../src/core/outcomes.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { ResultsReader } from './helpers.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('agent-outcomes');
let redis: Redis;
let reporter: ResultReporter;
let results: ResultsReader;

beforeAll(() => {
  redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
  reporter = new ResultReporter(redis, prefix);
  results = new ResultsReader(testRedisUrl(), prefix);
});

afterAll(async () => {
  await reporter.close();
  await results.close();
  await redis.quit();
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

function memorySink(): ResultSink & { reports: CallResult[] } {
  const reports: CallResult[] = [];
  return {
    reports,
    async report(result) {
      reports.push(result);
    },
  };
}

describe('CallOutcomeTracker', () => {
  it('the first decision wins and finish reports once, however many paths reach it', async () => {
    const sink = memorySink();
    const tracker = new CallOutcomeTracker({ callId: 'c1', campaignId: 'camp', attempt: 2, sink, logger });
    tracker.markConnected();
    expect(tracker.decide({ outcome: 'voicemail', reason: 'greeting heard' })).toBe(true);
    expect(tracker.decide({ outcome: 'answered', reason: 'callee hung up' })).toBe(false);
    const [a, b] = await Promise.all([tracker.finish(), tracker.finish({ outcome: 'failed', reason: 'shutdown' })]);
    await tracker.finish();
    expect(a).toBe(b);
    expect(sink.reports).toHaveLength(1);
    expect(sink.reports[0]).toMatchObject({ callId: 'c1', campaignId: 'camp', attempt: 2, outcome: 'voicemail', reportedBy: 'agent' });
  });

  it('a crash path with no decision reports failed with its reason', async () => {
    const sink = memorySink();
    const tracker = new CallOutcomeTracker({ callId: 'c2', campaignId: 'camp', sink, logger });
    await tracker.finish({ outcome: 'failed', reason: 'the agent shut down during the call' });
    expect(sink.reports[0]).toMatchObject({ outcome: 'failed', reason: 'the agent shut down during the call', durationMs: 0 });
  });

  it('keeps survey answers, notes and a bounded transcript in the result', async () => {
    const sink = memorySink();
    const tracker = new CallOutcomeTracker({ callId: 'c3', campaignId: 'camp', sink, logger });
    tracker.addTranscript('callee', 'Hello?');
    tracker.addTranscript('agent', '   ');
    for (let i = 0; i < 250; i += 1) tracker.addTranscript('agent', `line ${i}`);
    tracker.recordAnswer('Q1', 'yes');
    tracker.recordAnswer('Q1', 'no, actually');
    tracker.note('cold transfer to desk failed: SIP 603 Decline');
    const result = await tracker.finish({ outcome: 'answered', reason: 'agent ended the call' });
    expect(result.surveyAnswers).toEqual([{ question: 'Q1', answer: 'no, actually' }]);
    expect(result.transcript).toHaveLength(201);
    expect(result.transcript?.at(-1)).toEqual({ role: 'system', text: '51 more lines not kept' });
    expect(result.summary).toContain('cold transfer to desk failed: SIP 603 Decline');
  });

  it('a sink that fails is retried, and finish still resolves', async () => {
    let calls = 0;
    const sink: ResultSink = {
      async report() {
        calls += 1;
        if (calls < 2) throw new Error('redis down');
      },
    };
    const tracker = new CallOutcomeTracker({ callId: 'c4', campaignId: 'camp', sink, logger });
    await tracker.finish({ outcome: 'answered', reason: 'x' });
    expect(calls).toBe(2);
  });

  it('a call without an id (a bad dispatch without call_id) is only logged', async () => {
    const sink = memorySink();
    const tracker = new CallOutcomeTracker({ callId: undefined, campaignId: 'default', sink, logger });
    const result = await tracker.finish({ outcome: 'answered', reason: 'x' });
    expect(result.outcome).toBe('answered');
    expect(sink.reports).toHaveLength(0);
  });

  it("an inbound caller's number goes into the summary, and logs show the call id as given for them", async () => {
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const sink = memorySink();
    const tracker = new CallOutcomeTracker({
      callId: 'in-call-_-12025550123_x',
      logCallId: 'in-call-_-*******0123_x',
      campaignId: 'inbound',
      sink,
      logger: capture,
    });
    tracker.setCaller(' +12025550123 ');
    tracker.setCaller('');
    expect(tracker.caller).toBe('+12025550123');
    const result = await tracker.finish({ outcome: 'answered', reason: 'callee hung up' });
    expect(result.summary).toContain('inbound call from +12025550123');
    expect(sink.reports).toHaveLength(1);
    expect(lines.join('')).not.toContain('12025550123');
    expect(lines.join('')).toContain('in-call-_-*******0123_x');
  });
});

describe('call-results (ResultReporter, jobId = call id)', () => {
  it('two reports for one call leave one result: the first', async () => {
    const first = new CallOutcomeTracker({ callId: 'dup-1', campaignId: 'camp', sink: reporter, logger });
    const second = new CallOutcomeTracker({ callId: 'dup-1', campaignId: 'camp', sink: reporter, logger });
    await first.finish({ outcome: 'voicemail', reason: 'greeting heard' });
    await second.finish({ outcome: 'failed', reason: 'a second agent process' });
    const all = (await results.all()).filter((r) => r.callId === 'dup-1');
    expect(all).toHaveLength(1);
    expect(all[0]?.outcome).toBe('voicemail');
  });
});
