import { CLAIM_TO_SEND_MAX_MS, WINDOW_SAFETY_MARGIN_MS } from '../../src/consumer/dialRateLimiter.js';

/** A request written during a stall of this process is stamped by the in-process simulator within this long after it. */
export const STAMP_AFTER_STALL_SLACK_MS = 20;
/**
 * The shortest stall of this process that can put a start's stamp into the wrong rolling second: a start reaches the
 * send within CLAIM_TO_SEND_MAX_MS of being counted, and the window's margin (WINDOW_SAFETY_MARGIN_MS) leaves the rest
 * for the path after the send, which in these tests is this process reading its own request. A stall as long as that
 * rest is enough (a loaded CI run on a Redis Cluster saw 11 stamps in 997 ms, none after a stall of 25 ms or more).
 */
export const STAMP_STALL_MIN_MS = WINDOW_SAFETY_MARGIN_MS - CLAIM_TO_SEND_MAX_MS;

/** The most timestamps that fall in any half-open window [t, t + windowMs), t being any of them. */
export function maxInRollingWindow(timestamps: readonly number[], windowMs: number): number {
  const sorted = [...timestamps].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[end] as number) - (sorted[start] as number) >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** A time this process's event loop did not run (epoch ms): from `start` to `end`. */
export interface LoopStall {
  start: number;
  end: number;
}

/** How often the stall probe ticks (ms). */
const STALL_PROBE_TICK_MS = 5;

/**
 * Records this process's event-loop stalls of at least `minMs` until `stop()` is called. An in-process simulator
 * stamps a request when its handler runs: a request written before a stall is stamped after it, late by up to the
 * stall, so its stamp can fall into a rolling second its dial did not start in.
 */
export function watchLoopStalls(minMs: number): { stop(): LoopStall[] } {
  const stalls: LoopStall[] = [];
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - last - STALL_PROBE_TICK_MS >= minMs) stalls.push({ start: last, end: now });
    last = now;
  }, STALL_PROBE_TICK_MS);
  return {
    stop() {
      clearInterval(timer);
      return stalls;
    },
  };
}

/**
 * The rolling windows [t, t + windowMs) holding more than `limit` timestamps that a stall of the stamping loop cannot
 * explain: a window is explained when one of its timestamps was taken soon after a stall ended, within `slackMs` or
 * the stall's own length, whichever is longer (after a long stall the loop first works off what piled up: on a
 * starved host, stamps came 30+ ms after the probe saw the stall end). Such a stamp may be late by the whole stall, so
 * its request may belong to an earlier window. Each window is given by the timestamps it holds. A limiter that really
 * lets too many through leaves windows no stall explains.
 */
export function overLimitWindowsUnexplained(
  timestamps: readonly number[],
  windowMs: number,
  limit: number,
  stalls: readonly LoopStall[],
  slackMs: number,
): number[][] {
  const sorted = [...timestamps].sort((a, b) => a - b);
  const readAfterStall = (t: number) => stalls.some((s) => t >= s.end && t - s.end <= Math.max(slackMs, s.end - s.start));
  const unexplained: number[][] = [];
  for (let start = 0; start < sorted.length; start++) {
    const from = sorted[start] as number;
    const inWindow = sorted.filter((t) => t >= from && t < from + windowMs);
    if (inWindow.length > limit && !inWindow.some(readAfterStall)) unexplained.push(inWindow);
  }
  return unexplained;
}
