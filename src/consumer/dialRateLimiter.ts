import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { SECOND, sleep } from '../core/time.js';

const MICROS_PER_MS = 1000;

/**
 * Extra spacing per window. Carriers count starts on their side of the network, so starts spaced here must still
 * be under the limit after request-latency jitter: N+1 consecutive starts span at least one second plus this
 * margin, and the limit stays ≥ 95 % used. 45 ms absorbs the event-loop stalls seen under load on 2 cores (30 ms
 * did not, measured at an in-process LiveKit fake).
 */
export const WINDOW_SAFETY_MARGIN_MS = 45;

interface LimiterCommands {
  dialerReserveSlot(key: string, intervalUs: number): Promise<[string, string]>;
  dialerCommitStart(key: string, limit: number, windowUs: number, member: string): Promise<[number, string]>;
}

/** How many starts a rolling window may hold, and how long that window is (fractional limits widen it). */
export function startWindow(cps: number): { limit: number; windowMs: number } {
  if (cps >= 1) return { limit: Math.floor(cps), windowMs: SECOND + WINDOW_SAFETY_MARGIN_MS };
  return { limit: 1, windowMs: SECOND / cps + WINDOW_SAFETY_MARGIN_MS };
}

/**
 * Spacing between dial starts for a calls-per-second limit: N starts per second, evenly spread, so any rolling
 * second holds at most N. A fractional limit above one rounds down (2.5 → 2 per second: 3 would break a
 * rolling second); below one it widens the spacing (0.5 → one start per 2 s).
 */
export function startIntervalMs(cps: number): number {
  const { limit, windowMs } = startWindow(cps);
  return windowMs / limit;
}

const script = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/**
 * The global dial-start limiter (DIAL_CPS), shared by every consumer process through two Lua scripts in Redis.
 * Unlike BullMQ's fixed-window limiter it is never exceeded in any rolling second: a GCRA slot paces starts
 * evenly (cold bursts of calls see more failures at carriers), and a sliding-window log checks the hard limit
 * at the moment each call really starts.
 */
export class DialRateLimiter {
  private readonly redis: Redis & LimiterCommands;
  private readonly intervalUs: number;
  private readonly limit: number;
  private readonly windowUs: number;

  constructor(
    redis: Redis,
    private readonly key: string,
    cps: number,
  ) {
    if (!('dialerReserveSlot' in redis)) redis.defineCommand('dialerReserveSlot', { numberOfKeys: 1, lua: script('reserveDialSlot') });
    if (!('dialerCommitStart' in redis)) redis.defineCommand('dialerCommitStart', { numberOfKeys: 1, lua: script('commitDialStart') });
    this.redis = redis as Redis & LimiterCommands;
    const { limit, windowMs } = startWindow(cps);
    this.limit = limit;
    this.windowUs = Math.ceil(windowMs * MICROS_PER_MS);
    this.intervalUs = Math.ceil(startIntervalMs(cps) * MICROS_PER_MS);
  }

  /** Reserves the next free pacing slot; returns how long to wait for it (0 when it is now). */
  async reserve(): Promise<{ slotAtMs: number; waitMs: number }> {
    const [slot, wait] = await this.redis.dialerReserveSlot(`${this.key}:next`, this.intervalUs);
    return { slotAtMs: Number(slot) / MICROS_PER_MS, waitMs: Number(wait) / MICROS_PER_MS };
  }

  /** Records a start now if the rolling window has room; otherwise says how long until it will. */
  async commit(): Promise<{ started: true } | { started: false; waitMs: number }> {
    const [ok, wait] = await this.redis.dialerCommitStart(`${this.key}:log`, this.limit, this.windowUs, randomUUID());
    return ok === 1 ? { started: true } : { started: false, waitMs: Number(wait) / MICROS_PER_MS };
  }

  /** Waits for a pacing slot, then for room in the rolling window, and records the start; rejects when `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<void> {
    const { waitMs } = await this.reserve();
    if (waitMs > 0) await sleep(waitMs, signal);
    for (;;) {
      const start = await this.commit();
      if (start.started) return;
      await sleep(start.waitMs, signal);
    }
  }
}
