import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

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

/** Deletes every key under `prefix` (SCAN, never KEYS, so a shared Redis is not blocked); takes a URL or a client. */
export async function deleteKeysWithPrefix(target: string | Redis, prefix: string): Promise<void> {
  const redis = typeof target === 'string' ? new Redis(target, { maxRetriesPerRequest: 1 }) : target;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    if (typeof target === 'string') await redis.quit();
  }
}
