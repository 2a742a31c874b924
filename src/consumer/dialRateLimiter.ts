import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { SECOND, sleep } from '../core/time.js';

const MICROS_PER_MS = 1000;

/**
 * Extra spacing per window. Carriers count starts on their side of the network, so starts spaced here must still
 * be under the limit after request-latency jitter: N+1 consecutive starts span at least one second plus this
 * margin, and the limit stays ≥ 97 % used.
 */
export const WINDOW_SAFETY_MARGIN_MS = 30;

interface LimiterCommands {
  dialerReserveSlot(key: string, intervalUs: number): Promise<[string, string]>;
}

/**
 * Spacing between dial starts for a calls-per-second limit: N starts per second, evenly spread, so any rolling
 * second holds at most N. A fractional limit above one rounds down (2.5 → 2 per second: 3 would break a
 * rolling second); below one it widens the spacing (0.5 → one start per 2 s).
 */
export function startIntervalMs(cps: number): number {
  if (cps >= 1) return (SECOND + WINDOW_SAFETY_MARGIN_MS) / Math.floor(cps);
  return SECOND / cps + WINDOW_SAFETY_MARGIN_MS;
}

/**
 * The global dial-start limiter (DIAL_CPS), one Lua script in Redis shared by every consumer process. Unlike
 * BullMQ's fixed-window limiter it is never exceeded in any rolling second, and it paces starts evenly instead of
 * bursting them at each window's start (cold bursts of calls see more failures at carriers).
 */
export class DialRateLimiter {
  private readonly redis: Redis & LimiterCommands;
  private readonly intervalUs: number;

  constructor(
    redis: Redis,
    private readonly key: string,
    cps: number,
  ) {
    if (!('dialerReserveSlot' in redis)) {
      redis.defineCommand('dialerReserveSlot', {
        numberOfKeys: 1,
        lua: readFileSync(new URL('./lua/reserveDialSlot.lua', import.meta.url), 'utf8'),
      });
    }
    this.redis = redis as Redis & LimiterCommands;
    this.intervalUs = Math.ceil(startIntervalMs(cps) * MICROS_PER_MS);
  }

  /** Reserves the next free start slot; returns how long to wait for it (0 when it is now). */
  async reserve(): Promise<{ slotAtMs: number; waitMs: number }> {
    const [slot, wait] = await this.redis.dialerReserveSlot(this.key, this.intervalUs);
    return { slotAtMs: Number(slot) / MICROS_PER_MS, waitMs: Number(wait) / MICROS_PER_MS };
  }

  /** Reserves a slot and waits for it; rejects (the slot is then simply unused) when `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<number> {
    const { slotAtMs, waitMs } = await this.reserve();
    if (waitMs > 0) await sleep(waitMs, signal);
    return slotAtMs;
  }
}
