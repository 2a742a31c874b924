import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/logger.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { closeConnection, createProducerConnection, createWorkerConnection, isRedisConnectionError, waitUntilReady } from '../../src/core/redisConnection.js';
import { DEFAULT_REDIS_PORT, parseHostPorts, type RedisTarget } from '../../src/core/redisTarget.js';
import { hasRedisCluster, startClusterTopology, type ClusterTopology } from '../helpers/redisTopology.js';
import { waitFor } from '../helpers/waitFor.js';

/**
 * Issue 14 (chaos test on a cluster): a worker's command sent while the master serving its slot restarts waits for it,
 * as on one Redis node. ioredis' Cluster gave up after 16 tries (about a second), so the dial worker's write of a
 * 603 failed during a node restart and the caller was rung again.
 */


/** Longer than ioredis' default retries last (16 × 100 ms at most), short enough for a test. */
const NODE_DOWN_MS = 2500;
const NODE_GONE_TIMEOUT_MS = 10_000;
const TEST_TIMEOUT_MS = 60_000;

/** True while nothing accepts a connection on `port`. */
async function refused(port: number): Promise<boolean> {
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // the probe's failure is its answer
  try {
    await probe.connect();
    return false;
  } catch {
    return true;
  } finally {
    probe.disconnect();
  }
}

describe.skipIf(!hasRedisCluster)('connections to a Redis Cluster while the master serving their slot restarts', () => {
  let cluster: ClusterTopology;
  let target: RedisTarget;
  const opened: RedisClient[] = [];
  const reporting = { logger: createLogger('silent', 'test'), level: 'debug' as const };

  beforeAll(async () => {
    cluster = await startClusterTopology({ aof: true });
    target = { kind: 'cluster', url: `redis://127.0.0.1:${cluster.ports[0] ?? DEFAULT_REDIS_PORT}`, nodes: parseHostPorts(cluster.nodes, 'nodes', DEFAULT_REDIS_PORT) };
  }, TEST_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all(opened.map((c) => closeConnection(c)));
    await cluster?.close();
  }, TEST_TIMEOUT_MS);

  it(
    'a worker connection holds a write until the node is back (data kept), and a producer connection fails fast with a connection error',
    async () => {
      const prefix = `{t-outage-${randomUUID().slice(0, 8)}}`;
      const port = await cluster.portForKey(prefix);
      const worker = createWorkerConnection(target, {}, { ...reporting, name: 'worker' });
      const producer = createProducerConnection(target, {}, { ...reporting, name: 'producer' });
      opened.push(worker, producer);
      await Promise.all([waitUntilReady(worker), waitUntilReady(producer)]);
      await worker.set(`${prefix}:before`, 'kept');

      const restarted = cluster.restartNode(port, NODE_DOWN_MS);
      await waitFor(async () => ((await refused(port)) ? true : undefined), NODE_GONE_TIMEOUT_MS, 'the node to stop');
      const [write, failFast] = await Promise.allSettled([
        worker.set(`${prefix}:during`, 'written'),
        producer.set(`${prefix}:producer`, 'x'),
        restarted,
      ]);

      expect(write).toEqual({ status: 'fulfilled', value: 'OK' });
      expect(await worker.get(`${prefix}:during`)).toBe('written');
      expect(await worker.get(`${prefix}:before`)).toBe('kept');
      expect(failFast.status).toBe('rejected');
      const producerError: unknown = failFast.status === 'rejected' ? failFast.reason : undefined;
      expect(isRedisConnectionError(producerError), String(producerError)).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

});

describe('cluster outage errors', () => {
  it('counts ioredis\' and Redis\' cluster outage errors as connection errors, not failed commands', () => {
    expect(isRedisConnectionError(new Error('Too many Cluster redirections. Last error: ReplyError: MOVED 4772 127.0.0.1:38933'))).toBe(true);
    expect(isRedisConnectionError(new Error('Too many Cluster redirections. Last error: Error: Connection is closed.'))).toBe(true);
    expect(isRedisConnectionError(new Error('CLUSTERDOWN The cluster is down'))).toBe(true);
    expect(isRedisConnectionError(new Error('ERR wrong number of arguments'))).toBe(false);
  });
});
