import type { RetryDelays } from '../core/config.js';
import { MINUTE } from '../core/time.js';

/**
 * Each retry's delay is the base delay × 2^(retry−1), plus up to this fraction more so retries don't bunch up.
 * Jitter only adds: a configured delay is a promise that the number is not called again sooner.
 */
export const RETRY_JITTER_RATIO = 0.2;
/** Cap on one retry's delay, whatever the attempt. */
export const MAX_RETRY_DELAY_MS = 24 * 60 * MINUTE;

export type RetryableOutcome = 'busy' | 'no_answer' | 'failed';

/** Delay before retry number `retry` (1 = first retry) of a call whose last attempt ended in `outcome`. */
export function retryDelayMs(
  outcome: RetryableOutcome,
  retry: number,
  delays: RetryDelays,
  random: () => number = Math.random,
): number {
  const base = outcome === 'busy' ? delays.busyMs : outcome === 'no_answer' ? delays.noAnswerMs : delays.failedMs;
  const exponential = Math.min(base * 2 ** Math.max(0, retry - 1), MAX_RETRY_DELAY_MS);
  const jitter = 1 + RETRY_JITTER_RATIO * random();
  return Math.min(Math.round(exponential * jitter), MAX_RETRY_DELAY_MS);
}
