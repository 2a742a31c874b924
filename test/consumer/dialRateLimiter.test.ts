import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { DialRateLimiter, startIntervalMs } from '../../src/consumer/dialRateLimiter.js';
import { dialerKeys } from '../../src/core/keys.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';
import { maxInRollingWindow } from '../helpers/rollingWindow.js';

const prefix = uniquePrefix('limiter');
const url = testRedisUrl();
const connections: Redis[] = [];
const connect = () => {
  const c = new Redis(url);
  connections.push(c);
  return c;
};

afterAll(async () => {
  await Promise.all(connections.map((c) => c.quit()));
  await deleteKeysWithPrefix(url, prefix);
});

describe('DialRateLimiter', () => {
  it('never starts more than the limit in any rolling second across processes, and nearly uses it', async () => {
    const cps = 20;
    const key = dialerKeys(prefix).dialWindow();
    // three "processes", each with its own connection and limiter, 8 workers each, racing for 60 starts
    const limiters = [0, 1, 2].map(() => new DialRateLimiter(connect(), key, cps));
    const starts: number[] = [];
    const total = 60;
    let taken = 0;
    const workerLoop = async (limiter: DialRateLimiter) => {
      while (taken < total) {
        taken += 1;
        await limiter.acquire();
        starts.push(Date.now());
      }
    };
    await Promise.all(limiters.flatMap((l) => Array.from({ length: 8 }, () => workerLoop(l))));
    expect(starts).toHaveLength(total);
    expect(maxInRollingWindow(starts, 1000)).toBeLessThanOrEqual(cps);
    // 60 evenly spaced starts at 20/s span 59 intervals (≈ 3.04 s with the margin). The bench holds the 95 % goal;
    // here a looser 90 % keeps a loaded CI machine from failing the test on scheduling noise (no stall gauge here).
    const span = Math.max(...starts) - Math.min(...starts);
    expect(span).toBeGreaterThanOrEqual((59 * 1000) / cps);
    expect(span).toBeLessThan((59 * 1000) / cps / 0.9);
  });

  it('spaces starts evenly instead of bursting them at the start of each second', async () => {
    const limiter = new DialRateLimiter(connect(), `${prefix}:dialer:{even}:window`, 10);
    const slots = await Promise.all(Array.from({ length: 5 }, () => limiter.reserve()));
    const times = slots.map((s) => s.slotAtMs).sort((a, b) => a - b);
    expect(Math.min(...slots.map((s) => s.waitMs))).toBe(0);
    for (let i = 1; i < times.length; i++) {
      // slot times are exact (µs from Redis), whatever moment each caller asked at
      expect((times[i] as number) - (times[i - 1] as number)).toBeCloseTo(startIntervalMs(10), 1);
    }
  });

  it('rounds fractional limits down above one and widens the spacing below one', () => {
    expect(startIntervalMs(2.5)).toBeGreaterThanOrEqual(500);
    expect(startIntervalMs(0.5)).toBeGreaterThanOrEqual(2000);
    expect(startIntervalMs(50)).toBeLessThanOrEqual(1000 / 50 / 0.95);
  });

  it('holds the limit at the real start time even when late slots fire together after a stall', async () => {
    const limiter = new DialRateLimiter(connect(), `${prefix}:dialer:{stall}:window`, 5);
    // five starts at once take the whole rolling window; the sixth must wait for the first to leave it
    const firstAt = performance.now();
    for (let i = 0; i < 5; i++) expect((await limiter.commit()).started).toBe(true);
    const sixth = await limiter.commit();
    expect(sixth.started).toBe(false);
    // the first start leaves the window a second (plus the margin) after it was made, however slow the five were
    if (!sixth.started) expect(performance.now() - firstAt + sixth.waitMs).toBeGreaterThan(1000);
  });

  it('gives the first caller an immediate slot and tells the next one how long to wait', async () => {
    const limiter = new DialRateLimiter(connect(), `${prefix}:dialer:{w}:window`, 1);
    expect((await limiter.reserve()).waitMs).toBe(0);
    const second = await limiter.reserve();
    expect(second.waitMs).toBeGreaterThan(1000);
    expect(second.waitMs).toBeLessThanOrEqual(1000 + 50);
  });
});
