import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CallStore } from '../../src/core/callStore.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { systemClock } from '../../src/core/time.js';
import { buildCampaignReport } from '../../src/results/campaignReport.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { createLogger } from '../../src/core/logger.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';

const url = testRedisUrl();
const prefix = uniquePrefix('results');
const campaignId = 'results-campaign';
const logger = createLogger('silent');
let baseline = 0;
let redis: Redis;
let store: CallStore;
let reporter: ResultReporter;
let results: ResultsWorkerHandle;

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  reporter = new ResultReporter(redis, prefix);
  results = await startResultsWorker({ config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent' }, logger });
});

afterAll(async () => {
  await results.close();
  await reporter.close();
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
  await expectNoLeakedHandles(baseline);
});

describe('results worker', () => {
  it('applies a terminal outcome once: a second report for the same call changes nothing', async () => {
    await store.createCalls(campaignId, [{ callId: 'once-1', phoneNumber: '+14155550100', metadata: {} }]);
    await reporter.report({ callId: 'once-1', campaignId, outcome: 'busy', reportedBy: 'consumer', sipStatusCode: 486, sipStatus: 'Busy Here', attempt: 3, endedAt: Date.now() });
    await waitFor(async () => ((await store.get(campaignId, 'once-1'))?.state === 'terminal' ? true : undefined));
    // a late, different report for the same call: the job id dedupes it, and the record ignores it anyway
    await reporter.report({ callId: 'once-1', campaignId, outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
    await store.applyTerminal({ callId: 'once-1', campaignId, outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
    const record = await store.get(campaignId, 'once-1');
    expect(record).toMatchObject({ state: 'terminal', outcome: 'busy', sipStatusCode: 486, sipStatus: 'Busy Here' });
    const counters = await store.counters(campaignId);
    expect(counters.terminal).toBe(1);
    expect(counters.byOutcome).toEqual({ busy: 1 });
    const queue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
    expect(await queue.getJobCountByTypes('completed', 'waiting', 'active', 'delayed', 'failed')).toBe(1);
    await queue.close();
  });

  it('keeps agent details (transfer, survey answers, summary) with the outcome', async () => {
    await store.createCalls(campaignId, [{ callId: 'agent-1', phoneNumber: '+14155550101', metadata: { first_name: 'Ann' } }]);
    await store.beginAttempt({ callId: 'agent-1', campaignId, phoneNumber: '+14155550101', metadata: {} }, 1, 'call-agent-1-1');
    await reporter.report({
      callId: 'agent-1',
      campaignId,
      outcome: 'transferred',
      reportedBy: 'agent',
      transfer: { mode: 'cold', target: 'tel:+14155550199' },
      surveyAnswers: [{ question: 'How likely are you to recommend us?', answer: '9' }],
      summary: 'asked for a human',
      durationMs: 42_000,
      endedAt: Date.now(),
    });
    const record = await waitFor(async () => {
      const r = await store.get(campaignId, 'agent-1');
      return r?.state === 'terminal' ? r : undefined;
    });
    expect(record.outcome).toBe('transferred');
    expect(record.details).toMatchObject({ transfer: { mode: 'cold' }, surveyAnswers: [{ answer: '9' }], durationMs: 42_000 });
    expect(record.metadata).toEqual({ first_name: 'Ann' });
  });

  it('creates the record of an inbound call the agent reports with none made before (in-… ids)', async () => {
    await reporter.report({ callId: 'in-orphan-1', campaignId, outcome: 'failed', reportedBy: 'agent', reason: 'agent crashed', endedAt: Date.now() });
    const record = await waitFor(async () => {
      const r = await store.get(campaignId, 'in-orphan-1');
      return r?.state === 'terminal' ? r : undefined;
    });
    expect(record).toMatchObject({ outcome: 'failed', reason: 'agent crashed' });
  });

  it('skips a malformed result and goes on with the next', async () => {
    const queue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
    const bad = await queue.add('bad', { callId: 'x' }, { jobId: 'malformed-1' });
    await store.createCalls(campaignId, [{ callId: 'after-bad', phoneNumber: '+14155550102', metadata: {} }]);
    await store.beginAttempt({ callId: 'after-bad', campaignId, phoneNumber: '+14155550102', metadata: {} }, 1, 'call-after-bad-1');
    await reporter.report({ callId: 'after-bad', campaignId, outcome: 'voicemail', reportedBy: 'agent', endedAt: Date.now() });
    await waitFor(async () => ((await store.get(campaignId, 'after-bad'))?.outcome === 'voicemail' ? true : undefined));
    expect(await bad.getState()).toBe('failed');
    await queue.close();
  });

  it('reports calls in flight as pending, never as lost', async () => {
    await store.createCalls(campaignId, [{ callId: 'pending-1', phoneNumber: '+14155550103', metadata: {} }]);
    const report = await buildCampaignReport(store, campaignId);
    const pending = report.calls.find((c) => c.callId === 'pending-1');
    expect(pending).toMatchObject({ outcome: 'pending', attempts: 0 });
    expect(report.pending).toBe(report.total - Object.values(report.byOutcome).reduce((a, b) => a + (b ?? 0), 0));
    expect(report.campaign).toBe(campaignId);
  });
});
