import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { SECOND, sleep } from '../core/time.js';

/**
 * Extra time each slot is held past one second. Carriers count starts on their side of the network, so a slot
 * handed out here must also hold after request latency jitter; 3 % of a second keeps every rolling second under
 * the limit while leaving the limit ≥ 95 % used.
 */
export const WINDOW_SAFETY_MARGIN_MS = 30;
/** Spreads retries of waiting workers so they don't all ask Redis at the same millisecond. */
const WAIT_JITTER_MS = 5;

interface LimiterCommands {
  dialerAcquireSlot(key: string, limit: number, windowMs: number, member: string): Promise<[number, number]>;
}

/** How many starts fit in how long a window, for a calls-per-second limit (fractional limits widen the window). */
export function windowFor(cps: number): { limit: number; windowMs: number } {
  if (cps >= 1) return { limit: Math.floor(cps), windowMs: SECOND + WINDOW_SAFETY_MARGIN_MS };
  return { limit: 1, windowMs: Math.ceil(SECOND / cps) + WINDOW_SAFETY_MARGIN_MS };
}

/**
 * The global dial-start limiter (DIAL_CPS): one Lua script over a sorted set in Redis, so every consumer process
 * shares it and it is never exceeded in any rolling window, unlike BullMQ's fixed-window limiter.
 */
export class DialRateLimiter {
  private readonly redis: Redis & LimiterCommands;
  private readonly limit: number;
  private readonly windowMs: number;

  constructor(redis: Redis, private readonly key: string, cps: number) {
    if (!('dialerAcquireSlot' in redis)) {
      redis.defineCommand('dialerAcquireSlot', {
        numberOfKeys: 1,
        lua: readFileSync(new URL('./lua/acquireDialSlot.lua', import.meta.url), 'utf8'),
      });
    }
    this.redis = redis as Redis & LimiterCommands;
    ({ limit: this.limit, windowMs: this.windowMs } = windowFor(cps));
  }

  /** Takes a slot if one is free now; otherwise says how long to wait. */
  async tryAcquire(): Promise<{ acquired: true; at: number } | { acquired: false; waitMs: number }> {
    const [ok, value] = await this.redis.dialerAcquireSlot(this.key, this.limit, this.windowMs, randomUUID());
    return ok === 1 ? { acquired: true, at: value } : { acquired: false, waitMs: Math.max(1, value) };
  }

  /** Waits until a slot is free and takes it; rejects when `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<number> {
    for (;;) {
      const slot = await this.tryAcquire();
      if (slot.acquired) return slot.at;
      await sleep(slot.waitMs + Math.random() * WAIT_JITTER_MS, signal);
    }
  }
}
