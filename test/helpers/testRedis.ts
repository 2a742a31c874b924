import { randomUUID } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { createLogger } from '../../src/core/logger.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { createWorkerConnection } from '../../src/core/redisConnection.js';
import { DEFAULT_REDIS_PORT, DEFAULT_SENTINEL_PORT, parseHostPorts, type RedisTarget } from '../../src/core/redisTarget.js';

/**
 * The Redis topology a run's tests use (TEST_REDIS_TOPOLOGY, read by globalSetup; issue 14's three topologies):
 * `single` (default) one node, `cluster` three masters, `sentinel` a primary, one replica and three sentinels.
 */
export const testTopologySchema = z.enum(['single', 'cluster', 'sentinel']);
export type TestTopologyKind = z.infer<typeof testTopologySchema>;

/** TEST_REDIS_TOPOLOGY (default `single`); a ZodError naming the allowed values otherwise. */
export function testRedisTopology(env: NodeJS.ProcessEnv = process.env): TestTopologyKind {
  const value = env.TEST_REDIS_TOPOLOGY;
  return testTopologySchema.parse(value === undefined || value === '' ? 'single' : value);
}

/**
 * What globalSetup hands every test file (through the environment): TEST_REDIS_URL (the single node; a cluster's
 * first master; the Sentinel primary at start, its host and port ignored through Sentinel), and for the other
 * topologies TEST_REDIS_CLUSTER_NODES or TEST_REDIS_SENTINELS and TEST_REDIS_SENTINEL_NAME.
 */
export const TEST_REDIS_ENV = {
  url: 'TEST_REDIS_URL',
  clusterNodes: 'TEST_REDIS_CLUSTER_NODES',
  sentinels: 'TEST_REDIS_SENTINELS',
  sentinelName: 'TEST_REDIS_SENTINEL_NAME',
} as const;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests through vitest (globalSetup picks Redis)`);
  return value;
}

/** The Redis picked by globalSetup for this run: one node's URL (on a cluster, its first master; see TEST_REDIS_ENV). */
export function testRedisUrl(): string {
  return required(TEST_REDIS_ENV.url);
}

/**
 * Where the run's Redis is, as the dialer's settings say it: REDIS_URL, plus REDIS_CLUSTER_NODES (cluster) or
 * REDIS_SENTINELS and REDIS_SENTINEL_NAME (sentinel). Give it to every process and config a test starts.
 */
export function testRedisEnv(): Record<string, string> {
  const url = testRedisUrl();
  const kind = testRedisTopology();
  if (kind === 'cluster') return { REDIS_URL: url, REDIS_CLUSTER_NODES: required(TEST_REDIS_ENV.clusterNodes) };
  if (kind === 'sentinel') {
    return { REDIS_URL: url, REDIS_SENTINELS: required(TEST_REDIS_ENV.sentinels), REDIS_SENTINEL_NAME: required(TEST_REDIS_ENV.sentinelName) };
  }
  return { REDIS_URL: url };
}

/** The run's Redis as a RedisTarget, for the production connection factory (redisConnection.ts). */
export function testRedisTarget(): RedisTarget {
  const url = testRedisUrl();
  const kind = testRedisTopology();
  if (kind === 'cluster') return { kind: 'cluster', url, nodes: parseHostPorts(required(TEST_REDIS_ENV.clusterNodes), 'TEST_REDIS_CLUSTER_NODES', DEFAULT_REDIS_PORT) };
  if (kind === 'sentinel') {
    const sentinels = parseHostPorts(required(TEST_REDIS_ENV.sentinels), 'TEST_REDIS_SENTINELS', DEFAULT_SENTINEL_PORT);
    return { kind: 'sentinel', url, sentinels, name: required(TEST_REDIS_ENV.sentinelName) };
  }
  return { kind: 'node', url };
}

const quietLogger = createLogger('silent');

/**
 * A connection of the test's own to the run's Redis, made by the production factory (createWorkerConnection: a
 * Cluster client on a cluster, the sentinels' primary through Sentinel). `options` as ioredis takes them.
 */
export function connectTestRedis(options: RedisOptions = {}): RedisClient {
  return createWorkerConnection(testRedisTarget(), options, { name: 'test', logger: quietLogger });
}

/**
 * A queue prefix owned by one test file, so files never see each other's jobs. On a cluster it is a hash tag
 * (`{t-name-1a2b3c4d}`), as the dialer requires there: every key of the file then shares one slot.
 */
export function uniquePrefix(name: string): string {
  const prefix = `t-${name}-${randomUUID().slice(0, 8)}`;
  return testRedisTopology() === 'cluster' ? `{${prefix}}` : prefix;
}

const SCAN_COUNT = 5000;

/**
 * Deletes every key under `prefix` (SCAN, never KEYS, so a shared Redis is not blocked); takes a URL or a client.
 * On a Redis Cluster every master is scanned (SCAN is per node) and keys are deleted one by one (they may not share a
 * slot).
 */
export async function deleteKeysWithPrefix(target: string | Redis | Cluster, prefix: string): Promise<void> {
  const client = typeof target === 'string' ? new Redis(target, { maxRetriesPerRequest: 1 }) : target;
  try {
    const nodes = client instanceof Cluster ? client.nodes('master') : [client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT);
        cursor = next;
        if (client instanceof Cluster) for (const key of keys) await node.unlink(key);
        else if (keys.length > 0) await node.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    if (typeof target === 'string') await client.quit();
  }
}
