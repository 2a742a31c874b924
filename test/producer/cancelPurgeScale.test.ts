/**
 * Canceling and purging a whole campaign removes its queue jobs in one pass over each wait list per batch
 * (removeQueuedJobs), not with an O(N) LREM per job (BullMQ's queue.remove): 20,000 waiting jobs go in seconds, and
 * a canceled then purged campaign leaves the other campaign's jobs in the queue, counted, and processed by a worker
 * afterwards. The speed is asked of removeQueuedJobs (the quadratic cost was there); cancel and purge, linear per call
 * besides, are checked for what they leave behind on a campaign of 5,000 (npm test's time goal: issue 10).
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { CALLS_QUEUE, CALL_RESULTS_QUEUE } from '../../src/core/queues.js';
import { systemClock } from '../../src/core/time.js';
import { cancelCalls } from '../../src/producer/cancelCalls.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { removeQueuedJobs } from '../../src/core/removeQueuedJobs.js';
import { purgeCalls } from '../../src/results/retention.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('cancel-scale');
/** Jobs removeQueuedJobs takes out in its speed check. */
const REMOVED_JOBS = 20_000;
/** Calls of the campaign canceled and purged. */
const BIG = 5_000;
const OTHER = 50;
/**
 * Measured on this 2-core machine (load 4-7): removing 20,000 waiting jobs 0.9-1.6 s here, 8.2 s with queue.remove per
 * job; 2.1 s at load 6 on 1 December, when the machine ran 2.5x slower than usual. With 100,000 calls through the CLI: cancel 288 s -> 22-24 s,
 * purge 439 s -> 10-11 s (README).
 */
const REMOVAL_BOUND_MS = 5_000;
let redis: Redis;
let calls: Queue;
let results: Queue;
let otherIds: string[] = [];

beforeAll(async () => {
  redis = new Redis(url, { maxRetriesPerRequest: null });
  calls = new Queue(CALLS_QUEUE, { connection: redis, prefix });
  results = new Queue(CALL_RESULTS_QUEUE, { connection: redis, prefix });
  const producer = new CallProducer({ connection: redis, prefix, maxAttempts: 3 });
  const number = (i: number) => `+1415${String(2_000_000 + i)}`;
  const big = await producer.enqueueCalls(Array.from({ length: BIG }, (_, i) => ({ phoneNumber: number(i), campaignId: 'big' })));
  const other = await producer.enqueueCalls(Array.from({ length: OTHER }, (_, i) => ({ phoneNumber: number(BIG + i), campaignId: 'other' })));
  await producer.close();
  expect(big.enqueued).toHaveLength(BIG);
  otherIds = other.enqueued.map((e) => e.callId);
  expect(otherIds).toHaveLength(OTHER);
}, 120_000);

afterAll(async () => {
  await calls.close();
  await results.close();
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
});

describe('cancel and purge of a large campaign', () => {
  it('removes 20,000 waiting jobs in one pass, not an LREM each, and leaves the other jobs in order', async () => {
    const scratch = new Queue('scratch', { connection: redis, prefix });
    try {
      const ids = Array.from({ length: REMOVED_JOBS }, (_, i) => `job-${i}`);
      for (let i = 0; i < REMOVED_JOBS; i += 1000) await scratch.addBulk(ids.slice(i, i + 1000).map((jobId) => ({ name: 'x', data: {}, opts: { jobId } })));
      await scratch.addBulk(['keep-1', 'keep-2'].map((jobId) => ({ name: 'x', data: {}, opts: { jobId } })));
      await scratch.add('x', {}, { jobId: 'job-delayed', delay: 60_000 });
      const startedAt = performance.now();
      const removed = await removeQueuedJobs(redis, scratch, [...ids, 'job-delayed', 'never-added']);
      expect(performance.now() - startedAt).toBeLessThan(REMOVAL_BOUND_MS);
      // 1 for each job removed; none for a job that is not there (queue.remove would answer 1 for it)
      expect(removed).toBe(REMOVED_JOBS + 1);
      expect(await scratch.getJobCounts('waiting', 'delayed', 'active')).toEqual({ waiting: 2, delayed: 0, active: 0 });
      expect(await redis.lrange(scratch.toKey('wait'), 0, -1)).toEqual(['keep-2', 'keep-1']);
      expect(await scratch.getJob('job-0')).toBeUndefined();
    } finally {
      await scratch.obliterate({ force: true });
      await scratch.close();
    }
  }, 60_000);

  it('cancels a campaign\'s queued calls, removing their jobs and leaving the other campaign\'s jobs waiting', async () => {
    const summary = await cancelCalls(redis, prefix, { campaignId: 'big' });
    expect(summary.canceled).toHaveLength(BIG);
    expect(summary.inFlight).toEqual([]);
    const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
    expect(sum(await calls.getJobCounts('waiting', 'prioritized', 'delayed', 'active'))).toBe(OTHER);
    expect((await calls.getJobs(['waiting'], 0, -1)).map((j) => j.id).sort()).toEqual([...otherIds].sort());
    const store = new CallStore(redis, prefix, systemClock);
    expect(await store.counters('big')).toMatchObject({ total: BIG, terminal: BIG, byOutcome: { canceled: BIG } });
    // each canceled call's outcome is reported on call-results (no results worker here: they wait)
    expect((await results.getJobCounts()).waiting).toBe(BIG);
  }, 60_000);

  it('purges the canceled campaign: records and jobs gone, the other campaign\'s calls still dialable', async () => {
    const summary = await purgeCalls(redis, prefix, { campaignId: 'big' });
    // the calls' jobs went with the cancel: what is left is each call's outcome on call-results, one job per call
    expect(summary).toEqual({ purged: BIG, campaigns: 1, campaignsRemoved: 1, inFlight: 0, jobsRemoved: BIG });
    expect((await results.getJobCounts()).waiting).toBe(0);
    expect(await results.getJob((await new CallStore(redis, prefix, systemClock).callIds('other'))[0] ?? '')).toBeUndefined();

    const processed = new Set<string>();
    const worker = new Worker(
      CALLS_QUEUE,
      async (job) => {
        if (job.id !== undefined) processed.add(job.id);
        return Promise.resolve();
      },
      { connection: redis.duplicate({ maxRetriesPerRequest: null }), prefix },
    );
    try {
      await waitFor(async () => Promise.resolve(processed.size === OTHER ? true : undefined), 20_000, 'the other campaign\'s jobs');
    } finally {
      await worker.close();
    }
    expect([...processed].sort()).toEqual([...otherIds].sort());
    expect(await calls.getJobCounts('completed', 'waiting', 'active', 'delayed', 'failed', 'prioritized')).toEqual({
      completed: OTHER,
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 0,
      prioritized: 0,
    });
  }, 60_000);
});
