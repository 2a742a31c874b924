import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { DialStartWindow } from '../core/callStore.js';
import { SECOND, sleep } from '../core/time.js';

const MICROS_PER_MS = 1000;

/**
 * Extra spacing per window. Carriers count starts on their side of the network, so starts spaced here must still
 * be under the limit after request-latency jitter: N+1 consecutive starts span at least one second plus the
 * margin. This base keeps the limit ≥ 95 % used; the consumer adds its recent event-loop stalls on top
 * (StallGauge), because a stall between taking a slot and sending bunches the starts behind it.
 */
export const WINDOW_SAFETY_MARGIN_MS = 30;
/** However badly this process stalls, the margin stays under this (the limit then still ≥ 80 % used). */
export const MAX_EXTRA_MARGIN_MS = 220;

interface LimiterCommands {
  dialerReserveSlot(key: string, intervalUs: number): Promise<[string, string]>;
  dialerCommitStart(key: string, limit: number, windowUs: number, member: string, keepUs: number): Promise<[number, string]>;
}

/** How many starts a rolling window may hold, and how long that window is (fractional limits widen it). */
export function startWindow(cps: number, extraMarginMs = 0): { limit: number; windowMs: number } {
  const margin = WINDOW_SAFETY_MARGIN_MS + Math.min(Math.max(0, extraMarginMs), MAX_EXTRA_MARGIN_MS);
  if (cps >= 1) return { limit: Math.floor(cps), windowMs: SECOND + margin };
  return { limit: 1, windowMs: SECOND / cps + margin };
}

/**
 * Spacing between dial starts for a calls-per-second limit: N starts per second, evenly spread, so any rolling
 * second holds at most N. A fractional limit above one rounds down (2.5 → 2 per second: 3 would break a
 * rolling second); below one it widens the spacing (0.5 → one start per 2 s).
 */
export function startIntervalMs(cps: number, extraMarginMs = 0): number {
  const { limit, windowMs } = startWindow(cps, extraMarginMs);
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

  /** `extraMarginMs` is read at every start (the consumer passes its recent event-loop stalls). */
  constructor(
    redis: Redis,
    private readonly key: string,
    private readonly cps: number,
    private readonly extraMarginMs: () => number = () => 0,
  ) {
    if (!('dialerReserveSlot' in redis)) redis.defineCommand('dialerReserveSlot', { numberOfKeys: 1, lua: script('reserveDialSlot') });
    if (!('dialerCommitStart' in redis)) redis.defineCommand('dialerCommitStart', { numberOfKeys: 1, lua: script('commitDialStart') });
    this.redis = redis as Redis & LimiterCommands;
  }

  /** Reserves the next free pacing slot; returns how long to wait for it (0 when it is now). */
  async reserve(): Promise<{ slotAtMs: number; waitMs: number }> {
    const intervalUs = Math.ceil(startIntervalMs(this.cps, this.extraMarginMs()) * MICROS_PER_MS);
    const [slot, wait] = await this.redis.dialerReserveSlot(`${this.key}:next`, intervalUs);
    return { slotAtMs: Number(slot) / MICROS_PER_MS, waitMs: Number(wait) / MICROS_PER_MS };
  }

  /** Records a start now if the rolling window has room; otherwise says how long until it will. */
  async commit(): Promise<{ started: true } | { started: false; waitMs: number }> {
    const { limit, windowMs } = startWindow(this.cps, this.extraMarginMs());
    const widest = startWindow(this.cps, MAX_EXTRA_MARGIN_MS).windowMs;
    const [ok, wait] = await this.redis.dialerCommitStart(
      `${this.key}:log`,
      limit,
      Math.ceil(windowMs * MICROS_PER_MS),
      randomUUID(),
      Math.ceil(widest * MICROS_PER_MS),
    );
    return ok === 1 ? { started: true } : { started: false, waitMs: Number(wait) / MICROS_PER_MS };
  }

  /**
   * The rolling window a start is checked against right now, for a script that records the start together with other
   * checks (claimDial.lua): the log key, the limit, the window and how long entries are kept (µs), a fresh member, and
   * the margin (ms) this window leaves for the time between the check and the request's arrival at LiveKit.
   */
  startWindow(): DialStartWindow {
    const extra = this.extraMarginMs();
    const { limit, windowMs } = startWindow(this.cps, extra);
    const widest = startWindow(this.cps, MAX_EXTRA_MARGIN_MS).windowMs;
    return {
      logKey: `${this.key}:log`,
      limit,
      windowUs: Math.ceil(windowMs * MICROS_PER_MS),
      keepUs: Math.ceil(widest * MICROS_PER_MS),
      member: randomUUID(),
      marginMs: WINDOW_SAFETY_MARGIN_MS + Math.min(Math.max(0, extra), MAX_EXTRA_MARGIN_MS),
    };
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
