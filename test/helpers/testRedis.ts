import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';

/** The Redis picked by globalSetup for this run. */
export function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error('TEST_REDIS_URL is not set: run tests through vitest (globalSetup picks Redis)');
  return url;
}

/** A queue prefix owned by one test file, so files never see each other's jobs. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${randomUUID().slice(0, 8)}`;
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
