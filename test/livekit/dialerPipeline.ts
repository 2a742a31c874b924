import { Redis } from 'ioredis';
import { CallStore, type CallRecord } from '../../src/core/callStore.js';
import { loadConfig, type DialerConfig } from '../../src/core/config.js';
import { systemClock } from '../../src/core/time.js';
import { startDialWorker, type DialWorkerHandle } from '../../src/consumer/dialWorker.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { startResultsWorker, type ResultsWorkerHandle } from '../../src/results/resultsWorker.js';
import { deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { silentLogger } from '../helpers/pipeline.js';
import type { LiveStackEnv } from './liveStack.js';

/** The dialer (producer, results worker, optionally an in-process dial worker) on the real stack's Redis. */
export interface LiveDialer {
  env: Record<string, string>;
  config: DialerConfig;
  redis: Redis;
  store: CallStore;
  producer: CallProducer;
  results: ResultsWorkerHandle;
  dialers: DialWorkerHandle[];
  startDialer(): Promise<DialWorkerHandle>;
  waitForOutcome(campaignId: string, callId: string, timeoutMs: number): Promise<CallRecord>;
  close(): Promise<void>;
}

/** Starts the results worker (and `dialers` dial workers) with the dialer's settings pointed at the real stack. */
export async function startLiveDialer(
  name: string,
  stack: LiveStackEnv,
  trunkId: string,
  options: { env?: Record<string, string>; dialers?: number } = {},
): Promise<LiveDialer> {
  const prefix = uniquePrefix(name);
  const env: Record<string, string> = {
    REDIS_URL: stack.redisUrl,
    QUEUE_PREFIX: prefix,
    LIVEKIT_URL: stack.url,
    LIVEKIT_API_KEY: stack.apiKey,
    LIVEKIT_API_SECRET: stack.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: trunkId,
    DIAL_CPS: '5',
    DIAL_CONCURRENCY: '4',
    DIAL_MAX_ATTEMPTS: '2',
    DIAL_RINGING_TIMEOUT_S: '6',
    DIAL_RETRY_DELAY_S: '0.5',
    LOG_LEVEL: 'silent',
    ...options.env,
  };
  const config = loadConfig(env);
  const redis = new Redis(stack.redisUrl);
  const store = new CallStore(redis, prefix, systemClock);
  const producer = new CallProducer({ connection: redis, prefix, maxAttempts: config.dial.maxAttempts });
  const results = await startResultsWorker({ config, logger: silentLogger });
  const dialers: DialWorkerHandle[] = [];
  const startDialer = async () => {
    const dialer = await startDialWorker({ config, logger: silentLogger });
    dialers.push(dialer);
    return dialer;
  };
  for (let i = 0; i < (options.dialers ?? 1); i++) await startDialer();
  return {
    env,
    config,
    redis,
    store,
    producer,
    results,
    dialers,
    startDialer,
    waitForOutcome: (campaignId, callId, timeoutMs) =>
      waitFor(
        async () => {
          const record = await store.get(campaignId, callId);
          return record?.state === 'terminal' ? record : undefined;
        },
        timeoutMs,
        `terminal outcome of ${callId}`,
      ),
    close: async () => {
      await Promise.all(dialers.map((d) => d.close(true)));
      await results.close();
      await producer.close();
      await deleteKeysWithPrefix(redis, prefix);
      await redis.quit();
    },
  };
}
