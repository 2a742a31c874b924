/**
 * The agent worker's check of its CALL_SHARDS (and of REDIS_URL's topology) against the calls' Redis before it
 * registers, and again when Redis first answers if it was away at start.
 */
import type { Logger } from 'pino';
import { verifyCallShards } from '../core/callShards.js';
import type { DialerConfig } from '../core/config.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { waitUntilReady } from '../core/redisConnection.js';
import type { RedisClient } from '../core/redisClient.js';
import { topologyMismatch } from '../core/redisTopologyMismatch.js';
import { SECOND } from '../core/time.js';

/**
 * How long the worker waits at start for Redis to check CALL_SHARDS before it registers anyway (the check then runs
 * when Redis first answers). An agent holds calls without Redis (outcomes spool), so Redis being away must not keep it
 * from starting.
 */
export const CALL_SHARDS_CHECK_WAIT_MS = 5 * SECOND;

/** What checkCallShards does when it finds a wrong setting only after the worker registered. */
export interface LateCheckOptions {
  /** Stops the worker the way a stop signal does (main.ts: SIGTERM to itself, so running calls drain). */
  drain: () => void;
  /** How long to wait at start for Redis (ms); CALL_SHARDS_CHECK_WAIT_MS unless given. */
  waitMs?: number;
}

/** A wrong setting in what verifyCallShards threw (a count mismatch, or REDIS_URL on a cluster node), else undefined. */
function wrongSetting(config: DialerConfig, err: unknown): ConfigError | undefined {
  return err instanceof ConfigError ? err : topologyMismatch(config.redis, err);
}

/**
 * Checks this worker's CALL_SHARDS against the count the calls under QUEUE_PREFIX were set up with
 * (verifyCallShards), as the CLI, consumers and `serve` do: an agent with another count would note how unanswered
 * attempts ended, and hold calls, under keys no consumer reads. Waits up to `waitMs` for Redis and throws the
 * ConfigError of a mismatch, or of REDIS_URL on a node of a Redis Cluster (topologyMismatch, from its MOVED reply);
 * the caller exits 2 before registering. When Redis does not answer in time it logs that and returns; the check runs
 * when Redis first answers, and a wrong setting found then is logged and `drain` is called. Other errors of the check
 * are logged (warn) and the worker runs on.
 */
export async function checkCallShards(connection: RedisClient, config: DialerConfig, log: Logger, options: LateCheckOptions): Promise<void> {
  const waitMs = options.waitMs ?? CALL_SHARDS_CHECK_WAIT_MS;
  let timer: NodeJS.Timeout | undefined;
  const answered = await Promise.race([
    waitUntilReady(connection).then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), waitMs);
    }),
  ])
    .catch(() => false)
    .finally(() => clearTimeout(timer));
  if (answered) {
    try {
      await verifyCallShards(connection, config.callShards);
      return;
    } catch (err) {
      const wrong = wrongSetting(config, err);
      if (wrong) throw wrong;
      log.warn({ err: errorMessage(err) }, 'CALL_SHARDS could not be checked at start: checked when Redis answers again');
    }
  } else {
    log.warn({ waitedMs: waitMs }, 'Redis not answering at start: CALL_SHARDS is checked when it does');
  }
  connection.once('ready', () => {
    verifyCallShards(connection, config.callShards).catch((err: unknown) => {
      const wrong = wrongSetting(config, err);
      if (!wrong) {
        log.warn({ err: errorMessage(err) }, 'CALL_SHARDS could not be checked');
        return;
      }
      log.error({ err: wrong.message }, "the Redis settings do not match the calls' Redis: draining this worker");
      options.drain();
    });
  });
}
