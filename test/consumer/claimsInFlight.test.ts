import { afterEach, describe, expect, it } from 'vitest';
import { DialRateLimiter, InFlightLimit, MAX_CLAIMS_IN_FLIGHT, WindowTurn } from '../../src/consumer/dialRateLimiter.js';
import { dialAttempt } from '../../src/consumer/dialAttempt.js';
import { CallStore } from '../../src/core/callStore.js';
import { CALLS_QUEUE } from '../../src/core/queues.js';
import { sleep, systemClock } from '../../src/core/time.js';
import { GatedTwirpRpc, WARM_SOCKETS, withSendGate } from '../../src/core/twirpTransport.js';
import { dialDepsFor, silentLogger, startTestPipeline, type TestPipeline } from '../helpers/pipeline.js';
import { startCountingServer } from '../helpers/countingServer.js';

describe('InFlightLimit', () => {
  it('runs at most its limit at once, the others in the order they came', async () => {
    const limit = new InFlightLimit(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        limit.run(async () => {
          started.push(i);
          running += 1;
          most = Math.max(most, running);
          await sleep(5);
          running -= 1;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('passes a failed task on and frees its turn', async () => {
    const limit = new InFlightLimit(1);
    await expect(limit.run(() => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(await limit.run(() => Promise.resolve(7))).toBe(7);
  });
});

describe('WindowTurn', () => {
  it('gives its turns at once while one is free, then to the waiting calls in the order they came', async () => {
    const turn = new WindowTurn(2);
    expect(turn.taken).toBe(false);
    expect(await turn.take()).toBe('at_once');
    expect(await turn.take()).toBe('at_once');
    const order: string[] = [];
    const waiters = [1, 2, 3].map((i) => turn.take().then((got) => order.push(`${i}:${got}`)));
    await sleep(1);
    expect(order).toEqual([]);
    for (let i = 0; i < 3; i += 1) {
      turn.release();
      await sleep(1);
    }
    await Promise.all(waiters);
    expect(order).toEqual(['1:after_wait', '2:after_wait', '3:after_wait']);
    turn.release();
    expect(turn.taken).toBe(true); // the last waiter still holds its turn
    turn.release();
    expect(turn.taken).toBe(false);
  });

  it('lets a waiting call stop (draining, lock lost) without taking a turn, which skips it', async () => {
    const turn = new WindowTurn(1);
    await turn.take();
    const stop = new AbortController();
    const stopped = turn.take(stop.signal);
    const next = turn.take();
    stop.abort();
    expect(await stopped).toBe('stopped');
    turn.release();
    expect(await next).toBe('after_wait');
    expect(await turn.take(AbortSignal.abort())).toBe('stopped');
  });
});

describe('claims in flight', () => {
  let pipeline: TestPipeline | undefined;
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
  });

  it(`a process asks at most ${MAX_CLAIMS_IN_FLIGHT} dial claims at once, however many slots come together`, async () => {
    pipeline = await startTestPipeline('claims-in-flight', { dialers: 0, network: { default: { type: 'answer', afterMs: 20 } } });
    const p = pipeline;
    /** Each claim's reply takes 8 ms (a busy Redis), under the claim-to-send bound. */
    class CountingStore extends CallStore {
      running = 0;
      most = 0;
      override async claimDial(...args: Parameters<CallStore['claimDial']>): ReturnType<CallStore['claimDial']> {
        this.running += 1;
        this.most = Math.max(this.most, this.running);
        try {
          await sleep(8);
          return await super.claimDial(...args);
        } finally {
          this.running -= 1;
        }
      }
    }
    const store = new CountingStore(p.redis, p.config.queuePrefix, systemClock);
    // 1,000 CPS: twelve slots within about 12 ms, each claim 8 ms long
    const deps = dialDepsFor(p, { store, limiter: new DialRateLimiter(p.redis, store.keys.dialWindow(), 1000) });
    const calls = Array.from({ length: 12 }, (_, i) => ({ callId: `inflight-${i}`, campaignId: 'inflight', phoneNumber: `+1415555${String(1000 + i)}`, metadata: {}, enqueuedAt: Date.now() }));
    const results = await Promise.all(
      calls.map(async (job) => {
        const lock = { key: `${p.config.callShards.prefixOf(job.campaignId)}:${CALLS_QUEUE}:${job.callId}:lock`, token: 'mine' };
        await p.redis.set(lock.key, 'mine', 'PX', 30_000);
        return dialAttempt(job, 1, deps, silentLogger, { lock });
      }),
    );
    expect(results.map((r) => r.status)).toEqual(calls.map(() => 'answered'));
    expect(store.most).toBeLessThanOrEqual(MAX_CLAIMS_IN_FLIGHT);
    expect(store.most).toBeGreaterThan(1);
  });
});

describe('warm connections for the claims in flight', () => {
  it(`keeps ${MAX_CLAIMS_IN_FLIGHT} connections ready, so that many dials claimed at once open none after their claims`, async () => {
    const server = await startCountingServer();
    try {
      const rpc = new GatedTwirpRpc(server.url);
      // one warm() before each dial, as prepareDial does
      for (let i = 0; i < MAX_CLAIMS_IN_FLIGHT; i += 1) await rpc.warm();
      const warmed = server.connections();
      await Promise.all(Array.from({ length: MAX_CLAIMS_IN_FLIGHT }, () => withSendGate(() => undefined, () => rpc.request('SIP', 'CreateSIPParticipant', {}, {}))));
      expect(server.connections()).toBe(warmed);
      expect(WARM_SOCKETS).toBeGreaterThanOrEqual(MAX_CLAIMS_IN_FLIGHT);
    } finally {
      await server.close();
    }
  });
});
