import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_CALLS } from '../../src/api/schemas.js';
import { startApiServer } from '../../src/api/server.js';
import { CallStore } from '../../src/core/callStore.js';
import { loadConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { waitFor } from '../helpers/waitFor.js';
import { API_TOKENS, TOKENS } from './apiFixture.js';

const prefix = uniquePrefix('api-shutdown');

afterAll(async () => {
  await deleteKeysWithPrefix(testRedisUrl(), prefix);
});

describe('closing the API', () => {
  it('lets a batch whose client hung up finish before Redis is closed: every record gets its job', async () => {
    const config = loadConfig({ REDIS_URL: testRedisUrl(), QUEUE_PREFIX: prefix });
    const server = await startApiServer({ config, logger: createLogger('silent'), port: 0, host: '127.0.0.1', tokens: API_TOKENS, rateLimitPerSecond: 1000 });
    const redis = createProducerConnection(testRedisUrl());
    await waitUntilReady(redis);
    const store = new CallStore(redis, prefix, systemClock);
    const queue = new Queue(CALLS_QUEUE, { connection: redis, prefix });
    const calls = Array.from({ length: MAX_BATCH_CALLS }, (_, i) => ({ phone_number: `+1415${3_000_000 + i}` }));
    const aborted = new AbortController();
    try {
      const sent = fetch(`${server.url}/v1/campaigns/hang-up/calls`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.enqueue}`, 'content-type': 'application/json' },
        body: JSON.stringify({ calls }),
        signal: aborted.signal,
      }).catch(() => undefined);
      // the handler is writing records: hang up, and close the server right away
      await waitFor(async () => ((await store.counters('hang-up')).total > 0 ? true : undefined), 30_000, 'the batch to start');
      aborted.abort();
      await sent;
      await server.close();
      expect((await store.counters('hang-up')).total).toBe(MAX_BATCH_CALLS);
      expect(await queue.getJobCountByTypes('wait')).toBe(MAX_BATCH_CALLS);
    } finally {
      await server.close();
      await queue.close();
      await closeConnection(redis);
    }
  });
});
