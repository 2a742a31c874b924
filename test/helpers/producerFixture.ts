import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { CallStore } from '../../src/core/callStore.js';
import { CALLS_QUEUE, type CallJob } from '../../src/core/queues.js';
import { closeConnection, createProducerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { systemClock } from '../../src/core/time.js';
import { CallProducer } from '../../src/producer/enqueueCalls.js';
import { expectNoLeakedHandles, openNetworkHandles } from './openHandles.js';
import { deleteKeysWithPrefix, testRedisUrl } from './testRedis.js';

export interface ProducerFixture {
  connection: Redis;
  producer: CallProducer;
  queue: Queue<CallJob>;
  store: CallStore;
}

/**
 * A producer, the `calls` queue and the call store on `prefix`, open for the calling file's tests (handed over
 * through `use`); closed after them, with the prefix's keys deleted, failing if a network handle is left open.
 */
export function useProducerFixture(prefix: string, maxAttempts: number, use: (fixture: ProducerFixture) => void): void {
  let baseline = 0;
  let fixture: ProducerFixture | undefined;
  beforeAll(async () => {
    baseline = openNetworkHandles().length;
    const connection = createProducerConnection(testRedisUrl());
    await waitUntilReady(connection);
    fixture = {
      connection,
      producer: new CallProducer({ connection, prefix, maxAttempts }),
      queue: new Queue<CallJob>(CALLS_QUEUE, { connection, prefix }),
      store: new CallStore(connection, prefix, systemClock),
    };
    use(fixture);
  });
  afterAll(async () => {
    if (fixture) {
      await fixture.producer.close();
      await fixture.queue.close();
      await closeConnection(fixture.connection);
    }
    await deleteKeysWithPrefix(testRedisUrl(), prefix);
    await expectNoLeakedHandles(baseline);
  });
}
