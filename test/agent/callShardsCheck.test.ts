/**
 * The agent worker's CALL_SHARDS check: before it registers when Redis answers, else when Redis first answers, where
 * a mismatch drains the worker (before the check moved here, that late path had no test).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CALL_SHARDS_CHECK_WAIT_MS, checkCallShards } from '../../src/agent/callShardsCheck.js';
import { callShardsKey } from '../../src/core/callShards.js';
import { loadConfig } from '../../src/core/config.js';
import { ConfigError } from '../../src/core/errors.js';
import type { RedisClient } from '../../src/core/redisClient.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { connectTestRedis, deleteKeysWithPrefix, testRedisEnv, uniquePrefix } from '../helpers/testRedis.js';

/** Short enough for a test, long past a connection that is not even asked to connect. */
const TEST_WAIT_MS = 50;
const DRAIN_WAIT_MS = 10_000;
const RECORDED_SHARDS = '3';

const opened: RedisClient[] = [];
afterEach(async () => {
  for (const connection of opened.splice(0)) connection.disconnect();
});

/** A prefix whose calls were set up with 3 shards, and a config of this worker with `shards`. */
async function setUp(shards: number) {
  const prefix = uniquePrefix('shards-check');
  const admin = connectTestRedis();
  opened.push(admin);
  await admin.set(callShardsKey(prefix), RECORDED_SHARDS);
  const config = loadConfig({ ...testRedisEnv(), QUEUE_PREFIX: prefix, CALL_SHARDS: String(shards) });
  const cleanup = () => deleteKeysWithPrefix(admin as Parameters<typeof deleteKeysWithPrefix>[0], prefix);
  return { prefix, config, cleanup };
}

describe('the agent worker\'s CALL_SHARDS check', () => {
  it('waits 5 s for Redis at start by default', () => {
    expect(CALL_SHARDS_CHECK_WAIT_MS).toBe(5000);
  });

  it('throws the mismatch before the worker registers when Redis answers at start', async () => {
    const { config, cleanup } = await setUp(2);
    try {
      const connection = connectTestRedis();
      opened.push(connection);
      const { logger } = memoryLogger();
      let drained = false;
      const check = checkCallShards(connection, config, logger, { drain: () => (drained = true), waitMs: DRAIN_WAIT_MS });
      await expect(check).rejects.toThrow(ConfigError);
      await expect(check).rejects.toThrow(/CALL_SHARDS is 2 but the calls under QUEUE_PREFIX=.* were set up with 3 shards/);
      expect(drained).toBe(false);
    } finally {
      await cleanup();
    }
  });

  it('when Redis answers only after start, checks then and drains the worker on a mismatch', async () => {
    const { config, cleanup } = await setUp(2);
    try {
      // not connected yet: Redis "away" at start
      const connection = connectTestRedis({ lazyConnect: true });
      opened.push(connection);
      const { logger, linesWith } = memoryLogger();
      let drain: () => void = () => undefined;
      const drained = new Promise<void>((resolve, reject) => {
        drain = resolve;
        setTimeout(() => reject(new Error('not drained')), DRAIN_WAIT_MS).unref();
      });
      await checkCallShards(connection, config, logger, { drain, waitMs: TEST_WAIT_MS });
      expect(linesWith('Redis not answering at start')).toHaveLength(1);

      await connection.connect();
      await drained;
      expect(linesWith('draining this worker')).toEqual([
        expect.objectContaining({ level: 50, err: expect.stringMatching(/CALL_SHARDS is 2 but .* set up with 3 shards/) }),
      ]);
    } finally {
      await cleanup();
    }
  });

  it('runs on without draining when the count matches', async () => {
    const { config, cleanup } = await setUp(3);
    try {
      const connection = connectTestRedis({ lazyConnect: true });
      opened.push(connection);
      const { logger, linesWith } = memoryLogger();
      let drained = false;
      await checkCallShards(connection, config, logger, { drain: () => (drained = true), waitMs: TEST_WAIT_MS });
      await connection.connect();
      // the late check is one GET and one SET: a PING after them has its answer after theirs
      await connection.ping();
      await connection.ping();
      expect(drained).toBe(false);
      expect(linesWith('could not be checked')).toEqual([]);
    } finally {
      await cleanup();
    }
  });
});
