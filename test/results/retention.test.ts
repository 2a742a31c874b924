/**
 * Retention: an ended call's record expires RECORD_RETENTION_DAYS after it ends (a TTL set with the outcome), and
 * `purge` deletes ended calls with their counts, list entries and queue jobs; campaigns stay consistent either way.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { DEFAULT_RECORD_RETENTION_DAYS, loadConfig } from '../../src/core/config.js';
import { ConfigError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/logger.js';
import type { CallResult, Outcome } from '../../src/core/outcomes.js';
import { CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { ResultReporter } from '../../src/core/reportResult.js';
import { HOUR, SECOND, systemClock } from '../../src/core/time.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { buildCampaignReport } from '../../src/results/campaignReport.js';
import { DAY, purgeCalls } from '../../src/results/retention.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { WEBHOOKS_QUEUE, WebhookOutbox } from '../../src/results/webhooks.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('retention');
const RETENTION_DAYS = 2;
let baseline = 0;
let redis: Redis;
let store: CallStore;
let reporter: ResultReporter;
let results: ResultsWorkerHandle;

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  reporter = new ResultReporter(redis, prefix);
  results = await startResultsWorker({
    config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent', recordRetentionDays: RETENTION_DAYS },
    logger: createLogger('silent'),
  });
});

afterAll(async () => {
  await results.close();
  await reporter.close();
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
  await expectNoLeakedHandles(baseline);
});

const number = (i: number) => `+1415555${String(1000 + i)}`;

/** Creates calls that ring (record `dialing`, attempt 1). */
async function ringing(campaignId: string, callIds: readonly string[]): Promise<void> {
  await store.createCalls(campaignId, callIds.map((callId, i) => ({ callId, phoneNumber: number(i), metadata: { first_name: 'Ann' } })));
  for (const [i, callId] of callIds.entries()) {
    await store.beginAttempt({ callId, campaignId, phoneNumber: number(i), metadata: {} }, 1, `call-${callId}-1`);
  }
}

/** Reports an outcome through `call-results` and waits until the record has ended. */
async function end(campaignId: string, callId: string, outcome: Outcome, extra: Partial<CallResult> = {}): Promise<void> {
  const reportedBy = outcome === 'answered' || outcome === 'voicemail' ? 'agent' : 'consumer';
  await reporter.report({ callId, campaignId, outcome, reportedBy, attempt: 1, endedAt: Date.now(), ...extra });
  await waitFor(async () => ((await store.get(campaignId, callId))?.state === 'terminal' ? true : undefined), 10_000, `${callId} to end`);
}

const ttlOf = (campaignId: string, callId: string) => redis.pttl(store.keys.callRecord(campaignId, callId));

