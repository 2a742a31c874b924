/** The outcome watchdog ends a connected call nobody reported as `failed`, reported by `watchdog`, and nothing else. */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { createLogger } from '../../src/core/logger.js';
import { systemClock } from '../../src/core/time.js';
import { OUTCOME_WATCHDOG_QUEUE, OutcomeWatchdog } from '../../src/core/outcomeWatchdogQueue.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { expectNoLeakedHandles, openNetworkHandles } from '../helpers/openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';

const url = testRedisUrl();
const prefix = uniquePrefix('watchdog');
const campaignId = 'watched';
const CHECK_AFTER_MS = 50;
let baseline = 0;
let redis: Redis;
let store: CallStore;
let watchdog: OutcomeWatchdog;
let results: ResultsWorkerHandle;

beforeAll(async () => {
  baseline = openNetworkHandles().length;
  redis = new Redis(url);
  store = new CallStore(redis, prefix, systemClock);
  watchdog = new OutcomeWatchdog(redis, prefix, CHECK_AFTER_MS);
  results = await startResultsWorker({ config: { redisUrl: url, queuePrefix: prefix, logLevel: 'silent' }, logger: createLogger('silent') });
});

afterAll(async () => {
  await results.close();
  await watchdog.close();
  await redis.quit();
  await deleteKeysWithPrefix(url, prefix);
  await expectNoLeakedHandles(baseline);
});

async function call(callId: string, state: 'in_call' | 'dialing'): Promise<void> {
  const identity = { callId, campaignId, phoneNumber: '+14155550180', metadata: {} };
  await store.createCalls(campaignId, [identity]);
  await store.beginAttempt(identity, 1, `call-${callId}-1`);
  if (state === 'in_call') await store.endAttempt(campaignId, callId, 1, 'in_call', { result: 'answered' });
}

describe('outcome watchdog', () => {
  it('ends a connected call whose agent never reported as failed, reported by the watchdog', async () => {
    await call('silent-1', 'in_call');
    await watchdog.arm({ callId: 'silent-1', campaignId, attempt: 1 });
    const record = await waitFor(async () => {
      const r = await store.get(campaignId, 'silent-1');
      return r?.state === 'terminal' ? r : undefined;
    }, 10_000, 'the watchdog outcome');
    expect(record).toMatchObject({ outcome: 'failed', details: { reportedBy: 'watchdog' } });
  });

  it('leaves a call that is not connected to its owner', async () => {
    await call('ringing-1', 'dialing');
    await watchdog.arm({ callId: 'ringing-1', campaignId, attempt: 1 });
    const checks = new Queue(OUTCOME_WATCHDOG_QUEUE, { connection: redis, prefix });
    try {
      const check = await waitFor(async () => {
        const job = await checks.getJob('ringing-1');
        return job?.finishedOn ? job : undefined;
      }, 10_000, 'the check to run');
      expect(check.returnvalue).toEqual({ ended: false });
    } finally {
      await checks.close();
    }
    expect(await store.get(campaignId, 'ringing-1')).toMatchObject({ state: 'dialing' });
  });
});
