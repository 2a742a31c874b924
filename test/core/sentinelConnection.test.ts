import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { closeConnection, createProducerConnection, createWorkerConnection, waitUntilReady } from '../../src/core/redisConnection.js';
import { DEFAULT_SENTINEL_PORT, parseHostPorts, type RedisTarget } from '../../src/core/redisTarget.js';
import { hasRedisServer, startSentinelTopology, type SentinelTopology } from '../helpers/redisTopology.js';
import { waitFor } from '../helpers/waitFor.js';

/**
 * Issue 14: a connection through Sentinel that is closed lets go of everything it opened. ioredis' failover
 * detector (failoverDetector: true, set by the connection factory) subscribes to `+switch-master` on every sentinel
 * over connections of its own, and `quit()` left them open (ioredis issue #1362, fixed upstream only by
 * redis/ioredis#2198): three sockets per closed connection, which keep a finished command-line process from exiting.
 * Found by the dial pipeline's tests through Sentinel (npm run test:pipeline:sentinel: "test left 9 network handles").
 */

const TEST_TIMEOUT_MS = 60_000;
/** How long the sentinels get to see a closed subscription go. */
const RELEASE_TIMEOUT_MS = 5000;

describe.skipIf(!hasRedisServer)('connections through Redis Sentinel', () => {
  let topology: SentinelTopology;
  let target: RedisTarget;
  const reporting = { logger: createLogger('silent', 'test'), level: 'debug' as const };

  /** Subscribers (our failover detectors) each sentinel has, summed. */
  const sentinelSubscribers = async (): Promise<number> => {
    let total = 0;
    for (const port of topology.sentinelPorts) {
      const sentinel = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await sentinel.connect();
        const list = String(await sentinel.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
        total += list.split('\n').filter((line) => line.trim() !== '').length;
      } finally {
        sentinel.disconnect();
      }
    }
    return total;
  };

  beforeAll(async () => {
    topology = await startSentinelTopology();
    target = { kind: 'sentinel', url: 'redis://127.0.0.1:1', sentinels: parseHostPorts(topology.sentinels, 'sentinels', DEFAULT_SENTINEL_PORT), name: topology.name };
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await topology?.close();
  });

  it(
    'closes its failover detector\'s sentinel subscriptions when it is closed (worker, its duplicate, producer)',
    async () => {
      const before = await sentinelSubscribers();
      const worker = createWorkerConnection(target, {}, reporting);
      const duplicate = worker.duplicate();
      const producer = createProducerConnection(target, {}, reporting);
      const opened: RedisClient[] = [worker, duplicate, producer];
      for (const c of opened) await waitUntilReady(c);
      await worker.set('sentinel-connection-test', '1', 'PX', 1000);
      // every connection watches the sentinels for +switch-master: three sentinels each
      await waitFor(async () => ((await sentinelSubscribers()) >= before + 3 * opened.length ? true : undefined), RELEASE_TIMEOUT_MS, 'the detectors subscribed');

      await Promise.all(opened.map((c) => closeConnection(c)));
      const after = await waitFor(
        async () => {
          const n = await sentinelSubscribers();
          return n === before ? n : undefined;
        },
        RELEASE_TIMEOUT_MS,
        'the sentinels to see every subscription closed',
      ).catch(() => sentinelSubscribers());
      expect(after).toBe(before);
    },
    TEST_TIMEOUT_MS,
  );
});
