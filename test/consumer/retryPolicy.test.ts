import { describe, expect, it } from 'vitest';
import { MAX_RETRY_DELAY_MS, RETRY_JITTER_RATIO, retryDelayMs } from '../../src/consumer/retryPolicy.js';

const delays = { busyMs: 60_000, noAnswerMs: 300_000, failedMs: 120_000 };
const noJitter = () => 0;

describe('retryDelayMs', () => {
  it('uses the per-outcome delay for the first retry', () => {
    expect(retryDelayMs('busy', 1, delays, noJitter)).toBe(60_000);
    expect(retryDelayMs('no_answer', 1, delays, noJitter)).toBe(300_000);
    expect(retryDelayMs('failed', 1, delays, noJitter)).toBe(120_000);
  });

  it('backs off exponentially on later retries', () => {
    expect(retryDelayMs('busy', 2, delays, noJitter)).toBe(120_000);
    expect(retryDelayMs('busy', 3, delays, noJitter)).toBe(240_000);
  });

  it('spreads delays upward only: a number is never called again sooner than the configured delay', () => {
    expect(retryDelayMs('busy', 1, delays, () => 0)).toBe(60_000);
    expect(retryDelayMs('busy', 1, delays, () => 1)).toBe(Math.round(60_000 * (1 + RETRY_JITTER_RATIO)));
  });

  it('caps a very late retry', () => {
    expect(retryDelayMs('no_answer', 30, delays, noJitter)).toBe(MAX_RETRY_DELAY_MS);
  });
});
