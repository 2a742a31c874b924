/**
 * Waiting for a lease of a call in progress before the dial (waitForActiveCallLease), on a clock the test moves: the
 * leases are real (Redis), the waits between polls are the test clock's, so half a minute of waiting takes milliseconds.
 */
import type { RedisClient } from '../../src/core/redisClient.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVE_LEASE_MAX_WAIT_MS, waitForActiveCallLease, type ActiveCallGateDeps } from '../../src/consumer/dialGates.js';
import { ActiveCallLeases } from '../../src/core/activeCallLeases.js';
import { MINUTE } from '../../src/core/time.js';
import { TestClock } from '../helpers/testClock.js';
import { connectTestRedis, deleteKeysWithPrefix, uniquePrefix } from '../helpers/testRedis.js';

const call = (callId: string, campaignId = 'gate') => ({ campaignId, callId });
let redis: RedisClient;
let prefix: string;

beforeAll(() => {
  redis = connectTestRedis(); // the run's topology (TEST_REDIS_TOPOLOGY), through the production factory
});
afterEach(async () => {
  await deleteKeysWithPrefix(redis, prefix);
});
afterAll(async () => {
  await redis.quit();
});

/** Leases capped at one call in progress, one of them held by `busy`; the gate's waits run on `clock`. */
async function fullCap(name: string, clock: TestClock): Promise<{ leases: ActiveCallLeases; deps: ActiveCallGateDeps }> {
  prefix = uniquePrefix(name);
  const leases = new ActiveCallLeases(redis, prefix);
  expect((await leases.acquire(call('busy'), { limit: 1, ttlMs: 10 * MINUTE })).held).toBe(true);
  return { leases, deps: { leases, limit: 1, ttlMs: 10 * MINUTE, clock, random: () => 0.5 } };
}

describe('waiting for a lease of a call in progress', () => {
  it('waits while the cap is full and gives up after ACTIVE_LEASE_MAX_WAIT_MS, telling once that it is full', async () => {
    const clock = new TestClock(0);
    const { deps } = await fullCap('gate-timeout', clock);
    const full: number[] = [];
    const wait = await clock.drive(waitForActiveCallLease(call('next'), deps, undefined, (active) => full.push(active)));
    expect(wait).toEqual({ kind: 'timed_out', active: 1 });
    expect(clock.now()).toBeGreaterThanOrEqual(ACTIVE_LEASE_MAX_WAIT_MS);
    expect(clock.now()).toBeLessThan(ACTIVE_LEASE_MAX_WAIT_MS + MINUTE);
    expect(full).toEqual([1]);
  });

  it('takes the lease at the first poll after one frees', async () => {
    const clock = new TestClock(0);
    const { leases, deps } = await fullCap('gate-frees', clock);
    const waiting = waitForActiveCallLease(call('next'), deps, undefined);
    await clock.untilPending();
    await clock.advanceToNext(); // still full: it polls again
    await clock.untilPending();
    await leases.release(call('busy'));
    expect(await clock.drive(waiting)).toEqual({ kind: 'held', waited: true });
    expect(clock.now()).toBeLessThan(ACTIVE_LEASE_MAX_WAIT_MS);
  });

  it('stops waiting when the job is told to stop (drain, lock lost), dialing nothing', async () => {
    const clock = new TestClock(0);
    const { leases, deps } = await fullCap('gate-stop', clock);
    const stop = new AbortController();
    const waiting = waitForActiveCallLease(call('next'), deps, stop.signal);
    await clock.untilPending();
    stop.abort();
    expect(await waiting).toEqual({ kind: 'stopped' });
    expect(await leases.count()).toBe(1);
  });
});