describe('record retention', () => {
  it('sets the record to expire RECORD_RETENTION_DAYS after the call ends; records in flight never expire', async () => {
    const campaignId = 'ttl';
    await ringing(campaignId, ['ended-1', 'flying-1']);
    await end(campaignId, 'ended-1', 'answered', { transcript: [{ role: 'callee', text: 'my account number is 1234' }] });
    const ttl = await ttlOf(campaignId, 'ended-1');
    expect(ttl).toBeGreaterThan(RETENTION_DAYS * DAY - 5 * 60 * SECOND);
    expect(ttl).toBeLessThanOrEqual(RETENTION_DAYS * DAY);
    expect(await ttlOf(campaignId, 'flying-1')).toBe(-1);
  });

  it("gives a call an operator canceled (ended by a direct write) its TTL when the results worker takes the report", async () => {
    const campaignId = 'ttl-cancel';
    await store.createCalls(campaignId, [{ callId: 'cancel-1', phoneNumber: number(9), metadata: {} }]);
    expect((await cancelCalls(redis, prefix, { campaignId })).canceled).toEqual(['cancel-1']);
    const ttl = await waitFor(async () => {
      const t = await ttlOf(campaignId, 'cancel-1');
      return t > 0 ? t : undefined;
    }, 10_000, 'the TTL of the canceled call');
    expect(ttl).toBeGreaterThan((RETENTION_DAYS * DAY) - 5 * 60 * SECOND);
  });

  it('keeps a record for ever with RECORD_RETENTION_DAYS=0', async () => {
    const campaignId = 'forever';
    const keeper = await startResultsWorker({
      config: { redisUrl: url, queuePrefix: `${prefix}-forever`, logLevel: 'silent', recordRetentionDays: 0 },
      logger: createLogger('silent'),
    });
    const own = new CallStore(redis, `${prefix}-forever`, systemClock);
    const ownReporter = new ResultReporter(redis, `${prefix}-forever`);
    try {
      await own.createCalls(campaignId, [{ callId: 'keep-1', phoneNumber: number(1), metadata: {} }]);
      await own.beginAttempt({ callId: 'keep-1', campaignId, phoneNumber: number(1), metadata: {} }, 1, 'call-keep-1-1');
      await ownReporter.report({ callId: 'keep-1', campaignId, outcome: 'busy', reportedBy: 'consumer', attempt: 1, endedAt: Date.now() });
      await waitFor(async () => ((await own.get(campaignId, 'keep-1'))?.state === 'terminal' ? true : undefined));
      expect(await redis.pttl(own.keys.callRecord(campaignId, 'keep-1'))).toBe(-1);
    } finally {
      await ownReporter.close();
      await keeper.close();
      await deleteKeysWithPrefix(redis, `${prefix}-forever`);
    }
  });

  it('counts a call whose record expired as ended under its outcome, never as pending; its line is gone', async () => {
    const campaignId = 'expired';
    await ringing(campaignId, ['old-1', 'old-2', 'live-1']);
    await end(campaignId, 'old-1', 'answered');
    await end(campaignId, 'old-2', 'busy');
    const before = await buildCampaignReport(store, campaignId);
    expect(before).toMatchObject({ total: 3, pending: 1, byOutcome: { answered: 1, busy: 1 } });

    await redis.pexpire(store.keys.callRecord(campaignId, 'old-1'), 1); // its retention runs out
    await waitFor(async () => ((await redis.exists(store.keys.callRecord(campaignId, 'old-1'))) === 0 ? true : undefined));
    const after = await buildCampaignReport(store, campaignId);
    expect(after).toMatchObject({ total: 3, pending: 1, byOutcome: { answered: 1, busy: 1 } });
    expect(after.calls.map((c) => [c.callId, c.outcome])).toEqual([['old-2', 'busy'], ['live-1', 'pending']]);
  });

  it('keeps finished webhook deliveries (the whole result) no longer than the records', async () => {
    const outbox = new WebhookOutbox(redis, prefix, HOUR / SECOND);
    const deliveries = new Queue(WEBHOOKS_QUEUE, { connection: redis, prefix });
    try {
      await outbox.enqueue({ callId: 'hooked-1', campaignId: 'hooks', outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
      const job = await deliveries.getJob('hooked-1');
      expect(job?.opts.removeOnComplete).toEqual({ age: HOUR / SECOND });
      expect(job?.opts.removeOnFail).toEqual({ age: HOUR / SECOND });
    } finally {
      await deliveries.remove('hooked-1');
      await deliveries.close();
      await outbox.close();
    }
  });

  it('validates RECORD_RETENTION_DAYS with a readable message; 90 days by default', () => {
    expect(loadConfig({}).recordRetentionDays).toBe(DEFAULT_RECORD_RETENTION_DAYS);
    expect(DEFAULT_RECORD_RETENTION_DAYS).toBe(90);
    expect(loadConfig({ RECORD_RETENTION_DAYS: '0' }).recordRetentionDays).toBe(0);
    expect(loadConfig({ RECORD_RETENTION_DAYS: '30' }).recordRetentionDays).toBe(30);
    for (const bad of ['-1', '1.5', 'ninety', '100000']) {
      expect(() => loadConfig({ RECORD_RETENTION_DAYS: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ RECORD_RETENTION_DAYS: bad })).toThrow(/RECORD_RETENTION_DAYS: .*(0 keeps records for ever)/);
    }
  });
});

describe('purge', () => {
  it('deletes every ended call of a campaign with its counts, list entry and queue jobs; calls in flight stay', async () => {
    const campaignId = 'purge-all';
    await ringing(campaignId, ['a-1', 'a-2', 'a-3', 'a-flying']);
    await end(campaignId, 'a-1', 'answered');
    await end(campaignId, 'a-2', 'voicemail');
    await end(campaignId, 'a-3', 'declined');
    const resultsQueue = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
    try {
      expect(await resultsQueue.getJob('a-1')).toBeDefined();

      const summary = await purgeCalls(redis, prefix, { campaignId });
      expect(summary).toMatchObject({ purged: 3, campaigns: 1, campaignsRemoved: 0, inFlight: 1 });
      // each ended call's outcome job on call-results; the other queues hold nothing of these calls and count nothing
      expect(summary.jobsRemoved).toBe(3);
      for (const id of ['a-1', 'a-2', 'a-3']) {
        expect(await store.get(campaignId, id)).toBeUndefined();
        expect(await resultsQueue.getJob(id)).toBeUndefined();
      }
      const report = await buildCampaignReport(store, campaignId);
      expect(report).toMatchObject({ total: 1, pending: 1, byOutcome: {} });
      expect(report.calls.map((c) => c.callId)).toEqual(['a-flying']);
      expect(await store.callIds(campaignId)).toEqual(['a-flying']);

      // once the last call ends, purging the campaign removes it entirely
      await end(campaignId, 'a-flying', 'no_answer');
      expect(await purgeCalls(redis, prefix, { campaignId })).toMatchObject({ purged: 1, campaignsRemoved: 1, inFlight: 0 });
      expect(await store.counters(campaignId)).toEqual({ total: 0, terminal: 0, byOutcome: {} });
      expect(await store.campaigns()).not.toContain(campaignId);
      expect(await redis.keys(`${prefix}:dialer:{${campaignId}}*`)).toEqual([]);
    } finally {
      await resultsQueue.close();
    }
  });

  it('deletes the calls that ended before a date, in every campaign, and leaves the rest consistent', async () => {
    const cutoff = Date.now() - HOUR;
    await ringing('dated-1', ['old-a', 'new-a', 'flying-a']);
    await ringing('dated-2', ['old-b']);
    await end('dated-1', 'old-a', 'busy', { endedAt: cutoff - DAY });
    await end('dated-1', 'new-a', 'answered', { endedAt: cutoff + 1 });
    await end('dated-2', 'old-b', 'no_answer', { endedAt: cutoff - 1 });
    // a record that expired earlier: its id is still listed, its outcome still counted
    await ringing('dated-1', ['gone-a']);
    await end('dated-1', 'gone-a', 'answered', { endedAt: cutoff - DAY });
    await redis.del(store.keys.callRecord('dated-1', 'gone-a'));

    const summary = await purgeCalls(redis, prefix, { before: cutoff });
    expect(summary.purged).toBe(2);
    expect(summary.campaigns).toBeGreaterThanOrEqual(2);
    expect(await store.get('dated-1', 'old-a')).toBeUndefined();
    expect(await store.get('dated-2', 'old-b')).toBeUndefined();
    expect(await store.get('dated-1', 'new-a')).toMatchObject({ outcome: 'answered' });

    const report = await buildCampaignReport(store, 'dated-1');
    // old-a left the counts; gone-a (expired) stays counted as answered; flying-a is the one pending call
    expect(report).toMatchObject({ total: 3, pending: 1, byOutcome: { answered: 2 } });
    expect(await store.callIds('dated-1')).toEqual(['new-a', 'flying-a']);
    // dated-2 had nothing else: it is gone
    expect(await store.campaigns()).not.toContain('dated-2');
  });
});
