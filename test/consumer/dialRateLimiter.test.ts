import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { DialRateLimiter, windowFor } from '../../src/consumer/dialRateLimiter.js';
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
    // three "processes", each with its own connection and limiter, 8 workers each, racing for 60 slots
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
    const began = Date.now();
    await Promise.all(limiters.flatMap((l) => Array.from({ length: 8 }, () => workerLoop(l))));
    const elapsed = Date.now() - began;
    expect(starts).toHaveLength(total);
    expect(maxInRollingWindow(starts, 1000)).toBeLessThanOrEqual(cps);
    // 60 starts at 20/s: the first 20 at once, then two more full windows ≈ 2.06 s; allow scheduling slack
    expect(elapsed).toBeGreaterThanOrEqual(2000);
    expect(elapsed).toBeLessThan(2600);
  });

  it('widens the window for fractional limits below one call per second', () => {
    expect(windowFor(0.5)).toMatchObject({ limit: 1 });
    expect(windowFor(0.5).windowMs).toBeGreaterThanOrEqual(2000);
    expect(windowFor(2.5)).toMatchObject({ limit: 2 });
  });

  it('says how long to wait when the window is full', async () => {
    const limiter = new DialRateLimiter(connect(), `${prefix}:dialer:{w}:window`, 1);
    expect((await limiter.tryAcquire()).acquired).toBe(true);
    const second = await limiter.tryAcquire();
    expect(second.acquired).toBe(false);
    if (!second.acquired) {
      expect(second.waitMs).toBeGreaterThan(900);
      expect(second.waitMs).toBeLessThanOrEqual(1100);
    }
  });
});
