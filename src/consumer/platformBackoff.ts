import { readFileSync } from 'node:fs';
import type { RedisClient } from '../core/redisClient.js';
import { MINUTE, SECOND } from '../core/time.js';

/** First platform back-off; each further failed probe doubles it. */
export const PLATFORM_BACKOFF_BASE_MS = SECOND;
/** However long LiveKit stays away, the dial queue looks again at least this often. */
export const PLATFORM_BACKOFF_MAX_MS = MINUTE;
/** A failure streak is forgotten this long after its last failure (a later failure starts again from the base). */
export const PLATFORM_FAILURE_MEMORY_MS = 5 * MINUTE;

interface BackoffCommands {
  dialerPlatformBackoff(counterKey: string, backoffKey: string, baseMs: number, maxMs: number, memoryMs: number): Promise<[number, number]>;
}

const lua = readFileSync(new URL('./lua/platformBackoff.lua', import.meta.url), 'utf8');

/**
 * The dial queue's back-off after LiveKit or network trouble, shared by every consumer process through Redis. While it
 * runs no CreateSIPParticipant goes out at any concurrency in any process: claimDial (src/core/lua/claimDial.lua)
 * checks `key` atomically right before each dial. BullMQ's own `worker.rateLimit` only stops new jobs from being
 * fetched; jobs other slots already hold would still dial.
 */
export class PlatformBackoff {
  private readonly redis: RedisClient & BackoffCommands;

  constructor(
    redis: RedisClient,
    /** The back-off key claimDial checks. */
    readonly key: string,
    private readonly failuresKey: string,
  ) {
    if (!('dialerPlatformBackoff' in redis)) redis.defineCommand('dialerPlatformBackoff', { numberOfKeys: 2, lua });
    this.redis = redis as RedisClient & BackoffCommands;
  }

  /**
   * Records a platform failure and returns how long the queue now backs off (ms) and the failure streak. A failure
   * that arrives while a back-off runs (its request left before it started) keeps the back-off without lengthening it.
   */
  async failed(): Promise<{ backoffMs: number; consecutiveFailures: number }> {
    const [failures, ms] = await this.redis.dialerPlatformBackoff(
      this.failuresKey,
      this.key,
      PLATFORM_BACKOFF_BASE_MS,
      PLATFORM_BACKOFF_MAX_MS,
      PLATFORM_FAILURE_MEMORY_MS,
    );
    return { backoffMs: Number(ms), consecutiveFailures: Number(failures) };
  }

  /** LiveKit answered (a call connected or the carrier gave a SIP status): the failure streak ends. */
  async succeeded(): Promise<void> {
    await this.redis.del(this.failuresKey);
  }

  /** Milliseconds the current back-off still runs (0 when none). */
  async remainingMs(): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.key));
  }
}
