import { LuaScript, replies } from '../core/luaScript.js';
import type { RedisClient } from '../core/redisClient.js';
import { MINUTE, SECOND } from '../core/time.js';

/** First platform back-off (DIAL_PLATFORM_BACKOFF_MS's default); each further failed probe doubles it. */
export const PLATFORM_BACKOFF_BASE_MS = SECOND;
/** However long LiveKit stays away, the dial queue looks again at least this often. */
export const PLATFORM_BACKOFF_MAX_MS = MINUTE;
/** A failure streak is forgotten this long after its last failure (a later failure starts again from the base). */
export const PLATFORM_FAILURE_MEMORY_MS = 5 * MINUTE;

/** platformBackoff.lua: records a failure; answers `[consecutive failures, back-off remaining ms]`. */
const platformBackoff = new LuaScript<[failures: string, backoff: string], [baseMs: number, maxMs: number, memoryMs: number], [number, number]>(
  'platformBackoff',
  new URL('./lua/', import.meta.url),
  2,
  replies.twoNumbers,
);

/**
 * The dial queue's back-off after LiveKit or network trouble, shared by every consumer process through Redis. While it
 * runs no CreateSIPParticipant goes out at any concurrency in any process: claimDial (src/core/lua/claimDial.lua)
 * checks `key` atomically right before each dial. BullMQ's own `worker.rateLimit` only stops new jobs from being
 * fetched; jobs other slots already hold would still dial.
 */
export class PlatformBackoff {
  constructor(
    private readonly redis: RedisClient,
    /** The back-off key claimDial checks. */
    readonly key: string,
    private readonly failuresKey: string,
    /** The first back-off (DIAL_PLATFORM_BACKOFF_MS); each further failed probe doubles it, up to PLATFORM_BACKOFF_MAX_MS. */
    private readonly baseMs: number = PLATFORM_BACKOFF_BASE_MS,
  ) {}

  /**
   * Records a platform failure and returns how long the queue now backs off (ms) and the failure streak. A failure
   * that arrives while a back-off runs (its request left before it started) keeps the back-off without lengthening it.
   */
  async failed(): Promise<{ backoffMs: number; consecutiveFailures: number }> {
    const [failures, ms] = await platformBackoff.run(
      this.redis,
      [this.failuresKey, this.key],
      [this.baseMs, PLATFORM_BACKOFF_MAX_MS, PLATFORM_FAILURE_MEMORY_MS],
    );
    return { backoffMs: ms, consecutiveFailures: failures };
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
