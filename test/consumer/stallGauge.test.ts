import { describe, expect, it } from 'vitest';
import { StallGauge } from '../../src/consumer/stallGauge.js';
import { MAX_EXTRA_MARGIN_MS, startIntervalMs, startWindow, WINDOW_SAFETY_MARGIN_MS } from '../../src/consumer/dialRateLimiter.js';

describe('StallGauge', () => {
  it('reports a recent event-loop stall, so the dial limiter can widen its margin', async () => {
    const gauge = new StallGauge();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const stallMs = 120;
      const until = performance.now() + stallMs;
      while (performance.now() < until) {
        // a synchronous stall, as a long GC pause or a starved CPU would cause
      }
      await new Promise((r) => setTimeout(r, 30));
      expect(gauge.recentMaxMs()).toBeGreaterThanOrEqual(stallMs - 20);
    } finally {
      gauge.stop();
    }
  });
});

describe('dial window margin', () => {
  it('widens by the recent stall, within a cap', () => {
    expect(startWindow(10).windowMs).toBe(1000 + WINDOW_SAFETY_MARGIN_MS);
    expect(startWindow(10, 60).windowMs).toBe(1000 + WINDOW_SAFETY_MARGIN_MS + 60);
    expect(startWindow(10, 10_000).windowMs).toBe(1000 + WINDOW_SAFETY_MARGIN_MS + MAX_EXTRA_MARGIN_MS);
    expect(startIntervalMs(10, 60)).toBeCloseTo((1000 + WINDOW_SAFETY_MARGIN_MS + 60) / 10);
  });
});
